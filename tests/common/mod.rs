//! Shared harness for the real-binary tests: start `teamrelay serve` on loopback ports
//! with a temp config and spool, talk to it with python3's smtplib or a raw socket, and
//! watch what a fake upstream SMTP/LMTP server receives.
#![allow(dead_code)]

pub mod dns;
pub mod inproc;
pub mod redis;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago, for a server a test starts next.
///
/// Not port 0's pick: the kernel hands those out of its ephemeral range (32768–60999
/// here), which is also where every outgoing connection of a concurrent test takes its
/// source port, so a port "free a moment ago" could be a client's by the time the
/// server binds it (seen in CI: `Address already in use` under the thousand-connection
/// test). Below that range no client ever takes one; a per-process sequence from a
/// process-id offset keeps two tests of one run from being handed the same port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(389) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + (offset + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN)
}

/// A loopback address no other test of this run uses (127.P.N.M, P from the process id),
/// for fake MX hosts that must all listen on port 25.
pub fn loopback_ip() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let p = 10 + std::process::id() % 240;
    format!("127.{p}.{}.{}", n / 250, n % 250 + 2)
}

/// Polls `f` every 20 ms until it is true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A running `teamrelay serve`.
pub struct Relay {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// Named ports: "mx", "relay", "tap", "lmtp", "submission".
    pub ports: HashMap<String, u16>,
}

impl Relay {
    /// Writes `config` (with `{dir}` and `{port:NAME}` placeholders filled in) and starts
    /// the relay, waiting until every listener accepts connections.
    pub fn start(config: &str) -> Relay {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = HashMap::new();
        let mut text = config.replace("{dir}", dir.path().to_str().unwrap());
        while let Some(start) = text.find("{port:") {
            let end = start + text[start..].find('}').unwrap();
            let name = text[start + 6..end].to_string();
            let port = *ports.entry(name).or_insert_with(free_port);
            text.replace_range(start..=end, &port.to_string());
        }
        let path = dir.path().join("lists.toml");
        std::fs::write(&path, text).unwrap();
        let mut relay = Relay {
            child: None,
            dir,
            config: path,
            ports,
        };
        relay.spawn();
        relay
    }

    /// Starts the process (again) on the same config and spool.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_teamrelay"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        for (name, port) in &self.ports {
            if name.starts_with("up") {
                continue;
            }
            let ok = wait_for(Duration::from_secs(20), || {
                TcpStream::connect(("127.0.0.1", *port)).is_ok()
            });
            assert!(
                ok,
                "relay did not listen on {name} port {port}; log:\n{}",
                self.log()
            );
        }
    }

    pub fn port(&self, name: &str) -> u16 {
        self.ports[name]
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("relay.log")
    }

    /// Everything the relay logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// kill -9: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        signal(c.id(), "TERM");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(40) {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Sends a signal by PID.
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            signal(c.id(), name);
        }
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What python3's smtplib got back.
#[derive(Debug)]
pub struct SendResult {
    /// "ok" with refused recipients, or the exception.
    pub output: String,
    pub success: bool,
}

