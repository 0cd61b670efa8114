//! Client commands as values (RFC 5321 §4.1.1, RFC 3207 §4, RFC 4954 §4, RFC 3030 §2).
//!
//! [`Command::to_wire`] gives the exact bytes, CRLF included. Every argument that can come
//! from the user goes through a validating constructor, so no CR, LF or other control character
//! ever reaches the wire: a bad argument is a [`CommandError`] at construction time.
//!
//! `Display` is the `-v` transcript form, without CRLF. It equals the wire form except for
//! credentials: `AUTH PLAIN <redacted>`, and AUTH continuation lines print as `<redacted>`.
//! Display is what ends up in logs, so it must never carry a secret.
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::auth::{Mechanism, Secret};
use super::dsn::{self, Envid, Notify, Ret};

/// An argument that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct CommandError {
    pub what: &'static str,
    /// The offending value (never a credential).
    pub value: String,
    pub reason: &'static str,
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> CommandError {
    CommandError {
        what,
        value: value.to_string(),
        reason,
    }
}

/// The EHLO/HELO argument: a domain or an address literal such as `[127.0.0.1]`
/// (RFC 5321 §4.1.1.1). Printable ASCII only; IDNs must be converted to A-labels first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain(String);

impl Domain {
    pub fn new(name: &str) -> Result<Domain, CommandError> {
        if name.is_empty() {
            return Err(invalid("EHLO name", name, "empty"));
        }
        if name.len() > 255 {
            return Err(invalid("EHLO name", name, "longer than 255 octets"));
        }
        if !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "EHLO name",
                name,
                "only printable ASCII without spaces is allowed",
            ));
        }
        Ok(Domain(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A mailbox inside `<...>` in MAIL FROM or RCPT TO (RFC 5321 §4.1.2). Non-ASCII is allowed
/// (it then needs SMTPUTF8, RFC 6531 §3.3); control characters, spaces and angle brackets are
/// not, so an address can neither end the command line nor smuggle parameters after `>`. The
/// one exception is a quoted local part (`"john doe"@example.com`), whose spaces cannot end
/// the path because they sit between the quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(String);

/// RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the angle brackets.
const MAX_PATH: usize = 254;

impl Path {
    /// A reverse-path for MAIL FROM; the empty string gives the null path `<>`.
    pub fn reverse(address: &str) -> Result<Path, CommandError> {
        Path::check("sender address", address)
    }

    /// A forward-path for RCPT TO: never empty.
    pub fn forward(address: &str) -> Result<Path, CommandError> {
        if address.is_empty() {
            return Err(invalid("recipient address", address, "empty"));
        }
        Path::check("recipient address", address)
    }

    fn check(what: &'static str, address: &str) -> Result<Path, CommandError> {
        if address.chars().any(|c| c.is_control()) {
            return Err(invalid(
                what,
                address,
                "contains a control character (CR, LF, ...)",
            ));
        }
        let (local, rest) = match address.strip_prefix('"') {
            Some(quoted) => {
                let (local, rest) = split_quoted(quoted).map_err(|r| invalid(what, address, r))?;
                if !rest.starts_with('@') {
                    return Err(invalid(
                        what,
                        address,
                        "a quoted local part must be followed by '@' and a domain",
                    ));
                }
                (Some(local), rest)
            }
            None => (None, address),
        };
        if rest.contains('"') || rest.contains('\\') {
            return Err(invalid(
                what,
                address,
                "'\"' and '\\' are only allowed inside a quoted local part",
            ));
        }
        if rest
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>')
        {
            return Err(invalid(
                what,
                address,
                "contains a space or an angle bracket",
            ));
        }
        let path = match local {
            Some(local) => format!("{}{rest}", local_part(&local)),
            None => rest.to_string(),
        };
        if path.len() > MAX_PATH {
            return Err(invalid(what, address, "longer than 254 octets"));
        }
        Ok(Path(path))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A non-ASCII address can only be sent with SMTPUTF8 (RFC 6531 §3.2).
    pub fn is_ascii(&self) -> bool {
        self.0.is_ascii()
    }
}

/// Reads a RFC 5321 §4.1.2 `Quoted-string` after its opening DQUOTE: `qtextSMTP` is
/// %d32-33 / %d35-91 / %d93-126 (plus UTF8-non-ascii with SMTPUTF8, RFC 6531 §3.3) and
/// `quoted-pairSMTP` is `\` %d32-126. Gives the unescaped content and what follows the
/// closing DQUOTE. Control characters were refused before.
fn split_quoted(quoted: &str) -> Result<(String, &str), &'static str> {
    let mut content = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                if content.is_empty() {
                    return Err("the quoted local part is empty");
                }
                return Ok((content, &quoted[i + 1..]));
            }
            '\\' => match chars.next() {
                Some((_, e)) if e == ' ' || e.is_ascii_graphic() => content.push(e),
                Some(_) => return Err("'\\' inside quotes must be followed by printable ASCII"),
                None => break,
            },
            c => content.push(c),
        }
    }
    Err("the quoted local part has no closing '\"'")
}

