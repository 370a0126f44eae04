//! Delivery URLs (`smtp://`, `lmtp+unix://`, `maildir://` ..., and `mx`), the DNS server
//! for `mx`, and client networks (CIDR).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// How a network route protects the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetTls {
    /// `smtp://`: STARTTLS when offered, certificate not checked (Postfix's `may`).
    Opportunistic,
    /// `smtp+starttls://`: STARTTLS required, certificate verified.
    StartTls,
    /// `smtps://`: TLS from the first byte, certificate verified.
    Implicit,
    /// LMTP over TCP: plain (LMTP is for a trusted local hop).
    None,
}

/// Where one delivery route sends mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// SMTP to `host:port`.
    Smtp {
        host: String,
        port: u16,
        tls: TargetTls,
    },
    /// LMTP over TCP.
    Lmtp { host: String, port: u16 },
    /// LMTP over a Unix socket.
    LmtpUnix(PathBuf),
    /// Maildir tree: `DIR/domain/local/{tmp,new,cur}`.
    Maildir(PathBuf),
    /// `mx`: direct delivery to each recipient domain's MX hosts on port 25 (SPEC §6).
    Mx,
}

impl Target {
    /// Parses a delivery URL; relative paths are resolved against `base`.
    pub fn parse(url: &str, base: &Path) -> Result<Target, String> {
        if url == "mx" {
            return Ok(Target::Mx);
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not a delivery URL like \"smtp://host:port\""))?;
        let host_port = |rest: &str| -> Result<(String, u16), String> {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| format!("{url:?} needs a port (host:port)"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port
                .trim_end_matches('/')
                .parse()
                .map_err(|_| format!("{url:?} has a bad port"))?;
            if host.is_empty() {
                return Err(format!("{url:?} needs a host"));
            }
            Ok((host.to_string(), port))
        };
        let path = |rest: &str| -> Result<PathBuf, String> {
            if rest.is_empty() {
                return Err(format!("{url:?} needs a path"));
            }
            Ok(base.join(rest).components().collect())
        };
        match scheme {
            "smtp" | "smtp+starttls" | "smtps" => {
                let (host, port) = host_port(rest)?;
                let tls = match scheme {
                    "smtp" => TargetTls::Opportunistic,
                    "smtp+starttls" => TargetTls::StartTls,
                    _ => TargetTls::Implicit,
                };
                Ok(Target::Smtp { host, port, tls })
            }
            "lmtp" => {
                let (host, port) = host_port(rest)?;
                Ok(Target::Lmtp { host, port })
            }
            "lmtp+unix" => Ok(Target::LmtpUnix(path(rest)?)),
            "maildir" => Ok(Target::Maildir(path(rest)?)),
            _ => Err(format!(
                "{url:?}: unknown scheme {scheme:?}; use smtp, smtp+starttls, smtps, lmtp, \
                 lmtp+unix or maildir"
            )),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Smtp { host, port, tls } => {
                let scheme = match tls {
                    TargetTls::StartTls => "smtp+starttls",
                    TargetTls::Implicit => "smtps",
                    _ => "smtp",
                };
                write!(f, "{scheme}://{host}:{port}")
            }
            Target::Lmtp { host, port } => write!(f, "lmtp://{host}:{port}"),
            Target::LmtpUnix(p) => write!(f, "lmtp+unix://{}", p.display()),
            Target::Maildir(p) => write!(f, "maildir://{}", p.display()),
            Target::Mx => write!(f, "mx"),
        }
    }
}

/// Parses `deliver.resolver`: the DNS server `mx` delivery asks, as `IP:PORT` (an IPv6
/// server as `[IP]:PORT`). An address, not a name: the resolver cannot look itself up.
pub fn parse_resolver(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .map_err(|_| format!("{s:?} is not a DNS server like \"127.0.0.1:53\" (IP:PORT)"))
}

/// A client network: `127.0.0.0/8`, `::1/128`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ip/prefix` or a bare `ip`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = ip
            .parse()
            .map_err(|_| format!("{s:?} is not a network like \"127.0.0.0/8\""))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
        };
        Ok(Cidr { net, prefix })
    }

    /// Whether `ip` is inside this network (an IPv4-mapped IPv6 client counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        let base = Path::new("/etc/teamrelay");
        let cases = [
            (
                "smtp://127.0.0.1:2600",
                Target::Smtp {
                    host: "127.0.0.1".into(),
                    port: 2600,
                    tls: TargetTls::Opportunistic,
                },
            ),
            (
                "smtp+starttls://smtp.example.com:587",
                Target::Smtp {
                    host: "smtp.example.com".into(),
                    port: 587,
                    tls: TargetTls::StartTls,
                },
            ),
            (
                "smtps://[::1]:465",
                Target::Smtp {
                    host: "::1".into(),
                    port: 465,
                    tls: TargetTls::Implicit,
                },
            ),
            (
                "lmtp://127.0.0.1:24",
                Target::Lmtp {
                    host: "127.0.0.1".into(),
                    port: 24,
                },
            ),
            (
                "lmtp+unix:///run/dovecot/lmtp",
                Target::LmtpUnix("/run/dovecot/lmtp".into()),
            ),
            (
                "maildir://./mail",
                Target::Maildir("/etc/teamrelay/mail".into()),
            ),
            ("maildir:///var/mail", Target::Maildir("/var/mail".into())),
            ("mx", Target::Mx),
        ];
        for (url, want) in cases {
            assert_eq!(Target::parse(url, base), Ok(want), "{url}");
        }
    }

    #[test]
    fn refuses_bad_urls() {
        for bad in [
            "",
            "smtp",
            "smtp://host",
            "smtp://:25",
            "smtp://h:99999",
            "ftp://h:1",
            "maildir://",
        ] {
            assert!(Target::parse(bad, Path::new("/")).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolver_is_ip_and_port() {
        assert_eq!(
            parse_resolver("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert!(parse_resolver("[::1]:53").is_ok());
        for bad in ["", "127.0.0.1", "dns.example:53", "mx", "1.2.3.4:99999"] {
            assert!(parse_resolver(bad).is_err(), "{bad}");
        }
        assert_eq!(Target::Mx.to_string(), "mx");
    }

    #[test]
    fn cidr_contains() {
        let lo = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains("127.1.2.3".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("10.0.0.1".parse().unwrap()));
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        for bad in ["", "1.2.3.4/33", "::/129", "host/8", "1.2.3/8"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
