//! Rosters for grade mode: a CSV file (RFC 4180) with the header `name,email,answers` and one
//! student per row, answers written as `a;c;b`.
//!
//! The parser is written by hand rather than with the `csv` crate: RFC 4180 needs about sixty
//! lines, and owning them lets every error name the line where the offending record starts
//! (a quoted field may span lines) without another dependency.
//!
//! Leniencies: a UTF-8 byte order mark (spreadsheets write one) and blank lines are skipped,
//! LF and CRLF both end a record, header names are trimmed and case-insensitive and may come in
//! any order. An invalid e-mail address is not a roster error: the raw (trimmed) text is kept
//! and the caller reports it per student, so one typo does not stop the batch.

use std::path::Path;

use super::answers::parse_answer_list;
use super::format::Quiz;
use super::runner::Attempt;
use super::text::{has_control, read_text, ReadProblem};
use super::QuizError;

/// Rosters larger than this are refused rather than read into memory.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

const COLUMNS: [&str; 3] = ["name", "email", "answers"];

/// One student, scored.
#[derive(Debug, Clone, PartialEq)]
pub struct RosterEntry {
    /// 1-based line where the row starts, for per-student error messages.
    pub line: usize,
    /// The address as written (trimmed), not validated: the caller checks it per student.
    pub email: String,
    /// The student's name (`attempt.name`), answers and score.
    pub attempt: Attempt,
}

