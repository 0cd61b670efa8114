//! Feeds arbitrary text to the quiz file parser (`quiz::parse`): it must never panic; an error
//! must point at a real line and column; a quiz it accepts must keep the invariants the runner
//! and the results message rely on (cli.md "Quiz file"), and every results text built from it
//! must be producible without a panic, with a one-line Subject.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quizmail::quiz::{self, Attempt, QuizError};

fuzz_target!(|data: &[u8]| {
    // Arbitrary bytes reach the parser as the loader would hand them over: UTF-8 only.
    let text = String::from_utf8_lossy(data);
    match quiz::parse(&text, Path::new("fuzz.toml")) {
        Ok(quiz) => {
            let title = quiz.title.as_str();
            assert!(!title.trim().is_empty() && !title.chars().any(char::is_control));
            assert!(quiz.pass_percent <= 100);
            assert!(!quiz.questions.is_empty());
            for q in &quiz.questions {
                assert!((2..=26).contains(&q.choices.len()));
                assert!(q.answer < q.choices.len());
                assert!(!q.prompt.trim().is_empty());
                assert!(q.choices.iter().all(|c| !c.contains(['\r', '\n'])));
            }
            // One wrong answer per question (the next choice round), so the review is full.
            let answers = quiz
                .questions
                .iter()
                .map(|q| (q.answer + 1) % q.choices.len())
                .collect();
            let attempt = Attempt::new(&quiz, "Ada".into(), answers);
            assert_eq!(attempt.score.score, 0);
            let subject = quiz::subject(&quiz, &attempt.name, &attempt.score);
            assert!(!subject.contains(['\r', '\n']));
            let _ = quiz::results_text(&quiz, &attempt);
            let _ = quiz::results_html(&quiz, &attempt);
            let _ = quiz::results_csv(&quiz, &attempt);
        }
        Err(QuizError::Syntax { line, column, .. }) => {
            let lines = text.split('\n').count();
            assert!(line >= 1 && line <= lines, "line {line} of {lines}");
            assert!(column >= 1);
        }
        Err(other) => panic!("parse gave a non-syntax error: {other:?}"),
    }
});
