//! SPF processing limits and failure handling, exactly at and just past each limit: duplicate
//! records, void lookups, DNS-querying terms, MX names, include loops, unresponsive nameservers
//! and long records. Each test serves its own zone from a loopback DNS server.

use std::net::IpAddr;
use std::time::Duration;

use authcheck_testdns::{Behaviour, TestDns};
use authcheck_verifier::spf::check_mail_from;
use authcheck_verifier::{Dns, DnsConfig, SpfCheck, SpfResult};

const CLIENT: &str = "192.0.2.1";
const TIME_LIMIT: Duration = Duration::from_secs(10);

fn client() -> IpAddr {
    CLIENT.parse().unwrap()
}

fn dns_for(server: &TestDns) -> Dns {
    Dns::new(&DnsConfig {
        servers: vec![server.addr()],
        query_timeout: Duration::from_millis(300),
        attempts: 1,
        ..DnsConfig::default()
    })
    .expect("DNS client")
}

async fn check(server: &TestDns, mail_from: &str) -> SpfCheck {
    check_mail_from(
        &dns_for(server),
        client(),
        mail_from,
        "mail.example.test",
        TIME_LIMIT,
    )
    .await
}

/// A record of `count` `a:` terms naming hosts that exist but are not the client, then `-all`.
fn a_terms(server: &TestDns, count: usize) -> String {
    let mut record = String::from("v=spf1");
    for i in 1..=count {
        let host = format!("h{i}.example.test");
        server.add_a(&host, format!("198.51.100.{i}").parse().unwrap());
        record.push_str(&format!(" a:{host}"));
    }
    record.push_str(" -all");
    record
}

#[tokio::test]
async fn two_spf_records_are_a_permerror_even_when_one_would_pass() {
    let server = TestDns::start().await;
    server.add_txt("example.test", "v=spf1 +all");
    server.add_txt("example.test", "v=spf1 -all");
    server.add_txt("example.test", "google-site-verification=abc");
    let spf = check(&server, "user@example.test").await;
    assert_eq!(spf.result, SpfResult::Permerror, "{}", spf.reason);
    assert_eq!(
        spf.records.len(),
        2,
        "both SPF records are shown, the other TXT is not"
    );
    assert!(spf.reason.contains("two SPF records"), "{}", spf.reason);
}

#[tokio::test]
async fn two_void_lookups_are_allowed_and_the_third_is_a_permerror() {
    let server = TestDns::start().await;
    server.add_txt(
        "two.example.test",
        "v=spf1 a:nx1.example.test mx:nx2.example.test -all",
    );
    server.add_txt(
        "three.example.test",
        "v=spf1 a:nx1.example.test mx:nx2.example.test exists:nx3.example.test -all",
    );

    let two = check(&server, "user@two.example.test").await;
    assert_eq!(two.result, SpfResult::Fail, "{}", two.reason);
    assert_eq!(two.decided_by.as_deref(), Some("-all"));
    assert_eq!((two.void_lookups, two.void_lookup_limit), (2, 2));

    let three = check(&server, "user@three.example.test").await;
    assert_eq!(three.result, SpfResult::Permerror, "{}", three.reason);
    assert_eq!(three.void_lookups, 3);
    assert_eq!(three.decided_by.as_deref(), Some("exists:nx3.example.test"));
    assert!(three.reason.contains("void"), "{}", three.reason);
}

#[tokio::test]
async fn ten_dns_terms_are_evaluated_and_the_eleventh_is_a_permerror() {
    let server = TestDns::start().await;
    let ten = a_terms(&server, 10);
    server.add_txt("ten.example.test", &ten);
    let eleven = a_terms(&server, 11);
    server.add_txt("eleven.example.test", &eleven);

    let at_limit = check(&server, "user@ten.example.test").await;
    assert_eq!(at_limit.result, SpfResult::Fail, "{}", at_limit.reason);
    assert_eq!(
        at_limit.decided_by.as_deref(),
        Some("-all"),
        "evaluation reaches all"
    );
    assert_eq!((at_limit.dns_lookups, at_limit.dns_lookup_limit), (10, 10));

    let over = check(&server, "user@eleven.example.test").await;
    assert_eq!(over.result, SpfResult::Permerror, "{}", over.reason);
    assert_eq!(over.decided_by.as_deref(), Some("a:h11.example.test"));
    assert_eq!(over.dns_lookups, 11);
}

#[tokio::test]
async fn lookups_inside_includes_count_towards_the_same_limit() {
    let server = TestDns::start().await;
    // 1 include + 9 terms inside it = 10; one more term after the include is the 11th.
    let nine = a_terms(&server, 9);
    server.add_txt("inc.example.test", nine.trim_end_matches(" -all"));
    server.add_txt(
        "ok.example.test",
        "v=spf1 include:inc.example.test ip4:192.0.2.1 -all",
    );
    server.add_txt(
        "over.example.test",
        "v=spf1 include:inc.example.test a ip4:192.0.2.1 -all",
    );

    let ok = check(&server, "user@ok.example.test").await;
    assert_eq!(ok.result, SpfResult::Pass, "{}", ok.reason);
    assert_eq!(ok.dns_lookups, 10);

    let over = check(&server, "user@over.example.test").await;
    assert_eq!(over.result, SpfResult::Permerror, "{}", over.reason);
    assert_eq!(over.decided_by.as_deref(), Some("a"));
}

