//! Content and header encoders: quoted-printable (RFC 2045 §6.7), base64 bodies at 76 columns
//! (RFC 2045 §6.8), RFC 2047 encoded words (B encoding, UTF-8) and RFC 2231 extended parameters.
//!
//! None of these outputs can contain the two octets `=_`: quoted-printable writes `=` only as
//! `=` + two upper-case hex digits or as the final octet of a soft line break, base64 uses `=`
//! only as trailing padding and never uses `_`, and the header encoders never emit `_`
//! after `=`. The MIME boundaries of `mime.rs` start with `=_` for that reason.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::io::{self, Read, Write};

/// Longest encoded line RFC 2045 §6.7 rule 5 and §6.8 allow, not counting CRLF.
pub const ENCODED_LINE: usize = 76;

/// Input octets per base64 line: 57 octets give exactly 76 characters.
const B64_LINE_INPUT: usize = 57;

/// Quoted-printable encodes CRLF-normalised text (RFC 2045 §6.7): CRLF pairs are hard line
/// breaks, other octets outside 33..=126 and `=` become `=XX`, space and tab are literal except
/// at the end of a line, and lines are cut with soft breaks so none exceeds 76 characters.
pub fn quoted_printable(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 8);
    let mut lines = split_crlf(text).peekable();
    while let Some(line) = lines.next() {
        qp_line(line, &mut out);
        if lines.peek().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// Splits on CRLF; a trailing CRLF yields a final empty line so the break is kept.
fn split_crlf(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                rest = Some(&current[i + 2..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn qp_line(line: &[u8], out: &mut Vec<u8>) {
    let mut column = 0;
    for (i, &byte) in line.iter().enumerate() {
        let last = i + 1 == line.len();
        let literal = match byte {
            b' ' | b'\t' => !last,
            b'=' => false,
            33..=126 => true,
            _ => false,
        };
        let width = if literal { 1 } else { 3 };
        // The last token of a line may reach column 76; any other needs room for the soft
        // break's `=`.
        let limit = if last { ENCODED_LINE } else { ENCODED_LINE - 1 };
        if column + width > limit {
            out.extend_from_slice(b"=\r\n");
            column = 0;
        }
        if literal {
            out.push(byte);
        } else {
            out.push(b'=');
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0x0f)]);
        }
        column += width;
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Exact length of [`write_base64_lines`] output for `n` input octets.
pub fn base64_lines_len(n: u64) -> u64 {
    let chars = n.div_ceil(3) * 4;
    let lines = chars.div_ceil(ENCODED_LINE as u64);
    chars + lines.saturating_sub(1) * 2
}

/// Base64 encodes a slice as lines of 76 characters joined by CRLF, with no CRLF after the
/// last line (the caller's boundary or the end of the message supplies it).
pub fn write_base64_lines(data: &[u8], w: &mut dyn Write) -> io::Result<()> {
    let mut first = true;
    let mut line = [0u8; ENCODED_LINE];
    for chunk in data.chunks(B64_LINE_INPUT) {
        if !first {
            w.write_all(b"\r\n")?;
        }
        first = false;
        let n = STANDARD
            .encode_slice(chunk, &mut line)
            .map_err(|e| io::Error::other(e.to_string()))?;
        w.write_all(&line[..n])?;
    }
    Ok(())
}

/// Streams exactly `expected` octets from `r` as base64 lines (see [`write_base64_lines`]),
/// reading a fixed-size buffer at a time so memory does not grow with the file. A file that
/// is shorter or longer than `expected` is an error: the size announced to the server (SIZE,
/// BDAT) was computed from that length.
pub fn stream_base64(r: &mut dyn Read, expected: u64, w: &mut dyn Write) -> io::Result<()> {
    const CHUNK: usize = B64_LINE_INPUT * 1024;
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    let mut first = true;
    loop {
        let mut filled = 0;
        while filled < CHUNK {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        total += filled as u64;
        if total > expected {
            return Err(changed_size(expected));
        }
        if !first {
            w.write_all(b"\r\n")?;
        }
        first = false;
        write_base64_lines(&buf[..filled], w)?;
        if filled < CHUNK {
            break;
        }
    }
    if total != expected {
        return Err(changed_size(expected));
    }
    Ok(())
}

fn changed_size(expected: u64) -> io::Error {
    io::Error::other(format!(
        "attachment changed size while the message was being sent (expected {expected} octets)"
    ))
}

/// Overhead of `=?utf-8?B?` and `?=` in an RFC 2047 encoded word.
const WORD_OVERHEAD: usize = 12;

/// Longest encoded word RFC 2047 §2 allows.
pub const MAX_WORD: usize = 75;

/// Smallest word budget that always holds one character (a 4-octet UTF-8 sequence).
pub const MIN_WORD: usize = WORD_OVERHEAD + 8;

/// Encodes `text` as RFC 2047 B-encoded UTF-8 words. The first word is at most `first_max`
/// characters long (to fit after a field name), every other at most `rest_max`, neither over
/// 75 (RFC 2047 §2); words end on character boundaries (RFC 2047 §5: each word must decode on
/// its own). Budgets below [`MIN_WORD`] are raised to it.
pub fn encoded_words(text: &str, first_max: usize, rest_max: usize) -> Vec<String> {
    let capacity = |max: usize| (max.clamp(MIN_WORD, MAX_WORD) - WORD_OVERHEAD) / 4 * 3;
    let mut words = Vec::new();
    let mut budget = capacity(first_max);
    let mut start = 0;
    let mut len = 0;
    for (i, c) in text.char_indices() {
        if len + c.len_utf8() > budget {
            words.push(encode_word(&text[start..i]));
            start = i;
            len = 0;
            budget = capacity(rest_max);
        }
        len += c.len_utf8();
    }
    if start < text.len() || words.is_empty() {
        words.push(encode_word(&text[start..]));
    }
    words
}

fn encode_word(chunk: &str) -> String {
    format!("=?utf-8?B?{}?=", STANDARD.encode(chunk.as_bytes()))
}

/// RFC 2231 §7 `attribute-char`: what may stand unencoded in an extended parameter value.
fn is_attribute_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$&+-.^_`{|}~".contains(&b)
}

/// Percent-encodes one character as RFC 2231 §4 extended-value octets.
fn percent_encode_char(c: char, out: &mut String) {
    let mut utf8 = [0u8; 4];
    for &b in c.encode_utf8(&mut utf8).as_bytes() {
        if is_attribute_char(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// Segment length for RFC 2231 §3 continuations, so each `name*N*=...;` fits a 76-column line.
const SEGMENT: usize = 48;

/// Renders parameter `name` with an RFC 2231 extended value in UTF-8: `name*=utf-8''...` when
/// short, else continuations `name*0*=utf-8''...`, `name*1*=...` (RFC 2231 §4.1), each segment
/// ending on a character boundary so each decodes alone too. Returns one string per parameter
/// (without the separating `;`).
pub fn rfc2231_params(name: &str, value: &str) -> Vec<String> {
    let mut segments = vec![String::new()];
    for c in value.chars() {
        let mut encoded = String::new();
        percent_encode_char(c, &mut encoded);
        let current = segments
            .last_mut()
            .filter(|s| s.len() + encoded.len() <= SEGMENT);
        match current {
            Some(s) => s.push_str(&encoded),
            None => segments.push(encoded),
        }
    }
    if segments.len() == 1 {
        return vec![format!("{name}*=utf-8''{}", segments[0])];
    }
    segments
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if i == 0 {
                format!("{name}*0*=utf-8''{s}")
            } else {
                format!("{name}*{i}*={s}")
            }
        })
        .collect()
}

/// Normalises every bare LF and bare CR to CRLF (the in-memory form of
/// [`crate::message::CrlfNormalizer`]).
pub fn normalize_crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 32);
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if data.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qp(s: &[u8]) -> String {
        String::from_utf8(quoted_printable(s)).unwrap()
    }

    #[test]
    fn qp_rfc2045_rules() {
        // Rule 2: printable ASCII except '=' is literal; '=' is =3D (RFC 2045 §6.7 rule 1).
        assert_eq!(qp(b"a=b"), "a=3Db");
        // Rule 3: whitespace at the end of a line is encoded; inside it stays.
        assert_eq!(qp(b"a b \r\nc\t\r\n"), "a b=20\r\nc=09\r\n");
        // Non-ASCII octets are upper-case hex (RFC 2045 §6.7 rule 1).
        assert_eq!(qp("café".as_bytes()), "caf=C3=A9");
        // Control characters are encoded too.
        assert_eq!(qp(b"\x00\x1b\x7f"), "=00=1B=7F");
    }

    #[test]
    fn qp_soft_breaks_keep_lines_at_76() {
        let long = "x".repeat(200);
        let out = qp(long.as_bytes());
        for line in out.split("\r\n") {
            assert!(line.len() <= 76, "{line}");
        }
        assert_eq!(out.replace("=\r\n", ""), long);
        // A line of exactly 76 needs no soft break (rule 5 counts the last character).
        assert_eq!(qp("y".repeat(76).as_bytes()), "y".repeat(76));
        assert_eq!(
            qp("y".repeat(77).as_bytes()),
            format!("{}=\r\nyy", "y".repeat(75))
        );
    }

    #[test]
    fn qp_never_splits_an_escape() {
        let text = "é".repeat(100);
        let out = qp(text.as_bytes());
        for line in out.split("\r\n") {
            assert!(line.len() <= 76);
            let body = line.strip_suffix('=').unwrap_or(line);
            assert_eq!(body.len() % 3, 0, "{line}");
        }
    }

    #[test]
    fn qp_never_contains_boundary_prefix() {
        let out = qp(b"=_ =_\r\n=_=_ _=");
        assert!(!out.contains("=_"), "{out}");
    }

    #[test]
    fn base64_lines_are_76_columns() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut out = Vec::new();
        write_base64_lines(&data, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(lines[..lines.len() - 1].iter().all(|l| l.len() == 76));
        assert_eq!(
            STANDARD.decode(text.replace("\r\n", "")).unwrap(),
            data,
            "round trip"
        );
        assert_eq!(out.len() as u64, base64_lines_len(1000));
    }

    #[test]
    fn base64_lengths() {
        // RFC 4648 §10 vectors: "foobar" and its prefixes.
        let vectors = [
            "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
        ];
        for (n, expected) in vectors.iter().enumerate() {
            let mut out = Vec::new();
            write_base64_lines(&b"foobar"[..n], &mut out).unwrap();
            assert_eq!(out, expected.as_bytes());
            assert_eq!(base64_lines_len(n as u64), expected.len() as u64);
        }
        for n in [56u64, 57, 58, 114, 115, 5700, 5701] {
            let data = vec![7u8; n as usize];
            let mut out = Vec::new();
            write_base64_lines(&data, &mut out).unwrap();
            assert_eq!(out.len() as u64, base64_lines_len(n), "n={n}");
        }
    }

    #[test]
    fn stream_base64_matches_slice_encoder_and_checks_length() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut streamed = Vec::new();
        stream_base64(&mut &data[..], data.len() as u64, &mut streamed).unwrap();
        let mut direct = Vec::new();
        write_base64_lines(&data, &mut direct).unwrap();
        assert_eq!(streamed, direct);
        let mut sink = Vec::new();
        assert!(stream_base64(&mut &data[..], data.len() as u64 - 1, &mut sink).is_err());
        assert!(stream_base64(&mut &data[..], data.len() as u64 + 1, &mut sink).is_err());
    }

    #[test]
    fn encoded_words_rfc2047_vectors_and_limits() {
        // RFC 2047 §8 shows "Keld Jørn Simonsen" as an ISO-8859-1 word; this is its UTF-8 form.
        assert_eq!(
            encoded_words("Keld Jørn Simonsen", 75, 75),
            vec!["=?utf-8?B?S2VsZCBKw7hybiBTaW1vbnNlbg==?="]
        );
        let text = "日本語のテキスト".repeat(20);
        let words = encoded_words(&text, 60, 75);
        assert!(words[0].len() <= 60);
        let mut decoded = Vec::new();
        for w in &words {
            assert!(w.len() <= MAX_WORD, "{w}");
            let inner = w
                .strip_prefix("=?utf-8?B?")
                .unwrap()
                .strip_suffix("?=")
                .unwrap();
            let bytes = STANDARD.decode(inner).unwrap();
            // Every word decodes to whole characters on its own (RFC 2047 §5).
            assert!(std::str::from_utf8(&bytes).is_ok());
            decoded.extend(bytes);
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), text);
        assert_eq!(encoded_words("", 75, 75), vec!["=?utf-8?B??="]);
    }

    #[test]
    fn rfc2231_vectors() {
        // RFC 2231 §4 style: non-attribute characters percent-encoded, upper-case hex.
        assert_eq!(
            rfc2231_params("filename", "naïve résumé.pdf"),
            vec!["filename*=utf-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf"]
        );
        assert_eq!(
            rfc2231_params("filename", "a\"b;c'd*e%f.txt"),
            vec!["filename*=utf-8''a%22b%3Bc%27d%2Ae%25f.txt"]
        );
        let long = "é".repeat(40);
        let params = rfc2231_params("filename", &long);
        assert!(params.len() > 1);
        assert!(params[0].starts_with("filename*0*=utf-8''%C3%A9"));
        assert!(params[1].starts_with("filename*1*=%C3%A9"));
        assert!(params.iter().all(|p| p.len() < 76));
    }

    #[test]
    fn crlf_normalisation() {
        assert_eq!(
            normalize_crlf(b"a\nb\rc\r\nd\r\r\n"),
            b"a\r\nb\r\nc\r\nd\r\n\r\n"
        );
        assert_eq!(normalize_crlf(b"\r"), b"\r\n");
        assert_eq!(normalize_crlf(b""), b"");
    }
}
