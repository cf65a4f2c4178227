//! Accepting connections: at most `max_connections` sessions at once and at most
//! `max_connections_per_ip` from one client (an IPv4 address or an IPv6 /64), one task per
//! session, what the sessions share (the memory budget and the rate limits), and a graceful
//! shutdown that stops accepting, closes idle sessions and lets messages in flight finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::budget::MemoryBudget;
use crate::config::{RATE_LIMIT_MAX_KEYS, SmtpConfig};
use crate::delivery::Delivery;
use crate::rate::RateLimiter;
use crate::replies::{self, Reply};
use crate::session::{Session, Stream};
use crate::transcript::{self, SessionEnding};

/// How long to pause after a failed accept (for example, out of file descriptors) so the
/// loop does not spin while the condition lasts.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What every session of one listener shares.
pub(crate) struct Shared {
    /// The bytes of message data held in flight, across all sessions.
    pub budget: Arc<MemoryBudget>,
    /// New transactions per client (see [`client_key`]).
    pub per_client: RateLimiter<IpAddr>,
    /// New transactions per MAIL FROM domain, lowercase.
    pub per_sender_domain: RateLimiter<String>,
}

/// The key under which per-client limits count a client: its IPv4 address, or its IPv6 /64
/// (a single host or home network commonly holds a whole /64). An IPv4-mapped IPv6 address
/// counts as its IPv4 address.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// A bound SMTP listener with its configuration and delivery.
struct Listener<D> {
    tcp: TcpListener,
    config: Arc<SmtpConfig>,
    delivery: Arc<D>,
    connections: Arc<Semaphore>,
    per_client: Arc<ClientCounts>,
    shared: Arc<Shared>,
}

impl<D: Delivery> Listener<D> {
    fn new(tcp: TcpListener, mut config: SmtpConfig, delivery: Arc<D>) -> Self {
        // The recipient check compares lowercase names without the root's trailing dot.
        for domain in &mut config.domains {
            *domain = domain.trim_end_matches('.').to_ascii_lowercase();
        }
        let connections = Arc::new(Semaphore::new(
            config.max_connections.min(Semaphore::MAX_PERMITS),
        ));
        let shared = Arc::new(Shared {
            budget: MemoryBudget::new(config.max_memory_in_flight),
            per_client: RateLimiter::new(
                config.messages_per_client,
                config.rate_window,
                RATE_LIMIT_MAX_KEYS,
            ),
            per_sender_domain: RateLimiter::new(
                config.messages_per_sender_domain,
                config.rate_window,
                RATE_LIMIT_MAX_KEYS,
            ),
        });
        Listener {
            tcp,
            config: Arc::new(config),
            delivery,
            connections,
            per_client: Arc::default(),
            shared,
        }
    }

    /// Serves until `shutdown` completes, then stops accepting and waits for the sessions,
    /// at most `shutdown_grace`; sessions still running after that are cut off.
    async fn run(self, shutdown: impl Future) {
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
            self.refuse(
                &stream,
                client,
                &replies::TOO_MANY_CONNECTIONS,
                SessionEnding::TooManyConnections,
            );
            return;
        };
        let Some(slot) = ClientCounts::claim(
            &self.per_client,
            client_key(client.ip()),
            self.config.max_connections_per_ip,
        ) else {
            tracing::warn!(
                client = %client.ip(), limit = self.config.max_connections_per_ip,
                "refused a connection: too many connections from this address"
            );
            self.refuse(
                &stream,
                client,
                &replies::TOO_MANY_FROM_ADDRESS,
                SessionEnding::TooManyFromAddress,
            );
            return;
        };
        // Replies are small and flushed as a whole; without this, Nagle delays each one.
        let _ = stream.set_nodelay(true);
        let session = Session::new(
            Stream::Plain(stream),
            client,
            self.config.clone(),
            self.delivery.clone(),
            self.shared.clone(),
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

impl<D: Delivery> Listener<D> {
    /// Answers a connection that will not be served, and records it as a session. The
    /// socket's send buffer is empty, so the one short reply fits without waiting and the
    /// accept loop is never held up.
    fn refuse(&self, stream: &TcpStream, client: SocketAddr, reply: &Reply, ending: SessionEnding) {
        crate::replies::count(reply);
        let _ = stream.try_write(reply.as_bytes());
        self.delivery
            .session_ended(transcript::refused(client, reply, ending));
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

fn log_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        tracing::warn!(%error, "an SMTP session panicked");
    }
}

/// Open sessions per client (see [`client_key`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_64_and_ipv4_by_address() {
        let key = |text: &str| client_key(text.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(
            key("2001:db8:1:2::7"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("192.0.2.7"), "192.0.2.7".parse::<IpAddr>().unwrap());
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
    }
}
