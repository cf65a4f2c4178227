//! RFC 9989's DNS tree walk through the whole verifier and a real DNS server on loopback: each
//! step of the walk, `psd=`, `np=`, `t=`, and every case where a receiver following RFC 7489
//! (Public Suffix List) decides differently, which the report must name.
//!
//! 192.0.2.10 may send for every domain given an SPF record here; 198.51.100.7 for none, so mail
//! from it fails DMARC wherever a policy applies.

mod common;

use authcheck_testdns::{Behaviour, TestDns};
use authcheck_verifier::{
    DmarcAnswer, DmarcResult, IdentifierRole, PolicyTag, Report, Rfc7489Outcome,
};
use common::{OTHER_IP, SENDER_IP, SENDER_SPF, message, publish_spf, verifier, verify};

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    publish_spf(
        &dns,
        SENDER_SPF,
        &[
            "sender.test",
            "nodmarc.test",
            "other.brand.tld",
            "elsewhere.tld",
            "corp.test",
            "other.github.io",
            "a.shaky.test",
            "bounce.a.shaky.test",
            "bounce.s.shaky.test",
        ],
    );
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    dns.add_txt("_dmarc.parent.test", "v=DMARC1; p=quarantine; sp=reject");
    dns.add_txt("_dmarc.tld", "v=DMARC1; p=reject; psd=y");
    dns.add_txt("_dmarc.corp.test", "v=DMARC1; p=reject");
    dns.add_txt("_dmarc.dept.corp.test", "v=DMARC1; p=quarantine; psd=n");
    dns.add_txt("_dmarc.deep.test", "v=DMARC1; p=reject");
    // Skipped by the shortcut from a ten-label name: must never be asked.
    dns.add_txt("_dmarc.c.d.e.f.g.h.deep.test", "v=DMARC1; p=none");
    dns.add_txt("_dmarc.multi.test", "v=DMARC1; p=reject");
    dns.add_txt("_dmarc.dup.multi.test", "v=DMARC1; p=none");
    dns.add_txt("_dmarc.dup.multi.test", "v=DMARC1; p=quarantine");
    dns.add_txt("_dmarc.github.io", "v=DMARC1; p=reject");
    dns.add_txt(
        "_dmarc.np.test",
        "v=DMARC1; p=none; sp=quarantine; np=reject",
    );
    dns.add_a("www.np.test", "192.0.2.80".parse().unwrap());
    dns.add_txt("_dmarc.testing.test", "v=DMARC1; p=reject; t=y; pct=50");
    // The policy is found, but the walk on to the organizational domain fails.
    dns.add_txt("_dmarc.a.shaky.test", "v=DMARC1; p=reject");
    dns.add_txt(
        "_dmarc.s.shaky.test",
        "v=DMARC1; p=quarantine; aspf=s; adkim=s",
    );
    dns.set_behaviour("_dmarc.shaky.test", Behaviour::ServFail);
    dns
}

async fn check(dns: &TestDns, ip: &str, mail_from: &str, from: &str) -> Report {
    let message = message(from, "tree walk test", "Hello.\r\n");
    verify(
        &verifier(dns),
        ip,
        "client.example.test",
        mail_from,
        &message,
    )
    .await
}

/// The `_dmarc` names the report lists, in order.
fn asked(report: &Report) -> Vec<&str> {
    report
        .dmarc
        .queries
        .iter()
        .map(|query| query.name.as_str())
        .collect()
}

fn organizational_of(report: &Report, role: IdentifierRole) -> Option<&str> {
    report
        .dmarc
        .organizational_domains
        .iter()
        .find(|entry| entry.role == role)
        .and_then(|entry| entry.organizational_domain.as_deref())
}

fn differences(report: &Report) -> String {
    report.dmarc.rfc7489_differences.join("\n")
}

fn rfc7489(report: &Report) -> &Rfc7489Outcome {
    report.dmarc.rfc7489.as_ref().expect("an RFC 7489 outcome")
}

