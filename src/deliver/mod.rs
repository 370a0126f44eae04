//! Outbound: a worker takes due messages off the spool's schedule, tries every pending
//! recipient through its route, records each recipient's outcome, and reschedules,
//! bounces or removes the message. A message leaves the spool only when no recipient is
//! pending.

mod bounce;
mod client;
mod connection;
mod convert;
pub mod dsn;
mod maildir;
mod message;
pub mod mx;
pub mod outcome;
mod pool;
mod tls;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use message::DotStuffer;
pub use outcome::Outcome;

use crate::config::{Config, Target};
use crate::route::RouteKind;
use crate::shared::Shared;
use crate::spool::{self, Entry, Op, RcptState};

/// Messages delivered at the same time.
const PARALLEL: usize = 64;

/// Runs the delivery worker until `shutdown`.
pub async fn run_worker(shared: Arc<Shared>, shutdown: CancellationToken, tracker: TaskTracker) {
    let slots = Arc::new(Semaphore::new(PARALLEL));
    let pool = Arc::new(Outbound::default());
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        let due = shared.spool.take_due(spool::now(), 256);
        let took = due.len();
        for id in due {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            if !lock(&in_flight).insert(id.clone()) {
                continue;
            }
            let (shared, in_flight, pool) = (shared.clone(), in_flight.clone(), pool.clone());
            tracker.spawn(async move {
                deliver_message(&shared, &pool, &id).await;
                lock(&in_flight).remove(&id);
                drop(permit);
            });
        }
        if took == 256 {
            continue;
        }
        pool.pool.prune();
        let now = spool::now();
        let wait = shared
            .spool
            .next_due()
            .map_or(60, |t| t.saturating_sub(now).clamp(1, 60));
        tokio::select! {
            _ = shared.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The set holds plain ids; a panic elsewhere cannot leave it inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bodies up to this size are read into memory once per try.
const IN_MEMORY: u64 = 1024 * 1024;
/// Bodies up to this size are read without leaving the async thread.
const INLINE_READ: u64 = 128 * 1024;

/// What the worker keeps between messages for network delivery.
#[derive(Default)]
struct Outbound {
    /// Idle connections by next hop.
    pool: pool::Pool,
    /// The resolver for `mx` delivery.
    dns: mx::DnsCache,
}

/// One try at every pending recipient of one message.
async fn deliver_message(shared: &Shared, out: &Outbound, id: &str) {
    let Some(mut entry) = shared.spool.get(id) else {
        return;
    };
    let config = shared.config();
    let body = shared.spool.body_of(&entry);
    let mut loaded: Option<client::Body> = None;
    let mut failed = Vec::new();
    for i in 0..entry.deliveries.len() {
        let route = entry.deliveries[i].route();
        let started = std::time::Instant::now();
        let Some(results) = try_delivery(out, &config, &entry, i, &body, &mut loaded).await else {
            continue;
        };
        metrics::histogram!(crate::metrics::DELIVERY_SECONDS, "route" => route.to_string())
            .record(started.elapsed().as_secs_f64());
        let retry_in = retry_delay(&config, entry.attempts + 1);
        failed.extend(record(&mut entry, i, route, results, retry_in));
    }
    finish(shared, &config, entry, failed).await;
}

/// One try at delivery `i` of `entry`: the outcome for each of its pending recipients,
/// or `None` when none is pending. `loaded` keeps the body read once for every network
/// delivery of this try.
async fn try_delivery(
    out: &Outbound,
    config: &Config,
    entry: &Entry,
    i: usize,
    body: &spool::BodyLocation,
    loaded: &mut Option<client::Body>,
) -> Option<mx::HopResults> {
    let d = &entry.deliveries[i];
    let rcpts: Vec<String> = d.pending().map(|r| r.address.clone()).collect();
    if rcpts.is_empty() {
        return None;
    }
    let route = d.route();
    let target = match route {
        RouteKind::Team => &config.deliver.team,
        RouteKind::Outside => &config.deliver.outside,
    };
    let prefix = message::prefix(entry, d);
    if let Target::Maildir(root) = target {
        let (root, body, id) = (root.clone(), body.clone(), entry.id.clone());
        let results = tokio::task::spawn_blocking(move || {
            maildir::deliver(&root, &rcpts, &prefix, &body, &id)
        })
        .await
        .unwrap_or_default();
        return Some(results.into_iter().map(|(r, o)| (r, o, None)).collect());
    }
    let body = match loaded {
        Some(b) => b.clone(),
        None => match load_body(body, entry.size).await {
            Ok(b) => loaded.insert(b).clone(),
            Err(why) => {
                // Kept for the next try; the error shows in `queue show`.
                warn!(id = %entry.id, error = %why, "deferred");
                let o = Outcome::Deferred(why);
                return Some(rcpts.iter().map(|r| (r.clone(), o.clone(), None)).collect());
            }
        },
    };
    let needs = convert::Needs {
        smtputf8: entry.smtputf8
            || d.sender.as_deref().is_some_and(|s| !s.is_ascii())
            || rcpts.iter().any(|r| !r.is_ascii()),
        eight_bit: entry.eight_bit,
    };
    let job = client::Job {
        hostname: &config.server.hostname,
        timeout: config.deliver.timeout,
        sender: d.sender.as_deref(),
        rcpts,
        prefix,
        body,
        needs,
    };
    Some(network(out, config, &entry.id, route, target, &job).await)
}

/// One delivery over SMTP/LMTP: one transaction on the route's URL, or for `mx` one per
/// recipient domain.
async fn network(
    out: &Outbound,
    config: &Config,
    id: &str,
    route: RouteKind,
    target: &Target,
    job: &client::Job<'_>,
) -> mx::HopResults {
    if *target != Target::Mx {
        let auth = match route {
            RouteKind::Team => config.deliver.team_auth.as_ref(),
            RouteKind::Outside => config.deliver.outside_auth.as_ref(),
        };
        let key = format!("{route} {target}");
        let results = client::deliver(&out.pool, &key, target, auth, job).await;
        return results.into_iter().map(|(r, o)| (r, o, None)).collect();
    }
    let dns = match out.dns.get(config.deliver.resolver) {
        Ok(dns) => dns,
        Err(why) => {
            let o = Outcome::Deferred(why);
            return job
                .rcpts
                .iter()
                .map(|r| (r.clone(), o.clone(), None))
                .collect();
        }
    };
    let mut results = Vec::new();
    for (domain, rcpts) in by_domain(&job.rcpts) {
        let sub = client::Job {
            rcpts,
            ..job.clone()
        };
        results.extend(mx::deliver(&dns, &out.pool, id, &domain, &sub).await);
    }
    results
}

/// Recipients grouped by domain (lowercase), in order of first appearance: one
/// transaction per domain (SPEC §6).
fn by_domain(rcpts: &[String]) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in rcpts {
        let domain = r.rsplit_once('@').map_or("", |(_, d)| d).to_lowercase();
        match groups.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, list)) => list.push(r.clone()),
            None => groups.push((domain, vec![r.clone()])),
        }
    }
    groups
}

