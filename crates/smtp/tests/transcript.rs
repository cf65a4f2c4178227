//! The session record the listener hands to its delivery: every session, delivered or not,
//! with its commands, reply codes, enhanced status codes, result ids and ending.

mod common;

use std::time::Duration;

use authcheck_smtp::SessionEnding;
use common::{DOMAIN, message, start};

#[tokio::test]
async fn a_delivered_message_is_recorded_with_its_commands_and_result_id() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    client
        .envelope("Sender@Example.com", &[&format!("spf@{DOMAIN}")])
        .await;
    assert!(client.command("DATA").await.starts_with("354"));
    let reply = client.command(&format!("{}.", message("hi"))).await;
    assert!(reply.starts_with("250 2.0.0 Stored as spf-1"), "{reply}");
    assert!(client.command("QUIT").await.starts_with("221"));

    let record = server.delivery.sessions(1).await.remove(0);
    assert_eq!(record.ending, SessionEnding::ClientQuit);
    assert_eq!(record.helo.as_deref(), Some("client.example"));
    assert_eq!(record.mail_from.as_deref(), Some("Sender@Example.com"));
    assert_eq!(record.result_ids, vec!["spf-1".to_string()]);
    assert!(record.started_at <= record.ended_at);
    let lines: Vec<(&str, u16, Option<&str>)> = record
        .events
        .iter()
        .map(|e| (e.command.as_str(), e.code, e.status.as_deref()))
        .collect();
    assert_eq!(
        lines,
        vec![
            ("(connect)", 220, None),
            ("EHLO client.example", 250, None),
            ("MAIL FROM:<Sender@Example.com>", 250, Some("2.1.0")),
            ("RCPT TO:<spf@tester.example>", 250, Some("2.1.5")),
            ("DATA", 354, None),
            ("(end of data)", 250, Some("2.0.0")),
            ("QUIT", 221, Some("2.0.0")),
        ]
    );
    assert!(record.events[5].text.starts_with("Stored as spf-1"));
    server.stop().await;
}

#[tokio::test]
async fn a_relay_attempt_and_a_timeout_are_recorded() {
    let server = start(|config| config.command_timeout = Duration::from_millis(300)).await;
    let mut client = server.greeted_client().await;
    client.envelope("someone@example.com", &[]).await;
    let reply = client.command("RCPT TO:<victim@elsewhere.example>").await;
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    let reply = client.reply().await;
    assert!(reply.starts_with("421 4.4.2"), "{reply}");

    let record = server.delivery.sessions(1).await.remove(0);
    assert_eq!(record.ending, SessionEnding::CommandTimeout);
    assert!(record.result_ids.is_empty());
    let relay = &record.events[3];
    assert_eq!(relay.command, "RCPT TO:<victim@elsewhere.example>");
    assert_eq!((relay.code, relay.status.as_deref()), (550, Some("5.7.1")));
    assert_eq!(relay.text, "relaying denied");
    let last = record.events.last().unwrap();
    assert_eq!(last.command, "(timeout)");
    assert_eq!((last.code, last.status.as_deref()), (421, Some("4.4.2")));
    server.stop().await;
}

#[tokio::test]
async fn a_connection_refused_at_connect_and_a_dropped_one_are_recorded() {
    let server = start(|config| config.max_connections_per_ip = 1).await;
    let mut first = server.greeted_client().await;
    let mut second = server.connect().await;
    assert!(second.reply().await.starts_with("421 4.7.0"));
    let refused = server.delivery.sessions(1).await.remove(0);
    assert_eq!(refused.ending, SessionEnding::TooManyFromAddress);
    assert_eq!(refused.events.len(), 1);
    assert_eq!(refused.events[0].code, 421);

    first.send("NOOP\r\n").await;
    drop(first);
    let sessions = server.delivery.sessions(2).await;
    assert_eq!(sessions[1].ending, SessionEnding::ClientClosed);
    server.stop().await;
}

/// The README promises that a session which wrote to a private test keeps no result ids. Here
/// the private message falls between the kept head and tail, so only the recipient can tell.
#[tokio::test]
async fn a_session_that_wrote_to_a_private_test_names_no_result_ids() {
    let server = start(|_| {}).await;
    let token = authcheck_smtp::PrivateToken::parse("abcdefghijklmnopqrst").unwrap();
    server.delivery.open_tokens.lock().unwrap().push(token);
    let mut client = server.greeted_client().await;
    let mut send = async |to: &str| {
        client.envelope("sender@example.com", &[to]).await;
        assert!(client.command("DATA").await.starts_with("354"));
        let reply = client.command(&format!("{}.", message("hi"))).await;
        assert!(reply.starts_with("250 2.0.0 Stored as"), "{reply}");
    };
    let public = format!("spf@{DOMAIN}");
    for _ in 0..10 {
        send(&public).await;
    }
    send(&format!("test-abcdefghijklmnopqrst@{DOMAIN}")).await;
    for _ in 0..3 {
        send(&public).await;
    }
    assert!(client.command("QUIT").await.starts_with("221"));

    let record = server.delivery.sessions(1).await.remove(0);
    assert!(
        record.events_left_out > 0,
        "the private message is left out"
    );
    assert!(record.result_ids.is_empty(), "{:?}", record.result_ids);
    for event in &record.events {
        assert!(
            !event.text.contains("spf-") && !event.text.contains("private-"),
            "{event:?}"
        );
    }
    let ends: Vec<&str> = record
        .events
        .iter()
        .filter(|e| e.command == "(end of data)")
        .map(|e| e.text.as_str())
        .collect();
    assert_eq!(ends.len(), 12, "the private message's reply is left out");
    assert!(
        ends.iter()
            .all(|text| *text == authcheck_smtp::RESULTS_HIDDEN),
        "{ends:?}"
    );
    server.stop().await;
}