/// RFC 5321 §4.1.2 `atext` (RFC 5322 §3.2.3), with UTF8-non-ascii (RFC 6531 §3.3).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// The local part as sent: a `Dot-string` unquoted, since RFC 5321 §4.1.2 says one that can
/// be expressed as a Dot-string SHOULD NOT be quoted; anything else as a `Quoted-string`
/// with only `"` and `\` escaped.
fn local_part(content: &str) -> String {
    let dot_string = content
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
    if dot_string {
        return content.to_string();
    }
    let mut out = String::with_capacity(content.len() + 2);
    out.push('"');
    for c in content.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// A MAIL or RCPT parameter, `keyword[=value]` (RFC 5321 §4.1.2 esmtp-param).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    keyword: String,
    value: Option<String>,
}

impl Param {
    /// `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`,
    /// `esmtp-value = 1*(%d33-60 / %d62-126)`.
    pub fn new(keyword: &str, value: Option<&str>) -> Result<Param, CommandError> {
        let kw_ok = keyword
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && keyword
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !kw_ok {
            return Err(invalid(
                "parameter keyword",
                keyword,
                "letters, digits and '-' only",
            ));
        }
        if let Some(v) = value {
            if v.is_empty() || !v.bytes().all(|b| (33..=126).contains(&b) && b != b'=') {
                return Err(invalid(
                    "parameter value",
                    v,
                    "printable ASCII without '=' or spaces",
                ));
            }
        }
        Ok(Param {
            keyword: keyword.to_string(),
            value: value.map(str::to_string),
        })
    }

    /// `SIZE=n` (RFC 1870 §6).
    pub fn size(n: u64) -> Param {
        Param {
            keyword: "SIZE".into(),
            value: Some(n.to_string()),
        }
    }

    /// `BODY=8BITMIME` (RFC 6152 §2).
    pub fn body_8bitmime() -> Param {
        Param {
            keyword: "BODY".into(),
            value: Some("8BITMIME".into()),
        }
    }

    /// `SMTPUTF8` (RFC 6531 §3.4).
    pub fn smtputf8() -> Param {
        Param {
            keyword: "SMTPUTF8".into(),
            value: None,
        }
    }

    /// `NOTIFY=...` on RCPT (RFC 3461 §4.1).
    pub fn notify(notify: Notify) -> Param {
        Param {
            keyword: "NOTIFY".into(),
            value: Some(notify.to_string()),
        }
    }

    /// `ORCPT=rfc822;xtext` on RCPT (RFC 3461 §4.2), or `utf-8;...` for an address that needs
    /// SMTPUTF8 (RFC 6533 §3). The value is xtext, so it holds no space, `=` or control.
    pub fn orcpt(to: &Path) -> Result<Param, CommandError> {
        Ok(Param {
            keyword: "ORCPT".into(),
            value: Some(dsn::orcpt_value(to.as_str())?),
        })
    }

