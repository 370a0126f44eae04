//! One email address type: parsed once, compared case-insensitively, printed as given.
//!
//! The parser is deliberately stricter than RFC 5321: it refuses the forms that have
//! been used to trick relays into forwarding mail (`user%host@team`, `host!user@team`,
//! source routes, IP literals). A real mailbox never needs them, and refusing them keeps
//! "which route does this go to?" a question about the domain after the last `@`.
//!
//! One RFC 5321 form is accepted because real customers have it: a quoted local part
//! (`"john doe"@shop.example`). It is kept exactly as written and flagged
//! ([`Address::is_quoted`]) so the SMTP layer can refuse it in the team's own domains,
//! which teamrelay routes itself and never needs one.
//!
//! Domains are compared after IDNA normalisation (UTS #46, SPEC §2): `bücher.example`
//! and `xn--bcher-kva.example` are one domain. The comparison key holds the ASCII form;
//! the address still prints as the peer wrote it.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// Longest local part RFC 5321 §4.5.3.1.1 allows.
const MAX_LOCAL: usize = 64;
/// Longest domain RFC 5321 §4.5.3.1.2 allows.
const MAX_DOMAIN: usize = 255;

/// A mailbox `local@domain`. Equality, ordering and hashing ignore case, because every
/// real provider treats `Alice@Example.com` and `alice@example.com` as one mailbox.
#[derive(Clone)]
pub struct Address {
    /// The address as the peer wrote it (kept for the wire: we never rewrite a customer's
    /// local part).
    raw: String,
    /// Byte offset of the `@` in `raw`.
    at: usize,
    /// Lower-cased form used for every comparison. Lower-casing can change byte lengths
    /// (`İ` becomes `i̇`), so it has its own `@` offset.
    key: String,
    key_at: usize,
    /// The local part is an RFC 5321 quoted string.
    quoted: bool,
}

/// Why a string is not an address we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// No `@`, or more than one outside the local part.
    NoAt,
    /// Empty local part or domain.
    Empty,
    /// Too long for SMTP.
    TooLong,
    /// A character that is legal somewhere in RFC 5322 but never in a mailbox we route
    /// (whitespace, controls, quotes, `%`, `!`, brackets...).
    BadChar(char),
    /// An empty label (`a..b`), a leading/trailing dot, or a label with bad hyphens.
    BadDomain,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::NoAt => write!(f, "needs exactly one '@'"),
            AddressError::Empty => write!(f, "local part and domain must not be empty"),
            AddressError::TooLong => write!(f, "too long"),
            AddressError::BadChar(c) => write!(f, "contains {c:?}"),
            AddressError::BadDomain => write!(f, "has a malformed domain"),
        }
    }
}

impl std::error::Error for AddressError {}

impl Address {
    /// Parses `local@domain`. Surrounding `<>` are not accepted here; strip them first.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        let at = s.rfind('@').ok_or(AddressError::NoAt)?;
        let (local, domain) = (&s[..at], &s[at + 1..]);
        if local.is_empty() || domain.is_empty() {
            return Err(AddressError::Empty);
        }
        if local.len() > MAX_LOCAL || domain.len() > MAX_DOMAIN {
            return Err(AddressError::TooLong);
        }
        let quoted = local.starts_with('"');
        if quoted {
            check_quoted_local(local)?;
        } else {
            check_local(local)?;
        }
        let domain_key = normalize_domain(domain)?;
        let local_key = local.to_lowercase();
        let key = format!("{local_key}@{domain_key}");
        Ok(Address {
            raw: s.to_string(),
            at,
            key,
            key_at: local_key.len(),
            quoted,
        })
    }

    /// Whether the local part is a quoted string (`"john doe"@…`).
    pub fn is_quoted(&self) -> bool {
        self.quoted
    }

    /// Whether any character is outside ASCII (needs SMTPUTF8 on the wire, RFC 6531).
    pub fn is_ascii(&self) -> bool {
        self.raw.is_ascii()
    }

    /// The local part, lower-cased.
    pub fn local(&self) -> &str {
        &self.key[..self.key_at]
    }

    /// The domain, lower-cased and in its ASCII (IDNA) form.
    pub fn domain(&self) -> &str {
        &self.key[self.key_at + 1..]
    }

    /// The lower-cased form, used as a key in maps and the spool.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The address as it was written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// `LOCAL-bounces@DOMAIN`: the envelope sender of list and archive deliveries.
    pub fn bounces(&self) -> Address {
        let raw = format!(
            "{}-bounces@{}",
            &self.raw[..self.at],
            &self.raw[self.at + 1..]
        );
        let local_key = format!("{}-bounces", self.local());
        // Not re-parsed: a valid local part plus "-bounces" stays valid except for the
        // 64-octet limit, which our own generated senders may exceed.
        Address {
            at: self.at + "-bounces".len(),
            key: format!("{local_key}@{}", self.domain()),
            key_at: local_key.len(),
            raw,
            quoted: self.quoted,
        }
    }

    /// `<label.domain>` for RFC 2919 `List-Id`: `sales@example.com` → `sales.example.com`.
    pub fn list_id(&self) -> String {
        format!("{}.{}", self.local(), self.domain())
    }
}

