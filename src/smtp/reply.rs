//! Server replies: a resumable parser fed arbitrary byte chunks (RFC 5321 §4.2, §4.5.3.1.5),
//! enhanced status codes (RFC 2034 §3, RFC 3463 §2).
//!
//! Shaped like httparse: [`ReplyParser::parse`] takes a slice and answers
//! [`Parsed::Complete`] with the number of bytes it consumed, or [`Parsed::NeedMore`] after
//! keeping the unfinished tail internally (unlike httparse's `Partial`, the same bytes must not
//! be given again). What it keeps is capped ([`MAX_LINE_LEN`],
//! [`MAX_REPLY_LEN`], [`MAX_LINES`]), so a hostile server that never ends a line costs an
//! error, not memory.
//!
//! Rules chosen here:
//! - Line ends: CRLF, and also a bare LF. Replies are only read, never forwarded, and a line
//!   cannot contain an LF anyway, so accepting LF creates no ambiguity (unlike mail data, where
//!   RFC 5321 §4.1.1.4 forbids it); several servers and middleboxes do send LF-only replies.
//! - Any other control character in a line (NUL, ESC, a lone CR; HT aside) makes the reply
//!   malformed: reply text is printable US-ASCII and HT (RFC 5321 §4.2, `textstring`), and a
//!   server must not drive the user's terminal through the `-v` transcript.
//! - A code-only line (`250` with nothing after it) is a last line with empty text.
//! - Every line of a multi-line reply must carry the same code (RFC 5321 §4.2.1); a mismatch is
//!   an error, because it means the replies are out of step with the commands.
//! - Non-UTF-8 text is decoded lossily.
use std::fmt;

/// Longest accepted reply line, terminator included. RFC 5321 §4.5.3.1.5 says 512; real servers
/// exceed that with long texts, so allow eight times as much.
pub const MAX_LINE_LEN: usize = 4096;
/// Most lines in one reply (a long EHLO answer has about 20).
pub const MAX_LINES: usize = 256;
/// Most octets in one reply, terminators included.
pub const MAX_REPLY_LEN: usize = 64 * 1024;

/// An enhanced mail system status code, `class.subject.detail` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

impl EnhancedCode {
    /// Parses an enhanced code at the start of `text` (followed by a space or the end), for a
    /// reply whose class digit is `class`. RFC 2034 §3 requires the two classes to agree; a
    /// mismatching or malformed one is left in the text rather than guessed at.
    fn parse_prefix(class: u8, text: &str) -> Option<(EnhancedCode, usize)> {
        let token_len = text.find(' ').unwrap_or(text.len());
        let token = &text[..token_len];
        let mut parts = token.split('.');
        let (c, s, d) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let number = |p: &str, max: usize| -> Option<u16> {
            if p.is_empty() || p.len() > max || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let c = number(c, 1)?;
        if c != u16::from(class) || !matches!(c, 2 | 4 | 5) {
            return None;
        }
        let code = EnhancedCode {
            class,
            subject: number(s, 3)?,
            detail: number(d, 3)?,
        };
        let skip = if token_len < text.len() {
            token_len + 1
        } else {
            token_len
        };
        Some((code, skip))
    }
}

/// The first digit of a reply code (RFC 5321 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyClass {
    /// 2yz: the requested action was completed.
    Positive,
    /// 3yz: more input is expected (354 after DATA, 334 during AUTH).
    Intermediate,
    /// 4yz: a transient failure; the same command may succeed later.
    Transient,
    /// 5yz: a permanent failure; do not repeat the same request.
    Permanent,
}

/// One complete server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 §4.2).
    pub code: u16,
    /// The enhanced status code of the first line, when it carries a valid one.
    pub enhanced: Option<EnhancedCode>,
    /// The text of each line, with the enhanced code removed where a line starts with it.
    pub lines: Vec<String>,
    /// Each line as received, for the transcript.
    raw: Vec<String>,
}

