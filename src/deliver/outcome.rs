//! What happened to one recipient on one try, and the one place that turns client
//! errors into that answer.

use smtp_proto::Response;

/// The result of trying one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The next hop took responsibility; its reply (`250 2.0.0 queued as …`), for
    /// the log, so an operator can follow the message into the next hop's logs.
    Delivered(String),
    /// Try again later (4xx, connection trouble, timeouts, anything unknown).
    Deferred(String),
    /// Give up: a 5xx. The sender gets a DSN.
    Failed(String),
}

/// The outcome a reply code means.
pub fn from_reply(stage: &str, r: &Response<String>) -> Outcome {
    let text = match r.esc {
        [0, _, _] => format!("{stage}: {} {}", r.code, r.message.trim()),
        [a, b, c] => format!("{stage}: {} {a}.{b}.{c} {}", r.code, r.message.trim()),
    };
    match r.code {
        200..=299 => Outcome::Delivered(text),
        500..=599 => Outcome::Failed(text),
        _ => Outcome::Deferred(text),
    }
}

/// Classifies every mail-send error. Exhaustive on purpose: a new error kind must be
/// placed here deliberately, not fall into the wrong bucket. Only an explicit 5xx
/// reply is permanent; everything else is retried.
pub fn from_error(stage: &str, e: mail_send::Error) -> Outcome {
    use mail_send::Error as E;
    match e {
        E::UnexpectedReply(r) => from_reply(stage, &r),
        E::Io(e) => Outcome::Deferred(format!("{stage}: {e}")),
        E::Tls(e) => Outcome::Deferred(format!("{stage}: TLS: {e}")),
        E::Timeout => Outcome::Deferred(format!("{stage}: timed out")),
        E::UnparseableReply => Outcome::Deferred(format!("{stage}: connection lost or bad reply")),
        E::MissingStartTls => {
            Outcome::Deferred(format!("{stage}: STARTTLS required but not offered"))
        }
        E::InvalidTLSName => Outcome::Deferred(format!("{stage}: host name not valid for TLS")),
        E::Auth(e) => Outcome::Deferred(format!("{stage}: AUTH: {e}")),
        E::AuthenticationFailed(r) => {
            Outcome::Deferred(format!("{stage}: AUTH refused: {} {}", r.code, r.message))
        }
        E::MissingCredentials | E::UnsupportedAuthMechanism => {
            Outcome::Deferred(format!("{stage}: AUTH not possible with this server"))
        }
        E::Base64(_) => Outcome::Deferred(format!("{stage}: bad AUTH challenge")),
        E::MissingMailFrom | E::MissingRcptTo => {
            Outcome::Deferred(format!("{stage}: internal: empty envelope"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(code: u16) -> Response<String> {
        Response {
            code,
            esc: [0, 0, 0],
            message: "x".into(),
        }
    }

    #[test]
    fn codes_map_to_outcomes() {
        assert!(
            matches!(from_reply("RCPT", &r(250)), Outcome::Delivered(t) if t.starts_with("RCPT: 250"))
        );
        assert!(matches!(from_reply("RCPT", &r(450)), Outcome::Deferred(_)));
        assert!(matches!(from_reply("RCPT", &r(550)), Outcome::Failed(_)));
        assert!(matches!(from_reply("RCPT", &r(354)), Outcome::Deferred(_)));
        assert!(matches!(
            from_error("DATA", mail_send::Error::Timeout),
            Outcome::Deferred(_)
        ));
        assert!(matches!(
            from_error("MAIL", mail_send::Error::UnexpectedReply(r(554))),
            Outcome::Failed(_)
        ));
    }
}
