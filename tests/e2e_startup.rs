//! Starting up, end to end through the real binary: which layer of settings wins (file, then
//! environment, then flag); a database that is not there yet at start (tried again with a log
//! line per attempt, then exit status 75, or the service comes up once the database does);
//! and no database password in any output, error or `--help`.
//!
//! The tests that need a real PostgreSQL server are ignored, with the reason, when
//! `AUTHCHECK_TEST_POSTGRES_URL` was not set at build time (see build.rs).

mod support;

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;

/// A password that must never be printed.
const SECRET: &str = "Sup3rSecretPassw0rd";

/// Runs `authcheck` with `args` and `env` added to the environment.
async fn run(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> (ExitStatus, String, String) {
    let mut command = Command::new(support::binary());
    command
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("authcheck did not finish in time")
        .expect("run authcheck");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A loopback port with nothing listening on it.
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A command line, its environment, and which layer should win.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

fn assert_no_secret(what: &str, stdout: &str, stderr: &str) {
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "{what}: the password is shown:\nstdout: {stdout}\nstderr: {stderr}"
    );
}

#[tokio::test]
async fn flags_win_over_the_environment_which_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| format!("sqlite://{}/{name}.db", dir.path().display());
    let config = dir.path().join("authcheck.toml");
    std::fs::write(&config, format!("database_url = {:?}\n", url("file"))).unwrap();
    let config = config.to_str().unwrap();
    let env_url = url("env");
    let flag_url = url("flag");

    let layers: [Case; 3] = [
        (&["migrate", "--config", config], &[], "file"),
        (
            &["migrate", "--config", config],
            &[("AUTHCHECK_DATABASE_URL", &env_url)],
            "env",
        ),
        (
            &["migrate", "--config", config, "--database-url", &flag_url],
            &[("AUTHCHECK_DATABASE_URL", &env_url)],
            "flag",
        ),
    ];
    for (args, env, winner) in layers {
        let (status, stdout, stderr) = run(args, env, dir.path()).await;
        assert!(status.success(), "{args:?}: {stderr}");
        assert!(stdout.contains(&url(winner)), "{winner} wins: {stdout}");
        assert!(dir.path().join(format!("{winner}.db")).exists());
    }
}

#[tokio::test]
async fn a_bad_setting_in_the_environment_or_the_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = run(
        &["migrate"],
        &[("AUTHCHECK_RETENTION", "forever")],
        dir.path(),
    )
    .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid setting retention"), "{stderr}");

    let config = dir.path().join("authcheck.toml");
    std::fs::write(&config, "max_connections = 0\n").unwrap();
    let (status, _, stderr) = run(
        &["migrate", "--config", config.to_str().unwrap()],
        &[],
        dir.path(),
    )
    .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid setting max_connections"),
        "{stderr}"
    );
}

/// The self-check (on by default) signs with the tester's key: a key file that cannot be used
/// stops the start with its path and the reason, instead of the service running without it.
#[tokio::test]
async fn a_dkim_key_that_cannot_be_used_stops_the_start_with_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_key = dir.path().join("not-a-key.pem");
    std::fs::write(&not_a_key, "-----BEGIN PRIVATE KEY-----\nnonsense\n").unwrap();
    let a_folder = dir.path().join("a-folder");
    std::fs::create_dir(&a_folder).unwrap();
    let nowhere = dir.path().join("missing").join("dkim.key");
    let database = format!("sqlite://{}/a.db", dir.path().display());
    for (key, reason) in [
        (&not_a_key, "is not a PKCS#8 PEM RSA private key"),
        (&a_folder, "cannot read the DKIM key"),
        (&nowhere, "there is no folder"),
    ] {
        let key = key.to_str().unwrap();
        let (status, _, stderr) = run(
            &[
                "serve",
                "--database-url",
                &database,
                "--smtp-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "off",
                "--dns-server",
                "127.0.0.1:1",
                "--dkim-key",
                key,
            ],
            &[],
            dir.path(),
        )
        .await;
        assert_eq!(status.code(), Some(2), "{key}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(reason) && stderr.contains("dkim_key"),
            "{key}: {stderr}"
        );
    }
    assert!(!nowhere.exists(), "no key is made where none can be");
}

#[tokio::test]
async fn a_database_that_never_answers_exits_75_after_logging_each_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://authcheck:{SECRET}@127.0.0.1:{}/authcheck",
        unused_port()
    );
    let (status, stdout, stderr) = run(
        &[
            "serve",
            "--smtp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--database-connect-timeout",
            "6s",
        ],
        &[],
        dir.path(),
    )
    .await;
    assert_eq!(status.code(), Some(75), "EX_TEMPFAIL: {stderr}");
    let attempts = stderr
        .lines()
        .filter(|l| l.contains("trying again"))
        .count();
    assert!(attempts >= 1, "a log line per attempt: {stderr}");
    assert!(stderr.contains("gave up after"), "{stderr}");
    assert!(
        !stdout.contains("listening"),
        "the service did not start: {stdout}"
    );
    assert_no_secret("serve with an unreachable database", &stdout, &stderr);
}

