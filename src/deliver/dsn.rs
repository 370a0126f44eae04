//! Delivery status notifications (RFC 3464): the bounce a sender gets when some of its
//! recipients failed for good. Built with mail-builder; the original headers are attached
//! as `text/rfc822-headers` (not the body: it may be large, and the sender has it).

use mail_builder::headers::address::Address as MbAddress;
use mail_builder::mime::{BodyPart, MimePart};
use mail_builder::MessageBuilder;

/// One recipient that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub recipient: String,
    /// What the next hop said, or why we gave up.
    pub error: String,
}

/// What the DSN needs about the original message.
pub struct Original<'a> {
    pub queue_id: &'a str,
    /// Unix seconds the original was accepted.
    pub arrival: u64,
    pub sender: &'a str,
    /// The original's header section.
    pub headers: &'a [u8],
}

/// The RFC 3463 status for an error text: the enhanced code the server gave if any,
/// `5.4.7` for an expired message, `5.0.0` otherwise.
pub fn status(error: &str) -> String {
    for word in error.split_whitespace() {
        let parts: Vec<&str> = word.split('.').collect();
        if parts.len() == 3
            && parts[0] == "5"
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return word.to_string();
        }
    }
    if error.starts_with("gave up after") {
        "5.4.7".to_string()
    } else {
        "5.0.0".to_string()
    }
}

/// Builds the DSN message (RFC 5322 text with CRLF line ends).
pub fn build(hostname: &str, original: &Original<'_>, failures: &[Failure]) -> Vec<u8> {
    let arrival = mail_parser::DateTime::from_timestamp(original.arrival as i64).to_rfc822();
    let mut human = format!(
        "This is the mail relay at {hostname}.\r\n\r\n\
         Your message could not be delivered to the following recipients:\r\n\r\n"
    );
    let mut status_fields = format!(
        "Reporting-MTA: dns; {hostname}\r\nX-Teamrelay-Queue-ID: {}\r\nArrival-Date: {arrival}\r\n",
        original.queue_id
    );
    for f in failures {
        human.push_str(&format!("  <{}>: {}\r\n", f.recipient, f.error));
        let diagnostic: String = f.error.chars().filter(|c| !c.is_control()).collect();
        status_fields.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}\r\nDiagnostic-Code: smtp; {}\r\n",
            f.recipient,
            status(&f.error),
            diagnostic
        ));
    }
    let headers = header_section(original.headers);
    let headers_cte = if headers.is_ascii() { "7bit" } else { "8bit" };
    let report = MimePart::new(
        mail_builder::headers::content_type::ContentType::new("multipart/report")
            .attribute("report-type", "delivery-status"),
        BodyPart::Multipart(vec![
            MimePart::new("text/plain", human),
            MimePart::new(
                "message/delivery-status",
                BodyPart::Binary(status_fields.into_bytes().into()),
            )
            .transfer_encoding("7bit"),
            MimePart::new("text/rfc822-headers", BodyPart::Binary(headers.into()))
                .transfer_encoding(headers_cte),
        ]),
    );
    MessageBuilder::new()
        .message_id(format!("{}.dsn@{hostname}", original.queue_id))
        // The relay's clock, as in its Received field (mail-builder would read the
        // system clock itself).
        .date(crate::spool::now())
        .from(MbAddress::new_address(
            Some("Mail Delivery System"),
            format!("MAILER-DAEMON@{hostname}"),
        ))
        .to(MbAddress::new_address(
            None::<&str>,
            original.sender.to_string(),
        ))
        .subject("Undelivered Mail Returned to Sender")
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .body(report)
        .write_to_vec()
        .unwrap_or_default()
}

/// The header section of a message (up to and including the blank line's CRLF).
fn header_section(message: &[u8]) -> Vec<u8> {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |i| i + 2);
    message[..end].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    #[test]
    fn statuses() {
        assert_eq!(status("RCPT: 550 5.1.1 no such user"), "5.1.1");
        assert_eq!(status("end of DATA: 554 no"), "5.0.0");
        assert_eq!(status("gave up after 5d: connection refused"), "5.4.7");
        assert_eq!(status("RCPT: 550 5.1.1. odd"), "5.0.0");
    }

    #[test]
    fn dsn_parses_and_names_exactly_the_failed_recipient() {
        let original = Original {
            queue_id: "ABC",
            arrival: 1_790_000_000,
            sender: "customer@shop.example",
            headers: b"From: customer@shop.example\r\nSubject: hi\r\nMessage-ID: <x@y>\r\n\r\nbody text\r\n",
        };
        let failures = vec![Failure {
            recipient: "bob@example.com".into(),
            error: "RCPT: 550 5.1.1 no such user".into(),
        }];
        let raw = build("relay.test", &original, &failures);
        let text = String::from_utf8(raw.clone()).unwrap();
        assert!(
            text.contains("report-type=delivery-status")
                || text.contains("report-type=\"delivery-status\""),
            "{text}"
        );
        assert!(
            text.contains("Final-Recipient: rfc822; bob@example.com\r\n"),
            "{text}"
        );
        assert!(text.contains("Status: 5.1.1\r\n"));
        assert!(text.contains("Auto-Submitted: auto-replied\r\n"));
        assert!(!text.contains("body text"), "the body is not returned");
        let msg = MessageParser::default().parse(&raw).expect("parses");
        assert_eq!(msg.subject(), Some("Undelivered Mail Returned to Sender"));
        assert_eq!(
            msg.to().and_then(|a| a.first()).and_then(|a| a.address()),
            Some("customer@shop.example")
        );
        assert_eq!(text.matches("Final-Recipient:").count(), 1);
    }
}
