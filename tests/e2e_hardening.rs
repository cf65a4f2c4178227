//! The real `authcheck serve` against hostile input, hostile DNS and load: malformed and
//! oversized messages are stored with a report (or refused with the proper reply), no address
//! form relays to another domain, a session stuck on a silent nameserver does not hold up the
//! others, 500 concurrent connections are all served and stored, and idle, slow or greedy
//! clients lose their slot rather than take the service's, and a large retention purge does not
//! keep messages from being stored.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use authcheck_testdns::{Behaviour, TestDns};
use authcheck_testkit::{SignOptions, TestKey, message, publish_keys, sign};
use support::{RawSmtp, Reply, Service, ServiceOptions, dot_stuffed};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Every verdict the tester can show (README, "The verdicts").
const VERDICTS: [&str; 16] = [
    "|OK| spf-pass",
    "|~OK| spf-pass",
    "!! spf-diff !!",
    "!! spf-fail !!",
    "!! spf-softfail !!",
    "!! spf-neutral !!",
    "!! spf-none !!",
    "!! spf-permerror !!",
    "!! spf-temperror !!",
    "|OK| dkim-pass",
    "|~OK| dkim-pass",
    "!! dkim-diff !!",
    "!! dkim-none !!",
    "!! dkim-fail !!",
    "!! dkim-invalid !!",
    "!! dkim-temperror !!",
];

/// `pass.test` authorises every loopback address; `silent.test` never answers.
/// The 500-connection test runs alone: it shows that the service serves every one of them, and
/// the other tests' services competing for the same two cores at that moment (starving its
/// sessions for many seconds) would test this machine rather than the service. Every other test
/// holds the read side.
static LOAD_TEST: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    dns.add_txt("pass.test", "v=spf1 ip4:127.0.0.0/8 -all");
    dns.add_txt("helo.test", "v=spf1 ip4:127.0.0.0/8 -all");
    publish_keys(&dns, "pass.test");
    for name in [
        "silent.test",
        "_dmarc.silent.test",
        "rsa2048._domainkey.silent.test",
    ] {
        dns.set_behaviour(name, Behaviour::Timeout);
    }
    dns
}

/// A message with this header block and body, joined by an empty line.
fn raw(header: &str, body: &str) -> Vec<u8> {
    format!("{header}\r\n{body}").into_bytes()
}

fn plain() -> Vec<u8> {
    message("a@pass.test", "Edge", "Hello.\r\n")
}

/// Checks a stored result through the API and its page.
async fn assert_stored(service: &Service, reply: &Reply, case: &str) -> serde_json::Value {
    assert_eq!(reply.code, 250, "{case}: {reply:?}");
    let stored = reply.stored();
    assert_eq!(stored.len(), 1, "{case}: {reply:?}");
    let id = &stored[0].0;
    let result = service.get_json(&format!("/api/v1/results/{id}")).await;
    let verdict = result["verdict"].as_str().unwrap_or_default();
    assert!(VERDICTS.contains(&verdict), "{case}: verdict {verdict:?}");
    let page = service.get(&format!("/r/{id}")).await;
    assert_eq!(page.status(), 200, "{case}: /r/{id}");
    result
}

