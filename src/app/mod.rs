//! Runs one invocation: parses the command line, picks the mode (quiz, send, probe, grade),
//! checks every input before anything touches the network, delivers, reports and exits.
//!
//! Each mode has its own file; what they share (building, signing and delivering one message,
//! the outbox, the dry run) lives here.
mod grade;
mod probe;
mod quiz_mode;
mod send;

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::client::{self, Delivery, Envelope};
use crate::config::{FileConfig, Settings};
use crate::dkim::{self, Signer};
use crate::error::{Class, Error};
use crate::message::{header, Compose, Mailbox, MessageError, Outgoing, Prepared, Target};
use crate::report::{millis, ErrorReport, Report, Transport};

/// Where human text goes and how much of it: with `--json` stdout belongs to the report.
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

/// Entry point of the binary; returns the exit status.
pub fn main() -> i32 {
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => Class::Usage.exit_code(),
            };
            let _ = e.print();
            if code != 0 {
                usage_json(&e.to_string(), code);
            }
            return code;
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Class::Usage.exit_code();
        }
    };
    let ui = Ui {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let started = Instant::now();
    let (mut report, code) = match run(&cli, &matches, ui) {
        Ok(done) => done,
        Err(e) => {
            eprintln!("quizmail: error: {e}");
            let report = Report {
                error: Some(error_report(&e)),
                ..Report::default()
            };
            (report, e.exit_code())
        }
    };
    report.elapsed_ms = millis(started.elapsed());
    if cli.json {
        println!("{}", report.to_json());
    }
    code
}

/// cli.md: with `--json`, stdout is one JSON object, also when the command line itself is
/// wrong (kind "usage"); clap has not parsed `--json` then, so the raw arguments are looked at.
fn usage_json(message: &str, code: i32) {
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if !json {
        return;
    }
    let first = message.lines().next().unwrap_or_default();
    let report = Report {
        error: Some(ErrorReport {
            kind: Class::Usage.kind(),
            message: first.strip_prefix("error: ").unwrap_or(first).to_owned(),
            exit_code: code,
        }),
        ..Report::default()
    };
    println!("{}", report.to_json());
}

pub fn error_report(e: &Error) -> ErrorReport {
    ErrorReport {
        kind: e.class().kind(),
        message: e.to_string(),
        exit_code: e.exit_code(),
    }
}

/// Everything a mode needs, resolved once.
pub struct Ctx<'a> {
    pub cli: &'a Cli,
    pub ui: Ui,
    pub settings: Settings,
    pub signer: Option<Signer>,
    pub now: SystemTime,
}

/// The chosen mode and the flags (clap ids) it would ignore.
fn ignored_flags(cli: &Cli) -> (&'static str, Vec<String>) {
    if cli.dkim_dns_record {
        // It only prints a record: all but the key, its names and the config is ignored.
        const USED: [&str; 9] = [
            "dkim_dns_record",
            "dkim_key",
            "dkim_selector",
            "dkim_domain",
            "dkim_key_insecure",
            "from",
            "config",
            "quiet",
            "verbose",
        ];
        let ignored = Cli::command()
            .get_arguments()
            .map(|a| a.get_id().as_str().to_owned())
            .filter(|id| !USED.contains(&id.as_str()))
            .collect();
        return ("--dkim-dns-record", ignored);
    }
    let (mode, ignored): (&str, &[&str]) = if cli.probe {
        (
            "--probe",
            &[
                "to",
                "cc",
                "bcc",
                "envelope_from",
                "subject",
                "headers",
                "html_file",
                "attach",
                "inline",
                "quiz",
                "answers",
                "name",
                "dry_run",
                "save",
                "outbox",
                "dkim_key",
                "dkim_selector",
                "dkim_domain",
            ],
        )
    } else if cli.roster.is_some() {
        ("grade mode (--roster)", &["cc", "bcc"])
    } else if cli.is_send_mode() {
        ("send mode", &["quiz", "answers", "name"])
    } else {
        (
            "quiz mode (no --body, --body-file, --html-file or --message)",
            &["inline"],
        )
    };
    (mode, ignored.iter().map(|&id| id.to_owned()).collect())
}

