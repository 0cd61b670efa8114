//! Where human text goes and how much of it: with `--json` stdout belongs to the report, so
//! everything for people goes to stderr.
use std::io::{self, Write};

#[derive(Clone, Copy, Debug)]
pub struct Ui {
    pub json: bool,
    pub quiet: bool,
    pub verbose: bool,
}

impl Ui {
    /// Progress and results for people, on stderr; silenced by `-q`.
    pub fn say(&self, text: &str) {
        if !self.quiet && !text.is_empty() {
            let mut err = io::stderr().lock();
            let _ = write!(err, "{text}");
            if !text.ends_with('\n') {
                let _ = writeln!(err);
            }
        }
    }

    /// Advice (alignment, a retry to come); `-q` means errors only, so it silences these.
    pub fn warn(&self, text: &str) {
        if !self.quiet {
            Ui::warn_always(text);
        }
    }

    /// What `-q` must not hide: the `--insecure` warning cli.md wants on every run, and the
    /// failure of one message in a batch that goes on.
    pub fn warn_always(text: &str) {
        eprintln!("quizmail: warning: {text}");
    }
}
