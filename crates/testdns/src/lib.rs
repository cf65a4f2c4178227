//! A real DNS server on loopback that answers from test zones.
//!
//! Tests and benchmarks point the verifier (or the whole service, through `--dns-server`) at
//! [`TestDns::addr`] and fill the zone with the records a scenario needs. The server speaks the
//! real protocol over UDP and TCP on the same port: an answer too large for UDP is sent truncated,
//! so the client retries over TCP exactly as it would against a production nameserver.
//!
//! Besides records, a name can be made to misbehave, which is what resolvers meet in the wild:
//! never answer ([`Behaviour::Timeout`]), answer `SERVFAIL`, or answer only after a delay.
//!
//! Semantics follow an authoritative server: a name that holds any record answers `NOERROR`
//! (with an empty answer when it has none of the asked type); a name that holds nothing answers
//! `NXDOMAIN`. Names are matched without regard to case. Negative answers carry no SOA record
//! unless [`TestDns::cache_negative_answers`] asks for one, so that by default every query
//! reaches the server, however the zone changes between them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// How a name answers, whatever type is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Never answer: the client times out.
    Timeout,
    /// Answer `SERVFAIL`.
    ServFail,
    /// Answer normally, after waiting this long.
    Delay(Duration),
}

#[derive(Default)]
struct Zone {
    records: HashMap<String, Vec<RData>>,
    behaviours: HashMap<String, Behaviour>,
    queries: u64,
    /// How many queries asked about each name (lowercase, without the final dot).
    queries_by_name: HashMap<String, u64>,
    /// When set, negative answers carry an SOA record with this TTL and minimum.
    negative_ttl: Option<u32>,
    /// The TTL of every answer record, when not [`TTL`].
    record_ttl: Option<u32>,
}

/// A running DNS server; it stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    zone: Arc<RwLock<Zone>>,
    tasks: Vec<JoinHandle<()>>,
}

const TTL: u32 = 300;
/// The largest UDP answer sent without EDNS (RFC 1035 §4.2.1).
const UDP_LIMIT: usize = 512;

fn key(name: &str) -> String {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() { ".".into() } else { name }
}

fn parse_name(name: &str) -> Name {
    // Test zones may hold names with any visible ASCII (RFC 7208 allows `foo:bar/baz.example.com`).
    let trimmed = name.trim_end_matches('.');
    let mut name = Name::from_str_relaxed(name)
        .or_else(|e| {
            if trimmed.is_ascii() && !trimmed.is_empty() {
                Name::from_labels(trimmed.split('.').map(str::as_bytes))
            } else {
                Err(e)
            }
        })
        .unwrap_or_else(|e| panic!("bad test name {name:?}: {e}"));
    name.set_fqdn(true);
    name
}

