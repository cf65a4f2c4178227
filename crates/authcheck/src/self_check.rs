//! The self-check, a scheduled task: every `self_check_interval` the service composes a real
//! message, signs it with the tester's own DKIM key, delivers it over SMTP to
//! `self_check_target` (by default its own listener), reads the result id from the 250 reply
//! and the stored result from the store, and records what happened, so that `/status` shows
//! whether mail actually gets through and how long its result takes.
//!
//! The clock is passed in ([`SelfChecker::run_once`] takes `now`), so tests move time instead
//! of waiting ten minutes. Instances sharing one database check each target once per interval:
//! the first to claim the interval's slot runs it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use authcheck_outbound::{KeyError, KeyOrigin, Outgoing, Server, SigningKey, deliver};
use authcheck_store::{SelfCheck, SharedStore, StoreError};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// Each network wait of one delivery: as long as a mail server waits for a slow peer's reply
/// would be far too long for a health check.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the stored result may take to be readable after the 250 (another instance on the
/// same PostgreSQL wrote it, or a replica lags).
const RESULT_PATIENCE: Duration = Duration::from_secs(10);
const RESULT_POLL: Duration = Duration::from_millis(100);
/// The step named for a message that was taken but whose result cannot be read back.
pub const RESULT_STEP: &str = "result";

/// What one instance's self-check needs, from the settings.
#[derive(Clone, Debug)]
pub struct SelfCheckConfig {
    pub interval: Duration,
    /// `HOST:PORT`.
    pub target: String,
    /// This instance's host name: the EHLO name and the name its checks are shown under.
    pub instance: String,
    /// The first tester domain: the message goes from `check@` to `spf@` it, signed for it.
    pub domain: String,
    pub selector: String,
    pub key_place: KeyPlace,
}

/// Where the tester's DKIM key is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPlace {
    /// A PKCS#8 PEM file (the `dkim_key` setting, or `dkim.key` beside a SQLite database),
    /// made at first start when missing.
    File(PathBuf),
    /// The database, when it is PostgreSQL and no file is set: several instances share it,
    /// so they must share one key, or each would need its own DNS record.
    Store,
}

impl SelfCheckConfig {
    /// `<selector>._domainkey.<domain>`, where the key's record is published.
    pub fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }
}

/// Runs self-checks with one key against one store.
pub struct SelfChecker {
    config: SelfCheckConfig,
    key: SigningKey,
    store: SharedStore,
}

impl SelfChecker {
    pub fn new(config: SelfCheckConfig, key: SigningKey, store: SharedStore) -> SelfChecker {
        SelfChecker { config, key, store }
    }

    /// Runs the check of the interval that holds `now`, unless an instance claimed it already
    /// (then `None`), and records it.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<Option<SelfCheck>, StoreError> {
        let interval = self.config.interval.as_secs().max(1) as i64;
        let slot = now.timestamp().div_euclid(interval);
        let claimed = self
            .store
            .claim_self_check(
                &self.config.target,
                slot,
                &self.config.instance,
                now.timestamp(),
            )
            .await?;
        if !claimed {
            return Ok(None);
        }
        let check = self.check(now).await;
        self.store.insert_self_check(check.clone()).await?;
        record_metrics(&check, now);
        Ok(Some(check))
    }

    async fn check(&self, now: DateTime<Utc>) -> SelfCheck {
        let config = &self.config;
        let mut check = SelfCheck {
            instance: config.instance.clone(),
            target: config.target.clone(),
            started_at: now.timestamp(),
            ok: false,
            failed_step: None,
            failure: None,
            tls: None,
            duration_ms: None,
            result_id: None,
            verdicts: None,
        };
        let fail = |check: &mut SelfCheck, step: &str, why: String| {
            check.failed_step = Some(step.to_owned());
            check.failure = Some(why);
        };
        let sender = format!("check@{}", config.domain);
        let recipients = [format!("spf@{}", config.domain)];
        let message = match self.key.sign(
            &compose(config, now).into_bytes(),
            &config.domain,
            &config.selector,
        ) {
            Ok(message) => message,
            Err(error) => {
                fail(&mut check, "sign", error.to_string());
                return check;
            }
        };
        let server = match resolve(config).await {
            Ok(server) => server,
            Err(why) => {
                fail(&mut check, "connect", why);
                return check;
            }
        };
        let outgoing = Outgoing {
            helo: &config.instance,
            mail_from: &sender,
            recipients: &recipients,
            message: &message,
        };
        let started = Instant::now();
        let elapsed_ms =
            |started: Instant| started.elapsed().as_millis().min(i64::MAX as u128) as i64;
        let delivered = deliver(&server, &outgoing, DELIVERY_TIMEOUT).await;
        let delivered = match delivered {
            Ok(delivered) => delivered,
            Err(failure) => {
                check.tls = failure.tls.clone();
                check.duration_ms = Some(elapsed_ms(started));
                let why = match &failure.reply {
                    Some(reply) => reply.to_string(),
                    None => failure.detail.clone(),
                };
                fail(&mut check, &failure.step.to_string(), why);
                return check;
            }
        };
        check.tls = delivered.tls;
        let Some(id) = stored_id(&delivered.reply.text) else {
            check.duration_ms = Some(elapsed_ms(started));
            let why = format!("the reply named no stored result: {}", delivered.reply);
            fail(&mut check, RESULT_STEP, why);
            return check;
        };
        check.result_id = Some(id.clone());
        match self.read_result(&id).await {
            Ok(verdict) => {
                check.duration_ms = Some(elapsed_ms(started));
                check.verdicts = Some(verdict);
                check.ok = true;
            }
            Err(why) => {
                check.duration_ms = Some(elapsed_ms(started));
                fail(&mut check, RESULT_STEP, why);
            }
        }
        check
    }

    /// The verdict of the stored result `id`, waiting a bounded time for it to appear.
    async fn read_result(&self, id: &str) -> Result<String, String> {
        let deadline = Instant::now() + RESULT_PATIENCE;
        loop {
            match self.store.get(id).await {
                Ok(Some(result)) => return Ok(result.summary.verdict),
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(RESULT_POLL).await,
                Ok(None) => {
                    return Err(format!(
                        "result {id} was not in this instance's database after {}s",
                        RESULT_PATIENCE.as_secs()
                    ));
                }
                Err(error) => return Err(format!("cannot read result {id}: {error}")),
            }
        }
    }
}

