//! The DNS client every check uses: one resolver, one cache, one set of time limits.
//!
//! Lookups answer in the terms the RFCs reason in: records, "the name does not exist"
//! (NXDOMAIN), "the name exists but has no record of that type", or a transient failure.
//! SPF counts the middle two as void lookups; DKIM calls them "key record not found";
//! a transient failure becomes `temperror` everywhere.
//!
//! Anyone can make the tester look names up (by sending it mail), so what DNS hands back is
//! bounded: the cache holds at most [`DnsConfig::cache_entries`] answers for at most
//! [`DnsConfig::cache_max_ttl`] whatever TTL the zone asks for, and a TXT record over
//! [`MAX_TXT_RECORD_BYTES`] is refused rather than parsed.
//!
//! Answers are also kept in front of the resolver ([`Answers`]) until the resolver's cache
//! would let them go: an answer the resolver gives from its cache still costs its name parsing
//! and lookup machinery, some ten thousand instructions, and a message needs about ten
//! lookups, two of which find nothing (the HELO name's SPF, say). That copy is bounded too: as
//! many answers as the resolver's cache, each of at most [`MAX_KEPT_ANSWER_BYTES`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{TokioResolver, TtlConfig};

/// The largest answer kept in front of the resolver, its records' data counted (a name as 255
/// bytes). SPF, DKIM key and DMARC records are well under it; a larger answer comes from the
/// resolver's cache every time, so that the copy in front stays small whatever zones senders
/// point the tester at.
const MAX_KEPT_ANSWER_BYTES: usize = 4 * 1024;

/// Where queries go and how long each may take.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Nameservers to ask (`ADDR:PORT`); empty means the system's resolver configuration.
    pub servers: Vec<SocketAddr>,
    /// How long one query may wait for an answer.
    pub query_timeout: Duration,
    /// How many times a query is sent before it counts as failed.
    pub attempts: usize,
    /// The most answers (positive or negative) the cache holds; a TXT answer is at most 64 KiB.
    pub cache_entries: u64,
    /// The longest any answer stays cached, whatever TTL its zone gives it.
    pub cache_max_ttl: Duration,
}

/// The longest TXT record read, its character strings joined. SPF, DKIM key and DMARC records
/// are well under 4 KiB (a 4,096-bit key record is about 800 bytes).
pub const MAX_TXT_RECORD_BYTES: usize = 16 * 1024;

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            servers: Vec::new(),
            query_timeout: Duration::from_secs(5),
            attempts: 2,
            cache_entries: 2048,
            cache_max_ttl: Duration::from_secs(3600),
        }
    }
}

/// Why a lookup gave no records.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// NXDOMAIN: the name does not exist.
    #[error("{0}: no such domain (NXDOMAIN)")]
    NxDomain(String),
    /// The name exists but has no record of the asked type.
    #[error("{0}: no {1} record")]
    NoRecords(String, &'static str),
    /// A transient failure: timeout, SERVFAIL, refused, network error.
    #[error("{0}: DNS failure: {1}")]
    Temporary(String, String),
    /// The name cannot be sent as a DNS query at all (empty label, over 253 bytes...).
    #[error("{0:?} is not a valid domain name")]
    InvalidName(String),
    /// A TXT record at the name is longer than [`MAX_TXT_RECORD_BYTES`] (its length).
    #[error(
        "{0}: a TXT record there is {1} bytes long; records over {MAX_TXT_RECORD_BYTES} bytes are not read"
    )]
    TooLarge(String, usize),
}

impl LookupError {
    /// True for NXDOMAIN and "no records": what RFC 7208 §4.6.4 calls a void lookup.
    pub fn is_void(&self) -> bool {
        matches!(self, LookupError::NxDomain(_) | LookupError::NoRecords(..))
    }

    /// True for failures that may go away when asked again (temperror).
    pub fn is_temporary(&self) -> bool {
        matches!(self, LookupError::Temporary(..))
    }
}

/// Could not set up the resolver (an unreadable `/etc/resolv.conf`, say).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct DnsSetupError(String);

