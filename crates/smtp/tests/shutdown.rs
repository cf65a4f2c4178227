//! Graceful shutdown: no new connections, idle sessions closed, messages in flight finished
//! within the grace period and cut off after it.

mod common;

use std::time::Duration;

use common::{PATIENCE, message, start};
use tokio::net::TcpStream;

/// Waits until the listener no longer accepts connections, which shows shutdown has begun.
async fn wait_until_not_accepting(addr: std::net::SocketAddr) {
    let attempts = 100;
    for _ in 0..attempts {
        if TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(PATIENCE / attempts).await;
    }
    panic!("the listener still accepts connections after shutdown was requested");
}

#[tokio::test]
async fn shutdown_closes_idle_sessions_with_421() {
    let server = start(|_| {}).await;
    let mut client = server.greeted_client().await;
    let addr = server.addr;
    server.stop().await;
    assert_eq!(
        client.reply().await,
        "421 4.3.2 mx.tester.example shutting down, try again later"
    );
    assert!(client.is_closed().await);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn a_message_in_flight_at_shutdown_is_finished_and_stored() {
    let server = start(|config| config.shutdown_grace = PATIENCE).await;
    let (addr, delivery) = (server.addr, server.delivery.clone());
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.command("DATA").await;
    let body = message("in flight");
    let (head, tail) = body.split_at(10);
    client.send(head).await;

    let stopping = tokio::spawn(server.stop());
    wait_until_not_accepting(addr).await;
    client.send(format!("{tail}.\r\n")).await;
    assert!(
        client
            .reply()
            .await
            .starts_with("250 2.0.0 Stored as spf-1")
    );
    assert!(client.reply().await.starts_with("421 4.3.2"));
    assert!(client.is_closed().await);
    stopping.await.unwrap();
    assert_eq!(delivery.messages()[0].1, body.as_bytes());
}

/// Between two BDAT chunks the session is receiving a message as much as inside DATA.
#[tokio::test]
async fn a_chunked_message_in_flight_at_shutdown_is_finished_and_stored() {
    let server = start(|config| config.shutdown_grace = PATIENCE).await;
    let (addr, delivery) = (server.addr, server.delivery.clone());
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    let body = message("chunked in flight");
    let (head, tail) = body.split_at(10);
    client.send(format!("BDAT {}\r\n{head}", head.len())).await;
    assert_eq!(client.reply().await, "250 2.0.0 10 bytes received");

    let stopping = tokio::spawn(server.stop());
    wait_until_not_accepting(addr).await;
    client
        .send(format!("BDAT {} LAST\r\n{tail}", tail.len()))
        .await;
    let reply = client.reply().await;
    assert!(reply.starts_with("250 2.0.0 Stored as spf-1"), "{reply}");
    assert!(client.reply().await.starts_with("421 4.3.2"));
    assert!(client.is_closed().await);
    stopping.await.unwrap();
    assert_eq!(delivery.messages()[0].1, body.as_bytes());
}

#[tokio::test]
async fn sessions_still_running_after_the_grace_period_are_cut_off() {
    let server = start(|config| config.shutdown_grace = Duration::from_millis(200)).await;
    let delivery = server.delivery.clone();
    let mut client = server.greeted_client().await;
    client
        .envelope("sender@example.com", &["spf@tester.example"])
        .await;
    client.command("DATA").await;
    client.send("Subject: never finished\r\n").await;

    server.stop().await;
    assert!(client.is_closed().await);
    assert!(delivery.messages().is_empty());
}
