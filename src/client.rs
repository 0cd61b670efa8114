//! The blocking driver: runs the sans-I/O [`smtp::Session`] over a [`transport::Stream`].
//!
//! It is the only code that combines sockets, deadlines, retries and the session. One flight
//! (everything the session hands out before it wants a reply) is written through one buffer and
//! flushed once, so a pipelined flight leaves as few TCP segments and TLS records as possible
//! (RFC 2920 §3.1).
use std::io::{self, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::app::{local_host_name, Ctx};
use crate::cli::{AuthArg, TlsMode};
use crate::config::{self, ServerSettings};
use crate::error::Error;
use crate::message::{DotStuffer, Mailbox, Outgoing, Target};
use crate::report::{Rejected, ReplyReport, TlsReport};
use crate::smtp::{
    self, AuthChoice, BodyFraming, Capabilities, Credentials, Event, Mechanism, MessageReport,
    Output, RecipientStatus, Reply, Secret, Session,
};
use crate::transport::{self, ClientConfig, Stream, TlsInfo, TlsPolicy, TransportError};

/// The envelope of one message (RFC 5321 §2.3.1): who bounces go to, who gets it.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub from: Mailbox,
    pub recipients: Vec<Mailbox>,
}

/// What the report says about the connection.
#[derive(Clone, Debug, Default)]
pub struct ConnInfo {
    pub tls: Option<TlsReport>,
    pub auth: Option<String>,
}

/// One message's outcome at the server.
#[derive(Clone, Debug, Default)]
pub struct Delivery {
    pub info: ConnInfo,
    pub size: u64,
    pub accepted: Vec<String>,
    pub rejected: Vec<Rejected>,
    pub reply: Option<ReplyReport>,
    pub queue_id: Option<String>,
    pub message_id: Option<String>,
}

/// Everything needed to open connections to one server, prepared once per run: the TLS
/// configuration and the password are not rebuilt or asked for again on a retry.
pub struct Dialer<'a> {
    pub server: &'a ServerSettings,
    tls: Option<Arc<ClientConfig>>,
    credentials: Option<Credentials>,
    verbose: bool,
}

impl<'a> Dialer<'a> {
    pub fn new(server: &'a ServerSettings, verbose: bool) -> Result<Dialer<'a>, Error> {
        let tls = if server.tls == TlsMode::None {
            None
        } else {
            let policy = if server.insecure {
                TlsPolicy::Insecure
            } else if let Some(fp) = server.fingerprint {
                TlsPolicy::Fingerprint(fp)
            } else if let Some(ca) = &server.ca_file {
                TlsPolicy::CaFile(ca.clone())
            } else {
                TlsPolicy::WebRoots
            };
            Some(policy.client_config()?)
        };
        let credentials = match &server.user {
            None => None,
            Some(user) => {
                let password = config::read_password(&server.password, user)?;
                Some(Credentials {
                    user: user.clone(),
                    password: Secret::new(password.into_bytes()),
                    choice: match server.auth {
                        AuthArg::Auto => AuthChoice::Auto,
                        AuthArg::Plain => AuthChoice::Named(Mechanism::Plain),
                        AuthArg::Login => AuthChoice::Named(Mechanism::Login),
                        AuthArg::CramMd5 => AuthChoice::Named(Mechanism::CramMd5),
                    },
                })
            }
        };
        Ok(Dialer {
            server,
            tls,
            credentials,
            verbose,
        })
    }

    /// For `--probe`: no password is read, no AUTH is attempted.
    pub fn without_credentials(
        server: &'a ServerSettings,
        verbose: bool,
    ) -> Result<Dialer<'a>, Error> {
        let probe_server = ServerSettings {
            user: None,
            ..server.clone()
        };
        let d = Dialer::new(&probe_server, verbose)?;
        Ok(Dialer { server, ..d })
    }