/// A caching DNS client shared by all checks.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    answers: Answers,
    /// The TTL bounds the resolver's cache applies, made from its own options, so that
    /// [`Answers`] keeps negative answers by the same rule.
    ttl_bounds: TtlConfig,
}

/// The resolver's answers, by type and name (lower case, without the final dot), each until
/// the resolver's cache would let it go and as many as it holds ([`DnsConfig::cache_entries`]).
/// Failures are not kept: they go to the resolver every time, as do the negative answers it
/// does not cache (those without the zone's SOA, RFC 2308).
type Answers = moka::sync::Cache<(RecordType, Box<str>), Answer>;

#[derive(Clone)]
struct Answer {
    found: Found,
    valid_until: Instant,
}

#[derive(Clone)]
enum Found {
    Records(Arc<[RData]>),
    /// NXDOMAIN.
    NoSuchName,
    /// The name exists without a record of the type.
    NoRecord,
}

impl Dns {
    pub fn new(config: &DnsConfig) -> Result<Dns, DnsSetupError> {
        let (resolver_config, mut opts) = if config.servers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| DnsSetupError(e.to_string()))?
        } else {
            let servers = config
                .servers
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    server.connections = vec![udp, tcp];
                    server
                })
                .collect();
            (
                ResolverConfig::from_name_servers(servers),
                ResolverOpts::default(),
            )
        };
        opts.timeout = config.query_timeout;
        opts.attempts = config.attempts.max(1);
        opts.ndots = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.edns0 = true;
        opts.cache_size = config.cache_entries;
        opts.positive_max_ttl = Some(config.cache_max_ttl);
        opts.negative_max_ttl = Some(config.cache_max_ttl);
        let resolver =
            TokioResolver::builder_with_config(resolver_config, TokioRuntimeProvider::default())
                .with_options(opts)
                .build()
                .map_err(|e| DnsSetupError(e.to_string()))?;
        Ok(Dns {
            ttl_bounds: TtlConfig::from_opts(resolver.options()),
            resolver,
            answers: Answers::new(config.cache_entries),
        })
    }

    /// The underlying resolver, for libraries that take one (mail-auth's ARC verification).
    pub fn resolver(&self) -> &TokioResolver {
        &self.resolver
    }

    async fn lookup(&self, name: &str, record_type: RecordType) -> Result<Vec<RData>, LookupError> {
        let key = (
            record_type,
            name.trim_end_matches('.')
                .to_ascii_lowercase()
                .into_boxed_str(),
        );
        if let Some(answer) = self.answers.get(&key)
            && answer.valid_until > Instant::now()
        {
            return match answer.found {
                Found::Records(records) => Ok(records.to_vec()),
                Found::NoSuchName => Err(LookupError::NxDomain(name.to_string())),
                Found::NoRecord => Err(LookupError::NoRecords(
                    name.to_string(),
                    type_name(record_type),
                )),
            };
        }
        let fqdn = to_fqdn(name)?;
        let started = Instant::now();
        let answer = self.resolver.lookup(fqdn, record_type).await;
        metrics::histogram!("authcheck_dns_query_seconds", "type" => type_name(record_type))
            .record(started.elapsed().as_secs_f64());
        match answer {
            Ok(lookup) => {
                let records: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == record_type)
                    .map(|r| r.data.clone())
                    .collect();
                if records.is_empty() {
                    Err(LookupError::NoRecords(
                        name.to_string(),
                        type_name(record_type),
                    ))
                } else {
                    if answer_bytes(&records) <= MAX_KEPT_ANSWER_BYTES {
                        let answer = Answer {
                            found: Found::Records(records.as_slice().into()),
                            valid_until: lookup.valid_until(),
                        };
                        self.answers.insert(key, answer);
                    }
                    Ok(records)
                }
            }
            Err(error) => {
                let negative_ttl = negative_ttl(&error);
                let error = classify(name, record_type, error);
                let bounds = self.ttl_bounds.negative_response_ttl_bounds(record_type);
                if let Some(answer) = negative_answer(&error, negative_ttl, bounds) {
                    self.answers.insert(key, answer);
                }
                if error.is_temporary() {
                    metrics::counter!("authcheck_dns_failures_total", "type" => type_name(record_type)).increment(1);
                }
                Err(error)
            }
        }
    }

    /// TXT records at `name`, each with its character strings joined (RFC 7208 §3.3). A record
    /// over [`MAX_TXT_RECORD_BYTES`] makes the whole answer [`LookupError::TooLarge`].
    pub async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, LookupError> {
        let records = self.lookup(name, RecordType::TXT).await?;
        let mut texts = Vec::with_capacity(records.len());
        for data in records {
            let RData::TXT(txt) = data else { continue };
            let length: usize = txt.txt_data.iter().map(|s| s.len()).sum();
            if length > MAX_TXT_RECORD_BYTES {
                return Err(LookupError::TooLarge(name.to_string(), length));
            }
            texts.push(txt.txt_data.concat());
        }
        Ok(texts)
    }

    pub async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, LookupError> {
        Ok(self
            .lookup(name, RecordType::A)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    pub async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, LookupError> {
        Ok(self
            .lookup(name, RecordType::AAAA)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    /// A or AAAA records, whichever family `like` is.
    pub async fn addresses(&self, name: &str, like: IpAddr) -> Result<Vec<IpAddr>, LookupError> {
        match like {
            IpAddr::V4(_) => Ok(self.a(name).await?.into_iter().map(IpAddr::V4).collect()),
            IpAddr::V6(_) => Ok(self.aaaa(name).await?.into_iter().map(IpAddr::V6).collect()),
        }
    }

    /// MX records as (preference, exchange without the trailing dot), in the order received.
    pub async fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, LookupError> {
        Ok(self
            .lookup(name, RecordType::MX)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::MX(mx) => Some((mx.preference, name_to_string(&mx.exchange))),
                _ => None,
            })
            .collect())
    }

    /// PTR names of `ip`, without the trailing dot.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, LookupError> {
        // The name under in-addr.arpa or ip6.arpa that holds the PTR record of `ip`.
        let name = Name::from(ip).to_ascii();
        Ok(self
            .lookup(&name, RecordType::PTR)
            .await?
            .into_iter()
            .filter_map(|data| match data {
                RData::PTR(ptr) => Some(name_to_string(&ptr.0)),
                _ => None,
            })
            .collect())
    }
}

