//! Finding the servers for a domain with a real resolver against the loopback DNS server: MX
//! hosts by preference with their addresses, the domain itself without MX, a null MX and a
//! missing domain as permanent failures, and inward addresses skipped unless allowed.

use std::net::Ipv4Addr;

use authcheck_outbound::{MAX_MX_HOSTS, mx_servers};
use authcheck_testdns::TestDns;
use authcheck_verifier::{Dns, DnsConfig};

fn resolver(dns: &TestDns) -> Dns {
    Dns::new(&DnsConfig {
        servers: vec![dns.addr()],
        ..DnsConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn mx_hosts_come_in_order_of_preference_with_their_addresses() {
    let dns = TestDns::start().await;
    dns.add_mx("example.net", 20, "backup.example.net");
    dns.add_mx("example.net", 10, "mx.example.net");
    dns.add_a("mx.example.net", Ipv4Addr::new(192, 0, 2, 10));
    dns.add_a("backup.example.net", Ipv4Addr::new(192, 0, 2, 20));
    let servers = mx_servers(&resolver(&dns), "example.net", 25, false)
        .await
        .unwrap();
    let shown: Vec<String> = servers
        .iter()
        .map(|server| format!("{} {}", server.name, server.addr))
        .collect();
    assert_eq!(
        shown,
        [
            "mx.example.net 192.0.2.10:25",
            "backup.example.net 192.0.2.20:25"
        ]
    );
}

#[tokio::test]
async fn a_domain_without_mx_is_its_own_host() {
    let dns = TestDns::start().await;
    dns.add_a("plain.example", Ipv4Addr::new(192, 0, 2, 30));
    let servers = mx_servers(&resolver(&dns), "plain.example", 2525, false)
        .await
        .unwrap();
    assert_eq!(servers[0].addr.to_string(), "192.0.2.30:2525");
}

#[tokio::test]
async fn null_mx_missing_domains_and_inward_addresses_are_refused_for_good() {
    let dns = TestDns::start().await;
    dns.add_mx("nomail.example", 0, ".");
    let resolver = resolver(&dns);
    let null = mx_servers(&resolver, "nomail.example", 25, false)
        .await
        .unwrap_err();
    assert!(null.permanent && null.detail.contains("null MX"), "{null}");
    let missing = mx_servers(&resolver, "missing.example", 25, false)
        .await
        .unwrap_err();
    assert!(missing.permanent, "{missing}");

    dns.add_mx("inward.example", 10, "mx.inward.example");
    dns.add_a("mx.inward.example", Ipv4Addr::LOCALHOST);
    let inward = mx_servers(&resolver, "inward.example", 25, false)
        .await
        .unwrap_err();
    assert!(
        inward.permanent && inward.detail.contains("loopback"),
        "{inward}"
    );
    let allowed = mx_servers(&resolver, "inward.example", 25, true)
        .await
        .unwrap();
    assert_eq!(allowed[0].addr.to_string(), "127.0.0.1:25");
}

#[tokio::test]
async fn many_mx_hosts_are_bounded() {
    let dns = TestDns::start().await;
    for n in 0..20u8 {
        let host = format!("mx{n}.many.example");
        dns.add_mx("many.example", u16::from(n), &host);
        dns.add_a(&host, Ipv4Addr::new(192, 0, 2, n + 1));
        dns.add_a(&host, Ipv4Addr::new(198, 51, 100, n + 1));
        dns.add_a(&host, Ipv4Addr::new(203, 0, 113, n + 1));
    }
    let servers = mx_servers(&resolver(&dns), "many.example", 25, false)
        .await
        .unwrap();
    assert_eq!(servers.len(), MAX_MX_HOSTS * 2);
    assert_eq!(servers[0].name, "mx0.many.example");
}

#[tokio::test]
async fn a_dns_failure_is_temporary() {
    let dns = TestDns::start().await;
    dns.set_behaviour("broken.example", authcheck_testdns::Behaviour::ServFail);
    let failure = mx_servers(&resolver(&dns), "broken.example", 25, false)
        .await
        .unwrap_err();
    assert!(!failure.permanent, "{failure}");
}
