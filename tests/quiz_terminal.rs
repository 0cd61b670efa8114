//! The quiz as a person and as a script meet it: the binary driven through a real
//! pseudo-terminal (rexpect forks it onto the slave side of a PTY, so `isatty` is true for its
//! stdin, stdout and stderr), and through pipes for scripted answers.
//!
//! Every run is sandboxed: an empty environment (so no SMTP_* variable and no user config), HOME
//! and XDG_CONFIG_HOME in a tempdir, and a tempdir as the working directory, so with no server
//! configured the results land in its `outbox/` (cli.md, "With no server configured").
//! Every wait is bounded: each PTY read has a timeout, each child is polled against a deadline
//! and killed when it overstays.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rexpect::process::WaitStatus;
use rexpect::session::{spawn_with_options, Options, PtySession};
use tempfile::TempDir;

/// How long one PTY read or one piped run may take on a loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Three questions with different numbers of choices; the key is c, b, a.
const QUIZ: &str = r#"title = "Mail basics"
pass_percent = 60

[[questions]]
prompt = "Which port is submission with STARTTLS?"
choices = ["25", "465", "587"]
answer = "c"
explain = "RFC 6409 submission uses 587."

[[questions]]
prompt = "Which reply code invites the message data?"
choices = ["250", "354"]
answer = "b"
explain = "RFC 5321 section 4.2: 354 starts mail input."

[[questions]]
prompt = "What is done to a line starting with a dot?"
choices = ["it is doubled", "it is dropped", "it is kept", "it is folded"]
answer = "a"
explain = "RFC 5321 section 4.5.2: transparency."
"#;

const TARGET: &str = "ada@example.com";

/// A private HOME, config directory and working directory holding `quiz.toml`.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["home", "config", "work"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("work/quiz.toml"), QUIZ).unwrap();
        Sandbox { dir }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The binary with `args`, an empty environment but for the sandbox, cwd in the sandbox.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quizmail"));
        cmd.args(args)
            .env_clear()
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("USER", "tester")
            .current_dir(self.work());
        cmd
    }

    /// [`Sandbox::command`] on a terminal `cols` columns wide: `stty` sets the size of the
    /// pseudo-terminal it runs on, then the shell becomes the binary.
    fn command_with_columns(&self, cols: u16, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        let bin = cmd.get_program().to_owned();
        let mut shell = Command::new("/bin/sh");
        shell
            .arg("-c")
            .arg(format!("stty cols {cols} rows 40 && exec \"$0\" \"$@\""))
            .arg(bin)
            .args(cmd.get_args())
            .env_clear()
            .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .env("PATH", "/usr/bin:/bin")
            .current_dir(self.work());
        cmd = shell;
        cmd
    }

    /// The messages written to `outbox/` (not their `.json` sidecars), sorted by name.
    fn outbox(&self) -> Vec<PathBuf> {
        let dir = self.work().join("outbox");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
    }
}

/// The Subject of a stored message, decoded by an independent parser (mail-parser).
fn subject_of(path: &Path) -> String {
    assert_eq!(path.extension().and_then(|e| e.to_str()), Some("eml"));
    let raw = std::fs::read(path).unwrap();
    let msg = mail_parser::MessageParser::default()
        .parse(&raw)
        .unwrap_or_else(|| panic!("{} does not parse", path.display()));
    msg.subject().unwrap_or_default().to_owned()
}

/// A session on a pseudo-terminal that keeps everything the program drew.
///
/// rexpect hands over output one byte per `char`; needles are mapped the same way so that
/// UTF-8 text such as "—" matches, and [`Term::transcript`] maps it back.
struct Term {
    session: PtySession,
    seen: String,
}

/// UTF-8 text in rexpect's one-`char`-per-byte form.
fn bytewise(s: &str) -> String {
    s.bytes().map(char::from).collect()
}

impl Term {
    fn spawn(cmd: Command) -> Term {
        let timeout = Some(TIMEOUT.as_millis() as u64);
        let session = spawn_with_options(cmd, Options::new().timeout_ms(timeout)).unwrap();
        Term {
            session,
            seen: String::new(),
        }
    }

