//! The quiz file format (TOML, see cli.md "Quiz file") and the built-in sample test.
//!
//! Parsing keeps the byte spans of every value (`toml::Spanned`) so that both syntax errors and
//! semantic errors (an answer letter out of range, a duplicate choice) are reported as
//! `FILE:LINE:COLUMN: message`, the form compilers use and editors can jump to.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::text::{has_control, line_column, read_text, ReadProblem};
use super::QuizError;

/// The pass mark when the file does not give `pass_percent` (cli.md).
pub const DEFAULT_PASS_PERCENT: u8 = 50;

/// Quiz files larger than this are refused rather than read into memory.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Choices are lettered `a` to `z`.
const MAX_CHOICES: usize = 26;

/// A validated quiz: at least one question, each with 2 to 26 distinct choices and an answer
/// that points at one of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Quiz {
    pub title: String,
    /// Passing needs `percent >= pass_percent`; 0..=100.
    pub pass_percent: u8,
    pub questions: Vec<Question>,
}

/// One multiple-choice question.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// May span several lines (a TOML multi-line string).
    pub prompt: String,
    /// Single-line texts, shown as `a) ...`, `b) ...`.
    pub choices: Vec<String>,
    /// Index into `choices` of the correct one.
    pub answer: usize,
    pub explain: Option<String>,
}

/// The letter shown for a choice index (`0` → `a`); indices are below 26 by validation.
pub fn letter(index: usize) -> char {
    char::from(b'a' + (index % MAX_CHOICES) as u8)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuiz {
    title: Spanned<String>,
    pass_percent: Option<Spanned<i64>>,
    #[serde(default)]
    questions: Vec<Spanned<RawQuestion>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    prompt: Spanned<String>,
    choices: Spanned<Vec<Spanned<String>>>,
    answer: Spanned<String>,
    explain: Option<Spanned<String>>,
}

/// Reads and validates a quiz file. A missing or unreadable file is an input error (66);
/// anything wrong with its content is a data error (65) with line and column.
pub fn load(path: &Path) -> Result<Quiz, QuizError> {
    let syntax = |line, column, message| QuizError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    let text = read_text(path, MAX_FILE_BYTES).map_err(|problem| match problem {
        ReadProblem::Io(source) => QuizError::Read {
            path: path.to_path_buf(),
            source,
        },
        ReadProblem::TooLarge => {
            syntax(1, 1, format!("file is larger than {MAX_FILE_BYTES} bytes"))
        }
        ReadProblem::Utf8 { line, column } => syntax(
            line,
            column,
            "not valid UTF-8 (TOML files are UTF-8)".into(),
        ),
    })?;
    parse(&text, path)
}

/// Parses and validates quiz text; `path` only names the source in error messages.
pub fn parse(text: &str, path: &Path) -> Result<Quiz, QuizError> {
    let at = |offset: usize, message: String| {
        let (line, column) = line_column(text, offset);
        QuizError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    };
    let raw: RawQuiz = toml::from_str(text)
        .map_err(|e| at(e.span().map_or(0, |s| s.start), e.message().to_owned()))?;

    let title = raw.title.get_ref().trim();
    if title.is_empty() {
        return Err(at(raw.title.span().start, "the title is empty".into()));
    }
    if has_control(title, &[]) {
        return Err(at(
            raw.title.span().start,
            "the title must be one line without control characters (it goes into a Subject)".into(),
        ));
    }
    let pass_percent = match &raw.pass_percent {
        None => DEFAULT_PASS_PERCENT,
        Some(p) => u8::try_from(*p.get_ref())
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| {
                at(
                    p.span().start,
                    format!("pass_percent is {}; it must be from 0 to 100", p.get_ref()),
                )
            })?,
    };
    if raw.questions.is_empty() {
        return Err(at(
            text.len(),
            "no questions: add at least one [[questions]] table".into(),
        ));
    }
    let questions = raw
        .questions
        .iter()
        .enumerate()
        .map(|(i, q)| question(q.get_ref(), i + 1, &at))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Quiz {
        title: title.to_owned(),
        pass_percent,
        questions,
    })
}