impl Reply {
    /// Builds a reply; its transcript form is reconstructed as `code[-| ][enhanced ]text`.
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, lines: Vec<String>) -> Reply {
        let lines = if lines.is_empty() {
            vec![String::new()]
        } else {
            lines
        };
        let last = lines.len() - 1;
        let raw = lines
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let sep = if i == last { ' ' } else { '-' };
                match enhanced {
                    Some(e) if text.is_empty() => format!("{code}{sep}{e}"),
                    Some(e) => format!("{code}{sep}{e} {text}"),
                    None if text.is_empty() && i == last => format!("{code}"),
                    None => format!("{code}{sep}{text}"),
                }
            })
            .collect();
        Reply {
            code,
            enhanced,
            lines,
            raw,
        }
    }

    /// What the first digit says (RFC 5321 §4.2.1): the one place a code's meaning is decided.
    /// The parser only yields 2yz to 5yz; a constructed code outside them counts as permanent.
    pub fn class(&self) -> ReplyClass {
        match self.code / 100 {
            2 => ReplyClass::Positive,
            3 => ReplyClass::Intermediate,
            4 => ReplyClass::Transient,
            _ => ReplyClass::Permanent,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.class() == ReplyClass::Positive
    }

    pub fn is_intermediate(&self) -> bool {
        self.class() == ReplyClass::Intermediate
    }

    pub fn is_transient(&self) -> bool {
        self.class() == ReplyClass::Transient
    }

    pub fn is_permanent(&self) -> bool {
        self.class() == ReplyClass::Permanent
    }

    /// 4yz or 5yz: the command was refused.
    pub fn is_refusal(&self) -> bool {
        matches!(self.class(), ReplyClass::Transient | ReplyClass::Permanent)
    }

    /// The text of all lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The lines as they were received, for a `S: ` transcript.
    pub fn raw_lines(&self) -> &[String] {
        &self.raw
    }
}

impl fmt::Display for Reply {
    /// One line for error messages: `550 5.1.1 User unknown`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        let text = self
            .lines
            .iter()
            .filter(|l| !l.is_empty())
            .cloned()
            .collect::<Vec<_>>();
        if !text.is_empty() {
            write!(f, " {}", text.join(" "))?;
        }
        Ok(())
    }
}

/// Why bytes could not be parsed as a reply. After any of these the stream is out of step: the
/// caller must drop the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_LINE_LEN} octets")]
    LineTooLong,
    #[error("reply longer than {MAX_LINES} lines or {MAX_REPLY_LEN} octets")]
    TooLarge,
    #[error("reply line does not start with a valid three-digit code: {line:?}")]
    BadCode { line: String },
    #[error("reply code not followed by a space, a hyphen or the end of the line: {line:?}")]
    BadSeparator { line: String },
    #[error("multi-line reply changes code from {expected} to {found}")]
    CodeMismatch { expected: u16, found: u16 },
    /// The line is shown with its control characters replaced by U+FFFD.
    #[error("reply line contains a control character: {line:?}")]
    ControlCharacter { line: String },
}

/// The outcome of one [`ReplyParser::parse`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A reply ended after `consumed` bytes of the input; the rest was not looked at.
    Complete { reply: Reply, consumed: usize },
    /// The whole input was consumed and kept; give the next bytes, not these again.
    NeedMore,
}

/// Resumable reply parser. Holds at most [`MAX_REPLY_LEN`] bytes between calls.
#[derive(Debug, Default)]
pub struct ReplyParser {
    line: Vec<u8>,
    code: Option<u16>,
    lines: Vec<String>,
    reply_len: usize,
}

impl ReplyParser {
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Bytes held for an unfinished reply. Zero right after a complete reply: the STARTTLS
    /// injection check (CVE-2011-0411) relies on this and on the unconsumed input.
    pub fn buffered(&self) -> usize {
        self.reply_len + self.line.len()
    }

    /// Feeds `input`. Stops right after the first complete reply. On error the internal state is
    /// cleared.
    pub fn parse(&mut self, input: &[u8]) -> Result<Parsed, ReplyError> {
        let result = self.parse_inner(input);
        if result.is_err() {
            *self = ReplyParser::default();
        }
        result
    }

    fn parse_inner(&mut self, input: &[u8]) -> Result<Parsed, ReplyError> {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            let (chunk, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            // The line, its terminator (at least the LF) and the lines before must fit.
            if self.line.len() + chunk.len() + 1 > MAX_LINE_LEN {
                return Err(ReplyError::LineTooLong);
            }
            if self.buffered() + chunk.len() + usize::from(ended) > MAX_REPLY_LEN {
                return Err(ReplyError::TooLarge);
            }
            self.line.extend_from_slice(chunk);
            pos += chunk.len();
            if !ended {
                break;
            }
            pos += 1;
            if let Some(reply) = self.finish_line()? {
                return Ok(Parsed::Complete {
                    reply,
                    consumed: pos,
                });
            }
        }
        Ok(Parsed::NeedMore)
    }

