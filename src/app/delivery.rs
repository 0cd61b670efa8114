//! Delivery: signing, `--save`, the dry run, the outbox and SMTP, for one message or a batch.
//! The modes build content and addressing; this module decides where it goes and turns what
//! the driver reports into the run's report. Credentials are obtained here, once per run, so the
//! driver never reads a password.
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::compose::{hex, random16, Addressing};
use super::queue::{self, Entry, Folder, Record, Refusal, Store, Stored};
use super::ui::Ui;
use super::Ctx;
use crate::cli::AuthArg;
use crate::config::{self, ServerSettings};
use crate::dkim;
use crate::driver::{self, Connection, DriverError, Endpoint, Log, Setup};
use crate::error::{self, Class, Error};
use crate::message::{header, Compose, Mailbox, MessageError, Outgoing, Prepared, Target};
use crate::quiz::Progress;
use crate::report::{ErrorReport, Rejected, ReplyReport, Report, TlsReport, Transport};
use crate::smtp::{
    AuthChoice, Capabilities, Credentials, Dsn, Mechanism, MessageReport, RecipientStatus, Reply,
    ReplyClass, Secret, SecretKind, SmtpError,
};
use crate::transport::{Stream, TlsPolicy};

/// A message that can be built again for what a server offers (SMTPUTF8, 8BITMIME).
pub enum Content {
    Compose(Box<Compose>),
    Prepared(Box<Prepared>),
    /// A message kept in the outbox: sent as it was stored.
    Stored(Box<Stored>),
}

impl Content {
    pub fn build(&self, target: Target) -> Result<Box<dyn Outgoing>, Error> {
        Ok(match self {
            Content::Compose(c) => Box::new((**c).clone().build(target).map_err(Error::from)?),
            Content::Prepared(p) => Box::new((**p).clone()),
            Content::Stored(s) => Box::new((**s).clone()),
        })
    }

