//! The terminal runner: shows the quiz, collects answers, shows the score and a review.
//!
//! All I/O goes through the `BufRead`/`Write` the caller passes, so tests drive it with
//! `Cursor`s. Answers come from `--answers` when given, else one per line from the input.
//!
//! Decisions where the contract is silent:
//! - No `--name` and input is not a terminal: the name is [`DEFAULT_NAME`]; the input holds only
//!   answers, so a name line there would be ambiguous (`printf 'b\na\n' | quizmail ...`).
//! - A terminal that gives an invalid answer is asked again (every retry consumes a line, so it
//!   cannot spin; end of input stops it). A pipe is never asked again: the first line that is
//!   not a letter fails with a data error naming the question. Blank lines on a pipe are
//!   skipped, so a trailing empty line or CRLF input does no harm.
//! - Lines are read with a length cap, so a pipe without newlines cannot exhaust memory.
//! - Question, choice, review and explanation text is wrapped to [`RunOptions::width`] with a
//!   hanging indent (`wrap`); the title, score and prompts are short and left as they are.

use std::io::{self, BufRead, Write};

use super::answers::parse_answer_list;
use super::format::{letter, single_letter, Question, Quiz};
use super::score::Score;
use super::text::has_control;
use super::wrap::{hanging, wrap_text};
use super::QuizError;

/// The name used when none is given and there is no terminal to ask.
pub const DEFAULT_NAME: &str = "Anonymous";

/// Only this many bytes of an input line are kept; the rest of the line is read and dropped.
const MAX_LINE: usize = 1024;

/// Confirmation prompts give up (answer "no") after this many unrecognised replies.
const CONFIRM_TRIES: usize = 3;

/// How the runner gets its name and answers and how it draws.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--name`; asked for on a terminal when `None`.
    pub name: Option<String>,
    /// `--answers` tokens; each token may itself be comma-separated (`["a,c", "b"]` is fine).
    pub answers: Option<Vec<String>>,
    /// Standard input is a terminal: prompt for the name and ask again after a bad answer.
    pub interactive: bool,
    /// ANSI colour; the caller sets it only on a terminal and never with NO_COLOR.
    pub color: bool,
    /// The terminal's width in columns, to wrap text to; `None` (a pipe, a file) wraps nothing,
    /// so a script reads each question on one line.
    pub width: Option<usize>,
}

/// One completed attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub name: String,
    /// Choice index per question, in quiz order.
    pub answers: Vec<usize>,
    pub score: Score,
}

impl Attempt {
    /// Scores `answers` (one valid choice index per question) for `name`.
    pub fn new(quiz: &Quiz, name: String, answers: Vec<usize>) -> Attempt {
        let score = Score::of(quiz, &answers);
        Attempt {
            name,
            answers,
            score,
        }
    }
}

/// Runs the quiz: title, name, every question, then the score and a review of wrong answers.
///
/// Errors: a bad `--answers` or `--name` is usage (64); a non-letter line on a pipe is data (65);
/// input that ends early, or failing terminal I/O, is input (66).
pub fn run(
    quiz: &Quiz,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    opts: RunOptions,
) -> Result<Attempt, QuizError> {
    let paint = Paint(opts.color);
    let width = opts.width;
    // Validate flags before drawing anything, so a usage error is not buried under a quiz.
    let given = match &opts.answers {
        Some(tokens) => Some(
            parse_answer_list(tokens.iter().flat_map(|t| t.split(',')), quiz)
                .map_err(QuizError::Answers)?,
        ),
        None => None,
    };
    let flag_name = match opts.name {
        Some(name) => Some(valid_name(&name).ok_or_else(|| {
            QuizError::Name(
                "the name must not be empty or hold control characters (it goes into a Subject)"
                    .into(),
            )
        })?),
        None => None,
    };

    writeln!(out, "{}", paint.bold(&quiz.title)).map_err(QuizError::Io)?;
    let needed = format!(
        "{} questions; {}% needed to pass.",
        quiz.questions.len(),
        quiz.pass_percent
    );
    write_lines(out, &hanging("", &needed, width)).map_err(QuizError::Io)?;
    let name = match flag_name {
        Some(name) => name,
        None if opts.interactive => ask_name(input, out)?,
        None => DEFAULT_NAME.to_owned(),
    };

    let answers = match given {
        Some(answers) => answers,
        None => ask_all(quiz, input, out, opts.interactive, width)?,
    };
    let attempt = Attempt::new(quiz, name, answers);
    review(quiz, &attempt, out, paint, width).map_err(QuizError::Io)?;
    Ok(attempt)
}

