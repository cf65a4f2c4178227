//! `authcheck check` end to end: the real binary on message files, against a loopback DNS server.

mod support;

use authcheck_testdns::TestDns;
use authcheck_testkit::{SignOptions, TestKey, message, publish_sender_domain, sign};
use support::{check_json, run_cli};

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    publish_sender_domain(&dns, "sender.test", "192.0.2.10");
    dns
}

fn signed_message() -> Vec<u8> {
    sign(
        &message("alice@sender.test", "Hello", "Hi there.\r\n"),
        &SignOptions::new("sender.test", TestKey::Rsa2048),
    )
}

#[tokio::test]
async fn json_report_has_the_stable_paths() {
    let dns = zone().await;
    let report = check_json(&dns, &signed_message(), "192.0.2.10", "alice@sender.test").await;
    assert_eq!(report["verdicts"]["spf"], "|OK| spf-pass");
    assert_eq!(report["verdicts"]["dkim"], "|OK| dkim-pass");
    assert_eq!(report["spf"]["result"], "pass");
    assert_eq!(report["spf"]["domain"], "sender.test");
    assert_eq!(report["spf"]["aligned"], true);
    assert_eq!(report["dkim"][0]["result"], "pass");
    assert_eq!(report["dkim"][0]["domain"], "sender.test");
    assert_eq!(report["dkim"][0]["selector"], "rsa2048");
    assert_eq!(report["dkim"][0]["aligned"], true);
    assert!(report["dkim"][0]["reason"].is_string());
    assert_eq!(report["dmarc"]["result"], "pass");
    let ar = report["authentication_results"].as_str().unwrap();
    assert!(ar.starts_with("Authentication-Results:"), "{ar}");
}

#[tokio::test]
async fn human_report_puts_the_verdicts_first_and_explains_failures() {
    let dns = zone().await;
    let dir = tempfile::tempdir().unwrap();
    let server = dns.addr().to_string();
    // From the wrong address: SPF fails, and the report must say why.
    let (status, stdout, stderr) = run_cli(
        &[
            "check",
            "-",
            "--ip",
            "198.51.100.7",
            "--helo",
            "mail.sender.test",
            "--mail-from",
            "alice@sender.test",
            "--dns-server",
            &server,
        ],
        Some(&signed_message()),
        dir.path(),
    )
    .await;
    assert!(status.success(), "exit {status}: {stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.contains("!! spf-fail !!"), "first line: {first:?}");
    assert!(first.contains("|OK| dkim-pass"), "first line: {first:?}");
    assert!(
        stdout.contains("-all"),
        "the SPF trace names the deciding term:\n{stdout}"
    );
    assert!(
        !stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    // RFC 9989's tree walk: the name asked and the organizational domain it gave.
    assert!(
        stdout.contains("DNS tree walk (") && stdout.contains("_dmarc.sender.test ("),
        "the DMARC section lists the names the walk asked:\n{stdout}"
    );
    assert!(
        stdout.contains("organizational domain of From sender.test: sender.test"),
        "the DMARC section names the From domain's organizational domain:\n{stdout}"
    );
}

/// Runs `authcheck` on a pseudo-terminal (util-linux `script`), as a person at a terminal
/// would; returns what the terminal showed.
async fn run_on_a_terminal(args: &[&str], no_color: bool) -> String {
    let command = std::iter::once(support::binary())
        .chain(args.iter().copied())
        .map(|arg| format!("'{arg}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = tokio::process::Command::new("script");
    script
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .env_remove("NO_COLOR");
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), script.output())
        .await
        .expect("authcheck on a terminal did not finish in time")
        .expect("run util-linux `script`");
    assert!(output.status.success(), "exit {}", output.status);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn on_a_terminal_the_verdicts_are_coloured_unless_no_color_is_set() {
    let dns = zone().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message.eml");
    std::fs::write(&file, signed_message()).unwrap();
    let server = dns.addr().to_string();
    let args = [
        "check",
        file.to_str().unwrap(),
        "--ip",
        "198.51.100.7",
        "--mail-from",
        "alice@sender.test",
        "--dns-server",
        &server,
    ];

    let shown = run_on_a_terminal(&args, false).await;
    let first = shown.lines().next().unwrap_or_default();
    assert!(
        first.contains("\x1b[1;31m!! spf-fail !!\x1b[0m"),
        "SPF fail in red: {first:?}"
    );
    assert!(
        first.contains("\x1b[1;32m|OK| dkim-pass\x1b[0m"),
        "DKIM pass in green: {first:?}"
    );

    let plain = run_on_a_terminal(&args, true).await;
    assert!(!plain.contains('\x1b'), "NO_COLOR is honoured: {plain:?}");
    assert!(plain.contains("!! spf-fail !!"), "{plain}");
}

#[tokio::test]
async fn without_an_ip_spf_is_reported_as_not_checked() {
    let dns = zone().await;
    let dir = tempfile::tempdir().unwrap();
    let server = dns.addr().to_string();
    let (status, stdout, _) = run_cli(
        &["check", "-", "--dns-server", &server, "--json"],
        Some(&signed_message()),
        dir.path(),
    )
    .await;
    assert!(status.success());
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["spf"]["checked"], false);
    assert!(
        report["spf"]["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("ip"),
        "{}",
        report["spf"]["reason"]
    );
    assert_eq!(
        report["dkim"][0]["result"], "pass",
        "DKIM does not need the IP"
    );

    let (status, stdout, _) = run_cli(
        &["check", "-", "--dns-server", &server],
        Some(&signed_message()),
        dir.path(),
    )
    .await;
    assert!(status.success());
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("SPF not checked"),
        "the verdict line says SPF was not checked: {first:?}"
    );
    assert!(
        stdout.contains("not checked: no client IP"),
        "the SPF section says why:\n{stdout}"
    );
}

#[tokio::test]
async fn an_unreadable_file_is_a_usage_error_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) =
        run_cli(&["check", "/nonexistent/message.eml"], None, dir.path()).await;
    assert_eq!(status.code(), Some(2));
    assert!(stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains("/nonexistent/message.eml"), "{stderr}");
}

#[tokio::test]
async fn bad_usage_exits_2_with_one_line_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let bad_usages: [(&[&str], &str); 4] = [
        (&["check", "x.eml", "--ip", "not-an-ip"], "--ip"),
        (&["check"], "<FILE>"),
        (&["check", "x.eml", "--no-such-flag"], "--no-such-flag"),
        (&["no-such-command"], "no-such-command"),
    ];
    for (args, named) in bad_usages {
        let (status, stdout, stderr) = run_cli(args, None, dir.path()).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: not one line: {stderr}"
        );
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--help"),
            "{args:?}: says nothing of --help: {stderr}"
        );
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    let (status, stdout, _) = run_cli(&["check", "--help"], None, dir.path()).await;
    assert_eq!(status.code(), Some(0), "--help is not an error");
    assert!(stdout.contains("--mail-from"), "{stdout}");
}