/// The message: a real one, with every field a receiver expects.
fn compose(config: &SelfCheckConfig, now: DateTime<Utc>) -> String {
    let domain = &config.domain;
    format!(
        "From: authcheck self-check <check@{domain}>\r\n\
         To: <spf@{domain}>\r\n\
         Subject: authcheck self-check {time}\r\n\
         Date: {date}\r\n\
         Message-ID: <self-check.{millis}.{instance}@{domain}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         This message was sent by {instance}'s self-check to {target} at {time}.\r\n",
        time = now.format("%Y-%m-%d %H:%M:%S UTC"),
        date = now.to_rfc2822(),
        millis = now.timestamp_millis(),
        instance = config.instance,
        target = config.target,
    )
}

/// The server to deliver to: the first address the target's host resolves to.
async fn resolve(config: &SelfCheckConfig) -> Result<Server, String> {
    let mut addrs = tokio::net::lookup_host(config.target.as_str())
        .await
        .map_err(|error| format!("cannot resolve {}: {error}", config.target))?;
    let addr = addrs
        .next()
        .ok_or_else(|| format!("{} has no address", config.target))?;
    let host = config
        .target
        .rsplit_once(':')
        .map_or("", |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    // A TLS server name must be a name; an address target gets this instance's.
    let name = if host.parse::<std::net::IpAddr>().is_ok() {
        config.instance.clone()
    } else {
        host.to_owned()
    };
    Ok(Server { addr, name })
}

/// The first result id of a `250 2.0.0 Stored as <id>: <url>[; ...]` reply.
fn stored_id(reply: &str) -> Option<String> {
    let (_, list) = reply.split_once("Stored as ")?;
    let (id, _) = list.split_once(':')?;
    let id = id.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric())).then(|| id.to_owned())
}

fn record_metrics(check: &SelfCheck, now: DateTime<Utc>) {
    if let Some(ms) = check.duration_ms {
        metrics::gauge!("authcheck_self_check_duration_seconds").set(ms as f64 / 1000.0);
    }
    if check.ok {
        metrics::gauge!("authcheck_self_check_last_success_timestamp_seconds")
            .set(now.timestamp() as f64);
    } else {
        metrics::counter!("authcheck_self_check_failures_total").increment(1);
    }
}

/// The name of the tester's key in the store ([`KeyPlace::Store`]).
const STORED_KEY_NAME: &str = "dkim";

/// The key file's key when the file is there. It is read as the service starts, so that a key
/// the operator cannot use (unreadable, not a key, or in a folder that does not exist) stops
/// the start with the reason, status 2, rather than turning the self-check and outgoing mail
/// off in a log line. `None` when the key is still to be made, or is kept in the store:
/// [`load_key`] does that off the start's path, as making a key takes a moment.
pub fn key_at_start(place: &KeyPlace) -> Result<Option<SigningKey>, KeyError> {
    let KeyPlace::File(path) = place else {
        return Ok(None);
    };
    let key = SigningKey::load(path)?;
    if key.is_none()
        && let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        && !folder.is_dir()
    {
        return Err(KeyError::Write {
            path: path.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("there is no folder {}", folder.display()),
            ),
        });
    }
    Ok(key)
}