    /// Waits (bounded) for `needle`; on failure the child is killed and the output shown.
    fn expect(&mut self, needle: &str) {
        match self.session.exp_string(&bytewise(needle)) {
            Ok(before) => {
                self.seen.push_str(&before);
                self.seen.push_str(&bytewise(needle));
            }
            Err(e) => self.fail(&format!("waiting for {needle:?}: {e}")),
        }
    }

    /// Types one line and Enter.
    fn line(&mut self, text: &str) {
        if let Err(e) = self.session.send_line(text) {
            self.fail(&format!("typing {text:?}: {e}"));
        }
        if let Err(e) = self.session.flush() {
            self.fail(&format!("typing {text:?}: {e}"));
        }
    }

    /// Ctrl-D at the start of a line: the terminal's end of input.
    fn ctrl_d(&mut self) {
        if let Err(e) = self.session.send_control('d') {
            self.fail(&format!("sending Ctrl-D: {e}"));
        }
    }

    /// Everything drawn so far, as UTF-8 with the terminal's CRLF turned back into LF.
    fn transcript(&self) -> String {
        let bytes: Vec<u8> = self.seen.chars().map(|c| c as u8).collect();
        String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
    }

    /// Reads to the end of output, then waits (bounded) for the exit status.
    fn finish(mut self) -> (i32, String) {
        match self.session.exp_eof() {
            Ok(rest) => self.seen.push_str(&rest),
            Err(e) => self.fail(&format!("waiting for the end of output: {e}")),
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.session.process().status() {
                Some(WaitStatus::Exited(_, code)) => return (code, self.transcript()),
                Some(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(20));
                }
                other => self.fail(&format!("no exit status in time: {other:?}")),
            }
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        // SIGTERM, then SIGKILL once the session's timeout has passed.
        let _ = self.session.process_mut().exit();
        panic!("{what}\n--- terminal so far ---\n{}", self.transcript());
    }
}

/// Answers the three questions on the terminal with `answers`, checking each prompt.
fn answer_all(term: &mut Term, answers: [&str; 3]) {
    let prompts = [
        ("1/3 Which port is submission with STARTTLS?", "a-c"),
        ("2/3 Which reply code invites the message data?", "a-b"),
        ("3/3 What is done to a line starting with a dot?", "a-d"),
    ];
    for ((prompt, range), answer) in prompts.into_iter().zip(answers) {
        term.expect(prompt);
        term.expect(&format!("Your answer ({range}): "));
        term.line(answer);
    }
}

#[test]
fn terminal_asks_the_name_asks_again_reviews_and_sends_on_enter() {
    let sandbox = Sandbox::new();
    let mut term = Term::spawn(sandbox.command(&["--quiz", "quiz.toml", "--target-email", TARGET]));
    term.expect("Mail basics");
    term.expect("3 questions; 60% needed to pass.");
    term.expect("Your name: ");
    term.line("Ada Lovelace");

    term.expect(
        "1/3 Which port is submission with STARTTLS?\r\n  a) 25\r\n  b) 465\r\n  c) 587\r\n",
    );
    term.expect("Your answer (a-c): ");
    term.line("z");
    term.expect("Please type one letter from a to c.");
    term.expect("Your answer (a-c): ");
    term.line("");
    term.expect("Please type one letter from a to c.");
    term.expect("Your answer (a-c): ");
    term.line("c");
    term.expect("2/3 Which reply code invites the message data?\r\n  a) 250\r\n  b) 354\r\n");
    term.expect("Your answer (a-b): ");
    term.line("a");
    term.expect("3/3 What is done to a line starting with a dot?");
    term.expect("  d) it is folded");
    term.expect("Your answer (a-d): ");
    term.line("a");

    term.expect("Ada Lovelace: 2/3 (66.7%) — ");
    term.expect("passed");
    term.expect("Review of the 1 wrong answer(s):");
    term.expect("2/3 Which reply code invites the message data?");
    term.expect("your answer: a) 250");
    term.expect("b) 354");
    term.expect("RFC 5321 section 4.2: 354 starts mail input.");
    term.expect("Send the results to ada@example.com? [Y/n] ");
    term.line("");
    term.expect("NOT sent: no server is configured");
    let (code, out) = term.finish();
    assert_eq!(code, 0, "{out}");

    assert!(out.contains("\x1b["), "a terminal gets colour:\n{out}");
    assert!(out.contains("\x1b[1mMail basics\x1b[0m"), "{out}");
    assert!(out.contains("\x1b[32mpassed\x1b[0m"), "{out}");
    assert_eq!(
        out.matches("Please type one letter from a to c.").count(),
        2
    );
    assert_eq!(out.matches("Your name: ").count(), 1);
    // Only the wrong answer is reviewed.
    assert!(!out.contains("1/3 Which port is submission with STARTTLS?\n    your answer"));
    assert!(!out.contains("RFC 6409 submission uses 587."), "{out}");

    let outbox = sandbox.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let subject = subject_of(&outbox[0]);
    assert!(subject.contains("Mail basics"), "{subject}");
    assert!(subject.contains("Ada Lovelace"), "{subject}");
    assert!(subject.contains("2/3"), "{subject}");
}