    /// `RET=FULL|HDRS` on MAIL (RFC 3461 §4.3).
    pub fn ret(ret: Ret) -> Param {
        Param {
            keyword: "RET".into(),
            value: Some(ret.as_str().into()),
        }
    }

    /// `ENVID=xtext` on MAIL (RFC 3461 §4.4); [`Envid`] was checked when it was built.
    pub fn envid(envid: &Envid) -> Param {
        Param {
            keyword: "ENVID".into(),
            value: Some(envid.xtext().into()),
        }
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.keyword),
            None => f.write_str(&self.keyword),
        }
    }
}

/// A base64 SASL payload (RFC 4954 §4). Always valid on the wire; never printed.
#[derive(Debug)]
pub struct SaslResponse(Secret);

impl SaslResponse {
    pub fn encode(raw: &[u8]) -> SaslResponse {
        SaslResponse(Secret::new(BASE64.encode(raw)))
    }
}

/// One SMTP command.
#[derive(Debug)]
pub enum Command {
    Ehlo(Domain),
    Helo(Domain),
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4).
    Auth {
        mechanism: Mechanism,
        initial: Option<SaslResponse>,
    },
    /// A line answering a 334 challenge.
    AuthResponse(SaslResponse),
    Mail {
        from: Path,
        params: Vec<Param>,
    },
    Rcpt {
        to: Path,
        params: Vec<Param>,
    },
    Data,
    /// `BDAT size [LAST]` (RFC 3030 §2); the `size` octets follow the command directly.
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
}

impl Command {
    pub fn ehlo(name: &str) -> Result<Command, CommandError> {
        Domain::new(name).map(Command::Ehlo)
    }

    pub fn helo(name: &str) -> Result<Command, CommandError> {
        Domain::new(name).map(Command::Helo)
    }

    pub fn auth(mechanism: Mechanism, initial: Option<SaslResponse>) -> Command {
        Command::Auth { mechanism, initial }
    }

    pub fn auth_response(payload: SaslResponse) -> Command {
        Command::AuthResponse(payload)
    }

    /// `MAIL FROM:<address> params`; `""` gives `<>`.
    pub fn mail(from: &str, params: Vec<Param>) -> Result<Command, CommandError> {
        Ok(Command::Mail {
            from: Path::reverse(from)?,
            params,
        })
    }

    pub fn rcpt(to: &str, params: Vec<Param>) -> Result<Command, CommandError> {
        Ok(Command::Rcpt {
            to: Path::forward(to)?,
            params,
        })
    }