/// Asks a yes/no question with "yes" as the default: an empty reply means yes. End of input
/// (or a failing terminal) means no, so nothing is sent on a closed terminal.
pub fn confirm(prompt: &str, input: &mut dyn BufRead, out: &mut dyn Write) -> bool {
    for _ in 0..CONFIRM_TRIES {
        if write!(out, "{prompt} [Y/n] ")
            .and_then(|()| out.flush())
            .is_err()
        {
            return false;
        }
        let line = match read_line(input) {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => {
                // Ending the prompt line keeps the shell prompt on its own line; the answer is
                // "no" whether or not that write works.
                let _ = writeln!(out);
                return false;
            }
        };
        match line.trim().to_ascii_lowercase().as_str() {
            "" | "y" | "yes" => return true,
            "n" | "no" => return false,
            _ => {
                if writeln!(out, "Please answer y or n.").is_err() {
                    return false;
                }
            }
        }
    }
    false
}

/// A name is usable when, trimmed, it is non-empty and free of control characters.
fn valid_name(name: &str) -> Option<String> {
    let name = name.trim();
    (!name.is_empty() && !has_control(name, &[])).then(|| name.to_owned())
}

fn ask_name(input: &mut dyn BufRead, out: &mut dyn Write) -> Result<String, QuizError> {
    loop {
        write!(out, "Your name: ").map_err(QuizError::Io)?;
        out.flush().map_err(QuizError::Io)?;
        let line = read_line(input)
            .map_err(QuizError::Io)?
            .ok_or_else(|| ended(out, QuizError::NameEnded))?;
        if let Some(name) = valid_name(&line) {
            return Ok(name);
        }
        writeln!(out, "Please type your name.").map_err(QuizError::Io)?;
    }
}

fn ask_all(
    quiz: &Quiz,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    interactive: bool,
    width: Option<usize>,
) -> Result<Vec<usize>, QuizError> {
    let total = quiz.questions.len();
    let mut answers = Vec::with_capacity(total);
    for (i, question) in quiz.questions.iter().enumerate() {
        show_question(question, i + 1, total, out, width).map_err(QuizError::Io)?;
        answers.push(ask_one(question, i, total, input, out, interactive)?);
    }
    Ok(answers)
}

fn show_question(
    question: &Question,
    number: usize,
    total: usize,
    out: &mut dyn Write,
    width: Option<usize>,
) -> io::Result<()> {
    writeln!(out)?;
    write_lines(
        out,
        &hanging(&format!("{number}/{total} "), &question.prompt, width),
    )?;
    for (i, choice) in question.choices.iter().enumerate() {
        write_lines(out, &hanging(&format!("  {}) ", letter(i)), choice, width))?;
    }
    Ok(())
}

fn write_lines(out: &mut dyn Write, lines: &[String]) -> io::Result<()> {
    lines.iter().try_for_each(|line| writeln!(out, "{line}"))
}

/// Like [`hanging`], with the text (not the prefix) painted, line by line so that a wrapped
/// line never carries colour into the margin.
fn write_painted(
    out: &mut dyn Write,
    prefix: &str,
    text: &str,
    width: Option<usize>,
    paint: impl Fn(&str) -> String,
) -> io::Result<()> {
    let indent = textwrap::core::display_width(prefix);
    for (i, piece) in wrap_text(text, indent, width).iter().enumerate() {
        let start = if i == 0 {
            prefix.to_owned()
        } else {
            " ".repeat(indent)
        };
        writeln!(out, "{start}{}", paint(piece))?;
    }
    Ok(())
}

