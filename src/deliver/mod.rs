//! Outbound: a worker takes due messages off the spool's schedule, tries every pending
//! recipient through its route, records each recipient's outcome, and reschedules,
//! bounces or removes the message. A message leaves the spool only when no recipient is
//! pending.

mod client;
mod message;
mod maildir;
pub mod outcome;
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
use crate::smtp::Shared;
use crate::spool::{self, Entry, Op, RcptState};

/// Messages delivered at the same time.
const PARALLEL: usize = 64;

/// Runs the delivery worker until `shutdown`.
pub async fn run_worker(shared: Arc<Shared>, shutdown: CancellationToken, tracker: TaskTracker) {
    let slots = Arc::new(Semaphore::new(PARALLEL));
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        let due = shared.spool.take_due(spool::now(), 256);
        let took = due.len();
        for id in due {
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            if !lock(&in_flight).insert(id.clone()) {
                continue;
            }
            let (shared, in_flight) = (shared.clone(), in_flight.clone());
            tracker.spawn(async move {
                deliver_message(&shared, &id).await;
                lock(&in_flight).remove(&id);
                drop(permit);
            });
        }
        if took == 256 {
            continue;
        }
        let now = spool::now();
        let wait = shared.spool.next_due().map_or(60, |t| t.saturating_sub(now).clamp(1, 60));
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

/// One try at every pending recipient of one message.
pub async fn deliver_message(shared: &Shared, id: &str) {
    let Some(mut entry) = shared.spool.get(id) else { return };
    let config = shared.config();
    let body = shared.spool.body_path(id);
    for i in 0..entry.deliveries.len() {
        let d = &entry.deliveries[i];
        let rcpts: Vec<String> = d.pending().map(|r| r.address.clone()).collect();
        if rcpts.is_empty() {
            continue;
        }
        let route = d.route();
        let target = match route {
            RouteKind::Team => &config.deliver.team,
            RouteKind::Outside => &config.deliver.outside,
        };
        let prefix = message::prefix(&entry, d);
        let results = match target {
            Target::Maildir(root) => {
                let (root, body, id2) = (root.clone(), body.clone(), id.to_string());
                tokio::task::spawn_blocking(move || maildir::deliver(&root, &rcpts, &prefix, &body, &id2))
                    .await
                    .unwrap_or_default()
            }
            _ => {
                let auth = match route {
                    RouteKind::Team => config.deliver.team_auth.as_ref(),
                    RouteKind::Outside => config.deliver.outside_auth.as_ref(),
                };
                let job = client::Job {
                    hostname: &config.server.hostname,
                    sender: d.sender.as_deref(),
                    rcpts,
                    prefix,
                    body: &body,
                };
                client::deliver(target, auth, &job).await
            }
        };
        record(&mut entry, i, route, results);
    }
    finish(shared, &config, entry).await;
}

/// Stores each recipient's outcome and logs it.
fn record(entry: &mut Entry, i: usize, route: RouteKind, results: Vec<(String, Outcome)>) {
    let id = entry.id.clone();
    let d = &mut entry.deliveries[i];
    for (addr, outcome) in results {
        let Some(r) = d.rcpts.iter_mut().find(|r| r.address == addr) else { continue };
        r.state = match outcome {
            Outcome::Delivered => {
                info!(id = %id, to = %addr, route = %route, "delivered");
                RcptState::Delivered
            }
            Outcome::Deferred(why) => {
                info!(id = %id, to = %addr, route = %route, error = %why, "deferred");
                RcptState::Pending { last_error: Some(why) }
            }
            Outcome::Failed(why) => {
                warn!(id = %id, to = %addr, route = %route, error = %why, "failed");
                RcptState::Failed { error: why }
            }
        };
    }
}

/// After a try: expire, bounce, reschedule or remove.
async fn finish(shared: &Shared, config: &Config, mut entry: Entry) {
    let now = spool::now();
    entry.attempts += 1;
    if entry.has_pending() && now.saturating_sub(entry.received_at) >= config.deliver.max_queue_time.as_secs() {
        for d in &mut entry.deliveries {
            for r in &mut d.rcpts {
                if let RcptState::Pending { last_error } = &r.state {
                    let why = format!("gave up after {}: {}", crate::config::format_duration(config.deliver.max_queue_time), last_error.as_deref().unwrap_or("not delivered"));
                    warn!(id = %entry.id, to = %r.address, error = %why, "expired");
                    r.state = RcptState::Failed { error: why };
                }
            }
        }
    }
    if !entry.has_pending() {
        report_failures(&entry);
        if let Err(e) = shared.spool.commit(vec![Op::Remove(entry.id.clone())]).await {
            warn!(id = %entry.id, error = %e, "cannot remove finished message");
        } else {
            info!(id = %entry.id, "done");
        }
        return;
    }
    let retry = &config.deliver.retry;
    let delay = retry[(entry.attempts as usize).saturating_sub(1).min(retry.len() - 1)];
    entry.next_try = now + delay.as_secs();
    info!(id = %entry.id, retry_in = %crate::config::format_duration(delay), pending = entry.pending_addresses().len(), "rescheduled");
    if let Err(e) = shared.spool.commit(vec![Op::Put(entry.clone())]).await {
        warn!(id = %entry.id, error = %e, "cannot record delivery state");
    }
    // The worker may be asleep with no schedule in view: tell it about the new one.
    shared.wake.notify_one();
}

/// Permanent failures of a finished message. The DSN to the sender is built by the
/// delivery-status module once it exists; until then each failure is logged.
fn report_failures(entry: &Entry) {
    for d in &entry.deliveries {
        for r in &d.rcpts {
            if let RcptState::Failed { error } = &r.state {
                warn!(id = %entry.id, to = %r.address, sender = ?d.sender, error = %error, "bounced");
            }
        }
    }
}
