//! The HTTP server under the site and the operator endpoints, with the limits a listener
//! open to the internet needs: anyone can open connections and send nothing, send a request
//! line one byte a minute, or never read the answer.
//!
//! * [`HttpLimits::header_read_timeout`]: the request line and headers must arrive within
//!   this time from when the server starts waiting for them; this also closes a kept-alive
//!   connection that sends no next request.
//! * [`HttpLimits::idle_timeout`]: a connection on which no byte moves either way for this
//!   long is closed (a client that stops reading its answer, a stalled request body).
//! * [`HttpLimits::request_timeout`]: a handler that has not answered by then gets a 503.
//!   Event streams answer at once and end on their own.
//! * [`HttpLimits::max_connections`]: at most this many connections are served at once; more
//!   wait in the kernel's queue until one closes, so HTTP never takes the file descriptors
//!   the SMTP listener needs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

/// The limits of one HTTP listener; see the module documentation. The service's values
/// come from its `http_*` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then stops
/// accepting, lets requests under way finish and returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let request_timeout = limits.request_timeout;
    let router = router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| async move {
            match tokio::time::timeout(request_timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => request_took_too_long(),
            }
        },
    ));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing, closing_watch) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a moment rather than spin.
                    tracing::warn!(%error, "http: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Handlers that count per client (making private tests) read its address from here.
        let service = TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(crate::ClientAddr(peer.ip()))),
        );
        let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
        let mut closing_watch = closing_watch.clone();
        let closing = async move {
            let _ = closing_watch.wait_for(|closing| *closing).await;
        };
        connections.spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(io, service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = closing => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

fn request_took_too_long() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "the request took too long to answer; try again in a moment\n",
    )
        .into_response()
}

/// A connection that fails with `TimedOut` once no byte has moved either way for `timeout`.
struct IdleTimeout<T> {
    inner: T,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, timeout: Duration) -> Self {
        IdleTimeout {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn moved(&mut self) {
        let next = Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }

    /// What a pending read or write becomes: still pending, or an error once idle too long.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<R>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the HTTP connection was idle too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.pending(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_connection_idle_too_long_fails_and_traffic_keeps_it_open() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = IdleTimeout::new(server, Duration::from_millis(400));
        let mut byte = [0u8; 1];
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            client.write_all(b"x").await.unwrap();
            server
                .read_exact(&mut byte)
                .await
                .expect("traffic keeps it open");
        }
        let started = Instant::now();
        let error = server.read(&mut byte).await.expect_err("idle too long");
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(350));
    }
}