    /// Handles the line in `self.line` (its LF already consumed); returns the reply it ends.
    fn finish_line(&mut self) -> Result<Option<Reply>, ReplyError> {
        let mut line = std::mem::take(&mut self.line);
        let wire_len = line.len() + 1;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if String::from_utf8_lossy(&line)
            .chars()
            .any(|c| c.is_control() && c != '\t')
        {
            return Err(ReplyError::ControlCharacter {
                line: sanitize(&line),
            });
        }
        let code = parse_code(&line).ok_or_else(|| ReplyError::BadCode {
            line: sanitize(&line),
        })?;
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => {
                return Err(ReplyError::BadSeparator {
                    line: sanitize(&line),
                })
            }
        };
        match self.code {
            Some(expected) if expected != code => {
                return Err(ReplyError::CodeMismatch {
                    expected,
                    found: code,
                })
            }
            _ => self.code = Some(code),
        }
        if self.lines.len() >= MAX_LINES {
            return Err(ReplyError::TooLarge);
        }
        self.lines.push(sanitize(line.get(4..).unwrap_or_default()));
        self.reply_len += wire_len;
        if !last {
            return Ok(None);
        }
        let lines = std::mem::take(&mut self.lines);
        *self = ReplyParser::default();
        Ok(Some(build_reply(code, lines)))
    }
}

/// `Reply-code = %x32-35 %x30-35 %x30-39` (RFC 5321 §4.2).
fn parse_code(line: &[u8]) -> Option<u16> {
    let d = line.get(..3)?;
    let ok =
        (b'2'..=b'5').contains(&d[0]) && (b'0'..=b'5').contains(&d[1]) && d[2].is_ascii_digit();
    ok.then(|| u16::from(d[0] - b'0') * 100 + u16::from(d[1] - b'0') * 10 + u16::from(d[2] - b'0'))
}