/// Validates one question; `number` is 1-based and appears in every message.
fn question(
    raw: &RawQuestion,
    number: usize,
    at: &dyn Fn(usize, String) -> QuizError,
) -> Result<Question, QuizError> {
    let prompt = raw.prompt.get_ref().trim();
    if prompt.is_empty() {
        return Err(at(
            raw.prompt.span().start,
            format!("question {number}: the prompt is empty"),
        ));
    }
    if has_control(prompt, &['\n', '\t']) {
        return Err(at(
            raw.prompt.span().start,
            format!("question {number}: the prompt holds a control character"),
        ));
    }
    let choices = raw.choices.get_ref();
    if choices.len() < 2 || choices.len() > MAX_CHOICES {
        return Err(at(
            raw.choices.span().start,
            format!(
                "question {number}: {} choices; a question needs 2 to {MAX_CHOICES}",
                choices.len()
            ),
        ));
    }
    let mut seen: Vec<String> = Vec::with_capacity(choices.len());
    for (i, choice) in choices.iter().enumerate() {
        let text = choice.get_ref().trim();
        let duplicate = seen
            .iter()
            .position(|s| s.to_lowercase() == text.to_lowercase());
        let problem = if text.is_empty() {
            Some(format!("question {number}: choice {} is empty", letter(i)))
        } else if has_control(text, &[]) {
            Some(format!(
                "question {number}: choice {} must be one line without control characters",
                letter(i)
            ))
        } else {
            duplicate.map(|j| {
                format!(
                    "question {number}: choice {} repeats choice {} ({text:?})",
                    letter(i),
                    letter(j)
                )
            })
        };
        if let Some(message) = problem {
            return Err(at(choice.span().start, message));
        }
        seen.push(text.to_owned());
    }
    let given = raw.answer.get_ref().trim();
    let answer = single_letter(given)
        .filter(|&i| i < seen.len())
        .ok_or_else(|| {
            at(
                raw.answer.span().start,
                format!(
                    "question {number}: answer {given:?} must be a letter from a to {}",
                    letter(seen.len() - 1)
                ),
            )
        })?;
    let explain = match &raw.explain {
        None => None,
        Some(e) if has_control(e.get_ref(), &['\n', '\t']) => {
            return Err(at(
                e.span().start,
                format!("question {number}: the explanation holds a control character"),
            ));
        }
        Some(e) => Some(e.get_ref().trim().to_owned()).filter(|e| !e.is_empty()),
    };
    Ok(Question {
        prompt: prompt.to_owned(),
        choices: seen,
        answer,
        explain,
    })
}

/// `"c"` or `"C"` → 2; anything but one ASCII letter → None.
pub(crate) fn single_letter(s: &str) -> Option<usize> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => {
            Some(usize::from(c.to_ascii_lowercase() as u8 - b'a'))
        }
        _ => None,
    }
}

/// The built-in test on SMTP and email, used when no `--quiz` is given.
const SAMPLE: &str = include_str!("sample.toml");

