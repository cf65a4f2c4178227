//! The `authcheck` binary: the tester service (`serve`), the offline verifier (`check`), and the
//! maintenance commands (`migrate`, `purge`).
//!
//! Exit status (see [`failure::Failure`]): 0 when the command did its work; 2 for bad usage or
//! configuration, an unreadable message file included (with a one-line error that says what
//! to fix); 75 (EX_TEMPFAIL) when something it needs is not there yet, such as a database that
//! cannot be reached within `database_connect_timeout`; 1 for any other failure while running.

mod check;
mod cli;
mod config;
mod delivery;
mod dmarc;
mod failure;
mod metrics;
mod outgoing;
mod reply;
mod schedule;
mod self_check;
mod serve;
mod session_log;
mod sources;
mod summary;
#[cfg(test)]
mod test_store;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, DmarcCommand};
use crate::config::{LogFormat, Settings, redact_url};
use crate::failure::Failure;

/// Every message is parsed, verified and reported through many small allocations made on
/// several threads at once; mimalloc keeps those cheap where the system allocator spends a
/// noticeable share of the service's time (see the load benchmark in the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, which the bindings do not name).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Gives freed pages back to the system after 1 ms instead of mimalloc's 10 ms (100 ms for its
/// arenas). Message buffers of up to 10 MiB are taken and freed by hundreds of sessions at a
/// time; with the default delay the freed ones stayed resident, and 500 slow senders of 10 MB
/// peaked at 750-840 MiB of RSS against a 512 MiB budget (620-670 MiB with this).
fn return_freed_memory_promptly() {
    // SAFETY: mi_option_set only stores an integer option; any value is valid for this one.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1) };
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into journald or a log file.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn load_settings(args: &cli::ServiceArgs) -> Result<Settings, Failure> {
    let settings = Settings::load(args)?;
    init_logging(settings.log_format);
    Ok(settings)
}

/// Parses the command line; a usage error becomes one line that says what to do, exit 2.
/// `--help` and `--version` print as clap writes them.
fn parse_command_line() -> Result<Cli, ExitCode> {
    let error = match Cli::try_parse() {
        Ok(cli) => return Ok(cli),
        Err(error) => error,
    };
    if !error.use_stderr() {
        // --help or --version: not an error.
        let _ = error.print();
        return Err(ExitCode::SUCCESS);
    }
    eprintln!("{}", one_line_usage_error(&error.render().to_string()));
    Err(ExitCode::from(2))
}

/// clap's message up to its first blank line (the problem, then any argument it names), on one
/// line, followed by where to read the usage.
fn one_line_usage_error(rendered: &str) -> String {
    let problem: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let problem = problem.join(" ");
    let problem = problem.strip_prefix("error: ").unwrap_or(&problem);
    format!(
        "authcheck: {problem}; run `authcheck --help` (or `authcheck COMMAND --help`) for usage"
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    return_freed_memory_promptly();
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Into the log (when logging has started) and, for a person, on stderr.
            tracing::error!("{failure}");
            eprintln!("authcheck: {failure}");
            failure.exit_code()
        }
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Serve(args) => serve::serve(load_settings(&args)?).await,
        Command::Check(args) => check::run(args).await,
        Command::Migrate(args) => {
            let settings = load_settings(&args)?;
            let store = serve::open_store(&settings).await?;
            // Closing folds SQLite's log into the database file and syncs it.
            store.close().await;
            println!(
                "authcheck: migrations applied to {}",
                redact_url(&settings.database_url)
            );
            Ok(())
        }
        Command::Dmarc(DmarcCommand::Import(args)) => {
            let settings = load_settings(&args.service)?;
            let dns = if args.no_lookups {
                None
            } else {
                let config = authcheck_verifier::dns::DnsConfig {
                    servers: settings.dns_servers.clone(),
                    ..Default::default()
                };
                Some(authcheck_verifier::Dns::new(&config).map_err(|e| {
                    Failure::Usage(format!(
                        "{e}; name a resolver with --dns-server, or import with --no-lookups"
                    ))
                })?)
            };
            // Paths that cannot be read are refused before the database is opened, or made.
            let files = dmarc::files(&args.paths)?;
            let store = serve::open_store(&settings).await?;
            let imported = dmarc::import(&store, &files, dns.as_ref()).await;
            // Closing folds SQLite's log into the database file and syncs it.
            store.close().await;
            imported
        }
        Command::Purge(args) => {
            let settings = load_settings(&args)?;
            let store = serve::open_store(&settings).await?;
            let retention = serve::Retention::of(&settings);
            let purged = serve::purge_once(&store, retention, chrono::Utc::now()).await;
            // Closing folds SQLite's log into the database file and syncs it.
            store.close().await;
            let purged = purged.map_err(|e| match e {
                authcheck_store::StoreError::Unavailable(problem) => Failure::Temporary(problem),
                other => Failure::Runtime(anyhow::anyhow!("purge failed: {other}")),
            })?;
            println!(
                "authcheck: deleted {} results older than {} and {} DMARC reports older than {}",
                purged.results,
                humantime::format_duration(retention.results),
                purged.reports,
                humantime::format_duration(retention.reports)
            );
            Ok(())
        }
    }
}
