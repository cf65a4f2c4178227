//! `authcheck serve`: wires the SMTP listener, the verifier, the store and the web site
//! together, runs the retention purge (results after `retention`, DMARC reports after
//! `dmarc_retention`, private test addresses once expired), runs the self-check ([`crate::self_check`]), and shuts everything down on SIGTERM or Ctrl-C.
//!
//! The public site and the operators' listener (`/metrics`, `/livez`, `/readyz`, on
//! `metrics_listen`, loopback by default) are separate HTTP servers, each within the
//! `http_*` limits.
//!
//! Shutdown is one `watch` signal: the SMTP listener stops accepting and lets sessions in
//! flight finish (bounded by its grace period), the web servers stop, the purge task ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use authcheck_smtp::SmtpConfig;
use authcheck_store::{SharedStore, StoreError};
use authcheck_verifier::{DnsConfig, Verifier, VerifierConfig};
use authcheck_web::{StatusInfo, WebConfig};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::config::{ConfigError, Settings, invalid, machine_hostname, scrub_password};
use crate::delivery::{TesterDelivery, VerificationPool};
use crate::failure::Failure;
use crate::outgoing::{OutgoingConfig, Route};
use crate::reply::{Replies, ReplyConfig, ReplyScope};
use crate::self_check::{KeyPlace, SelfCheckConfig};
use crate::session_log::SessionLog;
use crate::sources::SourceNamer;

/// How long sessions in flight may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long the session log may take to write its last sessions after the listener stopped.
const SESSION_LOG_GRACE: Duration = Duration::from_secs(5);
/// How long the web server may take to close its connections after a shutdown signal.
const WEB_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Connections the kernel may hold completed but not yet accepted (it caps this at
/// `net.core.somaxconn`). Std's and tokio's default of 128 overflows when a few hundred
/// clients connect at once; the kernel then answers with SYN cookies and silently drops
/// the handshakes it has no room for, and an SMTP client, waiting for a greeting that
/// never comes, hangs until its own timeout.
const LISTEN_BACKLOG: u32 = 4096;
/// Pauses between attempts to reach the database at start: doubling from the first to the last.
const FIRST_CONNECT_PAUSE: Duration = Duration::from_millis(500);
const LAST_CONNECT_PAUSE: Duration = Duration::from_secs(5);

/// Opens the store named by the settings. A database that cannot be reached yet (PostgreSQL
/// starting after authcheck) is tried again, one log line per attempt, until
/// `database_connect_timeout` has passed; then the failure is [`Failure::Temporary`], so that a
/// supervisor starts authcheck again later. A database that refuses us needs the operator:
/// that is a configuration failure naming `database_url`.
pub async fn open_store(settings: &Settings) -> Result<SharedStore, Failure> {
    let started = Instant::now();
    let deadline = started + settings.database_connect_timeout;
    let mut pause = FIRST_CONNECT_PAUSE;
    let mut attempt = 1u32;
    loop {
        let problem = match authcheck_store::open(&settings.database_url).await {
            Ok(store) => {
                if attempt > 1 {
                    tracing::info!(attempt, "the database answered");
                }
                return Ok(store);
            }
            Err(StoreError::Unavailable(problem)) => {
                scrub_password(&problem, &settings.database_url)
            }
            Err(other) => {
                let problem = scrub_password(&other.to_string(), &settings.database_url);
                return Err(invalid("database_url", problem).into());
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Temporary(format!(
                "{problem}; gave up after {attempt} {} in {}s (database_connect_timeout)",
                if attempt == 1 { "attempt" } else { "attempts" },
                started.elapsed().as_secs()
            )));
        }
        let wait = pause.min(left);
        tracing::warn!(
            attempt,
            "{problem}; trying again in {}",
            humantime::format_duration(wait)
        );
        tokio::time::sleep(wait).await;
        pause = (pause * 2).min(LAST_CONNECT_PAUSE);
        attempt += 1;
    }
}

fn bind(setting: &'static str, addr: std::net::SocketAddr) -> Result<TcpListener, ConfigError> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As std does: a restarted service can listen again while old connections linger.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|e| invalid(setting, format!("cannot listen on {addr}: {e}")))
}

/// Resolves once `stop` says so (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Resolves when the process is asked to stop (SIGTERM, SIGINT/Ctrl-C).
async fn shutdown_requested() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// How often the purge runs: a tenth of the results' retention (the shorter one), between one
/// second and one hour.
fn purge_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// How long each kind of data is kept.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    /// Test results (`retention`).
    pub results: Duration,
    /// DMARC reports, rejected reports and source names (`dmarc_retention`).
    pub reports: Duration,
}

