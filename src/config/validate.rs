//! From the file as written to a [`Config`] that is known to be valid. Every problem is
//! collected (not just the first), each with its line, so an administrator fixes a file
//! in one pass.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::checker::Checker;
use super::raw::*;
use super::*;
use crate::address::{Address, Pattern};

/// Parses and validates; see the module doc.
pub fn validate(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut c = checker_for(text, path);
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let line = e.span().map(|s| c.line_of(s.start));
            let message = e.message().trim().to_string();
            c.push(line, String::new(), message);
            return Err(ConfigErrors(c.errors));
        }
    };
    let server = check_server(&mut c, &raw.server);
    let team = check_team(&mut c, &raw.team);
    let lists = super::lists::check_lists(&mut c, &raw.list, &team);
    super::awareness::check_cover(&mut c, raw.team.get_ref(), &team.aware.cover, &lists);
    let memory = raw
        .memory
        .as_ref()
        .and_then(|m| super::awareness::check_memory(&mut c, m));
    let listen = check_listeners(&mut c, &raw.listen, raw.tls.is_some());
    let tls = raw.tls.as_ref().and_then(|t| check_tls(&mut c, t));
    let users = check_users(&mut c, &raw.user);
    let deliver = check_deliver(&mut c, &raw.deliver);
    let admin = raw
        .admin
        .as_ref()
        .and_then(|a| check_admin(&mut c, &a.listen));
    let history = raw
        .history
        .as_ref()
        .map(|h| super::history::check(&mut c, h, raw.tls.is_some()));
    if let Some(private) = &team.private_address {
        if lists.iter().any(|l| &l.address == private) {
            c.error_at(
                &raw.team,
                "team.private_address",
                "must not be a list address",
            );
        }
    }
    if !c.errors.is_empty() {
        c.errors.sort_by_key(|e| e.line.unwrap_or(0));
        return Err(ConfigErrors(c.errors));
    }
    let list_index = lists
        .iter()
        .enumerate()
        .map(|(i, l)| (l.address.clone(), i))
        .collect();
    Ok(Config {
        path: path.to_path_buf(),
        server,
        team,
        listen,
        tls,
        users,
        deliver,
        lists,
        admin,
        memory,
        history,
        list_index,
    })
}

/// A checker for `text`, read from `path`: relative paths in it are relative to the
/// file's directory.
fn checker_for<'a>(text: &'a str, path: &Path) -> Checker<'a> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Checker {
        file: path.display().to_string(),
        text,
        base: if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        },
        errors: Vec::new(),
    }
}

fn check_server(c: &mut Checker, raw: &RawServer) -> Server {
    let hostname = match &raw.hostname {
        Some(h) if h.get_ref().trim().is_empty() || h.get_ref().contains(char::is_whitespace) => {
            c.error_at(h, "server.hostname", "must be a host name without spaces");
            String::new()
        }
        Some(h) => h.get_ref().clone(),
        None => "localhost".to_string(),
    };
    let positive = |c: &mut Checker, v: &Option<Spanned<i64>>, key: &str, default: usize| match v {
        None => default,
        Some(n) if *n.get_ref() > 0 => *n.get_ref() as usize,
        Some(n) => {
            c.error_at(n, key, "must be a positive number");
            default
        }
    };
    Server {
        hostname,
        spool: c.path(
            raw.spool
                .as_ref()
                .map(|s| s.get_ref().as_str())
                .unwrap_or("./spool"),
        ),
        max_message_size: positive(
            c,
            &raw.max_message_size,
            "server.max_message_size",
            DEFAULT_MAX_MESSAGE_SIZE,
        ),
        max_recipients: positive(c, &raw.max_recipients, "server.max_recipients", 100),
        idle_timeout: c.duration(
            &raw.idle_timeout,
            "server.idle_timeout",
            Duration::from_secs(300),
        ),
        max_connections: positive(c, &raw.max_connections, "server.max_connections", 20_000),
        max_connections_per_ip: positive(
            c,
            &raw.max_connections_per_ip,
            "server.max_connections_per_ip",
            100,
        ),
    }
}

fn check_team(c: &mut Checker, raw: &Spanned<RawTeam>) -> Team {
    let t = raw.get_ref();
    if t.domains.is_empty() {
        c.error_at(raw, "team.domains", "name at least one domain");
    }
    let mut domains = Vec::new();
    for d in &t.domains {
        match Pattern::parse(&format!("*@{}", d.get_ref())) {
            Ok(Pattern::Domain(d)) => domains.push(d),
            _ => c.error_at(
                d,
                "team.domains",
                format!("{:?} is not a domain name", d.get_ref()),
            ),
        }
    }
    let in_team = |a: &Address| domains.iter().any(|d| d == a.domain());
    let private_address = t.private_address.as_ref().and_then(|s| {
        let a = c.address(s, "team.private_address", "address")?;
        if !in_team(&a) {
            c.error_at(
                s,
                "team.private_address",
                format!("{a} is not in team.domains"),
            );
        }
        Some(a)
    });
    let never_archive = check_patterns(c, &t.never_archive, "team.never_archive");
    let mailboxes = t
        .mailboxes
        .as_ref()
        .map(|m| check_patterns(c, m, "team.mailboxes"));
    let private_memory = c.duration(
        &t.private_memory,
        "team.private_memory",
        Duration::from_secs(90 * 86400),
    );
    let aware = super::awareness::check_team(c, t, &domains);
    Team {
        domains,
        private_address,
        never_archive,
        archive_bulk: t.archive_bulk,
        private_memory,
        mailboxes,
        aware,
    }
}

