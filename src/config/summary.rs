//! What `teamrelay check` prints: the configuration as an administrator thinks of it.

use std::fmt::Write;

use super::*;

/// A readable summary: domains, listeners, delivery, lists with expanded members, and
/// archive lists with whom they cover.
pub fn summary(config: &Config) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", config.path.display());
    let _ = writeln!(out);
    let _ = writeln!(out, "Host name:   {}", config.server.hostname);
    let _ = writeln!(out, "Spool:       {}", config.server.spool.display());
    team(&mut out, config);
    awareness(&mut out, config);
    let _ = writeln!(out);
    if let Some(t) = &config.tls {
        let _ = writeln!(out, "{}", certificate_line(t, crate::spool::now() as i64));
    }
    listeners(&mut out, config);
    let _ = writeln!(out);
    delivery(&mut out, config);
    lists(&mut out, config);
    out
}

/// The team: its domains, the private address and what is never archived.
fn team(out: &mut String, config: &Config) {
    let _ = writeln!(out, "Team domains: {}", config.team.domains.join(", "));
    if let Some(p) = &config.team.private_address {
        let _ = writeln!(
            out,
            "Private address: {p} (Bcc it to keep a thread off the archives for {})",
            format_duration(config.team.private_memory)
        );
    }
    if !config.team.never_archive.is_empty() {
        let n: Vec<String> = config
            .team
            .never_archive
            .iter()
            .map(|p| p.to_string())
            .collect();
        let _ = writeln!(out, "Never archived: {}", n.join(", "));
    }
    let _ = writeln!(
        out,
        "Auto-replies and newsletters: {}",
        if config.team.archive_bulk {
            "archived"
        } else {
            "not archived"
        }
    );
}

/// One line per listener.
fn listeners(out: &mut String, config: &Config) {
    let _ = writeln!(out, "Listeners:");
    for l in &config.listen {
        let _ = writeln!(
            out,
            "  {:<22} {:<10} {:<5} tls {}{}",
            l.address.to_string(),
            format!("{:?}", l.mode).to_lowercase(),
            format!("{:?}", l.protocol).to_lowercase(),
            format!("{:?}", l.tls).to_lowercase(),
            if l.allow.is_empty() {
                String::new()
            } else {
                let a: Vec<String> = l.allow.iter().map(|c| c.to_string()).collect();
                format!(", team senders relay from {}", a.join(" "))
            }
        );
    }
}

/// Where mail goes and how it is retried.
fn delivery(out: &mut String, config: &Config) {
    let _ = writeln!(out, "Delivery:");
    let _ = writeln!(out, "  team mail    → {}", config.deliver.team);
    let _ = writeln!(out, "  outside mail → {}", config.deliver.outside);
    if config.deliver.outside == super::Target::Mx {
        let dns = config
            .deliver
            .resolver
            .map_or("the system resolver (/etc/resolv.conf)".to_string(), |a| {
                a.to_string()
            });
        let _ = writeln!(out, "  MX lookups   → {dns}");
    }
    let retry: Vec<String> = config
        .deliver
        .retry
        .iter()
        .map(|d| format_duration(*d))
        .collect();
    let _ = writeln!(
        out,
        "  retry after {}; bounce after {}",
        retry.join(", "),
        format_duration(config.deliver.max_queue_time)
    );
}

/// Every list and archive list with its members.
fn lists(out: &mut String, config: &Config) {
    for (title, archive) in [("Lists:", false), ("Archive lists:", true)] {
        let _ = writeln!(out);
        let _ = writeln!(out, "{title}");
        for l in config.lists.iter().filter(|l| l.is_archive() == archive) {
            let m: Vec<String> = config
                .members(&l.address)
                .iter()
                .map(|a| a.to_string())
                .collect();
            let _ = writeln!(out, "  {} → {}", l.address, m.join(", "));
            if l.assign_owner {
                let _ = writeln!(
                    out,
                    "    a customer's reply in an owned thread goes to its owner"
                );
            }
            if archive {
                let of: Vec<String> = l.archive_of.iter().map(|p| p.to_string()).collect();
                let _ = writeln!(out, "    copies customer mail of: {}", of.join(", "));
            }
        }
    }
}

/// Certificates this close to expiry get a warning from `check`.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

/// `TLS certificate: FILE: names …; expires DATE (in N days)`.
fn certificate_line(t: &super::TlsFiles, now: i64) -> String {
    match &t.certificate {
        None => format!(
            "TLS certificate: {} (names and expiry unreadable)",
            t.cert.display()
        ),
        Some(c) => format!(
            "TLS certificate: {}: names {}; expires {} (in {} days)",
            t.cert.display(),
            c.names.join(", "),
            mail_parser::DateTime::from_timestamp(c.not_after).to_rfc3339(),
            (c.not_after - now).div_euclid(86400)
        ),
    }
}

/// Problems that do not stop the relay but need the administrator soon: a certificate
/// that expires within [`EXPIRY_WARNING_DAYS`] (or already has).
pub fn warnings(config: &Config, now: i64) -> Vec<String> {
    let Some(cert) = config
        .tls
        .as_ref()
        .and_then(|t| Some((t, t.certificate.as_ref()?)))
    else {
        return Vec::new();
    };
    let (t, c) = cert;
    let days = (c.not_after - now).div_euclid(86400);
    if days >= EXPIRY_WARNING_DAYS {
        return Vec::new();
    }
    let when = if c.not_after <= now {
        "has expired".to_string()
    } else {
        format!("expires in {days} days")
    };
    vec![format!(
        "{}: tls.cert: the certificate for {} {when}; renew it and send SIGHUP",
        t.cert.display(),
        c.names.join(", ")
    )]
}

/// Team awareness (SPEC §9) and where the memories live (§10).
fn awareness(out: &mut String, config: &Config) {
    let a = &config.team.aware;
    let cover = a
        .cover
        .as_ref()
        .map_or("nobody (auto-replies mark nobody away)".to_string(), |c| {
            c.to_string()
        });
    let _ = writeln!(out, "Cover for absent teammates: {cover}");
    let _ = writeln!(
        out,
        "Auto-away {}, owners kept {}, collision window {}",
        format_duration(a.auto_away),
        format_duration(a.owner_memory),
        format_duration(a.collision_window)
    );
    let memory = match &config.memory {
        None => "the spool (this instance only)".to_string(),
        Some(m) => {
            let url = m.shown_url();
            format!("{url} (shared by every instance with this URL)")
        }
    };
    let _ = writeln!(out, "Routing memory: {memory}");
}
