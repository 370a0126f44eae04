//! The words of a message for full-text search: its subject, its text/plain parts
//! decoded and its text/html parts without their tags (mail-parser does both), and the
//! snippet shown beside a search hit.

use mail_parser::MessageParser;

/// Subject and text, one string.
pub fn searchable(raw: &[u8]) -> String {
    // mail-parser has had panics on junk; a message that cannot be read is simply
    // not searchable by its body.
    std::panic::catch_unwind(|| {
        let Some(msg) = MessageParser::default().parse(raw) else {
            return String::new();
        };
        let mut out = msg.subject().unwrap_or("").to_string();
        for i in 0..msg.text_body_count().max(msg.html_body_count()) {
            if let Some(t) = msg.body_text(i) {
                out.push('\n');
                out.push_str(&t);
            }
        }
        out
    })
    .unwrap_or_default()
}

/// The message text alone (for the thread view).
pub fn body(raw: &[u8]) -> String {
    std::panic::catch_unwind(|| {
        let Some(msg) = MessageParser::default().parse(raw) else {
            return String::new();
        };
        (0..msg.text_body_count().max(msg.html_body_count()))
            .filter_map(|i| msg.body_text(i))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// Up to about 200 characters of `text` around the first of `words` found
/// (case-insensitive), with whitespace collapsed.
pub fn snippet(text: &str, words: &[String]) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let lower = flat.to_lowercase();
    // Lower-casing can change byte lengths (e.g. 'İ'); only trust positions that stay
    // on character boundaries of the original.
    let hit = words
        .iter()
        .filter_map(|w| lower.find(&w.to_lowercase()))
        .min()
        .filter(|&i| flat.is_char_boundary(i))
        .unwrap_or(0);
    let chars: Vec<(usize, char)> = flat.char_indices().collect();
    let at = chars.iter().position(|&(i, _)| i >= hit).unwrap_or(0);
    let start = at.saturating_sub(60);
    let end = (start + 200).min(chars.len());
    let mut s: String = chars[start..end].iter().map(|&(_, c)| c).collect();
    if start > 0 {
        s.insert(0, '…');
    }
    if end < chars.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_is_decoded_and_html_loses_its_tags() {
        let raw = b"Subject: Offer\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nR=C3=A9duction of 10%\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Our <b>discount</b> policy</p>\r\n--b--\r\n";
        let t = searchable(raw);
        assert!(t.contains("Offer"), "{t}");
        assert!(t.contains("Réduction of 10%"), "{t}");
        assert!(t.contains("discount"), "{t}");
        assert!(!t.contains("<b>"), "{t}");
    }

    #[test]
    fn snippet_shows_the_word_in_context() {
        let text = format!(
            "{} the discount was 15 percent {}",
            "x ".repeat(100),
            "y ".repeat(100)
        );
        let s = snippet(&text, &["DISCOUNT".into()]);
        assert!(s.contains("the discount was 15 percent"), "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'));
        assert_eq!(snippet("short", &["nothing".into()]), "short");
    }
}
