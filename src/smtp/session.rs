//! One client connection: reading command lines (pipelining-aware), the DATA phase, the
//! limits of SPEC §5 (line length, idle time, ten errors), and writing replies. What each
//! command means lives in `commands.rs`; what happens to an accepted message in
//! `accept.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::data::{DataError, DotDecoder};
use super::{Reply, Stream};
use crate::address::Address;
use crate::config::{Config, Listener};
use crate::shared::Shared;
use crate::spool::{BodySink, Spool};

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_LINE: usize = 512;
/// Error replies after which the session is closed.
pub const MAX_ERRORS: usize = 10;
/// How much of the message start is kept in memory for header parsing.
pub const HEAD_MAX: usize = 64 * 1024;
/// Read size while reading commands: small, because idle sessions may be thousands.
const LINE_CHUNK: usize = 1024;
/// Read size during DATA and BDAT.
const DATA_CHUNK: usize = 64 * 1024;

/// An open mail transaction (after MAIL FROM).
#[derive(Debug, Default)]
pub struct Transaction {
    /// `None` for the null sender.
    pub sender: Option<Address>,
    pub recipients: Vec<Address>,
    /// MAIL carried `SMTPUTF8` (RFC 6531): non-ASCII addresses and headers allowed, and
    /// only a next hop that offers SMTPUTF8 may take the message (SPEC §6).
    pub smtputf8: bool,
}

/// Everything one session knows.
pub struct Session {
    stream: Box<dyn Stream>,
    pub peer: SocketAddr,
    pub listener: Listener,
    pub shared: Arc<Shared>,
    pub config: Arc<Config>,
    /// Bytes read but not consumed.
    inbuf: Vec<u8>,
    /// Replies not yet written (sent when the client's pipelined input runs out).
    outbuf: Vec<u8>,
    /// The name the client gave in EHLO/HELO/LHLO.
    pub helo: Option<String>,
    /// Whether the client used EHLO/LHLO (ESMTP) rather than HELO.
    pub esmtp: bool,
    pub txn: Option<Transaction>,
    /// A BDAT transfer in progress (RFC 3030).
    pub bdat: Option<super::bdat::Chunks>,
    /// TLS is active on this connection (implicit, or after STARTTLS).
    pub tls_active: bool,
    /// The submission account that authenticated, if any.
    pub auth_user: Option<String>,
    pub errors: usize,
    /// A command has been read (the first one is checked for HTTP probes).
    pub seen_command: bool,
    /// Set when the session must end after the pending replies.
    pub closing: bool,
    /// The message just received (DATA or BDAT) holds a byte above 127: it needs a next
    /// hop that offers 8BITMIME (SPEC §6).
    pub body_8bit: bool,
}

/// What reading a command line produced.
enum Line {
    Command(Vec<u8>),
    TooLong,
    Eof,
    Timeout,
}

/// Whether a connection begins in clear (STARTTLS may follow) or already under TLS
/// (implicit TLS, the port-465 way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Plain,
    Tls,
}

/// Runs a session to its end. Never panics on input; errors end this session only.
pub async fn run(
    stream: Box<dyn Stream>,
    peer: SocketAddr,
    listener: Listener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    wire: Wire,
) {
    let config = shared.config();
    let mut s = Session {
        bdat: None,
        tls_active: wire == Wire::Tls,
        auth_user: None,
        stream,
        peer,
        listener,
        config,
        shared,
        inbuf: Vec::with_capacity(LINE_CHUNK),
        outbuf: Vec::new(),
        helo: None,
        esmtp: false,
        txn: None,
        errors: 0,
        seen_command: false,
        closing: false,
        body_8bit: false,
    };
    debug!(peer = %peer, "connect");
    metrics::gauge!("teamrelay_connections_open").increment(1.0);
    if shutdown.is_cancelled() {
        s.reply(Reply::shutting_down());
        let _ = s.flush().await;
        return;
    }
    let greeting = format!("{} ESMTP teamrelay", s.config.server.hostname);
    s.reply(Reply::new(220, "", greeting));
    s.serve(&shutdown).await;
    let _ = s.flush().await;
    let _ = s.stream.shutdown().await;
    metrics::gauge!("teamrelay_connections_open").decrement(1.0);
    debug!(peer = %peer, "disconnect");
}

