//! `--message FILE|-`: a complete RFC 5322 message sent as it is, after normalising line ends
//! to CRLF (RFC 5322 §2.3) and checking it can travel: lines of at most 998 octets (§2.1.1), no
//! NUL, a header section of well-formed fields (§2.2). With `-t` the recipients come from
//! To, Cc and Bcc (§3.6.3). Bcc fields are always removed: sending one would show every
//! recipient the blind copies (§3.6.3 names removing it as the first way of handling Bcc).

use super::encoding::normalize_crlf;
use super::header::{HeaderField, MAX_LINE};
use super::{headers_len, write_message, Mailbox, MessageError, Outgoing};
use std::io::{self, Write};

/// A complete message given by the user, held in memory, normalised and checked.
#[derive(Debug, Clone)]
pub struct Prepared {
    headers: Vec<HeaderField>,
    body: Vec<u8>,
    recipients: Vec<Mailbox>,
    message_id: Option<String>,
    smtputf8: bool,
    eight_bit: bool,
}

impl Prepared {
    /// Normalises and checks `raw`. With `read_recipients`, To, Cc and Bcc are parsed into
    /// [`Prepared::recipients`] and a message naming nobody is an error.
    pub fn parse(raw: &[u8], read_recipients: bool) -> Result<Prepared, MessageError> {
        let mut text = normalize_crlf(raw);
        if text.is_empty() {
            return Err(bad(1, "the message is empty"));
        }
        if !text.ends_with(b"\r\n") {
            text.extend_from_slice(b"\r\n");
        }
        let mut fields: Vec<HeaderField> = Vec::new();
        let mut offset = 0;
        let mut body_start = text.len();
        let mut line_no = 0;
        let mut in_headers = true;
        while offset < text.len() {
            line_no += 1;
            let end = offset
                + text[offset..]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .unwrap_or(text.len() - offset);
            let line = &text[offset..end];
            if line.len() > MAX_LINE {
                return Err(bad(
                    line_no,
                    &format!(
                        "the line is {} octets long; at most 998 may be sent",
                        line.len()
                    ),
                ));
            }
            if line.contains(&0) {
                return Err(bad(line_no, "the line contains a NUL octet"));
            }
            if in_headers {
                if line.is_empty() {
                    in_headers = false;
                    body_start = end + 2;
                } else {
                    header_line(line, line_no, &mut fields)?;
                }
            }
            offset = end + 2;
        }
        if fields.is_empty() {
            return Err(bad(1, "the message has no header fields"));
        }
        let body = text.split_off(body_start.min(text.len()));

        let mut recipients = Vec::new();
        if read_recipients {
            for field in &fields {
                if ["to", "cc", "bcc"].contains(&field.name.to_ascii_lowercase().as_str()) {
                    let unfolded = field.value.replace("\r\n", "").replace('\t', " ");
                    recipients.extend(Mailbox::parse_list(&unfolded)?);
                }
            }
            if recipients.is_empty() {
                return Err(MessageError::NoRecipients);
            }
        }
        fields.retain(|f| !f.name.eq_ignore_ascii_case("bcc"));
        let message_id = fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("message-id"))
            .map(|f| f.value.replace("\r\n", "").trim().to_string());
        let smtputf8 = fields.iter().any(|f| !f.value.is_ascii())
            || recipients.iter().any(Mailbox::needs_smtputf8);
        let eight_bit = !body.is_ascii();
        Ok(Prepared {
            headers: fields,
            body,
            recipients,
            message_id,
            smtputf8,
            eight_bit,
        })
    }

    /// The recipients read from To, Cc and Bcc (empty unless asked for).
    pub fn recipients(&self) -> &[Mailbox] {
        &self.recipients
    }

    /// Who the message says it is from: the Sender mailbox when present, else the first From
    /// mailbox (RFC 5322 §3.6.2). The default MAIL FROM, so SPF and DMARC stay aligned.
    pub fn author(&self) -> Option<Mailbox> {
        ["sender", "from"].iter().find_map(|name| {
            let field = self
                .headers
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))?;
            let unfolded = field.value.replace("\r\n", "").replace('\t', " ");
            Mailbox::parse_list(&unfolded).ok()?.into_iter().next()
        })
    }
}

