//! Quiz text wrapped to the terminal with a hanging indent (cli.md "Quiz": question, choice and
//! explanation text at word boundaries, to the terminal's width).
//!
//! A line starts with its label (`1/3 `, `  a) `, `    `) and every continuation line is
//! indented to where the text began, so the numbers and letters stand alone in the margin.
//! Words are never broken: a word longer than the line (a URL) runs past the edge whole, so it
//! still works when copied. Widths are display columns (textwrap counts them).

use textwrap::{core::display_width, Options, WordSeparator, WordSplitter, WrapAlgorithm};

/// Fewer columns than this for the text itself (a very narrow terminal, a deep indent) and the
/// text gets this many anyway: a word per line helps nobody.
const MIN_TEXT_WIDTH: usize = 20;

/// The pieces of `text` for lines that start `indent` columns in, each at most `width` columns
/// wide with the indent. `None` (not a terminal) wraps nothing. A newline in the text always
/// starts a new piece.
pub fn wrap_text(text: &str, indent: usize, width: Option<usize>) -> Vec<String> {
    let Some(width) = width else {
        return text.split('\n').map(str::to_owned).collect();
    };
    let room = width.saturating_sub(indent).max(MIN_TEXT_WIDTH);
    let options = Options::new(room)
        .break_words(false)
        .word_separator(WordSeparator::AsciiSpace)
        // Not at hyphens either: "rfc-editor.org" and "--tls" stay whole.
        .word_splitter(WordSplitter::NoHyphenation)
        .wrap_algorithm(WrapAlgorithm::FirstFit);
    text.split('\n')
        .flat_map(|line| textwrap::wrap(line, &options))
        .map(|piece| piece.into_owned())
        .collect()
}

/// `prefix` and `text` as whole lines: the first begins with the prefix, the others with as
/// many spaces as the prefix is wide.
pub fn hanging(prefix: &str, text: &str, width: Option<usize>) -> Vec<String> {
    let indent = display_width(prefix);
    wrap_text(text, indent, width)
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let start = if i == 0 {
                prefix.to_owned()
            } else {
                " ".repeat(indent)
            };
            format!("{start}{piece}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str = "Which command does a client send after the greeting to learn which \
                        extensions such as PIPELINING, CHUNKING and STARTTLS the server offers?";

    fn check_width(lines: &[String], width: usize) {
        for line in lines {
            assert!(display_width(line) <= width, "{line:?} is over {width}");
        }
    }

    /// The words of `lines`, in order, are exactly the words of `text`: nothing broken or lost.
    fn same_words(lines: &[String], text: &str) {
        let got: Vec<&str> = lines.iter().flat_map(|l| l.split_whitespace()).collect();
        let want: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_question_hangs_under_its_text() {
        let lines = hanging("12/16 ", LONG, Some(40));
        check_width(&lines, 40);
        assert!(lines.len() > 2, "{lines:?}");
        assert!(lines[0].starts_with("12/16 Which "));
        for line in &lines[1..] {
            assert!(
                line.starts_with("      ") && !line.starts_with("       "),
                "{line:?}"
            );
        }
        let mut words = lines.clone();
        words[0] = words[0].replacen("12/16", "", 1);
        same_words(&words, LONG);
    }

    #[test]
    fn a_choice_continues_under_its_text_not_its_letter() {
        let lines = hanging(
            "  b) ",
            "the submission port with STARTTLS, RFC 6409",
            Some(30),
        );
        assert_eq!(
            lines,
            ["  b) the submission port with", "     STARTTLS, RFC 6409"]
        );
    }

    #[test]
    fn without_a_width_nothing_is_wrapped() {
        assert_eq!(hanging("1/3 ", LONG, None), [format!("1/3 {LONG}")]);
        assert_eq!(wrap_text(LONG, 4, None), [LONG]);
    }

    #[test]
    fn newlines_in_the_text_are_kept_and_indented() {
        let lines = hanging("    ", "first line\nsecond line", None);
        assert_eq!(lines, ["    first line", "    second line"]);
        let lines = hanging("    ", "one two three four five six\nseven", Some(24));
        assert_eq!(
            lines,
            ["    one two three four", "    five six", "    seven"]
        );
    }

    #[test]
    fn a_long_word_is_never_broken() {
        let url = "https://www.rfc-editor.org/rfc/rfc5321.html#section-4.5.2";
        let text = format!("See {url} for transparency.");
        let lines = hanging("    ", &text, Some(40));
        assert!(lines.iter().any(|l| l.trim() == url), "{lines:?}");
        same_words(&lines, &text);
    }

    #[test]
    fn display_columns_not_bytes_are_counted() {
        let text = "Pourquoi le point en début de ligne est-il doublé ? Réponse ci-dessous, déjà.";
        let lines = hanging("✗ 2/3 ", text, Some(30));
        check_width(&lines, 30);
        // Byte lengths exceed 30 on a line that fits: the accents are counted as one column.
        assert!(lines.iter().all(|l| l.chars().count() <= 30), "{lines:?}");
        for line in &lines[1..] {
            assert!(line.starts_with("      "), "{line:?}");
        }
    }

    #[test]
    fn a_narrow_terminal_still_gets_some_text_per_line() {
        let lines = wrap_text(LONG, 18, Some(20));
        assert!(lines.iter().all(|l| display_width(l) <= MIN_TEXT_WIDTH));
        assert!(lines.len() < LONG.split(' ').count(), "{lines:?}");
    }
}
