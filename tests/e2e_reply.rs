//! Replies by mail end to end, on loopback only: the loopback DNS server publishes SPF and
//! DMARC for `sender.test` and an MX for it that points at an SMTP sink started here, which
//! records what it receives. A message that passes DMARC gets a reply there, from `<>`, signed
//! with the tester's key (verified with `authcheck check`), with the RFC 3834 fields; a DMARC
//! failure, a null sender, automatic and list mail, and a second message within the rate
//! limit get none, each with its reason on the result page and in the API; a sink answering
//! 451 and then 250 gets the reply on the retry, also when the service restarts in between.
//! Every wait is bounded.

mod support;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authcheck_outbound::SigningKey;
use authcheck_testdns::TestDns;
use support::{Service, ServiceOptions, check_json, eventually, send};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(30);

/// One message the sink took.
#[derive(Clone, Debug)]
struct Received {
    mail_from: String,
    recipients: Vec<String>,
    data: Vec<u8>,
    /// The user name it logged in with, when the sink asks for a login.
    user: Option<String>,
}

/// What a sink offers beyond plain SMTP.
#[derive(Clone, Default)]
struct SinkOffers {
    /// STARTTLS with this certificate.
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// AUTH PLAIN and LOGIN (after STARTTLS) with this user name and password, required
    /// before MAIL FROM.
    login: Option<(String, String)>,
    /// AUTH LOGIN only, not PLAIN.
    login_only: bool,
    /// TLS from the first byte (port 465) instead of STARTTLS.
    implicit: bool,
}

/// What every session of one sink shares.
#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<VecDeque<&'static str>>>,
    /// Every command line the sink was sent, in order (AUTH lines included).
    commands: Arc<Mutex<Vec<String>>>,
    /// Messages whose data reply the sink held back ([`HOLD`]).
    held: Arc<Mutex<usize>>,
    offers: SinkOffers,
}

/// An SMTP server on loopback that answers the end of each message's data with the next of
/// its replies (then 250), and keeps what it took.
struct Sink {
    addr: SocketAddr,
    shared: Shared,
}

impl Sink {
    async fn start(data_replies: &[&'static str]) -> Sink {
        Sink::offering(data_replies, SinkOffers::default()).await
    }

    async fn offering(data_replies: &[&'static str], offers: SinkOffers) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            received: Arc::new(Mutex::new(Vec::new())),
            replies: Arc::new(Mutex::new(
                data_replies.iter().copied().collect::<VecDeque<_>>(),
            )),
            commands: Arc::new(Mutex::new(Vec::new())),
            held: Arc::new(Mutex::new(0)),
            offers,
        };
        let kept = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = kept.clone();
                tokio::spawn(async move {
                    let _ = session(stream, shared).await;
                });
            }
        });
        Sink { addr, shared }
    }

    fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    fn commands(&self) -> Vec<String> {
        self.shared.commands.lock().unwrap().clone()
    }

    async fn first(&self) -> Received {
        eventually(WAIT, || async { self.received().first().cloned() })
            .await
            .expect("the reply reached the sink in time")
    }
}

/// A data reply that the sink never gives: it holds the connection for [`HOLD_TIME`], then
/// closes it, as a server that hangs after the data.
const HOLD: &str = "HOLD";
const HOLD_TIME: Duration = Duration::from_secs(120);

/// How a stretch of a session ended.
enum Next {
    StartTls,
    Done,
}

async fn session(stream: tokio::net::TcpStream, shared: Shared) -> std::io::Result<()> {
    if shared.offers.implicit {
        let config = shared.offers.tls.clone().expect("implicit TLS needs TLS");
        let secured = tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await?;
        let mut secured = BufReader::new(secured);
        secured.write_all(b"220 sink.test ESMTP\r\n").await?;
        converse(&mut secured, &shared, true).await?;
        return Ok(());
    }
    let mut plain = BufReader::new(stream);
    plain.write_all(b"220 sink.test ESMTP\r\n").await?;
    if let Next::StartTls = converse(&mut plain, &shared, false).await? {
        let config = shared
            .offers
            .tls
            .clone()
            .expect("STARTTLS is offered with TLS only");
        let secured = tokio_rustls::TlsAcceptor::from(config)
            .accept(plain.into_inner())
            .await?;
        converse(&mut BufReader::new(secured), &shared, true).await?;
    }
    Ok(())
}

async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut BufReader<S>) -> Option<String> {
    let mut line = String::new();
    let read = tokio::time::timeout(WAIT, stream.read_line(&mut line)).await;
    matches!(read, Ok(Ok(n)) if n > 0).then(|| line.trim_end().to_string())
}

/// The user name, when `user` and `password` are the sink's login.
fn login_matches(offers: &SinkOffers, user: &[u8], password: &[u8]) -> Option<String> {
    let (expected_user, expected_password) = offers.login.as_ref()?;
    (user == expected_user.as_bytes() && password == expected_password.as_bytes())
        .then(|| expected_user.clone())
}

fn decoded(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_default()
}

