//! Header fields (RFC 5322 §2.2, §3.6): field-name and value checks, folding (§2.2.3), the
//! Date format (§3.3) and unstructured values such as Subject with RFC 2047 encoded words.

use super::encoding::{encoded_words, MAX_WORD};
use super::MessageError;
use std::time::{SystemTime, UNIX_EPOCH};

/// Column at which we fold. RFC 2047 §2 limits lines holding encoded words to 76 characters;
/// RFC 5322 §2.1.1 asks for 78. Using 76 everywhere satisfies both.
pub const FOLD_AT: usize = 76;

/// Hard line limit of RFC 5322 §2.1.1, CRLF excluded.
pub const MAX_LINE: usize = 998;

/// One header field as written: `name` + `:` + `value` + CRLF, where `value` is everything
/// after the colon (usually starting with a space) including any folding CRLF + WSP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

impl HeaderField {
    /// The field exactly as it goes on the wire, CRLF included.
    pub fn to_wire(&self) -> String {
        format!("{}:{}\r\n", self.name, self.value)
    }

    /// Checks a field supplied from outside (a DKIM signature, a prepared message): valid
    /// name, value lines only broken by CRLF + WSP, no other control characters but HTAB, every
    /// line within 998 octets.
    pub fn validated(name: &str, value: &str) -> Result<HeaderField, MessageError> {
        check_field_name(name)?;
        let bad = |reason: &str| MessageError::BadHeader {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        let mut lines = value.split("\r\n");
        let first = lines.next().unwrap_or("");
        if name.len() + 1 + first.len() > MAX_LINE {
            return Err(bad("a line is longer than 998 octets"));
        }
        for (i, line) in std::iter::once(first).chain(lines).enumerate() {
            if i > 0 && !line.starts_with([' ', '\t']) {
                return Err(bad("a folded line does not start with white space"));
            }
            if i > 0 && line.trim_matches([' ', '\t']).is_empty() {
                return Err(bad("a folded line holds only white space"));
            }
            if line.len() > MAX_LINE {
                return Err(bad("a line is longer than 998 octets"));
            }
            if line.chars().any(|c| c != '\t' && is_control(c)) {
                return Err(bad("the value contains a control character"));
            }
        }
        Ok(HeaderField {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

/// A msg-id (RFC 5322 §3.6.4) as `--in-reply-to` and `--references` take it: `<left@right>`,
/// the angle brackets added when missing. Checked strictly enough that it can go into a header
/// as it is: printable ASCII without spaces (so no CR, LF or other control can reach the
/// field), no `<` or `>` inside, a non-empty left and right side around the last `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageId(String);

/// Longest msg-id: it cannot be folded, and `In-Reply-To: ` must fit with it in 998 octets.
const MAX_MESSAGE_ID: usize = 900;

impl MessageId {
    pub fn parse(input: &str) -> Result<MessageId, MessageError> {
        let bad = |reason: &str| MessageError::BadMessageId {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.chars().any(is_control) {
            return Err(bad("it contains a control character (such as CR or LF)"));
        }
        let trimmed = input.trim();
        let inner = match (trimmed.strip_prefix('<'), trimmed.ends_with('>')) {
            (Some(rest), true) => &rest[..rest.len() - 1],
            (None, false) => trimmed,
            _ => return Err(bad("its angle brackets do not match; write <id@host>")),
        };
        if !inner.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(bad("a Message-ID is printable ASCII without spaces"));
        }
        if inner.contains(['<', '>']) {
            return Err(bad(
                "only one Message-ID is allowed here, written <id@host>",
            ));
        }
        match inner.rsplit_once('@') {
            Some((left, right)) if !left.is_empty() && !right.is_empty() => {}
            _ => {
                return Err(bad(
                    "it needs the form <id@host>, as in the Message-ID header",
                ))
            }
        }
        if inner.len() + 2 > MAX_MESSAGE_ID {
            return Err(bad("it is longer than 900 characters"));
        }
        Ok(MessageId(format!("<{inner}>")))
    }

    /// A whitespace-separated list, as `--references "<a@x> <b@y>"` gives it; at least one.
    pub fn parse_list(input: &str) -> Result<Vec<MessageId>, MessageError> {
        if input.chars().any(is_control) {
            return Err(MessageError::BadMessageId {
                input: input.to_string(),
                reason: "it contains a control character (such as CR or LF)".into(),
            });
        }
        let ids = input
            .split_whitespace()
            .map(MessageId::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Err(MessageError::BadMessageId {
                input: input.to_string(),
                reason: "no Message-ID given; write <id@host> ...".into(),
            });
        }
        Ok(ids)
    }

    /// With its angle brackets.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// C0 controls, DEL and the C1 controls U+0080..U+009F (RFC 5198 §2 keeps them out of
/// network text; U+0085 NEL is a line break to Unicode-aware readers): never allowed in
/// anything a user puts into a header. `smtp::command` refuses the same set in addresses.
pub fn is_control(c: char) -> bool {
    c.is_control()
}

/// Refuses CR, LF and every other control character in a user-supplied header text: a CR or
/// LF would end the field and let the user inject fields or a body (header injection).
pub fn check_text(field: &str, text: &str) -> Result<(), MessageError> {
    if text.chars().any(is_control) {
        return Err(MessageError::ControlChar {
            field: field.to_string(),
            value: text.to_string(),
        });
    }
    Ok(())
}

/// RFC 5322 §2.2 / §3.6.8: a field name is one or more printable ASCII characters except `:`.
pub fn check_field_name(name: &str) -> Result<(), MessageError> {
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(MessageError::BadHeader {
            name: name.to_string(),
            reason: "a field name is printable ASCII without ':' or spaces (RFC 5322 §3.6.8)"
                .to_string(),
        });
    }
    Ok(())
}

/// Joins tokens into a folded field value. Every token but the first starts with the white
/// space that separates it from the previous one; a CRLF is inserted before a token that would
/// pass column 76, so unfolding (removing the CRLFs, RFC 5322 §2.2.3) restores the exact text.
pub fn fold(name: &str, tokens: &[String]) -> String {
    let mut value = String::new();
    let mut column = name.len() + 1;
    for (i, token) in tokens.iter().enumerate() {
        let piece = if i == 0 {
            format!(" {token}")
        } else {
            token.clone()
        };
        if column + piece.len() > FOLD_AT && column > 0 && i > 0 {
            value.push_str("\r\n");
            column = 0;
        }
        column += piece.len();
        value.push_str(&piece);
    }
    value
}

/// Room left on the first line after `Name: ` for an encoded word.
pub fn first_word_budget(name: &str) -> usize {
    FOLD_AT.saturating_sub(name.len() + 2)
}

/// Tokens for unstructured text (Subject, user fields): plain and folded at white space when
/// it is ASCII and reads back unchanged, otherwise RFC 2047 encoded words throughout.
/// `name` is the field the text goes into (its length decides the first word's size).
pub fn unstructured_tokens(name: &str, text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    if let Some(tokens) = plain_tokens(text) {
        return tokens;
    }
    words_as_tokens(encoded_words(text, first_word_budget(name), MAX_WORD))
}

/// The encoded words of `text` as fold tokens, each after the first preceded by a space (the
/// space between adjacent encoded words is not part of the text, RFC 2047 §6.2).
pub fn words_as_tokens(words: Vec<String>) -> Vec<String> {
    words
        .into_iter()
        .enumerate()
        .map(|(i, w)| if i == 0 { w } else { format!(" {w}") })
        .collect()
}

/// Splits ASCII text before each run of spaces, or gives None when the text must be encoded:
/// non-ASCII, something a reader would take for an encoded word (`=?`), white space at either
/// end or other than single spaces (readers trim and collapse it), or a word too long to fold.
fn plain_tokens(text: &str) -> Option<Vec<String>> {
    if !text.is_ascii()
        || text.contains("=?")
        || text.starts_with(' ')
        || text.ends_with(' ')
        || text.contains("  ")
    {
        return None;
    }
    let tokens: Vec<String> = text
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            }
        })
        .collect();
    if tokens.iter().any(|t| t.len() > MAX_LINE - 100) {
        return None;
    }
    Some(tokens)
}

/// RFC 5322 §3.3 date-time in UTC, e.g. `Thu, 01 Jan 1970 00:00:00 +0000`.
pub fn format_date(t: SystemTime) -> String {
    let secs = unix_seconds(t);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m - 1) as usize];
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYYMMDDTHHMMSS` in UTC, used in Message-IDs.
pub fn compact_timestamp(t: SystemTime) -> String {
    let secs = unix_seconds(t);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX / 2),
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn dates_match_python_email_utils() {
        // Expected strings from Python's email.utils.formatdate (an independent implementation).
        assert_eq!(format_date(at(0)), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            format_date(at(951_782_400 + 86_399)),
            "Tue, 29 Feb 2000 23:59:59 +0000"
        );
        assert_eq!(
            format_date(at(1_795_000_000)),
            "Wed, 18 Nov 2026 11:06:40 +0000"
        );
        assert_eq!(compact_timestamp(at(1_795_000_000)), "20261118T110640");
    }

    #[test]
    fn field_names() {
        assert!(check_field_name("X-Mailer").is_ok());
        for bad in ["", "X Mailer", "X:Y", "Xé", "X\r\nBcc", "X\t"] {
            assert!(check_field_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn control_characters_refused() {
        for bad in [
            "a\rb",
            "a\nb",
            "a\r\nBcc: x",
            "a\0",
            "a\x1b[31m",
            "a\x7f",
            "a\tb",
            "a\u{85}Bcc: x",
            "a\u{9b}31m",
        ] {
            assert!(check_text("Subject", bad).is_err(), "{bad:?}");
        }
        assert!(check_text("Subject", "héllo wörld").is_ok());
    }

    #[test]
    fn plain_subject_folds_at_spaces() {
        let text = "word ".repeat(40) + "end";
        let value = fold("Subject", &unstructured_tokens("Subject", &text));
        let wire = format!("Subject:{value}");
        for line in wire.split("\r\n") {
            assert!(line.len() <= FOLD_AT, "{line}");
            assert!(!line.trim().is_empty());
        }
        assert_eq!(value.replace("\r\n", ""), format!(" {text}"));
    }

    #[test]
    fn subjects_that_must_be_encoded() {
        for text in ["café", "=?utf-8?Q?x?=", " lead", "trail ", "two  spaces"] {
            let tokens = unstructured_tokens("Subject", text);
            assert!(tokens[0].starts_with("=?utf-8?B?"), "{text:?}");
        }
        let long_word = "x".repeat(2000);
        let value = fold("Subject", &unstructured_tokens("Subject", &long_word));
        for line in format!("Subject:{value}").split("\r\n") {
            assert!(line.len() <= FOLD_AT, "{line}");
        }
    }

    #[test]
    fn encoded_subject_first_line_fits() {
        let text = "Ünïcödé ".repeat(30);
        let value = fold("Subject", &unstructured_tokens("Subject", &text));
        for line in format!("Subject:{value}").split("\r\n") {
            assert!(line.len() <= FOLD_AT, "{line}");
        }
    }

    #[test]
    fn message_ids_get_brackets_and_bad_ones_are_refused() {
        for (input, want) in [
            ("<a.b@host.example>", "<a.b@host.example>"),
            ("a.b@host.example", "<a.b@host.example>"),
            (" <x@[127.0.0.1]> ", "<x@[127.0.0.1]>"),
            ("<\"odd@left\"@host>", "<\"odd@left\"@host>"),
        ] {
            assert_eq!(MessageId::parse(input).unwrap().as_str(), want, "{input:?}");
        }
        for bad in [
            "",
            "<>",
            "no-at-sign",
            "@host",
            "left@",
            "<a@b",
            "a@b>",
            "<a@b>\r\nBcc: x@y",
            "a@b\nc",
            "a b@c",
            "<a@b><c@d>",
            "caf\u{e9}@example.com",
            "a@b\u{85}",
        ] {
            let e = MessageId::parse(bad).unwrap_err();
            assert!(matches!(e, MessageError::BadMessageId { .. }), "{bad:?}");
        }
        assert!(MessageId::parse(&format!("{}@h", "x".repeat(900))).is_err());
        let list = MessageId::parse_list(" <a@x>  b@y <c@z> ").unwrap();
        let list: Vec<&str> = list.iter().map(MessageId::as_str).collect();
        assert_eq!(list, ["<a@x>", "<b@y>", "<c@z>"]);
        assert!(MessageId::parse_list("  ").is_err());
        assert!(MessageId::parse_list("<a@x>\r\n<b@y>").is_err());
    }

    #[test]
    fn validated_fields() {
        assert!(HeaderField::validated("DKIM-Signature", " v=1;\r\n\tb=abc").is_ok());
        assert!(HeaderField::validated("X", " a\r\nBcc: evil").is_err());
        assert!(HeaderField::validated("X", " a\nb").is_err());
        assert!(HeaderField::validated("X", " a\r\n \r\n b").is_err());
        assert!(HeaderField::validated("X Y", " a").is_err());
    }
}
