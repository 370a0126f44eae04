//! The control sockets under the spool directory (`admin.sock` for queue, away and
//! recall, `history.sock` for the history): how the CLI talks to a running `serve`,
//! since sled lets only one process open the spool. One request line in, one JSON
//! answer out, then the connection closes. The socket is `0600` in a `0700` directory:
//! only the relay's own user may steer it.

use std::future::Future;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Answers requests on the socket at `path` with `handle` until `shutdown`; `what`
/// names the socket in the log if it cannot be bound.
pub async fn serve<F, Fut>(path: PathBuf, what: &str, shutdown: CancellationToken, handle: F)
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "{what} control socket unavailable");
            return;
        }
    };
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            _ = shutdown.cancelled() => break,
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                return;
            }
            let answer = handle(line.trim().to_string()).await;
            let _ = write.write_all(answer.as_bytes()).await;
        });
    }
    let _ = std::fs::remove_file(&path);
}

/// Sends one request line to a running server. `None` when no server listens there
/// (the caller then opens the spool itself).
pub async fn ask(path: &Path, line: &str) -> Option<Result<String, String>> {
    let mut stream = UnixStream::connect(path).await.ok()?;
    let exchange = async {
        stream.write_all(format!("{line}\n").as_bytes()).await?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    Some(exchange.await.map_err(|e| e.to_string()))
}
