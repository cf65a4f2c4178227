//! What the end-to-end tests share: starting the real `authcheck` binary against a loopback
//! DNS server, talking SMTP to it (raw TCP for protocol edges, mail-send as a real client),
//! and reading its pages and JSON API over HTTP.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use authcheck_testdns::TestDns;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// How long the service may take to start or answer before a test gives up.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_authcheck")
}

/// How to start the service.
#[derive(Clone, Debug)]
pub struct ServiceOptions {
    pub dns: SocketAddr,
    pub domains: Vec<String>,
    /// Defaults to a SQLite file in the service's own temporary folder.
    pub database_url: Option<String>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Reuse this folder (for restarts); otherwise a new temporary one.
    pub data_dir: Option<PathBuf>,
    /// Write the service's log (stderr) to this file instead of the test's stderr.
    pub stderr_to: Option<PathBuf>,
}

/// The PostgreSQL server of the tests. Tests that use it are built only when the variable was
/// set at build time (see build.rs), so its absence now is a mistake worth failing on.
pub fn postgres_url() -> String {
    std::env::var("AUTHCHECK_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .expect(
            "AUTHCHECK_TEST_POSTGRES_URL was set when these tests were built but is not set now",
        )
}

/// Creates a fresh database on the PostgreSQL server of `server_url` and returns its URL.
pub fn fresh_postgres_database(server_url: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("authcheck_e2e_{}_{nanos}_{n}", std::process::id());
    let status = std::process::Command::new("psql")
        .args([server_url, "-qc", &format!("CREATE DATABASE {name}")])
        .status()
        .expect("run psql");
    assert!(status.success(), "create database {name}");
    let base = server_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .expect("URL with a database name");
    format!("{base}/{name}")
}

/// The database new services use: SQLite in their folder by default; with
/// `AUTHCHECK_E2E_BACKEND=postgres`, a fresh database on `AUTHCHECK_TEST_POSTGRES_URL`'s
/// server, so the same end-to-end tests run against both backends.
fn default_database() -> Option<String> {
    match std::env::var("AUTHCHECK_E2E_BACKEND").as_deref() {
        Ok("postgres") => {
            let server = std::env::var("AUTHCHECK_TEST_POSTGRES_URL")
                .expect("AUTHCHECK_E2E_BACKEND=postgres needs AUTHCHECK_TEST_POSTGRES_URL");
            Some(fresh_postgres_database(&server))
        }
        _ => None,
    }
}

impl ServiceOptions {
    pub fn new(dns: &TestDns) -> Self {
        ServiceOptions {
            dns: dns.addr(),
            domains: vec!["tester.test".into()],
            database_url: default_database(),
            extra_args: Vec::new(),
            env: Vec::new(),
            data_dir: None,
            stderr_to: None,
        }
    }
}

/// A running `authcheck serve` process; killed when dropped.
pub struct Service {
    child: Child,
    pub smtp: SocketAddr,
    pub http: SocketAddr,
    /// The operators' listener (`/metrics`, `/livez`, `/readyz`), unless turned off.
    pub metrics: Option<SocketAddr>,
    pub public_url: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub options: ServiceOptions,
}

impl Service {
    pub async fn start(dns: &TestDns) -> Service {
        Service::start_with(ServiceOptions::new(dns)).await
    }