/// A flag that cannot apply in the chosen mode is refused (exit 64), never silently ignored.
/// Only the command line counts: the environment and the config file hold defaults for every
/// mode.
fn refuse_ignored_flags(cli: &Cli, matches: &clap::ArgMatches) -> Result<(), Error> {
    let (mode, ignored) = ignored_flags(cli);
    refuse_given(matches, mode, &ignored)?;
    // --insecure verifies nothing: a pin or a CA given with it would not be checked, which
    // the user plainly expects. (--ca-file with --tls none is let through, as curl and msmtp
    // do, so a wrapper can pass its CA whatever the mode; so is --tls-fingerprint with
    // --ca-file: the pin, the stricter, is checked.)
    if cli.insecure {
        refuse_given(
            matches,
            "--insecure",
            &["tls_fingerprint", "ca_file"].map(String::from),
        )?;
    }
    Ok(())
}

/// Refuses the flags `ignored` (clap ids) that were given on the command line.
fn refuse_given(matches: &clap::ArgMatches, mode: &str, ignored: &[String]) -> Result<(), Error> {
    let command = Cli::command();
    let given: Vec<String> = command
        .get_arguments()
        .filter(|a| ignored.iter().any(|id| a.get_id() == id.as_str()))
        .filter(|a| {
            matches.value_source(a.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine)
        })
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} cannot be used with {mode}: it would be ignored; leave it out",
        given.join(", ")
    )))
}

fn run(cli: &Cli, matches: &clap::ArgMatches, ui: Ui) -> Result<(Report, i32), Error> {
    refuse_ignored_flags(cli, matches)?;
    let file = FileConfig::load(cli.config.as_deref())?;
    let settings = Settings::resolve(cli, matches, file)?;
    if settings.server.as_ref().is_some_and(|s| s.insecure) {
        Ui::warn_always(
            "--insecure: the server's certificate is NOT verified; anyone on the path can read \
             and change this session",
        );
    }
    if cli.probe && settings.server.is_none() {
        return Err(Error::Usage(
            "--probe needs a server: give --server HOST[:PORT] (or SMTP_SERVER)".into(),
        ));
    }
    let signer = load_signer(cli, &settings)?;
    let mut ctx = Ctx {
        cli,
        ui,
        settings,
        signer,
        now: SystemTime::now(),
    };
    if cli.dkim_dns_record {
        let signer = ctx.signer.as_ref().ok_or_else(|| {
            Error::Usage("--dkim-dns-record needs --dkim-key and --dkim-selector".into())
        })?;
        println!("{}", signer.dns_record());
        return Ok((Report::default(), 0));
    }
    if cli.probe {
        return probe::probe(&ctx);
    }
    if cli.roster.is_some() {
        return grade::grade(&ctx);
    }
    if cli.is_send_mode() {
        return send::send(&mut ctx);
    }
    quiz_mode::quiz(&ctx)
}

