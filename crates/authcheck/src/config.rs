//! The service's settings: the TOML file, then `AUTHCHECK_*` environment variables, then flags,
//! later ones winning, over the built-in defaults.
//!
//! Every problem is reported as one line that names the setting, so an operator can fix it
//! without reading code: `invalid setting smtp_listen: "x" is not an ADDR:PORT`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::ServiceArgs;

pub const DEFAULT_SMTP_LISTEN: &str = "127.0.0.1:2525";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DOMAIN: &str = "tester.localhost";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/authcheck.db";
/// As the hosted testers keep them.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// As Postfix's smtpd_client_connection_count_limit.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 50;
/// RFC 5321 section 4.5.3.2 asks servers to wait at least 5 minutes for a command.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// A setting that cannot be used; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {problem}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

fn invalid(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The settings after layering and validation.
#[derive(Clone, Debug)]
pub struct Settings {
    pub smtp_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub domains: Vec<String>,
    pub hostname: String,
    pub dns_servers: Vec<SocketAddr>,
    pub database_url: String,
    pub public_url: String,
    pub retention: Duration,
    pub max_message_size: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_memory_in_flight: usize,
    pub messages_per_client: u32,
    pub messages_per_sender_domain: u32,
    pub rate_window: Duration,
    pub command_timeout: Duration,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub log_format: LogFormat,
}

/// The `--config` file: the same settings as the flags, snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    smtp_listen: Option<String>,
    http_listen: Option<String>,
    #[serde(default)]
    domains: Vec<String>,
    hostname: Option<String>,
    #[serde(default)]
    dns_servers: Vec<String>,
    database_url: Option<String>,
    public_url: Option<String>,
    retention: Option<String>,
    max_message_size: Option<toml::Value>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_memory_in_flight: Option<toml::Value>,
    messages_per_client: Option<u32>,
    messages_per_sender_domain: Option<u32>,
    rate_window: Option<String>,
    command_timeout: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log_format: Option<String>,
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid("config", format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        let message = e.message().to_string();
        invalid("config", format!("{}: {message}", path.display()))
    })
}

fn first_non_empty<T: Clone>(a: &[T], b: &[T]) -> Vec<T> {
    if a.is_empty() { b.to_vec() } else { a.to_vec() }
}