/// What `records` weigh for [`MAX_KEPT_ANSWER_BYTES`]: a TXT record its text, any other
/// record the longest name it may hold.
fn answer_bytes(records: &[RData]) -> usize {
    records
        .iter()
        .map(|data| match data {
            RData::TXT(txt) => txt.txt_data.iter().map(|text| text.len()).sum(),
            _ => 255,
        })
        .sum()
}

/// Raw labels joined by dots, not the escaped presentation form, so the name can be looked up again.
fn name_to_string(name: &Name) -> String {
    labels_to_string(name)
}

fn labels_to_string(name: &Name) -> String {
    name.iter()
        .map(|label| String::from_utf8_lossy(label).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

fn to_fqdn(name: &str) -> Result<Name, LookupError> {
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty()
        || trimmed.len() > 253
        || trimmed.split('.').any(|l| l.is_empty() || l.len() > 63)
    {
        return Err(LookupError::InvalidName(name.to_string()));
    }
    // SPF targets may hold any visible ASCII (`foo:bar/baz.example.com`), which the text parser
    // refuses; such names go on the wire label by label as they are.
    let mut fqdn = Name::from_str_relaxed(trimmed)
        .or_else(|e| {
            if trimmed.is_ascii() {
                Name::from_labels(trimmed.split('.').map(str::as_bytes))
            } else {
                Err(e)
            }
        })
        .map_err(|_| LookupError::InvalidName(name.to_string()))?;
    fqdn.set_fqdn(true);
    Ok(fqdn)
}

fn type_name(record_type: RecordType) -> &'static str {
    match record_type {
        RecordType::TXT => "TXT",
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::MX => "MX",
        RecordType::PTR => "PTR",
        _ => "requested",
    }
}

/// The zone's negative TTL (from its SOA, RFC 2308) that came with "no such name" or "no
/// record"; none without an SOA.
fn negative_ttl(error: &NetError) -> Option<u32> {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => no_records.negative_ttl,
        _ => None,
    }
}

