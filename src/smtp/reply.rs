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
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            lines: vec![text.into()],
        }
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

    /// A short name for the metrics label `reason` of a rejection.
    pub fn reason(&self) -> &'static str {
        match (self.code, self.enhanced) {
            (554, "5.7.1") => "relay_denied",
            (550, "5.1.1") => "unknown_mailbox",
            (552, _) => "too_big",
            (550, "5.5.2") => "bare_line_ending",
            (554, "5.4.6") => "mail_loop",
            (452, _) => "too_many_recipients",
            (451, _) => "local_error",
            (421, _) => "connection_closed",
            (530 | 535 | 553, _) => "auth",
            (501, _) => "bad_address",
            _ => "other",
        }
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
        Reply {
            code: 354,
            enhanced: "",
            lines: vec!["end data with <CR><LF>.<CR><LF>".into()],
        }
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
        Reply::new(554, "5.7.1", "relay access denied")
    }
    pub fn unknown_mailbox() -> Reply {
        Reply::new(550, "5.1.1", "no such mailbox here")
    }
    pub fn too_big() -> Reply {
        Reply::new(552, "5.3.4", "message too big")
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, "4.5.3", "too many recipients")
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.2", "line too long")
    }
    pub fn syntax(text: &str) -> Reply {
        Reply::new(501, "5.5.4", format!("syntax: {text}"))
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
        Reply::new(501, "5.1.7", "malformed sender address")
    }
    pub fn bad_recipient() -> Reply {
        Reply::new(501, "5.1.3", "malformed recipient address")
    }
    pub fn bad_parameter(param: &str) -> Reply {
        Reply::new(555, "5.5.4", format!("unsupported parameter {param}"))
    }
    pub fn loop_detected() -> Reply {
        Reply::new(554, "5.4.6", "too many Received headers: mail loop")
    }
    pub fn bare_line_ending() -> Reply {
        Reply::new(
            550,
            "5.5.2",
            "bare CR or LF in message: only CRLF line endings are accepted",
        )
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, "4.7.0", "too many errors, closing connection")
    }
    pub fn idle_timeout() -> Reply {
        Reply::new(421, "4.4.2", "idle timeout, closing connection")
    }
    pub fn shutting_down() -> Reply {
        Reply::new(421, "4.3.2", "shutting down, try again later")
    }
    pub fn too_many_connections() -> Reply {
        Reply::new(421, "4.7.0", "too many connections, try again later")
    }
    pub fn local_error() -> Reply {
        Reply::new(
            451,
            "4.3.0",
            "local error, message not accepted; try again later",
        )
    }
    pub fn tap_denied() -> Reply {
        Reply::new(554, "5.7.1", "this client may not use the tap listener")
    }
    pub fn auth_required() -> Reply {
        Reply::new(530, "5.7.0", "authentication required")
    }
    pub fn needs_smtputf8() -> Reply {
        Reply::new(
            553,
            "5.6.7",
            "non-ASCII address requires the SMTPUTF8 parameter",
        )
    }
    pub fn http_probe() -> Reply {
        Reply::new(421, "4.7.0", "this is an SMTP server, not a web server")
    }
    pub fn sender_not_owned() -> Reply {
        Reply::new(
            553,
            "5.7.1",
            "sender address not owned by the authenticated user",
        )
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
        let ehlo = Reply {
            code: 250,
            enhanced: "",
            lines: vec!["host".into(), "SIZE 10".into()],
        };
        assert_eq!(ehlo.to_wire(), "250-host\r\n250 SIZE 10\r\n");
        assert_eq!(
            Reply::start_data().to_wire(),
            "354 end data with <CR><LF>.<CR><LF>\r\n"
        );
        assert!(Reply::too_many_recipients().is_error());
        assert!(!Reply::ok().is_error());
    }
}
