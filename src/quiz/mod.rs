//! Multiple-choice tests: the quiz file format, the built-in sample test, the terminal runner,
//! scoring, the content of the results message (text, HTML, CSV), rosters and the class summary.
//!
//! Nothing here sends mail or builds MIME: this module produces strings and data structures that
//! the integrator puts into messages (`message/`). CSV output and roster parsing follow RFC 4180;
//! the HTML is a complete document suitable for a `text/html` part (RFC 2046 §5.1.4 alternative).
//!
//! Error classes follow sysexits.h as the command-line contract uses them: a malformed quiz,
//! roster or answer stream is *data* (65), a missing file or an early end of standard input is
//! *input* (66), a bad `--answers` or `--name` value is *usage* (64).

mod answers;
mod format;
mod progress;
mod results;
mod roster;
mod runner;
mod score;
mod summary;
mod text;
mod wrap;

use std::path::PathBuf;

pub use answers::{parse_answer_list, AnswerListError};
pub use format::{letter, load, parse, sample, Question, Quiz, DEFAULT_PASS_PERCENT};
pub use progress::Progress;
pub use results::{results_csv, results_html, results_text, subject, QuizReport};
pub use roster::{load_roster, parse_roster, RosterEntry};
pub use runner::{confirm, run, Attempt, RunOptions, DEFAULT_NAME};
pub use score::Score;
pub use summary::{
    summarise, summary_csv, summary_html, summary_subject, summary_text, ClassSummary, QuestionStat,
};

/// Which sysexits.h class an error belongs to; `error::Error` turns it into the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// EX_USAGE (64): a command-line value is wrong (`--answers`, `--name`).
    Usage,
    /// EX_DATAERR (65): a quiz file, roster or answer line is malformed.
    Data,
    /// EX_NOINPUT (66): a file is missing or unreadable, or standard input ended too early.
    Input,
}

/// Everything that can go wrong in the quiz layer.
#[derive(Debug, thiserror::Error)]
pub enum QuizError {
    /// The quiz or roster file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The quiz file is malformed; `line` and `column` are 1-based, columns count characters.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A roster row (or the header) is malformed; `line` is the 1-based line where the row starts.
    #[error("{}: line {line}: {message}", path.display())]
    Roster {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The `--answers` value does not fit the quiz.
    #[error("--answers: {0}")]
    Answers(#[source] AnswerListError),
    /// The `--name` value cannot be used (empty, or control characters that would break a header).
    #[error("--name: {0}")]
    Name(String),
    /// Standard input ended while answers were still expected.
    #[error("standard input ended after {answered} of {total} answers")]
    InputEnded { answered: usize, total: usize },
    /// Standard input ended at the name prompt.
    #[error("standard input ended before a name was given")]
    NameEnded,
    /// A line read from a pipe is not an answer letter; a pipe is never asked twice.
    #[error(
        "answer for question {question} of {total}: {input:?} is not a letter from a to {last}"
    )]
    InvalidAnswer {
        question: usize,
        total: usize,
        input: String,
        last: char,
    },
    /// Reading standard input or writing to the terminal failed.
    #[error("terminal input/output failed: {0}")]
    Io(#[source] std::io::Error),
}

impl QuizError {
    /// The sysexits.h class of this error (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        match self {
            QuizError::Answers(_) | QuizError::Name(_) => ErrorClass::Usage,
            QuizError::Syntax { .. }
            | QuizError::Roster { .. }
            | QuizError::InvalidAnswer { .. } => ErrorClass::Data,
            QuizError::Read { .. }
            | QuizError::InputEnded { .. }
            | QuizError::NameEnded
            | QuizError::Io(_) => ErrorClass::Input,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_the_contract() {
        let read = QuizError::Read {
            path: "q.toml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(read.class(), ErrorClass::Input);
        let syntax = QuizError::Syntax {
            path: "q.toml".into(),
            line: 3,
            column: 7,
            message: "bad".into(),
        };
        assert_eq!(syntax.class(), ErrorClass::Data);
        assert_eq!(syntax.to_string(), "q.toml:3:7: bad");
        let ended = QuizError::InputEnded {
            answered: 2,
            total: 10,
        };
        assert_eq!(ended.class(), ErrorClass::Input);
        assert_eq!(
            ended.to_string(),
            "standard input ended after 2 of 10 answers"
        );
        let usage = QuizError::Answers(AnswerListError::Count {
            given: 2,
            expected: 3,
        });
        assert_eq!(usage.class(), ErrorClass::Usage);
        assert_eq!(QuizError::Name("x".into()).class(), ErrorClass::Usage);
        let roster = QuizError::Roster {
            path: "r.csv".into(),
            line: 4,
            message: "bad".into(),
        };
        assert_eq!(roster.class(), ErrorClass::Data);
        assert_eq!(roster.to_string(), "r.csv: line 4: bad");
    }
}
