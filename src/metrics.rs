//! Prometheus metrics at `[admin] listen` `/metrics` (SPEC §7). Counters are bumped where
//! events happen (`teamrelay_*_total`); the queue gauges are refreshed here.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use tokio_util::sync::CancellationToken;

use crate::spool::{self, Spool};

/// Starts the HTTP exporter on `addr`. Must run inside the tokio runtime.
pub fn install(addr: SocketAddr) -> Result<(), String> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))
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

/// Counts a rejected transaction step by reason.
pub fn rejected(reason: &'static str) {
    metrics::counter!("teamrelay_messages_rejected_total", "reason" => reason).increment(1);
}
