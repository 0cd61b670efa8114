//! `--flush`: sends what the outbox holds (cli.md "The outbox: nothing is lost"), oldest first,
//! over one connection with the server settings as for sending; `--due` only what the
//! schedule says is due, `--list` only lists. A message leaves the queue only after its final
//! `250`, in `delivery::keep`; this module picks what to try and holds the folder's lock.
use std::io::{self, IsTerminal};
use std::time::Duration;

use super::compose::Addressing;
use super::delivery::{deliver_batch, Content, Job};
use super::queue::{self, Entry, Folder, Record, Store};
use super::ui::Ui;
use super::Ctx;
use crate::error::{Class, Error};
use crate::message::Mailbox;
use crate::quiz::Progress;
use crate::report::{ErrorReport, Report};

/// cli.md: `--max-age` defaults to five days.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 86_400);

pub fn flush(ctx: &Ctx) -> Result<(Report, i32), Error> {
    let store = Store::new(&ctx.settings.outbox);
    if ctx.cli.list {
        return list(ctx, &store);
    }
    let max_age = match &ctx.cli.max_age {
        Some(text) => queue::parse_age(text).map_err(|e| Error::Usage(format!("--max-age {e}")))?,
        None => DEFAULT_MAX_AGE,
    };
    if ctx.settings.server.is_none() {
        return Err(Error::Usage(
            "--flush needs a server: give --server HOST[:PORT] (or server in the config file)"
                .into(),
        ));
    }
    let Some(_lock) = store.try_lock()? else {
        ctx.ui.say(&format!(
            "Another quizmail --flush is sending from {}: nothing to do here.",
            store.dir().display()
        ));
        return Ok((Report::default(), 0));
    };
    let now = queue::unix(ctx.now);
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for entry in store.list(Folder::Waiting)? {
        if entry.record.sending_since.is_some() {
            // A flush died with this message's transaction open: it may have been delivered.
            let why = "a flush stopped while sending it: it may have been delivered, so it is \
                       NOT sent again";
            let to = set_aside(&store, &entry, Folder::Unconfirmed, why)?;
            ctx.ui
                .say(&format!("{}: {why}; moved to {}", entry.name, to));
            continue;
        }
        if now.saturating_sub(entry.record.created_at) > max_age.as_secs() {
            let why = format!(
                "not delivered within --max-age {}",
                ctx.cli.max_age.as_deref().unwrap_or("5d")
            );
            let to = set_aside(&store, &entry, Folder::Failed, &why)?;
            Ui::warn_always(&format!("{}: {why}; moved to {to}", entry.name));
            skipped.push(failed_report(&entry, &why));
            continue;
        }
        if ctx.cli.due && entry.record.next_attempt_at > now {
            continue;
        }
        match job(&store, &entry) {
            Ok(job) => jobs.push(job),
            Err(e) => {
                Ui::warn_always(&format!("{}: {e}", entry.name));
                skipped.push(Report {
                    error: Some(e.report(&ctx.hints())),
                    ..failed_report(&entry, "")
                });
            }
        }
    }
    if jobs.is_empty() && skipped.is_empty() {
        ctx.ui.say(&format!(
            "Nothing {} in {}.",
            if ctx.cli.due { "due" } else { "waiting" },
            store.dir().display()
        ));
        return Ok((
            Report {
                messages: Some(Vec::new()),
                ..Report::default()
            },
            0,
        ));
    }
    let show = !ctx.ui.quiet && io::stderr().is_terminal();
    let mut progress = Progress::new(jobs.len(), io::stderr(), show);
    let mut messages = deliver_batch(ctx, &jobs, &mut progress)?;
    let _ = progress.finish();
    messages.extend(skipped);
    let failed = messages.iter().filter(|r| r.error.is_some()).count();
    let code = messages
        .iter()
        .find_map(|r| r.error.as_ref())
        .map_or(0, |e| e.exit_code);
    ctx.ui.say(&format!(
        "Flushed {}: {} of {} messages sent; {failed} not.",
        store.dir().display(),
        messages.len() - failed,
        messages.len()
    ));
    let top = Report {
        sent: failed == 0,
        server: ctx.settings.server.as_ref().map(|s| s.display()),
        error: messages.iter().find_map(|r| r.error.clone()),
        messages: Some(messages),
        ..Report::default()
    };
    Ok((top, code))
}

