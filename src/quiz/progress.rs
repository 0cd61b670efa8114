//! A one-line progress bar for grade mode on a terminal: `\r[#####.....] 12/200 Ada`.
//!
//! Pure formatting over any `Write`, so tests draw into a `Vec`. The caller enables it only when
//! the output is a terminal; disabled, it writes nothing at all.

use std::io::{self, Write};

/// Characters in the bar between the brackets.
const WIDTH: usize = 20;

/// Names longer than this are cut, so the line fits an 80-column terminal.
const NAME_MAX: usize = 40;

/// Redraws one line in place with a carriage return (no cursor-control sequences needed).
pub struct Progress<W: Write> {
    total: usize,
    done: usize,
    out: W,
    enabled: bool,
    /// Characters on the line last drawn, to blank out the tail of a longer previous name.
    drawn: usize,
}

impl<W: Write> Progress<W> {
    pub fn new(total: usize, out: W, enabled: bool) -> Progress<W> {
        Progress {
            total,
            done: 0,
            out,
            enabled,
            drawn: 0,
        }
    }

    /// Counts one more item done and redraws the line with `name`.
    pub fn tick(&mut self, name: &str) -> io::Result<()> {
        self.done = (self.done + 1).min(self.total);
        if !self.enabled {
            return Ok(());
        }
        let line = line(self.done, self.total, name);
        let len = line.chars().count();
        let pad = self.drawn.saturating_sub(len);
        self.drawn = len;
        write!(self.out, "\r{line}{:pad$}", "")?;
        self.out.flush()
    }

    /// Ends the line so later output starts on a fresh one.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.enabled && self.drawn > 0 {
            self.drawn = 0;
            writeln!(self.out)?;
            self.out.flush()?;
        }
        Ok(())
    }
}

/// `[#####...............] 5/20 Ada`: the bar rounds down so it is full only when all are done.
fn line(done: usize, total: usize, name: &str) -> String {
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    let name: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(NAME_MAX)
        .collect();
    format!(
        "[{}{}] {done}/{total} {name}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_in_place() {
        let mut p = Progress::new(4, Vec::new(), true);
        p.tick("Ada Lovelace").unwrap();
        p.tick("Bob").unwrap();
        p.finish().unwrap();
        let out = String::from_utf8(p.out).unwrap();
        let first = "\r[#####...............] 1/4 Ada Lovelace";
        // "Bob" is 9 characters shorter than "Ada Lovelace": blanked with 9 spaces.
        let second = "\r[##########..........] 2/4 Bob         ";
        assert_eq!(out, format!("{first}{second}\n"));
    }

    #[test]
    fn full_only_at_the_end_and_never_past_it() {
        assert_eq!(
            line(199, 200, "x"),
            format!("[{}.] 199/200 x", "#".repeat(19))
        );
        assert_eq!(
            line(200, 200, "x"),
            format!("[{}] 200/200 x", "#".repeat(20))
        );
        assert_eq!(
            line(12, 200, "Ada"),
            format!("[#{}] 12/200 Ada", ".".repeat(19))
        );
        let mut p = Progress::new(1, Vec::new(), true);
        p.tick("a").unwrap();
        p.tick("b").unwrap();
        assert!(String::from_utf8(p.out).unwrap().ends_with("1/1 b"));
    }

    #[test]
    fn names_are_cleaned_and_cut() {
        let long = "x".repeat(100);
        assert!(line(1, 2, &long).ends_with(&format!(" {}", "x".repeat(NAME_MAX))));
        assert_eq!(
            line(0, 2, "A\x1b[2Jda\r"),
            format!("[{}] 0/2 A[2Jda", ".".repeat(20))
        );
    }

    #[test]
    fn disabled_writes_nothing() {
        let mut p = Progress::new(3, Vec::new(), false);
        p.tick("Ada").unwrap();
        p.finish().unwrap();
        assert!(p.out.is_empty());
    }
}