    /// Connects and runs the dialogue up to "ready for a message" (or to the end, for a probe).
    pub fn open(&self, probe: bool) -> Result<Connection, Error> {
        let s = self.server;
        log(self.verbose, &format!("* connecting to {}", s.display()));
        let tcp = transport::connect(&s.host, s.port, s.timeout)?;
        let local = tcp.local_addr().ok();
        let stream = match (&self.tls, s.tls) {
            (Some(cfg), TlsMode::Implicit) => Stream::implicit_tls(
                tcp,
                transport::server_name(&s.host)?,
                cfg.clone(),
                s.timeout,
            )?,
            _ => Stream::plain(tcp, s.timeout)?,
        };
        let ehlo_name = s
            .ehlo
            .clone()
            .or_else(local_host_name)
            .unwrap_or_else(|| address_literal(local));
        let session = Session::new(smtp::Config {
            ehlo_name,
            tls: match s.tls {
                TlsMode::None => smtp::TlsMode::None,
                TlsMode::Starttls => smtp::TlsMode::Starttls,
                TlsMode::Implicit => smtp::TlsMode::Implicit,
            },
            credentials: self.credentials.clone(),
            probe,
            transcript: self.verbose,
        })?;
        let mut conn = Connection {
            stream: Some(stream),
            session,
            tls_config: self.tls.clone(),
            host: s.host.clone(),
            mode: s.tls,
            verbose: self.verbose,
            caps: None,
            tls_info: None,
            finished: None,
        };
        if s.tls == TlsMode::Implicit {
            conn.tls_done();
        }
        conn.run_until_ready()?;
        Ok(conn)
    }
}

/// `[127.0.0.1]` or `[IPv6:::1]` (RFC 5321 §4.1.3), the EHLO name of a host without a FQDN.
fn address_literal(local: Option<SocketAddr>) -> String {
    match local {
        Some(SocketAddr::V4(a)) => format!("[{}]", a.ip()),
        Some(SocketAddr::V6(a)) => format!("[IPv6:{}]", a.ip()),
        None => "[127.0.0.1]".into(),
    }
}

fn log(verbose: bool, line: &str) {
    if verbose {
        eprintln!("{line}");
    }
}

/// One open SMTP connection.
pub struct Connection {
    stream: Option<Stream>,
    session: Session,
    tls_config: Option<Arc<ClientConfig>>,
    host: String,
    mode: TlsMode,
    verbose: bool,
    caps: Option<Capabilities>,
    tls_info: Option<TlsInfo>,
    /// The message report the last flight produced.
    finished: Option<MessageReport>,
}