/// MIME parts nested `depth` levels deep.
fn nested_mime(depth: usize) -> Vec<u8> {
    let mut body = String::from("innermost\r\n");
    for level in (0..depth).rev() {
        body = format!(
            "--b{level}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n{body}\r\n--b{level}--\r\n",
            level + 1
        );
    }
    raw(
        "From: a@pass.test\r\nSubject: Nested\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n",
        &body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_case_messages_are_stored_with_a_report() {
    let _beside_others = LOAD_TEST.read().await;
    let dns = zone().await;
    let service = Service::start(&dns).await;

    let mut thousand_fields = String::from("From: a@pass.test\r\nSubject: Many fields\r\n");
    for i in 0..1000 {
        thousand_fields.push_str(&format!("X-Field-{i}: value {i}\r\n"));
    }
    let invalid_utf8 =
        b"From: a@pass.test\r\nSubject: caf\xe9 \xff\xfe na\xc3\xafve\r\nX-Bin: \x80\x81\r\n\r\nbody \xff\r\n".to_vec();
    let signed = sign(&plain(), &SignOptions::new("pass.test", TestKey::Rsa2048));
    let huge_signature = [
        format!(
            "DKIM-Signature: v=1; a=rsa-sha256; d=pass.test; s=rsa2048; z={}\r\n",
            "A".repeat(100 * 1024)
        )
        .into_bytes(),
        signed.clone(),
    ]
    .concat();
    let mut five_hundred_signatures = Vec::new();
    let signature_field_end = signed.windows(3).position(|w| w == b"\r\nF").unwrap() + 2;
    for _ in 0..499 {
        five_hundred_signatures.extend_from_slice(&signed[..signature_field_end]);
    }
    five_hundred_signatures.extend_from_slice(&signed);

    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("no header fields", "spf", raw("", "Only a body.\r\n")),
        (
            "no body",
            "spf",
            b"From: a@pass.test\r\nSubject: No body\r\n".to_vec(),
        ),
        ("an empty message", "spf", Vec::new()),
        (
            "8-bit and invalid UTF-8 in header fields",
            "spf",
            invalid_utf8,
        ),
        (
            "1,000 header fields",
            "spf",
            raw(&thousand_fields, "Body.\r\n"),
        ),
        (
            "a body line of 100,000 bytes",
            "spf",
            raw(
                "From: a@pass.test\r\nSubject: Long line\r\n",
                &format!("{}\r\n", "x".repeat(100_000)),
            ),
        ),
        (
            "a header line of 100,000 bytes",
            "spf",
            raw(
                &format!("From: a@pass.test\r\nSubject: {}\r\n", "y".repeat(100_000)),
                "Body.\r\n",
            ),
        ),
        ("MIME nested 200 levels deep", "spf", nested_mime(200)),
        ("a DKIM-Signature of 100 KB", "dkim", huge_signature),
        ("500 DKIM-Signature fields", "dkim", five_hundred_signatures),
        (
            "bare LF line endings",
            "spf",
            b"From: a@pass.test\nSubject: Bare LF\n\nline one\nline two\n".to_vec(),
        ),
        (
            "NUL bytes",
            "spf",
            b"From: a@pass.test\r\nSubject: nul\0here\r\nX-Nul: \0\0\r\n\r\nbody\0body\r\n"
                .to_vec(),
        ),
    ];
    for (case, mailbox, message) in &cases {
        let recipient = format!("{mailbox}@tester.test");
        let reply =
            support::send(&service, "helo.test", "a@pass.test", &[&recipient], message).await;
        let result = assert_stored(&service, &reply, case).await;
        assert_eq!(result["mailbox"], *mailbox, "{case}");
        // Stored byte for byte, as sent (DATA needs the message to end with CRLF).
        let raw = service
            .get(&format!("/r/{}/raw", result["id"].as_str().unwrap()))
            .await;
        let raw = raw.bytes().await.expect("the raw message");
        let mut sent = message.clone();
        if !sent.ends_with(b"\r\n") {
            sent.extend_from_slice(b"\r\n");
        }
        assert!(
            raw.as_ref() == sent.as_slice(),
            "{case}: the stored message differs from the one sent"
        );
        match *case {
            "a DKIM-Signature of 100 KB" => {
                assert_eq!(
                    result["dkim"][0]["result"], "invalid",
                    "{case}: {:#}",
                    result["dkim"][0]["reason"]
                );
                assert_eq!(
                    result["verdict"], "|OK| dkim-pass",
                    "{case}: the real signature still counts"
                );
            }
            "500 DKIM-Signature fields" => {
                // The report details the first 50 and counts the rest (issue 9).
                let signatures = result["dkim"].as_array().unwrap();
                assert_eq!(signatures.len(), 50, "{case}");
                assert_eq!(result["dkim_not_listed"], 450, "{case}");
                assert_eq!(signatures[0]["result"], "pass", "{case}");
                assert_eq!(
                    signatures[49]["reason_code"], "too_many_signatures",
                    "{case}"
                );
                assert_eq!(result["verdict"], "|OK| dkim-pass", "{case}");
            }
            "no header fields" | "an empty message" => {
                assert_eq!(
                    result["verdict"], "!! spf-diff !!",
                    "{case}: no From domain to align with"
                );
            }
            _ => assert_eq!(result["verdict"], "|OK| spf-pass", "{case}"),
        }
    }
}

#[tokio::test]
async fn no_address_form_relays_to_another_domain() {
    let _beside_others = LOAD_TEST.read().await;
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let relays = [
        "@a.example,@b.example:spf@tester.test",
        "@tester.test:spf@other.test",
        "@other.test:spf@tester.test",
        "spf%other.test@tester.test",
        "spf@other.test%tester.test",
        "other.test!spf@tester.test",
        "spf!other.test@tester.test",
        "\"spf@other.test\"@tester.test",
        "\"spf\"@tester.test",
        "\"spf%other.test\"@tester.test",
        "spf@[127.0.0.1]",
        "spf@[IPv6:::1]",
        "SPF@OTHER.TEST",
        "spf@TESTER.TEST.OTHER.TEST",
        "spf@sub.tester.test",
        "spf@tester.test.",
        "spf@tester.test@other.test",
        "spf@other.test",
        "dkim@other.test",
    ];
    for relay in relays {
        let (mut smtp, greeting) = RawSmtp::connect(service.smtp).await;
        assert_eq!(greeting.code, 220);
        assert_eq!(smtp.command("EHLO helo.test").await.code, 250);
        assert_eq!(smtp.command("MAIL FROM:<a@pass.test>").await.code, 250);
        let reply = smtp.command(&format!("RCPT TO:<{relay}>")).await;
        assert_eq!(reply.code, 550, "RCPT TO:<{relay}>: {reply:?}");
        assert!(
            reply.text().starts_with("5.7.1"),
            "RCPT TO:<{relay}>: {reply:?}"
        );
        let data = smtp.command("DATA").await;
        assert_eq!(data.code / 100, 5, "DATA after a refused relay: {data:?}");
        let _ = smtp.command("QUIT").await;
    }
    let list = service.get_json("/api/v1/results").await;
    assert_eq!(
        list["results"].as_array().unwrap().len(),
        0,
        "nothing was accepted"
    );
}

/// Sends `message` up to the end of DATA and returns the final reply and how long it took
/// from the end of the data to the reply.
async fn timed_send(service: &Service, mail_from: &str, message: &[u8]) -> (Reply, Duration) {
    let (mut smtp, _) = RawSmtp::connect(service.smtp).await;
    assert_eq!(smtp.command("EHLO helo.test").await.code, 250);
    assert_eq!(
        smtp.command(&format!("MAIL FROM:<{mail_from}>")).await.code,
        250
    );
    assert_eq!(smtp.command("RCPT TO:<spf@tester.test>").await.code, 250);
    assert_eq!(smtp.command("DATA").await.code, 354);
    let started = Instant::now();
    smtp.write(&dot_stuffed(message)).await;
    let reply = smtp.read_reply().await;
    (reply, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stuck_on_a_silent_nameserver_does_not_hold_up_another() {
    let _beside_others = LOAD_TEST.read().await;
    let dns = zone().await;
    let service = Service::start(&dns).await;

    let stuck_message = sign(
        &message("a@silent.test", "Stuck", "Hello.\r\n"),
        &SignOptions::new("silent.test", TestKey::Rsa2048),
    );
    let stuck = async {
        let (reply, took) = timed_send(&service, "a@silent.test", &stuck_message).await;
        (reply, took, Instant::now())
    };
    let prompt = async {
        // Let the stuck session reach its DNS lookups first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (reply, took) = timed_send(&service, "a@pass.test", &plain()).await;
        (reply, took, Instant::now())
    };
    let ((stuck_reply, stuck_took, stuck_done), (prompt_reply, prompt_took, prompt_done)) =
        tokio::join!(stuck, prompt);

    let stuck_result = assert_stored(&service, &stuck_reply, "silent nameserver").await;
    assert_eq!(stuck_result["verdict"], "!! spf-temperror !!");
    let prompt_result = assert_stored(&service, &prompt_reply, "normal zone").await;
    assert_eq!(prompt_result["verdict"], "|OK| spf-pass");
    println!("stuck session: {stuck_took:?}; the other session: {prompt_took:?}");
    assert!(
        prompt_done < stuck_done,
        "the normal message waited for the stuck one"
    );
    assert!(
        prompt_took < stuck_took / 4,
        "the normal message took {prompt_took:?} while another session waited {stuck_took:?} on DNS"
    );
}

/// A client socket bound to `source` (any port) and connected to `server`.
async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    socket.connect(server).await
}

/// Reads one whole reply (all its lines) as text; None if the connection closed first.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Option<String> {
    read_reply_within(reader, support::PATIENCE).await
}

/// Like [`read_reply`], giving up after `patience` (None then too).
async fn read_reply_within<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    patience: Duration,
) -> Option<String> {
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(patience, reader.read_line(&mut line)).await;
        match read {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
        let last = line.as_bytes().get(3) != Some(&b'-');
        reply.push_str(&line);
        if last {
            return Some(reply);
        }
    }
}

