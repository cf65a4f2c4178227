//! `authcheck dmarc import` through the real binary: a Maildir and an mbox file of reports go
//! in, the summary counts what was imported, what was a duplicate and what was rejected (with
//! its reason), and the store holds exactly that.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use authcheck_testdns::TestDns;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_authcheck")
}

/// A report fixture of the parser's own test data.
fn fixture(path: &str) -> Vec<u8> {
    let path = format!(
        "{}/../dmarc-reports/tests/data/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `authcheck dmarc import` of `paths` into `database_url`, with `flags` (`--no-lookups`, or
/// `--dns-server` naming a loopback server: a test asks no other resolver).
fn import(database_url: &str, flags: &[&str], paths: &[&Path]) -> (bool, String, String) {
    let output = Command::new(binary())
        .args(["dmarc", "import", "--database-url", database_url])
        .args(flags)
        .args(paths)
        .env_remove("AUTHCHECK_CONFIG")
        .output()
        .expect("authcheck runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn import_of_a_maildir_and_an_mbox_counts_imported_duplicates_and_rejected() {
    let folder = tempfile::tempdir().unwrap();
    let maildir = folder.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    let google = fixture("corpus/100.eml");
    std::fs::write(maildir.join("cur/1.eml"), &google).unwrap();
    std::fs::write(
        maildir.join("cur/2.eml"),
        fixture("quirks/rfc9991-failure-report.eml"),
    )
    .unwrap();
    // The same report again: a duplicate, recognised by reporter and report id.
    std::fs::write(maildir.join("new/3.eml"), &google).unwrap();
    std::fs::write(
        maildir.join("new/4.eml"),
        b"From: someone@example.net\r\nSubject: hello\r\n\r\nNot a report.\r\n\x00",
    )
    .unwrap();
    std::fs::write(
        maildir.join("new/5.eml"),
        fixture("quirks/billion-laughs.xml"),
    )
    .unwrap();
    // A message left in tmp/ is still being delivered: a Maildir reader skips it.
    std::fs::write(maildir.join("tmp/6.eml"), fixture("corpus/101.eml")).unwrap();

    let mbox = folder.path().join("reports.mbox");
    let mut mbox_bytes = Vec::new();
    for message in [fixture("corpus/102.eml"), fixture("corpus/104.eml")] {
        mbox_bytes.extend_from_slice(b"From dmarc@receiver.example Tue Nov 14 21:16:00 2023\n");
        mbox_bytes.extend_from_slice(&message);
        mbox_bytes.extend_from_slice(b"\n");
    }
    std::fs::write(&mbox, mbox_bytes).unwrap();

    let url = format!("sqlite://{}", folder.path().join("authcheck.db").display());
    let (ok, stdout, stderr) = import(&url, &["--no-lookups"], &[&maildir, &mbox]);
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    // 4.eml is prose without a report: a plain-text failure report naming no domain, so
    // rejected with the reason (its message is kept there).
    assert!(
        stdout.contains("imported 4, duplicates 1, rejected 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("source names not looked up (--no-lookups)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("5.eml: the XML declares a document type (DTD)"),
        "{stdout}"
    );

    // Importing again stores nothing new: every report is a duplicate.
    let (ok, stdout, _) = import(&url, &["--no-lookups"], &[&maildir, &mbox]);
    assert!(ok);
    assert!(
        stdout.contains("imported 0, duplicates 5, rejected 2"),
        "{stdout}"
    );

    let store = authcheck_store::open(&url).await.unwrap();
    let rejected = store.list_rejected_reports(10).await.unwrap();
    assert_eq!(rejected.len(), 4);
    let reason = |file: &str| {
        let found = rejected.iter().find(|r| r.source.ends_with(file)).unwrap();
        found.reason.clone()
    };
    assert!(reason("5.eml").contains("document type"));
    assert!(reason("4.eml").contains("names no domain"));
    store.close().await;
}

/// An input that cannot be read once the import is under way (a message moved out of a Maildir
/// being delivered to, say) is named in the summary; the others are imported all the same,
/// and the status (2) tells a script that something was left.
#[tokio::test]
async fn an_input_that_cannot_be_read_is_named_and_the_others_are_imported() {
    let folder = tempfile::tempdir().unwrap();
    let first = folder.path().join("first.eml");
    std::fs::write(&first, fixture("corpus/100.eml")).unwrap();
    let last = folder.path().join("last.eml");
    std::fs::write(&last, fixture("corpus/102.eml")).unwrap();
    // A file every process may open and none can read from its start, root included.
    let unreadable = Path::new("/proc/self/mem");

    let url = format!("sqlite://{}", folder.path().join("authcheck.db").display());
    let (ok, stdout, stderr) = import(&url, &["--no-lookups"], &[&first, unreadable, &last]);
    assert!(!ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("imported 2, duplicates 0, rejected 0"),
        "{stdout}"
    );
    assert!(stdout.contains("not read: /proc/self/mem: "), "{stdout}");
    assert!(stderr.contains("1 input(s) could not be read"), "{stderr}");

    let store = authcheck_store::open(&url).await.unwrap();
    let domains = store.dmarc_domains(10).await.unwrap();
    assert!(!domains.is_empty(), "the readable reports are stored");
    store.close().await;
}

/// A path that cannot be read is refused (status 2, naming it) before the database is opened:
/// no database file is made for an import that cannot run.
#[test]
fn an_unreadable_path_is_refused_before_the_database_is_made() {
    let folder = tempfile::tempdir().unwrap();
    let database = folder.path().join("never.db");
    let missing = folder.path().join("no-such-folder");
    let output = Command::new(binary())
        .args(["dmarc", "import", "--no-lookups", "--database-url"])
        .arg(format!("sqlite://{}", database.display()))
        .arg(&missing)
        .env_remove("AUTHCHECK_CONFIG")
        .output()
        .expect("authcheck runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-folder"), "{stderr}");
    assert!(!database.exists(), "the import made {}", database.display());
}

/// An aggregate report about example.org with one record per address of `sources`.
fn report_xml(report_id: &str, sources: &[IpAddr]) -> String {
    let records: String = sources
        .iter()
        .map(|ip| {
            format!(
                "<record><row><source_ip>{ip}</source_ip><count>3</count><policy_evaluated>\
                 <disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>\
                 </policy_evaluated></row><identifiers><header_from>example.org</header_from>\
                 </identifiers><auth_results><dkim><domain>example.org</domain>\
                 <result>pass</result></dkim></auth_results></record>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>big.test</org_name>\
         <email>dmarc@big.test</email><report_id>{report_id}</report_id><date_range>\
         <begin>1700006400</begin><end>1700092799</end></date_range></report_metadata>\
         <policy_published><domain>example.org</domain><p>none</p></policy_published>\
         {records}</feedback>"
    )
}

/// Like the service after its 250, an import looks up the name of each stored report's source
/// addresses (PTR and organizational domain) with the configured resolver and caches them; an
/// address without a PTR record is kept without a name; a duplicate report looks nothing up;
/// `--no-lookups` looks nothing up; a resolver that does not answer is given up on quickly,
/// and said so.
// Multi-threaded: the loopback DNS server answers while the test waits for the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_names_the_source_addresses_of_the_reports_it_stores() {
    let dns = TestDns::start().await;
    let named: IpAddr = "192.0.2.25".parse().unwrap();
    let nameless: IpAddr = "192.0.2.26".parse().unwrap();
    dns.add_ptr(named, "mail-25.outbound.sender.co.uk");
    let folder = tempfile::tempdir().unwrap();
    let first = folder.path().join("first.xml");
    std::fs::write(&first, report_xml("first", &[named, nameless])).unwrap();
    let url = format!("sqlite://{}", folder.path().join("authcheck.db").display());
    let dns_flag = ["--dns-server", &dns.addr().to_string()].map(str::to_owned);
    let dns_flag: Vec<&str> = dns_flag.iter().map(String::as_str).collect();

    let (ok, stdout, stderr) = import(&url, &dns_flag, &[&first]);
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("imported 1, duplicates 0, rejected 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "source names: 2 looked up (1 with a name, 1 without a PTR record), 0 failed, \
             0 known already"
        ),
        "{stdout}"
    );
    let store = authcheck_store::open(&url).await.unwrap();
    let ips = [named.to_string(), nameless.to_string()];
    let mut names = store.source_names(&ips).await.unwrap();
    names.sort_by(|a, b| a.ip.cmp(&b.ip));
    let names: Vec<_> = names
        .iter()
        .map(|n| (n.ip.as_str(), n.ptr.as_deref(), n.org_domain.as_deref()))
        .collect();
    assert_eq!(
        names,
        [
            (
                "192.0.2.25",
                Some("mail-25.outbound.sender.co.uk"),
                Some("sender.co.uk")
            ),
            ("192.0.2.26", None, None),
        ]
    );
    store.close().await;

    // Again: a duplicate, nothing to look up. A new report naming a known address and a new
    // one looks up only the new one.
    let (ok, stdout, _) = import(&url, &dns_flag, &[&first]);
    assert!(ok);
    assert!(
        stdout.contains("imported 0, duplicates 1, rejected 0"),
        "{stdout}"
    );
    assert!(!stdout.contains("source names"), "{stdout}");
    let third: IpAddr = "192.0.2.27".parse().unwrap();
    let second = folder.path().join("second.xml");
    std::fs::write(&second, report_xml("second", &[named, third])).unwrap();
    let (ok, stdout, _) = import(&url, &dns_flag, &[&second]);
    assert!(ok);
    assert!(
        stdout.contains("source names: 1 looked up (0 with a name, 1 without a PTR record), 0 failed, 1 known already"),
        "{stdout}"
    );

    // --no-lookups: stored, not named.
    let fourth: IpAddr = "192.0.2.28".parse().unwrap();
    let offline = folder.path().join("offline.xml");
    std::fs::write(&offline, report_xml("offline", &[fourth])).unwrap();
    let (ok, stdout, _) = import(&url, &["--no-lookups"], &[&offline]);
    assert!(ok);
    assert!(stdout.contains("imported 1"), "{stdout}");
    let store = authcheck_store::open(&url).await.unwrap();
    assert!(
        store
            .source_names(&[fourth.to_string()])
            .await
            .unwrap()
            .is_empty()
    );
    store.close().await;

    // A resolver that does not answer (nothing listens on its port): the first lookups fail,
    // the rest are left, and the import still succeeds.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let many: Vec<IpAddr> = (0..40u8).map(|n| IpAddr::from([198, 51, 100, n])).collect();
    let unanswered = folder.path().join("unanswered.xml");
    std::fs::write(&unanswered, report_xml("unanswered", &many)).unwrap();
    let started = std::time::Instant::now();
    let (ok, stdout, stderr) = import(&url, &["--dns-server", &closed_addr], &[&unanswered]);
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("imported 1"), "{stdout}");
    assert!(
        stdout.contains("the DNS resolver answered none of the first 16 lookups, so the other 24 addresses were not looked up"),
        "{stdout}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "gave up after {:?}",
        started.elapsed()
    );
}