/// A list of addresses and `*@domain` patterns (`team.never_archive`, `team.mailboxes`).
fn check_patterns(c: &mut Checker, items: &[SpStr], key: &str) -> Vec<Pattern> {
    items
        .iter()
        .filter_map(|s| match Pattern::parse(s.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                c.error_at(
                    s,
                    key,
                    format!("{:?} is not an address or *@domain ({e})", s.get_ref()),
                );
                None
            }
        })
        .collect()
}

fn check_listeners(c: &mut Checker, raw: &[Spanned<RawListen>], has_tls: bool) -> Vec<Listener> {
    let mut out = Vec::new();
    for (n, item) in raw.iter().enumerate() {
        let r = item.get_ref();
        let key = format!("listen[{n}]");
        let address: Option<SocketAddr> = r.address.get_ref().parse().ok();
        if address.is_none() {
            c.error_at(
                &r.address,
                &key,
                format!("address {:?} is not ip:port", r.address.get_ref()),
            );
        }
        let mode = one_of(
            c,
            r.mode.as_ref(),
            &key,
            &[
                ("mx", Mode::Mx),
                ("submission", Mode::Submission),
                ("relay", Mode::Relay),
                ("tap", Mode::Tap),
            ],
            |w| format!("mode {w:?} is not one of mx, submission, relay, tap"),
        );
        let protocol = one_of(
            c,
            r.protocol.as_ref(),
            &key,
            &[("smtp", Protocol::Smtp), ("lmtp", Protocol::Lmtp)],
            |w| format!("protocol {w:?} is not smtp or lmtp"),
        );
        let tls = one_of(
            c,
            r.tls.as_ref(),
            &key,
            &[
                ("none", ListenTls::None),
                ("starttls", ListenTls::StartTls),
                ("implicit", ListenTls::Implicit),
            ],
            |w| format!("tls {w:?} is not none, starttls or implicit"),
        );
        if tls != ListenTls::None && !has_tls {
            c.error_at(
                item,
                &key,
                "uses TLS but there is no [tls] section with cert and key",
            );
        }
        if let Some(addr) = address {
            if mode == Mode::Submission && tls == ListenTls::None && !addr.ip().is_loopback() {
                c.error_at(item, &key, "a submission listener without TLS is only allowed on a loopback address (passwords would travel in clear)");
            }
        }
        let mut allow = Vec::new();
        for a in &r.allow {
            match Cidr::parse(a.get_ref()) {
                Ok(net) => allow.push(net),
                Err(e) => c.error_at(a, &key, format!("allow: {e}")),
            }
        }
        if !r.allow.is_empty() && !matches!(mode, Mode::Relay | Mode::Tap) {
            c.error_at(
                item,
                &key,
                "allow is only meaningful for relay and tap listeners",
            );
        }
        if let Some(address) = address {
            out.push(Listener {
                address,
                mode,
                protocol,
                tls,
                allow,
            });
        }
    }
    out
}

/// An optional key whose value is one of a few words: what the word means, the first
/// choice's meaning when the key is absent. Any other word is an error at the key,
/// worded by `refusal`.
pub(super) fn one_of<T: Copy>(
    c: &mut Checker,
    value: Option<&Spanned<String>>,
    key: &str,
    choices: &[(&str, T)],
    refusal: impl FnOnce(&str) -> String,
) -> T {
    let default = choices[0].1;
    let Some(value) = value else {
        return default;
    };
    match choices.iter().find(|(word, _)| word == value.get_ref()) {
        Some((_, meaning)) => *meaning,
        None => {
            c.error_at(value, key, refusal(value.get_ref()));
            default
        }
    }
}

fn check_tls(c: &mut Checker, raw: &Spanned<RawTls>) -> Option<TlsFiles> {
    let t = raw.get_ref();
    let (cert, key) = (c.path(t.cert.get_ref()), c.path(t.key.get_ref()));
    match super::tls::load_server_config(&cert, &key) {
        Ok(server) => {
            let certificate = super::tls::certificate_info(&cert).ok();
            Some(TlsFiles {
                cert,
                key,
                server,
                certificate,
            })
        }
        Err(e) => {
            let which = if e.starts_with(&key.display().to_string()) {
                &t.key
            } else {
                &t.cert
            };
            let name = if std::ptr::eq(which, &t.key) {
                "tls.key"
            } else {
                "tls.cert"
            };
            c.error_at(which, name, format!("cannot load: {e}"));
            None
        }
    }
}