/// The body for network delivery: in memory when small (one read for all of this
/// try's transactions), else streamed from its file.
async fn load_body(body: &spool::BodyLocation, size: u64) -> Result<client::Body, String> {
    if let (Some(path), true) = (body.whole_file(), size > IN_MEMORY) {
        return Ok(client::Body::File(path.to_path_buf()));
    }
    // A small body just written is in the page cache: reading it in place costs less
    // than handing the read to another thread and back.
    let read = if size <= INLINE_READ {
        body.read_all()
    } else {
        let body = body.clone();
        tokio::task::spawn_blocking(move || body.read_all())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    };
    read.map(|bytes| client::Body::Memory(bytes.into()))
        .map_err(|e| format!("cannot read the queued body: {e}"))
}

/// Stores each recipient's outcome, logs and counts it; returns the new failures as
/// (delivery index, recipient, error).
fn record(
    entry: &mut Entry,
    i: usize,
    route: RouteKind,
    results: mx::HopResults,
    retry_in: Duration,
) -> Vec<(usize, String, String)> {
    let id = entry.id.clone();
    // How long the message has waited, on every outcome line (as Postfix's delay=).
    let delay = spool::now().saturating_sub(entry.received_at);
    let d = &mut entry.deliveries[i];
    let mut failed = Vec::new();
    for (addr, outcome, hop) in results {
        let Some(r) = d.rcpts.iter_mut().find(|r| r.address == addr) else {
            continue;
        };
        let result = match &outcome {
            Outcome::Delivered(_) => "delivered",
            Outcome::Deferred(_) => "deferred",
            Outcome::Failed(_) => "failed",
        };
        metrics::counter!("teamrelay_deliveries_total", "route" => route.to_string(), "result" => result).increment(1);
        let route_name = route.to_string();
        let next_hop = || {
            hop.as_ref().map(|h| crate::maillog::NextHop {
                host: &h.host,
                ip: h.ip,
            })
        };
        r.state = match outcome {
            Outcome::Delivered(reply) => {
                crate::maillog::delivered(&id, &addr, &route_name, delay, next_hop(), &reply);
                RcptState::Delivered
            }
            Outcome::Deferred(why) => {
                let hop = next_hop();
                crate::maillog::deferred(&id, &addr, &route_name, delay, hop, retry_in, &why);
                RcptState::Pending {
                    last_error: Some(why),
                }
            }
            Outcome::Failed(why) => {
                crate::maillog::failed(&id, &addr, &route_name, delay, next_hop(), &why);
                failed.push((i, addr.clone(), why.clone()));
                RcptState::Failed { error: why }
            }
        };
    }
    failed
}

