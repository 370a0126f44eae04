//! The pure part of direct delivery (RFC 5321 §5.1, RFC 7505): from what DNS answered to
//! the hosts to try, in order, or the one outcome every recipient of the domain gets. No
//! I/O and no clock; the randomness among equal preferences comes in as a seed.

use std::net::IpAddr;

use crate::deliver::Outcome;

/// What the MX query for a domain answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// MX records as (preference, exchange); the exchange has no trailing dot, so the
    /// root name `.` of a null MX is `""`.
    Records(Vec<(u16, String)>),
    /// The domain exists but has no MX record (NOERROR, empty answer).
    NoRecords,
    /// The domain does not exist (NXDOMAIN).
    NoSuchDomain,
    /// SERVFAIL, a timeout, a refusal: try again later.
    Failed(String),
}

/// What the A and AAAA queries for one host answered, together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrAnswer {
    /// At least one address, IPv4 first.
    Found(Vec<IpAddr>),
    /// Neither an A nor an AAAA record.
    NoAddress,
    /// A lookup failed and none gave an address.
    Failed(String),
}

/// Where the mail for one domain goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Try these hosts in this order. `implicit`: there was no MX record and the one host
    /// is the domain itself (RFC 5321 §5.1).
    Hosts { hosts: Vec<String>, implicit: bool },
    /// Nothing to try: every recipient of the domain gets this.
    Settled(Outcome),
}

/// The plan for `domain` given its MX answer; `seed` orders hosts of equal preference.
pub fn plan(domain: &str, answer: MxAnswer, seed: u64) -> Plan {
    match answer {
        MxAnswer::Records(records) => by_preference(domain, records, seed),
        MxAnswer::NoRecords => Plan::Hosts {
            hosts: vec![domain.to_string()],
            implicit: true,
        },
        MxAnswer::NoSuchDomain => Plan::Settled(Outcome::Failed(format!(
            "5.1.2 the domain {domain} does not exist (NXDOMAIN)"
        ))),
        MxAnswer::Failed(why) => {
            Plan::Settled(Outcome::Deferred(format!("MX lookup for {domain}: {why}")))
        }
    }
}

/// RFC 7505: a lone MX record naming the root (`0 .`) says the domain takes no mail. A
/// root exchange next to real ones is a misconfiguration; it is skipped, the others are
/// used. Otherwise lowest preference first, shuffled among equals (RFC 5321 §5.1).
fn by_preference(domain: &str, mut records: Vec<(u16, String)>, seed: u64) -> Plan {
    if let [(_, exchange)] = records.as_slice() {
        if exchange.is_empty() {
            return Plan::Settled(Outcome::Failed(format!(
                "5.1.10 {domain} accepts no mail: it publishes a null MX (RFC 7505)"
            )));
        }
    }
    records.retain(|(_, exchange)| !exchange.is_empty());
    let mut rng = SplitMix::new(seed);
    // Shuffle first, then a stable sort: equal preferences keep their random order.
    for i in (1..records.len()).rev() {
        records.swap(i, rng.below(i + 1));
    }
    records.sort_by_key(|(pref, _)| *pref);
    let mut hosts: Vec<String> = Vec::with_capacity(records.len());
    for (_, exchange) in records {
        let exchange = exchange.to_ascii_lowercase();
        if !hosts.contains(&exchange) {
            hosts.push(exchange);
        }
    }
    Plan::Hosts {
        hosts,
        implicit: false,
    }
}

/// The outcome for a host without an address. The domain itself without one (no MX,
/// no A, no AAAA) can never take mail: permanent. An MX host without one may be a DNS
/// change under way: the next host is tried, and in the end it is temporary.
pub fn no_address(host: &str, implicit: bool) -> Outcome {
    if implicit {
        Outcome::Failed(format!(
            "5.1.2 {host} has no MX record and no address (A/AAAA)"
        ))
    } else {
        Outcome::Deferred(format!("MX host {host} has no address (A/AAAA)"))
    }
}

