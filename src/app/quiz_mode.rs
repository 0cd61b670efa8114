//! Quiz mode (the default): take the test in the terminal, then mail the results.
use std::io::{self, IsTerminal, Write};

use super::send::{envelope_for, envelope_sender};
use super::{addresses, alignment, deliver_one, random16, sender, with_flag, Content, Ctx};
use crate::error::Error;
use crate::message::{header, parse_header_arg, Attachment, Compose, Mailbox};
use crate::quiz::{self, Attempt, Quiz, QuizReport, RunOptions};
use crate::report::Report;

/// ANSI colour only on a terminal and never with NO_COLOR set (no-color.org).
pub fn use_color(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `--header` values, for every message a run sends.
pub fn extra_headers(cli: &crate::cli::Cli) -> Result<Vec<(String, String)>, Error> {
    cli.headers
        .iter()
        .map(|h| parse_header_arg(h).map_err(|e| with_flag("--header", e)))
        .collect()
}

/// The results message of cli.md: text and HTML alternatives plus `results.csv`.
pub fn results_message(
    quiz: &Quiz,
    attempt: &Attempt,
    from: Mailbox,
    to: Vec<Mailbox>,
    ctx: &Ctx,
) -> Compose {
    let mut c = Compose::new(from, ctx.now, random16());
    c.to = to;
    c.subject = quiz::subject(quiz, &attempt.name, &attempt.score);
    c.text = Some(quiz::results_text(quiz, attempt).into_bytes());
    c.html = Some(quiz::results_html(quiz, attempt).into_bytes());
    c.attachments = vec![Attachment::Data {
        filename: "results.csv".into(),
        data: quiz::results_csv(quiz, attempt).into_bytes(),
    }];
    c
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
    if let Some(subject) = &cli.subject {
        header::check_text("Subject", subject).map_err(|e| with_flag("--subject", e))?;
    }
    envelope_sender(ctx, &from)?;

    let interactive = io::stdin().is_terminal();
    let (mut out, out_tty): (Box<dyn Write>, bool) = if cli.json {
        (Box::new(io::stderr()), io::stderr().is_terminal())
    } else {
        (Box::new(io::stdout()), io::stdout().is_terminal())
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
    let mut compose = results_message(&quiz, &attempt, from.clone(), to, ctx);
    compose.cc = cc;
    compose.bcc = bcc;
    if let Some(subject) = &cli.subject {
        compose.subject = subject.clone();
    }
    compose.headers = headers;
    let envelope = envelope_for(ctx, &compose)?;
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