/// How many completed handshakes the kernel queues for a listener at most
/// (`net.core.somaxconn`; 4096 by default since Linux 5.4, 128 before).
fn kernel_accept_queue_limit() -> usize {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(128)
}

/// The highest resident set size of the service process, from /proc.
fn service_peak_memory(service: &Service) -> Option<String> {
    let marker = service.data_dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("serve") && cmdline.contains(&marker) {
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            return status
                .lines()
                .find(|line| line.starts_with("VmHWM"))
                .map(|line| {
                    line.split_whitespace()
                        .skip(1)
                        .collect::<Vec<_>>()
                        .join(" ")
                });
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_connections_are_all_served_and_stored() {
    let _alone = LOAD_TEST.write().await;
    const CONNECTIONS: usize = 500;
    const SOURCES: u8 = 20;
    // 500 sessions verified and stored at once on a small, busy machine can take a while;
    // the test is about every one being served, not about speed.
    const LOAD_PATIENCE: Duration = Duration::from_secs(120);
    let dns = zone().await;
    // 25 messages per source address stay under the client rate limit; all 500 come from
    // one sender domain, which the test is not about.
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec!["--messages-per-sender-domain".into(), "0".into()];
    let service = Service::start_with(options).await;
    let smtp = service.smtp;
    let body = "A message sent under load.\r\n".repeat(20);

    // Every connection is opened and greeted before any sends, so all 500 are held at once.
    let all_connected = std::sync::Arc::new(tokio::sync::Barrier::new(CONNECTIONS));
    // The service asks for a deep accept queue, but the kernel caps it at its own setting;
    // handshakes beyond that are dropped silently (SYN cookies) and the client would wait
    // for a greeting forever. So no more are left waiting than the kernel allows.
    let connecting = std::sync::Arc::new(tokio::sync::Semaphore::new(
        (kernel_accept_queue_limit() / 2).clamp(1, CONNECTIONS),
    ));
    let mut clients = tokio::task::JoinSet::new();
    for n in 0..CONNECTIONS {
        let source = Ipv4Addr::new(127, 0, 0, 2 + (n % SOURCES as usize) as u8);
        let all_connected = all_connected.clone();
        let connecting = connecting.clone();
        let message = message(&format!("client{n}@pass.test"), &format!("Load {n}"), &body);
        clients.spawn(async move {
            let waiting_for_greeting = connecting.acquire_owned().await.expect("semaphore");
            let stream = connect_from(source, smtp).await.expect("connect");
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let greeting = read_reply_within(&mut read, LOAD_PATIENCE).await;
            drop(waiting_for_greeting);
            all_connected.wait().await;
            let greeting = match greeting {
                Some(greeting) if greeting.starts_with("220") => greeting,
                other => return (n, format!("no greeting: {other:?}")),
            };
            let commands = format!(
                "EHLO client{n}.helo.test\r\nMAIL FROM:<client{n}@pass.test>\r\n\
                 RCPT TO:<spf@tester.test>\r\nDATA\r\n"
            );
            write
                .write_all(commands.as_bytes())
                .await
                .expect("send commands");
            for (command, expected) in ["EHLO", "MAIL", "RCPT", "DATA"]
                .into_iter()
                .zip(["250", "250", "250", "354"])
            {
                let reply = read_reply_within(&mut read, LOAD_PATIENCE).await;
                if !reply
                    .as_deref()
                    .is_some_and(|reply| reply.starts_with(expected))
                {
                    return (n, format!("{command}: {reply:?} after {greeting:?}"));
                }
            }
            write
                .write_all(&dot_stuffed(&message))
                .await
                .expect("send the message");
            let reply = read_reply_within(&mut read, LOAD_PATIENCE)
                .await
                .unwrap_or_else(|| "no final reply".into());
            let _ = write.write_all(b"QUIT\r\n").await;
            (n, reply)
        });
    }
    let mut stored_ids = Vec::new();
    let mut refused = Vec::new();
    while let Some(finished) = tokio::time::timeout(LOAD_PATIENCE * 2, clients.join_next())
        .await
        .expect("the clients finished in time")
    {
        let (n, reply) = finished.expect("client task");
        match parse_reply(&reply) {
            Some(parsed) if parsed.code == 250 => {
                stored_ids.push((n, parsed.stored()[0].0.clone()))
            }
            _ => refused.push((n, reply)),
        }
    }
    println!(
        "{} of {CONNECTIONS} messages stored; service VmHWM after the load: {}",
        stored_ids.len(),
        service_peak_memory(&service).unwrap_or_else(|| "unknown".into())
    );
    assert!(
        refused.is_empty(),
        "refused under load: {:?}",
        &refused[..refused.len().min(5)]
    );

    // Every 250 is a stored result, readable through the API with its own subject.
    let http = support::http();
    for chunk in stored_ids.chunks(50) {
        let fetches = chunk.iter().map(|(n, id)| {
            let http = http.clone();
            let url = service.url(&format!("/api/v1/results/{id}"));
            async move {
                let result: serde_json::Value = http
                    .get(url)
                    .send()
                    .await
                    .expect("GET")
                    .json()
                    .await
                    .expect("JSON");
                assert_eq!(result["subject"], format!("Load {n}"), "{result:#}");
                assert_eq!(result["verdict"], "|OK| spf-pass");
            }
        });
        futures::future::join_all(fetches).await;
    }
}

/// A reply read by [`read_reply`], in the shared form.
fn parse_reply(text: &str) -> Option<Reply> {
    let first = text.lines().next()?;
    let code = first.get(..3)?.parse().ok()?;
    let lines = text
        .lines()
        .map(|line| line.get(4..).unwrap_or("").to_string())
        .collect();
    Some(Reply { code, lines })
}

#[tokio::test]
async fn connections_beyond_the_limit_get_421_at_once() {
    let _beside_others = LOAD_TEST.read().await;
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec![
        "--max-connections".into(),
        "5".into(),
        "--command-timeout".into(),
        "20s".into(),
    ];
    let service = Service::start_with(options).await;

    let mut held = Vec::new();
    for _ in 0..5 {
        let (smtp, greeting) = RawSmtp::connect(service.smtp).await;
        assert_eq!(greeting.code, 220);
        held.push(smtp);
    }
    for _ in 0..3 {
        let started = Instant::now();
        let (mut extra, reply) = RawSmtp::connect(service.smtp).await;
        let waited = started.elapsed();
        assert_eq!(reply.code, 421, "{reply:?}");
        assert!(reply.text().contains("too many connections"), "{reply:?}");
        assert!(extra.is_closed().await, "the refused connection is closed");
        assert!(
            waited < Duration::from_secs(5),
            "the 421 took {waited:?}; it must not wait for a slot"
        );
    }
    // A slot given back is usable again.
    let mut first = held.remove(0);
    assert_eq!(first.command("QUIT").await.code, 221);
    assert!(first.is_closed().await);
    let admitted = support::eventually(Duration::from_secs(5), || async {
        let (_smtp, greeting) = RawSmtp::connect(service.smtp).await;
        (greeting.code == 220).then_some(())
    })
    .await;
    assert!(
        admitted.is_some(),
        "the freed slot was not given to a new client"
    );
}

#[tokio::test]
async fn idle_and_slow_clients_time_out_and_free_their_slot() {
    let _beside_others = LOAD_TEST.read().await;
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec![
        "--max-connections".into(),
        "2".into(),
        "--command-timeout".into(),
        "1s".into(),
    ];
    let service = Service::start_with(options).await;

    let (mut idle, greeting) = RawSmtp::connect(service.smtp).await;
    assert_eq!(greeting.code, 220);
    let (slow_read, mut slow_write) = TcpStream::connect(service.smtp).await.unwrap().into_split();
    let mut slow_read = BufReader::new(slow_read);
    let greeting = read_reply(&mut slow_read).await.unwrap_or_default();
    assert!(greeting.starts_with("220"), "{greeting:?}");
    let (_, refused) = RawSmtp::connect(service.smtp).await;
    assert_eq!(refused.code, 421, "both slots are taken: {refused:?}");

    // The slow client sends a command one byte every 1.5 s, slower than the timeout, until
    // the server hangs up.
    let slow_writer = tokio::spawn(async move {
        for byte in b"EHLO slow.test\r\n" {
            if slow_write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    });
    let (idle_reply, slow_reply) = tokio::join!(idle.try_read_reply(), read_reply(&mut slow_read));
    slow_writer.abort();
    let idle_reply = idle_reply.expect("the idle client is told why it is closed");
    assert_eq!(idle_reply.code, 421, "{idle_reply:?}");
    assert!(idle_reply.text().contains("timeout"), "{idle_reply:?}");
    assert!(idle.is_closed().await);
    let slow_reply = slow_reply.expect("the slow client is told why it is closed");
    assert!(slow_reply.starts_with("421 4.4.2"), "{slow_reply:?}");

    // Both slots are free again.
    let mut admitted = Vec::new();
    for _ in 0..2 {
        let client = support::eventually(Duration::from_secs(5), || async {
            let (smtp, greeting) = RawSmtp::connect(service.smtp).await;
            (greeting.code == 220).then_some(smtp)
        })
        .await;
        admitted.push(client.expect("a timed-out client's slot was not freed"));
    }
}

#[tokio::test]
async fn a_command_trickled_a_byte_at_a_time_is_timed_out() {
    let _beside_others = LOAD_TEST.read().await;
    const TRICKLE_FOR: Duration = Duration::from_secs(10);
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec!["--command-timeout".into(), "1s".into()];
    let service = Service::start_with(options).await;

    let (read, mut write) = TcpStream::connect(service.smtp).await.unwrap().into_split();
    let mut read = BufReader::new(read);
    let greeting = read_reply(&mut read).await.unwrap_or_default();
    assert!(greeting.starts_with("220"), "{greeting:?}");
    // One byte every 300 ms, well inside the timeout each time, of a line that never ends.
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        let mut line = b"EHLO ".iter().chain(std::iter::repeat(&b'x'));
        while started.elapsed() < TRICKLE_FOR {
            let byte = *line.next().unwrap();
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let reply = read_reply(&mut read).await.unwrap_or_default();
    let waited = started.elapsed();
    trickle.abort();
    assert!(reply.starts_with("421 4.4.2"), "{reply:?}");
    assert!(
        waited < TRICKLE_FOR,
        "the slot was held for {waited:?}, as long as the client kept trickling"
    );
}

#[tokio::test]
async fn one_client_address_cannot_take_every_slot() {
    let _beside_others = LOAD_TEST.read().await;
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec![
        "--max-connections".into(),
        "10".into(),
        "--max-connections-per-ip".into(),
        "3".into(),
    ];
    let service = Service::start_with(options).await;
    let greedy = Ipv4Addr::new(127, 0, 0, 2);

    let mut held = Vec::new();
    for _ in 0..3 {
        let stream = connect_from(greedy, service.smtp).await.unwrap();
        let mut reader = BufReader::new(stream);
        let greeting = read_reply(&mut reader).await.unwrap_or_default();
        assert!(greeting.starts_with("220"), "{greeting:?}");
        held.push(reader);
    }
    let stream = connect_from(greedy, service.smtp).await.unwrap();
    let mut reader = BufReader::new(stream);
    let refused = read_reply(&mut reader).await.unwrap_or_default();
    assert!(
        refused.starts_with("421 4.7.0 too many connections from your address"),
        "{refused:?}"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(support::PATIENCE, reader.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the refused connection is closed"
    );

    let other = connect_from(Ipv4Addr::new(127, 0, 0, 3), service.smtp)
        .await
        .unwrap();
    let mut reader = BufReader::new(other);
    let greeting = read_reply(&mut reader).await.unwrap_or_default();
    assert!(
        greeting.starts_with("220"),
        "another address is still served: {greeting:?}"
    );
    let _ = reader.get_mut().write_all(b"QUIT\r\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_envelope_text_is_refused_and_never_reaches_the_log_raw() {
    let _beside_others = LOAD_TEST.read().await;
    let dns = zone().await;
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("stderr.log");
    let mut options = ServiceOptions::new(&dns);
    options.env = vec![("RUST_LOG".into(), "info".into())];
    options.stderr_to = Some(log.clone());
    let service = Service::start_with(options).await;

    // Port checks and load balancer probes: connect, then reset without reading anything.
    for _ in 0..5 {
        let probe = TcpStream::connect(service.smtp).await.unwrap();
        // A zero linger makes the drop send a reset at once, as such probes do; it does not block.
        #[allow(deprecated)]
        probe.set_linger(Some(Duration::ZERO)).unwrap();
        drop(probe);
    }

    let (mut smtp, _) = RawSmtp::connect(service.smtp).await;
    let control = |command: &str| format!("5.5.2 control characters are not allowed in {command}");
    let reply = smtp.command("EHLO evil\x1b[2J\x1b]0;owned\x07.test").await;
    assert_eq!((reply.code, reply.text()), (501, control("EHLO")));
    assert_eq!(smtp.command("EHLO helo.test").await.code, 250);
    let reply = smtp.command("MAIL FROM:<a\x1b[31m@pass.test>").await;
    assert_eq!((reply.code, reply.text()), (501, control("MAIL")));
    assert_eq!(smtp.command("MAIL FROM:<a@pass.test>").await.code, 250);
    // A bare CR would let a tag rewrite a log line on a terminal.
    let reply = smtp
        .command("RCPT TO:<spf+a\rINFO forged line@tester.test>")
        .await;
    assert_eq!((reply.code, reply.text()), (501, control("RCPT")));
    let reply = smtp.command("RCPT TO:<spf+caf\u{e9}@tester.test>").await;
    assert_eq!(reply.code, 501, "{reply:?}");
    assert_eq!(
        smtp.command("RCPT TO:<spf+run-1@tester.test>").await.code,
        250
    );
    assert_eq!(smtp.command("QUIT").await.code, 221);
    service.stop().await;

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\x1b'), "a raw escape in the log:\n{text}");
    assert!(!text.contains("forged"), "client text in the log:\n{text}");
    let alarming: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .filter(|line| line.contains("127.0.0.1"))
        .collect();
    assert!(
        alarming.is_empty(),
        "probes and refused commands are ordinary traffic: {alarming:#?}"
    );
}

/// Sends `message` from `mail_from` to spf@ on a fresh connection and returns the final reply
/// and the instant it came.
async fn send_until_reply(service: &Service, mail_from: &str, message: &[u8]) -> (Reply, Instant) {
    let (reply, _) = timed_send(service, mail_from, message).await;
    (reply, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_past_the_verification_deadline_get_451_while_others_are_served() {
    let _beside_others = LOAD_TEST.read().await;
    let dns = zone().await;
    let deadline = Duration::from_secs(4);
    // The resolver gives up on a silent nameserver after 10 s (two tries of 5 s): a reply
    // before that can only come from the deadline.
    let resolver_gives_up = Duration::from_secs(10);
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec!["--verify-timeout".into(), "4s".into()];
    let service = Service::start_with(options).await;

    // Both worst-case messages wait on a nameserver that never answers: SPF, DMARC and the
    // DKIM key (the resolver alone would wait 10 s per name, the checks 20 s).
    let hostile = sign(
        &message("a@silent.test", "Stuck", "Hello.\r\n"),
        &SignOptions::new("silent.test", TestKey::Rsa2048),
    );
    let started = Instant::now();
    let first = send_until_reply(&service, "a@silent.test", &hostile);
    let second = send_until_reply(&service, "a@silent.test", &hostile);
    let meanwhile = async {
        // Let both hostile messages reach their DNS lookups first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (greeting_smtp, greeting) = RawSmtp::connect(service.smtp).await;
        drop(greeting_smtp);
        let health = service.get("/healthz").await.status();
        let (normal, normal_took) = timed_send(&service, "a@pass.test", &plain()).await;
        (greeting, health, normal, normal_took, Instant::now())
    };
    let (
        (first, first_done),
        (second, second_done),
        (greeting, health, normal, normal_took, normal_done),
    ) = tokio::join!(first, second, meanwhile);

    assert_eq!(greeting.code, 220, "greeting while verifying: {greeting:?}");
    assert_eq!(health, 200, "/healthz while verifying");
    let normal_result =
        assert_stored(&service, &normal, "normal message beside hostile ones").await;
    assert_eq!(normal_result["verdict"], "|OK| spf-pass");
    println!(
        "normal message: {normal_took:?}; hostile ones answered after {:?} and {:?}",
        first_done - started,
        second_done - started
    );
    assert!(
        normal_done < first_done && normal_done < second_done,
        "the normal message waited for the hostile ones"
    );
    for (reply, done) in [(&first, first_done), (&second, second_done)] {
        assert_eq!(reply.code, 451, "{reply:?}");
        assert!(reply.text().contains("4.4.3"), "{reply:?}");
        assert!(reply.text().contains("try again later"), "{reply:?}");
        let took = done - started;
        assert!(took >= deadline, "answered before the deadline: {took:?}");
        assert!(
            took < resolver_gives_up,
            "the deadline did not cut the checks short: {took:?}"
        );
    }
    // Nothing was stored for the hostile messages: the list holds the normal one alone.
    let listed = service
        .get_json("/api/v1/results?mailbox=spf&limit=10")
        .await;
    let listed = listed["results"]
        .as_array()
        .expect("a list of results")
        .len();
    assert_eq!(listed, 1, "only the normal message is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_free_space_floor_messages_get_452_and_an_error_is_logged() {
    let _beside_others = LOAD_TEST.read().await;
    let dns = zone().await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut options = ServiceOptions::new(&dns);
    // The floor watches the SQLite database's disk (PostgreSQL's disk is the server's).
    options.database_url = None;
    // More free space than any test machine has.
    options.extra_args = vec!["--min-free-disk".into(), "1000000G".into()];
    options.stderr_to = Some(log.path().to_owned());
    let service = Service::start_with(options).await;

    let (reply, _) = timed_send(&service, "a@pass.test", &plain()).await;
    assert_eq!(reply.code, 452, "{reply:?}");
    assert!(reply.text().contains("4.3.1"), "{reply:?}");
    let listed = service.get_json("/api/v1/results?limit=10").await;
    assert_eq!(listed["results"].as_array().map(Vec::len), Some(0));
    let log = std::fs::read_to_string(log.path()).unwrap();
    assert!(
        log.lines()
            .any(|line| line.contains("ERROR") && line.contains("min_free_disk")),
        "no ERROR line naming min_free_disk in the log:\n{log}"
    );
}

/// Rows the purge must delete in [`a_large_purge_while_messages_arrive_gives_no_451`].
const EXPIRED_RESULTS: usize = 100_000;

/// A result received in 2020, long past any retention.
fn expired_result() -> authcheck_store::NewResult {
    let empty_json = || serde_json::value::to_raw_value(&serde_json::json!({})).unwrap();
    authcheck_store::NewResult {
        mailbox: authcheck_store::Mailbox::Spf,
        received_at: chrono::DateTime::from_timestamp(1_577_880_000, 0).unwrap(),
        session: authcheck_store::SessionFacts {
            client_ip: "192.0.2.10".to_owned(),
            client_port: 40001,
            client_ptr: None,
            client_ptr_confirmed: false,
            helo: "mail.example.net".to_owned(),
            tls_version: None,
            tls_cipher: None,
            mail_from: "old@example.net".to_owned(),
            recipient: "spf@tester.test".to_owned(),
            size: 42,
        },
        header_from: Some("old@example.net".to_owned()),
        subject: Some("expired".to_owned()),
        verdict: "|OK| spf-pass".to_owned(),
        prefixed_subject: "|OK| spf-pass expired".to_owned(),
        report: empty_json(),
        report_summary: empty_json(),
        raw_message: b"Subject: expired\r\n\r\nold\r\n".to_vec().into(),
        private_test: None,
    }
}

/// The service starts with 100,000 expired results, so its first retention purge is large;
/// messages sent over SMTP while it runs all get their 250 (never the 451 of a store held by
/// the purge), and the purge ends with every expired result gone and every new one kept.
#[tokio::test]
async fn a_large_purge_while_messages_arrive_gives_no_451() {
    let _beside_others = LOAD_TEST.read().await;
    let dns = zone().await;
    let data = tempfile::tempdir().unwrap();
    let mut options = ServiceOptions::new(&dns);
    options.data_dir = Some(data.path().to_path_buf());
    options.extra_args = [
        "--retention",
        "1d",
        "--messages-per-client",
        "0",
        "--messages-per-sender-domain",
        "0",
    ]
    .map(String::from)
    .to_vec();
    let database_url = options
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/authcheck.db", data.path().display()));
    {
        let store = authcheck_store::open(&database_url).await.unwrap();
        for _ in 0..EXPIRED_RESULTS / 1_000 {
            let batch = (0..1_000).map(|_| expired_result()).collect();
            store.insert(batch).await.expect("insert expired results");
        }
    }
    let service = Service::start_with(options).await;

    let mut stored = Vec::new();
    let mut sent_during_the_purge = 0;
    for n in 0..500 {
        let reply = support::send(
            &service,
            "helo.test",
            "a@pass.test",
            &["spf@tester.test"],
            &plain(),
        )
        .await;
        assert_eq!(reply.code, 250, "message {n} during the purge: {reply:?}");
        stored.push(reply.stored()[0].0.clone());
        // Listed before the first new result: what is left of the expired ones.
        let older = service
            .get_json(&format!(
                "/api/v1/results?mailbox=spf&limit=1&before={}",
                stored[0]
            ))
            .await;
        if older["results"].as_array().unwrap().is_empty() {
            break;
        }
        sent_during_the_purge += 1;
    }
    println!("{sent_during_the_purge} messages stored while the purge ran");
    assert!(
        sent_during_the_purge > 0,
        "the purge was over before the first message: the test proves nothing"
    );
    let older = service
        .get_json(&format!(
            "/api/v1/results?mailbox=spf&limit=1&before={}",
            stored[0]
        ))
        .await;
    assert_eq!(
        older["results"],
        serde_json::json!([]),
        "expired results left"
    );
    // The oldest new result is the first a purge deleting too much would take.
    let first = service
        .get_json(&format!("/api/v1/results/{}", stored[0]))
        .await;
    assert_eq!(first["id"], stored[0].as_str(), "new results kept");
}
