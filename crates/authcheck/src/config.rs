//! The service's settings: each one defined once, in the [`settings!`] table below, with its
//! name (the TOML key), flag, `AUTHCHECK_*` environment variable, default and help. The
//! command line (`--help` included), the TOML file, the resolved [`Settings`] and the README's
//! settings table (checked by a test) all come from that table.
//!
//! Layering: the TOML file, then environment variables, then flags, later ones winning, over
//! the defaults. Every problem is reported as one line that names the setting, so an operator
//! can fix it without reading code: `invalid setting smtp_listen: "x" is not an ADDR:PORT`.
//!
//! To add a setting, add one entry to the table (and run the README test to get its row).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use authcheck_web::HttpLimits;

use crate::cli::ServiceArgs;
pub use crate::outgoing::SmarthostTlsMode;
pub use crate::reply::ReplyScope;
use authcheck_store::RateLimit;

/// A setting that cannot be used; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {problem}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub problem: String,
}

pub fn invalid(setting: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        problem: problem.into(),
    }
}

/// What a setting is when nothing sets it.
#[derive(Clone, Copy, Debug)]
pub enum DefaultValue {
    /// This text, read as if the operator had written it.
    Text(&'static str),
    /// No value; the text says what happens then.
    Unset(&'static str),
}

/// How many values a setting takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Exactly one, from its default when nothing sets it.
    One,
    /// One or none.
    Optional,
    /// A repeatable flag, a comma-separated environment variable, a TOML list.
    List,
}

/// One setting as an operator meets it.
#[derive(Debug)]
pub struct Setting {
    /// The TOML key, and the name errors use.
    pub name: &'static str,
    /// The flag, without its leading `--`.
    pub flag: &'static str,
    pub env: &'static str,
    /// The placeholder in `--help`: `--smtp-listen ADDR`.
    pub value_name: &'static str,
    pub shape: Shape,
    pub default: DefaultValue,
    pub help: &'static str,
}

impl Setting {
    /// The help text on one line.
    pub fn help_text(&self) -> String {
        self.help.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The default as `--help` and the README show it.
    pub fn default_text(&self) -> String {
        match self.default {
            DefaultValue::Text(text) => format!("`{text}`"),
            DefaultValue::Unset(meaning) => meaning.to_string(),
        }
    }
}

/// Declares the settings: for each, a doc comment (its help), `name: shape<Type>` (the
/// resolved field; `one`, `optional` or `list`), the parser from text, and the rest of its
/// definition. Produces [`SETTINGS`] and [`Settings`] with its `from_layers`.
macro_rules! settings {
    ($(
        $(#[doc = $help:literal])+
        $name:ident: $shape:ident<$ty:ty> = $parse:path {
            flag: $flag:literal,
            env: $env:literal,
            value: $value_name:literal,
            default: $default:expr $(,)?
        }
    )*) => {
        /// Every setting, in the order of `--help` and the README.
        pub static SETTINGS: &[Setting] = &[$(
            Setting {
                name: stringify!($name),
                flag: $flag,
                env: $env,
                value_name: $value_name,
                shape: settings!(@shape $shape),
                default: $default,
                help: concat!($($help, " "),+),
            },
        )*];

        /// The settings after layering and validation.
        #[derive(Clone, Debug)]
        pub struct Settings {
            $(
                $(#[doc = $help])+
                pub $name: settings!(@type $shape $ty),
            )*
        }

        impl Settings {
            fn from_layers(layers: &Layers<'_>) -> Result<Settings, ConfigError> {
                let mut definitions = SETTINGS.iter();
                Ok(Settings {
                    $(
                        $name: $shape(
                            definitions.next().expect("one definition per field"),
                            layers,
                            $parse,
                        )?,
                    )*
                })
            }
        }
    };
    (@shape one) => { Shape::One };
    (@shape optional) => { Shape::Optional };
    (@shape list) => { Shape::List };
    (@type one $ty:ty) => { $ty };
    (@type optional $ty:ty) => { Option<$ty> };
    (@type list $ty:ty) => { Vec<$ty> };
}

settings! {
    /// Address the SMTP listener binds.
    smtp_listen: one<SocketAddr> = parse_addr {
        flag: "smtp-listen", env: "AUTHCHECK_SMTP_LISTEN", value: "ADDR",
        default: DefaultValue::Text("127.0.0.1:2525"),
    }
    /// Address the web site binds.
    http_listen: one<SocketAddr> = parse_addr {
        flag: "http-listen", env: "AUTHCHECK_HTTP_LISTEN", value: "ADDR",
        default: DefaultValue::Text("127.0.0.1:8080"),
    }
    /// Address of the operators' listener: /metrics, /livez and /readyz apart from the public
    /// site; `off` serves none.
    metrics_listen: one<ListenOrOff> = parse_addr_or_off {
        flag: "metrics-listen", env: "AUTHCHECK_METRICS_LISTEN", value: "ADDR",
        default: DefaultValue::Text("127.0.0.1:9090"),
    }
    /// How long an HTTP client may take to send a request's line and headers; also how long a
    /// kept-alive connection may wait for its next request.
    http_header_timeout: one<Duration> = parse_duration {
        flag: "http-header-timeout", env: "AUTHCHECK_HTTP_HEADER_TIMEOUT", value: "DURATION",
        default: DefaultValue::Text("10s"),
    }
    /// How long an HTTP connection may move no byte either way before it is closed.
    http_idle_timeout: one<Duration> = parse_duration {
        flag: "http-idle-timeout", env: "AUTHCHECK_HTTP_IDLE_TIMEOUT", value: "DURATION",
        default: DefaultValue::Text("60s"),
    }
    /// How long a page or API request may take before it gets a 503.
    http_request_timeout: one<Duration> = parse_duration {
        flag: "http-request-timeout", env: "AUTHCHECK_HTTP_REQUEST_TIMEOUT", value: "DURATION",
        default: DefaultValue::Text("30s"),
    }
    /// Most HTTP connections served at once, per listener; more wait until one closes.
    http_max_connections: one<usize> = parse_count {
        flag: "http-max-connections", env: "AUTHCHECK_HTTP_MAX_CONNECTIONS", value: "N",
        default: DefaultValue::Text("1024"),
    }
    /// A tester domain; repeat for several.
    domains: list<String> = parse_domain {
        flag: "domain", env: "AUTHCHECK_DOMAIN", value: "NAME",
        default: DefaultValue::Text("tester.localhost"),
    }
    /// Name in the SMTP greeting and the Authentication-Results authserv-id.
    hostname: optional<String> = parse_domain {
        flag: "hostname", env: "AUTHCHECK_HOSTNAME", value: "NAME",
        default: DefaultValue::Unset("the machine's host name"),
    }
    /// Nameserver to ask; repeat for several.
    dns_servers: list<SocketAddr> = parse_addr {
        flag: "dns-server", env: "AUTHCHECK_DNS_SERVER", value: "ADDR:PORT",
        default: DefaultValue::Unset("the system resolver"),
    }
    /// Database: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB.
    database_url: one<String> = parse_database_url {
        flag: "database-url", env: "AUTHCHECK_DATABASE_URL", value: "URL",
        default: DefaultValue::Text("sqlite://data/authcheck.db"),
    }
    /// How long `serve`, `migrate` and `purge` keep trying to reach the database at start
    /// (0: one attempt); still unreachable, they exit with status 75.
    database_connect_timeout: one<Duration> = parse_duration_or_zero {
        flag: "database-connect-timeout", env: "AUTHCHECK_DATABASE_CONNECT_TIMEOUT",
        value: "DURATION",
        default: DefaultValue::Text("30s"),
    }
    /// How result links are written.
    public_url: optional<String> = parse_public_url {
        flag: "public-url", env: "AUTHCHECK_PUBLIC_URL", value: "URL",
        default: DefaultValue::Unset("`http://` + the HTTP address"),
    }
    /// How long results are kept, e.g. 7d, 12h.
    retention: one<Duration> = parse_duration {
        flag: "retention", env: "AUTHCHECK_RETENTION", value: "DURATION",
        default: DefaultValue::Text("7d"),
    }
    /// How long DMARC reports (with their raw messages) and rejected reports are kept after
    /// they were received, e.g. 400d: long enough to compare months.
    dmarc_retention: one<Duration> = parse_duration {
        flag: "dmarc-retention", env: "AUTHCHECK_DMARC_RETENTION", value: "DURATION",
        default: DefaultValue::Text("400d"),
    }
    /// Whether the result lists are public (/spf, /dkim, /check, the front page's latest
    /// results, the live feed, /api/v1/results, /stats, the SMTP log); `false` turns them all off, so
    /// every result is readable only at its own address and the front page offers only
    /// private test addresses.
    public_results: one<bool> = parse_bool {
        flag: "public-results", env: "AUTHCHECK_PUBLIC_RESULTS", value: "BOOL",
        default: DefaultValue::Text("true"),
    }
    /// How long a private test address made on /new takes mail; after it, mail to it is
    /// refused with 550 5.1.1 and the address is deleted (its results stay for retention,
    /// readable at their own addresses).
    private_test_lifetime: one<Duration> = parse_duration {
        flag: "private-test-lifetime", env: "AUTHCHECK_PRIVATE_TEST_LIFETIME",
        value: "DURATION",
        default: DefaultValue::Text("7d"),
    }
    /// Most private test addresses open at once; past it /new and POST /api/v1/tests answer
    /// 503 until some expire.
    max_private_tests: one<usize> = parse_count {
        flag: "max-private-tests", env: "AUTHCHECK_MAX_PRIVATE_TESTS", value: "N",
        default: DefaultValue::Text("10000"),
    }
    /// Most private test addresses one web client (an IPv4 address or an IPv6 /64) may make
    /// per hour; past it 429; 0 for no limit. Behind a reverse proxy every client has the
    /// proxy's address.
    private_tests_per_client: one<u32> = parse_limit {
        flag: "private-tests-per-client", env: "AUTHCHECK_PRIVATE_TESTS_PER_CLIENT",
        value: "N",
        default: DefaultValue::Text("20"),
    }
    /// Largest message accepted, in bytes (suffixes K, M, KiB, MiB allowed).
    max_message_size: one<usize> = parse_size {
        flag: "max-message-size", env: "AUTHCHECK_MAX_MESSAGE_SIZE", value: "BYTES",
        default: DefaultValue::Text("10MiB"),
    }
    /// Most SMTP connections at once.
    max_connections: one<usize> = parse_count {
        flag: "max-connections", env: "AUTHCHECK_MAX_CONNECTIONS", value: "N",
        default: DefaultValue::Text("1000"),
    }
    /// Most SMTP connections at once from one client: an IPv4 address or an IPv6 /64 (as
    /// Postfix's smtpd_client_connection_count_limit).
    max_connections_per_ip: one<usize> = parse_count {
        flag: "max-connections-per-ip", env: "AUTHCHECK_MAX_CONNECTIONS_PER_IP", value: "N",
        default: DefaultValue::Text("50"),
    }
    /// Most bytes of message data held in memory at once across all SMTP sessions, with two
    /// copies of each message being verified and stored; past it new messages get 452 4.3.1
    /// (suffixes K, M, G, KiB, MiB, GiB allowed).
    max_memory_in_flight: one<usize> = parse_size {
        flag: "max-memory-in-flight", env: "AUTHCHECK_MAX_MEMORY_IN_FLIGHT", value: "BYTES",
        default: DefaultValue::Text("512MiB"),
    }
    /// Most messages (MAIL FROM) per rate window from one client, an IPv4 address or an IPv6
    /// /64; past it 450 4.7.1; 0 for no limit.
    messages_per_client: one<u32> = parse_limit {
        flag: "messages-per-client", env: "AUTHCHECK_MESSAGES_PER_CLIENT", value: "N",
        default: DefaultValue::Text("60"),
    }
    /// Most messages per rate window from one MAIL FROM domain; past it 450 4.7.1; 0 for no
    /// limit.
    messages_per_sender_domain: one<u32> = parse_limit {
        flag: "messages-per-sender-domain", env: "AUTHCHECK_MESSAGES_PER_SENDER_DOMAIN",
        value: "N",
        default: DefaultValue::Text("120"),
    }
    /// The window of the two message rate limits, e.g. 10m, 1h.
    rate_window: one<Duration> = parse_duration {
        flag: "rate-window", env: "AUTHCHECK_RATE_WINDOW", value: "DURATION",
        default: DefaultValue::Text("10m"),
    }
    /// How long an SMTP client may take to send each command, or each 1 KiB of message data
    /// (so a message sent a few bytes at a time is cut off too), before it is disconnected
    /// with a 421; 5m is RFC 5321's minimum.
    command_timeout: one<Duration> = parse_duration {
        flag: "command-timeout", env: "AUTHCHECK_COMMAND_TIMEOUT", value: "DURATION",
        default: DefaultValue::Text("5m"),
    }
    /// The longest time checking one message may take, DNS and CPU together; past it the
    /// client gets 451 4.4.3 and retries later.
    verify_timeout: one<Duration> = parse_duration {
        flag: "verify-timeout", env: "AUTHCHECK_VERIFY_TIMEOUT", value: "DURATION",
        default: DefaultValue::Text("30s"),
    }
    /// Free space the SQLite database's disk must keep; below it messages get 452 4.3.1 and
    /// an ERROR is logged (not checked for PostgreSQL: watch the server's disk).
    min_free_disk: one<usize> = parse_size {
        flag: "min-free-disk", env: "AUTHCHECK_MIN_FREE_DISK", value: "BYTES",
        default: DefaultValue::Text("256MiB"),
    }
    /// PEM certificate chain for STARTTLS (with tls_key).
    tls_cert: optional<PathBuf> = parse_path {
        flag: "tls-cert", env: "AUTHCHECK_TLS_CERT", value: "PATH",
        default: DefaultValue::Unset("a self-signed certificate made at start"),
    }
    /// PEM private key for STARTTLS (with tls_cert).
    tls_key: optional<PathBuf> = parse_path {
        flag: "tls-key", env: "AUTHCHECK_TLS_KEY", value: "PATH",
        default: DefaultValue::Unset("none"),
    }
    /// How often the service sends itself a real, DKIM-signed message through
    /// self_check_target and records on /status how long its result took; `off` or 0 turns
    /// the self-check off. The first check comes one interval after start.
    self_check_interval: one<SelfCheckInterval> = parse_interval_or_off {
        flag: "self-check-interval", env: "AUTHCHECK_SELF_CHECK_INTERVAL", value: "DURATION",
        default: DefaultValue::Text("10m"),
    }
    /// The SMTP server the self-check sends to, HOST:PORT: the tester's public MX name to test
    /// the whole path through DNS, firewall and TLS.
    self_check_target: optional<String> = parse_host_port {
        flag: "self-check-target", env: "AUTHCHECK_SELF_CHECK_TARGET", value: "HOST:PORT",
        default: DefaultValue::Unset(
            "smtp_listen, an unspecified address (0.0.0.0, ::) replaced by loopback",
        ),
    }
    /// The tester's own DKIM private key (PKCS#8 PEM), made at first start when missing; the
    /// self-check signs with it and /status shows the DNS record to publish.
    dkim_key: optional<PathBuf> = parse_path {
        flag: "dkim-key", env: "AUTHCHECK_DKIM_KEY", value: "PATH",
        default: DefaultValue::Unset(
            "`dkim.key` next to the SQLite database; with PostgreSQL kept in the database, shared by every instance",
        ),
    }
    /// The DKIM selector of the tester's own key: its record is published at
    /// SELECTOR._domainkey.DOMAIN (the first tester domain).
    dkim_selector: one<String> = parse_selector {
        flag: "dkim-selector", env: "AUTHCHECK_DKIM_SELECTOR", value: "NAME",
        default: DefaultValue::Text("authcheck"),
    }
    /// Replies by mail with the results: `off`, `check` (messages to check@ only) or `all`
    /// (check@, spf@ and dkim@). A reply goes only to the MAIL FROM address of a message that
    /// passed DMARC, never to automatic or list mail; /replies explains the rules.
    reply_by_mail: one<ReplyScope> = parse_reply_scope {
        flag: "reply-by-mail", env: "AUTHCHECK_REPLY_BY_MAIL", value: "SCOPE",
        default: DefaultValue::Text("off"),
    }
    /// Most replies to one recipient address: COUNT/DURATION, or 0 for no limit.
    reply_per_address: one<RateLimit> = parse_rate {
        flag: "reply-per-address", env: "AUTHCHECK_REPLY_PER_ADDRESS", value: "RATE",
        default: DefaultValue::Text("1/10m"),
    }
    /// Most replies to one recipient domain: COUNT/DURATION, or 0 for no limit.
    reply_per_domain: one<RateLimit> = parse_rate {
        flag: "reply-per-domain", env: "AUTHCHECK_REPLY_PER_DOMAIN", value: "RATE",
        default: DefaultValue::Text("20/1h"),
    }
    /// Most replies for messages from one client address: COUNT/DURATION, or 0 for no limit.
    reply_per_client: one<RateLimit> = parse_rate {
        flag: "reply-per-client", env: "AUTHCHECK_REPLY_PER_CLIENT", value: "RATE",
        default: DefaultValue::Text("20/1h"),
    }
    /// Send outgoing mail (replies, summaries) through this server, HOST:PORT, instead of
    /// the recipient domains' MX hosts.
    outgoing_smarthost: optional<String> = parse_host_port {
        flag: "outgoing-smarthost", env: "AUTHCHECK_OUTGOING_SMARTHOST", value: "HOST:PORT",
        default: DefaultValue::Unset("none: the recipient domain's MX hosts"),
    }
    /// The user name for the smarthost's AUTH (PLAIN or LOGIN, only over TLS whose
    /// certificate checked out).
    outgoing_smarthost_user: optional<String> = parse_text {
        flag: "outgoing-smarthost-user", env: "AUTHCHECK_OUTGOING_SMARTHOST_USER", value: "NAME",
        default: DefaultValue::Unset("no AUTH"),
    }
    /// The smarthost password (with outgoing_smarthost_user); better set in the environment
    /// or the file than on the command line.
    outgoing_smarthost_password: optional<Secret> = parse_secret {
        flag: "outgoing-smarthost-password", env: "AUTHCHECK_OUTGOING_SMARTHOST_PASSWORD",
        value: "PASSWORD",
        default: DefaultValue::Unset("none"),
    }
    /// A PEM file of the certificate authorities that sign the smarthost's certificate,
    /// trusted instead of the system's roots (a private smarthost's own CA). The smarthost's
    /// certificate is always checked, unlike the MX hosts' (opportunistic TLS, RFC 7435).
    outgoing_smarthost_ca_file: optional<PathBuf> = parse_path {
        flag: "outgoing-smarthost-ca-file", env: "AUTHCHECK_OUTGOING_SMARTHOST_CA_FILE",
        value: "PATH",
        default: DefaultValue::Unset("the system's root certificates"),
    }
    /// How the smarthost's connection is secured: `starttls`, `implicit` (TLS from the first
    /// byte, RFC 8314, as on port 465) or `auto` (implicit on port 465, STARTTLS otherwise).
    outgoing_smarthost_tls: one<SmarthostTlsMode> = parse_smarthost_tls {
        flag: "outgoing-smarthost-tls", env: "AUTHCHECK_OUTGOING_SMARTHOST_TLS", value: "MODE",
        default: DefaultValue::Text("auto"),
    }
    /// The port of the MX hosts outgoing mail is delivered to; 25 except in tests.
    outgoing_mx_port: one<u16> = parse_port {
        flag: "outgoing-mx-port", env: "AUTHCHECK_OUTGOING_MX_PORT", value: "PORT",
        default: DefaultValue::Text("25"),
    }
    /// Whether outgoing mail may go to loopback, private and link-local addresses an MX host
    /// has (yes for tests and closed networks; a stranger's DNS could point inward).
    outgoing_allow_private: one<bool> = parse_yes_no {
        flag: "outgoing-allow-private", env: "AUTHCHECK_OUTGOING_ALLOW_PRIVATE", value: "YES|NO",
        default: DefaultValue::Text("no"),
    }
    /// Each network wait of one delivery attempt.
    outgoing_timeout: one<Duration> = parse_duration {
        flag: "outgoing-timeout", env: "AUTHCHECK_OUTGOING_TIMEOUT", value: "DURATION",
        default: DefaultValue::Text("60s"),
    }
    /// The pause before the first retry of a message not taken; each later one doubles, up
    /// to an hour.
    outgoing_retry: one<Duration> = parse_duration {
        flag: "outgoing-retry", env: "AUTHCHECK_OUTGOING_RETRY", value: "DURATION",
        default: DefaultValue::Text("1m"),
    }
    /// How long a message not taken is tried before it is given up.
    outgoing_give_up: one<Duration> = parse_duration {
        flag: "outgoing-give-up", env: "AUTHCHECK_OUTGOING_GIVE_UP", value: "DURATION",
        default: DefaultValue::Text("2d"),
    }
    /// Most outgoing messages waiting at once; past it no reply is queued.
    outgoing_queue_max: one<usize> = parse_count {
        flag: "outgoing-queue-max", env: "AUTHCHECK_OUTGOING_QUEUE_MAX", value: "N",
        default: DefaultValue::Text("1000"),
    }
    /// An operator's address for the weekly summary (messages tested, verdicts, top senders
    /// and hosts, self-check uptime, DMARC reports), sent Mondays through the outgoing queue;
    /// repeat for several.
    summary_recipients: list<String> = parse_address {
        flag: "summary-recipient", env: "AUTHCHECK_SUMMARY_RECIPIENT", value: "ADDRESS",
        default: DefaultValue::Unset("none: no weekly summary"),
    }
    /// Log format: text or json. The level comes from RUST_LOG (default info).
    log_format: one<LogFormat> = parse_log_format {
        flag: "log-format", env: "AUTHCHECK_LOG_FORMAT", value: "FORMAT",
        default: DefaultValue::Text("text"),
    }
}

/// A setting's value that is never printed: a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// How often the self-check runs, or `None` when the operator turned it off.
pub type SelfCheckInterval = Option<Duration>;

/// A listener's address, or `None` when the operator turned it off.
pub type ListenOrOff = Option<SocketAddr>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    /// The limits of the site's and the operators' HTTP listeners.
    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            header_read_timeout: self.http_header_timeout,
            idle_timeout: self.http_idle_timeout,
            request_timeout: self.http_request_timeout,
            max_connections: self.http_max_connections,
        }
    }

