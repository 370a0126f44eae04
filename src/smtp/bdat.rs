//! CHUNKING (RFC 3030): `BDAT n [LAST]` sends exactly n bytes, no dot-stuffing. The same
//! guarantees as DATA hold: the size cap, and no bare CR or LF anywhere (a message that
//! would mean something else to a DATA-speaking next hop is refused).

use tracing::info;

use super::session::{Session, HEAD_MAX};
use super::Reply;
use crate::spool::{BodySink, Spool};

/// A BDAT transfer in progress.
pub struct Chunks {
    id: String,
    sink: BodySink,
    head: Vec<u8>,
    size: usize,
    /// The previous byte was CR (a CRLF may straddle two chunks).
    prev_cr: bool,
    bare: bool,
    too_big: bool,
    /// A byte above 127 was received.
    eight_bit: bool,
}

impl Chunks {
    /// Drops the partial message.
    pub async fn discard(self) {
        self.sink.discard().await;
    }

    fn push(&mut self, bytes: &[u8], max: usize) {
        self.eight_bit |= !bytes.is_ascii();
        for &b in bytes {
            match (self.prev_cr, b) {
                (true, b'\n') => {}
                (true, _) => self.bare = true,
                (false, b'\n') => self.bare = true,
                _ => {}
            }
            self.prev_cr = b == b'\r';
        }
        if self.bare || self.too_big {
            return;
        }
        if self.size + bytes.len() > max {
            self.too_big = true;
            self.sink.buf.clear();
            return;
        }
        self.size += bytes.len();
        self.sink.buf.extend_from_slice(bytes);
        let room = HEAD_MAX.saturating_sub(self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..room]);
    }
}

impl Session {
    pub(super) async fn bdat(&mut self, n: usize, last: bool) {
        let ready = self.txn.as_ref().is_some_and(|t| !t.recipients.is_empty());
        if !ready {
            // The chunk must still be read, or its bytes would be taken for commands.
            self.take_bytes(n, |_| {}).await;
            return self.reply(Reply::bad_sequence("need MAIL and RCPT before BDAT"));
        }
        let mut chunks = match self.bdat.take() {
            Some(c) => c,
            None => {
                let id = Spool::new_id();
                let sink = self.spool().body_sink(&id);
                Chunks {
                    id,
                    sink,
                    head: Vec::new(),
                    size: 0,
                    prev_cr: false,
                    bare: false,
                    too_big: false,
                    eight_bit: false,
                }
            }
        };
        let max = self.config.server.max_message_size;
        if !self.take_bytes(n, |piece| chunks.push(piece, max)).await {
            chunks.discard().await;
            self.closing = true;
            return;
        }
        if !chunks.bare && !chunks.too_big && chunks.sink.maybe_flush().await.is_err() {
            chunks.too_big = true;
        }
        if !last {
            self.bdat = Some(chunks);
            return self.reply(Reply::new(250, "2.0.0", format!("{n} octets received")));
        }
        let bare = chunks.bare || chunks.prev_cr;
        let received = if bare {
            Err(Reply::bare_line_ending())
        } else if chunks.too_big {
            Err(Reply::too_big())
        } else {
            Ok((std::mem::take(&mut chunks.head), chunks.size))
        };
        let Chunks {
            id,
            sink,
            eight_bit,
            ..
        } = chunks;
        self.body_8bit = eight_bit;
        self.finish_message(&id, sink, received).await;
    }

    /// A command between BDAT chunks: RSET and QUIT end the transfer; anything else is
    /// out of sequence and also ends it (the client has lost track).
    pub async fn command_during_bdat(&mut self, line: &[u8]) {
        let upper = String::from_utf8_lossy(line).trim().to_ascii_uppercase();
        if upper == "RSET" || upper == "QUIT" || upper == "NOOP" {
            return self.command(line).await;
        }
        info!(peer = %self.peer, "command during BDAT transfer; transaction aborted");
        self.reset_transaction().await;
        self.reply(Reply::bad_sequence("only BDAT may follow BDAT"));
    }
}
