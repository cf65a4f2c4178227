//! The resolver every check shares caches what a production nameserver lets it cache: records,
//! and also "no such name" and "no such record" when the answer carries the zone's SOA
//! (RFC 2308). A burst of messages from one sender then costs a handful of queries.

mod common;

use authcheck_testdns::TestDns;
use std::time::Duration;

use authcheck_verifier::{Dns, DnsConfig, LookupError};
use common::dns_config;

#[tokio::test]
async fn records_are_asked_for_once() {
    let server = TestDns::start().await;
    server.add_txt("cached.test", "v=spf1 -all");
    let dns = Dns::new(&dns_config(&server)).unwrap();
    for _ in 0..3 {
        let texts = dns.txt("cached.test").await.expect("the record");
        assert_eq!(texts, vec![b"v=spf1 -all".to_vec()]);
    }
    assert_eq!(server.query_count(), 1);
}

#[tokio::test]
async fn negative_answers_with_an_soa_are_asked_for_once_and_stay_negative() {
    let server = TestDns::start().await;
    server.cache_negative_answers(300);
    server.add_a("exists.negative.test", "192.0.2.1".parse().unwrap());
    let dns = Dns::new(&dns_config(&server)).unwrap();
    for _ in 0..3 {
        let missing = dns.txt("missing.negative.test").await;
        assert!(
            matches!(missing, Err(LookupError::NxDomain(_))),
            "{missing:?}"
        );
        let no_txt = dns.txt("exists.negative.test").await;
        assert!(
            matches!(no_txt, Err(LookupError::NoRecords(..))),
            "{no_txt:?}"
        );
    }
    assert_eq!(server.query_count(), 2, "one query per name and type");
}

#[tokio::test]
async fn answers_are_cached_no_longer_than_the_maximum_ttl_whatever_the_zone_asks() {
    let server = TestDns::start().await;
    let week = 7 * 24 * 3600;
    server.set_record_ttl(week);
    server.cache_negative_answers(week);
    server.add_txt("week.test", "v=spf1 -all");
    // Two seconds, so that the answers are also kept in front of the resolver's cache for a
    // second (see `Dns`): both copies must let them go.
    let dns = Dns::new(&DnsConfig {
        cache_max_ttl: Duration::from_secs(2),
        ..dns_config(&server)
    })
    .unwrap();
    let ask_both = || async {
        assert!(dns.txt("week.test").await.is_ok());
        assert!(matches!(
            dns.txt("missing.week.test").await,
            Err(LookupError::NxDomain(_))
        ));
    };
    ask_both().await;
    ask_both().await;
    assert_eq!(server.query_count(), 2, "both answers are cached at first");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ask_both().await;
    assert_eq!(
        server.query_count(),
        4,
        "a week-long TTL is cut to the maximum, positive and negative answers alike"
    );

    let defaults = DnsConfig::default();
    assert_eq!(defaults.cache_max_ttl, Duration::from_secs(3600));
    assert!((1024..=4096).contains(&defaults.cache_entries));
}

#[tokio::test]
async fn the_cache_holds_a_bounded_number_of_answers() {
    let server = TestDns::start().await;
    let names: Vec<String> = (0..200).map(|i| format!("n{i}.many.test")).collect();
    for name in &names {
        server.add_txt(name, "v=spf1 -all");
    }
    let ask_all_twice = |dns: Dns| {
        let names = names.clone();
        async move {
            for _ in 0..2 {
                for name in &names {
                    assert!(dns.txt(name).await.is_ok());
                }
            }
        }
    };

    ask_all_twice(Dns::new(&dns_config(&server)).unwrap()).await;
    assert_eq!(
        server.query_count(),
        200,
        "the default cache holds them all"
    );

    let small = Dns::new(&DnsConfig {
        cache_entries: 16,
        ..dns_config(&server)
    })
    .unwrap();
    ask_all_twice(small).await;
    let asked_again = server.query_count() - 400;
    assert!(
        asked_again >= 100,
        "a 16-entry cache kept {} of 200 answers",
        200 - asked_again
    );
}
