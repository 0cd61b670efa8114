//! What the server offers, read from its EHLO reply (RFC 5321 §4.1.1.1: the first line names
//! the server, each further line is `keyword *(SP param)`; keywords are case-insensitive).
//!
//! Known keywords: STARTTLS (RFC 3207), AUTH (RFC 4954, plus the pre-standard `AUTH=` form some
//! servers still send), SIZE (RFC 1870), PIPELINING (RFC 2920), 8BITMIME (RFC 6152),
//! SMTPUTF8 (RFC 6531), ENHANCEDSTATUSCODES (RFC 2034), CHUNKING (RFC 3030), DSN (RFC 3461).
use super::reply::Reply;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    domain: String,
    lines: Vec<String>,
    starttls: bool,
    auth: Vec<String>,
    size: Option<Option<u64>>,
    pipelining: bool,
    eight_bit_mime: bool,
    smtputf8: bool,
    enhanced_status_codes: bool,
    chunking: bool,
    dsn: bool,
}

impl Capabilities {
    /// Capabilities after a HELO fallback: nothing is offered.
    pub fn none() -> Capabilities {
        Capabilities::default()
    }

    pub fn parse(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities {
            domain: reply
                .lines
                .first()
                .and_then(|l| l.split_whitespace().next())
                .unwrap_or_default()
                .to_string(),
            lines: reply.lines.iter().skip(1).cloned().collect(),
            ..Capabilities::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let Some(first) = words.next() else { continue };
            let (keyword, inline) = match first.split_once('=') {
                Some((k, v)) => (k.to_ascii_uppercase(), Some(v)),
                None => (first.to_ascii_uppercase(), None),
            };
            match keyword.as_str() {
                "STARTTLS" => caps.starttls = true,
                "AUTH" => {
                    for mech in inline.into_iter().chain(words) {
                        let mech = mech.to_ascii_uppercase();
                        if !mech.is_empty() && !caps.auth.contains(&mech) {
                            caps.auth.push(mech);
                        }
                    }
                }
                // A missing or unreadable number still means the extension is there; 0 means
                // no fixed limit (RFC 1870 §4).
                "SIZE" => {
                    let limit = words
                        .next()
                        .and_then(|n| n.parse::<u64>().ok())
                        .filter(|&n| n > 0);
                    caps.size = Some(limit);
                }
                "PIPELINING" => caps.pipelining = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "ENHANCEDSTATUSCODES" => caps.enhanced_status_codes = true,
                "CHUNKING" => caps.chunking = true,
                "DSN" => caps.dsn = true,
                _ => {}
            }
        }
        caps
    }

    /// The name the server gave on the first EHLO line.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The keyword lines as received, for `--probe`.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn starttls(&self) -> bool {
        self.starttls
    }

    /// Offered SASL mechanisms, upper-cased, in the server's order, both AUTH forms merged.
    pub fn auth_mechanisms(&self) -> &[String] {
        &self.auth
    }

    pub fn size_offered(&self) -> bool {
        self.size.is_some()
    }

    /// The advertised maximum message size, when SIZE is offered with a non-zero limit.
    pub fn size_limit(&self) -> Option<u64> {
        self.size.flatten()
    }

    pub fn pipelining(&self) -> bool {
        self.pipelining
    }

    pub fn eight_bit_mime(&self) -> bool {
        self.eight_bit_mime
    }

    pub fn smtputf8(&self) -> bool {
        self.smtputf8
    }

    pub fn enhanced_status_codes(&self) -> bool {
        self.enhanced_status_codes
    }

    pub fn chunking(&self) -> bool {
        self.chunking
    }

    pub fn dsn(&self) -> bool {
        self.dsn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::reply::{Parsed, ReplyParser};

    fn caps(wire: &str) -> Capabilities {
        match ReplyParser::new().parse(wire.as_bytes()).unwrap() {
            Parsed::Complete { reply, .. } => Capabilities::parse(&reply),
            Parsed::NeedMore => panic!("incomplete"),
        }
    }

    #[test]
    fn postfix_style_reply() {
        let c = caps(
            "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n\
             250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n\
             250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n",
        );
        assert_eq!(c.domain(), "mail.example.com");
        assert!(c.pipelining() && c.starttls() && c.enhanced_status_codes());
        assert!(c.eight_bit_mime() && c.dsn() && c.smtputf8() && c.chunking());
        assert_eq!(c.auth_mechanisms(), ["PLAIN", "LOGIN"]);
        assert_eq!(c.size_limit(), Some(10_240_000));
        assert_eq!(c.lines().len(), 12);
        assert_eq!(c.lines()[0], "PIPELINING");
    }

    #[test]
    fn keywords_are_case_insensitive_and_legacy_auth_is_merged() {
        let c = caps(
            "250-x\r\n250-starttls\r\n250-auth=login\r\n250-Auth cram-md5 xoauth2\r\n250 size\r\n",
        );
        assert!(c.starttls());
        assert_eq!(c.auth_mechanisms(), ["LOGIN", "CRAM-MD5", "XOAUTH2"]);
        assert!(c.size_offered());
        assert_eq!(c.size_limit(), None);
    }

    #[test]
    fn size_zero_means_no_limit() {
        let c = caps("250-x\r\n250 SIZE 0\r\n");
        assert!(c.size_offered());
        assert_eq!(c.size_limit(), None);
    }

    #[test]
    fn single_line_reply_offers_nothing() {
        let c = caps("250 mx.example.com greets you\r\n");
        assert_eq!(
            c,
            Capabilities {
                domain: "mx.example.com".into(),
                ..Capabilities::none()
            }
        );
        assert!(!c.size_offered() && c.auth_mechanisms().is_empty() && !c.starttls());
    }

    #[test]
    fn first_line_is_not_a_keyword() {
        // A server named like a keyword must not enable it.
        let c = caps("250-STARTTLS\r\n250 PIPELINING\r\n");
        assert!(!c.starttls());
        assert!(c.pipelining());
    }
}
