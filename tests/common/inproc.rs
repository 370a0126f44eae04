//! The in-process tier (mini-redis's shape): the whole relay — listeners, spool, worker,
//! admin sockets — started inside the test's own tokio runtime with
//! [`teamrelay::serve::Server`], on listeners bound to port 0 (no free-port race), and
//! stopped with a cancellation token. The real-binary tier stays for what needs a
//! process: kill -9, signals, the CLI, interop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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
    /// The listener of each `up…` name, bound before the relay started, until a fake
    /// upstream takes it.
    upstreams: HashMap<String, std::net::TcpListener>,
}

impl InProcess {
    /// Fills in `{dir}` and `{port:NAME}` like [`super::Relay::start`]; every name gets a
    /// listener bound here to port 0 (no free-port race): names starting with `up` are
    /// kept for a fake upstream ([`InProcess::upstream`], [`InProcess::async_upstream`]),
    /// the others are handed to the server as they are.
    pub async fn start(template: &str) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let mut text = template.replace("{dir}", dir.path().to_str().unwrap());
        let mut ports = HashMap::new();
        let mut bound = HashMap::new();
        let mut upstreams = HashMap::new();
        while let Some(start) = text.find("{port:") {
            let end = start + text[start..].find('}').unwrap();
            let name = text[start + 6..end].to_string();
            if !ports.contains_key(&name) {
                let port = if name.starts_with("up") {
                    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                    let port = l.local_addr().unwrap().port();
                    upstreams.insert(name.clone(), l);
                    port
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
            upstreams,
        }
    }

    /// A thread-based fake SMTP upstream on the `up…` listener `name`. Not for a paused
    /// clock: while its thread works the runtime looks idle and the clock jumps.
    pub fn upstream(&mut self, name: &str) -> super::Upstream {
        super::Upstream::serving(self.take_listener(name), super::UpOptions::smtp())
    }

    /// A fake SMTP upstream that runs as a task of the test's runtime, so it keeps pace
    /// with a paused clock.
    pub fn async_upstream(&mut self, name: &str) -> AsyncUpstream {
        let listener = self.take_listener(name);
        listener.set_nonblocking(true).unwrap();
        AsyncUpstream::serving(TcpListener::from_std(listener).unwrap())
    }

    fn take_listener(&mut self, name: &str) -> std::net::TcpListener {
        self.upstreams
            .remove(name)
            .unwrap_or_else(|| panic!("no upstream listener {name} (or taken twice)"))
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
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        // No Nagle: a small write held back for a delayed ACK is a wait tokio cannot
        // see, and a paused clock would jump over it.
        stream.set_nodelay(true).unwrap();
        let (r, w) = stream.into_split();
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

/// One transaction an [`AsyncUpstream`] received, with the (tokio) time it ended and
/// what the fake answered.
#[derive(Debug, Clone)]
pub struct TimedTxn {
    pub at: tokio::time::Instant,
    /// RCPT and DATA had arrived before the fake answered MAIL: the client pipelined.
    pub pipelined: bool,
    pub txn: super::Txn,
    pub reply: String,
}

/// A fake SMTP next hop inside the test's runtime. It answers the end of DATA with the
/// replies queued by [`AsyncUpstream::answer`] in turn, then `250`; every transaction is
/// recorded with its time and the answer. It offers PIPELINING only when told to.
#[derive(Clone, Default)]
pub struct AsyncUpstream {
    txns: Arc<Mutex<Vec<TimedTxn>>>,
    replies: Arc<Mutex<VecDeque<String>>>,
    rcpt_replies: Arc<Mutex<HashMap<String, String>>>,
    pipelining: Arc<std::sync::atomic::AtomicBool>,
}

impl AsyncUpstream {
    fn serving(listener: TcpListener) -> AsyncUpstream {
        let up = AsyncUpstream::default();
        let up2 = up.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                // As the relay's own sockets: no Nagle (see AsyncClient::connect).
                let _ = conn.set_nodelay(true);
                tokio::spawn(up2.clone().session(conn));
            }
        });
        up
    }