fn check_users(c: &mut Checker, raw: &[Spanned<RawUser>]) -> Vec<User> {
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for item in raw {
        let r = item.get_ref();
        let key = format!("user {:?}", r.name.get_ref());
        if r.name.get_ref().is_empty() || !names.insert(r.name.get_ref().clone()) {
            c.error_at(&r.name, &key, "user names must be non-empty and unique");
        }
        if let Err(why) = super::tls::check_password_hash(r.password_hash.get_ref()) {
            c.error_at(
                &r.password_hash,
                &key,
                format!(
                    "password_hash is not a usable argon2 hash: {why} (run `teamrelay passwd`)"
                ),
            );
        }
        if r.addresses.is_empty() {
            c.error_at(
                item,
                &key,
                "addresses: name at least one address this user may send from",
            );
        }
        let addresses = r
            .addresses
            .iter()
            .filter_map(|a| c.address(a, &key, "address"))
            .collect();
        out.push(User {
            name: r.name.get_ref().clone(),
            password_hash: r.password_hash.get_ref().clone(),
            addresses,
        });
    }
    out
}

/// Why `deliver.team = "mx"` is refused: the team domains' MX records point at this relay.
const MX_FOR_TEAM: &str =
    "\"mx\" is only for deliver.outside (the team's own MX records point at this relay)";

fn check_deliver(c: &mut Checker, raw: &Spanned<RawDeliver>) -> Deliver {
    let d = raw.get_ref();
    let mut target = |s: &SpStr, key: &str| match Target::parse(s.get_ref(), &c.base) {
        Ok(t) => t,
        Err(e) => {
            c.error_at(s, key, e);
            Target::Maildir(PathBuf::new())
        }
    };
    let team = target(&d.team, "deliver.team");
    let outside = target(&d.outside, "deliver.outside");
    if team == Target::Mx {
        c.error_at(&d.team, "deliver.team", MX_FOR_TEAM);
    }
    let resolver = d.resolver.as_ref().and_then(|s| {
        super::parse_resolver(s.get_ref())
            .map_err(|e| c.error_at(s, "deliver.resolver", e))
            .ok()
    });
    let retry = check_retry(c, raw);
    let max_queue_time = c.duration(
        &d.max_queue_time,
        "deliver.max_queue_time",
        Duration::from_secs(5 * 86400),
    );
    let team_auth = check_route_auth(c, &d.team_auth, "deliver.team_auth");
    let outside_auth = check_route_auth(c, &d.outside_auth, "deliver.outside_auth");
    let timeout = c.duration(&d.timeout, "deliver.timeout", Duration::from_secs(120));
    Deliver {
        team,
        outside,
        resolver,
        retry,
        max_queue_time,
        timeout,
        team_auth,
        outside_auth,
    }
}

/// `deliver.retry`: the delays between tries (a default ladder when absent).
fn check_retry(c: &mut Checker, raw: &Spanned<RawDeliver>) -> Vec<Duration> {
    match &raw.get_ref().retry {
        None => ["1m", "5m", "15m", "30m", "1h"]
            .iter()
            .map(|s| parse_duration(s).unwrap_or_default())
            .collect(),
        Some(v) if v.is_empty() => {
            c.error_at(raw, "deliver.retry", "name at least one delay");
            vec![Duration::from_secs(60)]
        }
        Some(v) => v
            .iter()
            .map(|s| c.duration(&Some(s.clone()), "deliver.retry", Duration::from_secs(60)))
            .collect(),
    }
}

/// A route's credentials (`deliver.team_auth`, `deliver.outside_auth`).
fn check_route_auth(
    c: &mut Checker,
    raw: &Option<Spanned<RawAuth>>,
    key: &str,
) -> Option<RouteAuth> {
    let a = raw.as_ref()?;
    let r = a.get_ref();
    if r.username.is_some() != r.password_file.is_some() {
        c.error_at(a, key, "username and password_file go together");
    }
    if let Some(file) = &r.password_file {
        // A missing secret would only show as deferred mail days later.
        if let Err(e) = std::fs::File::open(c.path(file.get_ref())) {
            c.error_at(
                file,
                format!("{key}.password_file"),
                format!("cannot read {:?}: {e}", file.get_ref()),
            );
        }
    }
    Some(RouteAuth {
        username: r.username.as_ref().map(|s| s.get_ref().clone()),
        password_file: r.password_file.as_ref().map(|s| c.path(s.get_ref())),
        ca_file: r.ca_file.as_ref().map(|s| c.path(s.get_ref())),
    })
}

fn check_admin(c: &mut Checker, s: &SpStr) -> Option<SocketAddr> {
    match s.get_ref().parse::<SocketAddr>() {
        Ok(a) if a.ip().is_loopback() => Some(a),
        Ok(_) => {
            c.error_at(
                s,
                "admin.listen",
                "must be a loopback address (metrics and queue control are not for the world)",
            );
            None
        }
        Err(_) => {
            c.error_at(
                s,
                "admin.listen",
                format!("{:?} is not ip:port", s.get_ref()),
            );
            None
        }
    }
}
