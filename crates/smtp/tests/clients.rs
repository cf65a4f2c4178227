//! Real SMTP clients against the listener: mail-send over plain TCP and over STARTTLS with the
//! self-signed configuration.

mod common;

use authcheck_smtp::{Destination, Mailbox, self_signed_tls};
use common::{PATIENCE, start};
use mail_send::SmtpClientBuilder;
use mail_send::smtp::message::Message;
use smtp_proto::EXT_START_TLS;
use tokio::io::AsyncWriteExt;

/// mail-send builds its TLS client with rustls' process-wide default provider.
fn use_ring_for_tls_clients() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test]
async fn mail_send_delivers_a_full_message_over_plain_tcp() {
    let server = start(|_| {}).await;
    let mut client = SmtpClientBuilder::new("127.0.0.1", server.addr.port())
        .unwrap()
        .helo_host("sender.example")
        .timeout(PATIENCE)
        .connect_plain()
        .await
        .unwrap();
    let body = "From: sender@example.com\r\nSubject: full\r\n\r\nfirst line\r\n.a line with a leading dot\r\nlast";
    let message = Message::new(
        "sender@example.com",
        ["spf+x@tester.example", "dkim@tester.example"],
        body.as_bytes(),
    );
    client.send(message).await.unwrap();
    client.quit().await.unwrap();

    let delivered = server.delivery.messages();
    assert_eq!(delivered.len(), 1);
    let (envelope, bytes) = &delivered[0];
    // mail-send ends the data with CRLF.CRLF, so the message gains the CRLF of its last line.
    assert_eq!(bytes, format!("{body}\r\n").as_bytes());
    assert_eq!(envelope.helo, "sender.example");
    let destinations: Vec<Destination> =
        envelope.recipients.iter().map(|r| r.destination).collect();
    assert_eq!(
        destinations,
        [
            Destination::Test(Mailbox::Spf),
            Destination::Test(Mailbox::Dkim)
        ]
    );
    assert!(envelope.tls.is_none());
}

#[tokio::test]
async fn starttls_resets_the_session_and_the_envelope_records_tls() {
    use_ring_for_tls_clients();
    let tls = self_signed_tls("mx.tester.example").unwrap();
    let server = start(|config| config.tls = Some(tls)).await;

    // connect() says EHLO, sees STARTTLS offered and upgrades.
    let mut client = SmtpClientBuilder::new("127.0.0.1", server.addr.port())
        .unwrap()
        .implicit_tls(false)
        .allow_invalid_certs()
        .helo_host("sender.example")
        .say_ehlo(false)
        .timeout(PATIENCE)
        .connect()
        .await
        .unwrap();
    // RFC 3207: after the handshake the client must greet again.
    let refused = client
        .cmd("MAIL FROM:<sender@example.com>\r\n")
        .await
        .unwrap();
    assert_eq!(refused.code, 503);
    let ehlo = client.ehlo("sender.example").await.unwrap();
    assert!(
        !ehlo.has_capability(EXT_START_TLS),
        "STARTTLS is not offered twice"
    );
    assert_eq!(client.cmd("STARTTLS\r\n").await.unwrap().code, 503);

    client
        .send(Message::new(
            "sender@example.com",
            ["dkim@tester.example"],
            "Subject: tls\r\n\r\nsecret".as_bytes(),
        ))
        .await
        .unwrap();
    let (envelope, _) = &server.delivery.messages()[0];
    let tls = envelope.tls.as_ref().expect("the envelope records TLS");
    assert_eq!(tls.version, "TLSv1.3");
    assert!(tls.cipher.starts_with("TLS13_"), "{}", tls.cipher);
    assert_eq!(envelope.helo, "sender.example");
}

#[tokio::test]
async fn commands_pipelined_after_starttls_are_discarded() {
    use_ring_for_tls_clients();
    let tls = self_signed_tls("mx.tester.example").unwrap();
    let server = start(|config| config.tls = Some(tls)).await;
    let mut plain = server.greeted_client().await;
    // Sent in the clear with STARTTLS; must not be taken as commands of the TLS session.
    plain.send("STARTTLS\r\nHELP\r\n").await;
    assert_eq!(plain.reply().await, "220 2.0.0 ready to start TLS");
    let mut tcp = plain.into_inner();
    tcp.flush().await.unwrap();

    let connector = mail_send::smtp::tls::build_tls_connector(true).unwrap();
    let client = mail_send::SmtpClient {
        stream: tcp,
        timeout: PATIENCE,
    };
    let mut client = client
        .into_tls(&connector, "mx.tester.example")
        .await
        .unwrap();
    let reply = client.cmd("NOOP\r\n").await.unwrap();
    assert_eq!(
        (reply.code, reply.message.as_str()),
        (250, "OK"),
        "the first reply after TLS answers NOOP"
    );
}