impl Retention {
    pub fn of(settings: &Settings) -> Retention {
        Retention {
            results: settings.retention,
            reports: settings.dmarc_retention,
        }
    }
}

/// What one purge deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub results: u64,
    /// Reports and rejected reports.
    pub reports: u64,
    /// Private test addresses past their lifetime (their results go with `results`).
    pub private_tests: u64,
}

/// Deletes what is older than its retention at `now` (the clock, passed in so that tests can
/// move it): results, then DMARC reports, each in short batches.
pub async fn purge_once(
    store: &SharedStore,
    retention: Retention,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Purged, authcheck_store::StoreError> {
    let before =
        |kept: Duration| now - chrono::Duration::from_std(kept).unwrap_or(chrono::Duration::MAX);
    let results = store.purge(before(retention.results)).await?;
    let reports = store
        .purge_reports(before(retention.reports).timestamp())
        .await?;
    let private_tests = store.purge_private_tests(now.timestamp()).await?;
    Ok(Purged {
        results,
        reports,
        private_tests,
    })
}

async fn purge_periodically(
    store: SharedStore,
    retention: Retention,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(purge_interval(retention.results));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        match purge_once(&store, retention, chrono::Utc::now()).await {
            Ok(Purged {
                results: 0,
                reports: 0,
                private_tests: 0,
            }) => {}
            Ok(Purged {
                results,
                reports,
                private_tests,
            }) => tracing::info!(
                results,
                dmarc_reports = reports,
                private_tests,
                "purged results and DMARC reports older than their retention, and expired private test addresses"
            ),
            Err(e) => tracing::warn!(error = %e, "retention purge failed; will try again"),
        }
    }
}

/// The self-check's settings, resolved: the target defaults to the SMTP listener actually
/// bound (an unspecified address replaced by loopback), the key file to `dkim.key` next to
/// the SQLite database, or in the working directory with PostgreSQL.
fn self_check_config(
    settings: &Settings,
    smtp_addr: std::net::SocketAddr,
    hostname: &str,
) -> SelfCheckConfig {
    let target = settings.self_check_target.clone().unwrap_or_else(|| {
        let mut addr = smtp_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        addr.to_string()
    });
    SelfCheckConfig {
        interval: settings.self_check_interval.unwrap_or_default(),
        target,
        instance: hostname.to_owned(),
        domain: settings
            .domains
            .first()
            .cloned()
            .unwrap_or_else(|| "tester.localhost".to_owned()),
        selector: settings.dkim_selector.clone(),
        key_place: key_place(settings),
    }
}

/// Where the tester's DKIM key is kept: the `dkim_key` file; else the database when it is
/// PostgreSQL (instances sharing it share the key); else `dkim.key` beside the SQLite file.
fn key_place(settings: &Settings) -> KeyPlace {
    match &settings.dkim_key {
        Some(path) => KeyPlace::File(path.clone()),
        None if !settings.database_url.starts_with("sqlite:") => KeyPlace::Store,
        None => KeyPlace::File(
            sqlite_folder(&settings.database_url)
                .unwrap_or_default()
                .join("dkim.key"),
        ),
    }
}

/// The replies' settings, resolved.
fn reply_config(settings: &Settings, public_url: &str) -> ReplyConfig {
    ReplyConfig {
        scope: settings.reply_by_mail,
        limits: authcheck_store::ReplyLimits {
            per_address: settings.reply_per_address,
            per_domain: settings.reply_per_domain,
            per_client: settings.reply_per_client,
            max_queued: u32::try_from(settings.outgoing_queue_max).unwrap_or(u32::MAX),
        },
        retry: retry_policy(settings),
        tester_domain: settings
            .domains
            .first()
            .cloned()
            .unwrap_or_else(|| "tester.localhost".to_owned()),
        own_domains: settings.domains.clone(),
        public_url: public_url.to_owned(),
    }
}