/// Reads one answer for question `index` (0-based).
fn ask_one(
    question: &Question,
    index: usize,
    total: usize,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    interactive: bool,
) -> Result<usize, QuizError> {
    let last = letter(question.choices.len() - 1);
    loop {
        write!(out, "Your answer (a-{last}): ").map_err(QuizError::Io)?;
        out.flush().map_err(QuizError::Io)?;
        let line = read_line(input).map_err(QuizError::Io)?.ok_or_else(|| {
            ended(
                out,
                QuizError::InputEnded {
                    answered: index,
                    total,
                },
            )
        })?;
        let trimmed = line.trim();
        let choice = single_letter(trimmed).filter(|&c| c < question.choices.len());
        match choice {
            Some(choice) => {
                if !interactive {
                    // Nothing was echoed on a pipe; show what was read so the transcript reads.
                    writeln!(out, "{}", letter(choice)).map_err(QuizError::Io)?;
                }
                return Ok(choice);
            }
            None if interactive => {
                writeln!(out, "Please type one letter from a to {last}.").map_err(QuizError::Io)?;
            }
            None if trimmed.is_empty() => {}
            None => {
                return Err(QuizError::InvalidAnswer {
                    question: index + 1,
                    total,
                    input: trimmed.chars().take(40).collect(),
                    last,
                })
            }
        }
    }
}

/// Ends the open prompt line when input runs out, so the error printed next (on stderr, the
/// same terminal) stands on its own line instead of after "Your answer (a-c): ". A failing
/// write changes nothing: the input has ended either way.
fn ended(out: &mut dyn Write, error: QuizError) -> QuizError {
    let _ = writeln!(out);
    error
}

/// The score line, then every wrong answer with the correct one and the explanation.
fn review(
    quiz: &Quiz,
    attempt: &Attempt,
    out: &mut dyn Write,
    paint: Paint,
    width: Option<usize>,
) -> io::Result<()> {
    let score = &attempt.score;
    let verdict = if score.passed {
        paint.green("passed")
    } else {
        paint.red("failed")
    };
    writeln!(out)?;
    writeln!(
        out,
        "{}: {} — {verdict} ({}% needed)",
        attempt.name, score, quiz.pass_percent
    )?;
    let wrong: Vec<usize> = (0..quiz.questions.len())
        .filter(|&i| attempt.answers.get(i) != Some(&quiz.questions[i].answer))
        .collect();
    if wrong.is_empty() {
        writeln!(out, "All answers correct.")?;
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "Review of the {} wrong answer(s):", wrong.len())?;
    let total = quiz.questions.len();
    for i in wrong {
        let q = &quiz.questions[i];
        writeln!(out)?;
        // The mark is painted after wrapping: colour codes take no columns.
        let mut lines = hanging(&format!("✗ {}/{total} ", i + 1), &q.prompt, width);
        if let Some(first) = lines.first_mut() {
            *first = first.replacen('✗', &paint.red("✗"), 1);
        }
        write_lines(out, &lines)?;
        if let Some(&given) = attempt.answers.get(i) {
            let yours = format!("{}) {}", letter(given), q.choices[given]);
            write_lines(out, &hanging("    your answer: ", &yours, width))?;
        }
        let correct = format!("{}) {}", letter(q.answer), q.choices[q.answer]);
        write_painted(out, "    correct:     ", &correct, width, |s| {
            paint.green(s)
        })?;
        if let Some(explain) = &q.explain {
            write_lines(out, &hanging("    ", explain, width))?;
        }
    }
    Ok(())
}

