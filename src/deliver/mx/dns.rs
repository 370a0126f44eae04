//! The DNS lookups of direct delivery, through hickory-resolver: MX for a domain, A and
//! AAAA for a host, each turned into the typed answers of [`order`](super::order). The
//! resolver is the system's (`/etc/resolv.conf`) or `deliver.resolver`, over UDP with TCP
//! when an answer comes back truncated.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use super::order::{self, AddrAnswer, MxAnswer};

/// Limit for one query to the DNS server (then it is asked again, [`ATTEMPTS`] in all).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: usize = 2;

/// A resolver for `mx` delivery.
pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// A resolver asking `server`, or the system's configured servers when `None`.
    pub fn new(server: Option<SocketAddr>) -> Result<Dns, String> {
        let mut builder = match server {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, Vec::new(), vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = QUERY_TIMEOUT;
        opts.attempts = ATTEMPTS;
        // MX delivery asks the DNS only, like Postfix's smtp_host_lookup = dns.
        opts.use_hosts_file = ResolveHosts::Never;
        let resolver = builder
            .build()
            .map_err(|e| format!("cannot set up the DNS resolver: {e}"))?;
        Ok(Dns { resolver })
    }

    /// The MX records of `domain`.
    pub async fn mx(&self, domain: &str) -> MxAnswer {
        match self.resolver.mx_lookup(fqdn(domain)).await {
            Ok(lookup) => {
                let records: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, host_name(&mx.exchange.to_ascii()))),
                        _ => None,
                    })
                    .collect();
                if records.is_empty() {
                    MxAnswer::NoRecords
                } else {
                    MxAnswer::Records(records)
                }
            }
            Err(e) => match negative(&e) {
                Some(Negative::NoSuchName) => MxAnswer::NoSuchDomain,
                Some(Negative::NoData) => MxAnswer::NoRecords,
                None => MxAnswer::Failed(e.to_string()),
            },
        }
    }

    /// The A and AAAA addresses of `host`, asked at the same time.
    pub async fn addresses(&self, host: &str) -> AddrAnswer {
        let name = fqdn(host);
        let (v4, v6) = tokio::join!(
            self.resolver.ipv4_lookup(name.as_str()),
            self.resolver.ipv6_lookup(name.as_str())
        );
        let mut failure = None;
        let mut take = |r: Result<hickory_resolver::lookup::Lookup, NetError>| -> Vec<IpAddr> {
            match r {
                Ok(lookup) => lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    })
                    .collect(),
                Err(e) => {
                    if negative(&e).is_none() {
                        failure = Some(e.to_string());
                    }
                    Vec::new()
                }
            }
        };
        let (v4, v6) = (take(v4), take(v6));
        let found = order::addresses(v4, v6);
        match (found.is_empty(), failure) {
            (false, _) => AddrAnswer::Found(found),
            (true, Some(why)) => AddrAnswer::Failed(why),
            (true, None) => AddrAnswer::NoAddress,
        }
    }
}

/// The resolver for the current `deliver.resolver`, made again when a reload changes it.
#[derive(Default)]
pub struct DnsCache {
    current: Mutex<Option<(Option<SocketAddr>, Arc<Dns>)>>,
}

impl DnsCache {
    /// The resolver for `server` (see [`Dns::new`]).
    pub fn get(&self, server: Option<SocketAddr>) -> Result<Arc<Dns>, String> {
        // Holds a plain value; a panic elsewhere cannot leave it half-written.
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((for_server, dns)) = current.as_ref() {
            if *for_server == server {
                return Ok(dns.clone());
            }
        }
        let dns = Arc::new(Dns::new(server)?);
        *current = Some((server, dns.clone()));
        Ok(dns)
    }
}

/// A definite "no" from the DNS, as opposed to a failure to get an answer.
enum Negative {
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
    /// NOERROR with no record of the asked type.
    NoData,
}

fn negative(e: &NetError) -> Option<Negative> {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NXDomain => Some(Negative::NoSuchName),
            ResponseCode::NoError => Some(Negative::NoData),
            _ => None,
        },
        _ => None,
    }
}

/// `name.`: absolute, so no search domain of resolv.conf is ever appended.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// A DNS name as a host name: no trailing dot (the root becomes `""`).
fn host_name(ascii: &str) -> String {
    ascii
        .strip_suffix('.')
        .unwrap_or(ascii)
        .to_ascii_lowercase()
}
