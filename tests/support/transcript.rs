//! The SMTP transcript language: a conversation written the way it reads, one item a line.
//!
//! ```text
//! S: 220 mx.test ESMTP        server line; CRLF is added. Consecutive S:/R: lines are ONE write
//! S: 250-mx.test              (the scripted server) or ONE read (the session unit tests)
//! R: 250 inj                  raw server bytes, no CRLF added
//! C: EHLO *                   the next line the client writes; a final `*` makes it a prefix
//! C: MAIL FROM:<a@x.test>     match, anything else must be equal (case-sensitive). `C: *` is
//!                             any one line
//! C: <body dot>               a DATA body, dot-stuffed, up to (not including) the final dot;
//! C: .                        the end-of-data line is its own item, as the session writes it
//! C: <body raw 1200>          exactly N raw octets (BDAT); `<body raw *>`: the size the last
//!                             `BDAT n` command announced
//! C: <body bdat>              `BDAT n [LAST]` commands and their chunks until LAST; every
//!                             chunk but the last is answered `250` (scripted server only)
//! C: <eof>                    the client sends nothing more and closes its side
//! C: <anything>               whatever the client sends until it closes, never a mismatch
//! * TLS                       TLS handshake (server side with the script's certificate)
//! * wait 3s                   the server stays silent (client bytes are still read and kept
//!                             for the next C: items); `ms` and fractions allowed: `* wait 0.3s`
//! * trickle 2s                every later S:/R: write goes out one byte every 2 s, until the
//!                             client goes away; `* trickle off` ends it
//! * auth PLAIN,LOGIN ada pw   one AUTH exchange by a mechanism from the list, accepting only
//!                             this user and password (a failure switches to the tail)
//! * until DATA                read client lines until one matches (same rules as `C:`)
//! * endless                   send `220 ` and then bytes without a line end until the client goes
//! * tail                      from here: QUIT → 221 and close, RSET/NOOP → 250, else 503
//! EOF                         the server closes (its sending side; it still records what the
//!                             client sends, and anything it does send is a mismatch)
//! # comment                   blank lines and comments are ignored, indentation is trimmed;
//!                             two spaces and `#` start a comment at the end of a line
//! ```
//!
//! Inside `S:`, `R:` and `C:` text, `\r`, `\n`, `\t`, `\0`, `\\` and `\xHH` are escapes (so a
//! test can put a NUL or an ESC in a reply: `S: 250 a\x1bb`); other backslashes stay as they are.
//!
//! The end of the transcript means `C: <eof>`: a client that says more than the script is a
//! mismatch. This file depends on std only, so `src/` unit tests can include it with
//! `#[path = "../../tests/support/transcript.rs"] mod transcript;`.

use std::fmt;
use std::time::Duration;

/// One thing that happens in the conversation, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `S:`/`R:` lines in a row: these bytes, in one write (or one read).
    Server(Vec<u8>),
    /// `C:`: what the client writes next.
    Client(Expect),
    /// `* TLS`: the TLS handshake.
    Tls,
    /// `* wait D`: the server says nothing for this long.
    Wait(Duration),
    /// `* trickle D` (`Some`) and `* trickle off` (`None`): later writes go byte by byte.
    Trickle(Option<Duration>),
    /// `* auth MECHS USER PASSWORD`: one AUTH exchange.
    Auth(Auth),
    /// `* until PATTERN`: client lines are read until one matches.
    Until(Pattern),
    /// `* endless`: a reply line that never ends.
    Endless,
    /// `* tail`: the tolerant tail.
    Tail,
    /// `EOF`: the server closes the connection.
    Eof,
}

/// What the client is expected to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// One command line (without CRLF).
    Line(Pattern),
    /// `<body dot>`: a dot-stuffed body, not including the final `.` line.
    BodyDot,
    /// `<body raw N>` / `<body raw *>`: raw octets, this many or as the last BDAT announced.
    BodyRaw(Option<u64>),
    /// `<body bdat>`: BDAT commands and chunks up to the LAST one.
    Bdat,
    /// `<eof>`: nothing more; the client closes.
    Eof,
    /// `<anything>`: whatever comes until the client closes.
    Anything,
}

/// A line pattern: `exact` or `prefix*`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// The line must be exactly this.
    Exact(String),
    /// The line must start with this (`*` alone: any line).
    Prefix(String),
}

