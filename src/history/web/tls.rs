//! TLS from the first byte for the web page: handshakes run in their own tasks (a slow
//! or silent client never holds up the others) and finished streams are handed to axum.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// A TCP listener whose connections come out TLS-wrapped.
pub struct Listener {
    local: std::io::Result<SocketAddr>,
    ready: mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, SocketAddr)>,
}

impl Listener {
    /// Starts accepting on `tcp`.
    pub fn new(
        tcp: TcpListener,
        config: Arc<tokio_rustls::rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) -> Listener {
        let local = tcp.local_addr();
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    r = tcp.accept() => match r {
                        Ok(x) => x,
                        Err(_) => {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = shutdown.cancelled() => return,
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(
                        crate::smtp::HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    );
                    if let Ok(Ok(tls)) = hs.await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Listener { local, ready }
    }
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The acceptor stopped (shutdown): wait for the graceful stop to end us.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
