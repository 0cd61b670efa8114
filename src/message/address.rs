//! Mailboxes: parsing what users type (RFC 5322 §3.4 `mailbox`, `address-list` with groups,
//! comments skipped), quoted local parts (RFC 5322 §3.2.4 / §3.4.1, RFC 5321 §4.1.2), RFC 6532
//! §3.2 UTF-8 local parts, RFC 5321 §4.1.2 domains and §4.5.3.1 length limits, IDNA A-labels
//! (RFC 5890) when SMTPUTF8 is not in use, and the header form with the display name quoted or
//! RFC 2047-encoded.

use super::encoding::{encoded_words, MAX_WORD};
use super::header::{check_text, words_as_tokens};
use super::MessageError;
use std::net::{Ipv4Addr, Ipv6Addr};

/// One mailbox: optional display name, local part and domain (as typed: U-labels allowed).
///
/// `local` is what the local part means, not how it was written: a quoted local part is kept
/// without its quotes and with its quoted-pairs resolved (`"a\"b"` is stored as `a"b`). Both
/// RFC 5321 §4.1.2 and RFC 5322 §3.4.1 then write it the same way, unquoted when it is a
/// dot-atom and otherwise quoted with only `"` and `\` escaped, so `"john"@x` and `john@x`
/// are one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub display_name: Option<String>,
    pub local: String,
    pub domain: String,
}

/// Longest ASCII display name written as plain text or a quoted string; longer ones become
/// encoded words so they can be folded.
const PLAIN_NAME_MAX: usize = 60;

impl Mailbox {
    /// Parses `ada@example.com`, `Ada Lovelace <ada@example.com>`,
    /// `"Lovelace, Ada" <ada@example.com>` or `"john doe"@example.com`. Any control character
    /// (CR, LF, TAB, NUL...) is refused, inside quotes too, so nothing typed here can inject a
    /// header line or an SMTP command.
    pub fn parse(input: &str) -> Result<Mailbox, MessageError> {
        check_text("address", input).map_err(|_| invalid(input, "contains a control character"))?;
        let tokens = tokenize(input)?;
        parse_mailbox_tokens(input, &tokens)
    }

    /// Parses a comma-separated list such as `a@x.test, "B, C" <b@y.test>`; RFC 5322 §3.4
    /// groups (`team: a@x.test, b@y.test;`) contribute their members; empty elements are
    /// skipped.
    pub fn parse_list(input: &str) -> Result<Vec<Mailbox>, MessageError> {
        check_text("address", input).map_err(|_| invalid(input, "contains a control character"))?;
        let tokens = tokenize(input)?;
        let mut out = Vec::new();
        let mut current: Vec<Token> = Vec::new();
        let mut in_group = false;
        for token in tokens {
            match token {
                Token::Special(',') => {
                    flush(input, &mut current, &mut out)?;
                }
                Token::Special(':') if !in_group && !current.contains(&Token::Special('<')) => {
                    if current
                        .iter()
                        .any(|t| !matches!(t, Token::Word(_) | Token::Quoted(_) | Token::Space))
                    {
                        return Err(invalid(input, "malformed group name"));
                    }
                    current.clear();
                    in_group = true;
                }
                Token::Special(';') if in_group => {
                    flush(input, &mut current, &mut out)?;
                    in_group = false;
                }
                other => current.push(other),
            }
        }
        if in_group {
            return Err(invalid(input, "a group is not closed with ';'"));
        }
        flush(input, &mut current, &mut out)?;
        Ok(out)
    }

    /// Re-checks a mailbox built by hand (the fields are public): no control characters, a
    /// valid local part and domain.
    pub fn validate(&self) -> Result<(), MessageError> {
        let shown = self.addr_spec_unicode();
        if let Some(name) = &self.display_name {
            check_text("display name", name)
                .map_err(|_| invalid(&shown, "the display name contains a control character"))?;
        }
        check_text("address", &self.local)
            .map_err(|_| invalid(&shown, "contains a control character"))?;
        if self.local.is_empty() {
            // `""@x` is grammatical (RFC 5321 §4.1.2) but names nobody a user could mean.
            return Err(invalid(&shown, "the local part is empty"));
        }
        if self.local_wire().len() > 64 {
            return Err(invalid(
                &shown,
                "the local part is longer than 64 octets (RFC 5321 §4.5.3.1.1)",
            ));
        }
        check_domain(&self.domain).map_err(|reason| invalid(&shown, &reason))?;
        Ok(())
    }

