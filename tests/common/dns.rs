//! A DNS server inside the test process, for `outside = "mx"`: it answers MX, A and AAAA
//! queries over UDP on 127.0.0.1 from a table the test fills, and can answer NXDOMAIN or
//! SERVFAIL for a name. Built on hickory-proto's message types (re-exported by
//! hickory-resolver, which the relay already depends on), so it costs no extra crate and
//! the test decides the response code for every name — which hickory-server's
//! authorities do not make easy for SERVFAIL.

use std::collections::HashMap;
use std::net::{IpAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread;

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

/// What the server knows about one name.
#[derive(Debug, Clone, Default)]
struct Node {
    mx: Vec<(u16, String)>,
    addrs: Vec<IpAddr>,
    /// Answer every query for this name with this code instead.
    rcode: Option<ResponseCode>,
}

/// The running server. Names it has no entry for are NXDOMAIN.
pub struct FakeDns {
    pub port: u16,
    zone: Arc<Mutex<HashMap<String, Node>>>,
    /// Every query received, as (name, type).
    pub queries: Arc<Mutex<Vec<(String, String)>>>,
}

impl FakeDns {
    /// Starts on 127.0.0.1 on a free UDP port.
    pub fn start() -> FakeDns {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let zone: Arc<Mutex<HashMap<String, Node>>> = Arc::default();
        let queries: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let (z, q) = (zone.clone(), queries.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    return;
                };
                if let Some(reply) = answer(&buf[..n], &z, &q) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        FakeDns {
            port,
            zone,
            queries,
        }
    }

    /// `deliver.resolver` for this server.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn node(&self, name: &str, f: impl FnOnce(&mut Node)) {
        let mut zone = self.zone.lock().unwrap();
        f(zone.entry(name.to_ascii_lowercase()).or_default());
    }

    /// Adds `domain. MX pref exchange.` (`exchange` "." is a null MX).
    pub fn mx(&self, domain: &str, pref: u16, exchange: &str) -> &FakeDns {
        self.node(domain, |n| n.mx.push((pref, exchange.to_string())));
        self
    }

    /// Adds an A or AAAA record for `host`.
    pub fn addr(&self, host: &str, ip: &str) -> &FakeDns {
        let ip: IpAddr = ip.parse().unwrap();
        self.node(host, |n| n.addrs.push(ip));
        self
    }

    /// Answers every query for `name` with SERVFAIL.
    pub fn servfail(&self, name: &str) -> &FakeDns {
        self.node(name, |n| n.rcode = Some(ResponseCode::ServFail));
        self
    }

    /// How many queries of `kind` ("MX", "A", "AAAA") asked for `name`.
    pub fn asked(&self, name: &str, kind: &str) -> usize {
        let want = format!("{}.", name.to_ascii_lowercase());
        self.queries
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, k)| *n == want && k == kind)
            .count()
    }
}

fn answer(
    packet: &[u8],
    zone: &Mutex<HashMap<String, Node>>,
    queries: &Mutex<Vec<(String, String)>>,
) -> Option<Vec<u8>> {
    let request = Message::from_vec(packet).ok()?;
    let query = request.queries.first()?.clone();
    let name = query.name().to_ascii().to_ascii_lowercase();
    let kind = query.query_type();
    queries
        .lock()
        .unwrap()
        .push((name.clone(), kind.to_string()));
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(query.clone());
    let zone = zone.lock().unwrap();
    let Some(node) = zone.get(name.trim_end_matches('.')) else {
        reply.metadata.response_code = ResponseCode::NXDomain;
        return reply.to_vec().ok();
    };
    if let Some(code) = node.rcode {
        reply.metadata.response_code = code;
        return reply.to_vec().ok();
    }
    reply.metadata.authoritative = true;
    let owner = query.name().clone();
    let records: Vec<Record> = match kind {
        RecordType::MX => node
            .mx
            .iter()
            .map(|(pref, exchange)| {
                let exchange = if exchange == "." {
                    Name::root()
                } else {
                    Name::from_ascii(format!("{exchange}.")).unwrap()
                };
                Record::from_rdata(owner.clone(), 60, RData::MX(MX::new(*pref, exchange)))
            })
            .collect(),
        RecordType::A | RecordType::AAAA => node
            .addrs
            .iter()
            .filter_map(|ip| match (kind, ip) {
                (RecordType::A, IpAddr::V4(v4)) => Some(RData::A(A(*v4))),
                (RecordType::AAAA, IpAddr::V6(v6)) => Some(RData::AAAA(AAAA(*v6))),
                _ => None,
            })
            .map(|data| Record::from_rdata(owner.clone(), 60, data))
            .collect(),
        _ => Vec::new(),
    };
    reply.add_answers(records);
    reply.to_vec().ok()
}
