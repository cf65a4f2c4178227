//! Hostile DNS through the whole [`Verifier`]: SPF records that exceed the lookup limits, loop,
//! include themselves or are very long, nameservers that never answer or answer slowly, and
//! DKIM keys behind them. Each message gets the right result (`permerror` for a broken record,
//! `temperror` for an unreachable or slow nameserver) and the verification returns within its
//! configured time budget, whatever the nameserver does.

mod common;

use std::time::{Duration, Instant};

use authcheck_testdns::{Behaviour, TestDns};
use authcheck_verifier::{
    BodyParameter, DkimResult, DmarcResult, MessageInput, Report, SpfResult, Verifier,
    VerifierConfig,
};
use common::{SignOptions, TestKey, dns_config, message, publish_keys, sign};

const CLIENT: &str = "192.0.2.1";
/// Short limits, so that hostile cases hit them quickly.
const QUERY_TIMEOUT: Duration = Duration::from_millis(300);
const SPF_TIME_LIMIT: Duration = Duration::from_secs(2);
const DKIM_TIME_LIMIT: Duration = Duration::from_secs(2);
/// Scheduling slack on a busy machine on top of the configured limits.
const SLACK: Duration = Duration::from_secs(2);

fn verifier(dns: &TestDns) -> Verifier {
    let mut dns_config = dns_config(dns);
    dns_config.query_timeout = QUERY_TIMEOUT;
    Verifier::new(VerifierConfig {
        spf_time_limit: SPF_TIME_LIMIT,
        dkim_time_limit: DKIM_TIME_LIMIT,
        ..VerifierConfig::new("tester.test", dns_config)
    })
    .unwrap()
}

/// Verifies a plain message from `user@<domain>` (MAIL FROM and From) and checks that it
/// came back within the time budget.
async fn verify_from(dns: &TestDns, domain: &str, message_bytes: &[u8]) -> Report {
    let verifier = verifier(dns);
    let mail_from = format!("user@{domain}");
    let input = MessageInput {
        client_ip: Some(CLIENT.parse().unwrap()),
        helo: "mail.helo.test",
        mail_from: &mail_from,
        message: message_bytes,
        body: BodyParameter::Unknown,
    };
    let started = Instant::now();
    let report = tokio::time::timeout(
        SPF_TIME_LIMIT.max(DKIM_TIME_LIMIT) + SLACK * 5,
        verifier.verify(&input),
    )
    .await
    .expect("the verifier returned long after its time limits");
    let took = started.elapsed();
    let budget = SPF_TIME_LIMIT.max(DKIM_TIME_LIMIT) + SLACK;
    assert!(
        took < budget,
        "verification of {domain} took {took:?}, past its {budget:?} budget"
    );
    report
}

async fn spf_of(dns: &TestDns, domain: &str) -> Report {
    verify_from(
        dns,
        domain,
        &message(&format!("user@{domain}"), "Hostile", "Hi.\r\n"),
    )
    .await
}

#[tokio::test]
async fn more_than_ten_dns_terms_is_a_permerror() {
    let dns = TestDns::start().await;
    let mut record = String::from("v=spf1");
    for i in 0..12 {
        let host = format!("h{i}.many.test");
        dns.add_a(&host, "198.51.100.7".parse().unwrap());
        record.push_str(&format!(" a:{host}"));
    }
    record.push_str(&format!(" ip4:{CLIENT} -all"));
    dns.add_txt("many.test", &record);

    let report = spf_of(&dns, "many.test").await;
    assert_eq!(
        report.spf.check.result,
        SpfResult::Permerror,
        "{}",
        report.spf.check.reason
    );
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-permerror !!");
    assert_eq!(
        report.spf.check.dns_lookups, 11,
        "evaluation stops at the 11th term"
    );
}

#[tokio::test]
async fn include_loops_and_a_record_that_includes_itself_are_permerrors() {
    let dns = TestDns::start().await;
    dns.add_txt("loop-a.test", "v=spf1 include:loop-b.test -all");
    dns.add_txt("loop-b.test", "v=spf1 include:loop-c.test -all");
    dns.add_txt("loop-c.test", "v=spf1 include:loop-a.test -all");
    dns.add_txt(
        "itself.test",
        "v=spf1 include:itself.test ip4:192.0.2.1 -all",
    );
    dns.add_txt(
        "redirects-itself.test",
        "v=spf1 redirect=redirects-itself.test",
    );

    for domain in ["loop-a.test", "itself.test", "redirects-itself.test"] {
        let report = spf_of(&dns, domain).await;
        assert_eq!(
            report.spf.check.result,
            SpfResult::Permerror,
            "{domain}: {}",
            report.spf.check.reason
        );
        assert!(
            report.spf.check.dns_lookups <= 11,
            "{domain}: a loop must not be followed past the lookup limit"
        );
    }
}

