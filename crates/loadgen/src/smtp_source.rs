//! Postfix's `smtp-source` as the load's driver instead of the benchmark's own client: a lean C
//! client, so that the client's own cost says as little as possible about the server's rate.
//!
//! smtp-source sends the benchmark's message file unchanged (it adds the CRLFs and the dot
//! stuffing), one new connection per message unless told to reuse them (`-d`). It times
//! nothing per message, so a run driven by it has a rate but no latencies.

use crate::client::{ConnectionMode, LoadOutcome};
use crate::stats::record_error;
use anyhow::{Context as _, bail};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What smtp-source is told to send, beside the message itself.
pub struct SourceSettings<'a> {
    pub helo: &'a str,
    pub mail_from: &'a str,
    pub rcpt_to: &'a str,
    pub sessions: u32,
    pub messages: u64,
    pub connections: ConnectionMode,
    /// The longest the whole run may take before smtp-source is killed.
    pub time_limit: Duration,
}

/// Fails early, with what to do, when smtp-source is not there.
pub fn check_binary(binary: &Path) -> anyhow::Result<()> {
    if !binary.is_file() {
        bail!(
            "no smtp-source at {}: fetch it with `apt-get download postfix && dpkg -x postfix_*.deb /tmp/postfix-x` \
             or pass --smtp-source PATH",
            binary.display()
        );
    }
    Ok(())
}

/// The arguments of one run, in smtp-source's own terms.
fn arguments(settings: &SourceSettings<'_>, message_file: &Path, addr: SocketAddr) -> Vec<String> {
    let mut args = vec![
        "-s".to_string(),
        settings.sessions.to_string(),
        "-m".to_string(),
        settings.messages.to_string(),
        "-M".to_string(),
        settings.helo.to_string(),
        "-f".to_string(),
        settings.mail_from.to_string(),
        "-t".to_string(),
        settings.rcpt_to.to_string(),
        "-F".to_string(),
        message_file.display().to_string(),
    ];
    if settings.connections == ConnectionMode::Reuse {
        args.push("-d".to_string());
    }
    args.push(addr.to_string());
    args
}

/// Runs smtp-source against `addr` with `message` (LF or CRLF line ends) and reports how long
/// it took. smtp-source stops at the first unexpected reply, so a failed run delivered an
/// unknown share of its messages: it counts as none, with smtp-source's own words as the error.
pub async fn run(
    binary: &Path,
    addr: SocketAddr,
    settings: &SourceSettings<'_>,
    message: &[u8],
) -> anyhow::Result<LoadOutcome> {
    let workdir = tempfile::tempdir().context("create a temporary directory for smtp-source")?;
    let message_file = workdir.path().join("message.eml");
    // smtp-source appends CRLF to each line itself.
    let lines: Vec<u8> = message.iter().copied().filter(|&b| b != b'\r').collect();
    std::fs::write(&message_file, lines).context("write the message for smtp-source")?;

    let started = Instant::now();
    let child = crate::targets::postfix_command(binary)
        .args(arguments(settings, &message_file, addr))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let output = tokio::time::timeout(settings.time_limit, child.wait_with_output())
        .await
        .with_context(|| {
            format!(
                "smtp-source did not finish within {:?}",
                settings.time_limit
            )
        })?
        .context("wait for smtp-source")?;
    let elapsed = started.elapsed();

    let mut outcome = LoadOutcome {
        elapsed,
        ..LoadOutcome::default()
    };
    if output.status.success() {
        outcome.delivered = settings.messages;
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last_line = stderr
            .lines()
            .last()
            .unwrap_or("it printed nothing")
            .to_string();
        record_error(
            &mut outcome.errors,
            format!("smtp-source {}", output.status),
            || last_line,
        );
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(connections: ConnectionMode) -> SourceSettings<'static> {
        SourceSettings {
            helo: "client.test",
            mail_from: "a@client.test",
            rcpt_to: "spf@tester.test",
            sessions: 20,
            messages: 10_000,
            connections,
            time_limit: Duration::from_secs(60),
        }
    }

    #[test]
    fn reused_connections_add_smtp_sources_d_flag_and_the_address_comes_last() {
        let addr: SocketAddr = "127.0.0.1:2525".parse().unwrap();
        let file = Path::new("/tmp/m.eml");
        let per_message = arguments(&settings(ConnectionMode::PerMessage), file, addr);
        assert!(!per_message.contains(&"-d".to_string()));
        assert_eq!(
            per_message.join(" "),
            "-s 20 -m 10000 -M client.test -f a@client.test -t spf@tester.test -F /tmp/m.eml 127.0.0.1:2525"
        );
        let reuse = arguments(&settings(ConnectionMode::Reuse), file, addr);
        assert_eq!(&reuse[reuse.len() - 2..], ["-d", "127.0.0.1:2525"]);
    }

    #[tokio::test]
    async fn a_missing_binary_is_named_with_what_to_do() {
        let error = check_binary(Path::new("/nonexistent/smtp-source")).unwrap_err();
        assert!(
            error.to_string().contains("apt-get download postfix"),
            "{error}"
        );
    }
}