/// Sends one message with python3's smtplib: EHLO, MAIL, RCPT..., DATA, QUIT.
pub fn send_py(port: u16, from: &str, to: &[&str], message: &[u8]) -> SendResult {
    let script = r#"
import smtplib, sys, json
port, sender, rcpts = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
msg = sys.stdin.buffer.read()
try:
    s = smtplib.SMTP('127.0.0.1', port, timeout=30)
    refused = s.sendmail(sender, rcpts, msg)
    s.quit()
    print('ok', json.dumps({k: [v[0], v[1].decode()] for k, v in refused.items()}))
except smtplib.SMTPRecipientsRefused as e:
    print('refused', json.dumps({k: [v[0], v[1].decode()] for k, v in e.recipients.items()}))
    sys.exit(1)
except smtplib.SMTPResponseException as e:
    print('error', e.smtp_code, e.smtp_error.decode())
    sys.exit(1)
except Exception as e:
    print('exception', repr(e))
    sys.exit(1)
"#;
    let rcpts = format!(
        "[{}]",
        to.iter()
            .map(|t| format!("{t:?}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut child = Command::new("python3")
        .args(["-c", script, &port.to_string(), from, &rcpts])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the integration tests");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child.wait_with_output().unwrap();
    SendResult {
        output: String::from_utf8_lossy(&out.stdout).trim().to_string()
            + &String::from_utf8_lossy(&out.stderr),
        success: out.status.success(),
    }
}

/// Sends one message with [`send_py`] and fails the test, with smtplib's words, unless
/// the relay accepted it for every recipient.
pub fn send_ok(port: u16, from: &str, to: &[&str], message: &[u8]) {
    let r = send_py(port, from, to, message);
    assert!(r.success, "sending {from} → {to:?} on port {port}: {r:?}");
}

/// [`send_ok`], then waits (up to 20 s) until `upstream` holds at least `n` transactions;
/// returns them all. The caller asserts on what arrived.
pub fn send_and_wait(
    port: u16,
    from: &str,
    to: &[&str],
    message: &[u8],
    upstream: &Upstream,
    n: usize,
) -> Vec<Txn> {
    send_ok(port, from, to, message);
    upstream.wait(n, Duration::from_secs(20))
}

/// A raw SMTP client for protocol-level tests.
pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub writer: TcpStream,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    /// Reads one full reply (all continuation lines); empty string on EOF.
    pub fn read_reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return all,
                Ok(_) => {}
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.writer.write_all(bytes);
    }

    /// Sends a command line (CRLF added) and returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    /// Whether the server closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0))
    }
}

/// One transaction a fake upstream received.
#[derive(Debug, Clone)]
pub struct Txn {
    pub mail_from: String,
    /// The whole MAIL command line as received (with its parameters, no CRLF).
    pub mail_line: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
    /// The transaction ran over TLS.
    pub tls: bool,
    /// The AUTH PLAIN identity the client used, if any.
    pub auth: Option<String>,
}

impl Txn {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).to_string()
    }
}

/// How the fake upstream misbehaves.
#[derive(Debug, Default, Clone)]
pub struct Script {
    /// RCPT replies by recipient, e.g. "550 5.1.1 no such user".
    pub rcpt_reply: HashMap<String, String>,
    /// Reply to the end of DATA for the first N transactions, then 250.
    pub data_reply: Option<(String, usize)>,
    /// LMTP: reply after DATA per recipient.
    pub lmtp_reply: HashMap<String, String>,
    /// Reply to MAIL FROM instead of 250.
    pub mail_reply: Option<String>,
    /// Greeting instead of 220 (e.g. "421 4.3.2 busy").
    pub greeting: Option<String>,
    /// Close the connection in the middle of DATA, for the first N transactions.
    pub drop_in_data: usize,
    /// Never answer the end of DATA (a stalled server).
    pub stall_after_data: bool,
    /// Leave 8BITMIME out of the EHLO reply (a 7-bit-only next hop).
    pub no_8bitmime: bool,
    /// Advertise SMTPUTF8 in the EHLO reply (by default the fake does not).
    pub smtputf8: bool,
}

/// TLS the fake upstream offers.
#[derive(Clone)]
pub enum UpTls {
    None,
    /// Offers STARTTLS with this server config.
    StartTls(Arc<tokio_rustls::rustls::ServerConfig>),
    /// TLS from the first byte.
    Implicit(Arc<tokio_rustls::rustls::ServerConfig>),
}

/// A fake SMTP (or LMTP) server that records every accepted transaction.
pub struct Upstream {
    pub port: u16,
    pub txns: Arc<Mutex<Vec<Txn>>>,
    pub script: Arc<Mutex<Script>>,
    /// Connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

/// How a fake upstream presents itself: named options instead of positional booleans.
///
/// `Upstream::with(port, UpOptions::smtp().tls(UpTls::StartTls(cfg)).offering_auth())`
#[derive(Clone)]
pub struct UpOptions {
    /// Speak LMTP (LHLO, one reply per recipient after DATA) instead of SMTP.
    pub lmtp: bool,
    /// TLS the fake offers.
    pub tls: UpTls,
    /// Offer AUTH PLAIN (and record the identity in [`Txn::auth`]).
    pub auth: bool,
}

impl UpOptions {
    /// Plain SMTP, no TLS, no AUTH.
    pub fn smtp() -> UpOptions {
        UpOptions {
            lmtp: false,
            tls: UpTls::None,
            auth: false,
        }
    }

    /// Plain LMTP.
    pub fn lmtp() -> UpOptions {
        UpOptions {
            lmtp: true,
            ..UpOptions::smtp()
        }
    }