#[test]
fn terminal_answering_n_writes_nothing() {
    let sandbox = Sandbox::new();
    let mut term = Term::spawn(sandbox.command(&[
        "--quiz",
        "quiz.toml",
        "--name",
        "Ada",
        "--target-email",
        TARGET,
    ]));
    term.expect("Mail basics");
    answer_all(&mut term, ["b", "a", "c"]);
    term.expect("Ada: 0/3 (0%) — ");
    term.expect("failed");
    term.expect("Review of the 3 wrong answer(s):");
    term.expect("RFC 6409 submission uses 587.");
    term.expect("RFC 5321 section 4.2: 354 starts mail input.");
    term.expect("RFC 5321 section 4.5.2: transparency.");
    term.expect("Send the results to ada@example.com? [Y/n] ");
    term.line("n");
    term.expect("Not sent.");
    let (code, out) = term.finish();
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("Your name"), "--name given: {out}");
    assert!(out.contains("\x1b[31mfailed\x1b[0m"), "{out}");
    assert!(sandbox.outbox().is_empty(), "{:?}", sandbox.outbox());
}

#[test]
fn terminal_yes_flag_skips_the_question() {
    let sandbox = Sandbox::new();
    let mut term = Term::spawn(sandbox.command(&[
        "--quiz",
        "quiz.toml",
        "--name",
        "Ada",
        "--yes",
        "--target-email",
        TARGET,
    ]));
    answer_all(&mut term, ["c", "b", "a"]);
    term.expect("Ada: 3/3 (100%)");
    term.expect("All answers correct.");
    term.expect("NOT sent: no server is configured");
    let (code, out) = term.finish();
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("[Y/n]"), "{out}");
    let outbox = sandbox.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let subject = subject_of(&outbox[0]);
    assert!(
        subject.contains("Ada") && subject.contains("3/3"),
        "{subject}"
    );
}

/// Runs the whole quiz on a terminal with `--answers`, with NO_COLOR set or not.
fn terminal_run_with_answers(no_color: Option<&str>) -> String {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.command(&[
        "--quiz",
        "quiz.toml",
        "--name",
        "Ada",
        "--answers",
        "c,a,a",
        "--yes",
        "--target-email",
        TARGET,
    ]);
    if let Some(value) = no_color {
        cmd.env("NO_COLOR", value);
    }
    let mut term = Term::spawn(cmd);
    term.expect("NOT sent: no server is configured");
    let (code, out) = term.finish();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Ada: 2/3 (66.7%)"), "{out}");
    assert_eq!(sandbox.outbox().len(), 1);
    out
}

#[test]
fn terminal_colour_unless_no_color() {
    let coloured = terminal_run_with_answers(None);
    assert!(coloured.contains("\x1b[1mMail basics\x1b[0m"), "{coloured}");
    assert!(coloured.contains("\x1b[31m✗\x1b[0m 2/3"), "{coloured}");

    let plain = terminal_run_with_answers(Some("1"));
    assert!(
        !plain.contains('\x1b'),
        "NO_COLOR=1 on a terminal:\n{plain}"
    );
    assert!(plain.contains("Mail basics\n"), "{plain}");
    assert!(plain.contains("✗ 2/3"), "{plain}");
}