impl Settings {
    /// Layers flags and environment (already merged by clap) over the file and the defaults.
    pub fn load(args: &ServiceArgs) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };

        let smtp_listen = parse_addr(
            "smtp_listen",
            args.smtp_listen
                .as_deref()
                .or(file.smtp_listen.as_deref())
                .unwrap_or(DEFAULT_SMTP_LISTEN),
        )?;
        let http_listen = parse_addr(
            "http_listen",
            args.http_listen
                .as_deref()
                .or(file.http_listen.as_deref())
                .unwrap_or(DEFAULT_HTTP_LISTEN),
        )?;

        let mut domains = first_non_empty(&args.domains, &file.domains);
        if domains.is_empty() {
            domains.push(DEFAULT_DOMAIN.to_string());
        }
        let domains = domains
            .iter()
            .map(|d| parse_domain("domain", d))
            .collect::<Result<Vec<_>, _>>()?;

        let hostname = match args.hostname.clone().or(file.hostname) {
            Some(name) => parse_domain("hostname", &name)?,
            None => machine_hostname(),
        };

        let dns_servers = first_non_empty(&args.dns_servers, &file.dns_servers)
            .iter()
            .map(|s| parse_addr("dns_server", s))
            .collect::<Result<Vec<_>, _>>()?;

        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                format!(
                    "{database_url:?} is neither sqlite://PATH nor postgres://USER:PASS@HOST/DB"
                ),
            ));
        }

        let public_url = match args.public_url.clone().or(file.public_url) {
            Some(url) => parse_public_url(&url)?,
            None => format!("http://{http_listen}"),
        };

        let retention = match args.retention.as_deref().or(file.retention.as_deref()) {
            Some(text) => parse_duration("retention", text)?,
            None => DEFAULT_RETENTION,
        };

        let max_message_size = size_setting(
            "max_message_size",
            args.max_message_size.as_deref(),
            file.max_message_size.as_ref(),
            DEFAULT_MAX_MESSAGE_SIZE,
        )?;
        let max_memory_in_flight = size_setting(
            "max_memory_in_flight",
            args.max_memory_in_flight.as_deref(),
            file.max_memory_in_flight.as_ref(),
            authcheck_smtp::DEFAULT_MAX_MEMORY_IN_FLIGHT,
        )?;
        if max_memory_in_flight < max_message_size {
            return Err(invalid(
                "max_memory_in_flight",
                format!(
                    "{max_memory_in_flight} bytes is less than max_message_size ({max_message_size}): no message of the largest size could be taken"
                ),
            ));
        }
        let messages_per_client = args
            .messages_per_client
            .or(file.messages_per_client)
            .unwrap_or(authcheck_smtp::DEFAULT_MESSAGES_PER_CLIENT);
        let messages_per_sender_domain = args
            .messages_per_sender_domain
            .or(file.messages_per_sender_domain)
            .unwrap_or(authcheck_smtp::DEFAULT_MESSAGES_PER_SENDER_DOMAIN);
        let rate_window = match args.rate_window.as_deref().or(file.rate_window.as_deref()) {
            Some(text) => parse_duration("rate_window", text)?,
            None => authcheck_smtp::DEFAULT_RATE_WINDOW,
        };

        let max_connections = positive(
            "max_connections",
            args.max_connections
                .or(file.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
        )?;
        let max_connections_per_ip = positive(
            "max_connections_per_ip",
            args.max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_IP),
        )?;

        let command_timeout = match args
            .command_timeout
            .as_deref()
            .or(file.command_timeout.as_deref())
        {
            Some(text) => parse_duration("command_timeout", text)?,
            None => DEFAULT_COMMAND_TIMEOUT,
        };

        let tls = match (
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "tls_key",
                    "tls_cert is set but tls_key is not; give both",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls_cert",
                    "tls_key is set but tls_cert is not; give both",
                ));
            }
        };

        let log_format = match args
            .log_format
            .as_deref()
            .or(file.log_format.as_deref())
            .unwrap_or("text")
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("{other:?} is neither text nor json"),
                ));
            }
        };

        Ok(Settings {
            smtp_listen,
            http_listen,
            domains,
            hostname,
            dns_servers,
            database_url,
            public_url,
            retention,
            max_message_size,
            max_connections,
            max_connections_per_ip,
            max_memory_in_flight,
            messages_per_client,
            messages_per_sender_domain,
            rate_window,
            command_timeout,
            tls,
            log_format,
        })
    }
}

fn parse_addr(setting: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.trim().parse().map_err(|_| {
        invalid(
            setting,
            format!("{text:?} is not an ADDR:PORT such as 127.0.0.1:2525"),
        )
    })
}

fn parse_domain(setting: &'static str, text: &str) -> Result<String, ConfigError> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid_label = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(invalid(setting, format!("{text:?} is not a domain name")));
    }
    Ok(name)
}

fn parse_public_url(text: &str) -> Result<String, ConfigError> {
    let url = text.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(url.to_string())
        }
        _ => Err(invalid(
            "public_url",
            format!("{text:?} is not an http:// or https:// URL"),
        )),
    }
}

/// Accepts humantime forms: `7d`, `12h`, `30m`, `1h 30m`.
pub fn parse_duration(setting: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        invalid(
            setting,
            format!("{text:?} is not a duration such as 7d or 12h ({e})"),
        )
    })?;
    if duration.is_zero() {
        return Err(invalid(setting, "must be longer than zero"));
    }
    Ok(duration)
}

