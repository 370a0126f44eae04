//! The web page (stub).
use super::History;
use crate::smtp::Shared;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Serves the page until `shutdown`.
pub async fn run(
    _listener: tokio::net::TcpListener,
    _tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    _h: History,
    _shared: Arc<Shared>,
    _shutdown: CancellationToken,
) {
}