    /// Layers flags and environment (already merged by clap) over the file and the defaults.
    pub fn load(args: &ServiceArgs) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        let layers = Layers {
            given: &args.given,
            file,
        };
        let settings = Settings::from_layers(&layers)?;
        // A message in delivery holds its own bytes and the copies delivery makes of it.
        let copies =
            <crate::delivery::TesterDelivery as authcheck_smtp::Delivery>::COPIES_WHILE_DELIVERING;
        let largest_delivery = settings.max_message_size.saturating_mul(1 + copies);
        if settings.max_memory_in_flight < largest_delivery {
            return Err(invalid(
                "max_memory_in_flight",
                format!(
                    "{} bytes is less than {} times max_message_size ({}; the message and the {copies} copies verifying and storing it make): no message of the largest size could be taken",
                    settings.max_memory_in_flight,
                    1 + copies,
                    settings.max_message_size
                ),
            ));
        }
        match (
            &settings.outgoing_smarthost_user,
            &settings.outgoing_smarthost_password,
        ) {
            (Some(_), None) => {
                return Err(invalid(
                    "outgoing_smarthost_password",
                    "outgoing_smarthost_user is set but the password is not; give both",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "outgoing_smarthost_user",
                    "outgoing_smarthost_password is set but the user is not; give both",
                ));
            }
            _ => {}
        }
        if settings.outgoing_smarthost_ca_file.is_some() && settings.outgoing_smarthost.is_none() {
            return Err(invalid(
                "outgoing_smarthost",
                "outgoing_smarthost_ca_file is set but there is no smarthost to check",
            ));
        }
        if settings.outgoing_smarthost_user.is_some() && settings.outgoing_smarthost.is_none() {
            return Err(invalid(
                "outgoing_smarthost",
                "outgoing_smarthost_user is set but there is no smarthost to log in to",
            ));
        }
        match (&settings.tls_cert, &settings.tls_key) {
            (Some(_), None) => Err(invalid(
                "tls_key",
                "tls_cert is set but tls_key is not; give both",
            )),
            (None, Some(_)) => Err(invalid(
                "tls_cert",
                "tls_key is set but tls_cert is not; give both",
            )),
            _ => Ok(settings),
        }
    }
}

