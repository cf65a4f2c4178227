//! Nothing acknowledged is lost: the real service is killed with SIGKILL in the middle of a
//! stream of messages and started again; every message that got a 250 is there with its full
//! report, and the database passes its integrity check. A full disk, or a database that turns
//! read-only under the running service, gives `451 4.3.0`, never a 250 for a message that is
//! not stored, and the service recovers when space returns or the files are writable again.
//! (A mounted filesystem with files open for writing cannot be remounted read-only, so the
//! read-only test marks the database files immutable, which refuses writes through the
//! service's open files just the same.)
//!
//! `AUTHCHECK_CRASH_RUNS` sets how many kill points the crash test tries (default 3, for CI);
//! `AUTHCHECK_CRASH_REPORT=1` prints the figures of each run.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_testkit::{SignOptions, TestKey, message, publish_keys, sign};
use support::{RawSmtp, Service, ServiceOptions, eventually};

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    dns.add_txt("pass.test", "v=spf1 ip4:127.0.0.1 -all");
    publish_keys(&dns, "pass.test");
    dns
}

/// A pseudo-random number from the clock, so each run kills at a different moment.
fn jitter(max_millis: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos.wrapping_mul(6364136223846793005).rotate_left(17) % max_millis.max(1)
}

/// Sends messages on one connection until it breaks; records the id of every 250.
async fn stream_messages(
    service_smtp: std::net::SocketAddr,
    acknowledged: Arc<Mutex<Vec<String>>>,
    worker: usize,
) {
    let (mut smtp, greeting) = RawSmtp::connect(service_smtp).await;
    if greeting.code != 220 || smtp.command("EHLO pass.test").await.code != 250 {
        return;
    }
    let msg = sign(
        &message("a@pass.test", &format!("crash test {worker}"), "Hello.\r\n"),
        &SignOptions::new("pass.test", TestKey::Ed25519),
    );
    for _ in 0..10_000 {
        smtp.write(b"MAIL FROM:<a@pass.test>\r\nRCPT TO:<dkim@tester.test>\r\nDATA\r\n")
            .await;
        let mut ok = true;
        for expected in [250, 250, 354] {
            match smtp.try_read_reply().await {
                Some(reply) if reply.code == expected => {}
                _ => ok = false,
            }
            if !ok {
                return;
            }
        }
        smtp.write(&support::dot_stuffed(&msg)).await;
        match smtp.try_read_reply().await {
            Some(reply) if reply.code == 250 => {
                acknowledged
                    .lock()
                    .unwrap()
                    .extend(reply.stored().into_iter().map(|(id, _)| id));
            }
            _ => return,
        }
    }
}

async fn integrity(database: &Path) -> Vec<String> {
    let store = authcheck_store::open(&format!("sqlite://{}", database.display()))
        .await
        .expect("open the database");
    let problems = store.integrity_check().await.expect("integrity check");
    store.close().await;
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_sigkill() {
    let runs: usize = std::env::var("AUTHCHECK_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let verbose = std::env::var_os("AUTHCHECK_CRASH_REPORT").is_some();
    let dns = zone().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServiceOptions::new(&dns);
    options.data_dir = Some(dir.path().to_path_buf());
    // Eight clients on one address stream messages as fast as they can: no rate limits.
    options.extra_args = vec![
        "--messages-per-client".into(),
        "0".into(),
        "--messages-per-sender-domain".into(),
        "0".into(),
    ];
    let mut all_acknowledged = BTreeSet::new();

    for run in 0..runs {
        let service = Service::start_with(options.clone()).await;
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..8)
            .map(|worker| tokio::spawn(stream_messages(service.smtp, acknowledged.clone(), worker)))
            .collect();
        let kill_after = Duration::from_millis(300 + jitter(1200));
        tokio::time::sleep(kill_after).await;
        let database = service.database_path();
        let _temp = service.kill().await;
        for worker in workers {
            let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
        }
        let acked: Vec<String> = acknowledged.lock().unwrap().clone();
        assert!(
            integrity(&database).await.is_empty(),
            "run {run}: the database is damaged"
        );

        let service = Service::start_with(options.clone()).await;
        let mut missing = Vec::new();
        for id in &acked {
            let response = service.get(&format!("/api/v1/results/{id}")).await;
            if response.status() != reqwest::StatusCode::OK {
                missing.push(id.clone());
                continue;
            }
            let result: serde_json::Value = response.json().await.unwrap();
            assert_eq!(
                result["verdict"], "|OK| dkim-pass",
                "run {run}: {id} lost its report"
            );
            assert_eq!(result["dkim"][0]["result"], "pass");
        }
        assert!(
            missing.is_empty(),
            "run {run}: acknowledged but lost after SIGKILL: {missing:?}"
        );
        if verbose {
            eprintln!(
                "crash run {run}: killed after {kill_after:?}, {} acknowledged, all found",
                acked.len()
            );
        }
        all_acknowledged.extend(acked);
        let status = service.stop().await;
        assert!(status.success());
    }
    eprintln!(
        "crash test: {runs} runs, {} messages acknowledged and found after SIGKILL",
        all_acknowledged.len()
    );
    assert!(
        !all_acknowledged.is_empty(),
        "the stream never got a message through: the test proved nothing"
    );
}

/// A small tmpfs for the database, so the disk can really fill up or turn read-only.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={megabytes}m"),
                "tmpfs",
                dir.path().to_str()?,
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(SmallDisk { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the disk is full.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        for _ in 0..100_000 {
            if file.write_all(&block).is_err() {
                break;
            }
        }
        let _ = file.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: the killed service may not have closed the database yet, and a busy tmpfs
        // would otherwise stay mounted (and its folder in place) after every run.
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(self.dir.path())
            .status();
    }
}

async fn send_one(service: &Service, subject: &str) -> support::Reply {
    let msg = message(
        "a@pass.test",
        subject,
        &"Some text to take room.\r\n".repeat(200),
    );
    support::send(
        service,
        "pass.test",
        "a@pass.test",
        &["spf@tester.test"],
        &msg,
    )
    .await
}

/// Sends messages while the database cannot be written (`trouble` names why) until one is
/// refused, which must be with `451 4.3.0`; returns the ids of those that got a 250 first
/// (SQLite may still have room in pages it holds, so the first ones can be stored for real).
async fn send_until_refused(service: &Service, trouble: &str) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for attempt in 0..50 {
        let reply = send_one(service, &format!("{trouble} {attempt}")).await;
        match reply.code {
            250 => acknowledged.extend(reply.stored().into_iter().map(|(id, _)| id)),
            451 => {
                assert!(reply.text().starts_with("4.3.0"), "{reply:?}");
                return acknowledged;
            }
            // The free-space floor refuses before the write fails once the disk is full.
            452 => {
                assert!(reply.text().starts_with("4.3.1"), "{reply:?}");
                return acknowledged;
            }
            _ => panic!("{trouble}: must give 451 4.3.0, not {reply:?}"),
        }
    }
    panic!("{trouble}: the service never refused a message");
}

