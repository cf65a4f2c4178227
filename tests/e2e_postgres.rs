//! Several instances on one PostgreSQL, end to end: two real `authcheck serve` processes share a
//! database; a message accepted by one shows on the other; a lost database gives the SMTP client
//! `451 4.3.0` and the service recovers by itself when the database returns.
//!
//! The server comes from `AUTHCHECK_TEST_POSTGRES_URL` (scripts/test sets it). Without it these
//! tests are ignored, and `cargo test` says why. The outage test runs its own private PostgreSQL cluster
//! (initdb on a free port) so that stopping it disturbs no other test.

mod support;

use std::path::PathBuf;
use std::process::Command as StdCommand;
use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_testkit::message;
use support::{Service, ServiceOptions, eventually, postgres_url, send, send_and_fetch};

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    dns.add_txt("pass.test", "v=spf1 ip4:127.0.0.1 -all");
    dns
}

fn with_database(dns: &TestDns, url: &str) -> ServiceOptions {
    let mut options = ServiceOptions::new(dns);
    options.database_url = Some(url.to_string());
    options
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn a_result_accepted_by_one_instance_shows_on_the_other() {
    let server = postgres_url();
    let database = support::fresh_postgres_database(&server);
    let dns = zone().await;
    let a = Service::start_with(with_database(&dns, &database)).await;
    let b = Service::start_with(with_database(&dns, &database)).await;

    let stored = send_and_fetch(
        &a,
        "helo.test",
        "x@pass.test",
        "spf@tester.test",
        &message("x@pass.test", "Shared", "Hi.\r\n"),
    )
    .await;
    let id = stored["id"].as_str().unwrap().to_string();
    let seen = eventually(Duration::from_secs(1), || async {
        let list = b.get_json("/api/v1/results?mailbox=spf").await;
        (list["results"][0]["id"] == id.as_str()).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "instance B's API shows A's result within a second"
    );
    let page = b.get_text("/spf").await;
    assert!(page.contains(&id), "instance B's page lists A's result");

    // The live stream on B announces a result stored through A.
    let mut events = support::http()
        .get(b.url("/events?mailbox=spf"))
        .send()
        .await
        .unwrap();
    let second = send(
        &a,
        "helo.test",
        "x@pass.test",
        &["spf@tester.test"],
        &message("x@pass.test", "Live", "Hi.\r\n"),
    )
    .await;
    assert_eq!(second.code, 250, "{second:?}");
    let second_id = second.stored()[0].0.clone();
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !received.contains(&second_id) && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(2), events.chunk()).await {
            Ok(Ok(Some(chunk))) => received.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    assert!(
        received.contains(&second_id),
        "B's event stream carried A's new result: {received:?}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn concurrent_purges_on_one_database_are_safe() {
    let server = postgres_url();
    let database = support::fresh_postgres_database(&server);
    let dns = zone().await;
    let a = Service::start_with(with_database(&dns, &database)).await;
    send_and_fetch(
        &a,
        "helo.test",
        "x@pass.test",
        "spf@tester.test",
        &message("x@pass.test", "Old", "Hi.\r\n"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let purges = (0..4).map(|_| {
        let database = database.clone();
        let dir = dir.path().to_path_buf();
        async move {
            support::run_cli(
                &["purge", "--database-url", &database, "--retention", "1s"],
                None,
                &dir,
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (status, stdout, stderr) in futures::future::join_all(purges).await {
        assert!(status.success(), "purge failed: {stdout} {stderr}");
    }
    let list = a.get_json("/api/v1/results").await;
    assert_eq!(list["results"].as_array().unwrap().len(), 0);
}

/// A private PostgreSQL cluster on a free port, run as the `postgres` user, that a test may stop
/// and start.
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
}

impl PrivatePostgres {
    fn bin_dir() -> Option<PathBuf> {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        versions.sort();
        versions
            .pop()
            .map(|v| v.join("bin"))
            .filter(|b| b.join("initdb").exists())
    }

    fn as_postgres(args: &[&str]) -> bool {
        StdCommand::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn create() -> Option<PrivatePostgres> {
        let bin = Self::bin_dir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = std::env::temp_dir().join(format!("authcheck-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        StdCommand::new("chown")
            .args(["postgres:postgres", dir.to_str()?])
            .status()
            .ok()?;
        let initdb = bin.join("initdb");
        if !Self::as_postgres(&[
            initdb.to_str()?,
            "-D",
            dir.to_str()?,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]) {
            return None;
        }
        let pg = PrivatePostgres { dir, port, bin };
        pg.start().then_some(pg)
    }

    fn start(&self) -> bool {
        let ctl = self.bin.join("pg_ctl");
        let options = format!(
            "-p {} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        Self::as_postgres(&[
            ctl.to_str().unwrap(),
            "-D",
            self.dir.to_str().unwrap(),
            "-o",
            &options,
            "-w",
            "-l",
            self.dir.join("log").to_str().unwrap(),
            "start",
        ])
    }

    fn stop(&self) -> bool {
        let ctl = self.bin.join("pg_ctl");
        Self::as_postgres(&[
            ctl.to_str().unwrap(),
            "-D",
            self.dir.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            "stop",
        ])
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn a_lost_database_gives_451_and_the_service_recovers() {
    let pg = PrivatePostgres::create()
        .expect("a private PostgreSQL cluster (initdb as the postgres user)");
    let dns = zone().await;
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("stderr.log");
    let mut options = with_database(&dns, &pg.url());
    options.stderr_to = Some(log.clone());
    let service = Service::start_with(options).await;
    let msg = message("x@pass.test", "Outage", "Hi.\r\n");
    assert_eq!(
        send(
            &service,
            "helo.test",
            "x@pass.test",
            &["spf@tester.test"],
            &msg
        )
        .await
        .code,
        250
    );

    assert!(pg.stop(), "stop PostgreSQL");
    let reply = send(
        &service,
        "helo.test",
        "x@pass.test",
        &["spf@tester.test"],
        &msg,
    )
    .await;
    assert_eq!(reply.code, 451, "the sender is told to retry: {reply:?}");
    assert!(reply.text().starts_with("4.3.0"), "{reply:?}");
    assert_eq!(
        service.get("/healthz").await.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged
            .lines()
            .any(|line| line.contains("ERROR") && line.contains("could not store a result")),
        "the operator's log says the result could not be stored:\n{logged}"
    );
    let metrics = service.get_operator("/metrics").await.text().await.unwrap();
    assert!(
        !metrics.contains("authcheck_store_errors_total 0\n")
            && metrics.contains("authcheck_store_errors_total "),
        "the store error is counted:\n{metrics}"
    );

    assert!(pg.start(), "start PostgreSQL again");
    let recovered = eventually(Duration::from_secs(20), || async {
        let reply = send(
            &service,
            "helo.test",
            "x@pass.test",
            &["spf@tester.test"],
            &msg,
        )
        .await;
        (reply.code == 250).then_some(reply)
    })
    .await;
    assert!(
        recovered.is_some(),
        "the service stores results again once the database is back"
    );
    assert_eq!(
        service.get("/healthz").await.status(),
        reqwest::StatusCode::OK
    );
}