    /// True when the local part is not ASCII: only SMTPUTF8 (RFC 6531) can carry it.
    pub fn needs_smtputf8(&self) -> bool {
        !self.local.is_ascii()
    }

    /// The domain as A-labels (RFC 5890), or the literal unchanged.
    pub fn ascii_domain(&self) -> Result<String, MessageError> {
        if self.domain.is_ascii() {
            return Ok(self.domain.clone());
        }
        idna::domain_to_ascii_strict(&self.domain)
            .map_err(|_| invalid(&self.addr_spec_unicode(), "the domain is not a valid IDN"))
    }

    /// The address for MAIL FROM / RCPT TO (without angle brackets): the domain as A-labels
    /// unless SMTPUTF8 is in use; a UTF-8 local part without SMTPUTF8 is an error.
    pub fn envelope_form(&self, smtputf8: bool) -> Result<String, MessageError> {
        if smtputf8 {
            return Ok(self.addr_spec_unicode());
        }
        if self.needs_smtputf8() {
            return Err(MessageError::NeedsSmtpUtf8(self.addr_spec_unicode()));
        }
        Ok(format!("{}@{}", self.local_wire(), self.ascii_domain()?))
    }

    /// The mailbox as a header writes it (unfolded): `addr`, `Name <addr>`, `"N, A" <addr>`
    /// or `=?utf-8?B?...?= <addr>`. A quoted local part is always in angle brackets,
    /// `<"john doe"@x.test>` (RFC 5322 §3.4 name-addr without a display-name): bare, the
    /// leading quoted string is read as a display name by lenient parsers (mail-parser 0.11
    /// reads `"john doe"@x.test` as the name `john doe` and the address `@x.test`).
    pub fn header_form(&self, smtputf8: bool) -> Result<String, MessageError> {
        Ok(self.header_tokens(smtputf8, MAX_WORD)?.concat())
    }

    /// Fold tokens for this mailbox; the first encoded word is at most `first_max` long.
    pub(crate) fn header_tokens(
        &self,
        smtputf8: bool,
        first_max: usize,
    ) -> Result<Vec<String>, MessageError> {
        let addr = self.envelope_form(smtputf8)?;
        let name = match self.display_name.as_deref() {
            None | Some("") if is_dot_atom(&self.local) => return Ok(vec![addr]),
            None | Some("") => return Ok(vec![format!("<{addr}>")]),
            Some(name) => name,
        };
        let mut tokens = if is_plain_name(name) {
            if name.split(' ').all(is_atom) {
                vec![name.to_string()]
            } else {
                vec![quote(name)]
            }
        } else {
            words_as_tokens(encoded_words(name, first_max, MAX_WORD))
        };
        tokens.push(format!(" <{addr}>"));
        Ok(tokens)
    }

    /// `local@domain` with the domain as typed; the local part quoted when it is not a dot-atom.
    pub fn addr_spec_unicode(&self) -> String {
        format!("{}@{}", self.local_wire(), self.domain)
    }

    /// The local part as written on the wire and in headers: a dot-atom (RFC 5321 §4.1.2: one
    /// that can be a Dot-string SHOULD NOT be quoted), else a quoted string.
    fn local_wire(&self) -> String {
        if is_dot_atom(&self.local) {
            self.local.clone()
        } else {
            quote(&self.local)
        }
    }
}

fn invalid(input: &str, reason: &str) -> MessageError {
    MessageError::InvalidAddress {
        input: input.to_string(),
        reason: reason.to_string(),
    }
}

/// ASCII, not mistakable for an encoded word, short, single-spaced, nothing to trim.
fn is_plain_name(name: &str) -> bool {
    name.is_ascii()
        && !name.contains("=?")
        && name.len() <= PLAIN_NAME_MAX
        && !name.starts_with(' ')
        && !name.ends_with(' ')
        && !name.contains("  ")
}