#[tokio::test]
async fn a_record_at_the_author_domain_applies_and_the_walk_goes_on_to_the_top() {
    let dns = zone().await;
    let report = check(&dns, SENDER_IP, "alice@sender.test", "alice@sender.test").await;
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Pass,
        "{}",
        report.dmarc.reason
    );
    assert_eq!(
        report.dmarc.record.as_ref().map(|r| r.name.as_str()),
        Some("_dmarc.sender.test")
    );
    assert_eq!(asked(&report), ["_dmarc.sender.test", "_dmarc.test"]);
    assert_eq!(report.dmarc.queries[0].answer, DmarcAnswer::Record);
    assert_eq!(report.dmarc.queries[0].detail, "v=DMARC1; p=reject");
    assert_eq!(report.dmarc.queries[1].answer, DmarcAnswer::NoRecord);
    assert_eq!(report.dmarc.walk_queries, 2);
    assert_eq!(report.dmarc.walk_query_limit, 8);
    assert_eq!(report.dmarc.policy_tag, Some(PolicyTag::P));
    assert_eq!(
        organizational_of(&report, IdentifierRole::From),
        Some("sender.test")
    );
    assert_eq!(
        organizational_of(&report, IdentifierRole::Spf),
        Some("sender.test")
    );
    assert!(
        report.dmarc.rfc7489_differences.is_empty(),
        "{}",
        differences(&report)
    );
}

#[tokio::test]
async fn a_record_at_a_parent_applies_with_sp_to_the_subdomain() {
    let dns = zone().await;
    let report = check(
        &dns,
        OTHER_IP,
        "alice@a.b.parent.test",
        "alice@a.b.parent.test",
    )
    .await;
    assert_eq!(
        asked(&report),
        [
            "_dmarc.a.b.parent.test",
            "_dmarc.b.parent.test",
            "_dmarc.parent.test",
            "_dmarc.test"
        ]
    );
    assert_eq!(report.dmarc.walk_queries, 4);
    assert_eq!(
        report.dmarc.record.as_ref().map(|r| r.name.as_str()),
        Some("_dmarc.parent.test")
    );
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "reject");
    assert_eq!(report.dmarc.policy_tag, Some(PolicyTag::Sp));
    assert_eq!(
        organizational_of(&report, IdentifierRole::From),
        Some("parent.test")
    );
    let field = report
        .authentication_results
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        field.contains("dmarc=fail (p=quarantine sp=reject dis=reject; sp of _dmarc.parent.test applies) header.from=a.b.parent.test"),
        "{field}"
    );
}

#[tokio::test]
async fn no_record_anywhere_makes_a_subdomain_its_own_organizational_domain() {
    let dns = zone().await;
    let report = check(
        &dns,
        SENDER_IP,
        "bounce@nodmarc.test",
        "alice@news.nodmarc.test",
    )
    .await;
    assert_eq!(report.dmarc.result, DmarcResult::None);
    assert_eq!(
        asked(&report),
        [
            "_dmarc.news.nodmarc.test",
            "_dmarc.nodmarc.test",
            "_dmarc.test"
        ]
    );
    assert_eq!(
        organizational_of(&report, IdentifierRole::From),
        Some("news.nodmarc.test")
    );
    assert_eq!(
        organizational_of(&report, IdentifierRole::Spf),
        Some("nodmarc.test")
    );
    // RFC 9989: the parent's SPF pass no longer aligns, so the verdict says so.
    assert!(!report.spf.aligned);
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-diff !!");
    assert!(rfc7489(&report).spf_aligned);
    let differences = differences(&report);
    assert!(
        differences.contains(
            "Receivers that follow RFC 7489 would treat the SPF domain nodmarc.test as aligned with news.nodmarc.test"
        ) && differences.contains("under RFC 9989 it is not")
            && differences.contains("publishes a DMARC record"),
        "{differences}"
    );
}

#[tokio::test]
async fn psd_y_at_a_single_label_parent_makes_the_name_below_it_the_organizational_domain() {
    let dns = zone().await;
    let report = check(
        &dns,
        SENDER_IP,
        "bounce@other.brand.tld",
        "alice@mail.brand.tld",
    )
    .await;
    assert_eq!(
        asked(&report),
        [
            "_dmarc.mail.brand.tld",
            "_dmarc.brand.tld",
            "_dmarc.tld",
            "_dmarc.other.brand.tld"
        ],
        "the SPF domain's walk reuses the answers for brand.tld and tld"
    );
    assert_eq!(
        organizational_of(&report, IdentifierRole::From),
        Some("brand.tld")
    );
    assert_eq!(
        organizational_of(&report, IdentifierRole::Spf),
        Some("brand.tld")
    );
    assert_eq!(
        report.dmarc.record.as_ref().map(|r| r.name.as_str()),
        Some("_dmarc.tld")
    );
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Pass,
        "{}",
        report.dmarc.reason
    );
    assert_eq!(report.verdicts.spf.to_string(), "|OK| spf-pass");
    // RFC 7489 never asks the public suffix: no policy there.
    assert_eq!(rfc7489(&report).result, DmarcResult::None);
    assert!(
        differences(&report).contains("would find no DMARC policy for mail.brand.tld"),
        "{}",
        differences(&report)
    );

    // Another name under the public suffix domain is another organization.
    let report = check(
        &dns,
        SENDER_IP,
        "bounce@elsewhere.tld",
        "alice@mail.brand.tld",
    )
    .await;
    assert_eq!(
        organizational_of(&report, IdentifierRole::Spf),
        Some("elsewhere.tld")
    );
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "reject");
}

