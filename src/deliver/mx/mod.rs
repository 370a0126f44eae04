//! Direct delivery, `deliver.outside = "mx"` (SPEC §6, RFC 5321 §5.1): the recipients of
//! one domain go in one transaction to the first of its MX hosts that answers — hosts by
//! preference (random among equal ones), each host's IPv4 then IPv6 addresses in turn, on
//! port [`SMTP_PORT`], STARTTLS when offered. A host that cannot be reached, greets with
//! anything but 220, or defers recipients hands those recipients to the next address; a
//! delivery or a permanent refusal is final. The order is decided in [`order`] (pure);
//! this module is the thin async shell around it.

mod dns;
pub mod order;

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};

use tracing::info;

pub use dns::DnsCache;

use super::client::{self, Job};
use super::connection;
use super::pool::Pool;
use super::Outcome;
use order::{AddrAnswer, Plan};

/// The SMTP port MX hosts listen on (RFC 5321 §4.5.4.2 relies on it; there is no
/// per-domain port in DNS).
pub const SMTP_PORT: u16 = 25;

/// The MX host and address a recipient's try went to: logged on its `delivered` and
/// `deferred` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub host: String,
    pub ip: IpAddr,
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.host, self.ip)
    }
}

/// Per recipient: the outcome, and the hop that gave it (none when DNS alone decided).
pub type HopResults = Vec<(String, Outcome, Option<Hop>)>;

/// Delivers `job` (recipients all in `domain`) to the domain's MX hosts.
pub async fn deliver(
    dns: &dns::Dns,
    pool: &Pool,
    id: &str,
    domain: &str,
    job: &Job<'_>,
) -> HopResults {
    let (hosts, implicit) = match order::plan(domain, dns.mx(domain).await, seed()) {
        Plan::Settled(outcome) => return settle(&job.rcpts, &outcome, None),
        Plan::Hosts { hosts, implicit } => (hosts, implicit),
    };
    let mut done: HopResults = Vec::new();
    // Recipients not yet settled, each with why it is not (so far).
    let mut open: HopResults = settle(
        &job.rcpts,
        &Outcome::Deferred(format!("no MX host of {domain} could be tried")),
        None,
    );
    for host in &hosts {
        let addrs = match host_addresses(dns, host, implicit).await {
            Ok(addrs) => addrs,
            Err(outcome @ Outcome::Failed(_)) => {
                done.extend(settle(&pending(&open), &outcome, None));
                return done;
            }
            Err(outcome) => {
                open = settle(&pending(&open), &outcome, None);
                continue;
            }
        };
        for ip in addrs {
            let hop = Hop {
                host: host.clone(),
                ip,
            };
            let sub = Job {
                rcpts: pending(&open),
                ..job.clone()
            };
            let (settled, deferred) = attempt(pool, id, domain, &hop, &sub).await;
            done.extend(settled);
            open = deferred;
            if open.is_empty() {
                return done;
            }
        }
    }
    done.extend(open);
    done
}

/// The addresses to try for `host`, or the outcome for the recipients still open when
/// it has none (permanent only for an implicit MX, see [`order::no_address`]).
async fn host_addresses(
    dns: &dns::Dns,
    host: &str,
    implicit: bool,
) -> Result<Vec<IpAddr>, Outcome> {
    match dns.addresses(host).await {
        AddrAnswer::Found(addrs) => Ok(addrs),
        AddrAnswer::NoAddress => Err(order::no_address(host, implicit)),
        AddrAnswer::Failed(why) => Err(Outcome::Deferred(format!(
            "address lookup for {host}: {why}"
        ))),
    }
}

/// One try at one address: (settled, still deferred) recipients, each with this hop.
async fn attempt(
    pool: &Pool,
    id: &str,
    domain: &str,
    hop: &Hop,
    job: &Job<'_>,
) -> (HopResults, HopResults) {
    match try_hop(pool, hop, job).await {
        Err(why) => {
            info!(id = %id, domain = %domain, mx = %hop.host, ip = %hop.ip, error = %why, "mx host not usable; trying the next");
            (
                Vec::new(),
                settle(&job.rcpts, &Outcome::Deferred(why), Some(hop)),
            )
        }
        Ok(results) => results
            .into_iter()
            .map(|(r, o)| (r, o, Some(hop.clone())))
            .partition(|(_, o, _)| !matches!(o, Outcome::Deferred(_))),
    }
}

/// One address: a pooled or new connection, then the transaction. `Err`: no connection
/// could be had; the reason.
async fn try_hop(pool: &Pool, hop: &Hop, job: &Job<'_>) -> Result<client::Results, String> {
    let key = format!("mx {} {}", hop.host, hop.ip);
    let addr = SocketAddr::new(hop.ip, SMTP_PORT);
    let open = || connection::open_mx(addr, &hop.host, job.hostname, job.timeout);
    client::deliver_via(pool, &key, open, job)
        .await
        .map_err(|o| match o {
            Outcome::Deferred(why) | Outcome::Failed(why) => why,
            Outcome::Delivered(_) => "connection not usable".to_string(),
        })
}

fn settle(rcpts: &[String], outcome: &Outcome, hop: Option<&Hop>) -> HopResults {
    rcpts
        .iter()
        .map(|r| (r.clone(), outcome.clone(), hop.cloned()))
        .collect()
}

fn pending(open: &HopResults) -> Vec<String> {
    open.iter().map(|(r, _, _)| r.clone()).collect()
}

/// A fresh random seed for the order among equal preferences: std's per-process random
/// hash keys, advanced on every call.
fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}