/// RFC 5322 §3.2.3 atext, extended by RFC 6532 §3.2 with every non-ASCII character.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_atom(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_atext)
}

fn is_dot_atom(s: &str) -> bool {
    s.split('.').all(is_atom)
}

/// RFC 5322 §3.2.4 quoted-string, escaping only `"` and `\`. Every other printable character
/// and the space is qtext in RFC 5322 and qtextSMTP in RFC 5321 §4.1.2 (and UTF-8 is qtext
/// under RFC 6532 / RFC 6531 §3.3), so this one form is valid in a header and on the wire.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// RFC 5321 §4.1.2 Domain or address literal; IDNs are checked through their A-labels.
fn check_domain(domain: &str) -> Result<(), String> {
    if let Some(literal) = domain.strip_prefix('[') {
        let inner = literal
            .strip_suffix(']')
            .ok_or("an address literal must end with ']'")?;
        let ok = match inner.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
            None => inner.parse::<Ipv4Addr>().is_ok(),
        };
        return if ok {
            Ok(())
        } else {
            Err("the address literal is not an IPv4 or IPv6: address".into())
        };
    }
    let ascii = if domain.is_ascii() {
        domain.to_string()
    } else {
        idna::domain_to_ascii_strict(domain).map_err(|_| "the domain is not a valid IDN")?
    };
    if ascii.is_empty() || ascii.len() > 255 {
        return Err("the domain must be 1 to 255 octets".into());
    }
    for label in ascii.split('.') {
        let ldh = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty()
            || label.len() > 63
            || !ldh
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "the domain label {label:?} is not a valid host name label"
            ));
        }
    }
    Ok(())
}

/// Lexical tokens of RFC 5322 §3.2: words (atoms and dot-separated runs), quoted strings
/// (unescaped), domain literals, specials; white space and comments are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Literal(String),
    Special(char),
    Space,
}

const UNCLOSED_QUOTE: &str = "a '\"' opens a quoted string that is never closed";

fn tokenize(input: &str) -> Result<Vec<Token>, MessageError> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if tokens.last() != Some(&Token::Space) {
                    tokens.push(Token::Space);
                }
            }
            '"' => {
                // RFC 5322 §3.2.4: qtext and quoted-pairs (`\` then any character; controls
                // were refused before tokenizing).
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(invalid(input, UNCLOSED_QUOTE)),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err(invalid(input, UNCLOSED_QUOTE)),
                        },
                        Some(other) => s.push(other),
                    }
                }
                tokens.push(Token::Quoted(s));
            }
            '(' => {
                let mut depth = 1;
                while depth > 0 {
                    match chars.next() {
                        None => return Err(invalid(input, "an unclosed comment")),
                        Some('(') => depth += 1,
                        Some(')') => depth -= 1,
                        Some('\\') => {
                            chars.next();
                        }
                        Some(_) => {}
                    }
                }
                if tokens.last() != Some(&Token::Space) {
                    tokens.push(Token::Space);
                }
            }
            '[' => {
                let mut s = String::from("[");
                loop {
                    match chars.next() {
                        None => return Err(invalid(input, "an unclosed '['")),
                        Some(']') => break,
                        Some(other) => s.push(other),
                    }
                }
                s.push(']');
                tokens.push(Token::Literal(s));
            }
            '<' | '>' | '@' | ',' | ':' | ';' | '.' | ')' | ']' | '\\' => {
                tokens.push(Token::Special(c))
            }
            c if is_atext(c) => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if !is_atext(n) {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                tokens.push(Token::Word(s));
            }
            other => {
                return Err(invalid(input, &format!("unexpected character {other:?}")));
            }
        }
    }
    Ok(tokens)
}

fn flush(
    input: &str,
    current: &mut Vec<Token>,
    out: &mut Vec<Mailbox>,
) -> Result<(), MessageError> {
    if current.iter().all(|t| *t == Token::Space) {
        current.clear();
        return Ok(());
    }
    let element = std::mem::take(current);
    out.push(parse_mailbox_tokens(input, &element)?);
    Ok(())
}

