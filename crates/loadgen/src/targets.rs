//! The servers under test, started as child processes listening on loopback: the authcheck
//! release binary (with a fresh SQLite database and the benchmark's DNS server) and Postfix's
//! `smtp-sink`, which parses, verifies and stores nothing and so is the ceiling. Also reads a
//! child's memory from `/proc/<pid>/status`.

use anyhow::{Context as _, bail};
use authcheck_testkit::TestKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the resident set size is sampled during a run.
const MEMORY_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// A running server under test; it is killed when stopped or dropped.
pub struct Target {
    name: &'static str,
    child: Child,
    pid: u32,
    smtp_addr: SocketAddr,
    log_path: PathBuf,
    /// Holds the database and the log; removed when the target is dropped.
    _workdir: TempDir,
}

impl Target {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp_addr
    }

    /// A `kB` field of the server's `/proc/<pid>/status`, such as `VmHWM` or `VmRSS`.
    pub fn memory_kib(&self, field: &str) -> Option<u64> {
        read_status_kib(self.pid, field)
    }

    /// The CPU time the server has used so far (user and system, all threads), from
    /// `/proc/<pid>/stat`.
    pub fn cpu_time(&self) -> Option<Duration> {
        authcheck_testkit::process::cpu_time(&self.pid.to_string())
    }

    /// Starts sampling the server's `VmRSS` until [`MemorySampler::finish`].
    pub fn sample_memory(&self) -> MemorySampler {
        let max = Arc::new(AtomicU64::new(0));
        let pid = self.pid;
        let task = tokio::spawn({
            let max = max.clone();
            async move {
                let mut ticks = tokio::time::interval(MEMORY_SAMPLE_INTERVAL);
                loop {
                    ticks.tick().await;
                    if let Some(rss) = read_status_kib(pid, "VmRSS") {
                        max.fetch_max(rss, Ordering::Relaxed);
                    }
                }
            }
        });
        MemorySampler { max, task }
    }

    /// Kills the server, failing if it had already exited (it died during the run).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("check the server process")? {
            bail!(
                "{} exited during the run ({status}); {}",
                self.name,
                log_tail(&self.log_path)
            );
        }
        self.child
            .start_kill()
            .with_context(|| format!("kill {}", self.name))?;
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .with_context(|| format!("{} did not exit after SIGKILL", self.name))?
            .with_context(|| format!("wait for {}", self.name))?;
        Ok(())
    }
}

/// The largest `VmRSS` seen while sampling.
pub struct MemorySampler {
    max: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl MemorySampler {
    pub fn finish(self) -> Option<u64> {
        self.task.abort();
        Some(self.max.load(Ordering::Relaxed)).filter(|&kib| kib > 0)
    }
}

/// Starts `authcheck serve` on loopback ports with a database of its own, resolving through
/// `dns`, allowing `max_connections` connections in all and from one address.
pub async fn start_authcheck(
    binary: &Path,
    dns: SocketAddr,
    max_connections: usize,
) -> anyhow::Result<Target> {
    if !binary.is_file() {
        bail!(
            "no authcheck binary at {}: build it with `cargo build --release -p authcheck` or pass --authcheck PATH",
            binary.display()
        );
    }
    let workdir = tempfile::tempdir().context("create a temporary directory for authcheck")?;
    let log_path = workdir.path().join("authcheck.log");
    let log = std::fs::File::create(&log_path).context("create authcheck's log file")?;
    // A key ready for the tester's own DKIM signature: without one, authcheck makes a 2048-bit
    // key in the background after it starts listening, and that (a fraction of a second of
    // CPU, different every time) would be counted against the run's messages.
    let dkim_key = workdir.path().join("dkim.key");
    std::fs::write(&dkim_key, TestKey::Rsa2048.private_pem())
        .context("write the tester's DKIM key")?;
    let max_connections = max_connections.to_string();
    let mut child = Command::new(binary)
        .arg("serve")
        .args([
            "--smtp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--hostname",
            "authcheck.test",
            "--domain",
            crate::scenario::TESTER_DOMAIN,
        ])
        .args(["--dns-server", &dns.to_string()])
        .arg("--dkim-key")
        .arg(&dkim_key)
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}/authcheck.db",
            workdir.path().display()
        ))
        .args([
            "--max-connections",
            &max_connections,
            "--max-connections-per-ip",
            &max_connections,
        ])
        // Every message comes from one address and one sender domain.
        .args([
            "--messages-per-client",
            "0",
            "--messages-per-sender-domain",
            "0",
        ])
        .current_dir(workdir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let pid = child.id().context("authcheck exited at once")?;

    let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let ready = tokio::time::timeout(START_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(addr) = parse_ready_line(&line) {
                return Ok(Some(addr));
            }
        }
        Ok::<_, std::io::Error>(None)
    })
    .await;
    let smtp_addr = match ready {
        Ok(Ok(Some(addr))) => addr,
        Ok(Ok(None)) | Ok(Err(_)) => {
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            bail!(
                "authcheck stopped before it was ready ({status}); {}",
                log_tail(&log_path)
            );
        }
        Err(_) => bail!(
            "authcheck was not ready after {START_TIMEOUT:?}; {}",
            log_tail(&log_path)
        ),
    };
    // Keep reading stdout so that the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Target {
        name: "authcheck",
        child,
        pid,
        smtp_addr,
        log_path,
        _workdir: workdir,
    })
}