impl Session {
    /// Reads and answers commands until the client quits, times out or errs too often,
    /// or `shutdown` comes between transactions.
    async fn serve(&mut self, shutdown: &CancellationToken) {
        while !self.closing {
            let line = tokio::select! {
                l = self.read_line() => l,
                _ = shutdown.cancelled(), if self.txn.is_none() => {
                    // Between transactions a stop is safe: nothing is half-accepted.
                    self.reply(Reply::shutting_down());
                    break;
                }
            };
            match line {
                Line::Command(bytes) if self.bdat.is_some() && !is_bdat(&bytes) => {
                    // RFC 3030: only BDAT (or RSET/QUIT) may follow a non-final BDAT.
                    self.command_during_bdat(&bytes).await
                }
                Line::Command(bytes) => self.command(&bytes).await,
                Line::TooLong => self.reply(Reply::line_too_long()),
                Line::Eof => break,
                Line::Timeout => {
                    self.reply(Reply::idle_timeout());
                    break;
                }
            }
        }
    }

    /// Queues a reply and counts errors; the tenth error closes the session.
    pub fn reply(&mut self, reply: Reply) {
        self.outbuf.extend_from_slice(reply.to_wire().as_bytes());
        if reply.is_error() && reply.code != 421 {
            self.errors += 1;
            if self.errors >= MAX_ERRORS {
                info!(peer = %self.peer, "too many errors, closing");
                crate::metrics::rejected_connection("too_many_errors");
                self.outbuf
                    .extend_from_slice(Reply::too_many_errors().to_wire().as_bytes());
                self.closing = true;
            }
        }
        if reply.code == 221 || reply.code == 421 {
            self.closing = true;
        }
    }

    /// Queues a reply without counting it as an error (LMTP's per-recipient repeats
    /// of one outcome).
    pub fn reply_quiet(&mut self, reply: &Reply) {
        self.outbuf.extend_from_slice(reply.to_wire().as_bytes());
    }

