//! The HTTP server's limits over real TCP connections: a stalled request line is closed at
//! the header timeout, a slow handler gets a 503 at the request timeout, and connections over
//! the cap wait until one closes.

use std::time::{Duration, Instant};

use authcheck_web::HttpLimits;
use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PATIENCE: Duration = Duration::from_secs(10);

/// Limits none of the tests reaches, for each test to lower the one it tries.
fn generous() -> HttpLimits {
    HttpLimits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        request_timeout: Duration::from_secs(30),
        max_connections: 64,
    }
}

async fn serve(limits: HttpLimits) -> std::net::SocketAddr {
    let router = Router::new().route("/", get(|| async { "hello" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "too late"
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(authcheck_web::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    addr
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test]
async fn a_stalled_request_line_is_closed_at_the_header_timeout() {
    let addr = serve(HttpLimits {
        header_read_timeout: Duration::from_millis(500),
        ..generous()
    })
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x")
        .await
        .unwrap();
    let started = Instant::now();
    tokio::time::timeout(PATIENCE, read_to_close(&mut client))
        .await
        .expect("the stalled connection is closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
}

#[tokio::test]
async fn a_slow_handler_gets_a_503_at_the_request_timeout() {
    let addr = serve(HttpLimits {
        request_timeout: Duration::from_millis(300),
        ..generous()
    })
    .await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(PATIENCE, read_to_close(&mut client))
        .await
        .expect("an answer in time");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("took too long"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let addr = serve(HttpLimits {
        max_connections: 1,
        ..generous()
    })
    .await;
    let first = TcpStream::connect(addr).await.unwrap();
    // Give the server the moment it needs to take the first connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    second
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(700), second.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "the second connection was served over the cap"
    );
    drop(first);
    let answer = tokio::time::timeout(PATIENCE, read_to_close(&mut second))
        .await
        .expect("served once the first closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
}