/// The SMTP address in authcheck's ready line,
/// `authcheck: smtp listening on A, http listening on B, results at URL`.
fn parse_ready_line(line: &str) -> Option<SocketAddr> {
    line.strip_prefix("authcheck: smtp listening on ")?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Starts Postfix's `smtp-sink` on a free loopback port, accepting up to `max_connections` at once.
pub async fn start_smtp_sink(binary: &Path, max_connections: usize) -> anyhow::Result<Target> {
    if !binary.is_file() {
        bail!(
            "no smtp-sink at {}: fetch it with `apt-get download postfix && dpkg -x postfix_*.deb /tmp/postfix-x` \
             or pass --smtp-sink PATH",
            binary.display()
        );
    }
    let workdir = tempfile::tempdir().context("create a temporary directory for smtp-sink")?;
    let log_path = workdir.path().join("smtp-sink.log");
    let log = std::fs::File::create(&log_path).context("create smtp-sink's log file")?;
    // smtp-sink takes a port, not a listener: find a free one and hand it over.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("find a free loopback port")?;

    let mut command = postfix_command(binary);
    if running_as_root() {
        // smtp-sink refuses to run as root without privileges to drop to.
        command.args(["-u", "nobody"]);
    }
    let mut child = command
        .args(["-m", &max_connections.to_string()])
        .arg(addr.to_string())
        .arg("1024")
        .current_dir(workdir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let pid = child.id().context("smtp-sink exited at once")?;

    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("check smtp-sink")? {
            bail!(
                "smtp-sink exited at start ({status}); {}",
                log_tail(&log_path)
            );
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "smtp-sink was not listening on {addr} after {START_TIMEOUT:?}; {}",
                log_tail(&log_path)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Target {
        name: "smtp-sink",
        child,
        pid,
        smtp_addr: addr,
        log_path,
        _workdir: workdir,
    })
}

/// A command for one of Postfix's programs. The Debian package's binaries look for their
/// libraries in /usr/lib/postfix; when they were unpacked elsewhere, the loader is pointed at
/// the unpacked copy.
pub fn postfix_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    if let Some(libs) = binary
        .parent()
        .map(|dir| dir.join("../lib/postfix"))
        .filter(|dir| dir.is_dir())
    {
        let mut path = libs.into_os_string();
        if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
            path.push(":");
            path.push(existing);
        }
        command.env("LD_LIBRARY_PATH", path);
    }
    command
}

/// Whether this process's effective user is root, from `/proc/self/status`.
fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|effective| effective == "0")
}

fn read_status_kib(pid: u32, field: &str) -> Option<u64> {
    status_field_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        field,
    )
}

/// A `kB` field such as `VmHWM:     12345 kB` of a `/proc/<pid>/status` text.
fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The last lines of a server's log, for an error message.
fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n  ");
    if tail.is_empty() {
        "it logged nothing".into()
    } else {
        format!("the end of its log:\n  {tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_gives_the_smtp_address() {
        let line = "authcheck: smtp listening on 127.0.0.1:40123, http listening on 127.0.0.1:40124, \
                    results at http://127.0.0.1:40124/";
        assert_eq!(
            parse_ready_line(line),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(parse_ready_line("INFO starting"), None);
    }

    #[test]
    fn memory_fields_are_read_from_proc_status() {
        let status = "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_field_kib(status, "VmHWM"), Some(20480));
        assert_eq!(status_field_kib(status, "VmRSS"), Some(10240));
        assert_eq!(status_field_kib(status, "VmSwap"), None);

        let own_status =
            std::fs::read_to_string(format!("/proc/{}/status", std::process::id())).unwrap();
        let own = status_field_kib(&own_status, "VmHWM").expect("this process's VmHWM");
        let current = status_field_kib(&own_status, "VmRSS").expect("this process's VmRSS");
        assert!(
            own > 0 && own >= current,
            "VmHWM {own} kB, VmRSS {current} kB"
        );
    }

    #[tokio::test]
    async fn a_missing_binary_is_reported_with_what_to_do() {
        let dns = "127.0.0.1:53".parse().unwrap();
        let error = start_authcheck(Path::new("/nonexistent/authcheck"), dns, 10)
            .await
            .err()
            .unwrap();
        assert!(
            error
                .to_string()
                .contains("cargo build --release -p authcheck"),
            "{error}"
        );
        let error = start_smtp_sink(Path::new("/nonexistent/smtp-sink"), 10)
            .await
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("apt-get download postfix"),
            "{error}"
        );
    }
}
