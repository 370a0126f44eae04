//! What the history keeps about one message ([`Record`]) and the shapes the CLI and the
//! web page show (SPEC §8's JSON). A record is written once, as the first line of the
//! message's file; who received the message later (another transaction, a backfill) is
//! recorded beside it, never by rewriting it.

use serde::{Deserialize, Serialize};

/// One kept message's facts. Dates are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The history's own id: the queue id of the transaction that brought it, 16 hex digits.
    pub id: String,
    /// Without angle brackets; `None` when the message had none.
    pub message_id: Option<String>,
    /// When teamrelay accepted it (retention counts from here).
    pub accepted: u64,
    /// The `Date` header, else the acceptance time.
    pub date: i64,
    /// `inbound` when the envelope sender is external, else `outbound`.
    pub direction: Direction,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    /// Team participants (lists expanded), as `X-Teamrelay-For` names them.
    pub team: Vec<String>,
    /// Team addresses that got the message (original or copy) in this transaction.
    pub team_recipients: Vec<String>,
    /// External participants.
    pub customers: Vec<String>,
    /// Every participant: what `forget ADDR` matches.
    pub participants: Vec<String>,
    pub thread: String,
    /// The thread's owner when the message was accepted (SPEC §9), if known.
    pub owner: Option<String>,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// As `X-Teamrelay-Direction` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// One message as `history show --json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub message_id: String,
    pub date: String,
    pub direction: Direction,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub team: Vec<String>,
    /// Only in search results.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub customers: Option<Vec<String>>,
    /// Only in search results.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub snippet: Option<String>,
    /// The history id, for links (`/message/ID.eml`); not part of the JSON shape.
    #[serde(skip)]
    pub id: String,
    /// Unix seconds, for sorting; not part of the JSON shape.
    #[serde(skip)]
    pub unix: i64,
}

/// One thread of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadView {
    pub thread: String,
    pub subject: String,
    pub first: String,
    pub last: String,
    pub owner: Option<String>,
    pub messages: Vec<MessageView>,
}

/// `history show ADDR --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerView {
    pub customer: String,
    pub threads: Vec<ThreadView>,
}

/// One customer of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerSummary {
    pub address: String,
    pub messages: usize,
    pub last: String,
}

/// `history show @DOMAIN --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainView {
    pub domain: String,
    pub customers: Vec<CustomerSummary>,
}

/// `history search --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchView {
    pub query: String,
    pub messages: Vec<MessageView>,
}

/// RFC 3339 in UTC, e.g. `2026-12-01T22:27:14Z`.
pub fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86400);
    let secs = unix.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm), so dates need no calendar crate.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Record {
    /// The record as one message of `show`.
    pub fn view(&self) -> MessageView {
        MessageView {
            message_id: self.message_id.clone().unwrap_or_default(),
            date: rfc3339(self.date),
            direction: self.direction,
            from: self.from.clone(),
            to: self.to.clone(),
            cc: self.cc.clone(),
            subject: self.subject.clone(),
            team: self.team.clone(),
            customers: None,
            snippet: None,
            id: self.id.clone(),
            unix: self.date,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_163_434), "2026-12-01T22:17:14Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn show_json_has_the_spec_shape() {
        let view = CustomerView {
            customer: "cus@shop.example".into(),
            threads: vec![ThreadView {
                thread: "t@shop.example".into(),
                subject: "Quote".into(),
                first: rfc3339(0),
                last: rfc3339(60),
                owner: None,
                messages: vec![MessageView {
                    message_id: "t@shop.example".into(),
                    date: rfc3339(0),
                    direction: Direction::Inbound,
                    from: "cus@shop.example".into(),
                    to: vec!["sales@example.com".into()],
                    cc: vec![],
                    subject: "Quote".into(),
                    team: vec!["alice@example.com".into()],
                    customers: None,
                    snippet: None,
                    id: "X".into(),
                    unix: 0,
                }],
            }],
        };
        let v: serde_json::Value = serde_json::to_value(&view).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"customer": "cus@shop.example", "threads": [{
                "thread": "t@shop.example", "subject": "Quote",
                "first": "1970-01-01T00:00:00Z", "last": "1970-01-01T00:01:00Z", "owner": null,
                "messages": [{"message_id": "t@shop.example", "date": "1970-01-01T00:00:00Z",
                    "direction": "inbound", "from": "cus@shop.example",
                    "to": ["sales@example.com"], "cc": [], "subject": "Quote",
                    "team": ["alice@example.com"]}]}]})
        );
    }
}
