//! Delivery status notification parameters (RFC 3461): NOTIFY and ORCPT on RCPT (§4.1, §4.2),
//! RET and ENVID on MAIL (§4.3, §4.4), and the xtext encoding their values use (§4).
//!
//! A [`Dsn`] is data in the [`Envelope`](super::Envelope), checked when it is built, so a value
//! that could not go on the wire never gets as far as the session. The session sends the
//! parameters only when the server's EHLO offers DSN (RFC 3461 §4: a client MUST NOT use them
//! otherwise) and says in the [`MessageReport`](super::MessageReport) when it left them out.
use std::fmt;

use super::command::CommandError;

/// RFC 3461 §4.4: "the ENVID value ... MUST NOT exceed 100 characters" once xtext-encoded.
pub const MAX_ENVID: usize = 100;

/// RFC 3461 §4.2: the ORCPT value (type, `;` and xtext) MUST NOT exceed 500 characters.
pub const MAX_ORCPT: usize = 500;

/// xtext (RFC 3461 §4): `xchar` is `!` (33) to `~` (126) except `+` and `=`; every other octet
/// is `+` and two upper-case hex digits. Used for ENVID and ORCPT's address.
pub fn xtext(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// `utf-8-addr-xtext` (RFC 6533 §3): QCHAR (printable ASCII except `\`, `+` and `=`) as it
/// is, any other character as `\x{HEX}`, upper-case hex without leading zeros. It is 7-bit, so
/// ORCPT stays ASCII for an address that itself needs SMTPUTF8.
pub fn utf8_addr_xtext(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_ascii_graphic() && !matches!(c, '\\' | '+' | '=') {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
        }
    }
    out
}

/// `ORCPT=addr-type;xtext` for a forward-path (RFC 3461 §4.2): `rfc822` for an ASCII address,
/// `utf-8` with [`utf8_addr_xtext`] for one that needs SMTPUTF8 (RFC 6533 §3).
pub fn orcpt_value(address: &str) -> Result<String, CommandError> {
    let value = if address.is_ascii() {
        format!("rfc822;{}", xtext(address))
    } else {
        format!("utf-8;{}", utf8_addr_xtext(address))
    };
    if value.len() > MAX_ORCPT {
        return Err(CommandError {
            what: "ORCPT address",
            value: address.to_owned(),
            reason: "longer than RFC 3461's 500 characters once encoded",
        });
    }
    Ok(value)
}

/// When the recipient's server should report (RFC 3461 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// `NOTIFY=NEVER`: no notification at all.
    Never,
    /// Any non-empty combination of SUCCESS, FAILURE and DELAY.
    On {
        success: bool,
        failure: bool,
        delay: bool,
    },
}

impl Notify {
    /// `never`, or any of `success`, `failure`, `delay` comma-separated (case-insensitive), as
    /// `--dsn-notify` and sendmail's `-N` take it. `never` cannot be combined (RFC 3461 §4.1).
    pub fn parse(s: &str) -> Result<Notify, String> {
        if s.trim().eq_ignore_ascii_case("never") {
            return Ok(Notify::Never);
        }
        let (mut success, mut failure, mut delay) = (false, false, false);
        for word in s.split(',') {
            match word.trim().to_ascii_lowercase().as_str() {
                "success" => success = true,
                "failure" => failure = true,
                "delay" => delay = true,
                "never" => return Err("never cannot be combined with other values".into()),
                other => {
                    return Err(format!(
                        "{other:?} is not one of success, failure, delay (or never alone)"
                    ))
                }
            }
        }
        Ok(Notify::On {
            success,
            failure,
            delay,
        })
    }
}

impl fmt::Display for Notify {
    /// The wire value: `NEVER`, or the chosen keywords in RFC 3461's order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Notify::Never => f.write_str("NEVER"),
            Notify::On {
                success,
                failure,
                delay,
            } => {
                let words: Vec<&str> =
                    [(success, "SUCCESS"), (failure, "FAILURE"), (delay, "DELAY")]
                        .into_iter()
                        .filter_map(|(on, w)| on.then_some(w))
                        .collect();
                f.write_str(&words.join(","))
            }
        }
    }
}

/// How much of the message a failure report returns (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