/// IPv4 first, then IPv6 (each in the order DNS gave), duplicates dropped. IPv4 first
/// because every MX takes it, while a machine with IPv6 addresses may still have no
/// working IPv6 route (then each IPv6 try would cost a connect timeout first).
pub fn addresses(v4: Vec<IpAddr>, v6: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::with_capacity(v4.len() + v6.len());
    for ip in v4.into_iter().chain(v6) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// A tiny deterministic generator (splitmix64): enough to spread load over equal MX
/// hosts, and well mixed even for neighbouring seeds.
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn mx(records: &[(u16, &str)]) -> MxAnswer {
        MxAnswer::Records(records.iter().map(|(p, h)| (*p, h.to_string())).collect())
    }

    fn hosts(p: Plan) -> Vec<String> {
        match p {
            Plan::Hosts { hosts, .. } => hosts,
            other => panic!("not hosts: {other:?}"),
        }
    }

    fn failed_status(p: Plan) -> String {
        match p {
            Plan::Settled(Outcome::Failed(why)) => crate::deliver::dsn::status(&why),
            other => panic!("not a permanent failure: {other:?}"),
        }
    }

    #[test]
    fn rfc5321_lowest_preference_first() {
        let answer = mx(&[
            (20, "b.shop.example"),
            (5, "A.shop.example"),
            (10, "c.shop.example"),
        ]);
        for seed in 0..20 {
            assert_eq!(
                hosts(plan("shop.example", answer.clone(), seed)),
                ["a.shop.example", "c.shop.example", "b.shop.example"]
            );
        }
    }

    #[test]
    fn rfc5321_random_among_equal_preferences() {
        let answer = mx(&[(10, "x"), (10, "y"), (10, "z"), (20, "last")]);
        let mut firsts = HashSet::new();
        for seed in 0..64 {
            let h = hosts(plan("d", answer.clone(), seed));
            assert_eq!(h.len(), 4);
            assert_eq!(h[3], "last", "seed {seed}");
            firsts.insert(h[0].clone());
        }
        assert_eq!(firsts.len(), 3, "every equal host comes first sometimes");
    }

    #[test]
    fn rfc5321_implicit_mx_is_the_domain() {
        assert_eq!(
            plan("shop.example", MxAnswer::NoRecords, 1),
            Plan::Hosts {
                hosts: vec!["shop.example".into()],
                implicit: true
            }
        );
        assert!(matches!(
            no_address("shop.example", true),
            Outcome::Failed(_)
        ));
        assert!(matches!(
            no_address("mx.shop.example", false),
            Outcome::Deferred(_)
        ));
    }

    #[test]
    fn rfc7505_null_mx_is_permanent_5_1_10() {
        assert_eq!(
            failed_status(plan("shop.example", mx(&[(0, "")]), 1)),
            "5.1.10"
        );
        // A root exchange among real ones is ignored, not obeyed.
        assert_eq!(
            hosts(plan(
                "shop.example",
                mx(&[(0, ""), (10, "mx.shop.example")]),
                1
            )),
            ["mx.shop.example"]
        );
    }

    #[test]
    fn nxdomain_is_permanent_5_1_2_and_servfail_temporary() {
        assert_eq!(
            failed_status(plan("nowhere.example", MxAnswer::NoSuchDomain, 1)),
            "5.1.2"
        );
        assert!(matches!(
            plan("shop.example", MxAnswer::Failed("SERVFAIL".into()), 1),
            Plan::Settled(Outcome::Deferred(_))
        ));
    }

    #[test]
    fn ipv4_before_ipv6_without_duplicates() {
        let v4: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "192.0.2.1".parse().unwrap()];
        let v6: Vec<IpAddr> = vec!["2001:db8::1".parse().unwrap()];
        assert_eq!(
            addresses(v4, v6),
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
    }
}
