//! Prometheus metrics at `[admin] listen` `/metrics` (SPEC §7). Counters are bumped where
//! events happen (`teamrelay_*_total`); the queue gauges are refreshed here. Every
//! series is described (`# HELP`) and exists from the start at zero, so a dashboard or
//! an alert on `rate(...)` works before the first event. Rejections are counted by what
//! was refused — a message, a recipient, a connection, an AUTH attempt — each with its
//! own reason label.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use tokio_util::sync::CancellationToken;

use crate::spool::{self, Spool};

/// Starts the HTTP exporter on `addr`. Must run inside the tokio runtime.
pub fn install(addr: SocketAddr) -> Result<(), String> {
    use metrics_exporter_prometheus::Matcher;
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Full(DELIVERY_SECONDS.into()),
            &[0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0],
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(MESSAGE_BYTES.into()),
                &[1e3, 4e3, 16e3, 64e3, 256e3, 1e6, 4e6, 16e6, 64e6],
            )
        })
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    describe_and_zero();
    Ok(())
}

/// Seconds one delivery attempt (one transaction to a next hop) took, by route.
pub const DELIVERY_SECONDS: &str = "teamrelay_delivery_duration_seconds";
/// Size of accepted messages.
pub const MESSAGE_BYTES: &str = "teamrelay_message_size_bytes";

/// Reasons a whole message is refused at the end of DATA.
const MESSAGE_REASONS: &[&str] = &[
    "too_big",
    "bare_line_ending",
    "mail_loop",
    "local_error",
    "memory_unavailable",
    "connection_closed",
    "idle_timeout",
    "other",
];
/// Reasons a recipient is refused at RCPT.
const RECIPIENT_REASONS: &[&str] = &["relay_denied", "unknown_mailbox", "too_many_recipients"];
/// Reasons a connection is refused or closed early.
const CONNECTION_REASONS: &[&str] = &[
    "too_many_connections",
    "too_many_errors",
    "http_probe",
    "improper_pipelining",
];

/// `# HELP` for every series, and every known series at zero.
/// Every counter and its HELP text.
const COUNTERS: &[(&str, &str)] = &[
    (
        "teamrelay_messages_accepted_total",
        "Messages accepted (250 after DATA).",
    ),
    (
        "teamrelay_messages_rejected_total",
        "Messages refused at the end of DATA, by reason.",
    ),
    (
        "teamrelay_recipients_rejected_total",
        "Recipients refused at RCPT, by reason.",
    ),
    (
        "teamrelay_connections_rejected_total",
        "Connections refused or closed early, by reason.",
    ),
    (
        "teamrelay_auth_failures_total",
        "Failed or cancelled AUTH attempts.",
    ),
    ("teamrelay_archive_copies_total", "Archive copies planned."),
    (
        "teamrelay_list_bounces_total",
        "Bounces to LIST-bounces@ addresses consumed.",
    ),
    (
        "teamrelay_deliveries_total",
        "Recipient deliveries by route and result.",
    ),
    (
        "teamrelay_dsn_total",
        "Delivery status notifications queued.",
    ),
    (
        "teamrelay_bounces_dropped_total",
        "Failures not bounced (null or -bounces sender).",
    ),
];

/// The counters without labels, which start at zero.
const PLAIN_COUNTERS: &[&str] = &[
    "teamrelay_messages_accepted_total",
    "teamrelay_auth_failures_total",
    "teamrelay_archive_copies_total",
    "teamrelay_list_bounces_total",
    "teamrelay_dsn_total",
    "teamrelay_bounces_dropped_total",
];

fn describe_and_zero() {
    describe();
    zero();
}

/// HELP and units for every series.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    for (name, help) in COUNTERS {
        describe_counter!(*name, *help);
    }
    describe_gauge!("teamrelay_queue_depth", "Messages in the spool.");
    describe_gauge!(
        "teamrelay_queue_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest queued message."
    );
    describe_gauge!("teamrelay_connections_open", "Open SMTP/LMTP connections.");
    describe_gauge!(
        "teamrelay_build_info",
        "Always 1; the version label says which build runs."
    );
    describe_histogram!(
        DELIVERY_SECONDS,
        Unit::Seconds,
        "Duration of one delivery attempt, by route."
    );
    describe_histogram!(MESSAGE_BYTES, Unit::Bytes, "Size of accepted messages.");
}

/// Every series a scrape should see before anything happened, at zero (a rate over a
/// series that appears only at its first event is wrong).
fn zero() {
    metrics::gauge!("teamrelay_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for name in PLAIN_COUNTERS {
        metrics::counter!(*name).absolute(0);
    }
    for r in MESSAGE_REASONS {
        metrics::counter!("teamrelay_messages_rejected_total", "reason" => *r).absolute(0);
    }
    for r in RECIPIENT_REASONS {
        metrics::counter!("teamrelay_recipients_rejected_total", "reason" => *r).absolute(0);
    }
    for r in CONNECTION_REASONS {
        metrics::counter!("teamrelay_connections_rejected_total", "reason" => *r).absolute(0);
    }
    for route in ["team", "outside"] {
        for result in ["delivered", "deferred", "failed"] {
            metrics::counter!("teamrelay_deliveries_total", "route" => route, "result" => result)
                .absolute(0);
        }
    }
    metrics::gauge!("teamrelay_connections_open").increment(0.0);
}

/// Keeps `teamrelay_queue_depth` and `teamrelay_queue_oldest_age_seconds` current.
pub async fn queue_gauges(spool: Spool, shutdown: CancellationToken) {
    loop {
        let now = spool::now();
        let oldest = spool.oldest_received().map_or(0, |t| now.saturating_sub(t));
        metrics::gauge!("teamrelay_queue_depth").set(spool.len() as f64);
        metrics::gauge!("teamrelay_queue_oldest_age_seconds").set(oldest as f64);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Counts a message refused at the end of DATA.
pub fn rejected_message(reason: &'static str) {
    metrics::counter!("teamrelay_messages_rejected_total", "reason" => reason).increment(1);
}

/// Counts a recipient refused at RCPT.
pub fn rejected_recipient(reason: &'static str) {
    metrics::counter!("teamrelay_recipients_rejected_total", "reason" => reason).increment(1);
}

/// Counts a connection refused or closed early.
pub fn rejected_connection(reason: &'static str) {
    metrics::counter!("teamrelay_connections_rejected_total", "reason" => reason).increment(1);
}

/// Counts a failed or cancelled AUTH.
pub fn auth_failure() {
    metrics::counter!("teamrelay_auth_failures_total").increment(1);
}