impl Connection {
    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls_info.as_ref()
    }

    /// The message layer's target: what this server lets a message use.
    pub fn target(&self) -> Target {
        let caps = self.caps.as_ref();
        Target {
            smtputf8: caps.is_some_and(Capabilities::smtputf8),
            eight_bit_mime: caps.is_some_and(Capabilities::eight_bit_mime),
        }
    }

    pub fn info(&self) -> ConnInfo {
        ConnInfo {
            tls: Some(TlsReport {
                mode: self.mode.as_str().into(),
                version: self.tls_info.as_ref().map(|t| t.version.clone()),
                cipher: self.tls_info.as_ref().map(|t| t.cipher.clone()),
            }),
            auth: self.session.auth_mechanism().map(|m| m.name().to_owned()),
        }
    }

    fn stream(&mut self) -> &mut Stream {
        // The stream is only None for the instant of the STARTTLS upgrade.
        self.stream
            .as_mut()
            .expect("stream present outside the STARTTLS upgrade")
    }

    fn tls_done(&mut self) {
        self.tls_info = self.stream.as_ref().and_then(Stream::tls_info);
        if let Some(info) = &self.tls_info {
            log(
                self.verbose,
                &format!("* TLS established: {} {}", info.version, info.cipher),
            );
            if let Some(leaf) = info.certificates.first() {
                log(
                    self.verbose,
                    &format!(
                        "* server certificate: {} (issuer {}, valid until {}, sha256 {})",
                        leaf.subject, leaf.issuer, leaf.not_after, leaf.sha256
                    ),
                );
            }
        }
    }

    fn transcript(&mut self) {
        if self.verbose {
            for line in self.session.take_transcript() {
                eprintln!("{line}");
            }
        }
    }

    /// Writes every pending output item as one flight. `body` writes the message when the
    /// session asks for it.
    fn write_flight(&mut self, body: Option<&dyn Outgoing>) -> Result<(), Error> {
        let mut items = Vec::new();
        while let Some(item) = self.session.poll_output() {
            items.push(item);
        }
        self.transcript();
        if items.is_empty() {
            return Ok(());
        }
        let stage = self.session.stage().to_string();
        let in_flight = self.session.data_in_flight();
        let stream = self.stream();
        let mut w = BufWriter::with_capacity(64 * 1024, stream);
        let result: io::Result<()> = (|| {
            for item in items {
                match item {
                    Output::Bytes(b) => w.write_all(&b)?,
                    Output::Body(framing) => {
                        let msg = body.ok_or_else(|| {
                            io::Error::other("the session asked for a body with no message")
                        })?;
                        write_body(&mut w, msg, framing)?;
                    }
                }
            }
            w.flush()
        })();
        result.map_err(|e| Error::network(TransportError::from_io(&stage, e), in_flight))
    }

    /// Reads once and feeds the session; EOF becomes the session's "closed during X".
    fn read_once(&mut self) -> Result<(), Error> {
        let mut buf = [0u8; 16 * 1024];
        let stage = self.session.stage().to_string();
        let in_flight = self.session.data_in_flight();
        let n = match self.stream().read(&mut buf) {
            Ok(n) => n,
            // A TLS peer that closes without close_notify: SMTP replies delimit themselves, so
            // the session, not rustls, judges whether anything was cut short (RFC 8446 §6.1).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => {
                return Err(Error::network(
                    TransportError::from_io(&stage, e),
                    in_flight,
                ))
            }
        };
        let result = if n == 0 {
            self.session.connection_closed()
        } else {
            self.session.receive(&buf[..n])
        };
        self.transcript();
        result.map_err(Error::from)
    }

    /// After a session error: the best-effort QUIT the session may have queued, then close.
    fn abort(&mut self, e: Error) -> Error {
        let _ = self.write_flight(None);
        if let Some(stream) = self.stream.take() {
            let _ = stream.close();
        }
        e
    }

    /// Drives the dialogue until the session is ready for a message, a message finished,
    /// or the connection closed.
    fn pump(&mut self, body: Option<&dyn Outgoing>) -> Result<(), Error> {
        loop {
            if let Err(e) = self.write_flight(body) {
                return Err(self.abort(e));
            }
            let mut ready = false;
            while let Some(event) = self.session.poll_event() {
                match event {
                    Event::StartTls => {
                        if let Err(e) = self.upgrade() {
                            return Err(self.abort(e));
                        }
                    }
                    Event::Ready(caps) => {
                        self.caps = Some(caps);
                        ready = true;
                    }
                    Event::Message(report) => self.finished = Some(report),
                    Event::Closed => {
                        if let Some(stream) = self.stream.take() {
                            let _ = stream.close();
                        }
                        return Ok(());
                    }
                }
            }
            if ready || self.session.is_finished() {
                return Ok(());
            }
            if self.session.wants_read() {
                if let Err(e) = self.read_once() {
                    return Err(self.abort(e));
                }
            } else if self.finished.is_some() {
                return Ok(());
            }
        }
    }

    fn run_until_ready(&mut self) -> Result<(), Error> {
        self.pump(None)
    }

    /// STARTTLS: the plain stream is handed over and gone; the handshake completes here, under
    /// the timeout, so certificate errors surface at this step (RFC 3207 §4).
    fn upgrade(&mut self) -> Result<(), Error> {
        let plain = self
            .stream
            .take()
            .ok_or_else(|| Error::Usage("internal: no stream to upgrade".into()))?;
        let config = self
            .tls_config
            .clone()
            .ok_or_else(|| Error::Usage("internal: STARTTLS without a TLS policy".into()))?;
        log(self.verbose, "* starting TLS");
        let tls = plain.starttls(transport::server_name(&self.host)?, config)?;
        self.stream = Some(tls);
        self.tls_done();
        self.session.tls_established()?;
        Ok(())
    }

    /// Submits one message over this connection and waits for its result. `more` keeps the
    /// connection open for another message (RSET then comes before the next MAIL).
    pub fn send(
        &mut self,
        envelope: &Envelope,
        msg: &dyn Outgoing,
        more: bool,
    ) -> Result<Delivery, Error> {
        let smtputf8 = self.target().smtputf8;
        let size = msg.size().map_err(|source| Error::Input {
            what: "the message".into(),
            source,
        })?;
        let form = |m: &Mailbox| m.envelope_form(smtputf8);
        let from = form(&envelope.from).map_err(|e| crate::app::with_flag("envelope", e))?;
        let recipients = envelope
            .recipients
            .iter()
            .map(form)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| crate::app::with_flag("recipient", e))?;
        self.finished = None;
        self.session.submit(smtp::Envelope {
            from,
            recipients,
            size,
            smtputf8: msg.needs_smtputf8(),
            eight_bit: msg.needs_8bitmime(),
            more,
        })?;
        let pumped = self.pump(Some(msg));
        // With PIPELINING, QUIT follows the end of the data in the same flight, and its reply
        // can fail the session right after the message's own reply was read. The message's
        // fate is known then (RFC 5321 §4.1.1.10: QUIT does not undo it), so keep the result.
        while let Some(event) = self.session.poll_event() {
            if let Event::Message(report) = event {
                self.finished = Some(report);
            }
        }
        let report = match (self.finished.take(), pumped) {
            (Some(report), _) => report,
            (None, Err(e)) => return Err(e),
            (None, Ok(())) => {
                return Err(Error::from(smtp::SmtpError::Misuse(
                    "the session ended without a message result",
                )))
            }
        };
        let mut d = delivery(self.info(), size, report)?;
        d.message_id = msg.message_id().map(str::to_owned);
        Ok(d)
    }

    /// Ends the session politely when no more messages are to be sent.
    pub fn quit(mut self) {
        if self.session.quit().is_ok() {
            let _ = self.pump(None);
        }
        if let Some(stream) = self.stream.take() {
            let _ = stream.close();
        }
    }

    /// Whether the session can take another message.
    pub fn is_open(&self) -> bool {
        self.stream.is_some() && !self.session.is_finished()
    }
}