/// The name's labels as they are on the wire, joined by dots (no presentation escapes).
fn raw_labels(name: &Name) -> String {
    name.iter()
        .map(|label| String::from_utf8_lossy(label).into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

impl TestDns {
    /// Starts a server on `127.0.0.1` on a free port, with an empty zone.
    pub async fn start() -> TestDns {
        // UDP and TCP must share the port; retry if another process takes the TCP side first.
        for _ in 0..20 {
            let udp = UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind UDP on loopback");
            let addr = udp.local_addr().expect("local addr");
            let Ok(tcp) = TcpListener::bind(addr).await else {
                continue;
            };
            let zone = Arc::new(RwLock::new(Zone::default()));
            let tasks = vec![
                tokio::spawn(serve_udp(Arc::new(udp), zone.clone())),
                tokio::spawn(serve_tcp(tcp, zone.clone())),
            ];
            return TestDns { addr, zone, tasks };
        }
        panic!("could not bind UDP and TCP on one loopback port");
    }

    /// Where the server listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many queries the server has received.
    pub fn query_count(&self) -> u64 {
        self.zone.read().unwrap().queries
    }

    /// How many queries asked about `name` (any type).
    pub fn query_count_for(&self, name: &str) -> u64 {
        let zone = self.zone.read().unwrap();
        zone.queries_by_name.get(&key(name)).copied().unwrap_or(0)
    }

    fn add(&self, name: &str, data: RData) {
        self.zone
            .write()
            .unwrap()
            .records
            .entry(key(name))
            .or_default()
            .push(data);
    }

    /// Adds a TXT record holding one string (split into 255-byte strings when longer).
    pub fn add_txt(&self, name: &str, value: &str) {
        let chunks: Vec<&[u8]> = value.as_bytes().chunks(255).collect();
        let chunks = if chunks.is_empty() {
            vec![&b""[..]]
        } else {
            chunks
        };
        self.add(name, RData::TXT(TXT::from_bytes(chunks)));
    }

    /// Adds a TXT record made of these character strings, raw bytes allowed.
    pub fn add_txt_strings(&self, name: &str, strings: &[&[u8]]) {
        self.add(name, RData::TXT(TXT::from_bytes(strings.to_vec())));
    }

    pub fn add_a(&self, name: &str, ip: Ipv4Addr) {
        self.add(name, RData::A(A(ip)));
    }

    pub fn add_aaaa(&self, name: &str, ip: Ipv6Addr) {
        self.add(name, RData::AAAA(AAAA(ip)));
    }

    pub fn add_mx(&self, name: &str, preference: u16, exchange: &str) {
        self.add(name, RData::MX(MX::new(preference, parse_name(exchange))));
    }

    /// Adds a PTR record for `ip` pointing at `target`.
    pub fn add_ptr(&self, ip: IpAddr, target: &str) {
        // hickory's name under in-addr.arpa or ip6.arpa, as the verifier asks for it.
        self.add(
            &Name::from(ip).to_ascii(),
            RData::PTR(PTR(parse_name(target))),
        );
    }

    pub fn add_cname(&self, name: &str, target: &str) {
        self.add(name, RData::CNAME(CNAME(parse_name(target))));
    }

    /// Makes `name` exist with no records of any type (answers `NOERROR` with no data).
    pub fn add_empty(&self, name: &str) {
        self.zone
            .write()
            .unwrap()
            .records
            .entry(key(name))
            .or_default();
    }

    /// Makes every query for `name` behave this way.
    pub fn set_behaviour(&self, name: &str, behaviour: Behaviour) {
        self.zone
            .write()
            .unwrap()
            .behaviours
            .insert(key(name), behaviour);
    }

    /// Makes negative answers (`NXDOMAIN`, and `NOERROR` without the asked type) carry an SOA
    /// record with this TTL and minimum, as a production nameserver's do (RFC 2308), so that
    /// resolvers cache them like positive answers.
    pub fn cache_negative_answers(&self, ttl: u32) {
        self.zone.write().unwrap().negative_ttl = Some(ttl);
    }

    /// Gives every answer record this TTL instead of 300 seconds.
    pub fn set_record_ttl(&self, ttl: u32) {
        self.zone.write().unwrap().record_ttl = Some(ttl);
    }

    /// Removes every record and behaviour.
    pub fn clear(&self) {
        let mut zone = self.zone.write().unwrap();
        zone.records.clear();
        zone.behaviours.clear();
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What to do with one query.
enum Reply {
    Send(Message),
    Silence,
}

fn answer(zone: &RwLock<Zone>, request: &Message) -> (Reply, Option<Duration>) {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.message_type = MessageType::Response;
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_queries(request.queries.clone());

    let mut zone = zone.write().unwrap();
    zone.queries += 1;
    let Some(query) = request.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return (Reply::Send(response), None);
    };
    let mut name = key(&raw_labels(query.name()));
    *zone.queries_by_name.entry(name.clone()).or_default() += 1;
    let query_type = query.query_type();
    let mut delay = None;
    // Follow CNAMEs inside the zone, a few steps at most.
    for _ in 0..8 {
        match zone.behaviours.get(&name) {
            Some(Behaviour::Timeout) => return (Reply::Silence, None),
            Some(Behaviour::ServFail) => {
                response.metadata.response_code = ResponseCode::ServFail;
                return (Reply::Send(response), delay);
            }
            Some(Behaviour::Delay(d)) => delay = Some(delay.unwrap_or_default() + *d),
            None => {}
        }
        let Some(records) = zone.records.get(&name) else {
            if response.answers.is_empty() {
                response.metadata.response_code = ResponseCode::NXDomain;
                add_negative_soa(&mut response, &name, zone.negative_ttl);
            }
            return (Reply::Send(response), delay);
        };
        let owner = parse_name(&name);
        let cname = records.iter().find_map(|r| match r {
            RData::CNAME(target) if query_type != RecordType::CNAME => Some(target.0.clone()),
            _ => None,
        });
        if let Some(target) = cname {
            response.add_answer(Record::from_rdata(
                owner,
                TTL,
                RData::CNAME(CNAME(target.clone())),
            ));
            name = key(&raw_labels(&target));
            continue;
        }
        for data in records
            .iter()
            .filter(|r| r.record_type() == query_type || query_type == RecordType::ANY)
        {
            let ttl = zone.record_ttl.unwrap_or(TTL);
            response.add_answer(Record::from_rdata(owner.clone(), ttl, data.clone()));
        }
        if response.answers.is_empty() {
            add_negative_soa(&mut response, &name, zone.negative_ttl);
        }
        return (Reply::Send(response), delay);
    }
    response.metadata.response_code = ResponseCode::ServFail;
    (Reply::Send(response), delay)
}

/// The SOA of a negative answer for `name` (with the last two labels of `name` as the zone),
/// when the zone caches negative answers.
fn add_negative_soa(response: &mut Message, name: &str, negative_ttl: Option<u32>) {
    let Some(ttl) = negative_ttl else { return };
    let labels: Vec<&str> = name.split('.').collect();
    let apex = parse_name(&labels[labels.len().saturating_sub(2)..].join("."));
    let soa = SOA::new(
        parse_name("ns.test"),
        parse_name("hostmaster.test"),
        1,
        3600,
        600,
        86400,
        ttl,
    );
    response.add_authority(Record::from_rdata(apex, ttl, RData::SOA(soa)));
}

async fn serve_udp(socket: Arc<UdpSocket>, zone: Arc<RwLock<Zone>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(request) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let limit = request
            .edns
            .as_ref()
            .map(|e| e.max_payload() as usize)
            .unwrap_or(UDP_LIMIT)
            .max(UDP_LIMIT);
        let (reply, delay) = answer(&zone, &request);
        let Reply::Send(mut response) = reply else {
            continue;
        };
        let socket = socket.clone();
        tokio::spawn(async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            if let Some(edns) = request.edns.clone() {
                response.set_edns(edns);
            }
            let Ok(mut bytes) = response.to_vec() else {
                return;
            };
            if bytes.len() > limit {
                let mut truncated = response.truncate();
                truncated.metadata.truncation = true;
                let Ok(t) = truncated.to_vec() else { return };
                bytes = t;
            }
            let _ = socket.send_to(&bytes, peer).await;
        });
    }
}

async fn serve_tcp(listener: TcpListener, zone: Arc<RwLock<Zone>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_tcp_connection(stream, zone.clone()));
    }
}

async fn serve_tcp_connection(mut stream: TcpStream, zone: Arc<RwLock<Zone>>) {
    loop {
        let Ok(len) = stream.read_u16().await else {
            return;
        };
        let mut buf = vec![0u8; len as usize];
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        let Ok(request) = Message::from_vec(&buf) else {
            return;
        };
        let (reply, delay) = answer(&zone, &request);
        let Reply::Send(response) = reply else {
            continue;
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let Ok(bytes) = response.to_vec() else { return };
        if stream.write_u16(bytes.len() as u16).await.is_err()
            || stream.write_all(&bytes).await.is_err()
        {
            return;
        }
    }
}