/// Where values come from: what clap found (flags over environment), then the file.
struct Layers<'a> {
    given: &'a BTreeMap<&'static str, Vec<String>>,
    file: BTreeMap<String, Vec<String>>,
}

impl Layers<'_> {
    fn values(&self, setting: &Setting) -> Option<&[String]> {
        self.given
            .get(setting.name)
            .or_else(|| self.file.get(setting.name))
            .map(Vec::as_slice)
    }
}

type Parser<T> = fn(&str) -> Result<T, String>;

fn one<T>(setting: &Setting, layers: &Layers<'_>, parse: Parser<T>) -> Result<T, ConfigError> {
    let text = match (layers.values(setting), setting.default) {
        (Some([.., last]), _) => last.as_str(),
        (_, DefaultValue::Text(text)) => text,
        (_, DefaultValue::Unset(_)) => panic!("setting {} needs a default value", setting.name),
    };
    parse(text).map_err(|problem| invalid(setting.name, problem))
}

fn optional<T>(
    setting: &Setting,
    layers: &Layers<'_>,
    parse: Parser<T>,
) -> Result<Option<T>, ConfigError> {
    match layers.values(setting) {
        Some([.., last]) => parse(last)
            .map(Some)
            .map_err(|problem| invalid(setting.name, problem)),
        _ => Ok(None),
    }
}