/// Writes the message for DATA (dot-stuffed, ending in CRLF; the session sends the `.`) or
/// for BDAT (exactly `size` raw octets).
fn write_body(w: &mut dyn Write, msg: &dyn Outgoing, framing: BodyFraming) -> io::Result<()> {
    match framing {
        BodyFraming::Raw { size } => {
            let mut counted = Counting { inner: w, n: 0 };
            msg.write_to(&mut counted)?;
            if counted.n != size {
                return Err(io::Error::other(format!(
                    "the message was {} octets, not the {size} announced in BDAT",
                    counted.n
                )));
            }
            Ok(())
        }
        BodyFraming::Dot => {
            let mut stuffer = DotStuffer::new(w);
            msg.write_to(&mut stuffer)?;
            stuffer.end_line().map(|_| ())
        }
    }
}

struct Counting<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn reply_report(r: &Reply) -> ReplyReport {
    ReplyReport {
        code: r.code,
        enhanced: r.enhanced.map(|e| e.to_string()),
        text: r.text(),
    }
}

/// Turns the session's message report into the run's delivery record.
fn delivery(info: ConnInfo, size: u64, report: MessageReport) -> Result<Delivery, Error> {
    let mut d = Delivery {
        info,
        size,
        ..Delivery::default()
    };
    for r in &report.recipients {
        match &r.status {
            RecipientStatus::Accepted(_) => d.accepted.push(r.address.clone()),
            RecipientStatus::Rejected(reply) => d.rejected.push(Rejected {
                address: r.address.clone(),
                code: reply.code,
                enhanced: reply.enhanced.map(|e| e.to_string()),
                text: reply.text(),
            }),
            RecipientStatus::NotTried => {}
        }
    }
    match report.outcome {
        Ok(delivered) => {
            d.queue_id = delivered.queue_id;
            d.reply = Some(reply_report(&delivered.reply));
            Ok(d)
        }
        Err(e) => Err(Error::Delivery {
            source: e,
            rejected: d.rejected,
        }),
    }
}

/// Sends one message with `--retries`: connection failures and 4xx replies are tried again with
/// backoff, never after the end of the data was sent. `build` makes the message for what the
/// server offers.
pub fn send_with_retries(
    ctx: &Ctx,
    server: &ServerSettings,
    envelope: &Envelope,
    build: &mut dyn FnMut(Target) -> Result<Box<dyn Outgoing>, Error>,
) -> Result<Delivery, Box<(Error, Option<ConnInfo>)>> {
    let dialer = Dialer::new(server, ctx.ui.verbose).map_err(|e| Box::new((e, None)))?;
    let mut attempt = 0;
    loop {
        let mut info = None;
        let result: Result<Delivery, Error> = (|| {
            let mut conn = dialer.open(false)?;
            info = Some(conn.info());
            let msg = build(conn.target())?;
            let d = conn.send(envelope, msg.as_ref(), false)?;
            conn.quit();
            Ok(d)
        })();
        match result {
            Ok(d) => return Ok(d),
            Err(e) if e.is_retryable() && attempt < server.retries => {
                attempt += 1;
                let wait = backoff(attempt);
                ctx.ui.warn(&format!(
                    "{e}; trying again in {}s (attempt {} of {})",
                    wait.as_secs(),
                    attempt + 1,
                    server.retries + 1
                ));
                std::thread::sleep(wait);
            }
            Err(e) => return Err(Box::new((e, info))),
        }
    }
}

/// 1 s, 2 s, 4 s … capped at 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs((1u64 << attempt.saturating_sub(1).min(5)).min(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let secs: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn address_literals() {
        assert_eq!(
            address_literal(Some("127.0.0.1:25".parse().unwrap())),
            "[127.0.0.1]"
        );
        assert_eq!(
            address_literal(Some("[::1]:25".parse().unwrap())),
            "[IPv6:::1]"
        );
    }
}