/// Reads one line, keeping at most [`MAX_LINE`] bytes of it; `None` at end of input. CRLF and
/// LF endings are removed; invalid UTF-8 is replaced rather than failing the read.
fn read_line(input: &mut dyn BufRead) -> io::Result<Option<String>> {
    let mut kept = Vec::new();
    let mut read_any = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        read_any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        let room = MAX_LINE.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = newline.map_or(buf.len(), |i| i + 1);
        input.consume(used);
        if newline.is_some() {
            break;
        }
    }
    if !read_any {
        return Ok(None);
    }
    if kept.last() == Some(&b'\r') {
        kept.pop();
    }
    Ok(Some(String::from_utf8_lossy(&kept).into_owned()))
}

/// ANSI SGR colouring (ECMA-48 §8.3.117), switched off as a whole when colour is not wanted.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn wrap(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn bold(self, s: &str) -> String {
        self.wrap("1", s)
    }
    fn green(self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn red(self, s: &str) -> String {
        self.wrap("31", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quiz::{AnswerListError, ErrorClass};
    use std::io::Cursor;

    fn quiz() -> Quiz {
        let q = |prompt: &str, choices: &[&str], answer: usize| Question {
            prompt: prompt.into(),
            choices: choices.iter().map(|c| (*c).into()).collect(),
            answer,
            explain: Some(format!("because {prompt}")),
        };
        Quiz {
            title: "Mail".into(),
            pass_percent: 60,
            questions: vec![
                q("Port?", &["25", "465", "587"], 2),
                q("Code?", &["250", "354"], 1),
                q("Dot?", &["stuff", "drop", "keep", "fold"], 0),
            ],
        }
    }

    fn drive(input: &str, opts: RunOptions) -> (Result<Attempt, QuizError>, String) {
        let mut out = Vec::new();
        let result = run(&quiz(), &mut Cursor::new(input.as_bytes()), &mut out, opts);
        (result, String::from_utf8(out).unwrap())
    }

    fn piped() -> RunOptions {
        RunOptions {
            name: Some("Ada".into()),
            ..RunOptions::default()
        }
    }

    fn terminal() -> RunOptions {
        RunOptions {
            interactive: true,
            ..RunOptions::default()
        }
    }

    #[test]
    fn piped_answers_are_scored_and_reviewed() {
        let (result, out) = drive("c\n A \nA\n", piped());
        let attempt = result.unwrap();
        assert_eq!(attempt.name, "Ada");
        assert_eq!(attempt.answers, [2, 0, 0]);
        assert_eq!((attempt.score.score, attempt.score.total), (2, 3));
        assert!(attempt.score.passed);
        assert!(
            out.starts_with("Mail\n3 questions; 60% needed to pass.\n"),
            "{out}"
        );
        assert!(out.contains("\n1/3 Port?\n  a) 25\n  b) 465\n  c) 587\nYour answer (a-c): c\n"));
        assert!(out.contains("2/3 Code?"));
        assert!(
            out.contains("Ada: 2/3 (66.7%) — passed (60% needed)"),
            "{out}"
        );
        assert!(out.contains("Review of the 1 wrong answer(s):"));
        assert!(out.contains(
            "✗ 2/3 Code?\n    your answer: a) 250\n    correct:     b) 354\n    because Code?\n"
        ));
        assert!(!out.contains("✗ 1/3"));
        assert!(!out.contains('\x1b'), "no colour unless asked");
    }

    #[test]
    fn all_correct_says_so() {
        let (result, out) = drive("c\r\nb\r\na\r\n", piped());
        assert_eq!(result.unwrap().score.score, 3);
        assert!(out.contains("All answers correct."));
    }

    #[test]
    fn terminal_asks_again_after_bad_input() {
        let (result, out) = drive("Ada\n\nz\nc\nmaybe\nb\na\n", terminal());
        let attempt = result.unwrap();
        assert_eq!(attempt.answers, [2, 1, 0]);
        assert_eq!(attempt.name, "Ada");
        assert_eq!(
            out.matches("Please type one letter from a to c.").count(),
            2
        );
        assert_eq!(
            out.matches("Please type one letter from a to b.").count(),
            1
        );
        assert_eq!(out.matches("Your answer (a-c): ").count(), 3);
    }

    #[test]
    fn pipe_fails_on_the_first_bad_line() {
        let (result, _) = drive("c\n\nmaybe\nb\na\n", piped());
        let e = result.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Data);
        assert_eq!(
            e.to_string(),
            "answer for question 2 of 3: \"maybe\" is not a letter from a to b"
        );
        // A letter beyond the choices of that question is just as invalid.
        let (result, _) = drive("d\n", piped());
        assert!(matches!(
            result,
            Err(QuizError::InvalidAnswer { question: 1, .. })
        ));
    }

    #[test]
    fn end_of_input_mid_quiz_is_an_input_error() {
        let (result, out) = drive("c\nb", piped());
        let e = result.unwrap_err();
        assert_eq!(e.to_string(), "standard input ended after 2 of 3 answers");
        assert_eq!(e.class(), ErrorClass::Input);
        assert!(out.contains("3/3 Dot?"));
        assert!(out.ends_with("Your answer (a-d): \n"), "{out:?}");
        let (result, _) = drive("", piped());
        assert!(matches!(
            result,
            Err(QuizError::InputEnded {
                answered: 0,
                total: 3
            })
        ));
        let (result, _) = drive("\n\n", piped());
        assert!(matches!(
            result,
            Err(QuizError::InputEnded { answered: 0, .. })
        ));
    }

    #[test]
    fn answers_flag_skips_the_questions() {
        let opts = RunOptions {
            answers: Some(vec!["c,a".into(), "B".into()]),
            ..piped()
        };
        let (result, out) = drive("", opts);
        let attempt = result.unwrap();
        assert_eq!(attempt.answers, [2, 0, 1]);
        assert!(!out.contains("Your answer"));
        assert!(out.contains("✗ 2/3 Code?"));
        assert!(out.contains("✗ 3/3 Dot?"));
    }

    #[test]
    fn answers_flag_is_validated_before_anything_is_drawn() {
        let opts = |answers: &str| RunOptions {
            answers: Some(vec![answers.into()]),
            ..piped()
        };
        let (result, out) = drive("", opts("c,b"));
        let e = result.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Usage);
        assert_eq!(
            e.to_string(),
            "--answers: 2 answers given, but the quiz has 3 questions"
        );
        assert!(out.is_empty());
        let (result, _) = drive("", opts("c,c,a"));
        assert!(matches!(
            result,
            Err(QuizError::Answers(AnswerListError::Letter {
                position: 2,
                ..
            }))
        ));
        let (result, _) = drive("", opts("c,,a"));
        assert!(matches!(
            result,
            Err(QuizError::Answers(AnswerListError::Empty { position: 2 }))
        ));
    }

    #[test]
    fn name_prompt_on_a_terminal_only() {
        let opts = RunOptions {
            answers: Some(vec!["c,b,a".into()]),
            ..terminal()
        };
        let (result, out) = drive("\n  Grace Hopper  \n", opts.clone());
        assert_eq!(result.unwrap().name, "Grace Hopper");
        assert!(out.starts_with(
            "Mail\n3 questions; 60% needed to pass.\nYour name: Please type your name.\nYour name: "
        ));

        let (result, out) = drive("", opts);
        assert!(out.ends_with("Your name: \n"), "{out:?}");
        let e = result.unwrap_err();
        assert!(matches!(e, QuizError::NameEnded));
        assert_eq!(e.class(), ErrorClass::Input);

        let (result, out) = drive("c\nb\na\n", RunOptions::default());
        assert_eq!(result.unwrap().name, DEFAULT_NAME);
        assert!(!out.contains("Your name"));
    }

    #[test]
    fn bad_name_flag_is_a_usage_error() {
        for name in ["  ", "Ada\r\nBcc: x@example.com"] {
            let opts = RunOptions {
                name: Some(name.into()),
                ..RunOptions::default()
            };
            let (result, _) = drive("c\nb\na\n", opts);
            assert_eq!(result.unwrap_err().class(), ErrorClass::Usage, "{name:?}");
        }
    }

    #[test]
    fn a_width_wraps_questions_choices_and_the_review() {
        let long = "a long sentence that goes on and on about the submission port";
        let quiz = Quiz {
            title: "Mail".into(),
            pass_percent: 50,
            questions: vec![Question {
                prompt: format!("Which port? {long}"),
                choices: vec![format!("twenty-five, {long}"), "587".into()],
                answer: 1,
                explain: Some(format!("Because {long}.")),
            }],
        };
        let mut out = Vec::new();
        let opts = RunOptions {
            width: Some(40),
            color: true,
            ..piped()
        };
        run(&quiz, &mut Cursor::new(&b"a\n"[..]), &mut out, opts).unwrap();
        let out = String::from_utf8(out).unwrap();
        let plain = out
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[0m", "");
        for line in plain.lines() {
            assert!(line.chars().count() <= 40, "{line:?}\n{plain}");
        }
        for wrapped in [
            "\n1/1 Which port? a long sentence that\n    goes on and on about the submission\n    port\n",
            "\n  a) twenty-five, a long sentence that\n     goes on and on about the submission\n     port\n  b) 587\n",
            "\n✗ 1/1 Which port? a long sentence that\n      goes on and on about the\n      submission port\n",
            "\n    your answer: a) twenty-five, a long\n                 sentence that goes on\n",
            "\n    Because a long sentence that goes on\n    and on about the submission port.\n",
        ] {
            assert!(plain.contains(wrapped), "{wrapped:?} in\n{plain}");
        }
        assert!(out.contains("\x1b[31m✗\x1b[0m 1/1"), "{out}");
    }

    #[test]
    fn colour_only_when_asked() {
        let opts = RunOptions {
            color: true,
            ..piped()
        };
        let (_, out) = drive("a\nb\na\n", opts);
        assert!(out.contains("\x1b[1mMail\x1b[0m"));
        assert!(out.contains("\x1b[32mpassed\x1b[0m") || out.contains("\x1b[31mfailed\x1b[0m"));
        assert!(out.contains("\x1b[31m✗\x1b[0m 1/3"));
    }

    #[test]
    fn long_lines_are_capped_and_invalid_utf8_is_tolerated() {
        let mut long = "x".repeat(100_000);
        long.push_str("\nnext\n");
        let mut input = Cursor::new(long.into_bytes());
        let line = read_line(&mut input).unwrap().unwrap();
        assert_eq!(line.len(), MAX_LINE);
        assert_eq!(read_line(&mut input).unwrap().unwrap(), "next");
        assert_eq!(read_line(&mut input).unwrap(), None);
        let mut input = Cursor::new(b"\xffa\r\n".to_vec());
        assert_eq!(read_line(&mut input).unwrap().unwrap(), "\u{fffd}a");
    }

    #[test]
    fn confirm_defaults_to_yes() {
        let ask = |input: &str| {
            let mut out = Vec::new();
            let yes = confirm(
                "Send the results to ada@example.com?",
                &mut Cursor::new(input.as_bytes()),
                &mut out,
            );
            (yes, String::from_utf8(out).unwrap())
        };
        let (yes, out) = ask("\n");
        assert!(yes);
        assert_eq!(out, "Send the results to ada@example.com? [Y/n] ");
        assert!(ask("Y\n").0);
        assert!(ask(" yes \n").0);
        assert!(!ask("n\n").0);
        assert!(!ask("No\n").0);
        let (yes, out) = ask("");
        assert!(!yes, "end of input never sends");
        assert!(out.ends_with("[Y/n] \n"));
        let (yes, out) = ask("what\ny\n");
        assert!(yes);
        assert_eq!(out.matches("Please answer y or n.").count(), 1);
        assert!(
            !ask("a\nb\nc\ny\n").0,
            "gives up after {CONFIRM_TRIES} tries"
        );
    }
}
