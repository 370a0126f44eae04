//! What each SMTP/LMTP command means, one method per verb. The grammar is smtp-proto's;
//! the state machine and the relay policy (who may send to whom) are ours.

use std::borrow::Cow;

use smtp_proto::{Error as ParseError, Request};
use tracing::{info, warn};

use super::params::{self, SizeParam};
use super::session::{Session, Transaction};
use super::Reply;
use crate::address::Address;
use crate::config::{ListenTls, Mode, Protocol};

/// Which greeting the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hello {
    /// HELO: plain SMTP, no extensions.
    Helo,
    /// EHLO: ESMTP.
    Ehlo,
    /// LHLO: LMTP (RFC 2033), only on an LMTP listener.
    Lhlo,
}

impl Session {
    /// Handles one command line.
    pub async fn command(&mut self, line: &[u8]) {
        // smtp-proto wants the line end; a bare-LF line is accepted for commands (many
        // clients and test tools send them) — only DATA is strict about CRLF.
        let first = !self.seen_command;
        self.seen_command = true;
        if first && params::is_http_request(line) {
            // A browser or proxy probe, not a mail client: answer once and hang up.
            info!(peer = %self.peer, "HTTP request on an SMTP port, closing");
            crate::metrics::rejected_connection("http_probe");
            return self.reply(Reply::http_probe());
        }
        if is_verb(line, b"MAIL") && self.helo.is_some() && self.txn.is_none() {
            if let Some(refusal) = self.size_refusal(line) {
                return self.reply(refusal);
            }
        }
        let parsed = Request::parse(&mut line.iter());
        let request = match parsed {
            Ok(r) => r,
            Err(e) => return self.reply(parse_error(e)),
        };
        match request {
            Request::Ehlo { host } => self.hello(host, Hello::Ehlo).await,
            Request::Helo { host } => self.hello(host, Hello::Helo).await,
            Request::Lhlo { host } => self.hello(host, Hello::Lhlo).await,
            Request::Mail { from } => self.mail(from, line),
            Request::Rcpt { to } => self.rcpt(to, line),
            Request::Data => self.data().await,
            Request::Rset => {
                self.reset_transaction().await;
                self.reply(Reply::ok());
            }
            Request::Noop { .. } => self.reply(Reply::ok()),
            Request::Quit => self.reply(Reply::bye()),
            Request::Vrfy { .. } => self.reply(Reply::vrfy()),
            Request::Help { .. } => self.reply(Reply::new(
                214,
                "2.0.0",
                "see RFC 5321; teamrelay speaks plain SMTP",
            )),
            Request::StartTls => self.starttls().await,
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response.into_owned()).await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last).await,
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.reply(Reply::not_implemented()),
        }
    }

    async fn hello(&mut self, host: Cow<'_, str>, how: Hello) {
        let lmtp = self.listener.protocol == Protocol::Lmtp;
        let esmtp = how != Hello::Helo;
        if lmtp != (how == Hello::Lhlo) {
            let want = if lmtp {
                "this is an LMTP server: use LHLO"
            } else {
                "use EHLO or HELO"
            };
            return self.reply(Reply::bad_sequence(want));
        }
        if host.trim().is_empty() {
            return self.reply(Reply::syntax("EHLO domain"));
        }
        if self.has_pending_input() {
            // RFC 2920: EHLO ends a group; a client cannot know yet whether it may
            // pipeline. Whatever it sent behind EHLO (or before the greeting) is dropped.
            warn!(peer = %self.peer, "discarding commands pipelined behind HELO/EHLO");
            crate::metrics::rejected_connection("improper_pipelining");
            self.discard_input();
        }
        self.helo = Some(host.trim().to_string());
        self.esmtp = esmtp;
        self.txn = None;
        if let Some(chunks) = self.bdat.take() {
            chunks.discard().await;
        }
        let hostname = self.config.server.hostname.clone();
        if !esmtp {
            return self.reply(Reply::new(250, "", hostname));
        }
        let mut lines = vec![
            hostname,
            "PIPELINING".into(),
            format!("SIZE {}", self.config.server.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        if self.listener.tls == ListenTls::StartTls && !self.tls_active {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        self.reply(Reply::lines(250, "", lines));
    }

    fn mail(&mut self, from: smtp_proto::MailFrom<Cow<'_, str>>, line: &[u8]) {
        if self.helo.is_none() {
            return self.reply(Reply::bad_sequence("say EHLO first"));
        }
        if self.txn.is_some() {
            return self.reply(Reply::bad_sequence("nested MAIL command"));
        }
        // A new transaction sees the configuration as reloaded by SIGHUP; one in
        // progress keeps the snapshot it started with.
        self.config = self.shared.config();
        if self.listener.mode == Mode::Tap && !self.client_allowed() {
            return self.reply(Reply::tap_denied());
        }
        if self.listener.mode == Mode::Submission && self.auth_user.is_none() {
            return self.reply(Reply::auth_required());
        }
        if from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            // RFC 3030 §3: BINARYMIME only where advertised, and it is not.
            return self.reply(Reply::bad_parameter("BODY=BINARYMIME"));
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        let sender = if from.address.is_empty() {
            None
        } else {
            match self.path(&from.address, line, smtputf8, Reply::bad_sender) {
                Ok(a) => Some(a),
                Err(reply) => return self.reply(reply),
            }
        };
        if let Some(name) = &self.auth_user {
            let owns = self
                .config
                .user(name)
                .is_some_and(|u| sender.as_ref().is_some_and(|s| u.addresses.contains(s)));
            if !owns {
                info!(peer = %self.peer, user = %name, sender = ?sender, "sender not owned by user");
                return self.reply(Reply::sender_not_owned());
            }
        }
        self.txn = Some(Transaction {
            sender,
            recipients: Vec::new(),
            smtputf8,
        });
        self.reply(Reply::sender_ok());
    }

    /// The `SIZE=` rules of SPEC §5, read from the raw line before smtp-proto, which
    /// wraps very long numbers: digits only, and any value above the limit is too big.
    fn size_refusal(&self, line: &[u8]) -> Option<Reply> {
        match params::size_param(line) {
            SizeParam::Absent => None,
            SizeParam::NotANumber => Some(Reply::new(501, "5.5.4", "SIZE takes digits only")),
            SizeParam::Number(None) => Some(Reply::too_big()),
            SizeParam::Number(Some(n)) => {
                (n > self.config.server.max_message_size as u64).then(Reply::too_big)
            }
        }
    }

    /// An envelope address from MAIL or RCPT: as written on the line (a quoted local
    /// part keeps its quotes), ASCII unless the transaction is SMTPUTF8 (RFC 6531 §3.3),
    /// and never a quoted local part in a team domain.
    fn path(
        &self,
        parsed: &str,
        line: &[u8],
        smtputf8: bool,
        malformed: fn() -> Reply,
    ) -> Result<Address, Reply> {
        let raw = params::raw_path(line).filter(|r| r.contains('"'));
        let text = raw.as_deref().unwrap_or(parsed);
        if !smtputf8 && !text.is_ascii() {
            return Err(Reply::needs_smtputf8());
        }
        let address = Address::parse(text).map_err(|_| malformed())?;
        if address.is_quoted() && self.config.is_internal(&address) {
            return Err(malformed());
        }
        Ok(address)
    }

    fn rcpt(&mut self, to: smtp_proto::RcptTo<Cow<'_, str>>, line: &[u8]) {
        let Some(txn) = self.txn.as_ref() else {
            return self.reply(Reply::bad_sequence("need MAIL before RCPT"));
        };
        if txn.recipients.len() >= self.config.server.max_recipients {
            crate::metrics::rejected_recipient("too_many_recipients");
            return self.reply(Reply::too_many_recipients());
        }
        let smtputf8 = txn.smtputf8;
        let address = if to.address.is_empty() {
            // `RCPT TO:<postmaster>` (RFC 5321 §4.1.1.3): the first team domain's. A valid
            // config has at least one domain.
            Address::parse(&format!("postmaster@{}", self.config.team.domains[0]))
                .map_err(|_| Reply::bad_recipient())
        } else {
            self.path(&to.address, line, smtputf8, Reply::bad_recipient)
        };
        let rcpt = match address {
            Ok(a) => a,
            Err(reply) => return self.reply(reply),
        };
        if let Some(refusal) = self.refuse_recipient(&rcpt) {
            crate::maillog::rejected("rcpt", None, rcpt.as_str(), self.peer, &refusal);
            crate::metrics::rejected_recipient(refusal.reason());
            return self.reply(refusal);
        }
        if let Some(txn) = self.txn.as_mut() {
            if !txn.recipients.contains(&rcpt) {
                txn.recipients.push(rcpt);
            }
        }
        self.reply(Reply::recipient_ok());
    }

    /// The relay policy of SPEC §5: why this client may not send to `rcpt`, if it may not.
    fn refuse_recipient(&self, rcpt: &Address) -> Option<Reply> {
        let c = &self.config;
        let trusted = match self.listener.mode {
            Mode::Submission => self.auth_user.is_some(),
            // Provider sending ranges are shared by all of the provider's customers: the
            // network alone proves nothing, the sender must be the team's (or null, for
            // the provider's bounces). Everyone else is treated as on an MX.
            Mode::Relay => {
                self.auth_user.is_some() || (self.client_allowed() && self.sender_is_team())
            }
            // A tap delivers no original, only archive copies inside the team.
            Mode::Tap => self.client_allowed() || self.auth_user.is_some(),
            Mode::Mx => false,
        };
        if trusted {
            return None;
        }
        if !c.is_internal(rcpt) {
            return Some(Reply::relay_denied());
        }
        let known = c.list(rcpt).is_some()
            || c.list_of_bounces(rcpt).is_some()
            || c.team.private_address.as_ref() == Some(rcpt)
            || c.is_known_mailbox(rcpt);
        (!known).then(Reply::unknown_mailbox)
    }

    /// Whether the open transaction's sender is null or in a team domain.
    fn sender_is_team(&self) -> bool {
        let sender = self.txn.as_ref().and_then(|t| t.sender.as_ref());
        sender.is_none_or(|s| self.config.is_internal(s))
    }

    /// Whether the client address is in the listener's `allow` networks.
    pub fn client_allowed(&self) -> bool {
        self.listener
            .allow
            .iter()
            .any(|net| net.contains(self.peer.ip()))
    }

    async fn data(&mut self) {
        let Some(txn) = self.txn.as_ref() else {
            return self.reply(Reply::bad_sequence("need MAIL before DATA"));
        };
        if self.bdat.is_some() {
            return self.reply(Reply::bad_sequence("DATA is not allowed after BDAT"));
        }
        if txn.recipients.is_empty() {
            return self.reply(Reply::bad_sequence("need RCPT before DATA"));
        }
        self.reply(Reply::start_data());
        let id = crate::spool::Spool::new_id();
        let mut sink = self.spool().body_sink(&id);
        let received = self.receive_data(&mut sink).await;
        self.finish_message(&id, sink, received).await;
    }

    /// Accepts or rejects a received message and gives the reply (one per recipient on
    /// LMTP). Ends the transaction either way.
    pub async fn finish_message(
        &mut self,
        id: &str,
        sink: crate::spool::BodySink,
        received: Result<(Vec<u8>, usize), Reply>,
    ) {
        let txn = self.txn.take().unwrap_or_default();
        let reply = match received {
            Err(reply) => {
                crate::maillog::rejected("data", Some(id), "message", self.peer, &reply);
                crate::metrics::rejected_message(reply.reason());
                sink.discard().await;
                reply
            }
            Ok((head, size)) => self.accept(id, &txn, sink, &head, size).await,
        };
        if self.listener.protocol == Protocol::Lmtp {
            // RFC 2033: one reply per accepted recipient. The spool takes a message for
            // all its recipients or none, so they all share the outcome.
            for _ in 1..txn.recipients.len() {
                self.reply_quiet(&reply);
            }
        }
        self.reply(reply);
    }
}

/// Whether `line` starts with the command `verb` (case-insensitive).
fn is_verb(line: &[u8], verb: &[u8]) -> bool {
    line.len() > verb.len() && line[..verb.len()].eq_ignore_ascii_case(verb)
}

/// Maps a grammar error to the reply SPEC §5 names.
fn parse_error(e: ParseError) -> Reply {
    match e {
        ParseError::UnknownCommand => Reply::unknown_command(),
        ParseError::InvalidSenderAddress => Reply::bad_sender(),
        ParseError::InvalidRecipientAddress => Reply::bad_recipient(),
        ParseError::SyntaxError { syntax } => Reply::syntax(syntax),
        ParseError::InvalidParameter { param } => {
            Reply::new(501, "5.5.4", format!("invalid parameter {param}"))
        }
        ParseError::UnsupportedParameter { param } => Reply::bad_parameter(&param),
        ParseError::NeedsMoreData { .. }
        | ParseError::ResponseTooLong
        | ParseError::InvalidResponse { .. } => Reply::new(500, "5.5.2", "syntax error"),
    }
}