#[tokio::test]
async fn a_very_long_record_is_read_over_tcp_and_evaluated() {
    let dns = TestDns::start().await;
    let mut record = String::from("v=spf1");
    for i in 0..250u32 {
        record.push_str(&format!(" ip4:198.51.{}.{}/32", 100 + i / 250, i % 250));
    }
    record.push_str(&format!(" ip4:{CLIENT} -all"));
    assert!(
        record.len() > 4096,
        "the answer cannot fit in one UDP datagram"
    );
    dns.add_txt("long.test", &record);

    let report = spf_of(&dns, "long.test").await;
    assert_eq!(
        report.spf.check.result,
        SpfResult::Pass,
        "{}",
        report.spf.check.reason
    );
    assert_eq!(
        report.spf.check.decided_by.as_deref(),
        Some(&*format!("ip4:{CLIENT}"))
    );
}

#[tokio::test]
async fn many_void_lookups_are_a_permerror() {
    let dns = TestDns::start().await;
    let mut record = String::from("v=spf1");
    for i in 0..8 {
        record.push_str(&format!(" a:void{i}.voids.test"));
    }
    record.push_str(&format!(" ip4:{CLIENT} -all"));
    dns.add_txt("voids.test", &record);

    let report = spf_of(&dns, "voids.test").await;
    assert_eq!(
        report.spf.check.result,
        SpfResult::Permerror,
        "{}",
        report.spf.check.reason
    );
    assert_eq!(
        report.spf.check.void_lookups, 3,
        "the third void lookup ends evaluation"
    );
}

#[tokio::test]
async fn a_nameserver_that_never_answers_gives_temperrors_in_time() {
    let dns = TestDns::start().await;
    // Every name the message leads to: the SPF record, the DMARC policy, the DKIM key, HELO.
    for name in [
        "silent.test",
        "_dmarc.silent.test",
        "rsa2048._domainkey.silent.test",
        "mail.helo.test",
    ] {
        dns.set_behaviour(name, Behaviour::Timeout);
    }
    let signed = sign(
        &message("user@silent.test", "Silent", "Hi.\r\n"),
        &SignOptions::new("silent.test", TestKey::Rsa2048),
    );

    let report = verify_from(&dns, "silent.test", &signed).await;
    assert_eq!(
        report.spf.check.result,
        SpfResult::Temperror,
        "{}",
        report.spf.check.reason
    );
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-temperror !!");
    assert_eq!(report.dkim.len(), 1);
    assert_eq!(
        report.dkim[0].result,
        DkimResult::Temperror,
        "{}",
        report.dkim[0].reason
    );
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-temperror !!");
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Temperror,
        "{}",
        report.dmarc.reason
    );
}

#[tokio::test]
async fn a_slow_nameserver_within_the_query_timeout_still_gives_the_answer() {
    let dns = TestDns::start().await;
    dns.add_txt("slowish.test", &format!("v=spf1 ip4:{CLIENT} -all"));
    dns.set_behaviour("slowish.test", Behaviour::Delay(QUERY_TIMEOUT / 3));

    let report = spf_of(&dns, "slowish.test").await;
    assert_eq!(
        report.spf.check.result,
        SpfResult::Pass,
        "{}",
        report.spf.check.reason
    );
}

