//! Small text helpers shared by the quiz submodules: HTML escaping, RFC 4180 CSV fields with
//! formula-injection protection, and byte offset → line/column conversion.

/// Escapes the five characters that matter in HTML text and quoted attribute values, so quiz
/// and user text can never open a tag, start an entity or leave an attribute.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// HTML-escapes and keeps line breaks visible in mail clients that ignore `white-space`.
pub(crate) fn html_multiline(s: &str) -> String {
    html_escape(s).replace('\n', "<br>\n")
}

/// One CSV field per RFC 4180 §2: quoted when it holds a comma, a quote, CR or LF, quotes doubled.
/// A field that a spreadsheet would run as a formula (leading `=`, `+`, `-`, `@`, TAB or CR, the
/// OWASP "CSV injection" list) gets a leading `'` so it is shown as text.
pub(crate) fn csv_field(s: &str) -> String {
    let guarded;
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{s}");
        guarded.as_str()
    } else {
        s
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// One CSV record terminated by CRLF (RFC 4180 §2 rule 1).
pub(crate) fn csv_record<I, S>(fields: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut line = fields
        .into_iter()
        .map(|f| csv_field(f.as_ref()))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// 1-based line and column (in characters) of a byte offset, clamped to the text.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Why a text file could not be read as UTF-8 text.
#[derive(Debug)]
pub(crate) enum ReadProblem {
    /// Opening or reading failed (missing, unreadable, a directory).
    Io(std::io::Error),
    /// Larger than the cap; refused rather than read into memory.
    TooLarge,
    /// Not UTF-8; 1-based position of the first bad byte.
    Utf8 { line: usize, column: usize },
}

/// Reads a whole UTF-8 text file of at most `max` bytes.
pub(crate) fn read_text(path: &std::path::Path, max: u64) -> Result<String, ReadProblem> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(ReadProblem::Io)?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadProblem::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadProblem::TooLarge);
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
        let (line, column) = line_column(&prefix, valid);
        ReadProblem::Utf8 { line, column }
    })
}

/// True when `s` holds a control character other than those `allowed`; such text could break
/// a mail header (CR, LF) or drive the terminal (ESC).
pub(crate) fn has_control(s: &str, allowed: &[char]) -> bool {
    s.chars().any(|c| c.is_control() && !allowed.contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escape_covers_markup_and_quotes() {
        assert_eq!(
            html_escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(html_multiline("a<\nb"), "a&lt;<br>\nb");
    }

    #[test]
    fn csv_quoting_follows_rfc4180() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field(""), "");
        assert_eq!(csv_record(["a", "b,c"]), "a,\"b,c\"\r\n");
    }

    #[test]
    fn csv_formula_cells_are_neutralised() {
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_field("+cmd"), "'+cmd");
        assert_eq!(csv_field("-2"), "'-2");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "'\tx");
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\",\"a\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"a\"\")\""
        );
        assert_eq!(csv_field("a=b"), "a=b");
    }

    #[test]
    fn line_column_counts_characters() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        // 'f' is after "cdé\n": é is two bytes but one column.
        assert_eq!(line_column(text, 8), (3, 1));
        assert_eq!(line_column(text, 7), (2, 4));
        // Inside a multi-byte character: clamped to its start.
        assert_eq!(line_column(text, 6), (2, 3));
        assert_eq!(line_column(text, 999), (3, 2));
    }

    #[test]
    fn control_characters_are_detected() {
        assert!(has_control("a\nb", &[]));
        assert!(!has_control("a\nb", &['\n']));
        assert!(has_control("\u{1b}[31m", &['\n', '\t']));
        assert!(!has_control("plain é", &[]));
    }
}
