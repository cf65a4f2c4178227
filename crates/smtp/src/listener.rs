//! Accepting connections: at most `max_connections` sessions at once and at most
//! `max_connections_per_ip` from one address, one task per session, and a graceful shutdown
//! that stops accepting, closes idle sessions and lets messages in flight finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::SmtpConfig;
use crate::delivery::Delivery;
use crate::replies::{self, Reply};
use crate::session::{Session, Stream};

/// How long to pause after a failed accept (for example, out of file descriptors) so the
/// loop does not spin while the condition lasts.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A bound SMTP listener with its configuration and delivery.
pub struct Listener<D> {
    tcp: TcpListener,
    config: Arc<SmtpConfig>,
    delivery: Arc<D>,
    connections: Arc<Semaphore>,
    per_client: Arc<ClientCounts>,
}

impl<D: Delivery> Listener<D> {
    pub fn new(tcp: TcpListener, mut config: SmtpConfig, delivery: Arc<D>) -> Self {
        // The recipient check compares lowercase names without the root's trailing dot.
        for domain in &mut config.domains {
            *domain = domain.trim_end_matches('.').to_ascii_lowercase();
        }
        let connections = Arc::new(Semaphore::new(
            config.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        Listener {
            tcp,
            config: Arc::new(config),
            delivery,
            connections,
            per_client: Arc::default(),
        }
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting and waits for the sessions,
    /// at most `shutdown_grace`; sessions still running after that are cut off.
    pub async fn run(self, shutdown: impl Future) {
        let (stop_sessions, stop_signal) = watch::channel(false);
        let mut sessions = JoinSet::new();
        tracing::info!(listen = %self.config.listen, hostname = %self.config.hostname, "SMTP listener accepting");
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(finished) = sessions.join_next(), if !sessions.is_empty() => log_panic(finished),
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, client)) => self.admit(stream, client, &mut sessions, stop_signal.clone()),
                    Err(error) => {
                        tracing::warn!(%error, "cannot accept an SMTP connection; retrying");
                        tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                    }
                },
            }
        }

        drop(self.tcp);
        let _ = stop_sessions.send(true);
        let open = sessions.len();
        if open > 0 {
            tracing::info!(
                sessions = open,
                "SMTP listener stopped accepting; waiting for sessions to finish"
            );
        }
        let drain = async {
            while let Some(finished) = sessions.join_next().await {
                log_panic(finished);
            }
        };
        if tokio::time::timeout(self.config.shutdown_grace, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = sessions.len(),
                grace = ?self.config.shutdown_grace,
                "SMTP sessions still running after the shutdown grace period; closing them"
            );
            sessions.shutdown().await;
        }
    }

    fn admit(
        &self,
        stream: TcpStream,
        client: SocketAddr,
        sessions: &mut JoinSet<()>,
        shutdown: watch::Receiver<bool>,
    ) {
        let Ok(permit) = self.connections.clone().try_acquire_owned() else {
            tracing::warn!(client = %client.ip(), limit = self.config.max_connections, "refused a connection: too many connections");
            refuse(&stream, &replies::TOO_MANY_CONNECTIONS);
            return;
        };
        let Some(slot) = ClientCounts::claim(
            &self.per_client,
            client.ip(),
            self.config.max_connections_per_ip,
        ) else {
            tracing::warn!(
                client = %client.ip(), limit = self.config.max_connections_per_ip,
                "refused a connection: too many connections from this address"
            );
            refuse(&stream, &replies::TOO_MANY_FROM_ADDRESS);
            return;
        };
        // Replies are small and flushed as a whole; without this, Nagle delays each one.
        let _ = stream.set_nodelay(true);
        let session = Session::new(
            Stream::Plain(stream),
            client,
            self.config.clone(),
            self.delivery.clone(),
            shutdown,
        );
        sessions.spawn(async move {
            let _permit = permit;
            let _slot = slot;
            let _counted = OpenConnection::count();
            session.run().await;
        });
    }
}

/// One connection in the `authcheck_smtp_connections_open` gauge, for as long as it lives:
/// dropped when the session ends, even by a panic.
struct OpenConnection(metrics::Gauge);

impl OpenConnection {
    fn count() -> OpenConnection {
        let gauge = metrics::gauge!("authcheck_smtp_connections_open");
        gauge.increment(1.0);
        OpenConnection(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Serves SMTP on `listener` until `shutdown` completes; see [`Listener::run`].
pub async fn run<D: Delivery>(
    listener: TcpListener,
    config: SmtpConfig,
    delivery: Arc<D>,
    shutdown: impl Future,
) {
    Listener::new(listener, config, delivery)
        .run(shutdown)
        .await;
}

/// Answers a connection that will not be served. The socket's send buffer is empty, so the
/// one short reply fits without waiting and the accept loop is never held up.
fn refuse(stream: &TcpStream, reply: &Reply) {
    crate::replies::count(reply);
    let _ = stream.try_write(reply.as_bytes());
}

fn log_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        tracing::warn!(%error, "an SMTP session panicked");
    }
}

/// Open sessions per client address.
#[derive(Default)]
struct ClientCounts {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One session's place in [`ClientCounts`], given back when dropped.
struct ClientSlot {
    counts: Arc<ClientCounts>,
    ip: IpAddr,
}

impl ClientCounts {
    fn claim(counts: &Arc<ClientCounts>, ip: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut open = counts.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}