    /// Offer this TLS.
    pub fn tls(self, tls: UpTls) -> UpOptions {
        UpOptions { tls, ..self }
    }

    /// Offer AUTH PLAIN.
    pub fn offering_auth(self) -> UpOptions {
        UpOptions { auth: true, ..self }
    }
}

impl Upstream {
    /// A plain SMTP fake on `port` (use the relay config's `{port:upNAME}` value).
    pub fn smtp(port: u16) -> Upstream {
        Upstream::with(port, UpOptions::smtp())
    }

    /// A plain LMTP fake on `port`.
    pub fn lmtp(port: u16) -> Upstream {
        Upstream::with(port, UpOptions::lmtp())
    }

    /// A fake on 127.0.0.1:`port` with these options.
    pub fn with(port: u16, options: UpOptions) -> Upstream {
        Upstream::on("127.0.0.1", port, options)
    }

    /// An SMTP server on `ip` port 25, as an MX host (all of 127/8 is loopback on Linux;
    /// port 25 needs root, which CI has).
    pub fn start_mx(ip: &str) -> Upstream {
        Upstream::on(ip, 25, UpOptions::smtp())
    }

    /// Starts on `ip:port`.
    pub fn on(ip: &str, port: u16, options: UpOptions) -> Upstream {
        let listener = TcpListener::bind((ip, port))
            .unwrap_or_else(|e| panic!("cannot listen on {ip}:{port}: {e}"));
        Upstream::serving(listener, options)
    }

    /// Serves on a listener the test already holds (no free-port race).
    pub fn serving(listener: TcpListener, options: UpOptions) -> Upstream {
        let UpOptions { lmtp, tls, auth } = options;
        let port = listener.local_addr().unwrap().port();
        let txns: Arc<Mutex<Vec<Txn>>> = Arc::default();
        let script: Arc<Mutex<Script>> = Arc::default();
        let connections: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let (t, s, n) = (txns.clone(), script.clone(), connections.clone());
        thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (t, s, tls) = (t.clone(), s.clone(), tls.clone());
                thread::spawn(move || {
                    conn.set_read_timeout(Some(Duration::from_secs(60))).ok();
                    let upstream = FakeSession {
                        lmtp,
                        auth,
                        tls,
                        txns: t,
                        script: s,
                    };
                    upstream.serve(conn);
                });
            }
        });
        Upstream {
            port,
            txns,
            script,
            connections,
        }
    }

    pub fn txns(&self) -> Vec<Txn> {
        self.txns.lock().unwrap().clone()
    }

    /// Waits until at least `n` transactions arrived; returns them.
    pub fn wait(&self, n: usize, timeout: Duration) -> Vec<Txn> {
        wait_for(timeout, || self.txns.lock().unwrap().len() >= n);
        self.txns()
    }

    /// Every (recipient, transaction) pair received.
    pub fn by_rcpt(&self) -> Vec<(String, Txn)> {
        self.txns()
            .into_iter()
            .flat_map(|t| t.rcpts.clone().into_iter().map(move |r| (r, t.clone())))
            .collect()
    }
}

/// Anything the fake can talk over: TCP or TLS over TCP.
pub trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

struct FakeSession {
    lmtp: bool,
    auth: bool,
    tls: UpTls,
    txns: Arc<Mutex<Vec<Txn>>>,
    script: Arc<Mutex<Script>>,
}

fn tls_wrap(
    config: &Arc<tokio_rustls::rustls::ServerConfig>,
    conn: TcpStream,
) -> Option<Box<dyn Io>> {
    let session = tokio_rustls::rustls::ServerConnection::new(config.clone()).ok()?;
    let mut stream = tokio_rustls::rustls::StreamOwned::new(session, conn);
    // Finish the handshake now, so a failure ends this connection here.
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).ok()?;
    }
    Some(Box::new(stream))
}

