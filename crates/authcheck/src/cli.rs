//! The command line: `serve`, `check`, `migrate` and `purge`, with every flag and its
//! environment variable.
//!
//! Flags that configure the service are all optional here: [`crate::config`] layers them over
//! the environment, the TOML file and the built-in defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "authcheck",
    version,
    about = "A self-hosted email-authentication tester: send mail to spf@ or dkim@ and read the verdict",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the tester: the SMTP listener and the results site.
    Serve(ServiceArgs),
    /// Verify one message file and print the report.
    Check(CheckArgs),
    /// Run the database migrations and exit.
    Migrate(ServiceArgs),
    /// Delete results older than the retention now, and exit.
    Purge(ServiceArgs),
}

/// Settings of the service. Each flag also reads `AUTHCHECK_<NAME>` from the environment;
/// a flag wins over the environment, which wins over the `--config` file.
#[derive(Args, Debug, Default, Clone)]
pub struct ServiceArgs {
    /// TOML file with settings (keys as the flags, with underscores: smtp_listen, domains, ...).
    #[arg(long, env = "AUTHCHECK_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Address the SMTP listener binds [default: 127.0.0.1:2525].
    #[arg(long, env = "AUTHCHECK_SMTP_LISTEN", value_name = "ADDR")]
    pub smtp_listen: Option<String>,

    /// Address the web site binds [default: 127.0.0.1:8080].
    #[arg(long, env = "AUTHCHECK_HTTP_LISTEN", value_name = "ADDR")]
    pub http_listen: Option<String>,

    /// A tester domain; repeat for several [default: tester.localhost].
    #[arg(
        long = "domain",
        env = "AUTHCHECK_DOMAIN",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub domains: Vec<String>,

    /// Name in the SMTP greeting and the Authentication-Results authserv-id [default: this machine's host name].
    #[arg(long, env = "AUTHCHECK_HOSTNAME", value_name = "NAME")]
    pub hostname: Option<String>,

    /// Nameserver to ask, ADDR:PORT; repeat for several [default: the system resolver].
    #[arg(
        long = "dns-server",
        env = "AUTHCHECK_DNS_SERVER",
        value_name = "ADDR:PORT",
        value_delimiter = ','
    )]
    pub dns_servers: Vec<String>,

    /// Database: sqlite://PATH or postgres://USER:PASS@HOST/DB [default: sqlite://data/authcheck.db].
    #[arg(long, env = "AUTHCHECK_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// How result links are written [default: http:// + the HTTP address].
    #[arg(long, env = "AUTHCHECK_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// How long results are kept, e.g. 7d, 12h [default: 7d].
    #[arg(long, env = "AUTHCHECK_RETENTION", value_name = "DURATION")]
    pub retention: Option<String>,

    /// Largest message accepted, in bytes (suffixes K, M, KiB, MiB allowed) [default: 10MiB].
    #[arg(long, env = "AUTHCHECK_MAX_MESSAGE_SIZE", value_name = "BYTES")]
    pub max_message_size: Option<String>,

    /// Most SMTP connections at once [default: 1000].
    #[arg(long, env = "AUTHCHECK_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,

    /// Most SMTP connections at once from one client: an IPv4 address or an IPv6 /64 [default: 50].
    #[arg(long, env = "AUTHCHECK_MAX_CONNECTIONS_PER_IP", value_name = "N")]
    pub max_connections_per_ip: Option<usize>,

    /// Most bytes of message data held in memory at once across all SMTP sessions; past it new
    /// messages get 452 4.3.1 (suffixes K, M, G, KiB, MiB, GiB allowed) [default: 512MiB].
    #[arg(long, env = "AUTHCHECK_MAX_MEMORY_IN_FLIGHT", value_name = "BYTES")]
    pub max_memory_in_flight: Option<String>,

    /// Most messages (MAIL FROM) per rate window from one client, an IPv4 address or an IPv6
    /// /64; past it 450 4.7.1; 0 for no limit [default: 60].
    #[arg(long, env = "AUTHCHECK_MESSAGES_PER_CLIENT", value_name = "N")]
    pub messages_per_client: Option<u32>,

    /// Most messages per rate window from one MAIL FROM domain; past it 450 4.7.1; 0 for no
    /// limit [default: 120].
    #[arg(long, env = "AUTHCHECK_MESSAGES_PER_SENDER_DOMAIN", value_name = "N")]
    pub messages_per_sender_domain: Option<u32>,

    /// The window of the two message rate limits, e.g. 10m, 1h [default: 10m].
    #[arg(long, env = "AUTHCHECK_RATE_WINDOW", value_name = "DURATION")]
    pub rate_window: Option<String>,

    /// How long an SMTP client may stay silent (between commands or inside message data)
    /// before it is disconnected with a 421, e.g. 5m, 30s [default: 5m, RFC 5321's minimum].
    #[arg(long, env = "AUTHCHECK_COMMAND_TIMEOUT", value_name = "DURATION")]
    pub command_timeout: Option<String>,

    /// PEM certificate chain for STARTTLS (with --tls-key) [default: a self-signed certificate made at start].
    #[arg(long, env = "AUTHCHECK_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for STARTTLS (with --tls-cert).
    #[arg(long, env = "AUTHCHECK_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,

    /// Log format: text or json [default: text]. The level comes from RUST_LOG (default info).
    #[arg(long, env = "AUTHCHECK_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The message file (RFC 5322, as received); `-` reads standard input.
    #[arg(value_name = "FILE")]
    pub file: String,

    /// The SMTP client's IP address; without it SPF is reported as not checked.
    #[arg(long, value_name = "IP")]
    pub ip: Option<IpAddr>,

    /// The HELO/EHLO name the client gave.
    #[arg(long, value_name = "NAME", default_value = "")]
    pub helo: String,

    /// The MAIL FROM address; empty (or `<>`) for the null reverse-path.
    #[arg(long = "mail-from", value_name = "ADDR", default_value = "")]
    pub mail_from: String,

    /// Nameserver to ask, ADDR:PORT; repeat for several [default: the system resolver].
    #[arg(long = "dns-server", value_name = "ADDR:PORT")]
    pub dns_servers: Vec<SocketAddr>,

    /// The authserv-id for Authentication-Results [default: this machine's host name].
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// When to colour the output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}
