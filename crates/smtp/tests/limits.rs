//! The session and connection limits, each configured small so it is reached quickly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use authcheck_smtp::MAX_QUEUED_REPLIES;
use common::{PATIENCE, RecordingDelivery, start, start_at, start_on};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

#[tokio::test]
async fn too_many_bad_commands_end_the_session() {
    let server = start(|config| config.max_bad_commands = 3).await;
    let mut client = server.greeted_client().await;
    for _ in 0..3 {
        assert_eq!(
            client.command("XYZZY").await,
            "500 5.5.1 command not recognized"
        );
    }
    // Good commands do not reset the count.
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK");
    assert_eq!(
        client.command("RCPT TO:<spf@tester.example>").await,
        "421 4.7.0 too many errors"
    );
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn a_command_line_over_the_limit_is_refused_and_skipped() {
    let server = start(|config| config.max_line_length = 100).await;
    let mut client = server.greeted_client().await;
    let long = format!("NOOP {}\r\n", "x".repeat(200));
    assert_eq!(
        client.command(long.trim_end()).await,
        "500 5.5.2 line too long"
    );
    // A line longer than the limit arriving in several writes is refused once.
    client.send(format!("NOOP {}", "y".repeat(150))).await;
    assert_eq!(client.reply().await, "500 5.5.2 line too long");
    client.send(format!("{}\r\n", "y".repeat(150))).await;
    assert_eq!(client.command("NOOP").await, "250 2.0.0 OK");
    let fits = format!("NOOP {}", "z".repeat(90));
    assert_eq!(client.command(&fits).await, "250 2.0.0 OK");
}

#[tokio::test]
async fn connections_from_one_address_over_the_limit_are_refused() {
    let server = start(|config| config.max_connections_per_ip = 2).await;
    let mut first = server.client().await;
    let _second = server.client().await;
    let mut third = server.connect().await;
    assert_eq!(
        third.reply().await,
        "421 4.7.0 too many connections from your address"
    );
    assert!(third.is_closed().await);

    // Once a session ends its place is free again.
    first.command("QUIT").await;
    assert!(first.is_closed().await);
    assert!(connects_within_patience(&server).await);
}

#[tokio::test]
async fn ipv4_clients_are_counted_by_their_own_address() {
    let server = start(|config| config.max_connections_per_ip = 1).await;
    let from = |address: &str| server.connect_from(address.parse().unwrap());
    let mut first = from("127.0.0.2").await;
    assert!(first.reply().await.starts_with("220 "));
    let mut neighbour = from("127.0.0.3").await;
    assert!(
        neighbour.reply().await.starts_with("220 "),
        "another address"
    );
    let mut again = from("127.0.0.2").await;
    assert_eq!(
        again.reply().await,
        "421 4.7.0 too many connections from your address"
    );
}

#[tokio::test]
#[cfg_attr(
    not(ipv6_range_tests),
    ignore = "needs the local IPv6 route 2001:db8:ac::/48 on lo to connect from many addresses (scripts/setup-test-deps adds it, as root)"
)]
async fn ipv6_clients_of_one_64_share_the_per_address_limit() {
    let server = start_at(
        "[::1]:0",
        |config| config.max_connections_per_ip = 2,
        Arc::new(RecordingDelivery::default()),
    )
    .await;
    let from = |address: &str| server.connect_from(address.parse().unwrap());
    let mut first = from("2001:db8:ac:1::1").await;
    assert!(first.reply().await.starts_with("220 "));
    let mut second = from("2001:db8:ac:1:ffff:ffff:ffff:fffe").await;
    assert!(second.reply().await.starts_with("220 "));
    // A third address of the same /64 is the same client.
    let mut third = from("2001:db8:ac:1:1234::3").await;
    assert_eq!(
        third.reply().await,
        "421 4.7.0 too many connections from your address"
    );
    assert!(third.is_closed().await);
    // The next /64 is another client.
    let mut neighbour = from("2001:db8:ac:2::1").await;
    assert!(neighbour.reply().await.starts_with("220 "));
}

#[tokio::test]
async fn connections_over_the_total_limit_are_refused() {
    let server = start(|config| config.max_connections = 2).await;
    let _first = server.client().await;
    let _second = server.client().await;
    let mut third = server.connect().await;
    assert_eq!(
        third.reply().await,
        "421 4.7.0 too many connections, try again later"
    );
    assert!(third.is_closed().await);
}