/// Once the trouble is over, a message is stored again, and every message acknowledged
/// during the trouble is there.
async fn assert_recovers_keeping(service: &Service, acknowledged: Vec<String>) {
    let recovered = eventually(Duration::from_secs(10), || async {
        let reply = send_one(service, "after").await;
        (reply.code == 250).then_some(reply)
    })
    .await
    .expect("the service stores results again once the database can be written");
    let stored_after = recovered.stored().into_iter().map(|(id, _)| id);
    for id in acknowledged.into_iter().chain(stored_after) {
        let response = service.get(&format!("/api/v1/results/{id}")).await;
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "{id} got a 250 but is not stored"
        );
    }
}

#[tokio::test]
#[cfg_attr(
    not(root_tests),
    ignore = "needs root: the tests were built without CAP_SYS_ADMIN, which mounting a small tmpfs takes (run them as root, as CI does)"
)]
async fn a_full_disk_gives_451_and_recovers_when_space_returns() {
    let disk = SmallDisk::mount(4).expect(
        "cannot mount a tmpfs here: this test needs root with CAP_SYS_ADMIN (outside CI, \
         without it, the test is built ignored)",
    );
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.data_dir = Some(disk.path().to_path_buf());
    // The disk really filling up is what this test is about: with the free-space floor (whose
    // default is far above this 4 MiB disk) every message would get 452 before it is tried;
    // with the lowest floor there is (one byte), the disk fills before the floor speaks.
    options.extra_args = vec!["--min-free-disk".into(), "1".into()];
    let service = Service::start_with(options).await;
    assert_eq!(send_one(&service, "before").await.code, 250);

    disk.fill();
    let acknowledged = send_until_refused(&service, "full disk").await;
    disk.free();
    assert_recovers_keeping(&service, acknowledged).await;
}

/// The database files marked immutable (`chattr +i`) while the value lives: the filesystem
/// then refuses every write to them, through files already open too.
struct ReadOnlyFiles {
    files: Vec<std::path::PathBuf>,
}

impl ReadOnlyFiles {
    /// None when this filesystem or user cannot mark files immutable.
    fn mark(files: Vec<std::path::PathBuf>) -> Option<ReadOnlyFiles> {
        let marked = std::process::Command::new("chattr")
            .arg("+i")
            .args(&files)
            .status()
            .is_ok_and(|status| status.success());
        let guard = ReadOnlyFiles { files };
        marked.then_some(guard)
    }

    fn unmark(&self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .args(&self.files)
            .status();
    }
}

impl Drop for ReadOnlyFiles {
    fn drop(&mut self) {
        // Also on a failed assertion, or the temporary folder could never be removed.
        self.unmark();
    }
}

#[tokio::test]
#[cfg_attr(
    not(root_tests),
    ignore = "needs root: the tests were built without CAP_LINUX_IMMUTABLE, which marking the database files immutable takes (run them as root, as CI does)"
)]
async fn a_read_only_database_gives_451_and_recovers_when_writable_again() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    assert_eq!(send_one(&service, "before").await.code, 250);

    let database = service.database_path();
    let log = database.with_extension("db-wal");
    assert!(log.exists(), "the database runs with a write-ahead log");
    let read_only = ReadOnlyFiles::mark(vec![database, log]).expect(
        "cannot mark the database files immutable: this test needs root and a filesystem \
         with chattr support, such as ext4, for its temporary folder (set TMPDIR to one)",
    );
    let acknowledged = send_until_refused(&service, "read-only database").await;
    // The process lives and pages are read, but results cannot be committed: live, not ready
    // (/healthz is readiness), so a load balancer sends new mail elsewhere.
    assert_eq!(
        service.get("/livez").await.status(),
        reqwest::StatusCode::OK,
        "the process is alive"
    );
    for probe in ["/readyz", "/healthz"] {
        assert_eq!(
            service.get(probe).await.status(),
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            "{probe}: the store cannot commit"
        );
    }
    assert_eq!(
        service.get("/spf").await.status(),
        reqwest::StatusCode::OK,
        "reading still works, so the site stays up"
    );

    read_only.unmark();
    assert_recovers_keeping(&service, acknowledged).await;
    assert_eq!(
        service.get("/readyz").await.status(),
        reqwest::StatusCode::OK,
        "ready again once results can be committed"
    );
}
