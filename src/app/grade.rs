//! Grade mode: score every roster row, mail each student their results over one connection,
//! then mail the class summary to `--target-email`.
use std::io::{self, IsTerminal};

use super::compose::{
    addresses, envelope_sender, extra_headers, results_message, sender, summary_message,
    Addressing, HeaderFlags,
};
use super::delivery::{alignment, deliver_batch, Content, Job};
use super::ui::Ui;
use super::Ctx;
use crate::error::Error;
use crate::message::Mailbox;
use crate::quiz::{self, Progress, QuizReport};
use crate::report::{Report, Transport};

pub fn grade(ctx: &Ctx) -> Result<(Report, i32), Error> {
    let cli = ctx.cli;
    let quiz_path = cli
        .quiz
        .as_deref()
        .ok_or_else(|| Error::Usage("--roster needs --quiz FILE".into()))?;
    let roster_path = cli
        .roster
        .as_deref()
        .ok_or_else(|| Error::Internal("grade mode without --roster".into()))?;
    let quiz = quiz::load(quiz_path)?;
    let entries = quiz::load_roster(roster_path, &quiz)?;
    let teacher = addresses("--target-email", &cli.to)?;
    let from = sender(&ctx.settings)?;
    let envelope_from = envelope_sender(cli, &from)?;
    let headers = extra_headers(cli)?;
    // --reply-to and --priority; the threading flags are refused in grade mode (mode.rs).
    let header_flags = HeaderFlags::from_cli(cli)?;
    alignment(ctx, &from, &envelope_from);

    let transport = if cli.dry_run {
        Transport::DryRun
    } else if ctx.settings.server.is_some() {
        Transport::Smtp
    } else {
        Transport::Outbox
    };
    // Students whose address does not parse are reported, not fatal: the batch goes on.
    let mut reports: Vec<Option<Report>> = Vec::new();
    let mut jobs: Vec<(usize, Job)> = Vec::new();
    for entry in &entries {
        let quiz_json = serde_json::to_value(QuizReport::new(&quiz, &entry.attempt)).ok();
        match Mailbox::parse(&entry.email) {
            Ok(student) => {
                let mut compose = results_message(
                    &quiz,
                    &entry.attempt,
                    from.clone(),
                    vec![student.clone()],
                    ctx.now,
                );
                compose.headers = headers.clone();
                header_flags.apply(&mut compose);
                jobs.push((
                    reports.len(),
                    Job {
                        label: entry.attempt.name.clone(),
                        content: Content::Compose(Box::new(compose)),
                        addressing: Addressing {
                            from: envelope_from.clone(),
                            recipients: vec![student],
                        },
                        quiz: quiz_json,
                        kept: None,
                    },
                ));
                reports.push(None);
            }
            Err(e) => {
                let e = Error::Message {
                    context: format!("{}: line {}", roster_path.display(), entry.line),
                    source: e,
                };
                Ui::warn_always(&e.to_string());
                reports.push(Some(Report {
                    transport,
                    quiz: quiz_json,
                    error: Some(e.report(&ctx.hints())),
                    ..Report::default()
                }));
            }
        }
    }
    if teacher.is_empty() {
        ctx.ui
            .say("No --target-email given: the class summary was not mailed.");
    } else {
        let mut c = summary_message(&quiz, &entries, from.clone(), teacher.clone(), ctx.now);
        c.headers = headers;
        header_flags.apply(&mut c);
        jobs.push((
            reports.len(),
            Job {
                label: "class summary".into(),
                content: Content::Compose(Box::new(c)),
                addressing: Addressing {
                    from: envelope_from,
                    recipients: teacher,
                },
                quiz: None,
                kept: None,
            },
        ));
        reports.push(None);
    }

    let show = !ctx.ui.quiet && io::stderr().is_terminal();
    let mut progress = Progress::new(jobs.len(), io::stderr(), show);
    let (slots, jobs): (Vec<usize>, Vec<Job>) = jobs.into_iter().unzip();
    let sent = deliver_batch(ctx, &jobs, &mut progress)?;
    let _ = progress.finish();
    for (slot, report) in slots.into_iter().zip(sent) {
        reports[slot] = Some(report);
    }

    let messages: Vec<Report> = reports.into_iter().flatten().collect();
    let failed: Vec<&Report> = messages.iter().filter(|r| r.error.is_some()).collect();
    let code = failed
        .first()
        .and_then(|r| r.error.as_ref())
        .map_or(0, |e| e.exit_code);
    let done = messages.len() - failed.len();
    ctx.ui.say(&format!(
        "Graded {} students; {done} of {} messages {}; {} failed.",
        entries.len(),
        messages.len(),
        match transport {
            Transport::Smtp => "sent",
            Transport::DryRun => "printed (dry run, NOT sent)",
            Transport::Outbox => "written to the outbox, NOT sent",
        },
        failed.len()
    ));
    if transport == Transport::Outbox {
        ctx.ui.say(&format!(
            "No server is configured: they are kept in {}; send them with: quizmail --flush \
             --server HOST[:PORT]",
            ctx.settings.outbox.display()
        ));
    }
    let top = Report {
        sent: transport == Transport::Smtp && failed.is_empty(),
        transport,
        server: ctx.settings.server.as_ref().map(|s| s.display()),
        error: failed.first().and_then(|r| r.error.clone()),
        messages: Some(messages),
        ..Report::default()
    };
    Ok((top, code))
}