async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    shared: &Shared,
    secured: bool,
) -> std::io::Result<Next> {
    let (mut mail_from, mut recipients) = (String::new(), Vec::new());
    let mut user: Option<String> = None;
    // Bounded: a session of a few commands.
    for _ in 0..50 {
        let Some(command) = read_line(stream).await else {
            return Ok(Next::Done);
        };
        shared.commands.lock().unwrap().push(command.clone());
        let upper = command.to_ascii_uppercase();
        let angle = |text: &str| {
            text.split_once('<')
                .and_then(|(_, rest)| rest.split_once('>'))
                .map(|(address, _)| address.to_string())
                .unwrap_or_default()
        };
        let offers = &shared.offers;
        if upper.starts_with("EHLO") {
            let mut reply = String::from("250-sink.test\r\n");
            if offers.tls.is_some() && !secured {
                reply.push_str("250-STARTTLS\r\n");
            }
            if offers.login.is_some() && secured {
                reply.push_str(match offers.login_only {
                    true => "250-AUTH LOGIN\r\n",
                    false => "250-AUTH PLAIN LOGIN\r\n",
                });
            }
            reply.push_str("250 8BITMIME\r\n");
            stream.write_all(reply.as_bytes()).await?;
        } else if upper == "STARTTLS" && offers.tls.is_some() && !secured {
            stream.write_all(b"220 2.0.0 ready for TLS\r\n").await?;
            return Ok(Next::StartTls);
        } else if upper.starts_with("AUTH PLAIN ") && secured {
            let parts: Vec<Vec<u8>> = decoded(&command[11..])
                .split(|&byte| byte == 0)
                .map(<[u8]>::to_vec)
                .collect();
            user = match parts.as_slice() {
                [_, name, password] => login_matches(offers, name, password),
                _ => None,
            };
            let reply: &[u8] = match user {
                Some(_) => b"235 2.7.0 authenticated\r\n",
                None => b"535 5.7.8 authentication credentials invalid\r\n",
            };
            stream.write_all(reply).await?;
        } else if upper == "AUTH LOGIN" && secured {
            stream.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let name = decoded(&read_line(stream).await.unwrap_or_default());
            stream.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            let password = decoded(&read_line(stream).await.unwrap_or_default());
            user = login_matches(offers, &name, &password);
            let reply: &[u8] = match user {
                Some(_) => b"235 2.7.0 authenticated\r\n",
                None => b"535 5.7.8 authentication credentials invalid\r\n",
            };
            stream.write_all(reply).await?;
        } else if upper.starts_with("MAIL FROM") {
            if offers.login.is_some() && user.is_none() {
                stream
                    .write_all(b"530 5.7.0 authentication required\r\n")
                    .await?;
                continue;
            }
            mail_from = angle(&command);
            stream.write_all(b"250 2.1.0 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO") {
            recipients.push(angle(&command));
            stream.write_all(b"250 2.1.5 OK\r\n").await?;
        } else if upper == "DATA" {
            stream.write_all(b"354 go ahead\r\n").await?;
            let mut data = Vec::new();
            // Bounded: at most 1 MiB of data.
            while data.len() < 1 << 20 {
                let mut line = Vec::new();
                let read = tokio::time::timeout(WAIT, stream.read_until(b'\n', &mut line)).await;
                if !matches!(read, Ok(Ok(n)) if n > 0) {
                    return Ok(Next::Done);
                }
                if line == b".\r\n" {
                    break;
                }
                let line = line.strip_prefix(b".").unwrap_or(&line);
                data.extend_from_slice(line);
            }
            let reply = shared
                .replies
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or("250 2.0.0 taken");
            if reply == HOLD {
                *shared.held.lock().unwrap() += 1;
                tokio::time::sleep(HOLD_TIME).await;
                return Ok(Next::Done);
            }
            if reply.starts_with('2') {
                shared.received.lock().unwrap().push(Received {
                    mail_from: mail_from.clone(),
                    recipients: recipients.clone(),
                    data,
                    user: user.clone(),
                });
            }
            stream.write_all(format!("{reply}\r\n").as_bytes()).await?;
        } else if upper.starts_with("QUIT") {
            stream.write_all(b"221 2.0.0 bye\r\n").await?;
            return Ok(Next::Done);
        } else {
            stream.write_all(b"250 2.0.0 OK\r\n").await?;
        }
    }
    let _ = stream.read(&mut [0u8; 1]).await;
    Ok(Next::Done)
}

/// The zone: `sender.test` passes SPF from loopback and publishes DMARC and an MX on
/// loopback; `forged.test` rejects loopback; the tester's key is published.
fn zone(dns: &TestDns, key: &SigningKey) {
    dns.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    dns.add_mx("sender.test", 10, "mx.sender.test");
    dns.add_a("mx.sender.test", Ipv4Addr::LOCALHOST);
    dns.add_txt("forged.test", "v=spf1 ip4:192.0.2.1 -all");
    dns.add_txt("_dmarc.forged.test", "v=DMARC1; p=reject");
    dns.add_mx("forged.test", 10, "mx.sender.test");
    dns.add_txt("esp.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_mx("esp.test", 10, "mx.sender.test");
    dns.add_txt("authcheck._domainkey.tester.test", &key.dns_record());
    // forged.test signs its users' mail, as a shared provider does.
    authcheck_testkit::publish_keys(dns, "forged.test");
}

/// `message`, signed by forged.test.
fn signed_by_forged(message: &[u8]) -> Vec<u8> {
    use authcheck_testkit::{SignOptions, TestKey, sign};
    sign(message, &SignOptions::new("forged.test", TestKey::Rsa2048))
}

/// The tester's key, made here in the service's folder so that its record can be published
/// before the service starts.
fn key_in(folder: &Path) -> SigningKey {
    SigningKey::load_or_generate(&folder.join("dkim.key"))
        .expect("make the tester's key")
        .0
}

async fn start(dns: &TestDns, folder: &Path, sink: &Sink, extra: &[&str]) -> Service {
    start_replying(dns, folder, sink, "all", extra).await
}

async fn start_replying(
    dns: &TestDns,
    folder: &Path,
    sink: &Sink,
    scope: &str,
    extra: &[&str],
) -> Service {
    let mut options = ServiceOptions::new(dns);
    options.data_dir = Some(folder.to_path_buf());
    let port = sink.addr.port().to_string();
    let key = folder.join("dkim.key").display().to_string();
    options.extra_args = [
        "--reply-by-mail",
        scope,
        "--outgoing-mx-port",
        &port,
        "--outgoing-allow-private",
        "yes",
        "--self-check-interval",
        "off",
        "--dkim-key",
        &key,
    ]
    .iter()
    .chain(extra)
    .map(|arg| arg.to_string())
    .collect();
    Service::start_with(options).await
}

fn message(from: &str, message_id: &str, extra_fields: &str) -> Vec<u8> {
    format!(
        "From: Alice <{from}>\r\n\
         To: spf@tester.test\r\n\
         Subject: does my mail pass?\r\n\
         Date: Mon, 30 Nov 2026 02:00:00 +0000\r\n\
         Message-ID: <{message_id}>\r\n\
         {extra_fields}\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         Hello.\r\n"
    )
    .into_bytes()
}

/// Sends `message` to spf@ and returns the stored result's id.
async fn test_message(service: &Service, mail_from: &str, message: &[u8]) -> String {
    test_message_to(service, mail_from, "spf@tester.test", message).await
}

/// Sends `message` to `recipient` and returns the stored result's id.
async fn test_message_to(
    service: &Service,
    mail_from: &str,
    recipient: &str,
    message: &[u8],
) -> String {
    let reply = send(
        service,
        "mail.sender.test",
        mail_from,
        &[recipient],
        message,
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    reply.stored()[0].0.clone()
}

/// `/api/v1/results/{id}/reply` once it satisfies `ready`.
async fn reply_when(
    service: &Service,
    id: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let path = format!("/api/v1/results/{id}/reply");
    let found = eventually(WAIT, || async {
        let response = service.get(&path).await;
        if !response.status().is_success() {
            return None;
        }
        let json: serde_json::Value = response.json().await.ok()?;
        ready(&json).then_some(json)
    })
    .await;
    match found {
        Some(json) => json,
        None => {
            let last = service.get(&path).await.text().await.unwrap_or_default();
            panic!("{path} did not get there in time; it says {last}")
        }
    }
}

fn header_block(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data).into_owned();
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_message_passing_dmarc_gets_a_signed_reply_and_a_second_one_is_rate_limited() {
    let dns = TestDns::start().await;
    let folder = tempfile::tempdir().unwrap();
    zone(&dns, &key_in(folder.path()));
    let sink = Sink::start(&[]).await;
    let service = start(&dns, folder.path(), &sink, &[]).await;

    let sent = message("alice@sender.test", "m1@sender.test", "");
    let id = test_message(&service, "alice@sender.test", &sent).await;
    let received = sink.first().await;
    assert_eq!(received.mail_from, "", "replies come from the null sender");
    assert_eq!(received.recipients, ["alice@sender.test"]);
    let header = header_block(&received.data);
    for field in [
        "Auto-Submitted: auto-replied",
        "In-Reply-To: <m1@sender.test>",
        "References: <m1@sender.test>",
        "To: <alice@sender.test>",
        "From: \"authcheck\" <check@tester.test>",
    ] {
        assert!(header.contains(field), "{field:?} missing:\n{header}");
    }
    assert!(
        header.contains("Subject: authcheck results: |OK| spf-pass"),
        "{header}"
    );
    let body = mail_parser::MessageParser::default()
        .parse(&received.data)
        .and_then(|parsed| parsed.body_text(0).map(|text| text.into_owned()))
        .expect("a text body");
    assert!(
        body.contains(&format!("{}/r/{id}", service.public_url)),
        "{body}"
    );
    assert!(body.contains("Authentication-Results"), "{body}");
    assert!(body.contains("spf=pass"), "{body}");
    assert!(body.contains("DMARC: pass"), "{body}");

    // The reply's signature verifies against the published key.
    let report = check_json(&dns, &received.data, "127.0.0.1", "").await;
    assert_eq!(report["dkim"][0]["domain"], "tester.test", "{report:#}");
    assert_eq!(report["dkim"][0]["result"], "pass", "{report:#}");

    // The result page and the API show the reply and its attempt.
    let json = reply_when(&service, &id, |json| json["reply"]["state"] == "sent").await;
    assert_eq!(json["no_reply"], serde_json::Value::Null);
    let attempts = json["reply"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{json:#}");
    assert_eq!(attempts[0]["ok"], true);
    // Every time in RFC 3339, as in the rest of the API.
    for time in [
        &json["decided_at"],
        &json["reply"]["created_at"],
        &json["reply"]["next_attempt_at"],
        &json["reply"]["give_up_at"],
        &attempts[0]["at"],
    ] {
        let text = time
            .as_str()
            .unwrap_or_else(|| panic!("{time} in {json:#}"));
        assert!(
            chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            "{text} in {json:#}"
        );
    }
    assert!(
        attempts[0]["server"]
            .as_str()
            .unwrap()
            .starts_with("mx.sender.test [127.0.0.1:"),
        "{json:#}"
    );
    let page = service.get_text(&format!("/r/{id}")).await;
    assert!(page.contains(r#"id="reply-state">sent<"#), "{page}");
    assert!(page.contains("alice@sender.test"), "{page}");

    // A second message from the same address within ten minutes gets none.
    let again = message("alice@sender.test", "m2@sender.test", "");
    let second = test_message(&service, "alice@sender.test", &again).await;
    let json = reply_when(&service, &second, |json| !json["no_reply"].is_null()).await;
    assert_eq!(json["no_reply"]["code"], "rate-limited-address", "{json:#}");
    let page = service.get_text(&format!("/r/{second}")).await;
    assert!(
        page.contains("No reply sent: rate limited (this address had a reply recently)"),
        "{page}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.received().len(), 1, "no second reply");
}

#[tokio::test]
async fn no_reply_for_a_dmarc_failure_a_null_sender_or_automatic_mail() {
    let dns = TestDns::start().await;
    let folder = tempfile::tempdir().unwrap();
    zone(&dns, &key_in(folder.path()));
    let sink = Sink::start(&[]).await;
    // No rate limit, so that only the rules decide.
    let service = start(
        &dns,
        folder.path(),
        &sink,
        &[
            "--reply-per-address",
            "0",
            "--reply-per-domain",
            "0",
            "--reply-per-client",
            "0",
        ],
    )
    .await;

    let cases = [
        // SPF fails for forged.test from loopback: DMARC fails.
        (
            "alice@forged.test",
            message("alice@forged.test", "f1@forged.test", ""),
            "dmarc-not-passed",
            "No reply sent: DMARC did not pass",
        ),
        // SPF passes for the sending service's bounce domain, unaligned with From: not enough.
        (
            "bounces@esp.test",
            message("alice@forged.test", "f2@forged.test", ""),
            "dmarc-not-passed",
            "No reply sent: DMARC did not pass",
        ),
        // A message forged.test signed for its user alice, replayed with another of its users
        // as MAIL FROM: DMARC passes through DKIM, but only alice asked.
        (
            "victim@forged.test",
            signed_by_forged(&message("alice@forged.test", "r1@forged.test", "")),
            "sender-not-aligned",
            "No reply sent: the MAIL FROM address is neither SPF-authenticated nor the From address",
        ),
        (
            "",
            message("alice@sender.test", "n1@sender.test", ""),
            "null-sender",
            "No reply sent: null sender",
        ),
        (
            "alice@sender.test",
            message(
                "alice@sender.test",
                "a1@sender.test",
                "Auto-Submitted: auto-generated\r\n",
            ),
            "auto-submitted",
            "No reply sent: auto-submitted",
        ),
        (
            "alice@sender.test",
            message(
                "alice@sender.test",
                "l1@sender.test",
                "List-Id: <talk.lists.sender.test>\r\n",
            ),
            "mailing-list",
            "No reply sent: mailing list",
        ),
        (
            "alice@sender.test",
            message(
                "alice@sender.test",
                "b1@sender.test",
                "Precedence: bulk\r\n",
            ),
            "bulk-precedence",
            "No reply sent: bulk, list or junk precedence",
        ),
    ];
    for (mail_from, sent, code, shown) in cases {
        let id = test_message(&service, mail_from, &sent).await;
        let json = reply_when(&service, &id, |json| !json["no_reply"].is_null()).await;
        assert_eq!(json["no_reply"]["code"], code, "{mail_from}: {json:#}");
        assert_eq!(json["reply"], serde_json::Value::Null);
        let page = service.get_text(&format!("/r/{id}")).await;
        assert!(page.contains(shown), "{shown:?} not on the page:\n{page}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(sink.received().is_empty(), "{:?}", sink.received());

    let replies = service.get_text("/replies").await;
    assert!(
        replies.contains("on, for messages to check@, spf@ and dkim@"),
        "{replies}"
    );
    assert!(replies.contains("dmarc-not-passed"), "{replies}");
    assert!(
        replies.contains("SPF pass alone is not enough"),
        "{replies}"
    );
}

#[tokio::test]
async fn with_replies_for_check_only_spf_gets_none_and_check_gets_both_verdicts() {
    let dns = TestDns::start().await;
    let folder = tempfile::tempdir().unwrap();
    zone(&dns, &key_in(folder.path()));
    let sink = Sink::start(&[]).await;
    let service = start_replying(&dns, folder.path(), &sink, "check", &[]).await;

    let to_spf = message("alice@sender.test", "s1@sender.test", "");
    let id = test_message(&service, "alice@sender.test", &to_spf).await;
    let json = reply_when(&service, &id, |json| !json["no_reply"].is_null()).await;
    assert_eq!(json["no_reply"]["code"], "mailbox-not-replied", "{json:#}");

    let to_check = message("alice@sender.test", "c1@sender.test", "");
    let id = test_message_to(
        &service,
        "alice@sender.test",
        "check@tester.test",
        &to_check,
    )
    .await;
    let received = sink.first().await;
    let header = header_block(&received.data);
    assert!(
        header.contains("|OK| spf-pass") && header.contains("dkim-none"),
        "both verdicts in the Subject:\n{header}"
    );
    assert!(header.contains("In-Reply-To: <c1@sender.test>"), "{header}");
    let json = reply_when(&service, &id, |json| json["reply"]["state"] == "sent").await;
    assert_eq!(json["reply"]["recipient"], "alice@sender.test");
}

#[tokio::test]
async fn replies_are_off_by_default() {
    let dns = TestDns::start().await;
    dns.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    let service = Service::start(&dns).await;
    let id = test_message(
        &service,
        "alice@sender.test",
        &message("alice@sender.test", "o1@sender.test", ""),
    )
    .await;
    let response = service.get(&format!("/api/v1/results/{id}/reply")).await;
    assert_eq!(response.status(), 404);
    let page = service.get_text(&format!("/r/{id}")).await;
    assert!(!page.contains("Reply by mail"), "{page}");
    let replies = service.get_text("/replies").await;
    assert!(replies.contains("<strong>off</strong>"), "{replies}");
}

#[tokio::test]
async fn a_reply_refused_with_451_arrives_on_the_retry_after_a_restart() {
    let dns = TestDns::start().await;
    let folder = tempfile::tempdir().unwrap();
    zone(&dns, &key_in(folder.path()));
    let sink = Sink::start(&["451 4.3.0 greylisted, try again later"]).await;
    let retry = ["--outgoing-retry", "4s"];
    let service = start(&dns, folder.path(), &sink, &retry).await;

    let sent = message("alice@sender.test", "r1@sender.test", "");
    let id = test_message(&service, "alice@sender.test", &sent).await;
    let json = reply_when(&service, &id, |json| {
        json["reply"]["attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(json["reply"]["state"], "queued", "{json:#}");
    let attempt = &json["reply"]["attempts"][0];
    assert_eq!(attempt["ok"], false);
    assert_eq!(attempt["step"], "DATA");
    assert_eq!(attempt["detail"], "451 4.3.0 greylisted, try again later");
    let page = service.get_text(&format!("/r/{id}")).await;
    assert!(page.contains(r#"id="reply-state">queued<"#), "{page}");
    assert!(page.contains("451 4.3.0 greylisted"), "{page}");

    // The service stops before the retry is due; the queue is in the store.
    let options = service.options.clone();
    assert!(service.stop().await.success());
    assert!(sink.received().is_empty());
    let service = Service::start_with(options).await;

    let received = sink.first().await;
    assert_eq!(received.recipients, ["alice@sender.test"]);
    let json = reply_when(&service, &id, |json| json["reply"]["state"] == "sent").await;
    let attempts = json["reply"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{json:#}");
    assert_eq!(attempts[1]["ok"], true);
    assert_eq!(sink.received().len(), 1, "sent once");

    // Both attempts are outbound sessions in the session log, each with its transcript and
    // outcome, linked from the attempt and linking to the result.
    let outbound = service.get_json("/api/v1/sessions?direction=out").await;
    let sessions = outbound["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{outbound:#}");
    let (delivered, refused) = (&sessions[0], &sessions[1]);
    for session in sessions {
        assert_eq!(session["direction"], "out", "{session:#}");
        assert_eq!(session["client_ip"], "127.0.0.1");
        assert_eq!(session["client_port"], sink.addr.port());
        assert_eq!(session["client_ptr"], "mx.sender.test");
        assert_eq!(session["mail_from"], "");
        assert_eq!(session["results"][0]["id"], id.as_str(), "{session:#}");
        let commands: Vec<&str> = session["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["command"].as_str().unwrap())
            .collect();
        assert!(
            commands.contains(&"RCPT TO:<alice@sender.test>"),
            "{commands:?}"
        );
        assert!(
            !commands.iter().any(|c| c.starts_with("AUTH")),
            "{commands:?}"
        );
    }
    assert_eq!(attempts[0]["session_id"], refused["id"], "{json:#}");
    assert_eq!(attempts[1]["session_id"], delivered["id"], "{json:#}");
    let reply_to_data = |session: &serde_json::Value| {
        session["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|event| event["command"].as_str().unwrap().starts_with("(message, "))
            .cloned()
            .unwrap_or_else(|| panic!("the data's reply is in the transcript: {session:#}"))
    };
    let greylisted = reply_to_data(refused);
    assert_eq!(greylisted["code"], 451);
    assert_eq!(greylisted["status"], "4.3.0");
    assert_eq!(greylisted["text"], "greylisted, try again later");
    assert_eq!(refused["ending"], "will-retry");
    let last = refused["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["command"], "(outcome)");
    assert!(
        last["text"]
            .as_str()
            .unwrap()
            .starts_with("not taken; will try again at "),
        "{last:#}"
    );
    let taken = reply_to_data(delivered);
    assert_eq!(taken["code"], 250);
    assert_eq!(taken["text"], "taken");
    assert_eq!(delivered["ending"], "delivered");

    // The pages: /logs labels them, each has its page, the result page links to them.
    let logs = service.get_text("/logs").await;
    assert_eq!(logs.matches("out →</span>").count(), 2, "{logs}");
    assert_eq!(logs.matches("in ←</span>").count(), 1, "{logs}");
    let inbound_only = service.get_text("/logs?direction=in").await;
    assert!(!inbound_only.contains("out →</span>"), "{inbound_only}");
    let session_page = service
        .get_text(&format!("/logs/{}", refused["id"].as_str().unwrap()))
        .await;
    assert!(
        session_page.contains("greylisted, try again later"),
        "{session_page}"
    );
    assert!(session_page.contains("will-retry"), "{session_page}");
    let page = service.get_text(&format!("/r/{id}")).await;
    for session in sessions {
        let link = format!("href=\"/logs/{}\"", session["id"].as_str().unwrap());
        assert!(page.contains(&link), "{link} in {page}");
    }

    // The statistics count the one client session, not the tester's deliveries.
    let inbound = service.get_json("/api/v1/sessions?direction=in").await;
    assert_eq!(
        inbound["sessions"].as_array().unwrap().len(),
        1,
        "{inbound:#}"
    );
    let stats = service.get_json("/api/v1/stats?period=today").await;
    assert_eq!(stats["summary"]["sessions"], 1, "{stats:#}");
    assert_eq!(stats["summary"]["refused_sessions"], 0, "{stats:#}");
    assert!(
        stats["replies"].as_array().unwrap().is_empty(),
        "the 451 the tester was given is no refusal of a client: {stats:#}"
    );
}

/// A refusal whose text is markup, as a hostile recipient server could send.
const HOSTILE_REFUSAL: &str = "451 4.3.0 <img src=x onerror=\"window.__pwned=1\"><b id=injected>busy</b> AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn the_reply_section_and_the_replies_page_in_chromium() {
    use authcheck_testkit::browser::{Browser, keep_screenshot};

    let dns = TestDns::start().await;
    let folder = tempfile::tempdir().unwrap();
    zone(&dns, &key_in(folder.path()));
    let sink = Sink::start(&[HOSTILE_REFUSAL]).await;
    let service = start(&dns, folder.path(), &sink, &["--outgoing-retry", "1h"]).await;
    let sent = message("alice@sender.test", "c1@sender.test", "");
    let id = test_message(&service, "alice@sender.test", &sent).await;
    reply_when(&service, &id, |json| {
        json["reply"]["attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;

    let browser = Browser::launch().await;
    browser.goto(&service.url(&format!("/r/{id}"))).await;
    assert!(
        browser
            .wait_until("document.getElementById('reply') !== null", WAIT)
            .await,
        "the page loads with its reply section"
    );
    let state = browser
        .eval(
            "return {
                state: document.getElementById('reply-state').textContent,
                attempts: document.querySelector('#reply-attempts').textContent,
            };",
        )
        .await;
    assert_eq!(state["state"], "queued", "{state:#}");
    browser
        .assert_hostile_text_inert("#injected", "the reply section with a hostile 451")
        .await;
    assert!(
        state["attempts"]
            .as_str()
            .unwrap()
            .contains("451 4.3.0 <img src=x"),
        "{state:#}"
    );
    // Headless screenshots show what is in the window.
    browser
        .eval("document.getElementById('reply').scrollIntoView(); return null;")
        .await;
    let reply_png = browser.screenshot_of("#reply").await;
    assert!(reply_png.starts_with(b"\x89PNG"));

    browser.goto(&service.url("/replies")).await;
    assert!(
        browser
            .wait_until("document.getElementById('reasons') !== null", WAIT)
            .await
    );
    let rows = browser
        .eval("return document.querySelectorAll('#reasons tbody tr').length;")
        .await;
    assert_eq!(
        rows,
        authcheck_store::NoReply::ALL.len(),
        "every reason is listed"
    );
    let replies_png = browser.screenshot_of("main").await;

    // The session log shows the attempt as an outbound session, the hostile reply as text.
    browser.goto(&service.url("/logs")).await;
    assert!(
        browser
            .wait_until(
                "document.querySelector('details.session.outbound') !== null",
                WAIT
            )
            .await,
        "the outbound session is listed"
    );
    let shown = browser
        .eval(
            "const entry = document.querySelector('details.session.outbound');
             entry.open = true;
             return {
                label: entry.querySelector('.direction').textContent,
                transcript: entry.querySelector('table.transcript').textContent,
                inbound: document.querySelectorAll('details.session:not(.outbound)').length,
             };",
        )
        .await;
    assert_eq!(shown["label"], "out →", "{shown:#}");
    assert_eq!(shown["inbound"], 1, "{shown:#}");
    let transcript = shown["transcript"].as_str().unwrap();
    assert!(transcript.contains("<img src=x onerror="), "{transcript}");
    assert!(
        transcript.contains("RCPT TO:<alice@sender.test>"),
        "{transcript}"
    );
    browser
        .assert_hostile_text_inert("#injected", "/logs with a hostile reply to the tester")
        .await;
    browser
        .eval("document.querySelector('details.session.outbound').scrollIntoView(); return null;")
        .await;
    let logs_png = browser.screenshot_of("details.session.outbound").await;
    assert!(logs_png.starts_with(b"\x89PNG"));
    keep_screenshot("reply-section", &reply_png);
    keep_screenshot("replies", &replies_png);
    keep_screenshot("logs-outbound", &logs_png);

    // The session's own page, from its link: drawn open, the hostile reply still text.
    let link = browser
        .eval(
            "return document.querySelector('details.session.outbound a[href^=\"/logs/\"]') \
             .getAttribute('href');",
        )
        .await;
    browser
        .goto(&service.url(link.as_str().expect("a link to the session")))
        .await;
    let page = browser
        .eval(
            "const entry = document.querySelector('details.session.outbound');
             return {
                open: entry.open,
                heading: document.querySelector('h1').textContent,
                transcript: entry.querySelector('table.transcript').textContent,
             };",
        )
        .await;
    assert_eq!(page["open"], true, "{page:#}");
    assert_eq!(page["heading"], "SMTP session", "{page:#}");
    assert!(
        page["transcript"]
            .as_str()
            .unwrap()
            .contains("<img src=x onerror="),
        "{page:#}"
    );
    browser
        .assert_hostile_text_inert("#injected", "the session page of a hostile reply")
        .await;
    browser.keep_screenshot("session-outbound").await;
    browser.quit().await;
}

/// The weekly summary goes through the same queue: the first look, at start, finds a new week
/// and mails every operator listed a text and an HTML part, signed, from `<>`.
#[tokio::test]
async fn the_weekly_summary_reaches_the_operators() {
    let dns = TestDns::start().await;
    let folder = tempfile::tempdir().unwrap();
    zone(&dns, &key_in(folder.path()));
    let sink = Sink::start(&[]).await;
    let service = start_replying(
        &dns,
        folder.path(),
        &sink,
        "off",
        &["--summary-recipient", "ops@sender.test"],
    )
    .await;
    let received = sink.first().await;
    assert_eq!(received.mail_from, "");
    assert_eq!(received.recipients, ["ops@sender.test"]);
    let header = header_block(&received.data);
    assert!(
        header.contains("Auto-Submitted: auto-generated"),
        "{header}"
    );
    assert!(
        header.contains("Subject: authcheck weekly summary"),
        "{header}"
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&received.data)
        .expect("the summary parses");
    let text = parsed.body_text(0).expect("a text part").into_owned();
    let html = parsed.body_html(0).expect("an HTML part").into_owned();
    assert!(text.contains("Messages tested: "), "{text}");
    assert!(
        html.contains(&format!("{}/status", service.public_url)),
        "{html}"
    );
    let report = check_json(&dns, &received.data, "127.0.0.1", "").await;
    assert_eq!(report["dkim"][0]["result"], "pass", "{report:#}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.received().len(), 1, "one summary a week");
    // Its session is in the log, the operator's address hidden.
    let outbound = service.get_json("/api/v1/sessions?direction=out").await;
    let session = &outbound["sessions"][0];
    assert_eq!(session["ending"], "delivered", "{outbound:#}");
    assert!(session["results"].as_array().unwrap().is_empty());
    let shown = outbound.to_string();
    assert!(shown.contains("RCPT TO:<(operator)>"), "{shown}");
    assert!(!shown.contains("ops@sender.test"), "{shown}");
}

/// Through a smarthost: the reply goes to it whatever the recipient domain's MX says; with a
/// login, a smarthost without STARTTLS never gets the password, and the attempt says why.
#[tokio::test]
async fn replies_go_through_the_smarthost_and_its_password_only_over_tls() {
    let dns = TestDns::start().await;
    let folder = tempfile::tempdir().unwrap();
    zone(&dns, &key_in(folder.path()));
    // The MX sink must stay empty: everything goes to the smarthost.
    let mx = Sink::start(&[]).await;
    let smarthost = Sink::start(&[]).await;
    let target = smarthost.addr.to_string();
    let service = start(&dns, folder.path(), &mx, &["--outgoing-smarthost", &target]).await;
    let id = test_message(
        &service,
        "alice@sender.test",
        &message("alice@sender.test", "h1@sender.test", ""),
    )
    .await;
    let received = smarthost.first().await;
    assert_eq!(received.recipients, ["alice@sender.test"]);
    let json = reply_when(&service, &id, |json| json["reply"]["state"] == "sent").await;
    assert!(
        json["reply"]["attempts"][0]["server"]
            .as_str()
            .unwrap()
            .contains(&target),
        "{json:#}"
    );
    assert!(mx.received().is_empty());
    assert!(service.stop().await.success());

    // The same database: bob, not alice, so that the per-address limit stays out of it.
    let service = start(
        &dns,
        folder.path(),
        &mx,
        &[
            "--outgoing-smarthost",
            &target,
            "--outgoing-smarthost-user",
            "authcheck",
            "--outgoing-smarthost-password",
            "s3cret",
        ],
    )
    .await;
    let id = test_message(
        &service,
        "bob@sender.test",
        &message("bob@sender.test", "h2@sender.test", ""),
    )
    .await;
    let json = reply_when(&service, &id, |json| {
        json["reply"]["attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    let attempt = &json["reply"]["attempts"][0];
    assert_eq!(attempt["step"], "STARTTLS", "{json:#}");
    assert!(
        attempt["detail"]
            .as_str()
            .unwrap()
            .contains("never sent in clear text"),
        "{json:#}"
    );
    assert_eq!(smarthost.received().len(), 1, "nothing more reached it");
}

/// A certificate authority made for the test, and a certificate it signs for 127.0.0.1: the
/// CA's PEM file (for the service's `outgoing_smarthost_ca_file`) and the sink's TLS setup.
fn test_ca(
    folder: &Path,
    name: &str,
) -> (std::path::PathBuf, Arc<tokio_rustls::rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let mut server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server = server_params.signed_by(&server_key, &ca).unwrap();
    let ca_file = folder.join(format!("{name}-ca.pem"));
    let cert_file = folder.join(format!("{name}-server.pem"));
    let key_file = folder.join(format!("{name}-server.key"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, server.pem()).unwrap();
    std::fs::write(&key_file, server_key.serialize_pem()).unwrap();
    let config = authcheck_smtp::load_tls(&cert_file, &key_file).expect("the sink's TLS");
    (ca_file, config)
}

const SMARTHOST_PASSWORD: &str = "s3cret-Pa55";

fn smarthost_login() -> Option<(String, String)> {
    Some(("authcheck".to_owned(), SMARTHOST_PASSWORD.to_owned()))
}

/// The service's arguments for the smarthost at `target`, logging in with `password`, its
/// certificate checked with `ca_file`.
fn smarthost_args<'a>(target: &'a str, password: &'a str, ca_file: &'a str) -> [&'a str; 8] {
    [
        "--outgoing-smarthost",
        target,
        "--outgoing-smarthost-user",
        "authcheck",
        "--outgoing-smarthost-password",
        password,
        "--outgoing-smarthost-ca-file",
        ca_file,
    ]
}

/// What a smarthost test runs against: the zone, the service's folder, a smarthost sink whose
/// certificate the CA `signer` made (offering TLS, the login and `offers`), an MX sink that
/// must stay empty, and for the service the smarthost's address and the file of the CA it
/// trusts, `trusted` (an impostor when it is not `signer`).
struct SmarthostCase {
    dns: TestDns,
    folder: tempfile::TempDir,
    smarthost: Sink,
    mx: Sink,
    target: String,
    ca: String,
}

async fn smarthost_case(signer: &str, trusted: &str, offers: SinkOffers) -> SmarthostCase {
    let dns = TestDns::start().await;
    let folder = tempfile::tempdir().unwrap();
    zone(&dns, &key_in(folder.path()));
    let (ca_file, trusted_tls) = test_ca(folder.path(), trusted);
    let tls = if signer == trusted {
        trusted_tls
    } else {
        test_ca(folder.path(), signer).1
    };
    let offers = SinkOffers {
        tls: Some(tls),
        login: smarthost_login(),
        ..offers
    };
    let smarthost = Sink::offering(&[], offers).await;
    SmarthostCase {
        target: smarthost.addr.to_string(),
        ca: ca_file.display().to_string(),
        mx: Sink::start(&[]).await,
        smarthost,
        dns,
        folder,
    }
}

impl SmarthostCase {
    /// Starts the service sending through the smarthost, logging in with `password` (and
    /// `extra` arguments), and tests a message from `sender` with Message-ID `message_id`;
    /// the service and the stored result's id.
    async fn send_test(
        &self,
        password: &str,
        extra: &[&str],
        sender: &str,
        message_id: &str,
    ) -> (Service, String) {
        let mut args = smarthost_args(&self.target, password, &self.ca).to_vec();
        args.extend_from_slice(extra);
        let service = start(&self.dns, self.folder.path(), &self.mx, &args).await;
        let id = test_message(&service, sender, &message(sender, message_id, "")).await;
        (service, id)
    }
}

/// Each step of the newest outbound session as its command and reply code.
async fn outbound_steps(service: &Service) -> Vec<(String, u64)> {
    let outbound = service.get_json("/api/v1/sessions?direction=out").await;
    outbound["sessions"][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["command"].as_str().unwrap().to_owned(),
                event["code"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// The smarthost path for real: STARTTLS with a certificate the configured CA signed, AUTH
/// (the sink checks the login), the signed reply taken; the session log shows AUTH without the
/// credentials. A wrong password is refused with 535, which is permanent (RFC 4954): the
/// reply is given up, not retried, and the result page says why.
#[tokio::test]
async fn a_smarthost_with_a_certificate_the_ca_signed_gets_the_login_and_the_reply() {
    let case = smarthost_case("smarthost", "smarthost", SinkOffers::default()).await;
    let (service, id) = case
        .send_test(
            SMARTHOST_PASSWORD,
            &[],
            "alice@sender.test",
            "s1@sender.test",
        )
        .await;
    let SmarthostCase {
        dns, smarthost, mx, ..
    } = &case;
    let received = smarthost.first().await;
    assert_eq!(received.user.as_deref(), Some("authcheck"), "it logged in");
    assert_eq!(received.recipients, ["alice@sender.test"]);
    assert_eq!(received.mail_from, "");
    let report = check_json(dns, &received.data, "127.0.0.1", "").await;
    assert_eq!(report["dkim"][0]["result"], "pass", "signed: {report:#}");
    let json = reply_when(&service, &id, |json| json["reply"]["state"] == "sent").await;
    assert_eq!(json["reply"]["attempts"][0]["tls"], "TLSv1.3", "{json:#}");
    assert!(mx.received().is_empty(), "nothing went to the MX");

    // The session log shows AUTH and its reply, never the credentials.
    let steps = outbound_steps(&service).await;
    assert!(
        steps.contains(&("AUTH PLAIN (credentials hidden)".to_owned(), 235)),
        "{steps:?}"
    );
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(format!("\0authcheck\0{SMARTHOST_PASSWORD}"))
    };
    let outbound = service.get_json("/api/v1/sessions?direction=out").await;
    let session_page = format!("/logs/{}", outbound["sessions"][0]["id"].as_str().unwrap());
    for path in [
        "/logs",
        "/logs/raw",
        "/api/v1/sessions",
        session_page.as_str(),
    ] {
        let shown = service.get_text(path).await;
        assert!(!shown.contains(SMARTHOST_PASSWORD), "{path}: {shown}");
        assert!(!shown.contains(&encoded), "{path}: {shown}");
    }
    assert!(service.stop().await.success());

    // The same database with a wrong password: bob, so that the per-address limit stays out.
    let (service, id) = case
        .send_test("wrong-password", &[], "bob@sender.test", "s2@sender.test")
        .await;
    let json = reply_when(&service, &id, |json| json["reply"]["state"] == "failed").await;
    let attempts = json["reply"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "535 is not retried: {json:#}");
    assert_eq!(attempts[0]["step"], "AUTH", "{json:#}");
    assert_eq!(
        attempts[0]["detail"], "535 5.7.8 authentication credentials invalid",
        "{json:#}"
    );
    let page = service.get_text(&format!("/r/{id}")).await;
    assert!(page.contains(r#"id="reply-state">failed<"#), "{page}");
    assert!(
        page.contains("535 5.7.8 authentication credentials invalid"),
        "{page}"
    );
    assert_eq!(smarthost.received().len(), 1, "nothing more was taken");
}

/// A smarthost whose certificate the configured CA did not sign (a man in the middle) fails
/// at STARTTLS: the handshake stops, the password never reaches it (the sink saw no AUTH), and
/// the reply waits for a retry.
#[tokio::test]
async fn a_smarthost_whose_certificate_the_ca_did_not_sign_never_gets_the_password() {
    let case = smarthost_case("impostor", "trusted", SinkOffers::default()).await;
    let (service, id) = case
        .send_test(
            SMARTHOST_PASSWORD,
            &[],
            "alice@sender.test",
            "m1@sender.test",
        )
        .await;
    let SmarthostCase { smarthost, .. } = &case;
    let json = reply_when(&service, &id, |json| {
        json["reply"]["attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    assert_eq!(
        json["reply"]["state"], "queued",
        "tried again later: {json:#}"
    );
    let attempt = &json["reply"]["attempts"][0];
    assert_eq!(attempt["step"], "STARTTLS", "{json:#}");
    assert!(
        attempt["detail"].as_str().unwrap().contains("certificate"),
        "{json:#}"
    );
    let commands = smarthost.commands();
    assert!(
        commands
            .iter()
            .all(|c| !c.to_ascii_uppercase().starts_with("AUTH")),
        "{commands:?}"
    );
    assert_eq!(commands.len(), 2, "EHLO and STARTTLS only: {commands:?}");
    assert!(smarthost.received().is_empty());
    let outbound = service.get_json("/api/v1/sessions?direction=out").await;
    let events = outbound["sessions"][0]["events"]
        .as_array()
        .unwrap()
        .clone();
    let handshake = events
        .iter()
        .find(|event| event["command"] == "(TLS handshake)")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(
        handshake["text"].as_str().unwrap().contains("certificate"),
        "{handshake:#}"
    );
}

/// Crash recovery: the service is killed (SIGKILL) while the sink holds the reply to the data,
/// so the attempt never ends; the restarted service takes the message again once the dead
/// instance's short lease has run out (about `outgoing_timeout` + 15 s after its last renewal,
/// not the hour and a half of a lease covering every possible wait), and the reply arrives.
#[tokio::test]
async fn a_reply_cut_off_by_a_crash_arrives_soon_after_a_restart() {
    let dns = TestDns::start().await;
    let folder = tempfile::tempdir().unwrap();
    zone(&dns, &key_in(folder.path()));
    let sink = Sink::start(&[HOLD]).await;
    // A lease of 10 + 15 = 25 s; before, a claim held a message 10 × 9 × 10 + 60 s = 16 min.
    let service = start(&dns, folder.path(), &sink, &["--outgoing-timeout", "10s"]).await;
    let options = service.options.clone();
    let id = test_message(
        &service,
        "alice@sender.test",
        &message("alice@sender.test", "k1@sender.test", ""),
    )
    .await;
    let holding = eventually(WAIT, || async {
        (*sink.shared.held.lock().unwrap() == 1).then_some(())
    })
    .await;
    assert!(holding.is_some(), "the attempt reached the end of the data");
    let killed_at = std::time::Instant::now();
    service.kill().await;
    assert!(sink.received().is_empty());

    let service = Service::start_with(options).await;
    let arrived = eventually(Duration::from_secs(60), || async {
        sink.received().first().cloned()
    })
    .await
    .expect("the reply arrived after the restart");
    let waited = killed_at.elapsed();
    assert!(
        waited < Duration::from_secs(45),
        "taken again within one lease and a poll of the crash, not after {waited:?}"
    );
    assert_eq!(arrived.recipients, ["alice@sender.test"]);
    let json = reply_when(&service, &id, |json| json["reply"]["state"] == "sent").await;
    assert_eq!(
        json["reply"]["attempts"].as_array().unwrap().len(),
        1,
        "the cut-off attempt was never recorded: {json:#}"
    );
    assert_eq!(sink.received().len(), 1, "sent once");
}

/// Implicit TLS (as on port 465) with a smarthost that offers AUTH LOGIN only: the user name
/// and the password each go in their own hidden line, after the certificate checked out.
#[tokio::test]
async fn a_smarthost_with_implicit_tls_and_auth_login_gets_the_reply() {
    let offers = SinkOffers {
        login_only: true,
        implicit: true,
        ..SinkOffers::default()
    };
    let case = smarthost_case("submissions", "submissions", offers).await;
    let implicit_tls = ["--outgoing-smarthost-tls", "implicit"];
    let (service, id) = case
        .send_test(
            SMARTHOST_PASSWORD,
            &implicit_tls,
            "alice@sender.test",
            "i1@sender.test",
        )
        .await;
    let SmarthostCase { smarthost, .. } = &case;
    let received = smarthost.first().await;
    assert_eq!(received.user.as_deref(), Some("authcheck"));
    let json = reply_when(&service, &id, |json| json["reply"]["state"] == "sent").await;
    assert_eq!(json["reply"]["attempts"][0]["tls"], "TLSv1.3", "{json:#}");
    let commands = smarthost.commands();
    assert!(
        !commands.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS")),
        "{commands:?}"
    );
    let steps = outbound_steps(&service).await;
    // TLS first, then the greeting.
    assert_eq!(steps[0].0, "(TLS handshake)", "{steps:?}");
    assert_eq!(steps[1], ("(connect)".to_owned(), 220), "{steps:?}");
    for login_step in [
        ("AUTH LOGIN".to_owned(), 334),
        ("(user name hidden)".to_owned(), 334),
        ("(password hidden)".to_owned(), 235),
    ] {
        assert!(steps.contains(&login_step), "{login_step:?} in {steps:?}");
    }
    let outbound = service.get_text("/api/v1/sessions?direction=out").await;
    assert!(!outbound.contains(SMARTHOST_PASSWORD));
}

/// A reply to a private test's sender is logged but never listed: its existence would tell
/// that the private test passed DMARC. Its session is read from the private result's page.
#[tokio::test]
async fn a_reply_to_a_private_test_is_logged_unlisted_and_linked_from_its_result_only() {
    let dns = TestDns::start().await;
    let folder = tempfile::tempdir().unwrap();
    zone(&dns, &key_in(folder.path()));
    let sink = Sink::start(&[]).await;
    let service = start(&dns, folder.path(), &sink, &[]).await;
    let made = support::http()
        .post(service.url("/api/v1/tests"))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let made: serde_json::Value = made.json().await.unwrap();
    let address = made["address"].as_str().unwrap().to_owned();
    let id = test_message_to(
        &service,
        "alice@sender.test",
        &address,
        &message("alice@sender.test", "p1@sender.test", ""),
    )
    .await;
    sink.first().await;
    let json = reply_when(&service, &id, |json| json["reply"]["state"] == "sent").await;
    let session_id = json["reply"]["attempts"][0]["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the attempt links to its session: {json:#}"))
        .to_owned();
    for path in [
        "/api/v1/sessions",
        "/api/v1/sessions?direction=out",
        "/logs",
        "/logs?direction=out",
        "/logs/raw",
    ] {
        let shown = service.get_text(path).await;
        assert!(!shown.contains(&session_id), "{path}: {shown}");
        assert!(!shown.contains("out →</span>"), "{path}: {shown}");
        assert!(!shown.contains(&id), "{path}: {shown}");
    }
    let page = service.get_text(&format!("/r/{id}")).await;
    assert!(
        page.contains(&format!("href=\"/logs/{session_id}\"")),
        "{page}"
    );
    let session = service.get_text(&format!("/logs/{session_id}")).await;
    assert!(
        session.contains("RCPT TO:&#60;alice@sender.test&#62;"),
        "{session}"
    );
    assert!(session.contains("delivered"), "{session}");
    assert!(
        !session.contains(&id),
        "no link back to the private result: {session}"
    );
}