impl FakeSession {
    fn serve(self, conn: TcpStream) {
        let raw = conn.try_clone().unwrap();
        let (stream, mut tls_on): (Box<dyn Io>, bool) = match &self.tls {
            UpTls::Implicit(cfg) => match tls_wrap(cfg, conn) {
                Some(s) => (s, true),
                None => return,
            },
            _ => (Box::new(conn), false),
        };
        let mut r = BufReader::new(stream);
        let greeting = self.script.lock().unwrap().greeting.clone();
        if let Some(g) = greeting {
            let _ = r.get_mut().write_all(format!("{g}\r\n").as_bytes());
            return;
        }
        let _ = r.get_mut().write_all(b"220 upstream.test ESMTP fake\r\n");
        let mut from = String::new();
        let mut mail_line = String::new();
        let mut rcpts: Vec<String> = Vec::new();
        let mut auth_user = None;
        // As a real server: RCPT needs an accepted MAIL, DATA an accepted RCPT (which a
        // pipelining client only learns from the replies).
        let mut mail_ok = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let upper = line.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO") || upper.starts_with("LHLO") {
                let mut caps = String::from("250-upstream.test\r\n");
                let (no_8bit, utf8) = {
                    let s = self.script.lock().unwrap();
                    (s.no_8bitmime, s.smtputf8)
                };
                if !no_8bit {
                    caps.push_str("250-8BITMIME\r\n");
                }
                if utf8 {
                    caps.push_str("250-SMTPUTF8\r\n");
                }
                if matches!(self.tls, UpTls::StartTls(_)) && !tls_on {
                    caps.push_str("250-STARTTLS\r\n");
                }
                if self.auth {
                    caps.push_str("250-AUTH PLAIN\r\n");
                }
                caps + "250 PIPELINING"
            } else if upper.starts_with("STARTTLS") {
                let UpTls::StartTls(cfg) = &self.tls else {
                    continue;
                };
                let _ = r.get_mut().write_all(b"220 2.0.0 go ahead\r\n");
                let Ok(conn) = raw.try_clone() else { return };
                match tls_wrap(cfg, conn) {
                    Some(s) => {
                        r = BufReader::new(s);
                        tls_on = true;
                        continue;
                    }
                    None => return,
                }
            } else if upper.starts_with("AUTH PLAIN ") {
                use base64::Engine;
                let b64 = line[11..].trim();
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_default();
                let parts: Vec<String> = raw
                    .split(|&b| b == 0)
                    .map(|p| String::from_utf8_lossy(p).to_string())
                    .collect();
                auth_user = Some(parts[1..].join(":"));
                "235 2.7.0 ok".into()
            } else if upper.starts_with("HELO") {
                "250 upstream.test".into()
            } else if upper.starts_with("MAIL") {
                from = path_arg(&line);
                mail_line = line.trim_end().to_string();
                rcpts.clear();
                let reply = self
                    .script
                    .lock()
                    .unwrap()
                    .mail_reply
                    .clone()
                    .unwrap_or_else(|| "250 2.1.0 ok".into());
                mail_ok = reply.starts_with('2');
                reply
            } else if upper.starts_with("RCPT") && !mail_ok {
                "503 5.5.1 need MAIL first".into()
            } else if upper.starts_with("RCPT") {
                let to = path_arg(&line);
                match self.script.lock().unwrap().rcpt_reply.get(&to) {
                    Some(reply) => reply.clone(),
                    None => {
                        rcpts.push(to);
                        "250 2.1.5 ok".into()
                    }
                }
            } else if upper.starts_with("DATA") && rcpts.is_empty() {
                "554 5.5.1 no valid recipients".into()
            } else if upper.starts_with("DATA") {
                mail_ok = false;
                let _ = r.get_mut().write_all(b"354 go ahead\r\n");
                let mut data = Vec::new();
                loop {
                    {
                        let mut s = self.script.lock().unwrap();
                        if s.drop_in_data > 0 && data.len() > 10 {
                            s.drop_in_data -= 1;
                            return;
                        }
                    }
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l).unwrap_or(0) == 0 {
                        return;
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    if l.starts_with(b".") {
                        l.remove(0);
                    }
                    data.extend_from_slice(&l);
                }
                let mut s = self.script.lock().unwrap();
                if s.stall_after_data {
                    drop(s);
                    thread::sleep(Duration::from_secs(3600));
                    return;
                }
                let txn = Txn {
                    mail_from: from.clone(),
                    mail_line: mail_line.clone(),
                    rcpts: rcpts.clone(),
                    data,
                    tls: tls_on,
                    auth: auth_user.clone(),
                };
                if self.lmtp {
                    let mut out = String::new();
                    let mut accepted = Vec::new();
                    for rc in &rcpts {
                        match s.lmtp_reply.get(rc) {
                            Some(reply) => out.push_str(&format!("{reply}\r\n")),
                            None => {
                                accepted.push(rc.clone());
                                out.push_str("250 2.0.0 ok\r\n");
                            }
                        }
                    }
                    if !accepted.is_empty() {
                        self.txns.lock().unwrap().push(Txn {
                            rcpts: accepted,
                            ..txn
                        });
                    }
                    let _ = r.get_mut().write_all(out.as_bytes());
                    continue;
                }
                match &mut s.data_reply {
                    Some((reply, n)) if *n > 0 => {
                        *n -= 1;
                        reply.clone()
                    }
                    _ => {
                        self.txns.lock().unwrap().push(txn);
                        "250 2.0.0 queued".into()
                    }
                }
            } else if upper.starts_with("QUIT") {
                let _ = r.get_mut().write_all(b"221 bye\r\n");
                return;
            } else if upper.starts_with("RSET") {
                mail_ok = false;
                rcpts.clear();
                "250 ok".into()
            } else if upper.starts_with("NOOP") {
                "250 ok".into()
            } else {
                "502 unknown".into()
            };
            if r.get_mut()
                .write_all(format!("{reply}\r\n").as_bytes())
                .is_err()
            {
                return;
            }
        }
    }
}

