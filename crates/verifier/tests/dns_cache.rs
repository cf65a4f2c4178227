//! The resolver every check shares caches what a production nameserver lets it cache: records,
//! and also "no such name" and "no such record" when the answer carries the zone's SOA
//! (RFC 2308). A burst of messages from one sender then costs a handful of queries.

mod common;

use authcheck_testdns::TestDns;
use authcheck_verifier::{Dns, LookupError};
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
