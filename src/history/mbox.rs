//! `history export`: messages as one mboxrd file (each message after a `From ` line,
//! every line matching `>*From ` quoted with one more `>`, a blank line after each), so
//! any mail client can open a customer's whole history. The message bytes are otherwise
//! those kept.

use super::record::Record;

/// Appends one message to an mboxrd stream.
pub fn append(out: &mut Vec<u8>, record: &Record, raw: &[u8]) {
    let sender = if record.from.is_empty() {
        "MAILER-DAEMON"
    } else {
        record.from.as_str()
    };
    out.extend_from_slice(format!("From {sender} {}\n", asctime(record.date)).as_bytes());
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if line[quotes..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !raw.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// `Mon Dec  1 22:27:14 2026`, as the `From ` line wants it (UTC).
fn asctime(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = super::record::rfc3339(unix);
    let (y, m, d) = (&iso[0..4], &iso[5..7], &iso[8..10]);
    let month = MONTHS[m.parse::<usize>().unwrap_or(1).clamp(1, 12) - 1];
    let day: u32 = d.parse().unwrap_or(1);
    let weekday = DAYS[unix.div_euclid(86400).rem_euclid(7) as usize];
    format!("{weekday} {month} {day:>2} {} {y}", &iso[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::record::Direction;

    fn record(from: &str, date: i64) -> Record {
        Record {
            id: "1".into(),
            message_id: None,
            accepted: 0,
            date,
            direction: Direction::Inbound,
            from: from.into(),
            to: vec![],
            cc: vec![],
            subject: String::new(),
            team: vec![],
            team_recipients: vec![],
            customers: vec![],
            participants: vec![],
            thread: "t".into(),
            owner: None,
        }
    }

    #[test]
    fn from_lines_are_quoted_mboxrd_style() {
        let mut out = Vec::new();
        let raw = b"Subject: x\r\n\r\nFrom here\r\n>From there\r\n>>From everywhere\r\nFromage\r\n From space";
        append(&mut out, &record("cus@shop.example", 1_796_163_434), raw);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "From cus@shop.example Tue Dec  1 22:17:14 2026\n\
             Subject: x\r\n\r\n>From here\r\n>>From there\r\n>>>From everywhere\r\nFromage\r\n From space\n\n"
        );
    }

    #[test]
    fn asctime_weekdays() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }
}
