//! Delivery: signing, `--save`, the dry run, the outbox and SMTP, for one message or a batch.
//! The modes build content and addressing; this module decides where it goes and turns what
//! the driver reports into the run's report. Credentials are obtained here, once per run, so the
//! driver never reads a password.
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::compose::{hex, random16, Addressing};
use super::ui::Ui;
use super::Ctx;
use crate::cli::AuthArg;
use crate::config::{self, ServerSettings};
use crate::dkim;
use crate::driver::{self, Connection, Endpoint, Log, Setup};
use crate::error::{self, Error};
use crate::message::{header, Compose, Mailbox, MessageError, Outgoing, Prepared, Target};
use crate::quiz::Progress;
use crate::report::{ErrorReport, Rejected, ReplyReport, Report, TlsReport, Transport};
use crate::smtp::{
    AuthChoice, Capabilities, Credentials, Mechanism, MessageReport, RecipientStatus, Reply,
    ReplyClass, Secret, SecretKind,
};
use crate::transport::{Stream, TlsPolicy};

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

fn write_message_file(path: &Path, msg: &dyn Outgoing) -> Result<(), Error> {
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

/// One server and everything its connections share, prepared once per run: the TLS
/// configuration is built and the password obtained once, not again on a retry.
pub struct Smtp {
    endpoint: Endpoint,
    setup: Setup,
}

impl Smtp {
    /// `probe`: no password is read and no AUTH attempted.
    pub fn new(settings: &ServerSettings, ui: Ui, probe: bool) -> Result<Smtp, Error> {
        let tls_config = if settings.tls.is_tls() {
            let policy = if settings.insecure {
                TlsPolicy::Insecure
            } else if let Some(fp) = settings.fingerprint {
                TlsPolicy::Fingerprint(fp)
            } else if let Some(ca) = &settings.ca_file {
                TlsPolicy::CaFile(ca.clone())
            } else {
                TlsPolicy::WebRoots
            };
            Some(policy.client_config()?)
        } else {
            None
        };
        let credentials = match (&settings.user, probe) {
            (Some(user), false) => Some(credentials(settings, user)?),
            _ => None,
        };
        let log = if ui.verbose {
            Log::to(|line| eprintln!("{line}"))
        } else {
            Log::default()
        };
        Ok(Smtp {
            endpoint: Endpoint {
                host: settings.host.clone(),
                port: settings.port,
                tls: settings.tls,
                timeout: settings.timeout,
            },
            setup: Setup {
                ehlo: settings
                    .ehlo
                    .clone()
                    .or_else(super::compose::local_host_name),
                credentials,
                probe,
                tls_config,
                log,
            },
        })
    }

    pub fn open(&self) -> Result<Connection<Stream>, Error> {
        Ok(driver::open(&self.endpoint, &self.setup)?)
    }
}

/// Reads the password (or prompts) and names the mechanism rule of `--auth`. With
/// `--auth xoauth2|oauthbearer` the password sources supply the OAuth2 access token instead
/// (cli.md "OAuth2", msmtp's `passwordeval` convention), so `auto` and the named token
/// mechanisms are told that the secret is a bearer token.
fn credentials(settings: &ServerSettings, user: &str) -> Result<Credentials, Error> {
    let password = config::read_password(&settings.password, user)?;
    let kind = if settings.auth.takes_token() {
        SecretKind::BearerToken
    } else {
        SecretKind::Password
    };
    Ok(Credentials {
        user: user.to_owned(),
        // An access token printed by a command may end in spaces; they are never part of it.
        password: match kind {
            SecretKind::BearerToken => Secret::new(password.trim().as_bytes()),
            SecretKind::Password => Secret::new(password.into_bytes()),
        },
        kind,
        choice: match settings.auth {
            AuthArg::Auto => AuthChoice::Auto,
            AuthArg::Plain => AuthChoice::Named(Mechanism::Plain),
            AuthArg::Login => AuthChoice::Named(Mechanism::Login),
            AuthArg::CramMd5 => AuthChoice::Named(Mechanism::CramMd5),
            AuthArg::Xoauth2 => AuthChoice::Named(Mechanism::XOAuth2),
            AuthArg::Oauthbearer => AuthChoice::Named(Mechanism::OAuthBearer),
        },
    })
}

/// What the report says about the connection.
#[derive(Clone, Debug, Default)]
pub struct ConnInfo {
    pub tls: Option<TlsReport>,
    pub auth: Option<String>,
}

impl ConnInfo {
    fn of(conn: &Connection<Stream>, settings: &ServerSettings) -> ConnInfo {
        let tls = conn.tls_info();
        ConnInfo {
            tls: Some(TlsReport {
                mode: settings.tls.as_str().into(),
                version: tls.map(|t| t.version.clone()),
                cipher: tls.map(|t| t.cipher.clone()),
            }),
            auth: conn.auth_mechanism().map(|m| m.name().to_owned()),
        }
    }
}

/// The message layer's target: what this server lets a message use.
pub fn target(caps: Option<&Capabilities>) -> Target {
    Target {
        smtputf8: caps.is_some_and(Capabilities::smtputf8),
        eight_bit_mime: caps.is_some_and(Capabilities::eight_bit_mime),
    }
}

/// One message's outcome at the server.
#[derive(Clone, Debug, Default)]
pub struct Delivery {
    pub info: ConnInfo,
    pub size: u64,
    pub accepted: Vec<String>,
    pub rejected: Vec<Rejected>,
    /// Every refusal was temporary (4yz): those recipients may be tried later.
    pub rejections_transient: bool,
    pub reply: Option<ReplyReport>,
    pub queue_id: Option<String>,
    pub message_id: Option<String>,
}

fn reply_report(r: &Reply) -> ReplyReport {
    ReplyReport {
        code: r.code,
        enhanced: r.enhanced.map(|e| e.to_string()),
        text: r.text(),
    }
}

/// Submits one built message on an open connection and turns the session's report into the
/// run's delivery record.
fn submit(
    conn: &mut Connection<Stream>,
    settings: &ServerSettings,
    addressing: &Addressing,
    msg: &dyn Outgoing,
    more: bool,
) -> Result<Delivery, Error> {
    let smtputf8 = target(conn.capabilities()).smtputf8;
    let (from, recipients) = addressing.envelope_forms(smtputf8)?;
    let size = msg.size().map_err(|source| Error::Input {
        what: "the message".into(),
        source,
    })?;
    let report: MessageReport = conn.send(&from, &recipients, msg, more)?;
    let mut d = Delivery {
        info: ConnInfo::of(conn, settings),
        size,
        message_id: msg.message_id().map(str::to_owned),
        rejections_transient: true,
        ..Delivery::default()
    };
    for r in &report.recipients {
        match &r.status {
            RecipientStatus::Accepted(_) => d.accepted.push(r.address.clone()),
            RecipientStatus::Rejected(reply) => {
                d.rejections_transient &= reply.class() == ReplyClass::Transient;
                d.rejected.push(Rejected {
                    address: r.address.clone(),
                    code: reply.code,
                    enhanced: reply.enhanced.map(|e| e.to_string()),
                    text: reply.text(),
                });
            }
            RecipientStatus::NotTried => {}
        }
    }
    match report.outcome {
        Ok(delivered) => {
            d.queue_id = delivered.queue_id;
            d.reply = Some(reply_report(&delivered.reply));
            Ok(d)
        }
        Err(source) => Err(Error::Delivery {
            source,
            rejected: d.rejected,
        }),
    }
}

/// Delivers one message: dry run, outbox or SMTP (with `--retries`), and reports it.
pub fn deliver_one(
    ctx: &Ctx,
    content: &Content,
    addressing: &Addressing,
    quiz: Option<serde_json::Value>,
    announce: bool,
) -> Result<(Report, i32), Error> {
    if addressing.recipients.is_empty() {
        return Err(Error::Usage(
            "no recipients: give --target-email ADDR (or --read-recipients with --message)".into(),
        ));
    }
    // Built once offline first: every input problem surfaces before any connection.
    let mut offline = content.build_offline()?;
    sign(ctx, offline.as_mut())?;
    let mut report = Report {
        envelope_from: Some(addressing.from.addr_spec_unicode()),
        message_id: offline.message_id().map(str::to_owned),
        quiz,
        ..Report::default()
    };

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
        report.accepted = addressing.recipient_list();
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

    let Some(settings) = &ctx.settings.server else {
        save(ctx, offline.as_ref())?;
        let path = outbox(ctx, offline.as_ref())?;
        report.transport = Transport::Outbox;
        report.size = offline.size().ok();
        report.outbox_path = Some(path.display().to_string());
        report.accepted = addressing.recipient_list();
        if announce {
            ctx.ui.say(&report.human());
        }
        return Ok((report, 0));
    };

    report.server = Some(settings.display());
    let smtp = Smtp::new(settings, ctx.ui, false)?;
    let mut info = None;
    let result = driver::with_retries(
        settings.retries,
        || {
            let mut conn = smtp.open()?;
            info = Some(ConnInfo::of(&conn, settings));
            let result = (|| {
                let mut msg = content.build(target(conn.capabilities()))?;
                sign(ctx, msg.as_mut())?;
                save(ctx, msg.as_ref())?;
                submit(&mut conn, settings, addressing, msg.as_ref(), false)
            })();
            // A message refused before MAIL (SIZE, SMTPUTF8) leaves the dialogue in step:
            // end it with QUIT (RFC 5321 §4.1.1.10). After a delivery QUIT has gone already.
            conn.quit();
            result
        },
        |e, wait, next| {
            ctx.ui.warn(&format!(
                "{e}; trying again in {}s (attempt {next} of {})",
                wait.as_secs(),
                settings.retries + 1
            ))
        },
    );
    match result {
        Ok(delivery) => {
            let (report, code) = delivered(report, delivery);
            if announce {
                ctx.ui.say(&report.human());
            }
            if let Some(e) = &report.error {
                error::print(e);
            }
            Ok((report, code))
        }
        Err(e) => {
            if let Some(info) = info {
                report.tls = info.tls;
                report.auth = info.auth;
            }
            if let Error::Delivery { rejected, .. } = &e {
                report.rejected = rejected.clone();
            }
            let error = e.report(&ctx.hints());
            error::print(&error);
            report.error = Some(error);
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
        let e = Error::PartlyRefused {
            count: report.rejected.len(),
            of: report.rejected.len() + report.accepted.len(),
            transient: d.rejections_transient,
        };
        report.error = Some(e.report(&error::hint::Context::default()));
        (report, e.exit_code())
    }
}

/// One message of a batch: who it is for (for the progress bar) and what to send.
pub struct Job {
    pub label: String,
    pub content: Content,
    pub addressing: Addressing,
    pub quiz: Option<serde_json::Value>,
}

/// Delivers every job, in order, and returns one report each. Over SMTP they share one
/// connection (RSET between messages; after a 421 or a drop, a new one), each with
/// `--retries`; a connection that cannot be had at all fails the rest with that error
/// without trying them, so a wrong password is sent once and not once per message.
pub fn deliver_batch(
    ctx: &Ctx,
    jobs: &[Job],
    progress: &mut Progress<io::Stderr>,
) -> Result<Vec<Report>, Error> {
    let settings = match &ctx.settings.server {
        Some(settings) if !ctx.cli.dry_run => settings,
        _ => {
            let mut reports = Vec::new();
            for job in jobs {
                let (report, _) =
                    deliver_one(ctx, &job.content, &job.addressing, job.quiz.clone(), false)?;
                reports.push(report);
                let _ = progress.tick(&job.label);
            }
            return Ok(reports);
        }
    };
    let smtp = Smtp::new(settings, ctx.ui, false)?;
    let mut conn: Option<Connection<Stream>> = None;
    let mut unreachable: Option<ErrorReport> = None;
    let mut reports = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let base = Report {
            server: Some(settings.display()),
            envelope_from: Some(job.addressing.from.addr_spec_unicode()),
            quiz: job.quiz.clone(),
            ..Report::default()
        };
        if let Some(e) = &unreachable {
            reports.push(Report {
                error: Some(e.clone()),
                ..base
            });
            let _ = progress.tick(&job.label);
            continue;
        }
        let more = i + 1 < jobs.len();
        let mut connecting = false;
        let outcome = driver::with_retries(
            settings.retries,
            || {
                if !conn.as_ref().is_some_and(Connection::is_open) {
                    conn = None;
                    connecting = true;
                    conn = Some(smtp.open()?);
                    connecting = false;
                }
                let c = conn
                    .as_mut()
                    .ok_or_else(|| Error::Internal("no connection after opening one".into()))?;
                let mut msg = job.content.build(target(c.capabilities()))?;
                sign(ctx, msg.as_mut())?;
                let result = submit(c, settings, &job.addressing, msg.as_ref(), more);
                if !c.is_open() {
                    conn = None;
                }
                result
            },
            |e, wait, _| {
                ctx.ui.warn(&format!(
                    "{}: {e}; trying again in {}s",
                    job.label,
                    wait.as_secs()
                ))
            },
        );
        reports.push(match outcome {
            Ok(d) => delivered(base, d).0,
            Err(e) => {
                Ui::warn_always(&format!("{}: {e}", job.label));
                if connecting {
                    let mut later = e.report(&ctx.hints());
                    later.message = format!("not tried, the connection failed: {}", later.message);
                    unreachable = Some(later);
                }
                let rejected = match &e {
                    Error::Delivery { rejected, .. } => rejected.clone(),
                    _ => Vec::new(),
                };
                Report {
                    rejected,
                    error: Some(e.report(&ctx.hints())),
                    ..base
                }
            }
        });
        let _ = progress.tick(&job.label);
    }
    if let Some(c) = conn {
        c.quit();
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn compose(to: &str) -> Content {
        let mut c = Compose::new(
            Mailbox::parse("quiz@example.com").unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            [7; 16],
        );
        c.to = vec![Mailbox::parse(to).unwrap()];
        c.subject = "t".into();
        c.text = Some(b"hello\n".to_vec());
        Content::Compose(Box::new(c))
    }

    fn written(msg: &dyn Outgoing) -> String {
        let mut out = Vec::new();
        msg.write_to(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn offline_builds_are_ascii_unless_an_address_needs_utf8() {
        let ascii = compose("ada@example.com").build_offline().unwrap();
        assert!(!ascii.needs_smtputf8());
        assert!(written(ascii.as_ref()).is_ascii());
        // A UTF-8 local part has no ASCII form: the file keeps it as UTF-8 (RFC 6532).
        let utf8 = compose("jörg@example.com").build_offline().unwrap();
        assert!(utf8.needs_smtputf8());
        assert!(written(utf8.as_ref()).contains("To: jörg@example.com"));
        // Sent to a server without SMTPUTF8, the same message is a data error.
        assert!(compose("jörg@example.com")
            .build(Target::default())
            .is_err());
    }

    fn refusal(code: u16) -> Rejected {
        Rejected {
            address: format!("r{code}@example.com"),
            code,
            enhanced: None,
            text: "no".into(),
        }
    }

    #[test]
    fn a_partial_refusal_is_sent_with_exit_69_or_75_when_every_refusal_was_temporary() {
        let delivery = |rejected: Vec<Rejected>, transient| Delivery {
            accepted: vec!["ada@example.com".into()],
            rejected,
            rejections_transient: transient,
            reply: Some(ReplyReport {
                code: 250,
                enhanced: None,
                text: "queued".into(),
            }),
            ..Delivery::default()
        };
        let (report, code) = delivered(Report::default(), delivery(vec![], true));
        assert_eq!((report.sent, code), (true, 0));
        assert!(report.error.is_none());
        let (report, code) = delivered(Report::default(), delivery(vec![refusal(550)], false));
        assert_eq!((report.sent, code), (true, 69));
        let error = report.error.unwrap();
        assert_eq!(
            (error.kind, error.message.as_str()),
            ("permanent", "1 of 2 recipients refused")
        );
        let (report, code) = delivered(Report::default(), delivery(vec![refusal(451)], true));
        assert_eq!((report.sent, code), (true, 75));
        assert_eq!(report.rejected.len(), 1);
    }

    #[test]
    fn targets_follow_the_capabilities() {
        assert_eq!(target(None), Target::default());
        let reply = Reply::new(
            250,
            None,
            vec!["mx".into(), "SMTPUTF8".into(), "8BITMIME".into()],
        );
        let caps = Capabilities::parse(&reply);
        let t = target(Some(&caps));
        assert!(t.smtputf8 && t.eight_bit_mime);
    }
}