fn bad(line: usize, reason: &str) -> MessageError {
    MessageError::BadMessage {
        line,
        reason: reason.to_string(),
    }
}

/// A field line `Name: value` or a continuation line starting with white space.
fn header_line(
    line: &[u8],
    line_no: usize,
    fields: &mut Vec<HeaderField>,
) -> Result<(), MessageError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| bad(line_no, "the header line is neither ASCII nor UTF-8"))?;
    // Before the continuation branch: a folded line is as much a part of the field.
    if text.chars().any(|c| c.is_ascii_control() && c != '\t') {
        return Err(bad(line_no, "the header line contains a control character"));
    }
    if text.starts_with([' ', '\t']) {
        let field = fields.last_mut().ok_or_else(|| {
            bad(
                line_no,
                "the first line is a continuation (starts with white space)",
            )
        })?;
        if text.trim_matches([' ', '\t']).is_empty() {
            // Obsolete syntax (RFC 5322 §4.2, never to be generated), and some readers take a
            // blank-looking line for the end of the header section.
            return Err(bad(line_no, "the header line holds only white space"));
        }
        field.value.push_str("\r\n");
        field.value.push_str(text);
        return Ok(());
    }
    let (name, value) = text.split_once(':').ok_or_else(|| {
        bad(
            line_no,
            "not a header field (expected \"Name: value\" or a blank line before the body)",
        )
    })?;
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b)) {
        return Err(bad(
            line_no,
            "the field name is not printable ASCII without spaces",
        ));
    }
    fields.push(HeaderField {
        name: name.to_string(),
        value: value.to_string(),
    });
    Ok(())
}

impl Outgoing for Prepared {
    fn size(&self) -> io::Result<u64> {
        Ok(headers_len(&self.headers) + self.body.len() as u64)
    }

    fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        write_message(&self.headers, w, |out| out.write_all(&self.body))
    }

    fn headers(&self) -> &[HeaderField] {
        &self.headers
    }

    fn write_body(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(&self.body)
    }

    fn prepend_header(&mut self, name: &str, value: &str) -> Result<(), MessageError> {
        self.headers.insert(0, HeaderField::validated(name, value)?);
        Ok(())
    }

    fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    fn needs_smtputf8(&self) -> bool {
        self.smtputf8
    }

    fn needs_8bitmime(&self) -> bool {
        self.eight_bit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::lint::lint;
    use crate::message::Target;

    fn written(p: &Prepared) -> Vec<u8> {
        let mut out = Vec::new();
        p.write_to(&mut out).unwrap();
        assert_eq!(out.len() as u64, p.size().unwrap());
        out
    }

    #[test]
    fn author_is_sender_else_first_from() {
        let p = Prepared::parse(
            b"From: Ada <ada@x.test>, b@y.test\nTo: c@z.test\n\nhi\n",
            false,
        )
        .unwrap();
        assert_eq!(p.author().unwrap().addr_spec_unicode(), "ada@x.test");
        let raw = b"From: a@x.test,\n b@y.test\nSender: Desk <desk@x.test>\n\nhi\n";
        let p = Prepared::parse(raw, false).unwrap();
        assert_eq!(p.author().unwrap().addr_spec_unicode(), "desk@x.test");
        let p = Prepared::parse(b"Subject: no author\n\nhi\n", false).unwrap();
        assert!(p.author().is_none());
    }

    #[test]
    fn normalises_and_strips_bcc() {
        let raw = b"From: a@x.test\nTo: b@y.test,\n\t\"C, D\" <c@y.test>\nBcc: secret@z.test\nSubject: hi\n\n.line\rlast";
        let p = Prepared::parse(raw, true).unwrap();
        let out = written(&p);
        assert_eq!(
            out,
            b"From: a@x.test\r\nTo: b@y.test,\r\n\t\"C, D\" <c@y.test>\r\nSubject: hi\r\n\r\n.line\r\nlast\r\n"
        );
        let rcpts: Vec<String> = p
            .recipients()
            .iter()
            .map(|m| m.addr_spec_unicode())
            .collect();
        assert_eq!(rcpts, ["b@y.test", "c@y.test", "secret@z.test"]);
        lint(&out, Target::default()).unwrap();
        let mut body = Vec::new();
        p.write_body(&mut body).unwrap();
        assert_eq!(body, b".line\r\nlast\r\n");
    }

    #[test]
    fn bcc_is_removed_without_t_too() {
        let p = Prepared::parse(
            b"From: a@x.test\r\nBCC: s@z.test\r\n cont@z.test\r\n\r\nx\r\n",
            false,
        )
        .unwrap();
        assert_eq!(written(&p), b"From: a@x.test\r\n\r\nx\r\n");
        assert!(p.recipients().is_empty());
    }

    #[test]
    fn clear_errors() {
        let long = format!("From: a@x.test\r\n\r\n{}\r\n", "x".repeat(999));
        let cases: Vec<(&[u8], usize)> = vec![
            (b"", 1),
            (b"From: a@x.test\r\n\r\na\0b\r\n", 3),
            (long.as_bytes(), 3),
            (b" folded first\r\n\r\n", 1),
            (b"From: a@x.test\r\nnot a header\r\n\r\n", 2),
            (b"From a@x.test Sat Jan 1\r\nFrom: a@x.test\r\n\r\n", 1),
            (b"\r\nbody only\r\n", 1),
            // Found by fuzz/fuzz_targets/prepared_message.rs: white space only.
            (b"From: C\r\n \r\n\r\nbody\r\n", 2),
            (
                b"From: a@x.test\r\nSubject: hi\r\n\t \r\n more\r\n\r\nx\r\n",
                3,
            ),
            // A control character is refused on a continuation line as on the first line.
            (
                b"From: a@x.test\r\nSubject: hi\r\n \x1b[31mred\r\n\r\nx\r\n",
                3,
            ),
        ];
        for (raw, line) in cases {
            match Prepared::parse(raw, false) {
                Err(MessageError::BadMessage { line: l, .. }) => {
                    assert_eq!(l, line, "{:?}", String::from_utf8_lossy(raw))
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(raw)),
            }
        }
        assert!(matches!(
            Prepared::parse(b"From: a@x.test\r\n\r\nx\r\n", true),
            Err(MessageError::NoRecipients)
        ));
        assert!(matches!(
            Prepared::parse(b"To: not an address\r\n\r\nx\r\n", true),
            Err(MessageError::InvalidAddress { .. })
        ));
    }

    #[test]
    fn flags_and_message_id() {
        let p = Prepared::parse(
            "From: a@x.test\r\nMessage-ID:\r\n <1@x.test>\r\nTo: jörg@x.test\r\n\r\ncafé\r\n"
                .as_bytes(),
            true,
        )
        .unwrap();
        assert_eq!(p.message_id(), Some("<1@x.test>"));
        assert!(p.needs_smtputf8());
        assert!(p.needs_8bitmime());
        let p = Prepared::parse(b"From: a@x.test\r\n", false).unwrap();
        assert!(!p.needs_smtputf8() && !p.needs_8bitmime());
        assert_eq!(written(&p), b"From: a@x.test\r\n\r\n");
    }

    #[test]
    fn signature_goes_on_top() {
        let mut p = Prepared::parse(b"From: a@x.test\r\n\r\nx\r\n", false).unwrap();
        p.prepend_header("DKIM-Signature", " v=1;\r\n\tb=x")
            .unwrap();
        assert_eq!(p.headers()[0].name, "DKIM-Signature");
        assert!(written(&p).starts_with(b"DKIM-Signature: v=1;\r\n\tb=x\r\nFrom:"));
        assert!(p.prepend_header("X", " a\r\nBcc: b").is_err());
    }
}