#[tokio::test]
async fn psd_n_ends_the_walk_at_the_organizational_domain() {
    let dns = zone().await;
    let report = check(&dns, SENDER_IP, "bounce@corp.test", "alice@dept.corp.test").await;
    assert_eq!(report.dmarc.walk_queries, 1, "psd=n stops the walk at once");
    assert_eq!(
        organizational_of(&report, IdentifierRole::From),
        Some("dept.corp.test")
    );
    assert_eq!(
        organizational_of(&report, IdentifierRole::Spf),
        Some("corp.test")
    );
    assert!(!report.spf.aligned);
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "quarantine");
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-diff !!");
    let old = rfc7489(&report);
    assert_eq!(old.result, DmarcResult::Pass);
    assert!(old.spf_aligned);
    let differences = differences(&report);
    assert!(
        differences.contains("would treat the SPF domain corp.test as aligned with dept.corp.test")
            && differences.contains("psd=n"),
        "{differences}"
    );
    assert!(
        differences.contains("would give dmarc=pass with disposition none; under RFC 9989 the result is dmarc=fail with disposition quarantine"),
        "{differences}"
    );
}

#[tokio::test]
async fn a_name_with_more_labels_than_the_shortcut_allows_takes_eight_queries_at_most() {
    let dns = zone().await;
    let from = "alice@a.b.c.d.e.f.g.h.deep.test";
    let report = check(&dns, OTHER_IP, "alice@deep.test", from).await;
    assert_eq!(
        asked(&report),
        [
            "_dmarc.a.b.c.d.e.f.g.h.deep.test",
            "_dmarc.d.e.f.g.h.deep.test",
            "_dmarc.e.f.g.h.deep.test",
            "_dmarc.f.g.h.deep.test",
            "_dmarc.g.h.deep.test",
            "_dmarc.h.deep.test",
            "_dmarc.deep.test",
            "_dmarc.test"
        ]
    );
    assert_eq!(report.dmarc.walk_queries, 8);
    assert_eq!(dns.query_count_for("_dmarc.c.d.e.f.g.h.deep.test"), 0);
    assert_eq!(
        report.dmarc.record.as_ref().map(|r| r.name.as_str()),
        Some("_dmarc.deep.test")
    );
    assert_eq!(report.dmarc.policy, "reject");
}

#[tokio::test]
async fn several_records_at_a_name_are_discarded_and_the_walk_goes_on() {
    let dns = zone().await;
    let report = check(
        &dns,
        OTHER_IP,
        "alice@dup.multi.test",
        "alice@dup.multi.test",
    )
    .await;
    assert_eq!(report.dmarc.queries[0].answer, DmarcAnswer::SeveralRecords);
    assert_eq!(
        report.dmarc.record.as_ref().map(|r| r.name.as_str()),
        Some("_dmarc.multi.test")
    );
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "reject");
    assert!(
        report
            .dmarc
            .notes
            .iter()
            .any(|n| n.contains("2 DMARC records")),
        "{:?}",
        report.dmarc.notes
    );
    // RFC 7489 stops at the duplicate records: no policy.
    assert_eq!(rfc7489(&report).result, DmarcResult::None);
    assert!(
        differences(&report).contains("under RFC 9989 the policy at _dmarc.multi.test applies"),
        "{}",
        differences(&report)
    );
}

#[tokio::test]
async fn a_record_above_a_public_suffix_list_entry_applies_and_aligns_its_subdomains() {
    let dns = zone().await;
    let report = check(
        &dns,
        SENDER_IP,
        "bounce@other.github.io",
        "alice@someone.github.io",
    )
    .await;
    assert_eq!(
        report.dmarc.record.as_ref().map(|r| r.name.as_str()),
        Some("_dmarc.github.io")
    );
    assert_eq!(
        organizational_of(&report, IdentifierRole::From),
        Some("github.io")
    );
    assert!(report.spf.aligned);
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Pass,
        "{}",
        report.dmarc.reason
    );
    let from_entry = &report.dmarc.organizational_domains[0];
    assert_eq!(
        from_entry.rfc7489_organizational_domain,
        "someone.github.io"
    );
    let old = rfc7489(&report);
    assert_eq!(old.result, DmarcResult::None);
    assert!(!old.spf_aligned);
    let differences = differences(&report);
    assert!(
        differences.contains(
            "would not treat the SPF domain other.github.io as aligned with someone.github.io"
        ) && differences.contains("under RFC 9989 it is"),
        "{differences}"
    );

    // Unaligned, the inherited policy rejects where RFC 7489 found none.
    let report = check(
        &dns,
        OTHER_IP,
        "bounce@other.github.io",
        "alice@someone.github.io",
    )
    .await;
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "reject");
}