/// What `* auth` accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    /// Mechanisms accepted, upper case (`PLAIN`, `LOGIN`, `CRAM-MD5`).
    pub mechanisms: Vec<String>,
    /// The user name that succeeds.
    pub user: String,
    /// The password that succeeds.
    pub password: String,
}

/// A line that is not in the language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number in the transcript text.
    pub line: usize,
    /// The offending line, trimmed.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "transcript line {}: {} ({:?})",
            self.line, self.why, self.text
        )
    }
}

impl std::error::Error for ParseError {}

impl Pattern {
    /// `text` with a final `*` is a prefix, else exact.
    pub fn parse(text: &str) -> Pattern {
        match text.strip_suffix('*') {
            Some(prefix) => Pattern::Prefix(prefix.to_owned()),
            None => Pattern::Exact(text.to_owned()),
        }
    }

    /// Whether `line` (without CRLF) fits.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Pattern::Exact(want) => line == want,
            Pattern::Prefix(prefix) => line.starts_with(prefix.as_str()),
        }
    }
}

impl Expect {
    /// Whether an item the client wrote, rendered as the session unit tests render them
    /// (`EHLO x`, `<body dot>`, `<body raw 12>`), fits this expectation.
    pub fn matches(&self, written: &str) -> bool {
        match self {
            Expect::Line(pattern) => pattern.matches(written),
            Expect::BodyDot => written == "<body dot>",
            Expect::BodyRaw(Some(n)) => written == format!("<body raw {n}>"),
            Expect::BodyRaw(None) => written.starts_with("<body raw "),
            Expect::Bdat => written.starts_with("BDAT "),
            Expect::Eof => false,
            Expect::Anything => true,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(line) => write!(f, "{}", escape(line.as_bytes())),
            Pattern::Prefix(prefix) => write!(f, "{}*", escape(prefix.as_bytes())),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Line(pattern) => write!(f, "{pattern}"),
            Expect::BodyDot => f.write_str("<body dot>"),
            Expect::BodyRaw(Some(n)) => write!(f, "<body raw {n}>"),
            Expect::BodyRaw(None) => f.write_str("<body raw *>"),
            Expect::Bdat => f.write_str("<body bdat>"),
            Expect::Eof => f.write_str("<eof>"),
            Expect::Anything => f.write_str("<anything>"),
        }
    }
}

impl fmt::Display for Item {
    /// The transcript text of this item (several lines for a multi-line server write).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Server(bytes) => {
                let mut first = true;
                for line in bytes.split_inclusive(|&b| b == b'\n') {
                    if !first {
                        f.write_str("\n")?;
                    }
                    first = false;
                    match line.strip_suffix(b"\r\n") {
                        Some(text) => write!(f, "S: {}", escape(text))?,
                        None => write!(f, "R: {}", escape(line))?,
                    }
                }
                Ok(())
            }
            Item::Client(expect) => write!(f, "C: {expect}"),
            Item::Tls => f.write_str("* TLS"),
            Item::Wait(d) => write!(f, "* wait {}ms", d.as_millis()),
            Item::Trickle(Some(d)) => write!(f, "* trickle {}ms", d.as_millis()),
            Item::Trickle(None) => f.write_str("* trickle off"),
            Item::Auth(auth) => write!(
                f,
                "* auth {} {} {}",
                auth.mechanisms.join(","),
                auth.user,
                auth.password
            ),
            Item::Until(pattern) => write!(f, "* until {pattern}"),
            Item::Endless => f.write_str("* endless"),
            Item::Tail => f.write_str("* tail"),
            Item::Eof => f.write_str("EOF"),
        }
    }
}

/// Writes `items` back as transcript text, one item a line.
pub fn render(items: &[Item]) -> String {
    items
        .iter()
        .map(|item| format!("{item}\n"))
        .collect::<String>()
}

/// Parses transcript text into items; consecutive `S:`/`R:` lines become one `Item::Server`.
pub fn parse(text: &str) -> Result<Vec<Item>, ParseError> {
    let mut items: Vec<Item> = Vec::new();
    // Whether the last item came from S:/R: lines (so the next such line joins it).
    let mut joining = false;
    for (index, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let error = |why: &str| ParseError {
            line: index + 1,
            text: line.to_owned(),
            why: why.to_owned(),
        };
        let server = if let Some(text) = tagged(line, "S:") {
            let mut bytes = unescape(text);
            bytes.extend_from_slice(b"\r\n");
            Some(bytes)
        } else {
            tagged(line, "R:").map(unescape)
        };
        if let Some(bytes) = server {
            match items.last_mut() {
                Some(Item::Server(write)) if joining => write.extend_from_slice(&bytes),
                _ => items.push(Item::Server(bytes)),
            }
            joining = true;
            continue;
        }
        joining = false;
        let item = if let Some(text) = tagged(line, "C:") {
            Item::Client(parse_client(text).map_err(|why| error(&why))?)
        } else if let Some(directive) = line.strip_prefix('*') {
            parse_directive(directive.trim()).map_err(|why| error(&why))?
        } else if line == "EOF" {
            Item::Eof
        } else {
            return Err(error("not S:, R:, C:, `* ...` or EOF"));
        };
        items.push(item);
    }
    Ok(items)
}

