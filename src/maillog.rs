//! The mail log vocabulary, as chasquid's maillog: one function per event in a
//! message's life, so every line of one kind has the same words and fields, and an
//! operator (or a test) can grep a message by its queue id from `accepted` to `done`:
//!
//! `accepted` · `rejected` · `archived` · `delivered` · `deferred` (with `retry_in`) ·
//! `failed` · `bounced`.
//!
//! Values go through the logfmt field formatter ([`crate::logfmt`]), so a reply text
//! with spaces stays one value.

use std::net::SocketAddr;
use std::time::Duration;

use tracing::{info, warn};

use crate::address::Address;
use crate::smtp::Reply;

/// The next hop a delivery used, when direct (MX) delivery chose it.
pub struct NextHop<'a> {
    pub host: &'a str,
    pub ip: std::net::IpAddr,
}

/// A message was accepted: it and its plan are durable.
pub fn accepted(
    id: &str,
    from: Option<&Address>,
    rcpts: &[Address],
    size: usize,
    message_id: Option<&str>,
    peer: SocketAddr,
) {
    let from = from.map_or(String::new(), |s| s.to_string());
    let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
    let message_id = message_id.unwrap_or("");
    info!(id = %id, from = %from, rcpts = %rcpts.join(","), size, message_id = %message_id, peer = %peer, "accepted");
}

/// Something the client sent was refused: `stage` is `rcpt` (one recipient, `what`
/// names it) or `data` (the whole message, `id` is its would-be queue id).
pub fn rejected(stage: &str, id: Option<&str>, what: &str, peer: SocketAddr, reply: &Reply) {
    let id = id.unwrap_or("-");
    info!(id = %id, stage = %stage, what = %what, peer = %peer, reason = reply.reason(), code = reply.code, reply = %reply, "rejected");
}

/// Archive copies were planned for `to` from archive list `list` (SPEC §4).
pub fn archived(id: &str, list: &str, to: &[String]) {
    info!(id = %id, list = %list, to = %to.join(","), "archived");
}

/// The next hop took responsibility for `to`.
pub fn delivered(id: &str, to: &str, route: &str, delay: u64, hop: Option<NextHop>, reply: &str) {
    match hop {
        Some(h) => {
            info!(id = %id, to = %to, route = %route, delay_s = delay, mx = %h.host, ip = %h.ip, reply = %reply, "delivered")
        }
        None => {
            info!(id = %id, to = %to, route = %route, delay_s = delay, reply = %reply, "delivered")
        }
    }
}

/// A temporary failure for `to`: the next try is in `retry_in`.
pub fn deferred(
    id: &str,
    to: &str,
    route: &str,
    delay: u64,
    hop: Option<NextHop>,
    retry_in: Duration,
    why: &str,
) {
    let retry_in = crate::config::format_duration(retry_in);
    match hop {
        Some(h) => {
            info!(id = %id, to = %to, route = %route, delay_s = delay, mx = %h.host, ip = %h.ip, retry_in = %retry_in, error = %why, "deferred")
        }
        None => {
            info!(id = %id, to = %to, route = %route, delay_s = delay, retry_in = %retry_in, error = %why, "deferred")
        }
    }
}

/// A permanent failure for `to` (a DSN follows unless the sender is null or -bounces).
pub fn failed(id: &str, to: &str, route: &str, delay: u64, hop: Option<NextHop>, why: &str) {
    match hop {
        Some(h) => {
            warn!(id = %id, to = %to, route = %route, delay_s = delay, mx = %h.host, ip = %h.ip, error = %why, "failed")
        }
        None => warn!(id = %id, to = %to, route = %route, delay_s = delay, error = %why, "failed"),
    }
}

/// A DSN `dsn` was queued to `to` for the failed recipients.
pub fn bounced(id: &str, dsn: &str, to: &str, failed: &[&str]) {
    info!(id = %id, dsn = %dsn, to = %to, failed = %failed.join(","), "bounced");
}
