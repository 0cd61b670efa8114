//! Quiz mode (the default): take the test in the terminal, then mail the results.
use std::io::{self, IsTerminal, Write};

use super::compose::{
    addresses, addressing, envelope_sender, extra_headers, results_message, sender, with_flag,
    HeaderFlags,
};
use super::delivery::{alignment, deliver_one, Content};
use super::Ctx;
use crate::error::Error;
use crate::message::{header, Mailbox};
use crate::quiz::{self, QuizReport, RunOptions};
use crate::report::Report;

/// ANSI colour only on a terminal and never with NO_COLOR set (no-color.org).
pub fn use_color(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The width to wrap the quiz to: the terminal's, when it is drawn on one whose size is known.
fn columns(terminal: bool, stream: &impl std::os::fd::AsFd) -> Option<usize> {
    if !terminal {
        return None;
    }
    let (terminal_size::Width(cols), _) = terminal_size::terminal_size_of(stream)?;
    (cols > 0).then_some(usize::from(cols))
}

pub fn quiz(ctx: &Ctx) -> Result<(Report, i32), Error> {
    let cli = ctx.cli;
    let quiz = match &cli.quiz {
        Some(path) => quiz::load(path)?,
        None => quiz::sample(),
    };
    // Every address, header and the subject are checked before the test starts: nobody
    // should answer ten questions to learn that a flag was mistyped.
    let to = addresses("--target-email", &cli.to)?;
    let cc = addresses("--cc", &cli.cc)?;
    let bcc = addresses("--bcc", &cli.bcc)?;
    let from = sender(&ctx.settings)?;
    let headers = extra_headers(cli)?;
    let header_flags = HeaderFlags::from_cli(cli)?;
    if let Some(subject) = &cli.subject {
        header::check_text("Subject", subject).map_err(|e| with_flag("--subject", e))?;
    }
    envelope_sender(cli, &from)?;

    let interactive = io::stdin().is_terminal();
    let (mut out, out_tty, width): (Box<dyn Write>, bool, _) = if cli.json {
        let tty = io::stderr().is_terminal();
        (Box::new(io::stderr()), tty, columns(tty, &io::stderr()))
    } else {
        let tty = io::stdout().is_terminal();
        (Box::new(io::stdout()), tty, columns(tty, &io::stdout()))
    };
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let attempt = quiz::run(
        &quiz,
        &mut input,
        &mut out,
        RunOptions {
            name: cli.name.clone(),
            answers: cli.answers.clone().map(|a| vec![a]),
            interactive,
            color: use_color(out_tty),
            width,
        },
    )?;
    let quiz_json = serde_json::to_value(QuizReport::new(&quiz, &attempt)).ok();
    let no_mail = Report {
        quiz: quiz_json.clone(),
        ..Report::default()
    };
    if to.is_empty() && cc.is_empty() && bcc.is_empty() {
        ctx.ui
            .say("No --target-email given: the results were not mailed.");
        return Ok((no_mail, 0));
    }
    let mut compose = results_message(&quiz, &attempt, from.clone(), to, ctx.now);
    compose.cc = cc;
    compose.bcc = bcc;
    if let Some(subject) = &cli.subject {
        compose.subject = subject.clone();
    }
    compose.headers = headers;
    header_flags.apply(&mut compose);
    let envelope = addressing(cli, &compose)?;
    if interactive && !cli.yes && !cli.dry_run {
        let names: Vec<String> = envelope
            .recipients
            .iter()
            .map(Mailbox::addr_spec_unicode)
            .collect();
        let prompt = format!("Send the results to {}?", names.join(", "));
        if !quiz::confirm(&prompt, &mut input, &mut out) {
            ctx.ui.say("Not sent.");
            return Ok((no_mail, 0));
        }
    }
    drop(out);
    alignment(ctx, &from, &envelope.from);
    deliver_one(
        ctx,
        &Content::Compose(Box::new(compose)),
        &envelope,
        quiz_json,
        true,
    )
}