/// The path of a MAIL or RCPT line: what is between `<` and `>`, empty without them.
pub fn path_arg(line: &str) -> String {
    line.split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(a, _)| a.to_string())
        .unwrap_or_default()
}

/// The value of header field `name` in a message's header section, if there.
pub fn header<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// A config for tests: mx, relay and tap listeners, team delivery to the `upteam`
/// fake, outside delivery to `upout`, retries after one second.
pub fn base_config(extra_team: &str) -> String {
    format!(
        r#"
[server]
hostname = "relay.test"
spool = "{{dir}}/spool"
max_message_size = 100000
max_recipients = 5
idle_timeout = "5s"

[team]
domains = ["example.com"]
private_address = "private@example.com"
never_archive = ["*@lawfirm.example"]
{extra_team}

[[listen]]
address = "127.0.0.1:{{port:mx}}"
mode = "mx"

[[listen]]
address = "127.0.0.1:{{port:relay}}"
mode = "relay"
allow = ["127.0.0.0/8"]

[deliver]
team = "smtp://127.0.0.1:{{port:upteam}}"
outside = "smtp://127.0.0.1:{{port:upout}}"
retry = ["1s"]
max_queue_time = "1h"

[[list]]
address = "sales@example.com"
members = ["alice@example.com", "bob@example.com"]

[[list]]
address = "customers-archive@example.com"
members = ["alice@example.com", "bob@example.com", "carol@example.com", "dan@example.com"]
archive_of = ["*@example.com"]
"#
    )
}

/// A plain message with the given headers.
pub fn message(from: &str, to: &str, id: &str, extra: &str) -> Vec<u8> {
    format!("From: {from}\r\nTo: {to}\r\nSubject: test\r\nMessage-ID: <{id}>\r\n{extra}\r\nHello.\r\n.leading dot\r\n").into_bytes()
}

/// Where a test relay's Maildir for `addr` is.
pub fn maildir(root: &Path, addr: &str) -> PathBuf {
    let (local, domain) = addr.split_once('@').unwrap();
    root.join(domain).join(local).join("new")
}

/// Writes ca.pem, cert.pem, key.pem (for localhost and 127.0.0.1) into `dir`: a CA made
/// at test time and a server certificate it signed.
pub fn make_certs(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "teamrelay test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// A rustls server config from the files [`make_certs`] wrote.
pub fn server_tls(dir: &Path) -> Arc<tokio_rustls::rustls::ServerConfig> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    Arc::new(config)
}

/// Runs `teamrelay ARGS` to the end: (exit code, stdout, stderr); -1 for a signal.
pub fn teamrelay<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String, String) {
    teamrelay_in(Path::new("."), args)
}

/// [`teamrelay`] with `dir` as the working directory (relative paths in its arguments and
/// in its messages are then relative to `dir`).
pub fn teamrelay_in<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_teamrelay"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run the teamrelay binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `teamrelay passwd` with `password` on stdin; the printed hash.
pub fn passwd(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_teamrelay"))
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
