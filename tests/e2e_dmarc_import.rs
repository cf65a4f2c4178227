//! `authcheck dmarc import` through the real binary: a Maildir and an mbox file of reports go
//! in, the summary counts what was imported, what was a duplicate and what was rejected (with
//! its reason), and the store holds exactly that.

use std::path::Path;
use std::process::Command;

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

fn import(database_url: &str, paths: &[&Path]) -> (bool, String, String) {
    let output = Command::new(binary())
        .args(["dmarc", "import", "--database-url", database_url])
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
    let (ok, stdout, stderr) = import(&url, &[&maildir, &mbox]);
    assert!(ok, "stdout: {stdout}\nstderr: {stderr}");
    // 4.eml is prose without a report: a plain-text failure report, kept with its text.
    assert!(
        stdout.contains("imported 5, duplicates 1, rejected 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("5.eml: the XML declares a document type (DTD)"),
        "{stdout}"
    );

    // Importing again stores nothing new: every report is a duplicate.
    let (ok, stdout, _) = import(&url, &[&maildir, &mbox]);
    assert!(ok);
    assert!(
        stdout.contains("imported 0, duplicates 6, rejected 1"),
        "{stdout}"
    );

    let store = authcheck_store::open(&url).await.unwrap();
    let rejected = store.list_rejected_reports(10).await.unwrap();
    assert_eq!(rejected.len(), 2);
    assert!(rejected.iter().all(|r| r.source.ends_with("5.eml")));
    assert!(rejected[0].reason.contains("document type"));
    store.close().await;
}