fn trim_space(tokens: &[Token]) -> &[Token] {
    let start = tokens
        .iter()
        .position(|t| *t != Token::Space)
        .unwrap_or(tokens.len());
    let end = tokens
        .iter()
        .rposition(|t| *t != Token::Space)
        .map_or(start, |e| e + 1);
    &tokens[start..end]
}

fn parse_mailbox_tokens(input: &str, tokens: &[Token]) -> Result<Mailbox, MessageError> {
    let tokens = trim_space(tokens);
    if tokens.is_empty() {
        return Err(invalid(input, "no address"));
    }
    let open = tokens.iter().position(|t| *t == Token::Special('<'));
    let mailbox = match open {
        None => {
            let (local, domain) = parse_addr_spec(input, tokens)?;
            Mailbox {
                display_name: None,
                local,
                domain,
            }
        }
        Some(open) => {
            let close = tokens
                .iter()
                .rposition(|t| *t == Token::Special('>'))
                .filter(|&c| c > open)
                .ok_or_else(|| invalid(input, "'<' without a closing '>'"))?;
            if !trim_space(&tokens[close + 1..]).is_empty() {
                return Err(invalid(input, "text after '>'"));
            }
            let (local, domain) = parse_addr_spec(input, trim_space(&tokens[open + 1..close]))?;
            let name = parse_phrase(input, trim_space(&tokens[..open]))?;
            Mailbox {
                display_name: (!name.is_empty()).then_some(name),
                local,
                domain,
            }
        }
    };
    mailbox.validate()?;
    Ok(mailbox)
}

/// RFC 5322 §3.2.5 phrase (with the obsolete `.` of §4.1): words joined by single spaces.
fn parse_phrase(input: &str, tokens: &[Token]) -> Result<String, MessageError> {
    let mut name = String::new();
    for token in tokens {
        match token {
            Token::Word(w) | Token::Quoted(w) => name.push_str(w),
            Token::Special('.') => name.push('.'),
            Token::Space => name.push(' '),
            _ => {
                return Err(invalid(
                    input,
                    "the display name has special characters; put it in double quotes",
                ))
            }
        }
    }
    Ok(name)
}

/// RFC 5322 §3.4.1 addr-spec: dot-atom or quoted-string, `@`, dot-atom or domain literal.
fn parse_addr_spec(input: &str, tokens: &[Token]) -> Result<(String, String), MessageError> {
    let at = tokens
        .iter()
        .rposition(|t| *t == Token::Special('@'))
        .ok_or_else(|| invalid(input, "no '@'"))?;
    let local = local_part(input, &tokens[..at])?;
    let domain = match &tokens[at + 1..] {
        [Token::Literal(l)] => l.clone(),
        parts => dot_atom(parts).ok_or_else(|| invalid(input, "invalid domain"))?,
    };
    Ok((local, domain))
}

/// RFC 5322 §3.4.1 local-part: a dot-atom or one quoted-string (content unescaped). The
/// obsolete mix of words and dots (`a."b c"`, §4.4) is refused.
fn local_part(input: &str, tokens: &[Token]) -> Result<String, MessageError> {
    match tokens {
        [Token::Quoted(q)] if q.is_empty() => Err(invalid(input, "the quoted local part is empty")),
        [Token::Quoted(q)] => Ok(q.clone()),
        parts if parts.iter().any(|t| matches!(t, Token::Quoted(_))) => Err(invalid(
            input,
            "a quoted local part must be the whole local part, as in \"john doe\"@example.com",
        )),
        parts if parts.contains(&Token::Space) => Err(invalid(
            input,
            "the local part has a space; quote it, as in \"john doe\"@example.com",
        )),
        parts => dot_atom(parts).ok_or_else(|| invalid(input, "invalid local part")),
    }
}