fn list<T>(
    setting: &Setting,
    layers: &Layers<'_>,
    parse: Parser<T>,
) -> Result<Vec<T>, ConfigError> {
    let texts: Vec<&str> = match (layers.values(setting), setting.default) {
        (Some(values), _) if !values.is_empty() => values.iter().map(String::as_str).collect(),
        (_, DefaultValue::Text(text)) => text.split(',').collect(),
        (_, DefaultValue::Unset(_)) => Vec::new(),
    };
    texts
        .into_iter()
        .map(|text| parse(text).map_err(|problem| invalid(setting.name, problem)))
        .collect()
}

/// Reads the `--config` file: keys as the settings' names, values as text, numbers, booleans
/// or lists.
fn read_file(path: &Path) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid("config", format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| invalid("config", format!("{}: {}", path.display(), e.message())))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let Some(setting) = SETTINGS.iter().find(|s| s.name == key) else {
            return Err(invalid(
                "config",
                format!("{}: unknown setting {key:?}", path.display()),
            ));
        };
        let texts = match value {
            toml::Value::Array(items) if setting.shape == Shape::List => items
                .iter()
                .map(|item| scalar_text(setting, item))
                .collect::<Result<Vec<_>, _>>()?,
            single => vec![scalar_text(setting, &single)?],
        };
        values.insert(key, texts);
    }
    Ok(values)
}