/// The batch job of a kept message: its stored bytes to its pending recipients.
fn job(store: &Store, entry: &Entry) -> Result<Job, Error> {
    let parse = |a: &str| {
        Mailbox::parse(a).map_err(|e| Error::Data(format!("the outbox record names {a:?}: {e}")))
    };
    let from = parse(&entry.record.envelope_from)?;
    let recipients = entry
        .record
        .pending
        .iter()
        .map(|a| parse(a))
        .collect::<Result<Vec<_>, _>>()?;
    let stored = store.read_message(Folder::Waiting, &entry.name, &entry.record)?;
    Ok(Job {
        label: entry.name.clone(),
        content: Content::Stored(Box::new(stored)),
        addressing: Addressing { from, recipients },
        quiz: None,
        kept: Some(entry.clone()),
    })
}

/// Moves a waiting message to `folder` (message first, then its record, then the waiting
/// record goes), with `why` as its last error; returns where it is now.
fn set_aside(store: &Store, entry: &Entry, folder: Folder, why: &str) -> Result<String, Error> {
    let stored = store.read_message(Folder::Waiting, &entry.name, &entry.record)?;
    let record = Record {
        sending_since: None,
        last_error: Some(why.to_owned()),
        ..entry.record.clone()
    };
    let name = store.free_name(folder, &entry.name);
    let path = store.put(folder, &name, &stored, &record)?;
    store.remove(Folder::Waiting, &entry.name)?;
    Ok(path.display().to_string())
}

fn failed_report(entry: &Entry, why: &str) -> Report {
    Report {
        envelope_from: Some(entry.record.envelope_from.clone()),
        message_id: entry.record.message_id.clone(),
        // Given up on for good: the permanent row of the exit table (69).
        error: (!why.is_empty()).then(|| ErrorReport {
            kind: Class::Permanent.kind(),
            message: why.to_owned(),
            exit_code: Class::Permanent.exit_code(),
            hint: None,
        }),
        ..Report::default()
    }
}

/// `--flush --list` (`-bp`): one line per message, folder by folder, like `mailq`.
fn list(ctx: &Ctx, store: &Store) -> Result<(Report, i32), Error> {
    let mut out = String::new();
    let mut total = 0;
    for folder in [Folder::Waiting, Folder::Unconfirmed, Folder::Failed] {
        let entries = store.list(folder)?;
        let orphans = store.orphans(folder);
        if entries.is_empty() && orphans.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "{} ({}):\n",
            store.folder(folder).display(),
            folder.name()
        ));
        for e in &entries {
            let r = &e.record;
            out.push_str(&format!(
                "  {}  {}  from {}  to {}  attempts {}{}\n",
                e.name,
                r.message_id.as_deref().unwrap_or("(no Message-ID)"),
                r.envelope_from,
                r.pending.join(", "),
                r.attempts,
                r.last_error
                    .as_deref()
                    .map(|l| format!("  last error: {l}"))
                    .unwrap_or_default()
            ));
        }
        for o in &orphans {
            out.push_str(&format!(
                "  {}  (no .json record: never sent by --flush)\n",
                o.display()
            ));
        }
        total += entries.len();
    }
    if total == 0 && out.is_empty() {
        out = format!("{} is empty.\n", store.dir().display());
    }
    if ctx.cli.json {
        eprint!("{out}");
    } else {
        print!("{out}");
    }
    Ok((Report::default(), 0))
}