/// Accepts `10485760`, `10M`, `10MiB`, `512K`, `512KiB` (K/M are powers of 1024 as for mail sizes).
/// A size in bytes from a flag or the environment (text), or the file (text or a number).
fn size_setting(
    setting: &'static str,
    arg: Option<&str>,
    file: Option<&toml::Value>,
    default: usize,
) -> Result<usize, ConfigError> {
    match (arg, file) {
        (Some(text), _) => parse_size(setting, text),
        (None, Some(toml::Value::Integer(n))) if *n > 0 => Ok(*n as usize),
        (None, Some(toml::Value::String(text))) => parse_size(setting, text),
        (None, Some(other)) => Err(invalid(setting, format!("{other} is not a size in bytes"))),
        (None, None) => Ok(default),
    }
}

fn parse_size(setting: &'static str, text: &str) -> Result<usize, ConfigError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => 0,
    };
    match digits.parse::<usize>() {
        Ok(n) if n > 0 && multiplier > 0 => Ok(n.saturating_mul(multiplier)),
        _ => Err(invalid(
            setting,
            format!("{text:?} is not a size such as 10485760 or 10MiB"),
        )),
    }
}

fn positive(setting: &'static str, n: usize) -> Result<usize, ConfigError> {
    if n == 0 {
        Err(invalid(setting, "must be at least 1"))
    } else {
        Ok(n)
    }
}

/// The machine's host name, for the greeting and authserv-id when none is configured.
pub(crate) fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServiceArgs {
        ServiceArgs::default()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::load(&args()).unwrap();
        assert_eq!(s.smtp_listen.to_string(), DEFAULT_SMTP_LISTEN);
        assert_eq!(s.http_listen.to_string(), DEFAULT_HTTP_LISTEN);
        assert_eq!(s.domains, vec![DEFAULT_DOMAIN]);
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.retention, DEFAULT_RETENTION);
        assert_eq!(s.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
        assert!(s.tls.is_none());
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authcheck.toml");
        std::fs::write(
            &path,
            "smtp_listen = \"127.0.0.1:2600\"\nhttp_listen = \"127.0.0.1:8100\"\ndomains = [\"a.test\", \"b.test\"]\nretention = \"2d\"\nmax_message_size = \"1MiB\"\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        a.http_listen = Some("127.0.0.1:9000".into());
        let s = Settings::load(&a).unwrap();
        assert_eq!(s.smtp_listen.to_string(), "127.0.0.1:2600");
        assert_eq!(s.http_listen.to_string(), "127.0.0.1:9000");
        assert_eq!(s.domains, vec!["a.test", "b.test"]);
        assert_eq!(s.retention, Duration::from_secs(2 * 24 * 3600));
        assert_eq!(s.max_message_size, 1024 * 1024);
        assert_eq!(s.public_url, "http://127.0.0.1:9000");
    }

    #[test]
    fn errors_name_the_setting() {
        let mut a = args();
        a.smtp_listen = Some("nowhere".into());
        assert_eq!(Settings::load(&a).unwrap_err().setting, "smtp_listen");

        let mut a = args();
        a.retention = Some("forever".into());
        assert_eq!(Settings::load(&a).unwrap_err().setting, "retention");

        let mut a = args();
        a.tls_cert = Some("cert.pem".into());
        assert_eq!(Settings::load(&a).unwrap_err().setting, "tls_key");

        let mut a = args();
        a.database_url = Some("mysql://x".into());
        assert_eq!(Settings::load(&a).unwrap_err().setting, "database_url");

        let mut a = args();
        a.domains = vec!["not a domain".into()];
        assert_eq!(Settings::load(&a).unwrap_err().setting, "domain");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "smtp_lisen = \"127.0.0.1:25\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        let err = Settings::load(&a).unwrap_err();
        assert_eq!(err.setting, "config");
        assert!(err.problem.contains("smtp_lisen"), "{err}");
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(
            parse_size("max_message_size", "10485760").unwrap(),
            10 * 1024 * 1024
        );
        assert_eq!(
            parse_size("max_message_size", "10MiB").unwrap(),
            10 * 1024 * 1024
        );
        assert_eq!(parse_size("max_message_size", "512K").unwrap(), 512 * 1024);
        assert!(parse_size("max_message_size", "0").is_err());
        assert!(parse_size("max_message_size", "ten").is_err());
    }
}
