//! Feeds arbitrary text to the roster parser (`quiz::parse_roster`) against a fixed
//! three-question quiz: it must never panic; an error must name a real line; every row it
//! accepts must be a valid, scored attempt, and the class summary built from the rows must be
//! producible without a panic, with a one-line Subject.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quizmail::quiz::{self, Quiz, QuizError};

const QUIZ: &str = r#"title = "Fuzz"
[[questions]]
prompt = "One?"
choices = ["a", "b", "c"]
answer = "a"
[[questions]]
prompt = "Two?"
choices = ["x", "y"]
answer = "b"
[[questions]]
prompt = "Three?"
choices = ["p", "q", "r", "s"]
answer = "d"
"#;

fn fixed_quiz() -> &'static Quiz {
    static Q: OnceLock<Quiz> = OnceLock::new();
    Q.get_or_init(|| quiz::parse(QUIZ, Path::new("fuzz.toml")).expect("the fixed quiz is valid"))
}

fuzz_target!(|data: &[u8]| {
    let quiz = fixed_quiz();
    let text = String::from_utf8_lossy(data);
    let lines = text.split('\n').count();
    match quiz::parse_roster(&text, Path::new("fuzz.csv"), quiz) {
        Ok(entries) => {
            assert!(!entries.is_empty());
            let mut previous = 1;
            for e in &entries {
                assert!(e.line > previous && e.line <= lines, "line {}", e.line);
                previous = e.line;
                let name = e.attempt.name.as_str();
                assert!(!name.is_empty() && name == name.trim());
                assert!(!name.chars().any(char::is_control));
                assert_eq!(e.attempt.answers.len(), quiz.questions.len());
                for (a, q) in e.attempt.answers.iter().zip(&quiz.questions) {
                    assert!(*a < q.choices.len());
                }
                assert!(e.attempt.score.score <= e.attempt.score.total);
            }
            let summary = quiz::summarise(quiz, &entries);
            assert!(!quiz::summary_subject(quiz, &summary).contains(['\r', '\n']));
            let _ = quiz::summary_text(quiz, &summary, &entries);
            let _ = quiz::summary_html(quiz, &summary, &entries);
            let _ = quiz::summary_csv(quiz, &entries);
        }
        Err(QuizError::Roster { line, .. }) => {
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
        }
        Err(other) => panic!("parse_roster gave a non-roster error: {other:?}"),
    }
});
