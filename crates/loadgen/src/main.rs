//! `authcheck-loadgen`, the SMTP load benchmark: drives DKIM-signed messages over concurrent
//! connections into the authcheck release binary and, with identical client settings, into
//! Postfix's `smtp-sink` (the ceiling), then prints messages per second, the p50/p99 time from
//! the end of DATA to the 250 reply, the service's peak memory and the ratio between the two.
//!
//! Everything runs on loopback: the benchmark starts its own DNS server holding the sender's
//! SPF, DKIM and DMARC records, so the service does the full verification work per message.

mod client;
mod scenario;
mod slow;
mod smtp_source;
mod stats;
mod targets;

use anyhow::Context as _;
use authcheck_testdns::TestDns;
use authcheck_testkit::TestKey;
use clap::{Parser, ValueEnum};
use client::{ClientSettings, ConnectionMode, HoldPool, Workload};
use stats::{Latencies, MemoryReport, RunReport};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use targets::Target;

#[derive(Parser, Debug)]
#[command(
    name = "authcheck-loadgen",
    about = "SMTP load benchmark: authcheck against Postfix's smtp-sink with the same client settings",
    after_help = "Exit status: 0 when every message was accepted, 1 when any reply was an error \
                  (they are listed), 2 when the benchmark could not run."
)]
struct Cli {
    /// Which server to drive; `both` runs smtp-sink first, then authcheck, and prints the ratio.
    #[arg(long, value_enum, default_value_t = TargetChoice::Both)]
    target: TargetChoice,

    /// Concurrent SMTP sessions.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    connections: u32,

    /// Whether each session reuses its connection for one message after another or opens a
    /// new one for every message (as most real senders do).
    #[arg(long, value_enum, default_value_t = ConnectionMode::Reuse)]
    connection_mode: ConnectionMode,

    /// The client that sends the load: the benchmark's own (which also times each reply) or
    /// Postfix's lean `smtp-source` (rate only).
    #[arg(long, value_enum, default_value_t = Driver::Loadgen)]
    driver: Driver,