/// The tester's DKIM key: `at_start` when [`key_at_start`] read it, otherwise loaded from
/// `place` (made at first start, with the record to publish at `record_name` logged at INFO);
/// `None`, with an ERROR logged, when it cannot be made or the store cannot keep it: the
/// self-check and outgoing mail then stay off.
pub async fn load_key(
    place: KeyPlace,
    at_start: Option<SigningKey>,
    store: &SharedStore,
    record_name: String,
) -> Option<SigningKey> {
    if at_start.is_some() {
        return at_start;
    }
    let loaded = match &place {
        KeyPlace::File(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || SigningKey::load_or_generate(&path))
                .await
                .map_err(|error| error.to_string())
                .and_then(|loaded| loaded.map_err(|error| error.to_string()))
        }
        KeyPlace::Store => stored_key(store).await,
    };
    match loaded {
        Ok((key, origin)) => {
            if origin == KeyOrigin::Generated {
                tracing::info!(
                    place = ?place,
                    "made the tester's DKIM key; publish {record_name} TXT \"{}\"",
                    key.dns_record()
                );
            }
            Some(key)
        }
        Err(error) => {
            tracing::error!(
                %error,
                "the self-check and outgoing mail are off: set dkim_key to a readable key file or a path where one can be made"
            );
            None
        }
    }
}

/// The key kept in the store, or a new one kept there now. Instances starting together on a
/// new database may each make one; the store keeps the first, and every instance uses it.
async fn stored_key(store: &SharedStore) -> Result<(SigningKey, KeyOrigin), String> {
    let kept = store
        .signing_key(STORED_KEY_NAME)
        .await
        .map_err(|error| format!("the database cannot read the key: {error}"))?;
    if let Some(kept) = kept {
        // Making a key costs a fraction of a second of CPU: not at every start.
        return key_from_store(&kept);
    }
    let made = tokio::task::spawn_blocking(SigningKey::generate)
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| error.to_string())?;
    let made_pem = made.pkcs8_pem().map_err(|error| error.to_string())?;
    let kept = store
        .signing_key_or_keep(STORED_KEY_NAME, &made_pem, Utc::now().timestamp())
        .await
        .map_err(|error| format!("the database cannot keep the key: {error}"))?;
    if *kept == *made_pem {
        return Ok((made, KeyOrigin::Generated));
    }
    key_from_store(&kept)
}

fn key_from_store(pem: &str) -> Result<(SigningKey, KeyOrigin), String> {
    SigningKey::from_pem(pem)
        .map(|key| (key, KeyOrigin::Loaded))
        .map_err(|reason| format!("the key kept in the database is not a PKCS#8 RSA key: {reason}"))
}

/// Runs a check every interval with `key`, the first one interval after start, until `stop`.
pub async fn run_periodically(
    config: SelfCheckConfig,
    key: SigningKey,
    store: SharedStore,
    stop: watch::Receiver<bool>,
) {
    let interval = config.interval;
    let checker = SelfChecker::new(config, key, store);
    let first_run = tokio::time::Instant::now() + interval;
    let checker = &checker;
    crate::schedule::repeat(first_run, interval, stop, |now| async move {
        match checker.run_once(now).await {
            Ok(Some(check)) if !check.ok => tracing::warn!(
                target_server = %check.target,
                step = check.failed_step.as_deref().unwrap_or(""),
                failure = check.failure.as_deref().unwrap_or(""),
                "self-check failed"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "self-check could not be recorded"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(target: String) -> SelfCheckConfig {
        SelfCheckConfig {
            interval: Duration::from_secs(600),
            target,
            instance: "a.authcheck.test".into(),
            domain: "tester.test".into(),
            selector: "authcheck".into(),
            key_place: KeyPlace::File(PathBuf::from("unused")),
        }
    }

    async fn closed_port() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().to_string()
    }

    /// The clock is passed in: one check per interval slot, again in the next slot, and a
    /// refused connection recorded with its step.
    #[tokio::test]
    async fn one_check_per_interval_and_a_refused_connection_is_recorded() {
        let store = authcheck_store::open("sqlite::memory:").await.unwrap();
        let checker = SelfChecker::new(
            config(closed_port().await),
            SigningKey::generate().unwrap(),
            store.clone(),
        );
        let start = DateTime::parse_from_rfc3339("2026-11-30T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let first = checker.run_once(start).await.unwrap().expect("runs");
        assert!(!first.ok);
        assert_eq!(first.failed_step.as_deref(), Some("connect"));
        assert!(first.failure.is_some());
        let same_slot = start + chrono::Duration::seconds(599);
        assert_eq!(checker.run_once(same_slot).await.unwrap(), None);
        let next_slot = start + chrono::Duration::seconds(600);
        assert!(checker.run_once(next_slot).await.unwrap().is_some());
        let listed = store.self_checks_since(0).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1], first);
    }

    /// The self-check's message is automatic mail (RFC 3834): the reply rules refuse it, so
    /// with replies on for every mailbox the tester does not answer itself every interval.
    #[test]
    fn the_self_check_message_gets_no_reply() {
        let message = compose(&config("127.0.0.1:25".into()), Utc::now());
        let header = crate::reply::HeaderFacts::of(message.as_bytes());
        assert_eq!(header.auto_submitted.as_deref(), Some("auto-generated"));
    }

    #[test]
    fn the_result_id_comes_from_the_stored_reply() {
        assert_eq!(
            stored_id("2.0.0 Stored as 0a1b: http://t/r/0a1b; 2c3d: http://t/r/2c3d").as_deref(),
            Some("0a1b")
        );
        assert_eq!(stored_id("2.0.0 message accepted"), None);
    }
}
