//! "Conversion is never silent" (SPEC §6): whether a next hop can take a message as it is.
//! teamrelay never downgrades: a message received with `SMTPUTF8` goes only to a next hop
//! that offers SMTPUTF8 (RFC 6531 §3.2), and a body with any byte above 127 only to one that
//! offers 8BITMIME (RFC 6152) — re-encoding it would break its DKIM signature. Anything else
//! is a permanent failure, so the sender hears about it in a DSN.

use super::outcome::Outcome;

/// What a message needs of its next hop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// MAIL carried `SMTPUTF8` (or an envelope address is not ASCII).
    pub smtputf8: bool,
    /// The body holds a byte above 127.
    pub eight_bit: bool,
}

/// What a next hop said in its EHLO/LHLO reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offers {
    pub smtputf8: bool,
    pub eight_bit_mime: bool,
}

/// The permanent failure for a message this next hop cannot take unchanged, if any.
/// The enhanced code comes first in the text, so the DSN's `Status:` field carries it.
pub fn refusal(needs: Needs, offers: Offers) -> Option<Outcome> {
    if needs.smtputf8 && !offers.smtputf8 {
        return Some(Outcome::Failed(
            "5.6.7 the next hop does not offer SMTPUTF8, which this internationalised \
             message needs (RFC 6531 section 3.2)"
                .into(),
        ));
    }
    if needs.eight_bit && !offers.eight_bit_mime {
        return Some(Outcome::Failed(
            "5.6.3 the next hop does not offer 8BITMIME, and converting this 8-bit message \
             would change it (RFC 6152)"
                .into(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::dsn::status;

    fn failed_status(o: Option<Outcome>) -> Option<String> {
        match o {
            Some(Outcome::Failed(why)) => Some(status(&why)),
            _ => None,
        }
    }

    #[test]
    fn rfc6531_smtputf8_message_needs_an_smtputf8_next_hop() {
        let needs = Needs {
            smtputf8: true,
            eight_bit: true,
        };
        let no_utf8 = Offers {
            smtputf8: false,
            eight_bit_mime: true,
        };
        assert_eq!(
            failed_status(refusal(needs, no_utf8)).as_deref(),
            Some("5.6.7")
        );
        let both = Offers {
            smtputf8: true,
            eight_bit_mime: true,
        };
        assert_eq!(refusal(needs, both), None);
    }

    #[test]
    fn rfc6152_eight_bit_body_needs_an_8bitmime_next_hop() {
        let needs = Needs {
            smtputf8: false,
            eight_bit: true,
        };
        assert_eq!(
            failed_status(refusal(needs, Offers::default())).as_deref(),
            Some("5.6.3")
        );
        let offers = Offers {
            smtputf8: false,
            eight_bit_mime: true,
        };
        assert_eq!(refusal(needs, offers), None);
        // A 7-bit ASCII message goes anywhere.
        assert_eq!(refusal(Needs::default(), Offers::default()), None);
    }
}