fn scalar_text(setting: &Setting, value: &toml::Value) -> Result<String, ConfigError> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        // Read by the setting's own parser, as `true` given on the command line would be.
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(invalid(
            setting.name,
            format!("{other} in the config file is neither text, a whole number nor true or false"),
        )),
    }
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an ADDR:PORT such as 127.0.0.1:2525"))
}

/// An address, or `off` (or nothing) for no listener.
fn parse_addr_or_off(text: &str) -> Result<ListenOrOff, String> {
    match text.trim() {
        "off" | "" => Ok(None),
        addr => parse_addr(addr).map(Some),
    }
}

fn parse_domain(text: &str) -> Result<String, String> {
    let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid_label = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!("{text:?} is not a domain name"));
    }
    Ok(name)
}

fn parse_database_url(text: &str) -> Result<String, String> {
    let url = text.trim();
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        Ok(url.to_string())
    } else {
        Err(format!(
            "{:?} is neither sqlite://PATH nor postgres://USER:PASSWORD@HOST/DB",
            redact_url(url)
        ))
    }
}

fn parse_public_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(url.to_string())
        }
        _ => Err(format!("{text:?} is not an http:// or https:// URL")),
    }
}

/// Accepts humantime forms: `7d`, `12h`, `30m`, `1h 30m`; zero is refused.
fn parse_duration(text: &str) -> Result<Duration, String> {
    match parse_duration_or_zero(text)? {
        duration if duration.is_zero() => Err("must be longer than zero".to_string()),
        duration => Ok(duration),
    }
}

fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration such as 7d or 12h ({e})"))
}

/// Accepts `10485760`, `10M`, `10MiB`, `512K`, `512KiB` (K/M are powers of 1024 as for mail sizes).
fn parse_size(text: &str) -> Result<usize, String> {
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
        _ => Err(format!("{text:?} is not a size such as 10485760 or 10MiB")),
    }
}