/// Lossy UTF-8, with every control character but TAB replaced by U+FFFD: reply lines have
/// none (they are refused), error messages must not carry them either.
fn sanitize(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

fn build_reply(code: u16, texts: Vec<String>) -> Reply {
    let class = (code / 100) as u8;
    let enhanced = texts
        .first()
        .and_then(|t| EnhancedCode::parse_prefix(class, t))
        .map(|(e, _)| e);
    let last = texts.len() - 1;
    let mut raw = Vec::with_capacity(texts.len());
    let mut lines = Vec::with_capacity(texts.len());
    for (i, text) in texts.into_iter().enumerate() {
        let sep = if i == last { " " } else { "-" };
        raw.push(if text.is_empty() && i == last {
            code.to_string()
        } else {
            format!("{code}{sep}{text}")
        });
        let stripped = match (enhanced, EnhancedCode::parse_prefix(class, &text)) {
            (Some(e), Some((found, skip))) if found == e => text[skip..].to_string(),
            _ => text,
        };
        lines.push(stripped);
    }
    Reply {
        code,
        enhanced,
        lines,
        raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Reply>, ReplyError> {
        let mut p = ReplyParser::new();
        let mut rest = input;
        let mut out = Vec::new();
        while !rest.is_empty() {
            match p.parse(rest)? {
                Parsed::Complete { reply, consumed } => {
                    out.push(reply);
                    rest = &rest[consumed..];
                }
                Parsed::NeedMore => break,
            }
        }
        assert_eq!(p.buffered(), 0, "input ended inside a reply");
        Ok(out)
    }

    fn one(input: &str) -> Reply {
        let mut v = parse_all(input.as_bytes()).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let r = one("250 2.0.0 Ok: queued as 4B2F1C0A2E\r\n");
        assert_eq!(r.code, 250);
        assert_eq!(
            r.enhanced,
            Some(EnhancedCode {
                class: 2,
                subject: 0,
                detail: 0
            })
        );
        assert_eq!(r.lines, vec!["Ok: queued as 4B2F1C0A2E"]);
        assert_eq!(r.raw_lines(), ["250 2.0.0 Ok: queued as 4B2F1C0A2E"]);
        assert!(r.is_positive() && !r.is_transient() && !r.is_permanent());
        assert_eq!(r.to_string(), "250 2.0.0 Ok: queued as 4B2F1C0A2E");
    }

    #[test]
    fn multi_line_ehlo() {
        let r = one(
            "250-mx.example.com Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
        );
        assert_eq!(r.code, 250);
        assert_eq!(r.enhanced, None);
        assert_eq!(
            r.lines,
            [
                "mx.example.com Hello",
                "PIPELINING",
                "SIZE 10240000",
                "8BITMIME"
            ]
        );
        assert_eq!(
            r.text(),
            "mx.example.com Hello\nPIPELINING\nSIZE 10240000\n8BITMIME"
        );
    }

    #[test]
    fn enhanced_code_stripped_from_each_line_that_carries_it() {
        // Postfix repeats the enhanced code on every line of a multi-line rejection.
        let r = one(
            "550-5.1.1 <x@example.com>: Recipient address rejected:\r\n550 5.1.1 User unknown\r\n",
        );
        assert!(r.is_permanent());
        assert_eq!(r.enhanced.map(|e| e.to_string()), Some("5.1.1".into()));
        assert_eq!(
            r.lines,
            [
                "<x@example.com>: Recipient address rejected:",
                "User unknown"
            ]
        );
        assert_eq!(r.raw_lines()[1], "550 5.1.1 User unknown");
    }

    #[test]
    fn enhanced_code_must_match_reply_class() {
        let r = one("250 5.1.1 odd\r\n");
        assert_eq!(r.enhanced, None);
        assert_eq!(r.lines, ["5.1.1 odd"]);
        // Not a code: too many digits, missing part, trailing junk.
        for text in ["2.0000.0 x", "2.0 x", "2.0.0x y", "2.0.0.0 x"] {
            assert_eq!(one(&format!("250 {text}\r\n")).enhanced, None, "{text}");
        }
        // 3xx replies never carry one.
        assert_eq!(one("354 2.0.0 go\r\n").enhanced, None);
        // Code alone on the line.
        let r = one("421 4.4.2\r\n");
        assert_eq!(
            r.enhanced,
            Some(EnhancedCode {
                class: 4,
                subject: 4,
                detail: 2
            })
        );
        assert_eq!(r.lines, [""]);
        assert!(r.is_transient());
    }

    #[test]
    fn code_only_lines() {
        let r = one("250\r\n");
        assert_eq!((r.code, r.lines.clone()), (250, vec![String::new()]));
        assert_eq!(r.raw_lines(), ["250"]);
        let r = one("250-first\r\n250\r\n");
        assert_eq!(r.lines, ["first", ""]);
        let r = one("250-\r\n250 end\r\n");
        assert_eq!(r.lines, ["", "end"]);
    }

    #[test]
    fn bare_lf_is_a_line_end() {
        let r = one("250-a\n250 b\n");
        assert_eq!(r.lines, ["a", "b"]);
    }

    #[test]
    fn mismatched_continuation_code_is_an_error() {
        assert_eq!(
            parse_all(b"250-a\r\n251 b\r\n").unwrap_err(),
            ReplyError::CodeMismatch {
                expected: 250,
                found: 251
            }
        );
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            "\r\n",
            "25\r\n",
            "abc ok\r\n",
            "650 x\r\n",
            "260 x\r\n",
            "1xx\r\n",
            "199 x\r\n",
        ] {
            assert!(
                matches!(parse_all(bad.as_bytes()), Err(ReplyError::BadCode { .. })),
                "{bad:?}"
            );
        }
        for bad in ["2500 x\r\n", "250_x\r\n", "250\tx\r\n"] {
            assert!(
                matches!(
                    parse_all(bad.as_bytes()),
                    Err(ReplyError::BadSeparator { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn resumable_across_every_split_point() {
        let wire =
            b"250-mx.example.com\r\n250-AUTH PLAIN LOGIN\r\n250 2.0.0 SMTPUTF8\r\n221 bye\r\n";
        let whole = parse_all(wire).unwrap();
        assert_eq!(whole.len(), 2);
        for split in 0..wire.len() {
            let mut p = ReplyParser::new();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                let mut rest = part;
                while !rest.is_empty() {
                    match p.parse(rest).unwrap() {
                        Parsed::Complete { reply, consumed } => {
                            got.push(reply);
                            rest = &rest[consumed..];
                        }
                        Parsed::NeedMore => rest = &[],
                    }
                }
            }
            assert_eq!(got, whole, "split at {split}");
        }
    }

    #[test]
    fn byte_at_a_time_reports_buffered() {
        let mut p = ReplyParser::new();
        let wire = b"220-hi\r\n220 there\r\n";
        for (i, b) in wire.iter().enumerate() {
            let r = p.parse(std::slice::from_ref(b)).unwrap();
            if i + 1 < wire.len() {
                assert_eq!(r, Parsed::NeedMore);
                assert_eq!(p.buffered(), i + 1);
            } else {
                assert!(matches!(r, Parsed::Complete { consumed: 1, .. }));
                assert_eq!(p.buffered(), 0);
            }
        }
    }

    #[test]
    fn complete_stops_at_reply_end() {
        let mut p = ReplyParser::new();
        match p.parse(b"220 go ahead\r\nEVIL\r\n").unwrap() {
            Parsed::Complete { consumed, .. } => assert_eq!(consumed, 14),
            Parsed::NeedMore => panic!("expected a reply"),
        }
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn line_length_cap() {
        // Exactly MAX_LINE_LEN including CRLF is fine.
        let ok = format!("250 {}\r\n", "x".repeat(MAX_LINE_LEN - 6));
        assert_eq!(ok.len(), MAX_LINE_LEN);
        assert_eq!(one(&ok).lines[0].len(), MAX_LINE_LEN - 6);
        let long = format!("250 {}\r\n", "x".repeat(MAX_LINE_LEN - 5));
        assert_eq!(
            parse_all(long.as_bytes()).unwrap_err(),
            ReplyError::LineTooLong
        );
        // An endless line fails once the cap is passed, whatever the chunking.
        let mut p = ReplyParser::new();
        let chunk = [b'x'; 1000];
        assert_eq!(p.parse(b"250 ").unwrap(), Parsed::NeedMore);
        let mut failed = false;
        for _ in 0..10 {
            match p.parse(&chunk) {
                Ok(Parsed::NeedMore) => assert!(p.buffered() < MAX_LINE_LEN),
                Err(e) => {
                    assert_eq!(e, ReplyError::LineTooLong);
                    failed = true;
                    break;
                }
                Ok(other) => panic!("{other:?}"),
            }
        }
        assert!(failed);
        assert_eq!(p.buffered(), 0, "state cleared after an error");
    }

    #[test]
    fn reply_size_caps() {
        let many = "250-x\r\n".repeat(MAX_LINES) + "250 end\r\n";
        assert_eq!(
            parse_all(many.as_bytes()).unwrap_err(),
            ReplyError::TooLarge
        );
        let line = format!("250-{}\r\n", "y".repeat(4000));
        let big = line.repeat(MAX_REPLY_LEN / line.len() + 1) + "250 end\r\n";
        assert_eq!(parse_all(big.as_bytes()).unwrap_err(), ReplyError::TooLarge);
    }

    #[test]
    fn non_utf8_is_replaced() {
        let r = one_bytes(b"550 bad \xff\xfe user\r\n");
        assert_eq!(r.lines, ["bad \u{FFFD}\u{FFFD} user"]);
        let r = one_bytes(b"250 tab\there\r\n");
        assert_eq!(r.lines, ["tab\there"]);
    }

    #[test]
    fn control_characters_make_the_reply_malformed() {
        for bad in [
            &b"250 nul\0here\r\n"[..],
            b"550 user \x1b[31mred\r\n",
            b"250 lone\rcr\r\n",
            b"250 stray cr\r\r\n",
            b"250 del\x7f\n",
            b"250-ok\r\n250 bell\x07\r\n",
        ] {
            assert!(
                matches!(parse_all(bad), Err(ReplyError::ControlCharacter { .. })),
                "{bad:?}"
            );
        }
        // The error shows the line without its control characters.
        assert_eq!(
            parse_all(b"250 a\x1bb\r\n").unwrap_err().to_string(),
            "reply line contains a control character: \"250 a\u{FFFD}b\""
        );
        // C1 controls, which only exist after UTF-8 decoding, are refused too.
        assert!(matches!(
            parse_all("250 c1\u{9b}31m\r\n".as_bytes()),
            Err(ReplyError::ControlCharacter { .. })
        ));
    }

    fn one_bytes(input: &[u8]) -> Reply {
        let mut v = parse_all(input).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn constructed_reply_transcript_form() {
        let e = EnhancedCode {
            class: 5,
            subject: 7,
            detail: 8,
        };
        let r = Reply::new(535, Some(e), vec!["Authentication failed".into()]);
        assert_eq!(r.raw_lines(), ["535 5.7.8 Authentication failed"]);
        assert!(Reply::new(250, None, vec![]).raw_lines() == ["250"]);
        let r = Reply::new(250, None, vec!["a".into(), "b".into()]);
        assert_eq!(r.raw_lines(), ["250-a", "250 b"]);
        assert_eq!(r, one("250-a\r\n250 b\r\n"));
    }
}