/// The DKIM signer, loaded before anything is sent so a bad key stops the run early.
fn load_signer(cli: &Cli, settings: &Settings) -> Result<Option<Signer>, Error> {
    let (key, selector) = match (&settings.dkim_key, &settings.dkim_selector) {
        (None, None) => {
            if settings.dkim_domain.is_some() {
                return Err(Error::Usage(
                    "--dkim-domain needs --dkim-key and --dkim-selector".into(),
                ));
            }
            return Ok(None);
        }
        (Some(k), Some(s)) => (k, s),
        _ => {
            return Err(Error::Usage(
                "DKIM signing needs both --dkim-key PEM and --dkim-selector SEL".into(),
            ))
        }
    };
    let domain = match &settings.dkim_domain {
        Some(d) => d.clone(),
        None => sender(settings)?.domain.clone(),
    };
    Ok(Some(Signer::load(
        key,
        selector,
        &domain,
        cli.dkim_key_insecure,
    )?))
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

/// A message that can be built again for what a server offers (SMTPUTF8, 8BITMIME).
pub enum Content {
    Compose(Box<Compose>),
    Prepared(Box<Prepared>),
}

impl Content {
    pub fn build(&self, target: Target) -> Result<Box<dyn Outgoing>, Error> {
        Ok(match self {
            Content::Compose(c) => Box::new((**c).clone().build(target).map_err(Error::from)?),
            Content::Prepared(p) => Box::new((**p).clone()),
        })
    }

    /// The build for a file or a dry run: the most portable form, UTF-8 headers only when
    /// an address cannot be written without them.
    pub fn build_offline(&self) -> Result<Box<dyn Outgoing>, Error> {
        match self.build(Target::default()) {
            Err(Error::Message {
                source: MessageError::NeedsSmtpUtf8(_),
                ..
            }) => self.build(Target {
                smtputf8: true,
                eight_bit_mime: false,
            }),
            other => other,
        }
    }
}

/// Signs with DKIM when a key is configured, as the last step before the bytes leave.
pub fn sign(ctx: &Ctx, msg: &mut dyn Outgoing) -> Result<(), Error> {
    let Some(signer) = &ctx.signer else {
        return Ok(());
    };
    let headers: Vec<(String, String)> = msg
        .headers()
        .iter()
        .map(|f| (f.name.clone(), f.value.clone()))
        .collect();
    let value = {
        let m: &dyn Outgoing = msg;
        signer.sign(&headers, &mut |w| m.write_body(w), ctx.now)?
    };
    msg.prepend_header(dkim::HEADER_NAME, &format!(" {value}"))?;
    Ok(())
}

/// Warns when SPF or DMARC alignment will fail (RFC 7489 §3.1, relaxed mode).
pub fn alignment(ctx: &Ctx, from: &Mailbox, envelope_from: &Mailbox) {
    let envelope = (envelope_from.domain != from.domain).then_some(envelope_from.domain.as_str());
    let dkim_domain = ctx.signer.as_ref().map(|s| s.domain());
    for w in dkim::alignment_warnings(&from.domain, envelope, dkim_domain) {
        ctx.ui.warn(&w);
    }
}

/// The `--save FILE` copy, exactly the bytes that go out (before dot-stuffing).
fn save(ctx: &Ctx, msg: &dyn Outgoing) -> Result<(), Error> {
    if let Some(path) = &ctx.cli.save {
        write_message_file(path, msg)?;
    }
    Ok(())
}

fn write_message_file(path: &std::path::Path, msg: &dyn Outgoing) -> Result<(), Error> {
    let io_err = |source| Error::Output {
        what: path.display().to_string(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io_err)?;
    let mut w = io::BufWriter::new(file);
    msg.write_to(&mut w).map_err(io_err)?;
    w.flush().map_err(io_err)?;
    Ok(())
}

/// Delivers one message: dry run, outbox or SMTP (with retries), and reports it.
pub fn deliver_one(
    ctx: &Ctx,
    content: &Content,
    envelope: &Envelope,
    quiz: Option<serde_json::Value>,
    announce: bool,
) -> Result<(Report, i32), Error> {
    if envelope.recipients.is_empty() {
        return Err(Error::Usage(
            "no recipients: give --target-email ADDR (or --read-recipients with --message)".into(),
        ));
    }
    // Built once offline first: every input problem surfaces before any connection.
    let mut offline = content.build_offline()?;
    sign(ctx, offline.as_mut())?;
    let mut report = Report {
        envelope_from: Some(envelope.from.addr_spec_unicode()),
        message_id: offline.message_id().map(str::to_owned),
        quiz,
        ..Report::default()
    };
    let recipients: Vec<String> = envelope
        .recipients
        .iter()
        .map(Mailbox::addr_spec_unicode)
        .collect();

    if ctx.cli.dry_run {
        save(ctx, offline.as_ref())?;
        if !ctx.cli.json {
            let stdout = io::stdout();
            let mut out = io::BufWriter::new(stdout.lock());
            offline
                .write_to(&mut out)
                .and_then(|()| out.flush())
                .map_err(|source| Error::Output {
                    what: "standard output".into(),
                    source,
                })?;
        }
        report.transport = Transport::DryRun;
        report.size = offline.size().ok();
        report.accepted = recipients;
        if announce {
            ctx.ui.say(&report.human());
            if ctx.cli.json && ctx.cli.save.is_none() {
                ctx.ui.say(
                    "With --json the message itself is not printed; add --save FILE to keep it.",
                );
            }
        }
        return Ok((report, 0));
    }

    let Some(server) = &ctx.settings.server else {
        save(ctx, offline.as_ref())?;
        let path = outbox(ctx, offline.as_ref())?;
        report.transport = Transport::Outbox;
        report.size = offline.size().ok();
        report.outbox_path = Some(path.display().to_string());
        report.accepted = recipients;
        if announce {
            ctx.ui.say(&report.human());
        }
        return Ok((report, 0));
    };

    report.server = Some(server.display());
    let result = client::send_with_retries(ctx, server, envelope, &mut |target| {
        let mut msg = content.build(target)?;
        sign(ctx, msg.as_mut())?;
        save(ctx, msg.as_ref())?;
        Ok(msg)
    });
    match result {
        Ok(delivery) => {
            let (report, code) = delivered(report, delivery);
            if announce {
                ctx.ui.say(&report.human());
            }
            if let Some(e) = &report.error {
                eprintln!("quizmail: error: {}", e.message);
            }
            Ok((report, code))
        }
        Err(failure) => {
            let (e, partial) = *failure;
            if let Some(info) = partial {
                report.tls = info.tls;
                report.auth = info.auth;
            }
            if let Error::Delivery { rejected, .. } = &e {
                report.rejected = rejected.clone();
            }
            eprintln!("quizmail: error: {e}");
            report.error = Some(error_report(&e));
            Ok((report, e.exit_code()))
        }
    }
}

/// Fills the report from a finished transaction; some recipients refused means exit 69
/// (75 when every refusal was temporary).
pub fn delivered(mut report: Report, d: Delivery) -> (Report, i32) {
    report.tls = d.info.tls;
    report.auth = d.info.auth;
    report.size = Some(d.size);
    report.accepted = d.accepted;
    report.rejected = d.rejected;
    report.queue_id = d.queue_id;
    report.reply = d.reply;
    if d.message_id.is_some() {
        report.message_id = d.message_id;
    }
    report.sent = !report.accepted.is_empty() && report.reply.is_some();
    if report.rejected.is_empty() {
        (report, 0)
    } else {
        let e = Error::Rejected {
            count: report.rejected.len(),
            of: report.rejected.len() + report.accepted.len(),
            transient: report.rejected.iter().all(|r| (400..500).contains(&r.code)),
        };
        report.error = Some(error_report(&e));
        (report, e.exit_code())
    }
}

/// Writes the message to the outbox as `<UTC timestamp>-<Message-ID local part>.eml`.
fn outbox(ctx: &Ctx, msg: &dyn Outgoing) -> Result<PathBuf, Error> {
    let dir = &ctx.settings.outbox;
    std::fs::create_dir_all(dir).map_err(|source| Error::Output {
        what: format!("the outbox {}", dir.display()),
        source,
    })?;
    let local = msg
        .message_id()
        .and_then(|id| {
            id.trim_matches(['<', '>'])
                .split('@')
                .next()
                .map(str::to_owned)
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| hex(&random16()));
    let safe: String = local
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!(
        "{}Z-{safe}.eml",
        header::compact_timestamp(ctx.now)
    ));
    write_message_file(&path, msg)?;
    Ok(path)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