/// Whether a new connection is greeted; the listener frees a place only after the session
/// task ends, a moment after the client sees the connection close.
async fn connects_within_patience(server: &common::Server) -> bool {
    let attempts = 100;
    for _ in 0..attempts {
        let mut client = server.connect().await;
        if client.reply().await.starts_with("220 ") {
            return true;
        }
        tokio::time::sleep(PATIENCE / attempts).await;
    }
    false
}

#[tokio::test]
async fn a_silent_client_is_timed_out() {
    let server = start(|config| config.command_timeout = Duration::from_millis(200)).await;
    let mut client = server.greeted_client().await;
    assert_eq!(
        client.reply().await,
        "421 4.4.2 mx.tester.example timeout, closing"
    );
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn a_client_that_stops_sending_data_is_timed_out() {
    let server = start(|config| config.command_timeout = Duration::from_millis(200)).await;
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.command("DATA").await;
    client.send("Subject: unfinished\r\n").await;
    assert_eq!(
        client.reply().await,
        "421 4.4.2 mx.tester.example timeout, closing"
    );
    assert!(client.is_closed().await);
    assert!(server.delivery.messages().is_empty());
}

#[tokio::test]
async fn a_message_trickled_a_byte_at_a_time_is_timed_out() {
    let server = start(|config| config.command_timeout = Duration::from_millis(500)).await;
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.command("DATA").await;
    // One byte every 50 ms: never silent for the 500 ms timeout, but far below 1 KiB per
    // timeout, so the slot must be taken back. Bounded: 100 bytes, 5 s.
    let mut answered = false;
    for _ in 0..100 {
        client.send(b"x").await;
        if client.has_input_within(Duration::from_millis(50)).await {
            answered = true;
            break;
        }
    }
    assert!(answered, "the trickling client was never cut off");
    assert_eq!(
        client.reply().await,
        "421 4.4.2 mx.tester.example timeout, closing"
    );
    assert!(server.delivery.messages().is_empty());
}

#[tokio::test]
async fn a_session_over_its_time_limit_is_closed() {
    let server = start(|config| config.session_timeout = Duration::from_millis(300)).await;
    let mut client = server.greeted_client().await;
    // Busy, but not for ever: each NOOP is answered until the session limit.
    let mut last = String::new();
    for _ in 0..1000 {
        last = client.command("NOOP").await;
        if !last.starts_with("250") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        last,
        "421 4.4.2 mx.tester.example session time limit reached, closing"
    );
    assert!(client.is_closed().await);
}

/// A client that pipelines thousands of HELP lines and reads none of the long replies: the
/// server stops taking commands once the replies it has not sent reach the bound, instead of
/// queueing the replies to everything it has read.
#[tokio::test]
async fn pipelined_commands_whose_replies_are_not_read_queue_a_bounded_amount() {
    // Small kernel buffers on both ends, so that what the server could not send stays queued
    // in the server rather than in the kernel.
    let listening = TcpSocket::new_v4().unwrap();
    listening.set_send_buffer_size(4096).unwrap();
    listening.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let server = start_on(
        listening.listen(16).unwrap(),
        |config| config.command_timeout = Duration::from_millis(500),
        Arc::new(RecordingDelivery::default()),
    );
    let mut probe = server.greeted_client().await;
    let help_bytes = probe
        .command("HELP")
        .await
        .lines()
        .map(|line| line.len() + 2)
        .sum::<usize>();
    drop(probe);

    let client = TcpSocket::new_v4().unwrap();
    client.set_recv_buffer_size(4096).unwrap();
    let mut stream = client.connect(server.addr).await.unwrap();
    let flood = format!("EHLO client.example\r\n{}", "HELP\r\n".repeat(20_000));
    // The server stops reading, so the write may never finish: it ends with the connection.
    let writer = tokio::spawn(async move {
        let _ = tokio::time::timeout(PATIENCE, stream.write_all(flood.as_bytes())).await;
    });

    let answered = |record: &authcheck_smtp::SessionRecord| {
        let kept = record.events.iter().filter(|event| event.command == "HELP");
        kept.count() + record.events_left_out
    };
    let sessions = server.delivery.sessions(2).await;
    let answered = sessions.iter().map(answered).max().unwrap();
    // Some replies went into the kernel's buffers, which the small sizes above keep to a few KiB.
    let kernel = 64 * 1024;
    assert!(
        answered * help_bytes <= MAX_QUEUED_REPLIES + kernel,
        "{answered} HELP replies of {help_bytes} bytes were queued"
    );
    writer.await.unwrap();
}
