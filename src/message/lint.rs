//! A strict checker for finished messages, run by the tests over everything this layer writes
//! (and usable on any message): CRLF only (RFC 5322 §2.3), no line over 998 octets (§2.1.1),
//! no NUL, a well-formed header section that is ASCII unless SMTPUTF8 is in use (RFC 6532),
//! no Bcc field on the wire, encoded words of at most 75 characters on lines of at most 76
//! (RFC 2047 §2), and an ASCII body unless 8BITMIME is in use.

use super::Target;

/// Checks `message`; the error names the first problem and its line (1-based).
pub fn lint(message: &[u8], target: Target) -> Result<(), String> {
    let mut in_headers = true;
    let mut line_no = 0;
    let mut rest = message;
    if message.is_empty() {
        return Err("the message is empty".into());
    }
    while !rest.is_empty() {
        line_no += 1;
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(format!("line {line_no} does not end with CRLF"))?;
        let with_cr = &rest[..end];
        let line = with_cr
            .strip_suffix(b"\r")
            .ok_or(format!("line {line_no} ends with a bare LF"))?;
        rest = &rest[end + 1..];
        if line.contains(&b'\r') {
            return Err(format!("line {line_no} contains a bare CR"));
        }
        if line.len() > 998 {
            return Err(format!(
                "line {line_no} is {} octets long (max 998)",
                line.len()
            ));
        }
        if line.contains(&0) {
            return Err(format!("line {line_no} contains NUL"));
        }
        if !line.is_ascii() {
            if in_headers && !target.smtputf8 {
                return Err(format!(
                    "header line {line_no} is not ASCII without SMTPUTF8"
                ));
            }
            if !in_headers && !target.eight_bit_mime {
                return Err(format!("body line {line_no} is not ASCII without 8BITMIME"));
            }
        }
        if in_headers {
            if line.is_empty() {
                in_headers = false;
                continue;
            }
            check_header_line(line, line_no)?;
        }
    }
    Ok(())
}

fn check_header_line(line: &[u8], line_no: usize) -> Result<(), String> {
    let text = String::from_utf8_lossy(line);
    if text.starts_with([' ', '\t']) {
        if line_no == 1 {
            return Err("the message starts with a continuation line".into());
        }
        if text.trim().is_empty() {
            return Err(format!("header line {line_no} holds only white space"));
        }
    } else {
        let colon = text
            .find(':')
            .ok_or(format!("header line {line_no} is not a field"))?;
        let name = &text[..colon];
        if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(format!("header line {line_no} has an invalid field name"));
        }
        if name.eq_ignore_ascii_case("bcc") {
            return Err(format!("header line {line_no} is a Bcc field"));
        }
    }
    let mut has_word = false;
    for word in encoded_words_in(&text) {
        has_word = true;
        if word.len() > 75 {
            return Err(format!(
                "header line {line_no} has a {}-character encoded word",
                word.len()
            ));
        }
    }
    if has_word && line.len() > 76 {
        return Err(format!(
            "header line {line_no} holds an encoded word and is {} long (max 76)",
            line.len()
        ));
    }
    Ok(())
}

/// Finds `=?charset?X?text?=` sequences (RFC 2047 §2 syntax).
fn encoded_words_in(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("=?").map(|i| i + from) {
        let candidate = &text[start + 2..];
        let parts: Vec<&str> = candidate.splitn(4, '?').collect();
        let word_end = match parts.as_slice() {
            [charset, enc, payload, rest]
                if !charset.is_empty()
                    && matches!(*enc, "B" | "b" | "Q" | "q")
                    && !payload.contains([' ', '\t'])
                    && rest.starts_with('=') =>
            {
                Some(start + 2 + charset.len() + enc.len() + payload.len() + 3 + 1)
            }
            _ => None,
        };
        match word_end {
            Some(end) => {
                found.push(&text[start..end]);
                from = end;
            }
            None => from = start + 2,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Target = Target {
        smtputf8: false,
        eight_bit_mime: false,
    };

    #[test]
    fn accepts_a_simple_message() {
        assert!(lint(b"From: a@x.test\r\nSubject: hi\r\n\r\nbody\r\n", PLAIN).is_ok());
    }

    #[test]
    fn catches_each_problem() {
        let long = format!("Subject: {}\r\n\r\n", "x".repeat(990));
        let word = format!("Subject: =?utf-8?B?{}?=\r\n\r\n", "QUJD".repeat(20));
        let cases: Vec<&[u8]> = vec![
            b"From: a@x.test\n\nbody\n",
            b"From: a@x.test\r\n\r\nbo\rdy\r\n",
            b"From: a@x.test\r\n\r\nbody",
            b"Bcc: b@x.test\r\n\r\nbody\r\n",
            b"Subject: caf\xc3\xa9\r\n\r\n",
            b"Subject: x\r\n\r\ncaf\xc3\xa9\r\n",
            b"Subject: x\r\n\r\na\0b\r\n",
            b"not a header\r\n\r\n",
            b" continuation first\r\n\r\n",
            b"Subject: x\r\n   \r\n\r\n",
            long.as_bytes(),
            word.as_bytes(),
        ];
        for case in cases {
            assert!(
                lint(case, PLAIN).is_err(),
                "{:?}",
                String::from_utf8_lossy(case)
            );
        }
        let utf8 = Target {
            smtputf8: true,
            eight_bit_mime: true,
        };
        assert!(lint(b"Subject: caf\xc3\xa9\r\n\r\ncaf\xc3\xa9\r\n", utf8).is_ok());
    }
}