    /// The exact bytes to send, CRLF terminated.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut line = match self {
            Command::Auth {
                mechanism,
                initial: Some(r),
            } => {
                // A zero-length initial response is sent as "=" (RFC 4954 §4).
                let payload = r.0.expose();
                let payload = if payload.is_empty() {
                    b"=".as_slice()
                } else {
                    payload
                };
                [b"AUTH ", mechanism.name().as_bytes(), b" ", payload].concat()
            }
            Command::AuthResponse(r) => r.0.expose().to_vec(),
            other => other.to_string().into_bytes(),
        };
        line.extend_from_slice(b"\r\n");
        line
    }
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[Param]) -> fmt::Result {
    params.iter().try_for_each(|p| write!(f, " {p}"))
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Ehlo(d) => write!(f, "EHLO {}", d.0),
            Command::Helo(d) => write!(f, "HELO {}", d.0),
            Command::StartTls => f.write_str("STARTTLS"),
            Command::Auth {
                mechanism,
                initial: None,
            } => write!(f, "AUTH {mechanism}"),
            Command::Auth {
                mechanism,
                initial: Some(_),
            } => write!(f, "AUTH {mechanism} <redacted>"),
            Command::AuthResponse(_) => f.write_str("<redacted>"),
            Command::Mail { from, params } => {
                write!(f, "MAIL FROM:<{}>", from.0)?;
                write_params(f, params)
            }
            Command::Rcpt { to, params } => {
                write!(f, "RCPT TO:<{}>", to.0)?;
                write_params(f, params)
            }
            Command::Data => f.write_str("DATA"),
            Command::Bdat { size, last: true } => write!(f, "BDAT {size} LAST"),
            Command::Bdat { size, last: false } => write!(f, "BDAT {size}"),
            Command::Rset => f.write_str("RSET"),
            Command::Noop => f.write_str("NOOP"),
            Command::Quit => f.write_str("QUIT"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(c: &Command) -> String {
        String::from_utf8(c.to_wire()).unwrap()
    }

    #[test]
    fn exact_wire_forms() {
        let cases: Vec<(Command, &str)> = vec![
            (
                Command::ehlo("client.example.org").unwrap(),
                "EHLO client.example.org\r\n",
            ),
            (
                Command::helo("[127.0.0.1]").unwrap(),
                "HELO [127.0.0.1]\r\n",
            ),
            (Command::StartTls, "STARTTLS\r\n"),
            (Command::mail("", vec![]).unwrap(), "MAIL FROM:<>\r\n"),
            (
                Command::mail(
                    "a@example.org",
                    vec![Param::size(1234), Param::body_8bitmime(), Param::smtputf8()],
                )
                .unwrap(),
                "MAIL FROM:<a@example.org> SIZE=1234 BODY=8BITMIME SMTPUTF8\r\n",
            ),
            (
                Command::rcpt("b@example.org", vec![]).unwrap(),
                "RCPT TO:<b@example.org>\r\n",
            ),
            (
                Command::rcpt(
                    "b@example.org",
                    vec![Param::new("NOTIFY", Some("FAILURE,DELAY")).unwrap()],
                )
                .unwrap(),
                "RCPT TO:<b@example.org> NOTIFY=FAILURE,DELAY\r\n",
            ),
            (
                Command::rcpt("postmaster", vec![]).unwrap(),
                "RCPT TO:<postmaster>\r\n",
            ),
            (Command::Data, "DATA\r\n"),
            (
                Command::Bdat {
                    size: 4096,
                    last: true,
                },
                "BDAT 4096 LAST\r\n",
            ),
            (
                Command::Bdat {
                    size: 0,
                    last: false,
                },
                "BDAT 0\r\n",
            ),
            (Command::Rset, "RSET\r\n"),
            (Command::Noop, "NOOP\r\n"),
            (Command::Quit, "QUIT\r\n"),
            (Command::auth(Mechanism::Login, None), "AUTH LOGIN\r\n"),
            (
                Command::auth(Mechanism::Plain, Some(SaslResponse::encode(b""))),
                "AUTH PLAIN =\r\n",
            ),
            (
                Command::auth_response(SaslResponse::encode(b"tim")),
                "dGlt\r\n",
            ),
        ];
        for (cmd, expected) in cases {
            assert_eq!(wire(&cmd), expected);
        }
    }

    #[test]
    fn dsn_parameters_on_the_wire() {
        // The example dialogue of RFC 3461 (Alice and Bob), written by our own commands.
        let mail = Command::mail(
            "Alice@Pure-Heart.ORG",
            vec![
                Param::ret(Ret::Hdrs),
                Param::envid(&Envid::new("QQ314159").unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(
            wire(&mail),
            "MAIL FROM:<Alice@Pure-Heart.ORG> RET=HDRS ENVID=QQ314159\r\n"
        );
        let to = Path::forward("Bob@Big-Bucks.COM").unwrap();
        let notify = Notify::parse("success,failure").unwrap();
        let rcpt = Command::Rcpt {
            params: vec![Param::notify(notify), Param::orcpt(&to).unwrap()],
            to,
        };
        assert_eq!(
            wire(&rcpt),
            "RCPT TO:<Bob@Big-Bucks.COM> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@Big-Bucks.COM\r\n"
        );
        // xtext keeps '+', '=' and the quoted local part's space out of the parameter's syntax.
        let to = Path::forward(r#""a b+c=d"@x.test"#).unwrap();
        let rcpt = Command::Rcpt {
            params: vec![Param::notify(Notify::Never), Param::orcpt(&to).unwrap()],
            to,
        };
        assert_eq!(
            wire(&rcpt),
            "RCPT TO:<\"a b+c=d\"@x.test> NOTIFY=NEVER ORCPT=rfc822;\"a+20b+2Bc+3Dd\"@x.test\r\n"
        );
        let mail = Command::mail(
            "a@x.test",
            vec![
                Param::size(9),
                Param::ret(Ret::Full),
                Param::envid(&Envid::new("id=1 2").unwrap()),
            ],
        )
        .unwrap();
        assert_eq!(
            wire(&mail),
            "MAIL FROM:<a@x.test> SIZE=9 RET=FULL ENVID=id+3D1+202\r\n"
        );
        let to = Path::forward("jörg@x.test").unwrap();
        assert_eq!(
            Param::orcpt(&to).unwrap().to_string(),
            "ORCPT=utf-8;j\\x{F6}rg@x.test"
        );
    }

    #[test]
    fn utf8_address_passes_through() {
        let c = Command::mail("δοκιμή@παράδειγμα.δοκιμή", vec![Param::smtputf8()]).unwrap();
        assert_eq!(
            wire(&c),
            "MAIL FROM:<δοκιμή@παράδειγμα.δοκιμή> SMTPUTF8\r\n"
        );
        assert!(!Path::reverse("δ@x").unwrap().is_ascii());
    }

    #[test]
    fn control_characters_never_reach_the_wire() {
        for bad in [
            "a@b\r\nRCPT TO:<evil@x>",
            "a@b\n",
            "a@b\r",
            "a\0@b",
            "a\t@b",
            "a@b\u{7f}",
            "a@b\u{85}",
            "a@b> SIZE=1",
            "<a@b",
            "a b@c",
        ] {
            assert!(Command::mail(bad, vec![]).is_err(), "{bad:?}");
            assert!(Command::rcpt(bad, vec![]).is_err(), "{bad:?}");
        }
        assert!(Command::rcpt("", vec![]).is_err());
        assert!(Command::mail(&"x".repeat(255), vec![]).is_err());
        for bad in ["", "host\r\nQUIT", "host name", "hôte", &"h".repeat(256)] {
            assert!(Command::ehlo(bad).is_err(), "{bad:?}");
        }
        for (kw, v) in [
            ("", None),
            ("-X", None),
            ("X Y", None),
            ("X", Some("")),
            ("X", Some("a b")),
            ("X", Some("a=b")),
            ("X", Some("a\r\n")),
        ] {
            assert!(Param::new(kw, v).is_err(), "{kw:?} {v:?}");
        }
    }

    #[test]
    fn quoted_local_parts_reach_the_wire() {
        // RFC 5321 §4.1.2: Local-part = Dot-string / Quoted-string, and a local part that can
        // be expressed as a Dot-string SHOULD NOT be quoted.
        for (address, path) in [
            (r#""john doe"@example.com"#, r#""john doe"@example.com"#),
            (r#""a\"b"@x.test"#, r#""a\"b"@x.test"#),
            (r#""a\\b"@x.test"#, r#""a\\b"@x.test"#),
            (r#""a@b"@x.test"#, r#""a@b"@x.test"#),
            (r#""(x)"@x.test"#, r#""(x)"@x.test"#),
            (r#""a..b"@x.test"#, r#""a..b"@x.test"#),
            (r#"".a"@x.test"#, r#"".a"@x.test"#),
            (r#""a."@x.test"#, r#""a."@x.test"#),
            (r#"" "@[192.0.2.1]"#, r#"" "@[192.0.2.1]"#),
            (r#""john"@x.test"#, "john@x.test"),
            (r#""john.q.public"@x.test"#, "john.q.public@x.test"),
            (r#""\j\o\h\n"@x.test"#, "john@x.test"),
            (
                r##""#!$%&'*+-/=?^_`{|}~"@x.test"##,
                "#!$%&'*+-/=?^_`{|}~@x.test",
            ),
        ] {
            let rcpt = Command::rcpt(address, vec![]).unwrap();
            assert_eq!(wire(&rcpt), format!("RCPT TO:<{path}>\r\n"), "{address}");
            let mail = Command::mail(address, vec![Param::size(1)]).unwrap();
            assert_eq!(wire(&mail), format!("MAIL FROM:<{path}> SIZE=1\r\n"));
            assert!(Path::forward(path).unwrap().is_ascii());
        }
        let utf8 = Path::forward(r#""jörg doe"@x.test"#).unwrap();
        assert_eq!(utf8.as_str(), r#""jörg doe"@x.test"#);
        assert!(!utf8.is_ascii());
    }

    #[test]
    fn every_qtext_smtp_character_survives_quoting() {
        // qtextSMTP = %d32-33 / %d35-91 / %d93-126; '"' (34) and '\' (92) need quoted-pairSMTP.
        for b in 32u8..=126 {
            let c = char::from(b);
            let escaped = if c == '"' || c == '\\' {
                format!("\\{c}")
            } else {
                c.to_string()
            };
            let path = Path::forward(&format!("\"a{escaped}b\"@x.test")).unwrap();
            // `a.b` is a Dot-string too.
            let dot_string = c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
            let expected = if dot_string {
                format!("a{c}b@x.test")
            } else {
                format!("\"a{escaped}b\"@x.test")
            };
            assert_eq!(path.as_str(), expected, "{b}");
        }
    }

    #[test]
    fn malformed_quoted_local_parts_are_refused() {
        for (bad, reason) in [
            (r#""john doe@x.test"#, "no closing"),
            (r#""john\"@x.test"#, "no closing"),
            (r#"""#, "no closing"),
            (r#""john""#, "followed by '@'"),
            (r#""john"doe@x.test"#, "followed by '@'"),
            (r#"john"doe"@x.test"#, "only allowed inside"),
            (r#"jo"hn@x.test"#, "only allowed inside"),
            (r#"john\ doe@x.test"#, "only allowed inside"),
            (r#""a"@x"b"#, "only allowed inside"),
            (r#""a\é"@x.test"#, "printable ASCII"),
            (r#"""@x.test"#, "empty"),
            (r#""a"@x.test> SIZE=1"#, "space or an angle"),
            (r#""a"@x .test"#, "space or an angle"),
            ("\"a\tb\"@x.test", "control"),
            ("\"a\r\nRCPT TO:<evil@x>\"@x.test", "control"),
            ("\"a\0\"@x.test", "control"),
            ("\"a\u{7f}\"@x.test", "control"),
            ("\"a\u{85}\"@x.test", "control"),
        ] {
            let err = Path::forward(bad).unwrap_err();
            assert!(err.reason.contains(reason), "{bad:?}: {err}");
            assert!(Command::mail(bad, vec![]).is_err(), "{bad:?}");
        }
        let long = format!("\"{}\"@x.test", " ".repeat(246));
        assert!(Path::forward(&long).is_err());
        let fits = format!("\"{}\"@x.test", " ".repeat(245));
        assert_eq!(Path::forward(&fits).unwrap().as_str().len(), 254);
    }

    #[test]
    fn transcript_form_redacts_credentials() {
        let plain = Command::auth(
            Mechanism::Plain,
            Some(SaslResponse::encode(b"\0tim\0secret")),
        );
        assert_eq!(plain.to_string(), "AUTH PLAIN <redacted>");
        assert!(!format!("{plain:?}").contains("AHRpbQBzZWNyZXQ="));
        let cont = Command::auth_response(SaslResponse::encode(b"secret"));
        assert_eq!(cont.to_string(), "<redacted>");
        assert_eq!(
            Command::auth(Mechanism::CramMd5, None).to_string(),
            "AUTH CRAM-MD5"
        );
        assert_eq!(
            Command::Bdat {
                size: 9,
                last: true
            }
            .to_string(),
            "BDAT 9 LAST"
        );
    }
}