#[tokio::test]
async fn no_password_in_output_errors_or_help() {
    let dir = tempfile::tempdir().unwrap();
    let unreachable = format!(
        "postgres://authcheck:{SECRET}@127.0.0.1:{}/authcheck",
        unused_port()
    );
    let cases: [(&str, String, i32); 4] = [
        (
            "unsupported scheme",
            format!("postgress://authcheck:{SECRET}@127.0.0.1/authcheck"),
            2,
        ),
        (
            "no // after the scheme",
            format!("postgres:authcheck:{SECRET}@127.0.0.1/authcheck"),
            2,
        ),
        (
            "port not a number",
            format!("postgres://authcheck:{SECRET}@127.0.0.1:port/authcheck"),
            2,
        ),
        ("unreachable server", unreachable.clone(), 75),
    ];
    for (what, url, code) in cases {
        let (status, stdout, stderr) = run(
            &[
                "migrate",
                "--database-url",
                &url,
                "--database-connect-timeout",
                "0s",
            ],
            &[],
            dir.path(),
        )
        .await;
        assert_eq!(status.code(), Some(code), "{what}: {stderr}");
        assert!(stderr.contains("database"), "{what}: says why: {stderr}");
        assert_no_secret(what, &stdout, &stderr);
    }

    for command in ["serve", "migrate", "purge"] {
        let (status, stdout, stderr) = run(
            &[command, "--help"],
            &[("AUTHCHECK_DATABASE_URL", &unreachable)],
            dir.path(),
        )
        .await;
        assert!(status.success(), "{stderr}");
        assert!(stdout.contains("AUTHCHECK_DATABASE_URL"), "{stdout}");
        assert_no_secret("--help", &stdout, &stderr);
    }
}

/// `url` with its host and port replaced by `127.0.0.1:port`.
#[cfg(postgres_tests)]
fn via_port(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (user, rest) = rest.rsplit_once('@').expect("user");
    let database = rest.split_once('/').map_or("", |(_, db)| db);
    format!("{scheme}://{user}@127.0.0.1:{port}/{database}")
}

#[cfg(postgres_tests)]
fn server_address(url: &str) -> String {
    let rest = url.rsplit_once('@').expect("user").1;
    rest.split_once('/')
        .map_or(rest, |(host, _)| host)
        .to_string()
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn a_database_that_starts_late_is_waited_for() {
    #[cfg(postgres_tests)]
    {
        use support::{Service, ServiceOptions};

        let database = support::fresh_postgres_database(&support::postgres_url());
        let server = server_address(&database);
        let port = unused_port();
        let dns = authcheck_testdns::TestDns::start().await;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let mut options = ServiceOptions::new(&dns);
        options.database_url = Some(via_port(&database, port));
        options.extra_args = vec!["--database-connect-timeout".into(), "60s".into()];
        options.stderr_to = Some(log.clone());

        // The database "starts" once the service has said it is waiting for it: a loopback
        // forwarder to the real server appears on the port the service was given.
        let log_to_watch = log.clone();
        let forwarder = tokio::spawn(async move {
            let waiting = support::eventually(Duration::from_secs(30), || async {
                let text = std::fs::read_to_string(&log_to_watch).unwrap_or_default();
                text.contains("trying again").then_some(())
            })
            .await;
            assert!(waiting.is_some(), "no log line of a failed attempt");
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind the forwarder");
            loop {
                let (mut client, _) = listener.accept().await.expect("accept");
                let server = server.clone();
                tokio::spawn(async move {
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(&server).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });

        let service = Service::start_with(options).await;
        assert_eq!(
            service.get("/healthz").await.status(),
            reqwest::StatusCode::OK
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("trying again"), "{text}");
        service.stop().await;
        forwarder.abort();
    }
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn postgres_passwords_are_not_shown() {
    #[cfg(postgres_tests)]
    {
        let dir = tempfile::tempdir().unwrap();
        let database = support::fresh_postgres_database(&support::postgres_url());
        let (user, rest) = database
            .split_once("://")
            .unwrap()
            .1
            .rsplit_once('@')
            .unwrap();
        let (user, password) = user.split_once(':').expect("a URL with a password");

        let (status, stdout, stderr) =
            run(&["migrate", "--database-url", &database], &[], dir.path()).await;
        assert!(status.success(), "{stderr}");
        assert!(stdout.contains(&format!("{user}:****@{rest}")), "{stdout}");
        let shown = format!(":{password}@");
        assert!(
            !stdout.contains(&shown) && !stderr.contains(&shown),
            "{stdout}{stderr}"
        );

        let wrong = format!("postgres://{user}:{SECRET}@{rest}");
        let (status, stdout, stderr) =
            run(&["migrate", "--database-url", &wrong], &[], dir.path()).await;
        assert_eq!(status.code(), Some(2), "a refused password: {stderr}");
        assert!(stderr.contains("database_url"), "{stderr}");
        assert_no_secret("a wrong password", &stdout, &stderr);
    }
}