    /// Postfix's smtp-source, for `--driver smtp-source`.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/tmp/postfix-x/usr/sbin/smtp-source"
    )]
    smtp_source: PathBuf,

    /// Messages to send in all, shared among the sessions.
    #[arg(long, default_value_t = 5000)]
    messages: u64,

    /// Send for this many seconds instead of a number of messages.
    #[arg(long, value_name = "SECS", conflicts_with = "messages", value_parser = clap::value_parser!(u64).range(1..))]
    duration: Option<u64>,

    /// Also hold this many idle connections open (EHLO, then NOOP every 5 s) during the run.
    #[arg(long, value_name = "N", default_value_t = 0)]
    hold: u32,

    /// The DKIM key the messages are signed with.
    #[arg(long, value_enum, default_value_t = KeyChoice::Rsa2048)]
    key: KeyChoice,

    /// The size of each message in bytes, DKIM-Signature field included.
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    message_size: usize,

    /// The authcheck binary to start (build it with `cargo build --release -p authcheck`).
    #[arg(long, value_name = "PATH", default_value_os_t = default_authcheck_path())]
    authcheck: PathBuf,

    /// Postfix's smtp-sink (see the README for how to get it without installing Postfix).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/tmp/postfix-x/usr/sbin/smtp-sink"
    )]
    smtp_sink: PathBuf,

    /// The connection limits given to the server (in all, and for authcheck per client
    /// address); by default enough for every session and held connection.
    #[arg(long, value_name = "N")]
    server_max_connections: Option<u32>,

    /// The longest wait for a connection or any one reply before it counts as an error.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    reply_timeout: u64,

    /// Instead of the throughput run: open this many connections to authcheck at once, each
    /// sending one `--message-size` message over `--send-seconds`, and report the service's
    /// peak memory against its memory budget (`max_memory_in_flight`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    slow_senders: Option<u32>,

    /// How long each slow sender takes to send its message.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        requires = "slow_senders"
    )]
    send_seconds: u64,

    /// Worker threads of the client; keep it low so that the server under test gets the CPU.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    client_threads: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TargetChoice {
    Authcheck,
    SmtpSink,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Driver {
    /// The benchmark's own tokio client.
    Loadgen,
    /// Postfix's smtp-source.
    SmtpSource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KeyChoice {
    /// rsa-sha256 with a 2048-bit key.
    Rsa2048,
    /// ed25519-sha256.
    Ed25519,
}

impl KeyChoice {
    fn test_key(self) -> TestKey {
        match self {
            KeyChoice::Rsa2048 => TestKey::Rsa2048,
            KeyChoice::Ed25519 => TestKey::Ed25519,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KeyChoice::Rsa2048 => "rsa-sha256, 2048-bit key",
            KeyChoice::Ed25519 => "ed25519-sha256",
        }
    }
}

/// `target/release/authcheck` in this workspace.
fn default_authcheck_path() -> PathBuf {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = crate_dir.ancestors().nth(2).unwrap_or(crate_dir);
    workspace.join("target/release/authcheck")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_open_file_limit(
        cli.connections as u64 + cli.hold as u64 + cli.slow_senders.unwrap_or(0) as u64,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads as usize)
        .enable_all()
        .build()
        .expect("start the tokio runtime");
    if let Some(senders) = cli.slow_senders {
        return match runtime.block_on(run_slow(&cli, senders)) {
            Ok(0) => ExitCode::SUCCESS,
            Ok(failures) => {
                eprintln!("authcheck-loadgen: {failures} sessions failed (listed above)");
                ExitCode::from(1)
            }
            Err(error) => {
                eprintln!("authcheck-loadgen: {error:#}");
                ExitCode::from(2)
            }
        };
    }
    match runtime.block_on(run(cli)) {
        Ok(reports) if reports.iter().all(|report| report.error_count() == 0) => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("authcheck-loadgen: some replies were errors (listed above)");
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("authcheck-loadgen: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Every connection costs a file descriptor here and in the server, which inherits the limit.
fn raise_open_file_limit(connections: u64) {
    let needed = connections + 256;
    match rlimit::increase_nofile_limit(needed) {
        Ok(limit) if limit >= needed => {}
        Ok(limit) => eprintln!(
            "warning: the open-file limit is {limit}, below the {needed} this run needs; \
             raise the hard limit (e.g. `ulimit -Hn 4096` as root) and run again"
        ),
        Err(error) => eprintln!(
            "warning: could not raise the open-file limit ({error}); try `ulimit -n 4096`"
        ),
    }
}

/// The loopback DNS server with the sender's records, the signed message, and what every
/// client sends.
async fn scenario_and_client(cli: &Cli) -> (TestDns, Vec<u8>, Arc<ClientSettings>) {
    let dns = TestDns::start().await;
    scenario::publish_sender_records(&dns);
    let message = scenario::signed_message(cli.key.test_key(), cli.message_size);
    let settings = Arc::new(ClientSettings {
        helo: scenario::CLIENT_HOSTNAME.into(),
        mail_from: scenario::MAIL_FROM.into(),
        rcpt_to: scenario::RCPT_TO.into(),
        data: client::smtp_data(&message).into(),
        reply_timeout: Duration::from_secs(cli.reply_timeout),
        connections: cli.connection_mode,
    });
    (dns, message, settings)
}

async fn run(cli: Cli) -> anyhow::Result<Vec<RunReport>> {
    let (dns, message, settings) = scenario_and_client(&cli).await;
    let workload = match cli.duration {
        Some(seconds) => Workload::Duration(Duration::from_secs(seconds)),
        None => Workload::Messages(cli.messages),
    };
    if cli.driver == Driver::SmtpSource {
        smtp_source::check_binary(&cli.smtp_source)?;
        if cli.duration.is_some() {
            anyhow::bail!("smtp-source sends a number of messages: use --messages, not --duration");
        }
    }
    let max_connections = cli
        .server_max_connections
        .unwrap_or(cli.connections + cli.hold + 16) as usize;
    eprintln!(
        "{} sessions ({}, driven by {}), {}, {} held; {}-byte messages signed {}; DNS on {}",
        cli.connections,
        match cli.connection_mode {
            ConnectionMode::Reuse => "connections reused",
            ConnectionMode::PerMessage => "one connection per message",
        },
        match cli.driver {
            Driver::Loadgen => "the benchmark's client",
            Driver::SmtpSource => "smtp-source",
        },
        match workload {
            Workload::Messages(count) => format!("{count} messages"),
            Workload::Duration(duration) => format!("for {}s", duration.as_secs()),
        },
        cli.hold,
        message.len(),
        cli.key.describe(),
        dns.addr(),
    );

    let mut reports = Vec::new();
    let measured = async {
        if cli.target != TargetChoice::Authcheck {
            let sink = targets::start_smtp_sink(&cli.smtp_sink, max_connections).await?;
            reports.push(measure(sink, &cli, workload, settings.clone(), &message).await?);
        }
        if cli.target != TargetChoice::SmtpSink {
            let authcheck =
                targets::start_authcheck(&cli.authcheck, dns.addr(), max_connections).await?;
            reports.push(measure(authcheck, &cli, workload, settings.clone(), &message).await?);
        }
        anyhow::Ok(())
    }
    .await;

    // Whatever was measured is printed, even when a later target could not run.
    // The service's resolver caches, so a handful of queries should serve the whole run.
    eprintln!("DNS queries answered: {}", dns.query_count());
    if !reports.is_empty() {
        println!("{}", stats::table(&reports));
        for report in &reports {
            println!("{}", report.summary_line());
        }
        if let [sink, authcheck] = reports.as_slice() {
            println!("{}", stats::ratio_line(authcheck, sink));
        }
    }
    measured.map(|()| reports)
}

/// The longest an smtp-source run may take; far above any run the README describes.
const SMTP_SOURCE_TIME_LIMIT: Duration = Duration::from_secs(3600);

/// The memory-budget run: `senders` slow senders of one large message each into authcheck;
/// prints how their messages ended and the service's peak memory. Returns the number of
/// sessions that failed otherwise than by a 4xx reply.
async fn run_slow(cli: &Cli, senders: u32) -> anyhow::Result<u64> {
    let (dns, _message, settings) = scenario_and_client(cli).await;
    let max_connections = cli.server_max_connections.unwrap_or(senders + 16) as usize;
    let target = targets::start_authcheck(&cli.authcheck, dns.addr(), max_connections).await?;
    let before_kib = target.memory_kib("VmRSS");
    eprintln!(
        "authcheck on {}: {senders} connections each sending a {}-byte message over {}s",
        target.smtp_addr(),
        settings.data.len(),
        cli.send_seconds
    );
    let sampler = target.sample_memory();
    let started = std::time::Instant::now();
    let outcome = slow::run_slow_senders(
        target.smtp_addr(),
        senders as usize,
        settings,
        Duration::from_secs(cli.send_seconds),
    )
    .await;
    let elapsed = started.elapsed();
    let sampled_max_kib = sampler.finish();
    let peak_kib = target.memory_kib("VmHWM");
    target
        .stop()
        .await
        .context("the slow-senders run is void")?;
    let mib = |kib: Option<u64>| {
        kib.map_or("?".to_string(), |kib| {
            format!("{:.0} MiB", kib as f64 / 1024.0)
        })
    };
    println!("sessions: {}", outcome.summary());
    println!(
        "authcheck memory: {} before the run, peak RSS {} (VmHWM; {} sampled), in {:.0}s",
        mib(before_kib),
        mib(peak_kib),
        mib(sampled_max_kib),
        elapsed.as_secs_f64()
    );
    Ok(outcome.failures())
}

/// Holds the idle connections, runs the load, then reads the server's memory and stops it.
async fn measure(
    target: Target,
    cli: &Cli,
    workload: Workload,
    settings: Arc<ClientSettings>,
    message: &[u8],
) -> anyhow::Result<RunReport> {
    let addr = target.smtp_addr();
    eprintln!("{}: listening on {addr}", target.name());
    let held = HoldPool::open(addr, cli.hold as usize, settings.clone()).await;
    let holding_kib = if cli.hold > 0 {
        target.memory_kib("VmRSS")
    } else {
        None
    };
    let sampler = target.sample_memory();
    eprintln!("{}: running the load", target.name());
    let cpu_before = target.cpu_time();
    let load = match cli.driver {
        Driver::Loadgen => {
            client::run_load(addr, cli.connections as usize, workload, settings.clone()).await
        }
        Driver::SmtpSource => {
            let source = smtp_source::SourceSettings {
                helo: &settings.helo,
                mail_from: &settings.mail_from,
                rcpt_to: &settings.rcpt_to,
                sessions: cli.connections,
                messages: cli.messages,
                connections: cli.connection_mode,
                time_limit: SMTP_SOURCE_TIME_LIMIT,
            };
            smtp_source::run(&cli.smtp_source, addr, &source, message).await?
        }
    };
    let cpu = cpu_before
        .zip(target.cpu_time())
        .map(|(before, after)| after.saturating_sub(before));
    let sampled_max_kib = sampler.finish();
    let hold = held.finish().await;
    let peak_kib = target.memory_kib("VmHWM");
    let name = target.name();
    target
        .stop()
        .await
        .with_context(|| format!("the {name} run is void"))?;
    Ok(RunReport {
        target: name.into(),
        delivered: load.delivered,
        elapsed: load.elapsed,
        latencies: Latencies::new(load.latencies),
        errors: load.errors,
        cpu,
        memory: MemoryReport {
            peak_kib,
            holding_kib,
            sampled_max_kib,
        },
        hold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_documented_benchmark() {
        let cli = Cli::parse_from(["authcheck-loadgen"]);
        assert_eq!(cli.target, TargetChoice::Both);
        assert_eq!((cli.connections, cli.messages, cli.hold), (50, 5000, 0));
        assert_eq!(cli.key, KeyChoice::Rsa2048);
        assert_eq!(
            (cli.driver, cli.connection_mode),
            (Driver::Loadgen, ConnectionMode::Reuse)
        );
        assert!(cli.authcheck.ends_with("target/release/authcheck"));
    }

    #[test]
    fn duration_and_a_message_count_exclude_each_other() {
        assert!(
            Cli::try_parse_from(["authcheck-loadgen", "--duration", "10", "--messages", "5"])
                .is_err()
        );
        let cli = Cli::try_parse_from([
            "authcheck-loadgen",
            "--duration",
            "10",
            "--target",
            "smtp-sink",
        ])
        .unwrap();
        assert_eq!(
            (cli.duration, cli.target),
            (Some(10), TargetChoice::SmtpSink)
        );
    }
}
