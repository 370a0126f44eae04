//! The in-process tier (mini-redis's shape): the whole relay — listeners, spool, worker,
//! admin sockets — started inside the test's own tokio runtime with
//! [`teamrelay::serve::Server`], on listeners bound to port 0 (no free-port race), and
//! stopped with a cancellation token. The real-binary tier stays for what needs a
//! process: kill -9, signals, the CLI, interop.

use std::collections::HashMap;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use teamrelay::serve::Server;

/// A relay running inside the test.
pub struct InProcess {
    pub dir: tempfile::TempDir,
    /// The port of each `{port:NAME}` of the template (listeners and upstreams).
    pub ports: HashMap<String, u16>,
    pub shutdown: CancellationToken,
    pub stopped: tokio::task::JoinHandle<()>,
    pub shared: std::sync::Arc<teamrelay::shared::Shared>,
}

impl InProcess {
    /// Fills in `{dir}` and `{port:NAME}` like [`super::Relay::start`]: names starting
    /// with `up` get a free port for a fake upstream, every other name a listener bound
    /// here to port 0 and handed to the server as it is.
    pub async fn start(template: &str) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let mut text = template.replace("{dir}", dir.path().to_str().unwrap());
        let mut ports = HashMap::new();
        let mut bound = HashMap::new();
        while let Some(start) = text.find("{port:") {
            let end = start + text[start..].find('}').unwrap();
            let name = text[start + 6..end].to_string();
            if !ports.contains_key(&name) {
                let port = if name.starts_with("up") {
                    super::free_port()
                } else {
                    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let port = l.local_addr().unwrap().port();
                    bound.insert(port, l);
                    port
                };
                ports.insert(name.clone(), port);
            }
            text.replace_range(start..=end, &ports[&name].to_string());
        }
        let path = dir.path().join("lists.toml");
        std::fs::write(&path, &text).unwrap();
        let config = teamrelay::config::load(&path).expect("a valid test config");
        let listeners = config
            .listen
            .iter()
            .map(|spec| (bound.remove(&spec.address.port()).unwrap(), spec.clone()))
            .collect();
        let spool = teamrelay::spool::Spool::open(&config.server.spool).unwrap();
        let shutdown = CancellationToken::new();
        let server = Server::start(config, listeners, spool, shutdown.clone())
            .await
            .unwrap();
        let shared = server.shared.clone();
        let stopped = tokio::spawn(server.stopped());
        InProcess {
            dir,
            ports,
            shutdown,
            stopped,
            shared,
        }
    }

    pub fn port(&self, name: &str) -> u16 {
        self.ports[name]
    }

    /// Cancels the token and waits for the drain to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.stopped.await.unwrap();
    }
}

/// A line-based async SMTP client for in-process tests.
pub struct AsyncClient {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl AsyncClient {
    /// Connects and reads the greeting.
    pub async fn connect(port: u16) -> (AsyncClient, String) {
        let (r, w) = TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap()
            .into_split();
        let mut c = AsyncClient {
            reader: BufReader::new(r),
            writer: w,
        };
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// One full reply; empty at end of stream.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    /// Sends `line` (CRLF added) and returns the reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    /// A whole transaction; returns the reply to the end of DATA.
    pub async fn send(&mut self, from: &str, to: &[&str], message: &[u8]) -> String {
        assert!(self
            .cmd(&format!("MAIL FROM:<{from}>"))
            .await
            .starts_with("250"));
        for t in to {
            assert!(self.cmd(&format!("RCPT TO:<{t}>")).await.starts_with("250"));
        }
        assert!(self.cmd("DATA").await.starts_with("354"));
        self.writer.write_all(message).await.unwrap();
        self.cmd(".").await
    }
}