#[tokio::test]
async fn ten_mx_names_are_checked_and_eleven_are_a_permerror() {
    let server = TestDns::start().await;
    for domain in ["ten.example.test", "eleven.example.test"] {
        server.add_txt(domain, "v=spf1 mx -all");
    }
    for i in 1..=11u16 {
        let host = format!("mx{i}.example.test");
        // The client is the last of the ten hosts, so every name must be looked at.
        let address = if i == 10 {
            CLIENT.to_string()
        } else {
            format!("198.51.100.{i}")
        };
        server.add_a(&host, address.parse().unwrap());
        if i <= 10 {
            server.add_mx("ten.example.test", i, &host);
        }
        server.add_mx("eleven.example.test", i, &host);
    }

    let ten = check(&server, "user@ten.example.test").await;
    assert_eq!(ten.result, SpfResult::Pass, "{}", ten.reason);
    assert_eq!(ten.decided_by.as_deref(), Some("mx"));

    let eleven = check(&server, "user@eleven.example.test").await;
    assert_eq!(eleven.result, SpfResult::Permerror, "{}", eleven.reason);
    assert!(eleven.reason.contains("11 MX records"), "{}", eleven.reason);
}

#[tokio::test]
async fn include_loops_and_self_includes_are_permerrors() {
    let server = TestDns::start().await;
    server.add_txt("a.example.test", "v=spf1 include:b.example.test -all");
    server.add_txt("b.example.test", "v=spf1 include:a.example.test -all");
    server.add_txt("self.example.test", "v=spf1 include:self.example.test -all");
    server.add_txt(
        "redirect.example.test",
        "v=spf1 redirect=redirect.example.test",
    );

    for domain in [
        "a.example.test",
        "self.example.test",
        "redirect.example.test",
    ] {
        let spf = check(&server, &format!("user@{domain}")).await;
        assert_eq!(spf.result, SpfResult::Permerror, "{domain}: {}", spf.reason);
        assert!(
            spf.reason.contains("loops back"),
            "{domain}: {}",
            spf.reason
        );
    }
}

#[tokio::test]
async fn a_nameserver_that_never_answers_gives_temperror() {
    let server = TestDns::start().await;
    server.set_behaviour("silent.example.test", Behaviour::Timeout);
    server.add_txt(
        "inc.example.test",
        "v=spf1 include:silent.example.test -all",
    );

    let direct = check(&server, "user@silent.example.test").await;
    assert_eq!(direct.result, SpfResult::Temperror, "{}", direct.reason);
    assert!(
        direct.reason.contains("silent.example.test"),
        "{}",
        direct.reason
    );

    let included = check(&server, "user@inc.example.test").await;
    assert_eq!(included.result, SpfResult::Temperror, "{}", included.reason);
    assert_eq!(
        included.decided_by.as_deref(),
        Some("include:silent.example.test")
    );
}

#[tokio::test]
async fn evaluation_stops_at_the_time_limit_with_temperror() {
    let server = TestDns::start().await;
    server.add_txt("slow.example.test", "v=spf1 -all");
    server.set_behaviour(
        "slow.example.test",
        Behaviour::Delay(Duration::from_secs(5)),
    );
    let dns = Dns::new(&DnsConfig {
        servers: vec![server.addr()],
        query_timeout: Duration::from_secs(30),
        attempts: 1,
        ..DnsConfig::default()
    })
    .expect("DNS client");
    let spf = check_mail_from(
        &dns,
        client(),
        "user@slow.example.test",
        "mail.example.test",
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(spf.result, SpfResult::Temperror, "{}", spf.reason);
    assert!(
        spf.reason.contains("took longer than 200 ms"),
        "{}",
        spf.reason
    );
}

#[tokio::test]
async fn a_record_spread_over_several_strings_is_joined_and_parsed() {
    let server = TestDns::start().await;
    let mut record = String::from("v=spf1");
    for i in 1..=60 {
        record.push_str(&format!(" ip4:198.51.100.{i}"));
    }
    record.push_str(&format!(" ip4:{CLIENT} -all"));
    assert!(record.len() > 3 * 255, "the record needs several strings");
    server.add_txt("long.example.test", &record);

    let spf = check(&server, "user@long.example.test").await;
    assert_eq!(spf.result, SpfResult::Pass, "{}", spf.reason);
    assert_eq!(spf.decided_by, Some(format!("ip4:{CLIENT}")));
    assert_eq!(spf.records, vec![record]);
}