#[test]
fn terminal_ctrl_d_mid_quiz_exits_66() {
    let sandbox = Sandbox::new();
    let mut term = Term::spawn(sandbox.command(&[
        "--quiz",
        "quiz.toml",
        "--name",
        "Ada",
        "--target-email",
        TARGET,
    ]));
    term.expect("Your answer (a-c): ");
    term.line("c");
    term.expect("Your answer (a-b): ");
    term.ctrl_d();
    term.expect("standard input ended after 1 of 3 answers");
    let (code, out) = term.finish();
    assert_eq!(code, 66, "{out}");
    // The message stands on its own line, not glued to the prompt.
    assert!(
        out.contains("\nquizmail: error: standard input ended after 1 of 3 answers\n"),
        "{out:?}"
    );
    assert!(!out.contains("[Y/n]"), "{out}");
    assert!(sandbox.outbox().is_empty());
}

/// The exit status, stdout and stderr of one piped run.
struct Piped {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with `input` on a pipe as stdin and pipes for stdout and stderr, bounded by
/// [`TIMEOUT`]; an overdue child is killed.
fn run_piped(mut cmd: Command, input: &[u8]) -> Piped {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // The program may exit before reading everything: a broken pipe here is not a failure.
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the program did not exit within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap();
    Piped {
        code: status.code().expect("exited, not killed by a signal"),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

#[test]
fn piped_answers_are_scored_and_written_to_the_outbox() {
    let sandbox = Sandbox::new();
    let cmd = sandbox.command(&[
        "--quiz",
        "quiz.toml",
        "--name",
        "Ada",
        "--target-email",
        TARGET,
    ]);
    let run = run_piped(cmd, b"b\na\nc\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Ada: 0/3 (0%) — failed"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("[Y/n]"), "a pipe is never asked");
    assert!(
        !run.stdout.contains('\x1b') && !run.stderr.contains('\x1b'),
        "no colour on a pipe:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stderr.contains("NOT sent"), "{}", run.stderr);
    let outbox = sandbox.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let subject = subject_of(&outbox[0]);
    assert!(
        subject.contains("Ada") && subject.contains("0/3"),
        "{subject}"
    );

    let cmd = sandbox.command(&["--quiz", "quiz.toml", "--name", "Ada", "--to", TARGET]);
    let run = run_piped(cmd, b"c\nb\nd\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Ada: 2/3 (66.7%) — passed"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains('\x1b'), "{}", run.stdout);
    let outbox = sandbox.outbox();
    assert_eq!(outbox.len(), 2, "{outbox:?}");
    let subjects: Vec<String> = outbox.iter().map(|p| subject_of(p)).collect();
    assert!(
        subjects
            .iter()
            .any(|s| s.contains("Ada") && s.contains("2/3")),
        "{subjects:?}"
    );
}

#[test]
fn piped_empty_stdin_exits_66() {
    let sandbox = Sandbox::new();
    let cmd = sandbox.command(&[
        "--quiz",
        "quiz.toml",
        "--name",
        "Ada",
        "--target-email",
        TARGET,
    ]);
    let run = run_piped(cmd, b"");
    assert_eq!(run.code, 66, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("standard input ended after 0 of 3 answers"),
        "{}",
        run.stderr
    );
    assert!(sandbox.outbox().is_empty());
}

#[test]
fn malformed_quiz_exits_65_naming_line_and_column() {
    let sandbox = Sandbox::new();
    std::fs::write(
        sandbox.work().join("bad.toml"),
        "title = \"x\"\npass_percent = \"high\"\n",
    )
    .unwrap();
    let cmd = sandbox.command(&["--quiz", "bad.toml", "--name", "Ada", "--to", TARGET]);
    let run = run_piped(cmd, b"a\n");
    assert_eq!(run.code, 65, "{}", run.stderr);
    assert!(run.stderr.contains("bad.toml:2:16:"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "nothing drawn: {}", run.stdout);

    // A file that is valid TOML but not a valid quiz is located just as precisely.
    std::fs::write(
        sandbox.work().join("bad.toml"),
        "title = \"x\"\n[[questions]]\nprompt = \"p\"\nchoices = [\"a\", \"b\"]\nanswer = \"e\"\n",
    )
    .unwrap();
    let cmd = sandbox.command(&["--quiz", "bad.toml", "--name", "Ada", "--to", TARGET]);
    let run = run_piped(cmd, b"a\n");
    assert_eq!(run.code, 65, "{}", run.stderr);
    assert!(run.stderr.contains("bad.toml:5:10:"), "{}", run.stderr);
    assert!(sandbox.outbox().is_empty());
}

/// Long questions, choices and explanations, to be wrapped on a narrow terminal.
const LONG_QUIZ: &str = r#"title = "Wrapping"

[[questions]]
prompt = "Which command does a client send after the greeting to learn which extensions, such as PIPELINING, CHUNKING and STARTTLS, the server offers?"
choices = ["HELO, the original greeting of RFC 821 that announces no extensions at all", "EHLO, the extended greeting of RFC 5321 whose reply lists every extension"]
answer = "b"
explain = "RFC 5321 section 4.1.1.1: a client that wants extensions sends EHLO, and the 250 reply names one extension per line after the first."

[[questions]]
prompt = "What does a server that accepts the message data answer to the final dot on a line of its own?"
choices = ["354 Start mail input", "250 with the queue identifier, often with an enhanced status code 2.0.0 in front"]
answer = "b"
explain = "RFC 5321 section 4.2.2 and RFC 3463: a 2yz reply ends the transaction successfully."
"#;

/// ANSI SGR sequences removed: they take no columns.
fn strip_sgr(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn terminal_of_60_columns_wraps_at_words_with_a_hanging_indent() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.work().join("long.toml"), LONG_QUIZ).unwrap();
    let mut term = Term::spawn(sandbox.command_with_columns(
        60,
        &[
            "--quiz",
            "long.toml",
            "--name",
            "Ada",
            "--target-email",
            TARGET,
        ],
    ));
    term.expect("Your answer (a-b): ");
    term.line("a");
    term.expect("Your answer (a-b): ");
    term.line("a");
    term.expect("[Y/n] ");
    term.line("n");
    term.expect("Not sent.");
    let (code, out) = term.finish();
    assert_eq!(code, 0, "{out}");
    let plain = strip_sgr(&out);

    for line in plain.lines() {
        assert!(
            line.chars().count() <= 60,
            "over 60 columns: {line:?}\n{plain}"
        );
    }
    // No word broken: every word of the quiz text is a word of the terminal's text.
    let shown: std::collections::HashSet<&str> = plain.split_whitespace().collect();
    let quiz: toml::Table = LONG_QUIZ.parse().unwrap();
    for q in quiz["questions"].as_array().unwrap() {
        let mut texts = vec![
            q["prompt"].as_str().unwrap(),
            q["explain"].as_str().unwrap(),
        ];
        texts.extend(
            q["choices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap()),
        );
        for word in texts.iter().flat_map(|t| t.split_whitespace()) {
            assert!(shown.contains(word), "{word:?} was broken:\n{plain}");
        }
    }
    // Wrapped, with the numbering and letters in the margin and the text hanging under itself.
    let lines: Vec<&str> = plain.lines().collect();
    let at = |start: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starts with {start:?}:\n{plain}"))
    };
    let q1 = at("1/2 Which command does a client send");
    assert!(lines[q1 + 1].starts_with("    ") && !lines[q1 + 1].starts_with("     "));
    let a = at("  a) HELO, the original greeting");
    assert!(lines[a + 1].starts_with("     ") && !lines[a + 1].starts_with("      "));
    assert!(lines[a + 2].starts_with("  b) EHLO"), "{plain}");
    let explain = at("    RFC 5321 section 4.1.1.1:");
    assert!(lines[explain + 1].starts_with("    ") && !lines[explain + 1].starts_with("     "));
    let review = at("✗ 1/2 Which command");
    assert!(lines[review + 1].starts_with("      ") && !lines[review + 1].starts_with("       "));
}

#[test]
fn a_pipe_gets_no_wrapping() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.work().join("long.toml"), LONG_QUIZ).unwrap();
    let cmd = sandbox.command(&["--quiz", "long.toml", "--name", "Ada", "--to", TARGET]);
    let run = run_piped(cmd, b"a\na\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "\n1/2 Which command does a client send after the greeting to learn which \
             extensions, such as PIPELINING, CHUNKING and STARTTLS, the server offers?\n"
        ),
        "{}",
        run.stdout
    );
}
