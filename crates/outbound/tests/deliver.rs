//! Delivery through real SMTP on loopback, to authcheck's own listener: a message signed with a
//! key made here arrives byte for byte over STARTTLS and its signature verifies against the
//! published record; a closed port, a refused recipient and a server without STARTTLS are each
//! reported with their step and reply. The key file is made once, kept private and read back.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authcheck_outbound::{Delivered, KeyOrigin, Outgoing, Server, SigningKey, Step, deliver};
use authcheck_smtp::{
    Accepted, Delivery, DeliveryError, Destination, Envelope, SmtpConfig, self_signed_tls,
};
use authcheck_testdns::TestDns;
use authcheck_verifier::{
    BodyParameter, DkimResult, DnsConfig, MessageInput, Verifier, VerifierConfig,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const PATIENCE: Duration = Duration::from_secs(10);

/// Keeps what it is given.
#[derive(Default)]
struct Sink {
    received: Mutex<Vec<(Envelope, Vec<u8>)>>,
}

impl Delivery for Sink {
    const COPIES_WHILE_DELIVERING: usize = 0;

    async fn deliver(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<Vec<Accepted>, DeliveryError> {
        // Every recipient in these tests is a tester mailbox.
        let accepted = envelope
            .recipients
            .iter()
            .filter_map(|recipient| match recipient.destination {
                Destination::Test(mailbox) => Some(Accepted::Result {
                    mailbox,
                    id: "sink-1".to_owned(),
                    url: "http://results.test/r/sink-1".to_owned(),
                }),
                Destination::Private(_) | Destination::Reports(_) => None,
            })
            .collect();
        self.received.lock().unwrap().push((envelope, message));
        Ok(accepted)
    }
}

/// authcheck's SMTP listener for `tester.test` on loopback, with STARTTLS when `tls`.
async fn listener(tls: bool) -> (Server, Arc<Sink>, oneshot::Sender<()>) {
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let config = SmtpConfig {
        hostname: "mx.tester.test".to_owned(),
        domains: vec!["tester.test".to_owned()],
        tls: tls.then(|| self_signed_tls("mx.tester.test").unwrap()),
        ..SmtpConfig::new(addr)
    };
    let sink = Arc::new(Sink::default());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(authcheck_smtp::run(tcp, config, sink.clone(), stopped));
    let server = Server {
        addr,
        name: "mx.tester.test".to_owned(),
    };
    (server, sink, stop)
}

fn letter() -> Vec<u8> {
    b"From: authcheck <check@tester.test>\r\n\
      To: spf@tester.test\r\n\
      Subject: self-check\r\n\
      Date: Mon, 30 Nov 2026 02:00:00 +0000\r\n\
      Message-ID: <self-check-1@tester.test>\r\n\
      \r\n\
      .a line that starts with a dot\r\n\
      and one more.\r\n"
        .to_vec()
}

async fn send(
    server: &Server,
    recipient: &str,
    message: &[u8],
) -> Result<Delivered, authcheck_outbound::Failure> {
    let recipients = [recipient.to_owned()];
    let outgoing = Outgoing {
        helo: "check.tester.test",
        mail_from: "check@tester.test",
        recipients: &recipients,
        message,
    };
    tokio::time::timeout(PATIENCE, deliver(server, &outgoing, Duration::from_secs(5)))
        .await
        .expect("delivery within patience")
}

#[tokio::test]
async fn a_signed_message_arrives_whole_over_starttls_and_its_signature_verifies() {
    let (server, sink, _stop) = listener(true).await;
    let key = SigningKey::generate().unwrap();
    let signed = key.sign(&letter(), "tester.test", "authcheck").unwrap();

    let delivered = send(&server, "spf@tester.test", &signed).await.unwrap();
    assert_eq!(delivered.tls.as_deref(), Some("TLSv1.3"));
    assert_eq!(delivered.reply.code, 250);
    assert!(
        delivered.reply.text.contains("sink-1"),
        "{}",
        delivered.reply
    );

    // Each step is in the transcript, with the server's reply.
    let steps: Vec<(&str, u16)> = delivered
        .transcript
        .exchanges
        .iter()
        .map(|exchange| (exchange.command.as_str(), exchange.code))
        .collect();
    let size = format!("(message, {} bytes)", signed.len());
    assert_eq!(
        steps,
        [
            ("(connect)", 220),
            ("EHLO check.tester.test", 250),
            ("STARTTLS", 220),
            ("(TLS handshake)", 0),
            ("EHLO check.tester.test", 250),
            ("MAIL FROM:<check@tester.test>", 250),
            ("RCPT TO:<spf@tester.test>", 250),
            ("DATA", 354),
            (size.as_str(), 250),
            ("QUIT", 221),
        ]
    );
    assert!(
        delivered.transcript.exchanges[3]
            .text
            .starts_with("TLSv1.3 TLS13_"),
        "{:?}",
        delivered.transcript.exchanges[3]
    );
    assert!(
        delivered.transcript.exchanges[1]
            .text
            .contains("offers STARTTLS")
    );

    let received = sink.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (envelope, message) = &received[0];
    assert_eq!(envelope.mail_from, "check@tester.test");
    assert_eq!(envelope.helo, "check.tester.test");
    assert!(envelope.tls.is_some(), "the listener saw STARTTLS");
    assert_eq!(message, &signed, "the dot-stuffed line arrives as written");

    // The receiving side's verifier finds the signature good with the published record.
    let dns = TestDns::start().await;
    dns.add_txt("authcheck._domainkey.tester.test", &key.dns_record());
    let verifier = Verifier::new(VerifierConfig::new(
        "tester.test",
        DnsConfig {
            servers: vec![dns.addr()],
            query_timeout: Duration::from_millis(500),
            attempts: 1,
            ..DnsConfig::default()
        },
    ))
    .unwrap();
    let report = verifier
        .verify(&MessageInput {
            client_ip: Some("127.0.0.1".parse().unwrap()),
            helo: "check.tester.test",
            mail_from: "check@tester.test",
            message,
            body: BodyParameter::Unknown,
        })
        .await;
    assert_eq!(report.dkim.len(), 1);
    assert_eq!(
        report.dkim[0].result,
        DkimResult::Pass,
        "{}",
        report.dkim[0].reason
    );
    assert_eq!(report.dkim[0].domain, "tester.test");
}

#[tokio::test]
async fn a_server_without_starttls_gets_the_message_in_clear_text() {
    let (server, sink, _stop) = listener(false).await;
    let delivered = send(&server, "dkim@tester.test", &letter()).await.unwrap();
    assert_eq!(delivered.tls, None);
    assert_eq!(sink.received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_recipient_is_a_permanent_failure_at_rcpt_to_with_the_reply() {
    let (server, sink, _stop) = listener(true).await;
    let failure = send(&server, "nobody@tester.test", &letter())
        .await
        .unwrap_err();
    assert_eq!(failure.step, Step::RcptTo);
    let last = failure.transcript.exchanges.last().unwrap();
    assert_eq!(last.code, 550, "the refusal ends the transcript: {last:?}");
    // The enhanced status code is kept apart from the text, as the session log shows it.
    let status = last.status.as_deref().unwrap_or_default();
    assert!(status.starts_with("5."), "{last:?}");
    assert!(!last.text.starts_with(status), "{last:?}");
    let reply = failure.reply.as_ref().expect("the refusal");
    assert_eq!(reply.code, 550, "{reply}");
    assert!(failure.is_permanent());
    assert_eq!(failure.tls.as_deref(), Some("TLSv1.3"));
    assert!(
        failure
            .to_string()
            .starts_with("RCPT TO failed: the server answered 550"),
        "{failure}"
    );
    assert!(sink.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_closed_port_is_a_temporary_failure_at_connect() {
    let closed: SocketAddr = {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        tcp.local_addr().unwrap()
    };
    let server = Server {
        addr: closed,
        name: "closed.tester.test".to_owned(),
    };
    let failure = send(&server, "spf@tester.test", &letter())
        .await
        .unwrap_err();
    assert_eq!(failure.step, Step::Connect);
    assert_eq!(failure.transcript.exchanges.len(), 1);
    assert_eq!(failure.transcript.exchanges[0].command, "(connect)");
    assert_eq!(failure.reply, None);
    assert!(!failure.is_permanent());
}

#[test]
fn the_key_file_is_made_once_private_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dkim.pem");
    let (made, origin) = SigningKey::load_or_generate(&path).unwrap();
    assert_eq!(origin, KeyOrigin::Generated);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner reads the key");
    }
    let (read, origin) = SigningKey::load_or_generate(&path).unwrap();
    assert_eq!(origin, KeyOrigin::Loaded);
    assert_eq!(read.dns_record(), made.dns_record());
    assert!(made.dns_record().starts_with("v=DKIM1; k=rsa; p=MII"));
    assert!(
        !format!("{made:?}").contains("PRIVATE"),
        "Debug never shows the private key"
    );

    std::fs::write(&path, "not a key").unwrap();
    let error = SigningKey::load_or_generate(&path).unwrap_err().to_string();
    assert!(error.contains("dkim.pem"), "{error}");
    assert!(error.contains("move it away"), "{error}");
}

fn smarthost_login() -> authcheck_outbound::Credentials {
    authcheck_outbound::Credentials {
        username: "authcheck".to_owned(),
        password: "s3cret".to_owned(),
    }
}

async fn send_authenticated(server: &Server) -> Result<Delivered, authcheck_outbound::Failure> {
    let recipients = ["dkim@tester.test".to_owned()];
    let message = letter();
    let outgoing = Outgoing {
        helo: "check.tester.test",
        mail_from: "",
        recipients: &recipients,
        message: &message,
    };
    let login = smarthost_login();
    // The system's roots: the listener's self-signed certificate is not among them.
    let tls = authcheck_outbound::SmarthostTls::new(None, false).unwrap();
    tokio::time::timeout(
        PATIENCE,
        authcheck_outbound::deliver_to_smarthost(
            server,
            &outgoing,
            Duration::from_secs(5),
            &tls,
            Some(&login),
        ),
    )
    .await
    .expect("delivery ends in time")
}

/// A smarthost password never goes in clear text: without STARTTLS the delivery stops there.
#[tokio::test]
async fn credentials_are_never_sent_without_tls() {
    let (server, sink, _stop) = listener(false).await;
    let failure = send_authenticated(&server).await.unwrap_err();
    assert_eq!(failure.step, Step::StartTls, "{failure}");
    assert!(
        failure.detail.contains("never sent in clear text"),
        "{failure}"
    );
    assert!(sink.received.lock().unwrap().is_empty());
    assert!(!format!("{:?}", smarthost_login()).contains("s3cret"));
}

/// A smarthost's certificate is checked before the password is sent: a self-signed one (the
/// listener's) ends the delivery at the handshake, and AUTH is never said.
#[tokio::test]
async fn credentials_are_never_sent_to_an_unchecked_certificate() {
    let (server, sink, _stop) = listener(true).await;
    let failure = send_authenticated(&server).await.unwrap_err();
    assert_eq!(failure.step, Step::StartTls, "{failure}");
    assert!(failure.detail.contains("certificate"), "{failure}");
    assert!(!failure.is_permanent());
    let commands: Vec<&str> = failure
        .transcript
        .exchanges
        .iter()
        .map(|exchange| exchange.command.as_str())
        .collect();
    assert_eq!(
        commands,
        [
            "(connect)",
            "EHLO check.tester.test",
            "STARTTLS",
            "(TLS handshake)"
        ]
    );
    assert!(sink.received.lock().unwrap().is_empty());
}

#[test]
fn a_smarthost_ca_file_without_certificates_is_refused_with_its_name() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("ca.pem");
    std::fs::write(&path, "not a certificate\n").unwrap();
    let error = authcheck_outbound::SmarthostTls::new(Some(&path), false).unwrap_err();
    assert!(error.contains("ca.pem"), "{error}");
    assert!(error.contains("no certificate"), "{error}");
    let missing = folder.path().join("missing.pem");
    let error = authcheck_outbound::SmarthostTls::new(Some(&missing), false).unwrap_err();
    assert!(error.contains("cannot read"), "{error}");
}
