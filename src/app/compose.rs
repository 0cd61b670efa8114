//! Composition: who a message is from and to, the extra headers, and the quiz results message
//! (cli.md "The results message"). Everything here checks user input and builds values; nothing
//! is sent.
use std::time::SystemTime;

use crate::cli::Cli;
use crate::cli::PriorityArg;
use crate::config::Settings;
use crate::error::Error;
use crate::message::{
    parse_header_arg, Attachment, Compose, Mailbox, MessageError, MessageId, Priority,
};
use crate::quiz::{self, Attempt, Quiz};

/// Who the message goes to and who bounces go to (RFC 5321 §2.3.1), as mailboxes; the driver
/// gets their envelope forms once the server's SMTPUTF8 support is known.
#[derive(Clone, Debug)]
pub struct Addressing {
    pub from: Mailbox,
    pub recipients: Vec<Mailbox>,
}

impl Addressing {
    /// MAIL FROM and RCPT TO arguments for a server with or without SMTPUTF8.
    pub fn envelope_forms(&self, smtputf8: bool) -> Result<(String, Vec<String>), Error> {
        let from = self
            .from
            .envelope_form(smtputf8)
            .map_err(|e| with_flag("envelope", e))?;
        let recipients = self
            .recipients
            .iter()
            .map(|m| m.envelope_form(smtputf8))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| with_flag("recipient", e))?;
        Ok((from, recipients))
    }

    pub fn recipient_list(&self) -> Vec<String> {
        self.recipients
            .iter()
            .map(Mailbox::addr_spec_unicode)
            .collect()
    }
}

