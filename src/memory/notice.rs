//! The collision notice of SPEC §9: a short message from `postmaster@HOSTNAME` to a
//! teammate whose reply crossed another teammate's, queued through the spool like a DSN
//! (envelope `<>`, so it never bounces). It is built here and handed to the spool
//! directly, never to `route`: it is never archived and only ever goes to the teammate.

use base64::Engine;

use crate::config::Config;
use crate::route::{route_of, Collision, RouteKind, EXCERPT_CHARS};
use crate::spool::{self, NewBody, NewMessage, Rcpt, RcptState, Spool, StoredDelivery, StoredKind};

/// The first lines of a message's own text (quoted lines and attributions left out),
/// at most [`EXCERPT_CHARS`] characters: what a collision notice quotes.
pub fn excerpt(message: &[u8]) -> String {
    let parsed = std::panic::catch_unwind(|| {
        mail_parser::MessageParser::default()
            .parse(message)
            .and_then(|m| m.body_text(0).map(|t| t.to_string()))
    });
    let text = parsed.ok().flatten().unwrap_or_default();
    let mut out = String::new();
    for line in text.lines().map(str::trim_end) {
        if line.starts_with('>') || (line.starts_with("On ") && line.ends_with("wrote:")) {
            continue;
        }
        if out.is_empty() && line.trim().is_empty() {
            continue;
        }
        if out.chars().count() + line.chars().count() > EXCERPT_CHARS {
            let room = EXCERPT_CHARS.saturating_sub(out.chars().count());
            out.extend(line.chars().take(room));
            out.push('…');
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// "4 minutes", "1 hour": how long ago, in words.
fn ago(secs: u64) -> String {
    let (n, unit) = match secs {
        0..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86399 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A header value, RFC 2047-encoded when it is not plain ASCII.
fn header_text(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        clean
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(clean.as_bytes());
        format!("=?utf-8?b?{b64}?=")
    }
}

/// The notice as wire text.
pub fn build(hostname: &str, c: &Collision, id: &str, now: u64) -> Vec<u8> {
    let date = mail_parser::DateTime::from_timestamp(now as i64).to_rfc822();
    let subject = header_text(&format!("Already answered: {}", c.subject));
    let quoted: String = c
        .other
        .excerpt
        .lines()
        .map(|l| format!("> {l}\r\n"))
        .collect();
    let other_subject = if c.other.subject.is_empty() {
        String::new()
    } else {
        format!(" (\"{}\")", c.other.subject)
    };
    let text = format!(
        "{other} answered this customer thread {ago} ago{other_subject}, and your reply\r\n\
does not reference that answer, so you may not have seen it.\r\n\
Your reply was delivered as usual. The other answer began:\r\n\r\n{quoted}\r\n\
-- \r\nteamrelay on {hostname} (collision notice; not sent to the customer)\r\n",
        other = c.other.from,
        ago = ago(c.ago_secs),
    );
    format!(
        "From: teamrelay <postmaster@{hostname}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
Date: {date}\r\nMessage-ID: <{id}.notice@{hostname}>\r\nAuto-Submitted: auto-generated\r\n\
X-Teamrelay-Notice: collision\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}",
        to = c.to,
    )
    .into_bytes()
}

/// The collision notice for `c` as a message for [`Spool::accept`], queued in the same
/// commit as the reply that caused it; `None` when the sender is not on the team route
/// (a notice never leaves the team).
pub fn notice(config: &Config, c: &Collision) -> Option<NewMessage> {
    if route_of(config, &c.to) != RouteKind::Team {
        return None;
    }
    let id = Spool::new_id();
    let now = spool::now();
    let message = build(&config.server.hostname, c, &id, now);
    // The quoted excerpt is the teammate's own text: 8-bit whenever it is not ASCII.
    let eight_bit = !message.is_ascii();
    Some(NewMessage {
        id: id.clone(),
        sender: None,
        received: spool::local_received(&config.server.hostname, &id),
        size: message.len() as u64,
        deliveries: vec![StoredDelivery {
            // A DSN's kind: sent from <>, and a failure is logged, never bounced.
            kind: StoredKind::Dsn,
            team_route: true,
            sender: None,
            headers: Vec::new(),
            rcpts: vec![Rcpt {
                address: c.to.to_string(),
                state: RcptState::Pending { last_error: None },
            }],
        }],
        body: NewBody::Built(message),
        smtputf8: false,
        eight_bit,
    })
}