/// A whole number of at least 1.
fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number")),
    }
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Ok(true),
        "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{text:?} is neither true nor false")),
    }
}

/// A whole number; 0 turns the limit off.
fn parse_limit(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<u32>()
        .map_err(|_| format!("{text:?} is not a whole number (0 for no limit)"))
}

/// A duration, or `off` (or zero) for none.
fn parse_interval_or_off(text: &str) -> Result<SelfCheckInterval, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    parse_duration_or_zero(text)
        .map(|interval| Some(interval).filter(|interval| !interval.is_zero()))
        .map_err(|problem| format!("{problem}; or off"))
}

/// `HOST:PORT`, the host a name or an address (IPv6 in brackets).
fn parse_host_port(text: &str) -> Result<String, String> {
    let text = text.trim();
    let problem = || format!("{text:?} is not a HOST:PORT such as mx.tester.example:25");
    let (host, port) = text.rsplit_once(':').ok_or_else(problem)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port.parse::<u16>().map_or(true, |port| port == 0) {
        return Err(problem());
    }
    if host.parse::<std::net::IpAddr>().is_err() {
        parse_domain(host).map_err(|_| problem())?;
    }
    Ok(text.to_string())
}

/// A DNS label: letters, digits and hyphens.
fn parse_selector(text: &str) -> Result<String, String> {
    let text = text.trim();
    let label = |part: &str| {
        !part.is_empty()
            && part.len() <= 63
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if text.split('.').all(label) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "{text:?} is not a DKIM selector such as authcheck (letters, digits, hyphens)"
        ))
    }
}

fn parse_path(text: &str) -> Result<PathBuf, String> {
    match text.trim() {
        "" => Err("is empty; give a file path".to_string()),
        path => Ok(PathBuf::from(path)),
    }
}

fn parse_reply_scope(text: &str) -> Result<ReplyScope, String> {
    match text.trim() {
        "off" => Ok(ReplyScope::Off),
        "check" => Ok(ReplyScope::Check),
        "all" => Ok(ReplyScope::All),
        other => Err(format!("{other:?} is none of off, check, all")),
    }
}

fn parse_smarthost_tls(text: &str) -> Result<SmarthostTlsMode, String> {
    match text.trim() {
        "auto" => Ok(SmarthostTlsMode::Auto),
        "starttls" => Ok(SmarthostTlsMode::StartTls),
        "implicit" => Ok(SmarthostTlsMode::Implicit),
        other => Err(format!("{other:?} is none of auto, starttls, implicit")),
    }
}

fn parse_rate(text: &str) -> Result<RateLimit, String> {
    crate::reply::parse_rate(text)
}

/// `local@domain`, the domain a domain name.
fn parse_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    let problem = || format!("{text:?} is not an address such as ops@example.net");
    let (local, domain) = text.rsplit_once('@').ok_or_else(problem)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"@".contains(&b));
    if !local_ok {
        return Err(problem());
    }
    let domain = parse_domain(domain).map_err(|_| problem())?;
    Ok(format!("{local}@{domain}"))
}

fn parse_text(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("is empty".to_string()),
        text => Ok(text.to_string()),
    }
}

fn parse_secret(text: &str) -> Result<Secret, String> {
    // Kept as given: a password may begin or end with a space.
    if text.is_empty() {
        Err("is empty".to_string())
    } else {
        Ok(Secret(text.to_string()))
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{text:?} is not a port number (1-65535)")),
        Ok(port) => Ok(port),
    }
}

fn parse_yes_no(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        other => Err(format!("{other:?} is neither yes nor no")),
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?} is neither text nor json")),
    }
}

/// The URL with its passwords replaced by `****`, wherever a database URL is shown.
pub fn redact_url(url: &str) -> String {
    let mut redacted = url.to_string();
    // From the last span back, so that the earlier ones keep their place.
    for span in password_spans(url).into_iter().rev() {
        redacted.replace_range(span, "****");
    }
    redacted
}

/// `text` with every password that `url` holds replaced by `****`: for messages from
/// libraries, which may quote the URL they were given or parts of it.
pub fn scrub_password(text: &str, url: &str) -> String {
    let mut scrubbed = text.replace(url, &redact_url(url));
    for span in password_spans(url) {
        scrubbed = scrubbed.replace(&url[span], "****");
    }
    scrubbed
}

