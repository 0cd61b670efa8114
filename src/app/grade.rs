//! Grade mode: score every roster row, mail each student their results over ONE connection
//! (RSET between messages; after a 421 or a drop, reconnect and carry on), then mail the class
//! summary to `--target-email`.
use std::io::{self, IsTerminal};
use std::path::Path;

use super::quiz_mode::{extra_headers, results_message};
use super::send::envelope_sender;
use super::{
    addresses, deliver_one, delivered, error_report, random16, sender, sign, Content, Ctx, Ui,
};
use crate::client::{backoff, Connection, Dialer, Envelope};
use crate::error::Error;
use crate::message::{Attachment, Compose, Mailbox};
use crate::quiz::{self, Progress, QuizReport};
use crate::report::{Report, Transport};

/// One message of the batch: who it is for (for the progress bar) and what to send.
struct Job {
    label: String,
    content: Content,
    envelope: Envelope,
    quiz: Option<serde_json::Value>,
}

pub fn grade(ctx: &Ctx) -> Result<(Report, i32), Error> {
    let cli = ctx.cli;
    let quiz_path = cli
        .quiz
        .as_deref()
        .ok_or_else(|| Error::Usage("--roster needs --quiz FILE".into()))?;
    let roster_path = cli
        .roster
        .as_deref()
        .ok_or_else(|| Error::Usage("grade mode needs --roster FILE".into()))?;
    if cli.save.is_some() {
        return Err(Error::Usage(
            "--save writes one message; grade mode sends many (use --dry-run or the outbox)".into(),
        ));
    }
    let quiz = quiz::load(quiz_path)?;
    let entries = quiz::load_roster(roster_path, &quiz)?;
    let teacher = addresses("--target-email", &cli.to)?;
    let from = sender(&ctx.settings)?;
    let headers = extra_headers(cli)?;
    super::alignment(ctx, &from, &envelope_sender(ctx, &from)?);

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
                    ctx,
                );
                compose.headers = headers.clone();
                jobs.push((
                    reports.len(),
                    Job {
                        label: entry.attempt.name.clone(),
                        content: Content::Compose(Box::new(compose)),
                        envelope: Envelope {
                            from: envelope_sender(ctx, &from)?,
                            recipients: vec![student],
                        },
                        quiz: quiz_json,
                    },
                ));
                reports.push(None);
            }
            Err(e) => {
                let e = Error::Message {
                    context: format!("{}: line {}", display(roster_path), entry.line),
                    source: e,
                };
                Ui::warn_always(&e.to_string());
                reports.push(Some(Report {
                    transport,
                    quiz: quiz_json,
                    error: Some(error_report(&e)),
                    ..Report::default()
                }));
            }
        }
    }
    if !teacher.is_empty() {
        let summary = quiz::summarise(&quiz, &entries);
        let mut c = Compose::new(from.clone(), ctx.now, random16());
        c.to = teacher.clone();
        c.headers = headers.clone();
        c.subject = quiz::summary_subject(&quiz, &summary);
        c.text = Some(quiz::summary_text(&quiz, &summary, &entries).into_bytes());
        c.html = Some(quiz::summary_html(&quiz, &summary, &entries).into_bytes());
        c.attachments = vec![Attachment::Data {
            filename: "class-results.csv".into(),
            data: quiz::summary_csv(&quiz, &entries).into_bytes(),
        }];
        jobs.push((
            reports.len(),
            Job {
                label: "class summary".into(),
                content: Content::Compose(Box::new(c)),
                envelope: Envelope {
                    from: envelope_sender(ctx, &from)?,
                    recipients: teacher,
                },
                quiz: None,
            },
        ));
        reports.push(None);
    } else {
        ctx.ui
            .say("No --target-email given: the class summary was not mailed.");
    }

    let show = !ctx.ui.quiet && io::stderr().is_terminal();
    let mut progress = Progress::new(jobs.len(), io::stderr(), show);
    if transport == Transport::Smtp {
        send_batch(ctx, &jobs, &mut reports, &mut progress)?;
    } else {
        for (slot, job) in &jobs {
            let (report, _) =
                deliver_one(ctx, &job.content, &job.envelope, job.quiz.clone(), false)?;
            reports[*slot] = Some(report);
            let _ = progress.tick(&job.label);
        }
    }
    let _ = progress.finish();

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
            "No server is configured. Send them later with: quizmail --message FILE \
             --read-recipients --server HOST[:PORT] (files in {})",
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

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// Sends every job over one connection, reconnecting after a drop or a 421.
fn send_batch(
    ctx: &Ctx,
    jobs: &[(usize, Job)],
    reports: &mut [Option<Report>],
    progress: &mut Progress<io::Stderr>,
) -> Result<(), Error> {
    let server = ctx
        .settings
        .server
        .as_ref()
        .ok_or_else(|| Error::Usage("internal: no server".into()))?;
    let dialer = Dialer::new(server, ctx.ui.verbose)?;
    let mut conn: Option<Connection> = None;
    // A connection that cannot be had (refused, TLS, login) fails every later message the
    // same way: the rest are reported with that error and not tried, so a wrong password is
    // sent once and not once per student.
    let mut unreachable: Option<crate::report::ErrorReport> = None;
    for (i, (slot, job)) in jobs.iter().enumerate() {
        let base = Report {
            server: Some(server.display()),
            envelope_from: Some(job.envelope.from.addr_spec_unicode()),
            quiz: job.quiz.clone(),
            ..Report::default()
        };
        if let Some(e) = &unreachable {
            reports[*slot] = Some(Report {
                error: Some(e.clone()),
                ..base
            });
            let _ = progress.tick(&job.label);
            continue;
        }
        let more = i + 1 < jobs.len();
        let mut tries = 0;
        let mut connecting = false;
        let outcome = loop {
            let result = (|| {
                if !conn.as_ref().is_some_and(Connection::is_open) {
                    conn = None;
                    connecting = true;
                    conn = Some(dialer.open(false)?);
                    connecting = false;
                }
                let c = conn
                    .as_mut()
                    .ok_or_else(|| Error::Usage("internal: no connection".into()))?;
                let mut msg = job.content.build(c.target())?;
                sign(ctx, msg.as_mut())?;
                c.send(&job.envelope, msg.as_ref(), more)
            })();
            match result {
                Ok(d) => break Ok(d),
                Err(e) => {
                    if !conn.as_ref().is_some_and(Connection::is_open) {
                        conn = None;
                    }
                    if e.is_retryable() && tries < server.retries {
                        tries += 1;
                        let wait = backoff(tries);
                        ctx.ui.warn(&format!(
                            "{}: {e}; trying again in {}s",
                            job.label,
                            wait.as_secs()
                        ));
                        std::thread::sleep(wait);
                        continue;
                    }
                    break Err(e);
                }
            }
        };
        reports[*slot] = Some(match outcome {
            Ok(d) => {
                let (r, _) = delivered(base, d);
                r
            }
            Err(e) => {
                Ui::warn_always(&format!("{}: {e}", job.label));
                if connecting {
                    let mut later = error_report(&e);
                    later.message = format!("not tried, the connection failed: {}", later.message);
                    unreachable = Some(later);
                }
                let rejected = match &e {
                    Error::Delivery { rejected, .. } => rejected.clone(),
                    _ => Vec::new(),
                };
                Report {
                    rejected,
                    error: Some(error_report(&e)),
                    ..base
                }
            }
        });
        let _ = progress.tick(&job.label);
    }
    if let Some(c) = conn {
        c.quit();
    }
    Ok(())
}
