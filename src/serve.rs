//! `teamrelay serve`: a thin shell that binds every listener, opens the spool and
//! handles signals — SIGHUP reloads `lists.toml`, SIGTERM/SIGINT drain and exit — around
//! [`Server`], which runs everything else and is what in-process tests start.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{self, Config, Listener};
use crate::shared::Shared;
use crate::smtp;
use crate::spool::Spool;

/// How long a stop waits for transactions and deliveries in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the relay until SIGTERM or SIGINT: the thin shell around [`Server`] that binds
/// the configured ports, opens the spool and turns signals into reloads and a drain.
/// Errors are start-up failures (a port in use, an unusable spool) and mean exit 1.
pub async fn serve(config: Config, path: PathBuf) -> Result<(), String> {
    // Signals first: from the moment a port accepts connections, SIGTERM must mean
    // "drain", never the default "die".
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    raise_fd_limit();
    let spool = Spool::open(&config.server.spool).map_err(|e| e.to_string())?;
    let mut bound = Vec::new();
    for l in &config.listen {
        let listener =
            bind(l.address).map_err(|e| format!("cannot listen on {}: {e}", l.address))?;
        bound.push((listener, l.clone()));
    }
    if let Some(addr) = config.admin {
        crate::metrics::install(addr)?;
    }
    let shutdown = CancellationToken::new();
    let server = Server::start(config, bound, spool, shutdown.clone()).await?;
    // Type=notify units wait for this: the ports are bound and the spool is open.
    notify_systemd(sd_notify::NotifyState::Ready);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => server.reload(&path),
        }
    }
    notify_systemd(sd_notify::NotifyState::Stopping);
    shutdown.cancel();
    server.stopped().await;
    Ok(())
}

/// A running relay (mini-redis's `server::run` shape): everything but ports and
/// signals, so tests can run it in-process on listeners bound to port 0 and stop it
/// with a [`CancellationToken`].
pub struct Server {
    /// The state every part shares; tests read the spool and the memory through it.
    pub shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Server {
    /// Starts the listeners (already bound, each with its spec), the delivery worker,
    /// the admin sockets and the history on `spool`. Runs until `shutdown` is
    /// cancelled; then [`Server::stopped`] drains. Must run inside a tokio runtime.
    pub async fn start(
        config: Config,
        listeners: Vec<(TcpListener, Listener)>,
        spool: Spool,
        shutdown: CancellationToken,
    ) -> Result<Server, String> {
        // One crypto provider for every rustls config built without naming one.
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        info!(queued = spool.len(), "spool open");
        let shared = Arc::new(Shared::new(config, spool.clone(), Arc::new(Notify::new())));
        let tracker = TaskTracker::new();
        crate::history::admin::start(shared.clone(), shutdown.clone()).await?;
        let connections = Arc::new(smtp::Connections::default());
        for (listener, spec) in listeners {
            tokio::spawn(smtp::run_listener(
                listener,
                spec,
                shared.clone(),
                connections.clone(),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        tokio::spawn(crate::deliver::run_worker(
            shared.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
        tokio::spawn(sweep_memories(spool.clone(), shutdown.clone()));
        tokio::spawn(crate::metrics::queue_gauges(spool, shutdown.clone()));
        let socket = crate::queue::socket_path(&shared.config().server.spool);
        tokio::spawn(crate::queue::serve_socket(
            socket,
            shared.clone(),
            shutdown.clone(),
        ));
        Ok(Server {
            shared,
            shutdown,
            tracker,
        })
    }

    /// SIGHUP: a good new file replaces the config; a bad one is logged and ignored.
    pub fn reload(&self, path: &std::path::Path) {
        reload(&self.shared, path)
    }

    /// Waits for the shutdown token, then for transactions and deliveries in flight
    /// (at most [`DRAIN_TIMEOUT`]), then makes the last delivery records durable.
    pub async fn stopped(self) {
        self.shutdown.cancelled().await;
        info!("stopping: no new connections, finishing transactions in flight");
        self.tracker.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.tracker.wait())
            .await
            .is_err()
        {
            warn!("some sessions or deliveries did not finish in time; they resume at next start");
        }
        // Everything acknowledged was flushed before its 250; this makes the last
        // delivery records durable too.
        if let Err(e) = self.shared.spool.commit(Vec::new()).await {
            error!(error = %e, "final spool flush failed");
        }
        info!("stopped");
    }
}

/// Tells systemd about a state change; a no-op outside a unit (no `NOTIFY_SOCKET`).
fn notify_systemd(state: sd_notify::NotifyState) {
    if let Err(e) = sd_notify::notify(&[state]) {
        warn!(error = %e, "cannot notify systemd");
    }
}

/// SIGHUP: a good new file replaces the config; a bad one is logged and ignored.
fn reload(shared: &Shared, path: &std::path::Path) {
    match config::load(path) {
        Ok(new) => {
            let old = shared.config();
            if new
                .listen
                .iter()
                .map(|l| l.address)
                .ne(old.listen.iter().map(|l| l.address))
            {
                warn!("listener addresses changed: takes effect at the next restart");
            }
            shared.set_config(new);
            info!(file = %path.display(), "configuration reloaded");
        }
        Err(errors) => {
            for e in errors.0 {
                error!(problem = %e, "reload refused; keeping the running configuration");
            }
        }
    }
}

/// Drops expired routing memories once an hour.
async fn sweep_memories(spool: Spool, shutdown: CancellationToken) {
    loop {
        let n = spool.sweep_memories();
        if n > 0 {
            info!(removed = n, "expired routing memories removed");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Raises the open-files limit to the hard limit: every connection is a descriptor, and
/// the default soft limit (often 1024) would cap an MX far below its connection limits.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                warn!("cannot raise the open-files limit");
            }
        }
    }
}

/// Binds a listener with a deep accept queue: an MX sees bursts of connections, and a
/// full queue drops them before teamrelay can even answer `421`.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}