#[tokio::test]
async fn a_chain_of_slow_includes_stops_at_the_time_limit_with_temperror() {
    let dns = TestDns::start().await;
    // Nine includes, each answered just within the query timeout: together far past the
    // SPF time limit, though no single query times out.
    let mut record = String::from("v=spf1");
    for i in 0..9 {
        let name = format!("slow{i}.chain.test");
        dns.add_txt(&name, "v=spf1 -all");
        dns.set_behaviour(&name, Behaviour::Delay(QUERY_TIMEOUT * 4 / 5));
        record.push_str(&format!(" include:{name}"));
    }
    record.push_str(&format!(" ip4:{CLIENT} -all"));
    dns.add_txt("chain.test", &record);
    let mut dns_config = dns_config(&dns);
    // Long enough for each answer; the SPF time limit is what must stop the evaluation.
    dns_config.query_timeout = Duration::from_secs(5);
    let verifier = Verifier::new(VerifierConfig {
        spf_time_limit: Duration::from_millis(500),
        ..VerifierConfig::new("tester.test", dns_config)
    })
    .unwrap();
    let signed = message("user@chain.test", "Slow", "Hi.\r\n");
    let input = MessageInput {
        client_ip: Some(CLIENT.parse().unwrap()),
        helo: "mail.helo.test",
        mail_from: "user@chain.test",
        message: &signed,
        body: BodyParameter::Unknown,
    };
    let started = Instant::now();
    let report = verifier.verify(&input).await;
    let took = started.elapsed();
    assert_eq!(
        report.spf.check.result,
        SpfResult::Temperror,
        "{}",
        report.spf.check.reason
    );
    assert!(
        took < Duration::from_millis(500) + SLACK,
        "took {took:?} with a 500 ms SPF time limit"
    );
}

#[tokio::test]
async fn many_dkim_keys_behind_a_silent_nameserver_share_one_time_limit() {
    let dns = TestDns::start().await;
    dns.add_txt("keys.test", &format!("v=spf1 ip4:{CLIENT} -all"));
    publish_keys(&dns, "keys.test");
    let mut message_bytes = message("user@keys.test", "Keys", "Hi.\r\n");
    // Twenty signatures, each naming its own selector that never answers.
    for i in 0..20 {
        let selector = format!("silent{i}");
        dns.set_behaviour(
            &format!("{selector}._domainkey.keys.test"),
            Behaviour::Timeout,
        );
        let mut options = SignOptions::new("keys.test", TestKey::Ed25519);
        options.selector = Some(selector);
        message_bytes = sign(&message_bytes, &options);
    }

    let report = verify_from(&dns, "keys.test", &message_bytes).await;
    assert_eq!(report.dkim.len(), 20);
    assert!(
        report
            .dkim
            .iter()
            .all(|signature| signature.result == DkimResult::Temperror),
        "{:#?}",
        report.dkim
    );
    assert_eq!(
        report.spf.check.result,
        SpfResult::Pass,
        "SPF is unaffected by the DKIM keys"
    );
}

#[tokio::test]
async fn dmarc_lookups_behind_slow_answers_stop_at_their_time_limit_with_temperror() {
    let dns = TestDns::start().await;
    dns.add_txt("mail.slowdmarc.test", &format!("v=spf1 ip4:{CLIENT} -all"));
    // Two lookups (the From domain, then its organizational domain), each answered well
    // within the query timeout: together past the DMARC time limit.
    dns.add_txt("_dmarc.mail.slowdmarc.test", "not a DMARC record");
    dns.add_txt("_dmarc.slowdmarc.test", "v=DMARC1; p=reject");
    for name in ["_dmarc.mail.slowdmarc.test", "_dmarc.slowdmarc.test"] {
        dns.set_behaviour(name, Behaviour::Delay(Duration::from_millis(400)));
    }
    let mut dns_config = dns_config(&dns);
    dns_config.query_timeout = Duration::from_secs(5);
    let dmarc_time_limit = Duration::from_millis(500);
    let verifier = Verifier::new(VerifierConfig {
        dmarc_time_limit,
        ..VerifierConfig::new("tester.test", dns_config)
    })
    .unwrap();
    let plain = message("user@mail.slowdmarc.test", "Slow DMARC", "Hi.\r\n");
    let input = MessageInput {
        client_ip: Some(CLIENT.parse().unwrap()),
        helo: "mail.helo.test",
        mail_from: "user@mail.slowdmarc.test",
        message: &plain,
        body: BodyParameter::Unknown,
    };
    let started = Instant::now();
    let report = verifier.verify(&input).await;
    let took = started.elapsed();
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Temperror,
        "{:?}",
        report.dmarc
    );
    assert!(
        took < dmarc_time_limit + SLACK,
        "took {took:?} with a {dmarc_time_limit:?} DMARC time limit"
    );
    assert_eq!(report.spf.check.result, SpfResult::Pass);
}
