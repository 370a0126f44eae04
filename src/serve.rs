//! `teamrelay serve`: opens the spool, binds every listener, starts the delivery worker,
//! and handles signals — SIGHUP reloads `lists.toml`, SIGTERM/SIGINT drain and exit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::config::{self, Config};
use crate::smtp::{self, Shared};
use crate::spool::Spool;

/// How long a stop waits for transactions and deliveries in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the relay until SIGTERM or SIGINT. Errors are start-up failures (a port in use,
/// an unusable spool) and mean exit code 1.
pub async fn serve(config: Config, path: PathBuf) -> Result<(), String> {
    // Signals first: from the moment a port accepts connections, SIGTERM must mean
    // "drain", never the default "die".
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    raise_fd_limit();
    // One crypto provider for every rustls config built without naming one.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let spool = Spool::open(&config.server.spool).map_err(|e| e.to_string())?;
    let mut bound = Vec::new();
    for l in &config.listen {
        let listener =
            bind(l.address).map_err(|e| format!("cannot listen on {}: {e}", l.address))?;
        bound.push((listener, l.clone()));
    }
    info!(queued = spool.len(), "spool open");
    if let Some(addr) = config.admin {
        crate::metrics::install(addr)?;
    }
    let wake = Arc::new(Notify::new());
    let shared = Arc::new(Shared::new(config, spool.clone(), wake));
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    crate::history::admin::start(shared.clone(), shutdown.clone()).await?;
    for (listener, spec) in bound {
        tokio::spawn(smtp::run_listener(
            listener,
            spec,
            shared.clone(),
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
    tokio::spawn(crate::metrics::queue_gauges(
        spool.clone(),
        shutdown.clone(),
    ));
    let socket = crate::queue::socket_path(&shared.config().server.spool);
    tokio::spawn(crate::queue::serve_socket(
        socket,
        shared.clone(),
        shutdown.clone(),
    ));
    // Type=notify units wait for this: the ports are bound and the spool is open.
    notify_systemd(sd_notify::NotifyState::Ready);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&shared, &path),
        }
    }
    info!("stopping: no new connections, finishing transactions in flight");
    notify_systemd(sd_notify::NotifyState::Stopping);
    shutdown.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        warn!("some sessions or deliveries did not finish in time; they resume at next start");
    }
    // Everything acknowledged was flushed before its 250; this makes the last delivery
    // records durable too.
    if let Err(e) = spool.commit(Vec::new()).await {
        error!(error = %e, "final spool flush failed");
    }
    info!("stopped");
    Ok(())
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
