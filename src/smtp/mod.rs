//! Inbound SMTP/LMTP: listeners accept connections and run one [`session`] each. A
//! session owns the conversation with one client; what it accepts goes to the policy
//! ([`crate::route`]) and the spool before the client hears `250`.

mod accept;
mod auth;
mod bdat;
mod commands;
pub mod data;
mod limits;
pub mod params;
pub mod reply;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{ListenTls, Listener};
use crate::shared::Shared;
use session::Wire;

pub use auth::{hash_password, verify as verify_password, FAILED_AUTH_DELAY};
pub use limits::Connections;
pub use reply::Reply;

/// Anything a session can talk over: TCP now, TLS over TCP later, memory in tests.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How long a client may take for the TLS handshake.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Tells a client over the connection limits so, and hangs up.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    let reply = Reply::too_many_connections().to_wire();
    let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, reply.as_bytes()).await;
}

/// One accepted connection: its session, after the TLS handshake on an implicit-TLS
/// listener (port-465 style: the handshake comes before the greeting).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    spec: Listener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    if spec.tls != ListenTls::Implicit {
        return session::run(Box::new(stream), peer, spec, shared, shutdown, Wire::Plain).await;
    }
    let Some(tls) = shared.config().tls.clone() else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls_stream)) => {
            session::run(
                Box::new(tls_stream),
                peer,
                spec,
                shared,
                shutdown,
                Wire::Tls,
            )
            .await
        }
        Ok(Err(e)) => info!(peer = %peer, error = %e, "TLS handshake failed"),
        Err(_) => info!(peer = %peer, "TLS handshake timed out"),
    }
}

/// Accepts connections on one listener until `shutdown`, one task per session, each
/// tracked so a graceful stop can wait for transactions in flight.
pub async fn run_listener(
    listener: TcpListener,
    spec: Listener,
    shared: Arc<Shared>,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let local = listener
        .local_addr()
        .map_or_else(|_| spec.address.to_string(), |a: SocketAddr| a.to_string());
    info!(listen = %local, mode = ?spec.mode, protocol = ?spec.protocol, "listening");
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, never spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let server = shared.config().server.clone();
        let Some(slot) = connections.try_open(
            peer.ip(),
            server.max_connections,
            server.max_connections_per_ip,
        ) else {
            info!(peer = %peer, "too many connections");
            crate::metrics::rejected_connection("too_many_connections");
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let (shared, spec, shutdown) = (shared.clone(), spec.clone(), shutdown.clone());
        tracker.spawn(async move {
            let _slot = slot;
            serve_connection(stream, peer, spec, shared, shutdown).await;
        });
    }
}