/// The wait after try number `attempts` (1 for the first): the `deliver.retry` delays
/// in turn, the last one repeating. A valid config has at least one.
fn retry_delay(config: &Config, attempts: u32) -> Duration {
    let retry = &config.deliver.retry;
    retry[(attempts as usize).saturating_sub(1).min(retry.len() - 1)]
}

/// Gives up on recipients pending past `max_queue_time`; returns them like [`record`].
fn expire(entry: &mut Entry, config: &Config, now: u64) -> Vec<(usize, String, String)> {
    let max = config.deliver.max_queue_time;
    if now.saturating_sub(entry.received_at) < max.as_secs() {
        return Vec::new();
    }
    let mut failed = Vec::new();
    for (i, d) in entry.deliveries.iter_mut().enumerate() {
        for r in &mut d.rcpts {
            if let RcptState::Pending { last_error } = &r.state {
                let why = format!(
                    "gave up after {}: {}",
                    crate::config::format_duration(max),
                    last_error.as_deref().unwrap_or("not delivered")
                );
                warn!(id = %entry.id, to = %r.address, error = %why, "expired");
                failed.push((i, r.address.clone(), why.clone()));
                r.state = RcptState::Failed { error: why };
            }
        }
    }
    failed
}

/// After a try: expire, bounce, then reschedule or remove — all in one commit, so a
/// DSN is queued exactly when the failure it reports is recorded.
async fn finish(
    shared: &Shared,
    config: &Config,
    mut entry: Entry,
    mut failed: Vec<(usize, String, String)>,
) {
    let now = spool::now();
    entry.attempts += 1;
    failed.extend(expire(&mut entry, config, now));
    let dsns = bounce::bounces(shared, config, &entry, &failed).await;
    let mut ops = Vec::new();
    if entry.has_pending() {
        // A valid config has at least one retry delay; the last one repeats.
        let delay = retry_delay(config, entry.attempts);
        entry.next_try = now + delay.as_secs();
        info!(id = %entry.id, retry_in = %crate::config::format_duration(delay), pending = entry.pending_addresses().len(), "rescheduled");
        ops.push(Op::Update(entry.clone()));
    } else {
        ops.push(Op::Remove(entry.id.clone()));
    }
    if shared.spool.get(&entry.id).is_none() {
        // Deleted with `teamrelay queue delete` while this try was under way.
        info!(id = %entry.id, "deleted during delivery; not recorded");
        return;
    }
    match shared.spool.accept(dsns, ops).await {
        Ok(()) if !entry.has_pending() => info!(id = %entry.id, "done"),
        Ok(()) => {}
        Err(e) => {
            // Not recorded: the try is made again later (a possible duplicate, never a
            // message left off the schedule until the next start).
            warn!(id = %entry.id, error = %e, "cannot record delivery state");
            let delay = retry_delay(config, entry.attempts);
            shared
                .spool
                .schedule_again(&entry.id, now + delay.as_secs());
        }
    }
    // The worker may be asleep with no schedule in view (this message was in flight),
    // or a DSN was just queued: let it look again.
    shared.wake.notify_one();
}