/// The text after `tag` (`S:` and one optional space), if the line has that tag.
fn tagged<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(tag)?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

/// Cuts a trailing comment: two or more blanks, then `#`; or `#` as the first non-blank.
fn strip_comment(line: &str) -> &str {
    if line.trim_start().starts_with('#') {
        return "";
    }
    let bytes = line.as_bytes();
    for at in 2..bytes.len() {
        if bytes[at] == b'#'
            && bytes[at - 1].is_ascii_whitespace()
            && bytes[at - 2].is_ascii_whitespace()
        {
            return &line[..at];
        }
    }
    line
}

fn parse_client(text: &str) -> Result<Expect, String> {
    Ok(match text {
        "<body dot>" => Expect::BodyDot,
        "<body raw *>" => Expect::BodyRaw(None),
        "<body bdat>" => Expect::Bdat,
        "<eof>" => Expect::Eof,
        "<anything>" => Expect::Anything,
        _ => {
            if let Some(n) = text
                .strip_prefix("<body raw ")
                .and_then(|t| t.strip_suffix('>'))
            {
                let n = n
                    .parse()
                    .map_err(|_| format!("<body raw N> needs a number, not {n:?}"))?;
                Expect::BodyRaw(Some(n))
            } else if text.starts_with('<') && text.ends_with('>') && !text.contains(':') {
                return Err(format!("unknown client item {text}"));
            } else {
                Expect::Line(Pattern::parse(&String::from_utf8_lossy(&unescape(text))))
            }
        }
    })
}

fn parse_directive(text: &str) -> Result<Item, String> {
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    Ok(match word.to_ascii_lowercase().as_str() {
        "tls" if rest.is_empty() => Item::Tls,
        "wait" => Item::Wait(parse_duration(rest)?),
        "trickle" if rest == "off" => Item::Trickle(None),
        "trickle" => Item::Trickle(Some(parse_duration(rest)?)),
        "until" if !rest.is_empty() => Item::Until(Pattern::parse(rest)),
        "endless" if rest.is_empty() => Item::Endless,
        "tail" if rest.is_empty() => Item::Tail,
        "auth" => {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let [mechanisms, user, password] = words.as_slice() else {
                return Err("`* auth MECH,MECH USER PASSWORD`".to_owned());
            };
            Item::Auth(Auth {
                mechanisms: mechanisms.split(',').map(str::to_ascii_uppercase).collect(),
                user: (*user).to_owned(),
                password: (*password).to_owned(),
            })
        }
        _ => return Err(format!("unknown directive `* {text}`")),
    })
}

/// `3s`, `0.5s`, `300ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("a duration such as 3s or 300ms, not {text:?}");
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        return Err(bad());
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// Applies the escapes `\r \n \t \0 \\ \xHH`; any other backslash is kept.
pub fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' || i + 1 == bytes.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let simple = match bytes[i + 1] {
            b'r' => Some(b'\r'),
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'0' => Some(0),
            b'\\' => Some(b'\\'),
            _ => None,
        };
        if let Some(value) = simple {
            out.push(value);
            i += 2;
        } else if let Some(value) = bytes
            .get(i + 2..i + 4)
            .filter(|_| bytes[i + 1] == b'x')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(value);
            i += 4;
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