/// Reads a roster file and scores every row against `quiz`. A missing file is an input error
/// (66); any malformed row is a data error (65) naming its line.
pub fn load_roster(path: &Path, quiz: &Quiz) -> Result<Vec<RosterEntry>, QuizError> {
    let at = |line, message| QuizError::Roster {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = read_text(path, MAX_FILE_BYTES).map_err(|problem| match problem {
        ReadProblem::Io(source) => QuizError::Read {
            path: path.to_path_buf(),
            source,
        },
        ReadProblem::TooLarge => at(1, format!("file is larger than {MAX_FILE_BYTES} bytes")),
        ReadProblem::Utf8 { line, .. } => {
            at(line, "not valid UTF-8 (save the CSV as UTF-8)".into())
        }
    })?;
    parse_roster(&text, path, quiz)
}

/// Parses roster text; `path` only names the source in error messages.
pub fn parse_roster(text: &str, path: &Path, quiz: &Quiz) -> Result<Vec<RosterEntry>, QuizError> {
    let at = |line, message| QuizError::Roster {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = records(text).map_err(|(line, message)| at(line, message))?;
    let mut records = records.into_iter();
    let header = records.next().ok_or_else(|| {
        at(
            1,
            "the roster is empty; it needs the header name,email,answers".into(),
        )
    })?;
    let order = column_order(&header.fields).ok_or_else(|| {
        at(
            header.line,
            format!(
                "the header is {:?}; it must name the columns name,email,answers",
                header.fields.join(",")
            ),
        )
    })?;

    let mut entries = Vec::new();
    for record in records {
        entries.push(entry(&record, &order, quiz).map_err(|message| at(record.line, message))?);
    }
    if entries.is_empty() {
        return Err(at(header.line, "the roster has no students".into()));
    }
    Ok(entries)
}

/// For each of name, email, answers: its index in the header. None unless the header names
/// exactly those three columns.
fn column_order(header: &[String]) -> Option<[usize; 3]> {
    if header.len() != COLUMNS.len() {
        return None;
    }
    let mut order = [0; 3];
    for (slot, column) in order.iter_mut().zip(COLUMNS) {
        *slot = header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(column))?;
    }
    Some(order)
}

fn entry(record: &Record, order: &[usize; 3], quiz: &Quiz) -> Result<RosterEntry, String> {
    if record.fields.len() != COLUMNS.len() {
        return Err(format!(
            "{} fields; a row needs 3 (name,email,answers)",
            record.fields.len()
        ));
    }
    let [name, email, answers] = order.map(|i| record.fields[i].trim());
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if has_control(name, &[]) {
        return Err("the name holds a line break or control character".into());
    }
    let answers =
        parse_answer_list(answers.split(';'), quiz).map_err(|e| format!("answers: {e}"))?;
    Ok(RosterEntry {
        line: record.line,
        email: email.to_owned(),
        attempt: Attempt::new(quiz, name.to_owned(), answers),
    })
}

/// One CSV record and the line it starts on.
#[derive(Debug, PartialEq)]
struct Record {
    line: usize,
    fields: Vec<String>,
}

/// Splits RFC 4180 text into records, skipping blank lines. Errors carry the line number.
fn records(text: &str) -> Result<Vec<Record>, (usize, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut quoted_any = false;
        loop {
            let mut field = String::new();
            let end_of_record;
            if chars.peek() == Some(&'"') {
                quoted_any = true;
                let field_line = line;
                chars.next();
                loop {
                    match chars.next() {
                        None => return Err((field_line, "a quoted field is never closed".into())),
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                end_of_record = match chars.next() {
                    None => true,
                    Some(',') => false,
                    Some('\n') => {
                        line += 1;
                        true
                    }
                    Some('\r') if chars.peek() == Some(&'\n') => {
                        chars.next();
                        line += 1;
                        true
                    }
                    Some(c) => {
                        return Err((
                            line,
                            format!("{c:?} after a closing quote; a quote inside a quoted field is written twice (\"\")"),
                        ))
                    }
                };
            } else {
                loop {
                    match chars.next() {
                        None => {
                            end_of_record = true;
                            break;
                        }
                        Some('\n') => {
                            line += 1;
                            end_of_record = true;
                            break;
                        }
                        Some('\r') if chars.peek() == Some(&'\n') => {
                            chars.next();
                            line += 1;
                            end_of_record = true;
                            break;
                        }
                        Some(',') => {
                            end_of_record = false;
                            break;
                        }
                        Some('"') => {
                            return Err((
                                line,
                                "a quote inside an unquoted field; put the whole field in quotes and double the inner ones".into(),
                            ))
                        }
                        Some(c) => field.push(c),
                    }
                }
            }
            fields.push(field);
            if end_of_record {
                break;
            }
        }
        let blank = !quoted_any && fields.len() == 1 && fields[0].trim().is_empty();
        if !blank {
            out.push(Record {
                line: start,
                fields,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quiz::{ErrorClass, Question};

    fn quiz() -> Quiz {
        Quiz {
            title: "T".into(),
            pass_percent: 50,
            questions: (0..3)
                .map(|i| Question {
                    prompt: format!("q{i}"),
                    choices: vec!["x".into(), "y".into(), "z".into()],
                    answer: i,
                    explain: None,
                })
                .collect(),
        }
    }

    fn parse(text: &str) -> Result<Vec<RosterEntry>, QuizError> {
        parse_roster(text, Path::new("class.csv"), &quiz())
    }

    fn error(text: &str) -> (usize, String) {
        match parse(text) {
            Err(QuizError::Roster { line, message, .. }) => (line, message),
            other => panic!("expected a roster error, got {other:?}"),
        }
    }

    fn rec(line: usize, fields: &[&str]) -> Record {
        Record {
            line,
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    #[test]
    fn rfc4180_records() {
        // RFC 4180 §2 examples: CRLF ends, quoted fields with commas, doubled quotes, line breaks.
        let text = "aaa,bbb,ccc\r\nzzz,yyy,xxx\r\n";
        assert_eq!(
            records(text).unwrap(),
            [
                rec(1, &["aaa", "bbb", "ccc"]),
                rec(2, &["zzz", "yyy", "xxx"])
            ]
        );
        let text = "\"aaa\",\"b\r\nbb\",\"ccc\"\r\nzzz,yyy,xxx";
        assert_eq!(
            records(text).unwrap(),
            [
                rec(1, &["aaa", "b\r\nbb", "ccc"]),
                rec(3, &["zzz", "yyy", "xxx"])
            ]
        );
        let text = "\"aaa\",\"b\"\"bb\",\"ccc\"\n";
        assert_eq!(records(text).unwrap(), [rec(1, &["aaa", "b\"bb", "ccc"])]);
        assert_eq!(records("a,,\n").unwrap(), [rec(1, &["a", "", ""])]);
        assert_eq!(
            records("a\n\n  \nb\n").unwrap(),
            [rec(1, &["a"]), rec(4, &["b"])]
        );
        assert_eq!(records("\"\"\n").unwrap(), [rec(1, &[""])]);
    }

    #[test]
    fn rfc4180_errors_name_the_line() {
        assert_eq!(records("a\n\"open,b\nc\n").unwrap_err().0, 2);
        assert_eq!(records("a\nb,\"x\"y\n").unwrap_err().0, 2);
        assert_eq!(records("a\n\nb\"c\n").unwrap_err().0, 3);
    }

    #[test]
    fn a_roster_is_scored_row_by_row() {
        let text = "\u{feff}name,email,answers\r\nAda Lovelace,ada@example.com,a;b;c\r\n\r\n\"Hopper, Grace\",grace@example.com, A ; c ; c \r\n";
        let entries = parse(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].line, 2);
        assert_eq!(entries[0].attempt.name, "Ada Lovelace");
        assert_eq!(entries[0].email, "ada@example.com");
        assert_eq!(entries[0].attempt.answers, [0, 1, 2]);
        assert_eq!(entries[0].attempt.score.score, 3);
        assert_eq!(entries[1].line, 4);
        assert_eq!(entries[1].attempt.name, "Hopper, Grace");
        assert_eq!(entries[1].attempt.score.score, 2);
    }

    #[test]
    fn header_may_be_reordered_and_differently_cased() {
        let entries = parse("Email, ANSWERS ,Name\nada@example.com,a;b;c,Ada\n").unwrap();
        assert_eq!(entries[0].attempt.name, "Ada");
        assert_eq!(entries[0].email, "ada@example.com");
    }

    #[test]
    fn invalid_email_is_kept_not_rejected() {
        let entries =
            parse("name,email,answers\nAda, not an address ,a;b;c\nBob,,a;a;a\n").unwrap();
        assert_eq!(entries[0].email, "not an address");
        assert_eq!(entries[1].email, "");
    }

    #[test]
    fn header_is_required_and_checked() {
        assert_eq!(error("").0, 1);
        assert_eq!(error("\u{feff}\n\n").0, 1);
        let (line, message) = error("\nname,mail,answers\nAda,a@example.com,a;b;c\n");
        assert_eq!(line, 2);
        assert!(message.contains("name,email,answers"), "{message}");
        let (line, _) = error("Ada,ada@example.com,a;b;c\n");
        assert_eq!(line, 1);
        let (line, message) = error("name,email,answers\n\n");
        assert_eq!(line, 1);
        assert_eq!(message, "the roster has no students");
    }

    #[test]
    fn row_errors_name_the_row_and_the_problem() {
        let head = "name,email,answers\nAda,ada@example.com,a;b;c\n";
        let (line, message) = error(&format!("{head}Bob,bob@example.com,a;b\n"));
        assert_eq!(line, 3);
        assert_eq!(
            message,
            "answers: 2 answers given, but the quiz has 3 questions"
        );
        let (line, message) = error(&format!("{head}\nBob,bob@example.com,a;q;c\n"));
        assert_eq!(line, 4);
        assert!(
            message.starts_with("answers: answer 2 is \"q\""),
            "{message}"
        );
        let (line, message) = error(&format!("{head}Bob,bob@example.com\n"));
        assert_eq!(line, 3);
        assert!(message.starts_with("2 fields"), "{message}");
        let (line, message) = error(&format!("{head} ,bob@example.com,a;b;c\n"));
        assert_eq!(line, 3);
        assert_eq!(message, "the name is empty");
        let (line, message) = error(&format!("{head}\"Bob\nBcc: x\",bob@example.com,a;b;c\n"));
        assert_eq!(line, 3);
        assert!(message.contains("control character"), "{message}");
        // A multi-line quoted field moves the following rows' line numbers on.
        let (line, _) = error(&format!(
            "{head}Eve,\"eve\n@example.com\",a;b;c\nBob,b@example.com,a\n"
        ));
        assert_eq!(line, 5);
        let e = parse(&format!("{head}Bob,bob@example.com,a;b\n")).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Data);
        assert!(
            e.to_string().starts_with("class.csv: line 3: answers:"),
            "{e}"
        );
    }

    proptest::proptest! {
        /// Arbitrary text gives entries or a roster error with a line, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "(?s)[a-d;,\"\r\n xé]{0,200}") {
            let with_header = format!("name,email,answers\n{text}");
            for t in [text.as_str(), with_header.as_str()] {
                match parse(t) {
                    Ok(entries) => proptest::prop_assert!(entries.iter().all(|e| e.attempt.answers.len() == 3)),
                    Err(QuizError::Roster { line, .. }) => proptest::prop_assert!(line >= 1 && line <= t.lines().count().max(1) + 1),
                    Err(other) => proptest::prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
    }

    #[test]
    fn load_roster_reports_missing_files_as_input() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_roster(&dir.path().join("none.csv"), &quiz()).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Input);
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "name,email,answers\nAda,ada@example.com,a;b;c\n").unwrap();
        assert_eq!(load_roster(&path, &quiz()).unwrap().len(), 1);
        std::fs::write(&path, b"name,email,answers\nAd\xe9,x,a;b;c\n").unwrap();
        match load_roster(&path, &quiz()).unwrap_err() {
            QuizError::Roster { line, .. } => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }
}