/// The weekly summary's settings, resolved.
fn summary_config(
    settings: &Settings,
    public_url: &str,
    hostname: &str,
) -> crate::summary::SummaryConfig {
    crate::summary::SummaryConfig {
        recipients: settings.summary_recipients.clone(),
        instance: hostname.to_owned(),
        tester_domain: reply_config(settings, public_url).tester_domain,
        public_url: public_url.to_owned(),
        retry: retry_policy(settings),
        max_queued: u32::try_from(settings.outgoing_queue_max).unwrap_or(u32::MAX),
    }
}

/// What `/replies` says of the settings.
fn replies_info(settings: &Settings) -> authcheck_web::RepliesInfo {
    let rate = |limit: authcheck_store::RateLimit| match limit.count {
        0 => "no limit".to_owned(),
        count => format!(
            "{count} per {}",
            humantime::format_duration(Duration::from_secs(limit.window_seconds as u64))
        ),
    };
    authcheck_web::RepliesInfo {
        scope: match settings.reply_by_mail {
            ReplyScope::Off => "off".to_owned(),
            ReplyScope::Check => "on, for messages to check@".to_owned(),
            ReplyScope::All => "on, for messages to check@, spf@ and dkim@".to_owned(),
        },
        per_address: rate(settings.reply_per_address),
        per_domain: rate(settings.reply_per_domain),
        per_client: rate(settings.reply_per_client),
    }
}

fn retry_policy(settings: &Settings) -> authcheck_outbound::RetryPolicy {
    authcheck_outbound::RetryPolicy {
        first_retry: settings.outgoing_retry,
        give_up_after: settings.outgoing_give_up,
    }
}

/// The outgoing queue worker's settings: signed like the self-check's messages. A smarthost
/// CA file that cannot be used stops the start here.
fn outgoing_config(
    settings: &Settings,
    self_check: &SelfCheckConfig,
    hostname: &str,
) -> Result<OutgoingConfig, ConfigError> {
    let route = match &settings.outgoing_smarthost {
        Some(target) => Route::Smarthost {
            target: target.clone(),
            tls: authcheck_outbound::SmarthostTls::new(
                settings.outgoing_smarthost_ca_file.as_deref(),
                settings.outgoing_smarthost_tls.is_implicit_for(target),
            )
            .map_err(|problem| invalid("outgoing_smarthost_ca_file", problem))?,
            credentials: settings
                .outgoing_smarthost_user
                .clone()
                .zip(settings.outgoing_smarthost_password.clone())
                .map(|(username, password)| authcheck_outbound::Credentials {
                    username,
                    password: password.0,
                }),
        },
        None => Route::Mx {
            port: settings.outgoing_mx_port,
            allow_inward: settings.outgoing_allow_private,
        },
    };
    Ok(OutgoingConfig {
        instance: hostname.to_owned(),
        domain: self_check.domain.clone(),
        selector: self_check.selector.clone(),
        route,
        timeout: settings.outgoing_timeout,
        retry: retry_policy(settings),
    })
}

/// The folder of a `sqlite://PATH` database (relative to the working directory, or absolute
/// with `sqlite:///`); `None` for PostgreSQL and in-memory databases.
fn sqlite_folder(database_url: &str) -> Option<std::path::PathBuf> {
    let path = database_url.strip_prefix("sqlite://")?;
    let path = path.split('?').next().unwrap_or(path);
    Some(
        std::path::Path::new(path)
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
    )
}