/// Words separated by single dots, nothing else (no spaces inside an addr-spec).
fn dot_atom(tokens: &[Token]) -> Option<String> {
    let mut out = String::new();
    for (i, token) in tokens.iter().enumerate() {
        match (i % 2, token) {
            (0, Token::Word(w)) => out.push_str(w),
            (1, Token::Special('.')) => out.push('.'),
            _ => return None,
        }
    }
    (tokens.len() % 2 == 1).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap()
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            mb("ada@example.com"),
            Mailbox {
                display_name: None,
                local: "ada".into(),
                domain: "example.com".into()
            }
        );
        let m = mb("Ada Lovelace <ada@example.com>");
        assert_eq!(m.display_name.as_deref(), Some("Ada Lovelace"));
        let m = mb("\"Lovelace, Ada\" <ada@example.com>");
        assert_eq!(m.display_name.as_deref(), Some("Lovelace, Ada"));
        assert_eq!(m.local, "ada");
        let m = mb("<ada@example.com>");
        assert_eq!(m.display_name, None);
        let m = mb("  ada@example.com (Ada) ");
        assert_eq!(m.addr_spec_unicode(), "ada@example.com");
    }

    #[test]
    fn rfc5322_appendix_a_examples() {
        // RFC 5322 Appendix A.1.2 and A.1.3.
        let list =
            Mailbox::parse_list("Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>")
                .unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[2].display_name.as_deref(), Some("Who?"));
        let list =
            Mailbox::parse_list("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;")
                .unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].display_name.as_deref(), Some("Ed Jones"));
        assert!(Mailbox::parse_list("Undisclosed recipients:;")
            .unwrap()
            .is_empty());
        let m = mb("\"Joe Q. Public\" <john.q.public@example.com>");
        assert_eq!(m.display_name.as_deref(), Some("Joe Q. Public"));
        assert_eq!(m.local, "john.q.public");
        let m = mb("\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>");
        assert_eq!(m.display_name.as_deref(), Some("Giant; \"Big\" Box"));
        assert_eq!(
            m.header_form(false).unwrap(),
            "\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>"
        );
    }

    #[test]
    fn list_with_quoted_comma() {
        let list = Mailbox::parse_list("a@x.test, \"B, C\" <b@y.test>").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].display_name.as_deref(), Some("B, C"));
        assert_eq!(
            Mailbox::parse_list("a@x.test,, b@y.test,").unwrap().len(),
            2
        );
    }

    #[test]
    fn invalid_addresses() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@@example.com",
            "a..b@example.com",
            ".a@example.com",
            "ada@exa mple.com",
            "ada@-example.com",
            "ada@example..com",
            "ada@exa_mple.com",
            "Ada <ada@example.com",
            "Ada <ada@example.com> trailing",
            "Lovelace, Ada <ada@example.com>",
            "ada@[300.1.1.1]",
            "\"unclosed@example.com",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Mailbox::parse(&long_local).is_err());
        assert!(mb("x@[192.0.2.1]").validate().is_ok());
        assert!(mb("x@[IPv6:2001:db8::1]").validate().is_ok());
    }

    #[test]
    fn control_characters_are_refused_everywhere() {
        for bad in [
            "ada@example.com\r\nBcc: evil@x.test",
            "Ada\n <ada@example.com>",
            "\"Ada\r\" <ada@example.com>",
            "ada@example.com\0",
            "Ada\t<ada@example.com>",
            "ada@exam\x1bple.com",
            // Found by fuzz/fuzz_targets/address.rs: a C1 control (U+0087) in the local part
            // reached the To field and the envelope.
            "$!<aele\u{87}c@mm>,",
            "Ada\u{85}Lovelace <ada@example.com>",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?}");
            assert!(Mailbox::parse_list(bad).is_err(), "{bad:?}");
        }
        let mut m = mb("ada@example.com");
        m.display_name = Some("Ada\r\nBcc: x".into());
        assert!(m.validate().is_err());
    }

    #[test]
    fn utf8_and_idna() {
        let m = mb("Jörg <jörg@bücher.example>");
        assert!(m.needs_smtputf8());
        assert!(m.envelope_form(false).is_err());
        assert_eq!(m.envelope_form(true).unwrap(), "jörg@bücher.example");
        let m = mb("joerg@bücher.example");
        assert!(!m.needs_smtputf8());
        // A-label computed by an independent implementation (Python's encodings.idna).
        assert_eq!(
            m.envelope_form(false).unwrap(),
            "joerg@xn--bcher-kva.example"
        );
    }

    fn reason(input: &str) -> String {
        match Mailbox::parse(input) {
            Err(MessageError::InvalidAddress { reason, .. }) => reason,
            other => panic!("{input:?}: {other:?}"),
        }
    }

    #[test]
    fn quoted_local_parts_from_the_rfcs() {
        // RFC 3696 §3 as corrected by its erratum 246, and the RFC 5322 §3.2.4 quoted-pair:
        // (typed, stored local part, envelope form; the header adds angle brackets if quoted).
        for (typed, local, wire) in [
            (
                r#""Abc\@def"@example.com"#,
                "Abc@def",
                r#""Abc@def"@example.com"#,
            ),
            (
                r#""Fred\ Bloggs"@example.com"#,
                "Fred Bloggs",
                r#""Fred Bloggs"@example.com"#,
            ),
            (
                r#""Joe.\\Blow"@example.com"#,
                r"Joe.\Blow",
                r#""Joe.\\Blow"@example.com"#,
            ),
            (
                r#""Abc@def"@example.com"#,
                "Abc@def",
                r#""Abc@def"@example.com"#,
            ),
            (
                r#""Fred Bloggs"@example.com"#,
                "Fred Bloggs",
                r#""Fred Bloggs"@example.com"#,
            ),
            (
                r#""john doe"@example.com"#,
                "john doe",
                r#""john doe"@example.com"#,
            ),
            (r#""a\"b"@x.test"#, r#"a"b"#, r#""a\"b"@x.test"#),
            (r#""a@b"@x.test"#, "a@b", r#""a@b"@x.test"#),
            (r#""a..b"@x.test"#, "a..b", r#""a..b"@x.test"#),
            (r#""<a>,;:"@x.test"#, "<a>,;:", r#""<a>,;:"@x.test"#),
            (r#""x"@[192.0.2.1]"#, "x", "x@[192.0.2.1]"),
            // RFC 5321 §4.1.2: a local part that can be a Dot-string SHOULD NOT be quoted.
            (r#""john"@x.test"#, "john", "john@x.test"),
            (
                r#""john.q.public"@x.test"#,
                "john.q.public",
                "john.q.public@x.test",
            ),
            (r#""\j\o\h\n"@x.test"#, "john", "john@x.test"),
            // RFC 3696 §3: atext needs no quotes.
            (
                "customer/department=shipping@example.com",
                "customer/department=shipping",
                "customer/department=shipping@example.com",
            ),
            (
                "!def!xyz%abc@example.com",
                "!def!xyz%abc",
                "!def!xyz%abc@example.com",
            ),
        ] {
            let m = mb(typed);
            assert_eq!(m.local, local, "{typed}");
            assert_eq!(m.envelope_form(false).unwrap(), wire, "{typed}");
            assert_eq!(m.envelope_form(true).unwrap(), wire, "{typed}");
            let header = if wire.starts_with('"') {
                format!("<{wire}>")
            } else {
                wire.to_string()
            };
            assert_eq!(m.header_form(false).unwrap(), header, "{typed}");
            assert_eq!(mb(&header), m, "{typed}");
            assert_eq!(m.addr_spec_unicode(), wire, "{typed}");
            // What we write reads back as the same mailbox.
            assert_eq!(mb(wire), m, "{typed}");
            let path = crate::smtp::command::Path::forward(&m.envelope_form(false).unwrap());
            assert_eq!(path.unwrap().as_str(), wire, "{typed}");
        }
        assert_eq!(mb(r#""john"@x.test"#), mb("john@x.test"));
    }

    #[test]
    fn quoted_local_parts_with_names_and_lists() {
        let m = mb(r#"John <"john doe"@example.com>"#);
        assert_eq!(m.display_name.as_deref(), Some("John"));
        assert_eq!(m.local, "john doe");
        assert_eq!(
            m.header_form(false).unwrap(),
            r#"John <"john doe"@example.com>"#
        );
        let m = mb(r#""Doe, John" <"john\"doe"@example.com>"#);
        assert_eq!(
            m.header_form(false).unwrap(),
            r#""Doe, John" <"john\"doe"@example.com>"#
        );
        let list = Mailbox::parse_list(
            r#""a,b"@x.test, "c d" <"e f"@y.test>, team: "g;h"@z.test, i@z.test;"#,
        )
        .unwrap();
        let locals: Vec<&str> = list.iter().map(|m| m.local.as_str()).collect();
        assert_eq!(locals, ["a,b", "e f", "g;h", "i"]);
        assert_eq!(list[1].display_name.as_deref(), Some("c d"));
    }

    #[test]
    fn quoted_local_parts_keep_the_control_and_utf8_rules() {
        for bad in [
            "\"a\tb\"@x.test",
            "\"a\r\nb\"@x.test",
            "\"a\r\nRCPT TO:<evil@x.test>\"@x.test",
            "\"a\\\r\"@x.test",
            "\"a\0\"@x.test",
            "\"a\u{7f}\"@x.test",
            "\"a\u{85}\"@x.test",
            "John <\"a\nb\"@x.test>",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?}");
            assert!(Mailbox::parse_list(bad).is_err(), "{bad:?}");
        }
        let mut m = mb("john@x.test");
        m.local = "john\r\ndoe".into();
        assert!(m.validate().is_err());

        // RFC 6531 §3.3: UTF-8 in qtextSMTP only with SMTPUTF8.
        let m = mb(r#""jörg doe"@x.test"#);
        assert!(m.needs_smtputf8());
        assert!(matches!(
            m.envelope_form(false),
            Err(MessageError::NeedsSmtpUtf8(_))
        ));
        assert!(m.header_form(false).is_err());
        assert_eq!(m.envelope_form(true).unwrap(), r#""jörg doe"@x.test"#);
        assert_eq!(m.header_form(true).unwrap(), r#"<"jörg doe"@x.test>"#);
    }

    #[test]
    fn malformed_quoted_local_parts_say_why() {
        for bad in [
            r#""john doe@example.com"#,
            r#"""#,
            r#"john"@example.com"#,
            r#"jo"hn@example.com"#,
            r#""john\"@example.com"#,
            r#"John <"john doe@example.com>"#,
        ] {
            assert!(reason(bad).contains("never closed"), "{bad:?}");
        }
        for bad in [r#""john"doe@x.test"#, r#"a."b c"@x.test"#, r#"a"b"@x.test"#] {
            assert!(reason(bad).contains("whole local part"), "{bad:?}");
        }
        assert!(reason(r#"""@x.test"#).contains("empty"));
        assert!(reason("john doe@x.test").contains("quote it"));
        // RFC 5321 §4.5.3.1.1: 64 octets, counted as sent (quotes included).
        assert!(Mailbox::parse(&format!("\"{}\"@x.test", " ".repeat(62))).is_ok());
        assert!(reason(&format!("\"{}\"@x.test", " ".repeat(63))).contains("64 octets"));
    }

    #[test]
    fn header_forms() {
        assert_eq!(
            mb("ada@example.com").header_form(false).unwrap(),
            "ada@example.com"
        );
        assert_eq!(
            mb("Ada Lovelace <ada@example.com>")
                .header_form(false)
                .unwrap(),
            "Ada Lovelace <ada@example.com>"
        );
        assert_eq!(
            mb("\"Lovelace, Ada\" <ada@example.com>")
                .header_form(false)
                .unwrap(),
            "\"Lovelace, Ada\" <ada@example.com>"
        );
        assert_eq!(
            mb("\"Ada =?x?\" <ada@example.com>")
                .header_form(false)
                .unwrap(),
            "=?utf-8?B?QWRhID0/eD8=?= <ada@example.com>"
        );
        assert_eq!(
            mb("Zoë <zoe@example.com>").header_form(false).unwrap(),
            "=?utf-8?B?Wm/Dqw==?= <zoe@example.com>"
        );
        assert_eq!(
            mb("\"john doe\"@example.com").header_form(false).unwrap(),
            "<\"john doe\"@example.com>"
        );
    }
}