fn check_local(local: &str) -> Result<(), AddressError> {
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(AddressError::BadChar('.'));
    }
    for c in local.chars() {
        let bad = c.is_control()
            || c.is_whitespace()
            || matches!(
                c,
                '"' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '@' | '[' | ']' | '\\' | '%' | '!'
            );
        if bad {
            return Err(AddressError::BadChar(c));
        }
    }
    Ok(())
}

/// An RFC 5321 `Quoted-string` local part: `"` qtextSMTP / quoted-pairSMTP `"`.
/// Non-ASCII text is allowed too (RFC 6531 extends qtextSMTP with UTF-8).
fn check_quoted_local(local: &str) -> Result<(), AddressError> {
    let inner = local
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .filter(|l| !l.is_empty())
        .ok_or(AddressError::BadChar('"'))?;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(' '..='~') => {}
                Some(other) => return Err(AddressError::BadChar(other)),
                None => return Err(AddressError::BadChar('\\')),
            },
            '"' => return Err(AddressError::BadChar('"')),
            c if c.is_control() => return Err(AddressError::BadChar(c)),
            _ => {}
        }
    }
    Ok(())
}

/// The comparison form of a domain: lower-cased, and for internationalised domains
/// (or `xn--` labels) the UTS #46 ASCII form, so both spellings are one domain.
pub fn normalize_domain(domain: &str) -> Result<String, AddressError> {
    check_domain(domain)?;
    let lower = domain.to_lowercase();
    if lower.is_ascii() && !lower.split('.').any(|l| l.starts_with("xn--")) {
        return Ok(lower);
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|_| AddressError::BadDomain)?;
    check_domain(&ascii)?;
    if ascii.len() > MAX_DOMAIN {
        return Err(AddressError::TooLong);
    }
    Ok(ascii)
}

fn check_domain(domain: &str) -> Result<(), AddressError> {
    for label in domain.split('.') {
        if label.is_empty() || label.starts_with('-') || label.ends_with('-') || label.len() > 63 {
            return Err(AddressError::BadDomain);
        }
        for c in label.chars() {
            // Letters, digits and hyphens; non-ASCII letters for internationalized
            // domains (SMTPUTF8). Everything else, including '[' of IP literals, is out.
            if !(c.is_alphanumeric() || c == '-') {
                return Err(AddressError::BadChar(c));
            }
        }
    }
    Ok(())
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Address {}

impl Hash for Address {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}

impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Address {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.raw)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

/// A pattern from `never_archive`, `mailboxes` or `archive_of`: an exact address or
/// `*@domain` (that domain exactly, never its subdomains).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// One address.
    Exact(Address),
    /// Every address of one domain (lower-cased).
    Domain(String),
}

impl Pattern {
    /// Parses `addr` or `*@domain`.
    pub fn parse(s: &str) -> Result<Pattern, AddressError> {
        match s.strip_prefix("*@") {
            Some(domain) => {
                if domain.is_empty() {
                    return Err(AddressError::Empty);
                }
                Ok(Pattern::Domain(normalize_domain(domain)?))
            }
            None => Address::parse(s).map(Pattern::Exact),
        }
    }