#[tokio::test]
async fn np_applies_to_a_subdomain_that_does_not_exist() {
    let dns = zone().await;
    let report = check(&dns, OTHER_IP, "alice@ghost.np.test", "alice@ghost.np.test").await;
    assert_eq!(report.dmarc.author_domain_exists, Some(false));
    assert_eq!(report.dmarc.policy_tag, Some(PolicyTag::Np));
    assert_eq!(report.dmarc.policy, "reject");
    assert!(
        report.dmarc.reason.contains("np="),
        "{}",
        report.dmarc.reason
    );
    assert_eq!(rfc7489(&report).policy, "quarantine");
    assert!(
        differences(&report).contains("would give dmarc=fail with disposition quarantine"),
        "{}",
        differences(&report)
    );

    let report = check(&dns, OTHER_IP, "alice@www.np.test", "alice@www.np.test").await;
    assert_eq!(report.dmarc.author_domain_exists, Some(true));
    assert_eq!(report.dmarc.policy_tag, Some(PolicyTag::Sp));
    assert_eq!(report.dmarc.policy, "quarantine");
    assert!(
        report.dmarc.rfc7489_differences.is_empty(),
        "{}",
        differences(&report)
    );
}

#[tokio::test]
async fn testing_mode_is_milder_and_removed_tags_are_named() {
    let dns = zone().await;
    let report = check(&dns, OTHER_IP, "alice@testing.test", "alice@testing.test").await;
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "quarantine");
    let record = report.dmarc.record.as_ref().unwrap();
    assert!(record.testing);
    assert_eq!(record.removed_tags, ["pct=50"]);
    let notes = report.dmarc.notes.join("\n");
    assert!(
        notes.contains("pct=50") && notes.contains("removed"),
        "{notes}"
    );
    assert!(notes.contains("t=y"), "{notes}");
    let field = report
        .authentication_results
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(field.contains("(p=reject t=y dis=quarantine;"), "{field}");
    let differences = differences(&report);
    assert!(
        differences.contains("apply reject to only 50% of failing messages"),
        "{differences}"
    );
    assert!(
        differences.contains("would give dmarc=fail with disposition reject"),
        "{differences}"
    );
}

#[tokio::test]
async fn an_unknown_organizational_domain_that_cannot_change_the_result_does_not_make_a_temperror()
{
    let dns = zone().await;
    // Nothing passed: no organizational domain could make anything align.
    let report = check(&dns, OTHER_IP, "alice@a.shaky.test", "alice@a.shaky.test").await;
    assert_eq!(report.spf.check.result.as_str(), "fail");
    assert_eq!(organizational_of(&report, IdentifierRole::From), None);
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Fail,
        "{}",
        report.dmarc.reason
    );
    assert_eq!(report.dmarc.policy, "reject");
    assert_eq!(report.dmarc.policy_tag, Some(PolicyTag::P));
    let notes = report.dmarc.notes.join("\n");
    assert!(notes.contains("does not change the result"), "{notes}");

    // SPF passed for a subdomain, but alignment is strict: names are compared, not
    // organizational domains.
    let report = check(
        &dns,
        SENDER_IP,
        "bounce@bounce.s.shaky.test",
        "alice@s.shaky.test",
    )
    .await;
    assert_eq!(report.spf.check.result.as_str(), "pass");
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Fail,
        "{}",
        report.dmarc.reason
    );
    assert_eq!(report.dmarc.policy, "quarantine");

    // SPF passed for a subdomain under relaxed alignment: whether it aligns depends on the
    // organizational domains the failure hid, so a receiver must try again.
    let report = check(
        &dns,
        SENDER_IP,
        "bounce@bounce.a.shaky.test",
        "alice@a.shaky.test",
    )
    .await;
    assert_eq!(report.spf.check.result.as_str(), "pass");
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Temperror,
        "{}",
        report.dmarc.reason
    );
    assert_eq!(report.dmarc.policy, "none");
}