    pub async fn start_with(options: ServiceOptions) -> Service {
        let (temp, data_dir) = match &options.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::tempdir().expect("temporary folder");
                let dir = temp.path().to_path_buf();
                (Some(temp), dir)
            }
        };
        let database_url = options
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/authcheck.db", data_dir.display()));
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .args([
                "--smtp-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(["--hostname", "authcheck.test"])
            .args(["--dns-server", &options.dns.to_string()])
            .args(["--database-url", &database_url])
            .args(&options.extra_args)
            .current_dir(&data_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        // Each service gets its own operators' port unless the test chooses.
        if !options
            .extra_args
            .iter()
            .any(|arg| arg.starts_with("--metrics-listen"))
        {
            command.args(["--metrics-listen", "127.0.0.1:0"]);
        }
        match &options.stderr_to {
            Some(path) => command.stderr(std::fs::File::create(path).expect("create the log file")),
            None => command.stderr(Stdio::inherit()),
        };
        for domain in &options.domains {
            command.args(["--domain", domain]);
        }
        for (name, value) in &options.env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start authcheck serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("authcheck serve did not report its addresses in time")
            .expect("read authcheck's output")
            .expect("authcheck serve exited before listening");
        // "authcheck: smtp listening on A, http listening on B, results at URL"
        let smtp = between(&line, "smtp listening on ", ",")
            .parse()
            .expect("smtp address");
        let http = between(&line, "http listening on ", ",")
            .parse()
            .expect("http address");
        let metrics = between(&line, "metrics listening on ", ",").parse().ok();
        let public_url = line
            .split("results at ")
            .nth(1)
            .expect("public url")
            .trim()
            .to_string();
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Service {
            child,
            smtp,
            http,
            metrics,
            public_url,
            data_dir,
            _temp: temp,
            options,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        http()
            .get(self.url(path))
            .send()
            .await
            .expect("HTTP request")
    }

    /// GET on the operators' listener, e.g. `/metrics`.
    pub async fn get_operator(&self, path: &str) -> reqwest::Response {
        let metrics = self.metrics.expect("the operators' listener is on");
        http()
            .get(format!("http://{metrics}{path}"))
            .send()
            .await
            .expect("HTTP request")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.get(path).await;
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.expect("JSON body")
    }

    pub async fn get_text(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.text().await.expect("text body")
    }

    /// Asks the service to stop (SIGTERM) and waits for it to exit.
    pub async fn stop(mut self) -> ExitStatus {
        self.terminate();
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("authcheck did not stop in time")
            .expect("wait")
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// The service's peak resident memory so far (`VmHWM`), in KiB, as Linux counts it.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("the service is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("read the service's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc status")
    }

    /// Kills the process at once (SIGKILL) and waits for it to be gone.
    pub async fn kill(mut self) -> Option<tempfile::TempDir> {
        let _ = self.child.kill().await;
        self._temp.take()
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("authcheck.db")
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let rest = text
        .split(start)
        .nth(1)
        .unwrap_or_else(|| panic!("{start:?} not in {text:?}"));
    rest.split(end).next().unwrap_or(rest).trim()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("HTTP client")
}

/// One SMTP reply: the code and the text of every line.
#[derive(Clone, Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The `(id, url)` pairs of a `250 2.0.0 Stored as <id>: <url>[; <id>: <url>]` reply, or
    /// of its lines when it has one `Stored as` line per result.
    pub fn stored(&self) -> Vec<(String, String)> {
        self.lines
            .iter()
            .filter_map(|line| line.split_once("Stored as ").map(|(_, list)| list))
            .flat_map(|list| list.split(';'))
            .filter_map(|item| {
                let (id, url) = item.trim().split_once(": ")?;
                Some((
                    id.trim().to_string(),
                    url.split_whitespace().next()?.to_string(),
                ))
            })
            .collect()
    }
}

/// A raw SMTP conversation over TCP, for protocol edge cases.
pub struct RawSmtp {
    reader: BufReader<tokio::io::ReadHalf<TcpStream>>,
    writer: tokio::io::WriteHalf<TcpStream>,
    /// How long to wait for a reply line: [`PATIENCE`] unless set with [`RawSmtp::patience`].
    patience: Duration,
}

impl RawSmtp {
    /// Connects and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> (RawSmtp, Reply) {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the SMTP listener");
        let (read, write) = tokio::io::split(stream);
        let mut smtp = RawSmtp {
            reader: BufReader::new(read),
            writer: write,
            patience: PATIENCE,
        };
        let greeting = smtp.read_reply().await;
        (smtp, greeting)
    }

    /// Waits up to `limit` for each reply from now on (for measurements of slow work).
    pub fn patience(&mut self, limit: Duration) {
        self.patience = limit;
    }

    pub async fn write(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .await
            .expect("write to the SMTP listener");
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub async fn command(&mut self, line: &str) -> Reply {
        self.write(format!("{line}\r\n").as_bytes()).await;
        self.read_reply().await
    }

    pub async fn read_reply(&mut self) -> Reply {
        self.try_read_reply()
            .await
            .expect("the server closed the connection instead of replying")
    }

    /// Reads a reply, or None when the server closed the connection.
    pub async fn try_read_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(self.patience, self.reader.read_line(&mut line))
                .await
                .expect("no SMTP reply in time")
                .ok()?;
            if n == 0 {
                return None;
            }
            let line = line.trim_end();
            assert!(line.len() >= 3, "short SMTP reply line {line:?}");
            // RFC 5321 section 4.5.3.1.5: 512 octets with the CRLF.
            assert!(
                line.len() <= 510,
                "SMTP reply line over 512 octets: {line:?}"
            );
            let code: u16 = line[..3].parse().expect("reply code");
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if last {
                return Some(Reply { code, lines });
            }
        }
    }

    /// True when the server has closed the connection (reads end of stream).
    pub async fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(PATIENCE, self.reader.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// EHLO, MAIL FROM, RCPT TO each, DATA, the message (dot-stuffed), and the final reply.
    pub async fn send(
        &mut self,
        helo: &str,
        mail_from: &str,
        recipients: &[&str],
        message: &[u8],
    ) -> Reply {
        let ehlo = self.command(&format!("EHLO {helo}")).await;
        assert_eq!(ehlo.code, 250, "EHLO: {ehlo:?}");
        let mail = self.command(&format!("MAIL FROM:<{mail_from}>")).await;
        assert_eq!(mail.code, 250, "MAIL FROM: {mail:?}");
        for rcpt in recipients {
            let reply = self.command(&format!("RCPT TO:<{rcpt}>")).await;
            assert_eq!(reply.code, 250, "RCPT TO {rcpt}: {reply:?}");
        }
        let data = self.command("DATA").await;
        assert_eq!(data.code, 354, "DATA: {data:?}");
        self.write(&dot_stuffed(message)).await;
        self.read_reply().await
    }
}

pub use authcheck_outbound::dot_stuffed;

/// Sends `message` with the raw client and returns the final reply.
pub async fn send(
    service: &Service,
    helo: &str,
    mail_from: &str,
    recipients: &[&str],
    message: &[u8],
) -> Reply {
    let (mut smtp, greeting) = RawSmtp::connect(service.smtp).await;
    assert_eq!(greeting.code, 220, "greeting: {greeting:?}");
    let reply = smtp.send(helo, mail_from, recipients, message).await;
    let _ = smtp.command("QUIT").await;
    reply
}

/// Sends and expects the result to be stored; returns the single result's JSON from the API.
pub async fn send_and_fetch(
    service: &Service,
    helo: &str,
    mail_from: &str,
    recipient: &str,
    message: &[u8],
) -> serde_json::Value {
    let reply = send(service, helo, mail_from, &[recipient], message).await;
    assert_eq!(reply.code, 250, "final reply: {reply:?}");
    let stored = reply.stored();
    assert_eq!(stored.len(), 1, "one result expected: {reply:?}");
    service
        .get_json(&format!("/api/v1/results/{}", stored[0].0))
        .await
}

/// Runs `authcheck check --json` on `message` as `ip` sending it (HELO `mail.sender.test`,
/// MAIL FROM `mail_from`), with `dns` as the only DNS server, and returns the report. Fails
/// the test unless `check` exits with 0.
pub async fn check_json(
    dns: &TestDns,
    message: &[u8],
    ip: &str,
    mail_from: &str,
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let server = dns.addr().to_string();
    let (status, stdout, stderr) = run_cli(
        &[
            "check",
            "-",
            "--ip",
            ip,
            "--helo",
            "mail.sender.test",
            "--mail-from",
            mail_from,
            "--dns-server",
            &server,
            "--json",
        ],
        Some(message),
        dir.path(),
    )
    .await;
    assert!(status.success(), "exit {status}: {stderr}");
    serde_json::from_str(&stdout).expect("JSON on stdout")
}

/// Runs `authcheck` with these arguments and standard input; returns (status, stdout, stderr).
pub async fn run_cli(
    args: &[&str],
    stdin: Option<&[u8]>,
    cwd: &Path,
) -> (ExitStatus, String, String) {
    let mut child = Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run authcheck");
    if let Some(bytes) = stdin {
        let mut input = child.stdin.take().expect("piped stdin");
        input.write_all(bytes).await.expect("write stdin");
        drop(input);
    }
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("authcheck did not finish in time")
        .expect("authcheck output");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Polls `check` every 50 ms until it returns Some, at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