    /// Whether `addr` matches.
    pub fn matches(&self, addr: &Address) -> bool {
        match self {
            Pattern::Exact(a) => a == addr,
            Pattern::Domain(d) => addr.domain() == d,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(a) => a.fmt(f),
            Pattern::Domain(d) => write!(f, "*@{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_international_addresses() {
        for ok in [
            "alice@example.com",
            "a.b+tag@sub.example.co.uk",
            "o'neil@example.com",
            "jörg@bücher.example",
            "x@a-b.example",
            "_x_@example.com",
        ] {
            assert!(Address::parse(ok).is_ok(), "{ok} should parse");
        }
    }

    #[test]
    fn refuses_relay_tricks_and_junk() {
        for bad in [
            "",
            "bob@",
            "@example.com",
            "noat",
            "user%evil.com@example.com",
            "evil.com!user@example.com",
            "user@evil.com@example.com",
            "\"unclosed@example.com",
            "\"\"@example.com",
            "\"a\"b\"@example.com",
            "\"tab\there\"@example.com",
            "user@[127.0.0.1]",
            "user@example.com.",
            "user@.example.com",
            "user@exa..mple.com",
            "us er@example.com",
            ".user@example.com",
            "user.@example.com",
            "a..b@example.com",
            "user@-example.com",
            "user@example-.com",
            "us\ter@example.com",
            "user@exam_ple.com",
            "<user@example.com>",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(Address::parse(&long_local), Err(AddressError::TooLong));
    }

    #[test]
    fn rfc5321_quoted_local_parts_are_kept_as_written() {
        for ok in [
            "\"john doe\"@shop.example",
            "\"a\\\"b\"@shop.example",
            "\"user@evil\"@shop.example",
        ] {
            let a = Address::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(a.is_quoted());
            assert_eq!(a.to_string(), ok);
            assert_eq!(a.domain(), "shop.example");
        }
        assert!(!Address::parse("john@shop.example").unwrap().is_quoted());
    }

    #[test]
    fn uts46_one_domain_in_both_spellings() {
        let u = Address::parse("info@Bücher.example").unwrap();
        let a = Address::parse("info@xn--bcher-kva.example").unwrap();
        assert_eq!(u, a);
        assert_eq!(u.domain(), "xn--bcher-kva.example");
        assert_eq!(u.to_string(), "info@Bücher.example");
        assert!(!u.is_ascii());
        let p = Pattern::parse("*@bücher.example").unwrap();
        assert!(p.matches(&a));
        assert!(Address::parse("x@xn--zz-invalid-.example").is_err());
    }

    #[test]
    fn compares_case_insensitively_but_prints_as_given() {
        let a = Address::parse("Alice@Example.COM").unwrap();
        let b = Address::parse("alice@example.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "Alice@Example.COM");
        assert_eq!(a.domain(), "example.com");
        assert_eq!(a.local(), "alice");
    }

    #[test]
    fn lowercasing_that_changes_lengths_keeps_the_address_intact() {
        // 'İ' lower-cases to two characters; the address must still print as given,
        // re-parse, and compare.
        let a = Address::parse("İnci@Example.com").unwrap();
        assert_eq!(a.to_string(), "İnci@Example.com");
        assert_eq!(Address::parse(&a.to_string()).unwrap(), a);
        assert_eq!(a.domain(), "example.com");
        assert_eq!(a.bounces().domain(), "example.com");
        assert_eq!(a.bounces().to_string(), "İnci-bounces@Example.com");
    }

    #[test]
    fn bounces_and_list_id() {
        let list = Address::parse("sales@example.com").unwrap();
        assert_eq!(list.bounces().to_string(), "sales-bounces@example.com");
        assert_eq!(list.bounces().domain(), "example.com");
        assert_eq!(list.bounces().local(), "sales-bounces");
        assert_eq!(list.list_id(), "sales.example.com");
    }

    #[test]
    fn patterns_match_exact_domain_only() {
        let p = Pattern::parse("*@example.com").unwrap();
        assert!(p.matches(&Address::parse("x@EXAMPLE.com").unwrap()));
        assert!(!p.matches(&Address::parse("x@sub.example.com").unwrap()));
        let e = Pattern::parse("bob@example.com").unwrap();
        assert!(e.matches(&Address::parse("Bob@example.com").unwrap()));
        assert!(!e.matches(&Address::parse("bobby@example.com").unwrap()));
        assert!(Pattern::parse("*@").is_err());
        assert!(Pattern::parse("*@x..y").is_err());
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Parsing never panics, and whatever parses has one '@' and prints back as given.
        #[test]
        fn parse_is_total(s in "\\PC{0,80}") {
            if let Ok(a) = Address::parse(&s) {
                prop_assert_eq!(a.key().matches('@').count(), 1);
                prop_assert!(!a.domain().is_empty());
            }
        }
    }
}