    /// The next transactions' end-of-DATA replies, in order (e.g. `451 4.3.0 later`).
    pub fn answer(&self, replies: &[&str]) {
        let mut q = self.replies.lock().unwrap();
        q.extend(replies.iter().map(|r| r.to_string()));
    }

    /// Answer RCPT for `rcpt` with `reply` (e.g. `550 5.1.1 no such user`).
    pub fn refuse(&self, rcpt: &str, reply: &str) {
        let mut r = self.rcpt_replies.lock().unwrap();
        r.insert(rcpt.to_string(), reply.to_string());
    }

    /// Offer PIPELINING (RFC 2920) in the EHLO reply from now on.
    pub fn offer_pipelining(&self) {
        self.pipelining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every transaction so far.
    pub fn txns(&self) -> Vec<TimedTxn> {
        self.txns.lock().unwrap().clone()
    }

    async fn session(self, conn: TcpStream) {
        let (r, mut w) = conn.into_split();
        let mut r = BufReader::new(r);
        let mut txn: Option<super::Txn> = None;
        let mut pipelined = false;
        let _ = w.write_all(b"220 fake.test ESMTP\r\n").await;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end().to_string();
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let reply = match verb.as_str() {
                "EHLO" | "HELO" if self.pipelining.load(std::sync::atomic::Ordering::SeqCst) => {
                    "250-fake.test\r\n250-8BITMIME\r\n250 PIPELINING".to_string()
                }
                "EHLO" | "HELO" => "250-fake.test\r\n250 8BITMIME".to_string(),
                "MAIL" => {
                    let from = super::path_arg(&line);
                    let waiting = String::from_utf8_lossy(r.buffer()).to_ascii_uppercase();
                    pipelined = waiting.contains("RCPT TO:") && waiting.contains("DATA\r\n");
                    txn = Some(super::Txn {
                        mail_from: from,
                        mail_line: line.clone(),
                        rcpts: Vec::new(),
                        data: Vec::new(),
                        tls: false,
                        auth: None,
                    });
                    "250 2.1.0 ok".to_string()
                }
                "RCPT" => {
                    let to = super::path_arg(&line);
                    let refusal = self.rcpt_replies.lock().unwrap().get(&to).cloned();
                    match (txn.as_mut(), refusal) {
                        (None, _) => "503 5.5.1 MAIL first".to_string(),
                        (Some(_), Some(refusal)) => refusal,
                        (Some(t), None) => {
                            t.rcpts.push(to);
                            "250 2.1.5 ok".to_string()
                        }
                    }
                }
                "DATA" => {
                    let Some(mut t) = txn.take().filter(|t| !t.rcpts.is_empty()) else {
                        let _ = w.write_all(b"554 5.5.1 no valid recipients\r\n").await;
                        continue;
                    };
                    let _ = w.write_all(b"354 go ahead\r\n").await;
                    t.data = match read_data(&mut r).await {
                        Some(data) => data,
                        None => return,
                    };
                    let reply = self
                        .replies
                        .lock()
                        .unwrap()
                        .pop_front()
                        .unwrap_or_else(|| "250 2.0.0 ok".to_string());
                    self.txns.lock().unwrap().push(TimedTxn {
                        at: tokio::time::Instant::now(),
                        pipelined,
                        txn: t,
                        reply: reply.clone(),
                    });
                    reply
                }
                "RSET" => {
                    txn = None;
                    "250 2.0.0 ok".to_string()
                }
                "NOOP" => "250 2.0.0 ok".to_string(),
                "QUIT" => {
                    let _ = w.write_all(b"221 2.0.0 bye\r\n").await;
                    return;
                }
                _ => "500 5.5.2 what?".to_string(),
            };
            if w.write_all(format!("{reply}\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// The DATA section up to the lone dot, dot-unstuffed; `None` if the stream ended.
async fn read_data<R: AsyncReadExt + AsyncBufReadExt + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        if line == b".\r\n" {
            return Some(data);
        }
        let unstuffed = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(unstuffed);
    }
}