/// The inverse of `unescape` for display: controls, backslashes and non-ASCII as escapes.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> Item {
        Item::Client(Expect::Line(Pattern::parse(text)))
    }

    #[test]
    fn consecutive_server_lines_are_one_write_and_client_lines_split_them() {
        let items = parse(
            "S: 220 mx.test ESMTP
             C: EHLO *
             S: 250-mx.test
             R: 250 PIPE
             S: LINING
             C: QUIT",
        )
        .unwrap();
        assert_eq!(
            items,
            [
                Item::Server(b"220 mx.test ESMTP\r\n".to_vec()),
                line("EHLO *"),
                Item::Server(b"250-mx.test\r\n250 PIPELINING\r\n".to_vec()),
                line("QUIT"),
            ]
        );
    }

    #[test]
    fn a_final_star_is_a_prefix_and_anything_else_is_exact() {
        let Item::Client(Expect::Line(prefix)) =
            &parse("C: MAIL FROM:<a@x.test> SIZE=*").unwrap()[0]
        else {
            panic!("not a client line");
        };
        assert!(prefix.matches("MAIL FROM:<a@x.test> SIZE=120"));
        assert!(!prefix.matches("MAIL FROM:<b@x.test> SIZE=120"));
        let exact = Pattern::parse("QUIT");
        assert!(exact.matches("QUIT"));
        assert!(!exact.matches("QUIT "));
        assert!(!exact.matches("quit"));
        assert!(Pattern::parse("*").matches("anything at all"));
    }

    #[test]
    fn bodies_and_ends() {
        let items = parse(
            "C: <body dot>
             C: .
             C: <body raw 1200>
             C: <body raw *>
             C: <body bdat>
             C: <eof>
             C: <anything>
             EOF",
        )
        .unwrap();
        assert_eq!(
            items,
            [
                Item::Client(Expect::BodyDot),
                line("."),
                Item::Client(Expect::BodyRaw(Some(1200))),
                Item::Client(Expect::BodyRaw(None)),
                Item::Client(Expect::Bdat),
                Item::Client(Expect::Eof),
                Item::Client(Expect::Anything),
                Item::Eof,
            ]
        );
        assert!(Expect::BodyRaw(Some(12)).matches("<body raw 12>"));
        assert!(!Expect::BodyRaw(Some(12)).matches("<body raw 13>"));
        assert!(Expect::BodyDot.matches("<body dot>"));
        assert!(parse("C: <body raw lots>").is_err());
        assert!(parse("C: <body>").is_err());
    }

    #[test]
    fn directives() {
        let items = parse(
            "* TLS
             * wait 3s
             * wait 300ms
             * trickle 0.5s
             * trickle off
             * auth plain,LOGIN ada pw-1
             * until DATA
             * endless
             * tail",
        )
        .unwrap();
        assert_eq!(
            items,
            [
                Item::Tls,
                Item::Wait(Duration::from_secs(3)),
                Item::Wait(Duration::from_millis(300)),
                Item::Trickle(Some(Duration::from_millis(500))),
                Item::Trickle(None),
                Item::Auth(Auth {
                    mechanisms: vec!["PLAIN".into(), "LOGIN".into()],
                    user: "ada".into(),
                    password: "pw-1".into(),
                }),
                Item::Until(Pattern::Exact("DATA".into())),
                Item::Endless,
                Item::Tail,
            ]
        );
        for bad in [
            "* wait",
            "* wait soon",
            "* trickle -1s",
            "* auth PLAIN",
            "* dance",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comments_blank_lines_and_indentation_are_ignored() {
        let items = parse(
            "
            # the greeting
                S: 220 mx.test   # trailing comment
            S: 250 #1 is not a comment
            ",
        )
        .unwrap();
        assert_eq!(
            items,
            [Item::Server(
                b"220 mx.test\r\n250 #1 is not a comment\r\n".to_vec()
            )]
        );
    }

    #[test]
    fn escapes_give_control_bytes_and_unknown_ones_stay() {
        let items = parse(r"S: 250 a\0b\x1bc\\d\q").unwrap();
        assert_eq!(items, [Item::Server(b"250 a\0b\x1bc\\d\\q\r\n".to_vec())]);
        let items = parse(r"R: 220 go\r\n250 fake\r\n").unwrap();
        assert_eq!(items, [Item::Server(b"220 go\r\n250 fake\r\n".to_vec())]);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("S: 220 ok\nHELO there").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("HELO there"), "{err}");
    }

    #[test]
    fn rendering_parses_back_to_the_same_items() {
        let text = "S: 220 mx\n\
                    C: EHLO *\n\
                    S: 250-mx\n\
                    S: 250 SIZE\n\
                    R: 25\n\
                    C: <body raw 5>\n\
                    * wait 300ms\n\
                    * auth PLAIN ada pw\n\
                    S: 250 a\\x00b\n\
                    EOF\n";
        let items = parse(text).unwrap();
        assert_eq!(parse(&render(&items)).unwrap(), items);
    }
}