pub async fn serve(settings: Settings) -> Result<(), Failure> {
    let metrics = crate::metrics::install()?;
    let store = open_store(&settings).await?;
    let hostname = settings.hostname.clone().unwrap_or_else(machine_hostname);

    let dns = DnsConfig {
        servers: settings.dns_servers.clone(),
        ..DnsConfig::default()
    };
    let verifier = Verifier::new(VerifierConfig::new(hostname.clone(), dns))
        .map_err(|e| invalid("dns_servers", e.to_string()))?;

    // Settings::load makes sure the certificate and the key come together.
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => {
            authcheck_smtp::load_tls(cert, key).map_err(|e| invalid("tls_cert", e.to_string()))?
        }
        _ => authcheck_smtp::self_signed_tls(&hostname)
            .map_err(|e| invalid("tls_cert", e.to_string()))?,
    };

    // The self-check, replies and summaries sign with the tester's key.
    let summarizing = !settings.summary_recipients.is_empty();
    let sending_outgoing = settings.reply_by_mail != ReplyScope::Off || summarizing;
    let signing_mail = settings.self_check_interval.is_some() || sending_outgoing;
    let key_at_start = match signing_mail {
        true => crate::self_check::key_at_start(&key_place(&settings)).map_err(|error| {
            Failure::Usage(format!(
                "{error}; the self-check, replies by mail and weekly summaries are signed \
                 with this key (dkim_key)"
            ))
        })?,
        false => None,
    };

    let smtp_listener = bind("smtp_listen", settings.smtp_listen)?;
    let http_listener = bind("http_listen", settings.http_listen)?;
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => Some(bind("metrics_listen", addr)?),
        None => None,
    };
    let smtp_addr = smtp_listener.local_addr()?;
    let http_addr = http_listener.local_addr()?;
    let metrics_addr = match &metrics_listener {
        Some(listener) => listener.local_addr()?.to_string(),
        None => "off".to_owned(),
    };
    // Named after the port actually bound, which differs from the setting's with port 0.
    let public_url = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{http_addr}"));

    let (stop_tx, stop_rx) = watch::channel(false);

    let smtp_config = SmtpConfig {
        hostname: hostname.clone(),
        domains: settings.domains.clone(),
        max_message_size: settings.max_message_size,
        max_connections: settings.max_connections,
        max_connections_per_ip: settings.max_connections_per_ip,
        max_memory_in_flight: settings.max_memory_in_flight,
        messages_per_client: settings.messages_per_client,
        messages_per_sender_domain: settings.messages_per_sender_domain,
        rate_window: settings.rate_window,
        command_timeout: settings.command_timeout,
        tls: Some(tls),
        shutdown_grace: SHUTDOWN_GRACE,
        ..SmtpConfig::new(smtp_addr)
    };
    let dns = verifier.dns().clone();
    let source_namer = SourceNamer::start(store.clone(), dns.clone());
    let pool = VerificationPool::new(verifier, settings.verify_timeout)
        .context("cannot start the verification threads")?;
    let (sessions, session_writer) = SessionLog::start(store.clone(), pool.ptr_lookup());
    let delivery = Arc::new(TesterDelivery {
        pool,
        store: store.clone(),
        public_url: public_url.clone(),
        min_free_disk: settings.min_free_disk as u64,
        source_namer,
        report_gate: tokio::sync::Semaphore::new(crate::delivery::REPORTS_AT_ONCE),
        sessions,
        replies: (settings.reply_by_mail != ReplyScope::Off).then(|| Replies {
            config: reply_config(&settings, &public_url),
            store: store.clone(),
        }),
    });
    let mut smtp_stop = stop_rx.clone();
    let smtp = tokio::spawn(authcheck_smtp::run(
        smtp_listener,
        smtp_config,
        delivery,
        async move {
            let _ = smtp_stop.changed().await;
        },
    ));

    let self_check = self_check_config(&settings, smtp_addr, &hostname);
    let dkim_record = Arc::new(std::sync::OnceLock::new());
    let web_config = WebConfig {
        domains: settings.domains.clone(),
        public_url: public_url.clone(),
        hostname: hostname.clone(),
        status: StatusInfo {
            interval: settings.self_check_interval,
            target: self_check.target.clone(),
            dkim_record_name: self_check.record_name(),
            dkim_record: dkim_record.clone(),
        },
        replies: replies_info(&settings),
        public_results: settings.public_results,
        private_tests: authcheck_web::PrivateTestsConfig {
            lifetime: settings.private_test_lifetime,
            max_open: u32::try_from(settings.max_private_tests).unwrap_or(u32::MAX),
            per_client_per_hour: settings.private_tests_per_client,
        },
    };
    let site = authcheck_web::router(store.clone(), web_config);
    let mut web = tokio::spawn(authcheck_web::serve(
        http_listener,
        site,
        settings.http_limits(),
        stopped(stop_rx.clone()),
    ));
    let operators = metrics_listener.map(|listener| {
        let routes = crate::metrics::router(metrics, store.clone());
        tokio::spawn(authcheck_web::serve(
            listener,
            routes,
            settings.http_limits(),
            stopped(stop_rx.clone()),
        ))
    });

    let purge = tokio::spawn(purge_periodically(
        store.clone(),
        Retention::of(&settings),
        stop_rx.clone(),
    ));
    // A key still to be made is made once, off the start's path: that takes a moment.
    let outgoing = match sending_outgoing {
        true => Some(outgoing_config(&settings, &self_check, &hostname)?),
        false => None,
    };
    let signing = signing_mail.then(|| {
        let (key_place, record_name) = (self_check.key_place.clone(), self_check.record_name());
        let self_check = settings
            .self_check_interval
            .map(|interval| SelfCheckConfig {
                interval,
                ..self_check.clone()
            });
        let summary = summarizing.then(|| crate::summary::Summarizer {
            config: summary_config(&settings, &public_url, &hostname),
            store: store.clone(),
        });
        let (store, stop) = (store.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let Some(key) =
                crate::self_check::load_key(key_place, key_at_start, &store, record_name).await
            else {
                return;
            };
            let _ = dkim_record.set(key.dns_record());
            let checks = async {
                if let Some(config) = self_check {
                    crate::self_check::run_periodically(
                        config,
                        key.clone(),
                        store.clone(),
                        stop.clone(),
                    )
                    .await;
                }
            };
            let sending = async {
                if let Some(config) = outgoing {
                    let sender =
                        crate::outgoing::Sender::new(config, key.clone(), store.clone(), dns);
                    crate::outgoing::run_periodically(sender, stop.clone()).await;
                }
            };
            let summaries = async {
                if let Some(summarizer) = summary {
                    crate::summary::run_periodically(summarizer, stop.clone()).await;
                }
            };
            tokio::join!(checks, sending, summaries);
        })
    });

    tracing::info!(
        smtp = %smtp_addr,
        http = %http_addr,
        metrics = %metrics_addr,
        public_url = %public_url,
        domains = %settings.domains.join(","),
        "authcheck is running"
    );
    // A line for people and scripts that start the service with port 0.
    println!(
        "authcheck: smtp listening on {smtp_addr}, http listening on {http_addr}, \
         metrics listening on {metrics_addr}, results at {public_url}"
    );

    shutdown_requested().await;
    tracing::info!("shutting down: no new connections; letting sessions in flight finish");
    let _ = stop_tx.send(true);
    let _ = smtp.await;
    // The listener and its delivery are gone, so the session log's queue is closed: what
    // is left in it is written before the store closes.
    if tokio::time::timeout(SESSION_LOG_GRACE, session_writer)
        .await
        .is_err()
    {
        tracing::warn!("the SMTP session log could not be written in time at shutdown");
    }
    // Open result pages hold event streams; they get a moment to close, then are cut.
    if tokio::time::timeout(WEB_SHUTDOWN_GRACE, &mut web)
        .await
        .is_err()
    {
        web.abort();
    }
    if let Some(mut operators) = operators
        && tokio::time::timeout(WEB_SHUTDOWN_GRACE, &mut operators)
            .await
            .is_err()
    {
        operators.abort();
    }
    let _ = purge.await;
    if let Some(signing) = signing {
        let _ = signing.await;
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use authcheck_store::{
        Mailbox, NewRejectedReport, NewReport, NewResult, ReportInsert, ReportKind, SessionFacts,
    };
    use chrono::{DateTime, Utc};

    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn result(received_at: DateTime<Utc>) -> NewResult {
        let json = |text: &str| serde_json::value::RawValue::from_string(text.to_owned()).unwrap();
        NewResult {
            mailbox: Mailbox::Spf,
            received_at,
            session: SessionFacts {
                client_ip: "192.0.2.1".into(),
                client_port: 25,
                client_ptr: None,
                client_ptr_confirmed: false,
                helo: "sender.example".into(),
                tls_version: None,
                tls_cipher: None,
                mail_from: "a@sender.example".into(),
                recipient: "spf@tester.example".into(),
                size: 10,
            },
            header_from: None,
            subject: None,
            verdict: "|OK| spf-pass".into(),
            prefixed_subject: "|OK| spf-pass".into(),
            report: json("{}"),
            report_summary: json("{}"),
            raw_message: b"Subject: x\r\n\r\n".to_vec().into(),
            private_test: None,
        }
    }

    fn report(report_id: &str, received_at: DateTime<Utc>) -> NewReport {
        NewReport {
            kind: ReportKind::Aggregate,
            reporter: "receiver.example".into(),
            report_id: report_id.into(),
            domain: "example.org".into(),
            date_begin: 0,
            date_end: 0,
            received_at: received_at.timestamp(),
            report: serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
            raw: b"<feedback/>".to_vec(),
            records: Vec::new(),
            policy: None,
        }
    }

    /// The clock is passed in: at `now`, results past `retention` and reports past
    /// `dmarc_retention` go, each by its own setting, and nothing younger.
    #[tokio::test]
    async fn the_purge_applies_each_retention_to_its_own_data() {
        let store = authcheck_store::open("sqlite::memory:").await.unwrap();
        let now = Utc::now();
        let ago = |age: Duration| now - chrono::Duration::from_std(age).unwrap();
        let old_result = store.insert(vec![result(ago(8 * DAY))]).await.unwrap();
        let new_result = store.insert(vec![result(ago(6 * DAY))]).await.unwrap();
        let ReportInsert::Stored(old_report) = store
            .insert_report(report("old", ago(401 * DAY)))
            .await
            .unwrap()
        else {
            panic!("stored");
        };
        let ReportInsert::Stored(kept_report) = store
            .insert_report(report("kept", ago(399 * DAY)))
            .await
            .unwrap()
        else {
            panic!("stored");
        };
        // A week-old report outlives the results' retention.
        let ReportInsert::Stored(week_old_report) = store
            .insert_report(report("week", ago(8 * DAY)))
            .await
            .unwrap()
        else {
            panic!("stored");
        };
        store
            .insert_rejected_report(NewRejectedReport {
                received_at: ago(500 * DAY).timestamp(),
                source: "smtp:rua@tester.example".into(),
                reason: "unreadable".into(),
                raw: vec![0],
            })
            .await
            .unwrap();

        let expired = store
            .create_private_test(now.timestamp() - 7200, now.timestamp(), 10)
            .await
            .unwrap()
            .unwrap();
        let open = store
            .create_private_test(now.timestamp(), now.timestamp() + 1, 10)
            .await
            .unwrap()
            .unwrap();

        let retention = Retention {
            results: 7 * DAY,
            reports: 400 * DAY,
        };
        let purged = purge_once(&store, retention, now).await.unwrap();
        assert_eq!(
            purged,
            Purged {
                results: 1,
                reports: 2,
                private_tests: 1,
            }
        );
        assert!(store.private_test(expired.token).await.unwrap().is_none());
        assert!(store.private_test(open.token).await.unwrap().is_some());
        assert!(store.get(&old_result[0]).await.unwrap().is_none());
        assert!(store.get(&new_result[0]).await.unwrap().is_some());
        assert!(store.get_report(&old_report).await.unwrap().is_none());
        assert!(store.get_report(&kept_report).await.unwrap().is_some());
        assert!(store.get_report(&week_old_report).await.unwrap().is_some());
        assert!(store.list_rejected_reports(10).await.unwrap().is_empty());

        // Two days later by the clock, the 399-day-old report is past its retention too.
        let purged = purge_once(&store, retention, now + chrono::Duration::days(2))
            .await
            .unwrap();
        assert_eq!(purged.reports, 1);
        assert!(store.get_report(&kept_report).await.unwrap().is_none());
        store.close().await;
    }
}