    /// Writes queued replies.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.outbuf.is_empty() {
            self.stream.write_all(&self.outbuf).await?;
            self.stream.flush().await?;
            self.outbuf.clear();
        }
        Ok(())
    }

    /// Reads more input, flushing replies first (the client may be waiting for them).
    /// Reads at most `chunk` bytes; gives up at `deadline`. Returns 0 at end of input.
    async fn fill(&mut self, chunk: usize, deadline: Instant) -> Result<usize, Line> {
        if self.flush().await.is_err() {
            return Err(Line::Eof);
        }
        let start = self.inbuf.len();
        self.inbuf.resize(start + chunk, 0);
        let r = tokio::time::timeout_at(deadline, self.stream.read(&mut self.inbuf[start..])).await;
        let n = match r {
            Err(_) => {
                self.inbuf.truncate(start);
                return Err(Line::Timeout);
            }
            Ok(Err(_)) => 0,
            Ok(Ok(n)) => n,
        };
        self.inbuf.truncate(start + n);
        Ok(n)
    }

    /// When a read that starts now must have finished.
    fn read_deadline(&self) -> Instant {
        Instant::now() + self.config.server.idle_timeout.max(Duration::from_secs(1))
    }

    /// A line of an AUTH exchange (`None` if the client went away or timed out).
    pub async fn read_auth_line(&mut self) -> Option<Vec<u8>> {
        match self.read_line().await {
            Line::Command(l) => Some(l),
            Line::TooLong => Some(Vec::new()),
            Line::Eof | Line::Timeout => None,
        }
    }

    /// Takes `n` bytes of input (BDAT), reading more as needed; calls `f` with each
    /// piece. Returns false if the client went away first.
    pub async fn take_bytes(&mut self, mut n: usize, mut f: impl FnMut(&[u8])) -> bool {
        while n > 0 {
            if self.inbuf.is_empty() {
                let deadline = self.read_deadline();
                match self.fill(DATA_CHUNK, deadline).await {
                    Ok(k) if k > 0 => {}
                    _ => return false,
                }
            }
            let k = n.min(self.inbuf.len());
            f(&self.inbuf[..k]);
            self.inbuf.drain(..k);
            n -= k;
        }
        true
    }

    /// The next command line (CRLF or LF included), or why there is none.
    async fn read_line(&mut self) -> Line {
        let mut too_long = false;
        // The whole line must arrive within the idle timeout, not each byte of it: a
        // client trickling one byte a second (slowloris) is timed out all the same.
        let deadline = self.read_deadline();
        if self.inbuf.is_empty() && self.inbuf.capacity() > 4 * LINE_CHUNK {
            // Give back the large buffer of a finished DATA phase: idle sessions are many.
            self.inbuf = Vec::with_capacity(LINE_CHUNK);
        }
        loop {
            if let Some(i) = self.inbuf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.inbuf.drain(..=i).collect();
                if too_long || line.len() > MAX_LINE {
                    return Line::TooLong;
                }
                return Line::Command(line);
            }
            if self.inbuf.len() > MAX_LINE {
                // Keep memory bounded: drop what we have, remember to reject the line.
                self.inbuf.clear();
                too_long = true;
            }
            match self.fill(LINE_CHUNK, deadline).await {
                Ok(0) => return Line::Eof,
                Ok(_) => {}
                Err(line) => return line,
            }
        }
    }

    /// Discards input the client sent ahead (e.g. before the TLS handshake).
    pub fn discard_input(&mut self) {
        self.inbuf.clear();
    }

    /// Whether unread input is waiting (a pipelined command).
    pub fn has_pending_input(&self) -> bool {
        !self.inbuf.is_empty()
    }

    /// Replaces the stream (STARTTLS).
    pub fn take_stream(&mut self) -> Box<dyn Stream> {
        std::mem::replace(&mut self.stream, Box::new(tokio::io::duplex(1).0))
    }

    /// Puts a (new) stream in place.
    pub fn set_stream(&mut self, stream: Box<dyn Stream>) {
        self.stream = stream;
    }

    /// Receives the message after `354`, streaming it to `sink`. Returns the bytes of
    /// the header section (for policy) and the body size, or the reply to give.
    pub async fn receive_data(&mut self, sink: &mut BodySink) -> Result<(Vec<u8>, usize), Reply> {
        let max = self.config.server.max_message_size;
        let mut decoder = DotDecoder::new(max);
        let mut head: Vec<u8> = Vec::new();
        let mut head_done = false;
        self.body_8bit = false;
        loop {
            if !self.inbuf.is_empty() {
                let start = sink.buf.len();
                let done = decoder.feed(&self.inbuf, &mut sink.buf);
                let consumed = done.unwrap_or(self.inbuf.len());
                self.inbuf.drain(..consumed);
                // `is_ascii` runs a word at a time: far cheaper than the decoder itself.
                self.body_8bit |= !sink.buf[start.min(sink.buf.len())..].is_ascii();
                if !head_done {
                    let new = &sink.buf[start..];
                    let room = HEAD_MAX.saturating_sub(head.len()).min(new.len());
                    head.extend_from_slice(&new[..room]);
                    head_done = head.len() >= HEAD_MAX;
                }
                if done.is_some() {
                    return match decoder.result() {
                        Ok(size) => Ok((head, size)),
                        Err(DataError::BareLineEnding) => Err(Reply::bare_line_ending()),
                        Err(DataError::TooBig) => Err(Reply::too_big()),
                    };
                }
                if decoder.result().is_err() {
                    sink.buf.clear();
                } else if sink.maybe_flush().await.is_err() {
                    return Err(Reply::local_error());
                }
            }
            let deadline = self.read_deadline();
            match self.fill(DATA_CHUNK, deadline).await {
                Ok(0) | Err(Line::Eof) => {
                    self.closing = true;
                    return Err(Reply::new(451, "4.3.0", "connection closed during DATA")
                        .because("connection_closed"));
                }
                Err(_) => {
                    self.closing = true;
                    return Err(Reply::idle_timeout());
                }
                Ok(_) => {}
            }
        }
    }

    /// The spool, for brevity.
    pub fn spool(&self) -> &Spool {
        &self.shared.spool
    }
}

fn is_bdat(line: &[u8]) -> bool {
    line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"BDAT")
}