/// "No such name" or "no record" as the resolver caches it: for the zone's `negative_ttl`
/// within the cache's `bounds`, or their minimum without one (no SOA; zero here, so not kept).
/// Kept in front one second less, because a negative answer from the resolver's cache counts
/// the time since it came in whole seconds.
fn negative_answer(
    error: &LookupError,
    negative_ttl: Option<u32>,
    bounds: RangeInclusive<Duration>,
) -> Option<Answer> {
    let found = match error {
        LookupError::NxDomain(_) => Found::NoSuchName,
        LookupError::NoRecords(..) => Found::NoRecord,
        _ => return None,
    };
    let (min, max) = bounds.into_inner();
    let ttl = negative_ttl.map_or(min, |ttl| Duration::from_secs(ttl.into()).clamp(min, max));
    let ttl = ttl
        .checked_sub(Duration::from_secs(1))
        .filter(|ttl| !ttl.is_zero())?;
    Some(Answer {
        found,
        valid_until: Instant::now() + ttl,
    })
}

fn classify(name: &str, record_type: RecordType, error: NetError) -> LookupError {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => match no_records.response_code {
            ResponseCode::NXDomain => LookupError::NxDomain(name.to_string()),
            ResponseCode::NoError => {
                LookupError::NoRecords(name.to_string(), type_name(record_type))
            }
            code => LookupError::Temporary(name.to_string(), code.to_string()),
        },
        NetError::Timeout => LookupError::Temporary(name.to_string(), "timed out".into()),
        other => LookupError::Temporary(name.to_string(), other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authcheck_testdns::TestDns;

    #[tokio::test]
    async fn only_answers_of_modest_size_are_kept_in_front_of_the_resolver() {
        let server = TestDns::start().await;
        server.add_txt("Small.Test", "v=spf1 -all");
        let large = format!("v=spf1 {}-all", "a ".repeat(MAX_KEPT_ANSWER_BYTES));
        server.add_txt("large.test", &large);
        let dns = Dns::new(&DnsConfig {
            servers: vec![server.addr()],
            ..DnsConfig::default()
        })
        .unwrap();
        for name in ["small.test.", "SMALL.test", "large.test"] {
            assert!(dns.txt(name).await.is_ok(), "{name}");
        }
        dns.answers.run_pending_tasks();
        let kept = |name: &str| {
            dns.answers
                .contains_key(&(RecordType::TXT, Box::<str>::from(name)))
        };
        assert!(
            kept("small.test"),
            "one entry for every spelling of the name"
        );
        assert_eq!(dns.answers.entry_count(), 1);
        assert!(!kept("large.test"));
    }

    #[tokio::test]
    async fn negative_answers_are_kept_in_front_only_when_the_resolver_caches_them() {
        let without_soa = TestDns::start().await;
        let with_soa = TestDns::start().await;
        with_soa.cache_negative_answers(300);
        for server in [&without_soa, &with_soa] {
            server.add_a("exists.test", "192.0.2.1".parse().unwrap());
        }
        let kept_answers = |server: &TestDns| {
            let dns = Dns::new(&DnsConfig {
                servers: vec![server.addr()],
                ..DnsConfig::default()
            })
            .unwrap();
            async move {
                for _ in 0..2 {
                    let missing = dns.txt("missing.test").await;
                    assert!(
                        matches!(missing, Err(LookupError::NxDomain(ref name)) if name == "missing.test")
                    );
                    let no_txt = dns.txt("EXISTS.test").await;
                    assert!(
                        matches!(no_txt, Err(LookupError::NoRecords(ref name, "TXT")) if name == "EXISTS.test")
                    );
                }
                dns.answers.run_pending_tasks();
                dns.answers.entry_count()
            }
        };
        assert_eq!(kept_answers(&without_soa).await, 0);
        assert_eq!(
            without_soa.query_count(),
            4,
            "asked every time, as the resolver does"
        );
        assert_eq!(kept_answers(&with_soa).await, 2);
        assert_eq!(with_soa.query_count(), 2);
    }
}
