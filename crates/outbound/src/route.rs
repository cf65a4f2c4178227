//! Where a message to a domain goes: the domain's MX hosts in order of preference (RFC 5321
//! section 5.1), or the domain's own address when it has no MX, each host's addresses looked
//! up with the service's resolver; or, when the operator configured one, a smarthost.
//!
//! Bounded whatever the DNS says: at most [`MAX_MX_HOSTS`] hosts and [`MAX_ADDRESSES_PER_HOST`]
//! addresses each. A domain with a null MX (RFC 7505) takes no mail: a permanent failure.
//! Addresses a stranger's DNS could point inward (loopback, private, link-local) are skipped
//! unless the operator allows them.

use std::net::{IpAddr, SocketAddr};

use authcheck_verifier::Dns;

use crate::deliver::Server;

/// The most MX hosts tried for one domain.
pub const MAX_MX_HOSTS: usize = 5;
/// The most addresses tried for one host.
pub const MAX_ADDRESSES_PER_HOST: usize = 2;

/// Why no server could be found for a domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct RouteError {
    /// Looking again later cannot help (null MX, no such domain, only inward addresses).
    pub permanent: bool,
    pub detail: String,
}

impl RouteError {
    fn temporary(detail: String) -> RouteError {
        RouteError {
            permanent: false,
            detail,
        }
    }

    fn permanent(detail: String) -> RouteError {
        RouteError {
            permanent: true,
            detail,
        }
    }
}

/// The servers to try for mail to `domain`, best first, on `port` (25 between mail servers).
/// `allow_inward` lets loopback and private addresses through (tests, closed networks).
pub async fn mx_servers(
    dns: &Dns,
    domain: &str,
    port: u16,
    allow_inward: bool,
) -> Result<Vec<Server>, RouteError> {
    let hosts = match dns.mx(domain).await {
        Ok(records) if !records.is_empty() => {
            let mut records = records;
            records.sort_by_key(|(preference, _)| *preference);
            if records
                .iter()
                .any(|(_, exchange)| exchange.is_empty() || exchange == ".")
            {
                return Err(RouteError::permanent(format!(
                    "{domain} publishes a null MX: it accepts no mail (RFC 7505)"
                )));
            }
            records
                .into_iter()
                .map(|(_, exchange)| exchange)
                .take(MAX_MX_HOSTS)
                .collect::<Vec<_>>()
        }
        // No MX: the domain itself is the host (RFC 5321 section 5.1).
        Ok(_) => vec![domain.to_owned()],
        Err(error) if error.is_void() => {
            if matches!(error, authcheck_verifier::LookupError::NxDomain(_)) {
                return Err(RouteError::permanent(format!(
                    "{domain} does not exist (NXDOMAIN)"
                )));
            }
            vec![domain.to_owned()]
        }
        Err(error) => {
            return Err(RouteError::temporary(format!(
                "cannot look up the MX of {domain}: {error}"
            )));
        }
    };
    let mut servers = Vec::new();
    let mut problems = Vec::new();
    let mut skipped_inward = false;
    for host in &hosts {
        let mut addresses: Vec<IpAddr> = Vec::new();
        match dns.a(host).await {
            Ok(found) => addresses.extend(found.into_iter().map(IpAddr::V4)),
            Err(error) if !error.is_void() => problems.push(error.to_string()),
            Err(_) => {}
        }
        match dns.aaaa(host).await {
            Ok(found) => addresses.extend(found.into_iter().map(IpAddr::V6)),
            Err(error) if !error.is_void() => problems.push(error.to_string()),
            Err(_) => {}
        }
        let mut taken = 0;
        for ip in addresses {
            if taken == MAX_ADDRESSES_PER_HOST {
                break;
            }
            if !allow_inward && is_inward(ip) {
                skipped_inward = true;
                continue;
            }
            servers.push(Server {
                addr: SocketAddr::new(ip, port),
                name: host.clone(),
            });
            taken += 1;
        }
    }
    if !servers.is_empty() {
        return Ok(servers);
    }
    if !problems.is_empty() {
        return Err(RouteError::temporary(format!(
            "cannot look up the addresses of {}: {}",
            hosts.join(", "),
            problems.join("; ")
        )));
    }
    if skipped_inward {
        return Err(RouteError::permanent(format!(
            "the mail hosts of {domain} ({}) have only loopback, private or link-local \
             addresses, which authcheck does not send to",
            hosts.join(", ")
        )));
    }
    Err(RouteError::permanent(format!(
        "the mail hosts of {domain} ({}) have no address",
        hosts.join(", ")
    )))
}

/// Addresses inside the operator's own network, which a stranger's MX must not reach.
fn is_inward(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_inward(IpAddr::V4(v4)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inward_addresses_are_recognised() {
        for inward in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_inward(inward.parse().unwrap()), "{inward}");
        }
        for outward in ["192.0.2.1", "8.8.8.8", "2001:db8::1", "100.128.0.1"] {
            assert!(!is_inward(outward.parse().unwrap()), "{outward}");
        }
    }
}