/// Where the passwords of a database URL are: the user part's (`USER:PASSWORD@`, found in
/// mistyped URLs too: without `//`, or with an unencoded `@` in the password) and `password=`
/// query parameters'.
fn password_spans(url: &str) -> Vec<std::ops::Range<usize>> {
    let authority = url.find("://").map_or(0, |at| at + 3);
    let mut spans = Vec::new();
    if let Some(at) = url[authority..].rfind('@').map(|at| authority + at)
        && let Some(colon) = url[authority..at].find(':').map(|c| authority + c)
    {
        spans.push(colon + 1..at);
    }
    if let Some(question) = url.find('?') {
        let mut start = question + 1;
        for parameter in url[question + 1..].split('&') {
            if let Some((key, _)) = parameter.split_once('=')
                && key.to_ascii_lowercase().ends_with("password")
            {
                spans.push(start + key.len() + 1..start + parameter.len());
            }
            start += parameter.len() + 1;
        }
    }
    spans.retain(|span| !span.is_empty());
    spans.sort_by_key(|span| span.start);
    spans
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
/// The README's settings table as the definitions make it.
pub fn readme_table() -> String {
    let mut table = String::from(
        "| flag | environment | TOML key | default | what |\n| --- | --- | --- | --- | --- |\n",
    );
    for s in SETTINGS {
        let repeat = match s.shape {
            Shape::List => " (repeatable)",
            _ => "",
        };
        let env_note = match s.shape {
            Shape::List => " (comma-separated)",
            _ => "",
        };
        let key_note = match s.shape {
            Shape::List => " (list)",
            _ => "",
        };
        table.push_str(&format!(
            "| `--{} {}`{repeat} | `{}`{env_note} | `{}`{key_note} | {} | {} |\n",
            s.flag,
            s.value_name,
            s.env,
            s.name,
            s.default_text(),
            s.help_text().replace('|', "\\|"),
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(pairs: &[(&'static str, &str)]) -> ServiceArgs {
        let mut args = ServiceArgs::default();
        for (name, value) in pairs {
            args.given.insert(*name, vec![value.to_string()]);
        }
        args
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::load(&ServiceArgs::default()).unwrap();
        assert_eq!(s.smtp_listen.to_string(), "127.0.0.1:2525");
        assert_eq!(s.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.domains, vec!["tester.localhost"]);
        assert_eq!(s.hostname, None);
        assert!(s.dns_servers.is_empty());
        assert_eq!(s.database_url, "sqlite://data/authcheck.db");
        assert_eq!(s.database_connect_timeout, Duration::from_secs(30));
        assert_eq!(s.public_url, None);
        assert_eq!(s.retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(s.dmarc_retention, Duration::from_secs(400 * 24 * 3600));
        assert_eq!(s.max_message_size, 10 * 1024 * 1024);
        assert_eq!(s.max_connections, 1000);
        assert_eq!(s.max_connections_per_ip, 50);
        assert_eq!(s.command_timeout, Duration::from_secs(300));
        assert_eq!(s.max_memory_in_flight, 512 * 1024 * 1024);
        assert_eq!(s.messages_per_client, 60);
        assert_eq!(s.messages_per_sender_domain, 120);
        assert_eq!(s.rate_window, Duration::from_secs(600));
        assert!(s.tls_cert.is_none() && s.tls_key.is_none());
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.self_check_interval, Some(Duration::from_secs(600)));
        assert_eq!(s.self_check_target, None);
        assert_eq!(s.dkim_key, None);
        assert_eq!(s.dkim_selector, "authcheck");
        assert_eq!(s.metrics_listen, Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(
            s.reply_by_mail,
            ReplyScope::Off,
            "replies are off by default"
        );
        assert_eq!(s.reply_per_address.count, 1);
        assert_eq!(s.reply_per_address.window_seconds, 600);
        assert_eq!(s.reply_per_domain.count, 20);
        assert_eq!(s.reply_per_domain.window_seconds, 3600);
        assert_eq!(s.outgoing_mx_port, 25);
        assert!(!s.outgoing_allow_private);
        assert_eq!(s.outgoing_smarthost, None);
        assert_eq!(s.outgoing_queue_max, 1000);
        assert!(
            s.summary_recipients.is_empty(),
            "no weekly summary by default"
        );
        assert_eq!(
            s.http_limits(),
            HttpLimits {
                header_read_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
                request_timeout: Duration::from_secs(30),
                max_connections: 1024,
            }
        );
    }

    #[test]
    fn the_config_file_takes_booleans_as_toml_writes_them() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("authcheck.toml");
        std::fs::write(
            &path,
            "public_results = false\noutgoing_allow_private = true\n",
        )
        .unwrap();
        let args = ServiceArgs {
            config: Some(path.clone()),
            ..ServiceArgs::default()
        };
        let s = Settings::load(&args).unwrap();
        assert!(!s.public_results);
        assert!(s.outgoing_allow_private);

        // A boolean where a number belongs is refused by that setting's own parser.
        std::fs::write(&path, "max_connections = true\n").unwrap();
        let error = Settings::load(&args).unwrap_err().to_string();
        assert!(error.contains("max_connections"), "{error}");
    }

    #[test]
    fn the_self_check_settings_parse_and_refuse_with_a_reason() {
        assert_eq!(parse_interval_or_off("off"), Ok(None));
        assert_eq!(parse_interval_or_off("0"), Ok(None));
        assert_eq!(
            parse_interval_or_off("1s"),
            Ok(Some(Duration::from_secs(1)))
        );
        assert!(
            parse_interval_or_off("often")
                .unwrap_err()
                .contains("or off")
        );
        assert_eq!(
            parse_host_port("mx.tester.example:25").as_deref(),
            Ok("mx.tester.example:25")
        );
        assert_eq!(parse_host_port("[::1]:2525").as_deref(), Ok("[::1]:2525"));
        for bad in ["mx.tester.example", "mx:0", ":25", "mx:port", "bad host:25"] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_selector("Authcheck-2026").as_deref(),
            Ok("authcheck-2026")
        );
        assert!(parse_selector("a b").is_err());
        assert!(parse_selector("").is_err());
    }

    #[test]
    fn metrics_can_be_turned_off_and_http_limits_set() {
        let s = Settings::load(&given(&[
            ("metrics_listen", "off"),
            ("http_header_timeout", "2s"),
            ("http_max_connections", "7"),
        ]))
        .unwrap();
        assert_eq!(s.metrics_listen, None);
        assert_eq!(s.http_limits().header_read_timeout, Duration::from_secs(2));
        assert_eq!(s.http_limits().max_connections, 7);
        for (name, value) in [
            ("http_idle_timeout", "never"),
            ("http_request_timeout", "0s"),
            ("http_max_connections", "0"),
            ("metrics_listen", "public"),
        ] {
            let err = Settings::load(&given(&[(name, value)])).unwrap_err();
            assert_eq!(err.setting, name, "{err}");
        }
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authcheck.toml");
        std::fs::write(
            &path,
            "smtp_listen = \"127.0.0.1:2600\"\nhttp_listen = \"127.0.0.1:8100\"\ndomains = [\"a.test\", \"b.test\"]\nretention = \"2d\"\nmax_message_size = 1048576\nmax_connections = 7\n",
        )
        .unwrap();
        let mut a = given(&[("http_listen", "127.0.0.1:9000")]);
        a.config = Some(path);
        let s = Settings::load(&a).unwrap();
        assert_eq!(s.smtp_listen.to_string(), "127.0.0.1:2600");
        assert_eq!(s.http_listen.to_string(), "127.0.0.1:9000");
        assert_eq!(s.domains, vec!["a.test", "b.test"]);
        assert_eq!(s.retention, Duration::from_secs(2 * 24 * 3600));
        assert_eq!(s.max_message_size, 1024 * 1024);
        assert_eq!(s.max_connections, 7);
    }

    #[test]
    fn errors_name_the_setting() {
        for (name, value) in [
            ("smtp_listen", "nowhere"),
            ("retention", "forever"),
            ("retention", "0s"),
            ("database_url", "mysql://x"),
            ("domains", "not a domain"),
            ("max_connections", "0"),
            ("max_message_size", "ten"),
            ("log_format", "xml"),
        ] {
            let err = Settings::load(&given(&[(name, value)])).unwrap_err();
            assert_eq!(err.setting, name, "{err}");
        }
        let err = Settings::load(&given(&[("tls_cert", "cert.pem")])).unwrap_err();
        assert_eq!(err.setting, "tls_key");
        assert_eq!(
            Settings::load(&given(&[("smtp_listen", "x")]))
                .unwrap_err()
                .to_string(),
            "invalid setting smtp_listen: \"x\" is not an ADDR:PORT such as 127.0.0.1:2525"
        );
    }

    #[test]
    fn the_outgoing_settings_parse_and_the_smarthost_login_comes_whole() {
        let s = Settings::load(&given(&[
            ("reply_by_mail", "all"),
            ("reply_per_client", "0"),
            ("outgoing_smarthost", "smtp.example:587"),
            ("outgoing_smarthost_user", "authcheck"),
            ("outgoing_smarthost_password", "s3cret"),
        ]))
        .unwrap();
        assert_eq!(s.reply_by_mail, ReplyScope::All);
        assert_eq!(s.reply_per_client.count, 0);
        assert!(
            !format!("{s:?}").contains("s3cret"),
            "the password is never printed"
        );
        for (pairs, named) in [
            (
                &[
                    ("outgoing_smarthost_user", "a"),
                    ("outgoing_smarthost", "h:587"),
                ][..],
                "outgoing_smarthost_password",
            ),
            (
                &[
                    ("outgoing_smarthost_password", "p"),
                    ("outgoing_smarthost", "h:587"),
                ][..],
                "outgoing_smarthost_user",
            ),
            (
                &[
                    ("outgoing_smarthost_user", "a"),
                    ("outgoing_smarthost_password", "p"),
                ][..],
                "outgoing_smarthost",
            ),
            (&[("reply_by_mail", "yes")][..], "reply_by_mail"),
            (&[("reply_per_address", "1")][..], "reply_per_address"),
            (&[("outgoing_mx_port", "0")][..], "outgoing_mx_port"),
            (
                &[("outgoing_allow_private", "maybe")][..],
                "outgoing_allow_private",
            ),
        ] {
            assert_eq!(Settings::load(&given(pairs)).unwrap_err().setting, named);
        }
    }

    #[test]
    fn the_database_connect_timeout_may_be_zero() {
        let s = Settings::load(&given(&[("database_connect_timeout", "0s")])).unwrap();
        assert!(s.database_connect_timeout.is_zero());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "smtp_lisen = \"127.0.0.1:25\"\n").unwrap();
        let a = ServiceArgs {
            config: Some(path),
            ..ServiceArgs::default()
        };
        let err = Settings::load(&a).unwrap_err();
        assert_eq!(err.setting, "config");
        assert!(err.problem.contains("smtp_lisen"), "{err}");
    }

    #[test]
    fn file_values_of_the_wrong_kind_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "retention = true\n").unwrap();
        let a = ServiceArgs {
            config: Some(path),
            ..ServiceArgs::default()
        };
        assert_eq!(Settings::load(&a).unwrap_err().setting, "retention");
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("10485760").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_size("10MiB").unwrap(), 10 * 1024 * 1024);
        assert_eq!(parse_size("512K").unwrap(), 512 * 1024);
        assert!(parse_size("0").is_err());
        assert!(parse_size("ten").is_err());
    }

    #[test]
    fn names_follow_one_pattern() {
        for s in SETTINGS {
            let from_flag = format!(
                "AUTHCHECK_{}",
                s.flag.to_ascii_uppercase().replace('-', "_")
            );
            assert_eq!(s.env, from_flag, "{}", s.name);
            assert!(s.name.starts_with(&s.flag.replace('-', "_")), "{}", s.name);
        }
    }

    #[test]
    fn passwords_are_redacted() {
        for (url, shown) in [
            (
                "postgres://authcheck:s3cret@db.example:5432/authcheck",
                "postgres://authcheck:****@db.example:5432/authcheck",
            ),
            ("postgress://u:p@ss/w@host/db", "postgress://u:****@host/db"),
            (
                "postgres://u@host/db?sslmode=require&password=s3cret",
                "postgres://u@host/db?sslmode=require&password=****",
            ),
            ("postgres:u:s3cret@host", "postgres:****@host"),
            ("sqlite://data/authcheck.db", "sqlite://data/authcheck.db"),
            (
                "postgres://authcheck:authcheck@h/authcheck",
                "postgres://authcheck:****@h/authcheck",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        let url = "postgres://u:s3cret@h:port/db";
        assert_eq!(
            scrub_password("bad port in postgres://u:s3cret@h:port/db (s3cret)", url),
            "bad port in postgres://u:****@h:port/db (****)"
        );
    }

    /// The README's configuration table is exactly the one the definitions make.
    #[test]
    fn the_readme_table_matches_the_definitions() {
        let readme = include_str!("../../../README.md");
        let expected = readme_table();
        let start = readme
            .find("| flag | environment |")
            .expect("the README has a settings table");
        let end = readme[start..]
            .find("\n\n")
            .map_or(readme.len(), |n| start + n + 1);
        let actual = &readme[start..end];
        assert!(
            actual == expected,
            "README.md's settings table differs from the definitions in config.rs; \
             replace it with:\n\n{expected}"
        );
    }
}