impl Ret {
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// The envelope identifier (RFC 3461 §4.4), kept in its xtext form: printable ASCII only and
/// at most [`MAX_ENVID`] characters once encoded, so no CR or LF can reach MAIL through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envid(String);

impl Envid {
    pub fn new(raw: &str) -> Result<Envid, CommandError> {
        let bad = |reason| CommandError {
            what: "ENVID",
            value: raw.to_owned(),
            reason,
        };
        if raw.is_empty() {
            return Err(bad("empty"));
        }
        if !raw.bytes().all(|b| (32..=126).contains(&b)) {
            return Err(bad("only printable ASCII is allowed (RFC 3461 §4.4)"));
        }
        let encoded = xtext(raw);
        if encoded.len() > MAX_ENVID {
            return Err(bad(
                "longer than 100 characters once xtext-encoded (RFC 3461 §4.4)",
            ));
        }
        Ok(Envid(encoded))
    }

    /// The xtext form, as sent.
    pub fn xtext(&self) -> &str {
        &self.0
    }
}

/// What the user asked of DSN for one message; the default asks nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dsn {
    pub notify: Option<Notify>,
    pub ret: Option<Ret>,
    pub envid: Option<Envid>,
}

impl Dsn {
    pub fn is_requested(&self) -> bool {
        self.notify.is_some() || self.ret.is_some() || self.envid.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_follows_rfc_3461_section_4() {
        // "+" and "=" are the two xchar exceptions; everything outside 33-126 is hexchar.
        assert_eq!(xtext("a+b"), "a+2Bb");
        assert_eq!(xtext("a=b"), "a+3Db");
        assert_eq!(xtext("a b"), "a+20b");
        assert_eq!(xtext("\t\r\n\u{7f}"), "+09+0D+0A+7F");
        assert_eq!(xtext("é"), "+C3+A9");
        // Every other printable character stands for itself.
        let plain: String = (33u8..=126)
            .filter(|b| *b != b'+' && *b != b'=')
            .map(char::from)
            .collect();
        assert_eq!(xtext(&plain), plain);
        // RFC 3461 §4.2's own example value.
        assert_eq!(xtext("Bob@Big-Bucks.COM"), "Bob@Big-Bucks.COM");
        assert_eq!(xtext(""), "");
    }

    #[test]
    fn utf8_addr_xtext_follows_rfc_6533() {
        assert_eq!(utf8_addr_xtext("δ@x.test"), "\\x{3B4}@x.test");
        assert_eq!(utf8_addr_xtext("a+b=c\\d"), "a\\x{2B}b\\x{3D}c\\x{5C}d");
        assert_eq!(utf8_addr_xtext("\"a b\"@x"), "\"a\\x{20}b\"@x");
        assert_eq!(utf8_addr_xtext("😀@x"), "\\x{1F600}@x");
    }

    #[test]
    fn orcpt_types() {
        assert_eq!(orcpt_value("b+1@x.test").unwrap(), "rfc822;b+2B1@x.test");
        assert_eq!(
            orcpt_value("jörg@x.test").unwrap(),
            "utf-8;j\\x{F6}rg@x.test"
        );
        let long = format!("{}@x.test", "+".repeat(200));
        assert!(orcpt_value(&long).is_err());
    }

    #[test]
    fn notify_values() {
        assert_eq!(Notify::parse("never").unwrap(), Notify::Never);
        assert_eq!(Notify::parse("NEVER").unwrap().to_string(), "NEVER");
        assert_eq!(
            Notify::parse("delay,success").unwrap().to_string(),
            "SUCCESS,DELAY"
        );
        assert_eq!(
            Notify::parse("failure, Delay ,success,failure")
                .unwrap()
                .to_string(),
            "SUCCESS,FAILURE,DELAY"
        );
        for bad in [
            "",
            "never,success",
            "success,never",
            "sometimes",
            "success,",
        ] {
            assert!(Notify::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn envid_is_checked_when_built() {
        assert_eq!(Envid::new("QQ314159").unwrap().xtext(), "QQ314159");
        assert_eq!(Envid::new("id=1 +x").unwrap().xtext(), "id+3D1+20+2Bx");
        for bad in ["", "a\r\nRSET", "a\0", "é", "tab\there"] {
            assert!(Envid::new(bad).is_err(), "{bad:?}");
        }
        assert!(Envid::new(&"a".repeat(100)).is_ok());
        assert!(Envid::new(&"a".repeat(101)).is_err());
        // The limit counts the encoded form: 34 '+' are 102 characters of xtext.
        assert!(Envid::new(&"+".repeat(33)).is_ok());
        assert!(Envid::new(&"+".repeat(34)).is_err());
    }
}