/// The From mailbox: `--from`, SMTP_FROM or the config file; else `--user` when it is an
/// address; else `$USER@host`, as sendmail and msmtp do.
pub fn sender(settings: &Settings) -> Result<Mailbox, Error> {
    if let Some(from) = &settings.from {
        return Mailbox::parse(from).map_err(|e| with_flag("--from", e));
    }
    if let Some(user) = settings.server.as_ref().and_then(|s| s.user.as_ref()) {
        if let Ok(m) = Mailbox::parse(user) {
            return Ok(m);
        }
    }
    let user = std::env::var("USER")
        .ok()
        .filter(|u| {
            !u.is_empty()
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
        .unwrap_or_else(|| "quizmail".into());
    Mailbox::parse(&format!(
        "{user}@{}",
        local_host_name().unwrap_or_else(|| "localhost".into())
    ))
    .map_err(|e| with_flag("--from", e))
}

/// The host's name when it is fully qualified (has a dot), else None.
pub fn local_host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()?;
    let name = name.trim();
    (name.contains('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    .then(|| name.to_ascii_lowercase())
}

/// Adds the flag's name to a message-layer error so the one-line error names what to fix.
pub fn with_flag(flag: &str, e: MessageError) -> Error {
    Error::Message {
        context: flag.to_owned(),
        source: e,
    }
}

/// Parses repeatable, comma-separated address flags.
pub fn addresses(flag: &str, values: &[String]) -> Result<Vec<Mailbox>, Error> {
    let mut out = Vec::new();
    for v in values {
        out.extend(Mailbox::parse_list(v).map_err(|e| with_flag(flag, e))?);
    }
    Ok(out)
}

/// `--header` values, for every message a run sends.
pub fn extra_headers(cli: &Cli) -> Result<Vec<(String, String)>, Error> {
    cli.headers
        .iter()
        .map(|h| parse_header_arg(h).map_err(|e| with_flag("--header", e)))
        .collect()
}

/// `--reply-to`, `--in-reply-to`, `--references` and `--priority`, checked once before any
/// work and applied to every message a mode composes.
#[derive(Clone, Debug, Default)]
pub struct HeaderFlags {
    reply_to: Option<Mailbox>,
    in_reply_to: Option<MessageId>,
    references: Vec<MessageId>,
    priority: Priority,
}

impl HeaderFlags {
    pub fn from_cli(cli: &Cli) -> Result<HeaderFlags, Error> {
        let reply_to = match &cli.reply_to {
            Some(r) => Some(Mailbox::parse(r).map_err(|e| with_flag("--reply-to", e))?),
            None => None,
        };
        let in_reply_to = match &cli.in_reply_to {
            Some(id) => Some(MessageId::parse(id).map_err(|e| with_flag("--in-reply-to", e))?),
            None => None,
        };
        // RFC 5322 §3.6.4: a reply's References holds its parent's; with only the parent's
        // Message-ID known, that one alone still threads the reply under it.
        let references = match &cli.references {
            Some(list) => MessageId::parse_list(list).map_err(|e| with_flag("--references", e))?,
            None => in_reply_to.iter().cloned().collect(),
        };
        let priority = match cli.priority {
            Some(PriorityArg::High) => Priority::High,
            Some(PriorityArg::Low) => Priority::Low,
            Some(PriorityArg::Normal) | None => Priority::Normal,
        };
        Ok(HeaderFlags {
            reply_to,
            in_reply_to,
            references,
            priority,
        })
    }

    pub fn apply(&self, compose: &mut Compose) {
        compose.reply_to.clone_from(&self.reply_to);
        compose.in_reply_to.clone_from(&self.in_reply_to);
        compose.references.clone_from(&self.references);
        compose.priority = self.priority;
    }
}

/// MAIL FROM: `--envelope-from`, else the From address (which keeps SPF aligned).
pub fn envelope_sender(cli: &Cli, from: &Mailbox) -> Result<Mailbox, Error> {
    match &cli.envelope_from {
        Some(e) => Mailbox::parse(e).map_err(|e| with_flag("--envelope-from", e)),
        None => Ok(from.clone()),
    }
}

/// The addressing of a composed message: every To, Cc and Bcc once; MAIL FROM from
/// `--envelope-from` or the From address.
pub fn addressing(cli: &Cli, compose: &Compose) -> Result<Addressing, Error> {
    let mut recipients: Vec<Mailbox> = compose
        .to
        .iter()
        .chain(&compose.cc)
        .chain(&compose.bcc)
        .cloned()
        .collect();
    dedup(&mut recipients);
    Ok(Addressing {
        from: envelope_sender(cli, &compose.from)?,
        recipients,
    })
}

/// Removes repeated addresses (case-insensitive domain), keeping the first.
pub fn dedup(list: &mut Vec<Mailbox>) {
    let mut seen = std::collections::HashSet::new();
    list.retain(|m| seen.insert((m.local.clone(), m.domain.to_lowercase())));
}

/// The results message of cli.md: text and HTML alternatives plus `results.csv`.
pub fn results_message(
    quiz: &Quiz,
    attempt: &Attempt,
    from: Mailbox,
    to: Vec<Mailbox>,
    now: SystemTime,
) -> Compose {
    let mut c = Compose::new(from, now, random16());
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

/// The class summary of grade mode, to the teacher.
pub fn summary_message(
    quiz: &Quiz,
    entries: &[quiz::RosterEntry],
    from: Mailbox,
    to: Vec<Mailbox>,
    now: SystemTime,
) -> Compose {
    let summary = quiz::summarise(quiz, entries);
    let mut c = Compose::new(from, now, random16());
    c.to = to;
    c.subject = quiz::summary_subject(quiz, &summary);
    c.text = Some(quiz::summary_text(quiz, &summary, entries).into_bytes());
    c.html = Some(quiz::summary_html(quiz, &summary, entries).into_bytes());
    c.attachments = vec![Attachment::Data {
        filename: "class-results.csv".into(),
        data: quiz::summary_csv(quiz, entries).into_bytes(),
    }];
    c
}

/// Sixteen bytes from the operating system's CSPRNG, for Message-IDs and boundaries.
pub fn random16() -> [u8; 16] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut out).is_err() {
        // The time is unique enough for a Message-ID when the OS has no randomness to give.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        out = (nanos ^ u128::from(std::process::id())).to_le_bytes();
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keeps_the_first_and_ignores_domain_case() {
        let mut list = vec![
            Mailbox::parse("a@X.test").unwrap(),
            Mailbox::parse("b@x.test").unwrap(),
            Mailbox::parse("a@x.TEST").unwrap(),
        ];
        dedup(&mut list);
        let got: Vec<String> = list.iter().map(Mailbox::addr_spec_unicode).collect();
        assert_eq!(got, ["a@X.test", "b@x.test"]);
    }

    #[test]
    fn envelope_forms_need_smtputf8_for_a_unicode_local_part() {
        let a = Addressing {
            from: Mailbox::parse("quiz@example.com").unwrap(),
            recipients: vec![Mailbox::parse("jörg@example.com").unwrap()],
        };
        assert!(a.envelope_forms(false).is_err());
        let (from, to) = a.envelope_forms(true).unwrap();
        assert_eq!(from, "quiz@example.com");
        assert_eq!(to, ["jörg@example.com"]);
    }

    fn header_flags(args: &[&str]) -> Result<Compose, Error> {
        use clap::Parser;
        let cli =
            Cli::try_parse_from(std::iter::once("quizmail").chain(args.iter().copied())).unwrap();
        let flags = HeaderFlags::from_cli(&cli)?;
        let mut c = Compose::new(
            Mailbox::parse("a@example.com").unwrap(),
            SystemTime::UNIX_EPOCH,
            [0; 16],
        );
        flags.apply(&mut c);
        Ok(c)
    }

    #[test]
    fn in_reply_to_also_sets_references_unless_they_are_given() {
        let c = header_flags(&["--in-reply-to", "p@ci.example"]).unwrap();
        assert_eq!(
            c.in_reply_to.as_ref().map(MessageId::as_str),
            Some("<p@ci.example>")
        );
        let refs: Vec<&str> = c.references.iter().map(MessageId::as_str).collect();
        assert_eq!(refs, ["<p@ci.example>"]);
        let c = header_flags(&["--in-reply-to", "<p@x>", "--references", "<r@x> <p@x>"]).unwrap();
        let refs: Vec<&str> = c.references.iter().map(MessageId::as_str).collect();
        assert_eq!(refs, ["<r@x>", "<p@x>"]);
        let c = header_flags(&["--reply-to", "Ops <ops@x.test>", "--priority", "low"]).unwrap();
        assert_eq!(c.reply_to.unwrap().addr_spec_unicode(), "ops@x.test");
        assert_eq!(c.priority, Priority::Low);
        assert_eq!(
            header_flags(&["--priority", "normal"]).unwrap().priority,
            Priority::Normal
        );
    }

    #[test]
    fn bad_header_flags_are_data_errors_naming_the_flag() {
        for (args, flag) in [
            (&["--in-reply-to", "no-at-sign"][..], "--in-reply-to"),
            (&["--in-reply-to", "<a@b>\r\nBcc: x@y"], "--in-reply-to"),
            (&["--references", "<a@b> c"], "--references"),
            (&["--references", " "], "--references"),
            (&["--reply-to", "not an address"], "--reply-to"),
            (&["--reply-to", "a@b.test\r\nBcc: x@y.test"], "--reply-to"),
        ] {
            let e = header_flags(args).unwrap_err();
            assert_eq!(e.exit_code(), 65, "{args:?}");
            assert!(e.to_string().starts_with(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }
}
