//! Replies to an SMTP client: code, RFC 3463 enhanced status, and deliberately generic
//! text. Details of why something failed go to the log, not to a possibly hostile peer.

use std::fmt;

/// One (possibly multi-line) reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// Enhanced status code (`5.7.1`), empty for the greeting and EHLO.
    pub enhanced: &'static str,
    pub lines: Vec<String>,
    /// The metrics label `reason` when this reply refuses something, set by whoever
    /// made the reply (it knows why), never guessed from the code: a tap denial and a
    /// relay denial share `554 5.7.1` but are different events.
    pub reason: &'static str,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
            reason: "other",
        }
    }

    /// A multi-line reply (EHLO, HELP, an AUTH challenge).
    pub fn lines(code: u16, enhanced: &'static str, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced,
            lines,
            reason: "other",
        }
    }

    /// The same reply with this metrics reason.
    pub fn because(self, reason: &'static str) -> Reply {
        Reply { reason, ..self }
    }

    /// Whether this reply counts as an error (4xx/5xx) for the ten-error limit.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    /// The wire form, CRLF-terminated, with `-` continuation on all but the last line.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        let n = self.lines.len();
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i + 1 == n { ' ' } else { '-' };
            if self.enhanced.is_empty() {
                out.push_str(&format!("{}{}{}\r\n", self.code, sep, line));
            } else {
                out.push_str(&format!(
                    "{}{}{} {}\r\n",
                    self.code, sep, self.enhanced, line
                ));
            }
        }
        out
    }

    /// The metrics label `reason` of a refusal.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "OK")
    }
    pub fn sender_ok() -> Reply {
        Reply::new(250, "2.1.0", "sender OK")
    }
    pub fn recipient_ok() -> Reply {
        Reply::new(250, "2.1.5", "recipient OK")
    }
    pub fn start_data() -> Reply {
        Reply::new(354, "", "end data with <CR><LF>.<CR><LF>")
    }
    pub fn queued(id: &str) -> Reply {
        Reply::new(250, "2.0.0", format!("OK queued as {id}"))
    }
    pub fn bye() -> Reply {
        Reply::new(221, "2.0.0", "bye")
    }
    pub fn vrfy() -> Reply {
        Reply::new(
            252,
            "2.5.0",
            "cannot verify, but will accept and attempt delivery",
        )
    }
    pub fn relay_denied() -> Reply {
        Reply::new(554, "5.7.1", "relay access denied").because("relay_denied")
    }
    pub fn unknown_mailbox() -> Reply {
        Reply::new(550, "5.1.1", "no such mailbox here").because("unknown_mailbox")
    }
    pub fn too_big() -> Reply {
        Reply::new(552, "5.3.4", "message too big").because("too_big")
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3", "too many recipients").because("too_many_recipients")
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "line too long").because("syntax")
    }
    pub fn syntax(text: &str) -> Reply {
        Reply::new(501, "5.5.4", format!("syntax: {text}")).because("syntax")
    }
    pub fn unknown_command() -> Reply {
        Reply::new(502, "5.5.1", "command not recognized")
    }
    pub fn not_implemented() -> Reply {
        Reply::new(502, "5.5.1", "command not implemented")
    }
    pub fn bad_sequence(text: &str) -> Reply {
        Reply::new(503, "5.5.1", text.to_string())
    }
    pub fn bad_sender() -> Reply {
        Reply::new(501, "5.1.7", "malformed sender address").because("bad_address")
    }
    pub fn bad_recipient() -> Reply {
        Reply::new(501, "5.1.3", "malformed recipient address").because("bad_address")
    }
    pub fn bad_parameter(param: &str) -> Reply {
        Reply::new(555, "5.5.4", format!("unsupported parameter {param}")).because("syntax")
    }
    pub fn loop_detected() -> Reply {
        Reply::new(554, "5.4.6", "too many Received headers: mail loop").because("mail_loop")
    }
    pub fn bare_line_ending() -> Reply {
        Reply::new(
            550,
            "5.5.2",
            "bare CR or LF in message: only CRLF line endings are accepted",
        )
        .because("bare_line_ending")
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, "4.7.0", "too many errors, closing connection").because("too_many_errors")
    }
    pub fn idle_timeout() -> Reply {
        Reply::new(421, "4.4.2", "idle timeout, closing connection").because("idle_timeout")
    }
    pub fn shutting_down() -> Reply {
        Reply::new(421, "4.3.2", "shutting down, try again later").because("shutting_down")
    }
    pub fn too_many_connections() -> Reply {
        Reply::new(421, "4.7.0", "too many connections, try again later")
            .because("too_many_connections")
    }
    pub fn local_error() -> Reply {
        Reply::new(
            451,
            "4.3.0",
            "local error, message not accepted; try again later",
        )
        .because("local_error")
    }
    pub fn tap_denied() -> Reply {
        Reply::new(554, "5.7.1", "this client may not use the tap listener").because("tap_denied")
    }
    pub fn auth_required() -> Reply {
        Reply::new(530, "5.7.0", "authentication required").because("auth_required")
    }
    pub fn needs_smtputf8() -> Reply {
        Reply::new(
            553,
            "5.6.7",
            "non-ASCII address requires the SMTPUTF8 parameter",
        )
        .because("needs_smtputf8")
    }
    pub fn http_probe() -> Reply {
        Reply::new(421, "4.7.0", "this is an SMTP server, not a web server").because("http_probe")
    }
    pub fn sender_not_owned() -> Reply {
        Reply::new(
            553,
            "5.7.1",
            "sender address not owned by the authenticated user",
        )
        .because("sender_not_owned")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_wire().trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        assert_eq!(
            Reply::relay_denied().to_wire(),
            "554 5.7.1 relay access denied\r\n"
        );
        let ehlo = Reply::lines(250, "", vec!["host".into(), "SIZE 10".into()]);
        assert_eq!(ehlo.to_wire(), "250-host\r\n250 SIZE 10\r\n");
        assert_eq!(
            Reply::start_data().to_wire(),
            "354 end data with <CR><LF>.<CR><LF>\r\n"
        );
        assert!(Reply::too_many_recipients().is_error());
        assert!(!Reply::ok().is_error());
    }

    #[test]
    fn a_reply_carries_the_reason_its_maker_gave_not_one_guessed_from_the_code() {
        assert_eq!(Reply::relay_denied().reason(), "relay_denied");
        assert_eq!(Reply::tap_denied().reason(), "tap_denied");
        assert_eq!(Reply::relay_denied().code, Reply::tap_denied().code);
        assert_eq!(Reply::bad_recipient().reason(), "bad_address");
        assert_eq!(Reply::local_error().reason(), "local_error");
        let memory = Reply::local_error().because("memory_unavailable");
        assert_eq!(memory.reason(), "memory_unavailable");
        assert_eq!(memory.to_wire(), Reply::local_error().to_wire());
        assert_eq!(
            Reply::new(501, "5.7.0", "authentication cancelled").reason(),
            "other"
        );
    }
}