    /// The build for this server, DKIM-signed when signing is on; a stored message already
    /// carries whatever signature it was built with.
    fn build_signed(&self, ctx: &Ctx, target: Target) -> Result<Box<dyn Outgoing>, Error> {
        let mut msg = self.build(target)?;
        if !matches!(self, Content::Stored(_)) {
            sign(ctx, msg.as_mut())?;
        }
        Ok(msg)
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

/// `<UTC timestamp>Z-<Message-ID local part>`: the outbox's file names sort by creation.
fn outbox_name(ctx: &Ctx, msg: &dyn Outgoing) -> String {
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
    format!("{}Z-{safe}", header::compact_timestamp(ctx.now))
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
    /// DSN flags were given but the server does not offer DSN: they were left out.
    pub dsn_not_offered: bool,
}

/// The RFC 3461 parameters the command line asks for (`--dsn-notify`, `--dsn-ret`, `--envid`).
pub fn dsn_request(ctx: &Ctx) -> Dsn {
    Dsn {
        notify: ctx.cli.dsn_notify,
        ret: ctx.cli.dsn_ret,
        envid: ctx.cli.envid.clone(),
    }
}

/// The one warning for DSN flags the server could not take (cli.md: "otherwise one warning and
/// the message goes without them"), naming the flags that were dropped.
fn warn_dsn_not_offered(ctx: &Ctx) {
    let given: Vec<&str> = [
        (ctx.cli.dsn_notify.is_some(), "--dsn-notify"),
        (ctx.cli.dsn_ret.is_some(), "--dsn-ret"),
        (ctx.cli.envid.is_some(), "--envid"),
    ]
    .into_iter()
    .filter_map(|(on, flag)| on.then_some(flag))
    .collect();
    ctx.ui.warn(&format!(
        "the server does not offer DSN: sending without {}",
        given.join(", ")
    ));
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
    dsn: &Dsn,
    msg: &dyn Outgoing,
    more: bool,
    seen: &mut Vec<Seen>,
) -> Result<Delivery, Error> {
    seen.clear();
    let smtputf8 = target(conn.capabilities()).smtputf8;
    let (from, recipients) = addressing.envelope_forms(smtputf8)?;
    let size = msg.size().map_err(|source| Error::Input {
        what: "the message".into(),
        source,
    })?;
    let report: MessageReport = conn.send_with(&from, &recipients, dsn, msg, more)?;
    seen.extend(report.recipients.iter().map(|r| match &r.status {
        RecipientStatus::Accepted(_) => Seen::Accepted,
        RecipientStatus::Rejected(reply) if reply.class() == ReplyClass::Transient => {
            Seen::Deferred(reply.to_string())
        }
        RecipientStatus::Rejected(reply) => Seen::Refused(reply.to_string()),
        RecipientStatus::NotTried => Seen::NotTried,
    }));
    let mut d = Delivery {
        info: ConnInfo::of(conn, settings),
        size,
        message_id: msg.message_id().map(str::to_owned),
        rejections_transient: true,
        dsn_not_offered: report.dsn_not_offered,
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
        let fates = vec![Fate::Deferred; addressing.recipients.len()];
        let kept = keep(
            ctx,
            offline.as_ref(),
            addressing,
            None,
            &fates,
            Some("no server is configured".into()),
            false,
        )?;
        report.transport = Transport::Outbox;
        report.size = offline.size().ok();
        report.outbox_path = kept.path().map(|p| p.display().to_string());
        report.accepted = addressing.recipient_list();
        if announce {
            ctx.ui.say(&report.human());
        }
        return Ok((report, 0));
    };

    report.server = Some(settings.display());
    let smtp = Smtp::new(settings, ctx.ui, false)?;
    let dsn = dsn_request(ctx);
    let mut info = None;
    // The build for this server once there was one, so what is kept is what would be sent.
    let mut built: Option<Box<dyn Outgoing>> = None;
    let mut seen = Vec::new();
    let result = driver::with_retries(
        settings.retries,
        || {
            let mut conn = smtp.open()?;
            info = Some(ConnInfo::of(&conn, settings));
            let result = (|| {
                let msg = content.build_signed(ctx, target(conn.capabilities()))?;
                save(ctx, msg.as_ref())?;
                let sent = submit(
                    &mut conn,
                    settings,
                    addressing,
                    &dsn,
                    msg.as_ref(),
                    false,
                    &mut seen,
                );
                built = Some(msg);
                sent
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
    let fates = settle(addressing.recipients.len(), &seen, &result);
    let msg = built.unwrap_or(offline);
    let last_error = result.as_ref().err().map(ToString::to_string);
    let kept = if fates.iter().all(|f| *f == Fate::Delivered) {
        Ok(Kept::default())
    } else {
        keep(
            ctx,
            msg.as_ref(),
            addressing,
            None,
            &fates,
            last_error,
            true,
        )
        .map_err(cannot_keep)
    };
    let (mut report, code) = match result {
        Ok(delivery) => {
            if delivery.dsn_not_offered {
                warn_dsn_not_offered(ctx);
            }
            let (report, code) = delivered(report, delivery);
            if announce {
                ctx.ui.say(&report.human());
            }
            if let Some(e) = &report.error {
                error::print(e);
            }
            (report, code)
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
            (report, e.exit_code())
        }
    };
    match kept {
        Ok(kept) => {
            report.outbox_path = kept.path().map(|p| p.display().to_string());
            ctx.ui.say(&kept.notice(addressing, &fates));
            Ok((report, code))
        }
        Err(e) => {
            let error = e.report(&ctx.hints());
            error::print(&error);
            let code = error.exit_code;
            report.error = Some(error);
            Ok((report, code))
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

// ---------------------------------------------------------------------------------------------
// Keeping what was not delivered (cli.md "The outbox: nothing is lost")

/// What one recipient said in the last transaction, in envelope order.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    Accepted,
    Deferred(String),
    Refused(String),
    NotTried,
}

/// Where one recipient stands after an attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Fate {
    Delivered,
    /// To be tried again.
    Deferred,
    /// Refused for good, with the reply.
    Refused(String),
    /// The end of the data went out and no reply came: it may have been delivered.
    Unconfirmed,
}

/// The one rule from a transaction's outcome to each recipient's fate. `seen` is what each
/// RCPT got when the session produced a report (empty when the connection failed first).
pub fn settle(count: usize, seen: &[Seen], result: &Result<Delivery, Error>) -> Vec<Fate> {
    let seen_at = |i: usize| seen.get(i).cloned().unwrap_or(Seen::NotTried);
    let (maybe_delivered, message_refused) = match result {
        Ok(_) => (false, None),
        Err(e) => {
            let maybe = match e {
                Error::Driver(d) => d.maybe_delivered(),
                Error::Delivery { source, .. } => source.may_have_been_delivered(),
                _ => false,
            };
            // A 5xx to the message itself (MAIL, DATA, its end) or a message this server
            // cannot take (SMTPUTF8): failed/. Anything else (the connection, AUTH, TLS, a 4xx)
            // says nothing against the message: it waits.
            let refused = match e {
                Error::Delivery { .. }
                | Error::Message { .. }
                | Error::Data(_)
                | Error::Driver(DriverError::Smtp(SmtpError::TooBig { .. }))
                    if matches!(e.class(), Class::Permanent | Class::Data) =>
                {
                    Some(e.to_string())
                }
                _ => None,
            };
            (maybe, refused)
        }
    };
    (0..count)
        .map(|i| match (seen_at(i), result) {
            (Seen::Refused(reply), _) => Fate::Refused(reply),
            (Seen::Deferred(_), _) => Fate::Deferred,
            (Seen::Accepted, Ok(_)) => Fate::Delivered,
            _ if maybe_delivered => Fate::Unconfirmed,
            (_, Ok(_)) => Fate::Deferred,
            (_, Err(_)) => match &message_refused {
                Some(reply) => Fate::Refused(reply.clone()),
                None => Fate::Deferred,
            },
        })
        .collect()
}

/// Where a message that was not (fully) delivered is now kept.
#[derive(Clone, Debug, Default)]
pub struct Kept {
    pub waiting: Option<PathBuf>,
    pub failed: Option<PathBuf>,
    pub unconfirmed: Option<PathBuf>,
}

impl Kept {
    /// The path the report names: where the message waits, else where it needs a look.
    pub fn path(&self) -> Option<&PathBuf> {
        self.waiting
            .as_ref()
            .or(self.unconfirmed.as_ref())
            .or(self.failed.as_ref())
    }

    /// The stderr lines: it was NOT sent, where it is, and what to do about it.
    pub fn notice(&self, addressing: &Addressing, fates: &[Fate]) -> String {
        let who = |want: &dyn Fn(&Fate) -> bool| -> String {
            addressing
                .recipients
                .iter()
                .zip(fates)
                .filter(|(_, f)| want(f))
                .map(|(m, _)| m.addr_spec_unicode())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = String::new();
        if let Some(p) = &self.waiting {
            out.push_str(&format!(
                "NOT sent to {}: the message is kept in {}\nsend it with: quizmail --flush\n",
                who(&|f| *f == Fate::Deferred),
                p.display()
            ));
        }
        if let Some(p) = &self.unconfirmed {
            out.push_str(&format!(
                "the connection ended before the server confirmed the message for {}: it may \
                 have been delivered, so it is NOT sent again; kept in {}\n",
                who(&|f| *f == Fate::Unconfirmed),
                p.display()
            ));
        }
        if let Some(p) = &self.failed {
            out.push_str(&format!(
                "refused for good for {}: kept in {} with the reply\n",
                who(&|f| matches!(f, Fate::Refused(_))),
                p.display()
            ));
        }
        out
    }
}

/// Keeps what `fates` leave undelivered: the deferred recipients wait in the outbox (the
/// flushed `entry` is updated, or removed once nobody waits), the refused ones go to failed/
/// and the unconfirmed ones to unconfirmed/. `attempted`: a server was tried.
#[allow(clippy::too_many_arguments)]
pub fn keep(
    ctx: &Ctx,
    msg: &dyn Outgoing,
    addressing: &Addressing,
    entry: Option<&Entry>,
    fates: &[Fate],
    last_error: Option<String>,
    attempted: bool,
) -> Result<Kept, Error> {
    let store = Store::new(&ctx.settings.outbox);
    let now = queue::unix(ctx.now);
    let mut base = match entry {
        Some(e) => e.record.clone(),
        None => Record {
            message_id: msg.message_id().map(str::to_owned),
            envelope_from: addressing.from.addr_spec_unicode(),
            created_at: now,
            // The clock, not `ctx.now`: a batch shares one `now`, its messages keep their order.
            created_ns: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            next_attempt_at: now,
            ..Record::default()
        },
    };
    base.sending_since = None;
    base.smtputf8 = msg.needs_smtputf8();
    base.eight_bit_mime = msg.needs_8bitmime();
    if let Some(s) = &ctx.settings.server {
        base.server = Some(s.display());
    }
    if attempted {
        base.attempts += 1;
        base.next_attempt_at = now + queue::retry_delay(base.attempts).as_secs();
    }
    if last_error.is_some() {
        base.last_error = last_error;
    }
    let mut pending = Vec::new();
    let mut unconfirmed = Vec::new();
    let mut refused = Vec::new();
    for (m, fate) in addressing.recipients.iter().zip(fates) {
        let address = m.addr_spec_unicode();
        match fate {
            Fate::Delivered => base.delivered.push(address),
            Fate::Deferred => pending.push(address),
            Fate::Unconfirmed => unconfirmed.push(address),
            Fate::Refused(reply) => refused.push(Refusal {
                address,
                reply: reply.clone(),
            }),
        }
    }
    let name = match entry {
        Some(e) => e.name.clone(),
        None => store.free_name(Folder::Waiting, &outbox_name(ctx, msg)),
    };
    let mut kept = Kept::default();
    if !unconfirmed.is_empty() {
        let record = Record {
            pending: unconfirmed,
            ..base.clone()
        };
        let n = store.free_name(Folder::Unconfirmed, &name);
        kept.unconfirmed = Some(store.put(Folder::Unconfirmed, &n, msg, &record)?);
    }
    if !refused.is_empty() {
        let record = Record {
            pending: refused.iter().map(|r| r.address.clone()).collect(),
            refused: base
                .refused
                .iter()
                .cloned()
                .chain(refused.clone())
                .collect(),
            last_error: refused.first().map(|r| r.reply.clone()),
            ..base.clone()
        };
        let n = store.free_name(Folder::Failed, &name);
        kept.failed = Some(store.put(Folder::Failed, &n, msg, &record)?);
    }
    base.refused.extend(refused);
    if !pending.is_empty() {
        let record = Record { pending, ..base };
        kept.waiting = Some(match entry {
            Some(_) => {
                store.write_record(Folder::Waiting, &name, &record)?;
                store.message_path(Folder::Waiting, &name)
            }
            None => store.put(Folder::Waiting, &name, msg, &record)?,
        });
    } else if entry.is_some() {
        store.remove(Folder::Waiting, &name)?;
    }
    Ok(kept)
}

/// A message that can be kept in no folder: the error says so, plainly, and is exit 73.
fn cannot_keep(e: Error) -> Error {
    match e {
        Error::Output { what, source } => Error::Output {
            what: format!("{what} (the message was NOT sent and could NOT be kept)"),
            source,
        },
        other => other,
    }
}

/// One message of a batch: who it is for (for the progress bar) and what to send.
pub struct Job {
    pub label: String,
    pub content: Content,
    pub addressing: Addressing,
    pub quiz: Option<serde_json::Value>,
    /// The outbox entry it comes from (`--flush`): updated, or removed once delivered.
    pub kept: Option<Entry>,
}

/// Delivers every job, in order, and returns one report each. Over SMTP they share one
/// connection (RSET between messages; after a 421 or a drop, a new one), each with
/// `--retries`; a connection that cannot be had at all fails the rest with that error
/// without trying them, so a wrong password is sent once and not once per message. Whatever
/// is not delivered is kept in the outbox, as [`deliver_one`] does.
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
    let dsn = dsn_request(ctx);
    let mut dsn_not_offered = false;
    let store = Store::new(&ctx.settings.outbox);
    let mut conn: Option<Connection<Stream>> = None;
    let mut unreachable: Option<(ErrorReport, String)> = None;
    let mut reports = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let base = Report {
            server: Some(settings.display()),
            envelope_from: Some(job.addressing.from.addr_spec_unicode()),
            quiz: job.quiz.clone(),
            ..Report::default()
        };
        let count = job.addressing.recipients.len();
        let mut report = if let Some((e, text)) = &unreachable {
            let fates = vec![Fate::Deferred; count];
            let outcome = keep_job(ctx, job, None, &fates, Some(text.clone()));
            let mut report = Report {
                error: Some(e.clone()),
                ..base
            };
            kept_report(ctx, &mut report, job, &fates, outcome);
            reports.push(report);
            let _ = progress.tick(&job.label);
            continue;
        } else {
            base
        };
        let more = i + 1 < jobs.len();
        let mut connecting = false;
        let mut built: Option<Box<dyn Outgoing>> = None;
        let mut seen = Vec::new();
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
                let msg = job.content.build_signed(ctx, target(c.capabilities()))?;
                if let Some(entry) = &job.kept {
                    // Marked before its transaction: a flush killed from here on leaves a
                    // record the next flush sends to unconfirmed/, never again to anyone.
                    let record = Record {
                        sending_since: Some(queue::unix(ctx.now)),
                        ..entry.record.clone()
                    };
                    store.write_record(Folder::Waiting, &entry.name, &record)?;
                }
                let result = submit(
                    c,
                    settings,
                    &job.addressing,
                    &dsn,
                    msg.as_ref(),
                    more,
                    &mut seen,
                );
                built = Some(msg);
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
        let fates = settle(count, &seen, &outcome);
        let last_error = outcome.as_ref().err().map(ToString::to_string);
        match outcome {
            Ok(d) => {
                dsn_not_offered |= d.dsn_not_offered;
                report = delivered(report, d).0;
            }
            Err(e) => {
                Ui::warn_always(&format!("{}: {e}", job.label));
                if connecting {
                    let mut later = e.report(&ctx.hints());
                    later.message = format!("not tried, the connection failed: {}", later.message);
                    unreachable = Some((later, e.to_string()));
                }
                report.rejected = match &e {
                    Error::Delivery { rejected, .. } => rejected.clone(),
                    _ => Vec::new(),
                };
                report.error = Some(e.report(&ctx.hints()));
            }
        }
        let kept = keep_job(ctx, job, built.as_deref(), &fates, last_error);
        kept_report(ctx, &mut report, job, &fates, kept);
        reports.push(report);
        let _ = progress.tick(&job.label);
    }
    if let Some(c) = conn {
        c.quit();
    }
    if dsn_not_offered {
        warn_dsn_not_offered(ctx);
    }
    Ok(reports)
}

/// Keeps one job of a batch when something of it is left to do (or it came from the outbox).
fn keep_job(
    ctx: &Ctx,
    job: &Job,
    built: Option<&dyn Outgoing>,
    fates: &[Fate],
    last_error: Option<String>,
) -> Result<Kept, Error> {
    if job.kept.is_none() && fates.iter().all(|f| *f == Fate::Delivered) {
        return Ok(Kept::default());
    }
    let offline;
    let msg = match built {
        Some(m) => m,
        None => {
            // The portable form, as the outbox keeps a message without a server.
            let mut m = job.content.build_offline()?;
            if !matches!(job.content, Content::Stored(_)) {
                sign(ctx, m.as_mut())?;
            }
            offline = m;
            offline.as_ref()
        }
    };
    keep(
        ctx,
        msg,
        &job.addressing,
        job.kept.as_ref(),
        fates,
        last_error,
        true,
    )
    .map_err(cannot_keep)
}

/// Names where a batch's message is kept, and says so on stderr; a message that cannot be
/// kept makes its report's error the 73 that says so.
fn kept_report(
    ctx: &Ctx,
    report: &mut Report,
    job: &Job,
    fates: &[Fate],
    kept: Result<Kept, Error>,
) {
    match kept {
        Ok(kept) => {
            report.outbox_path = kept.path().map(|p| p.display().to_string());
            for line in kept.notice(&job.addressing, fates).lines() {
                ctx.ui.say(&format!("{}: {line}", job.label));
            }
        }
        Err(e) => {
            Ui::warn_always(&format!("{}: {e}", job.label));
            report.error = Some(e.report(&ctx.hints()));
        }
    }
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
    fn each_recipient_is_settled_once_and_never_twice() {
        use crate::smtp::Stage;
        let ok = Ok(Delivery::default());
        let seen = [
            Seen::Accepted,
            Seen::Deferred("451 later".into()),
            Seen::Refused("550 no".into()),
        ];
        assert_eq!(
            settle(3, &seen, &ok),
            [
                Fate::Delivered,
                Fate::Deferred,
                Fate::Refused("550 no".into())
            ]
        );
        // The reply to the end of data never came: whoever took RCPT may have it.
        let dropped: Result<Delivery, Error> =
            Err(Error::Driver(DriverError::Smtp(SmtpError::Closed {
                stage: Stage::EndOfData,
                maybe_delivered: true,
            })));
        assert_eq!(
            settle(3, &seen, &dropped),
            [
                Fate::Unconfirmed,
                Fate::Deferred,
                Fate::Refused("550 no".into())
            ]
        );
        assert_eq!(
            settle(2, &[], &dropped),
            [Fate::Unconfirmed, Fate::Unconfirmed]
        );
        // Dropped before the end of data: nothing was delivered, everyone waits.
        let early: Result<Delivery, Error> =
            Err(Error::Driver(DriverError::Smtp(SmtpError::Closed {
                stage: Stage::Data,
                maybe_delivered: false,
            })));
        assert_eq!(settle(2, &[], &early), [Fate::Deferred, Fate::Deferred]);
        // A 5xx to the message itself fails it for everyone not already settled.
        let refused: Result<Delivery, Error> = Err(Error::Delivery {
            source: SmtpError::Rejected {
                stage: Stage::MailFrom,
                reply: Reply::new(554, None, vec!["no".into()]),
            },
            rejected: vec![],
        });
        assert!(matches!(settle(1, &[], &refused)[0], Fate::Refused(_)));
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