/// The built-in sample test. It goes through the same loader as any file; the unit test
/// `sample_loads` guarantees it is valid, so this cannot fail in a released binary.
pub fn sample() -> Quiz {
    parse(SAMPLE, Path::new("<built-in sample>")).expect("the built-in sample quiz is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, usize, String) {
        match parse(text, Path::new("q.toml")) {
            Err(QuizError::Syntax {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    const GOOD: &str = r#"title = "SMTP fundamentals"
pass_percent = 60          # optional, default 50

[[questions]]
prompt = "Which port is mail submission with STARTTLS?"
choices = ["25", "465", "587", "2525"]
answer = "c"               # the letter of the correct choice
explain = "RFC 6409 submission; 465 is implicit TLS (RFC 8314)."   # optional
"#;

    #[test]
    fn the_cli_md_example_loads() {
        let quiz = parse(GOOD, Path::new("q.toml")).unwrap();
        assert_eq!(quiz.title, "SMTP fundamentals");
        assert_eq!(quiz.pass_percent, 60);
        assert_eq!(quiz.questions.len(), 1);
        let q = &quiz.questions[0];
        assert_eq!(q.choices, ["25", "465", "587", "2525"]);
        assert_eq!(q.answer, 2);
        assert_eq!(
            q.explain.as_deref(),
            Some("RFC 6409 submission; 465 is implicit TLS (RFC 8314).")
        );
    }

    #[test]
    fn defaults_and_uppercase_answer() {
        let text = "title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [\"x\", \"y\"]\nanswer = \"B\"\n";
        let quiz = parse(text, Path::new("q.toml")).unwrap();
        assert_eq!(quiz.pass_percent, DEFAULT_PASS_PERCENT);
        assert_eq!(quiz.questions[0].answer, 1);
        assert_eq!(quiz.questions[0].explain, None);
    }

    #[test]
    fn sample_loads() {
        let quiz = sample();
        assert!(quiz.questions.len() >= 10);
        assert!(quiz.questions.iter().all(|q| q.explain.is_some()));
        // The correct letters are spread out: answering the same letter every time fails.
        for choice in 0..4 {
            let same = quiz.questions.iter().filter(|q| q.answer == choice).count();
            assert!(same * 100 < usize::from(quiz.pass_percent) * quiz.questions.len());
        }
    }

    #[test]
    fn toml_syntax_error_has_line_and_column() {
        let (line, column, message) =
            err("title = \"T\"\n\n[[questions]]\nprompt = \"p\nchoices = []\n");
        assert_eq!(line, 4);
        assert!(column >= 10, "column {column}");
        assert!(!message.is_empty());
        let e = parse("x = = 1", Path::new("dir/q.toml")).unwrap_err();
        assert!(e.to_string().starts_with("dir/q.toml:1:"), "{e}");
        assert_eq!(e.class(), super::super::ErrorClass::Data);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let (line, _, message) = err("title = \"T\"\npass_precent = 60\n");
        assert_eq!(line, 2);
        assert!(message.contains("pass_precent"), "{message}");
        let text = "title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [\"x\", \"y\"]\nanswer = \"a\"\nexplanation = \"typo\"\n";
        let (line, _, message) = err(text);
        assert_eq!(line, 6);
        assert!(message.contains("explanation"), "{message}");
    }

    #[test]
    fn answer_out_of_range_points_at_the_answer() {
        let text = "title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [\"x\", \"y\"]\nanswer = \"a\"\n\n[[questions]]\nprompt = \"q\"\nchoices = [\"x\", \"y\", \"z\"]\nanswer = \"d\"\n";
        let (line, column, message) = err(text);
        assert_eq!((line, column), (10, 10));
        assert!(message.starts_with("question 2:"), "{message}");
        assert!(message.contains("a to c"), "{message}");
    }

    #[test]
    fn answer_must_be_one_letter() {
        for bad in ["\"ab\"", "\"\"", "\"1\"", "\"é\""] {
            let text = format!("title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [\"x\", \"y\"]\nanswer = {bad}\n");
            let (line, _, message) = err(&text);
            assert_eq!(line, 5, "{bad}");
            assert!(message.contains("question 1"), "{message}");
        }
        let text =
            "title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [\"x\", \"y\"]\nanswer = 1\n";
        assert_eq!(err(text).0, 5);
    }

    #[test]
    fn choice_counts_are_checked() {
        let one =
            "title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [\"x\"]\nanswer = \"a\"\n";
        let (line, column, message) = err(one);
        assert_eq!((line, column), (4, 11));
        assert!(message.contains("1 choices"), "{message}");
        let many: Vec<String> = (0..27).map(|i| format!("\"c{i}\"")).collect();
        let text = format!(
            "title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [{}]\nanswer = \"a\"\n",
            many.join(", ")
        );
        assert!(err(&text).2.contains("27 choices"));
        let max: Vec<String> = (0..26).map(|i| format!("\"c{i}\"")).collect();
        let text = format!(
            "title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [{}]\nanswer = \"z\"\n",
            max.join(", ")
        );
        assert_eq!(
            parse(&text, Path::new("q")).unwrap().questions[0].answer,
            25
        );
    }

    #[test]
    fn duplicate_and_empty_choices_point_at_the_choice() {
        let text = "title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [\"SPF\", \"DKIM\", \" spf \"]\nanswer = \"a\"\n";
        let (line, column, message) = err(text);
        assert_eq!((line, column), (4, 27));
        assert!(message.contains("choice c repeats choice a"), "{message}");
        let text = "title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [\"x\", \"  \"]\nanswer = \"a\"\n";
        assert!(err(text).2.contains("choice b is empty"));
        let text = "title = \"T\"\n[[questions]]\nprompt = \"p\"\nchoices = [\"x\", \"two\\nlines\"]\nanswer = \"a\"\n";
        assert!(err(text).2.contains("choice b must be one line"));
    }

    #[test]
    fn no_questions_and_bad_pass_percent() {
        let (_, _, message) = err("title = \"T\"\n");
        assert!(message.starts_with("no questions"), "{message}");
        for bad in ["101", "-1", "300"] {
            let text = format!("title = \"T\"\npass_percent = {bad}\n[[questions]]\nprompt = \"p\"\nchoices = [\"x\", \"y\"]\nanswer = \"a\"\n");
            let (line, column, message) = err(&text);
            assert_eq!((line, column), (2, 16), "{bad}");
            assert!(message.contains("0 to 100"), "{message}");
        }
        let text = "title = \"T\"\npass_percent = 100\n[[questions]]\nprompt = \"p\"\nchoices = [\"x\", \"y\"]\nanswer = \"a\"\n";
        assert_eq!(parse(text, Path::new("q")).unwrap().pass_percent, 100);
    }

    #[test]
    fn title_and_prompt_are_checked() {
        assert!(err("title = \" \"\n").2.contains("title is empty"));
        assert!(err("title = \"a\\r\\nBcc: x\"\n").2.contains("one line"));
        let text = "title = \"T\"\n[[questions]]\nprompt = \"\\u001b[2J\"\nchoices = [\"x\", \"y\"]\nanswer = \"a\"\n";
        let (line, _, message) = err(text);
        assert_eq!(line, 3);
        assert!(message.contains("control character"), "{message}");
        let (_, _, message) =
            err("[[questions]]\nprompt = \"p\"\nchoices = [\"x\", \"y\"]\nanswer = \"a\"\n");
        assert!(message.contains("title"), "{message}");
    }

    #[test]
    fn multiline_prompt_is_kept() {
        let text = "title = \"T\"\n[[questions]]\nprompt = \"\"\"\nWhat does\n  this do?\"\"\"\nchoices = [\"x\", \"y\"]\nanswer = \"a\"\nexplain = \"\"\n";
        let quiz = parse(text, Path::new("q")).unwrap();
        assert_eq!(quiz.questions[0].prompt, "What does\n  this do?");
        assert_eq!(quiz.questions[0].explain, None);
    }

    #[test]
    fn load_distinguishes_missing_from_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.toml");
        let e = load(&missing).unwrap_err();
        assert_eq!(e.class(), super::super::ErrorClass::Input);
        assert!(e.to_string().contains("none.toml"), "{e}");

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, b"title = \"T\"\n\xff\n").unwrap();
        let e = load(&bad).unwrap_err();
        assert_eq!(e.class(), super::super::ErrorClass::Data);
        assert!(
            e.to_string()
                .ends_with(":2:1: not valid UTF-8 (TOML files are UTF-8)"),
            "{e}"
        );

        let good = dir.path().join("good.toml");
        std::fs::write(&good, GOOD).unwrap();
        assert_eq!(load(&good).unwrap().questions.len(), 1);

        let e = load(dir.path()).unwrap_err();
        assert_eq!(e.class(), super::super::ErrorClass::Input);
    }

    proptest::proptest! {
        /// Whatever the bytes, parsing answers with a quiz or a located error, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
            if let Err(e) = parse(&text, Path::new("q")) {
                let located = matches!(e, QuizError::Syntax { line, column, .. } if line >= 1 && column >= 1);
                proptest::prop_assert!(located, "{e:?}");
            }
        }

        /// Mutations of a valid file: errors still carry a position inside the text.
        #[test]
        fn mutated_files_report_positions_inside_the_text(cut in 0usize..GOOD.len(), insert in "[\\[\\]\"=a-z\n ]{0,5}") {
            let mut text = GOOD.to_owned();
            let at = (0..=cut).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            text.insert_str(at, &insert);
            if let Err(QuizError::Syntax { line, .. }) = parse(&text, Path::new("q")) {
                proptest::prop_assert!(line <= text.lines().count() + 1);
            }
        }
    }

    #[test]
    fn letters() {
        assert_eq!(letter(0), 'a');
        assert_eq!(letter(25), 'z');
        assert_eq!(single_letter("C"), Some(2));
        assert_eq!(single_letter("cc"), None);
        assert_eq!(single_letter(""), None);
    }
}
