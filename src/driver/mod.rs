//! The blocking driver: runs the sans-I/O [`smtp::Session`] over any stream that implements
//! [`Wire`], as rustls's `Stream` runs a `Connection` over any `Read + Write`.
//!
//! It takes only what the protocol needs (the endpoint, an [`smtp::Config`] with credentials
//! already obtained, a rustls `ClientConfig`, a [`Log`] sink) and returns what happened; it
//! never reads a password, prompts, prints or builds a report. It owns the deadlines: each whole
//! reply, each write and the TLS handshake are bounded by the timeout (a server that trickles
//! bytes does not extend it). One flight (everything the session hands out before it wants a
//! reply) is written through one buffer and flushed once (RFC 2920 §3.1).
mod body;
mod retry;
#[cfg(test)]
mod tests;

use std::io::{self, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::message::Outgoing;
use crate::smtp::{
    self, Capabilities, Credentials, Event, Mechanism, MessageReport, Output, Session, SmtpError,
    TlsMode,
};
use crate::transport::{self, ClientConfig, ServerName, Stream, TlsInfo, TransportError};

pub use retry::{backoff, with_retries, Retryable};

/// A connection the driver can run a session over: a byte stream that can switch to TLS in
/// place (RFC 3207 §4: the plain stream is handed over and gone) and bound its reads by a
/// deadline.
pub trait Wire: Read + Write {
    /// Runs the TLS handshake now, under the timeout; afterwards reads and writes are TLS.
    fn start_tls(
        &mut self,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> Result<(), TransportError>;
    /// Version, cipher and certificates once TLS is up.
    fn tls_info(&self) -> Option<TlsInfo>;
    /// From now until the next call, all reads together may take at most `budget`: a read
    /// after that fails with `TimedOut` (or `WouldBlock`), however few bytes each one brought.
    fn bound_reads(&mut self, budget: Duration);
    /// Ends the connection (close_notify first over TLS), best effort.
    fn close(&mut self);
}

impl Wire for Stream {
    fn start_tls(
        &mut self,
        name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> Result<(), TransportError> {
        self.starttls(name, config)
    }

    fn tls_info(&self) -> Option<TlsInfo> {
        Stream::tls_info(self)
    }

    fn bound_reads(&mut self, budget: Duration) {
        self.set_read_deadline(Some(Instant::now() + budget));
    }

    fn close(&mut self) {
        // Closing is the end of a dialogue whose outcome is already known.
        let _ = Stream::close(self);
    }
}

/// Where the `-v` transcript goes: `C: `/`S: ` lines and `* ` events, credentials redacted
/// by the session. The default discards everything (and the session keeps no transcript).
#[derive(Clone, Default)]
pub struct Log(Option<Arc<LineSink>>);

type LineSink = dyn Fn(&str) + Send + Sync;

impl Log {
    pub fn to(sink: impl Fn(&str) + Send + Sync + 'static) -> Log {
        Log(Some(Arc::new(sink)))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    fn line(&self, line: &str) {
        if let Some(sink) = &self.0 {
            sink(line);
        }
    }
}

/// Where to connect and how.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Connect, each whole reply, each write and the TLS handshake.
    pub timeout: Duration,
}

/// What every connection of a run shares.
#[derive(Clone, Default)]
pub struct Setup {
    /// The EHLO name; without one the local address literal (RFC 5321 §4.1.3).
    pub ehlo: Option<String>,
    pub credentials: Option<Credentials>,
    /// `--probe`: greeting, EHLO (and STARTTLS), then QUIT.
    pub probe: bool,
    /// Needed for implicit TLS and STARTTLS.
    pub tls_config: Option<Arc<ClientConfig>>,
    pub log: Log,
}

/// Every way the driver fails.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The session ended the dialogue: a refusal, a protocol error, a closed connection.
    #[error(transparent)]
    Smtp(#[from] SmtpError),
    /// The socket or TLS failed; `maybe_delivered` when the end of the data had been sent.
    #[error("{source}{}", if *maybe_delivered { " (the message may have been delivered, so it is not sent again)" } else { "" })]
    Transport {
        source: TransportError,
        maybe_delivered: bool,
    },
    /// The message could not be read while it was being sent (an attachment that vanished);
    /// the connection was dropped before the end of the data, so nothing was delivered.
    #[error("cannot read the message while sending it: {0}")]
    Body(io::Error),
    /// A rule of the driver contract was broken: a bug.
    #[error("internal error in the SMTP driver: {0}")]
    Internal(&'static str),
}

impl From<TransportError> for DriverError {
    fn from(source: TransportError) -> DriverError {
        DriverError::Transport {
            source,
            maybe_delivered: false,
        }
    }
}

impl DriverError {
    /// The end of the data was sent and its reply never came: a retry could deliver twice.
    pub fn maybe_delivered(&self) -> bool {
        match self {
            DriverError::Smtp(e) => e.may_have_been_delivered(),
            DriverError::Transport {
                maybe_delivered, ..
            } => *maybe_delivered,
            DriverError::Body(_) | DriverError::Internal(_) => false,
        }
    }
}

/// Connects (implicit TLS first when asked) and runs the dialogue up to "ready for a message",
/// or to the end for a probe.
pub fn open(endpoint: &Endpoint, setup: &Setup) -> Result<Connection<Stream>, DriverError> {
    setup.log.line(&format!(
        "* connecting to {}:{}",
        endpoint.host, endpoint.port
    ));
    let tcp = transport::connect(&endpoint.host, endpoint.port, endpoint.timeout)?;
    let local = tcp.local_addr().ok();
    let tls = match (endpoint.tls, &setup.tls_config) {
        (TlsMode::None, _) => None,
        (_, Some(config)) => Some((transport::server_name(&endpoint.host)?, config.clone())),
        (_, None) => return Err(DriverError::Internal("TLS asked for without a TLS config")),
    };
    let stream = match (&tls, endpoint.tls) {
        (Some((name, config)), TlsMode::Implicit) => {
            Stream::implicit_tls(tcp, name.clone(), config.clone(), endpoint.timeout)?
        }
        _ => Stream::plain(tcp, endpoint.timeout)?,
    };
    let config = smtp::Config {
        ehlo_name: setup.ehlo.clone().unwrap_or_else(|| address_literal(local)),
        host: endpoint.host.clone(),
        port: endpoint.port,
        tls: endpoint.tls,
        credentials: setup.credentials.clone(),
        probe: setup.probe,
        transcript: setup.log.enabled(),
    };
    Connection::start(stream, config, tls, endpoint.timeout, setup.log.clone())
}

/// `[127.0.0.1]` or `[IPv6:::1]` (RFC 5321 §4.1.3), the EHLO name of a host without a FQDN.
fn address_literal(local: Option<SocketAddr>) -> String {
    match local {
        Some(SocketAddr::V4(a)) => format!("[{}]", a.ip()),
        Some(SocketAddr::V6(a)) => format!("[IPv6:{}]", a.ip()),
        None => "[127.0.0.1]".into(),
    }
}

/// One SMTP connection: a session and the stream it runs over.
pub struct Connection<S: Wire> {
    stream: S,
    session: Session,
    /// The server name and rustls config for STARTTLS.
    tls: Option<(ServerName<'static>, Arc<ClientConfig>)>,
    timeout: Duration,
    log: Log,
    caps: Option<Capabilities>,
    tls_info: Option<TlsInfo>,
    /// The message report the last pump produced.
    finished: Option<MessageReport>,
    /// The stream was closed (221, an error, or the session dropped it).
    closed: bool,
    /// How many replies had come when the wait for the next one began (its deadline set).
    waiting_after: Option<u64>,
}

impl<S: Wire> Connection<S> {
    /// Runs a new session over `stream` up to "ready for a message" (or the end, for a probe).
    /// For implicit TLS the stream must already run TLS.
    pub fn start(
        stream: S,
        config: smtp::Config,
        tls: Option<(ServerName<'static>, Arc<ClientConfig>)>,
        timeout: Duration,
        log: Log,
    ) -> Result<Connection<S>, DriverError> {
        let implicit = config.tls == TlsMode::Implicit;
        let session = Session::new(config)?;
        let mut conn = Connection {
            stream,
            session,
            tls,
            timeout,
            log,
            caps: None,
            tls_info: None,
            finished: None,
            closed: false,
            waiting_after: None,
        };
        if implicit {
            conn.tls_done();
        }
        conn.pump(None)?;
        Ok(conn)
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// What the server offers (after TLS, when STARTTLS was used); `None` before `Ready`.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.caps.as_ref()
    }

    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls_info.as_ref()
    }

    pub fn auth_mechanism(&self) -> Option<Mechanism> {
        self.session.auth_mechanism()
    }

    /// Whether the session can take another message.
    pub fn is_open(&self) -> bool {
        !self.closed && !self.session.is_finished()
    }

    /// Submits one message and waits for its result. `more` keeps the connection open for
    /// another message (RSET comes before the next MAIL). Addresses are in envelope form.
    pub fn send(
        &mut self,
        from: &str,
        recipients: &[String],
        msg: &dyn Outgoing,
        more: bool,
    ) -> Result<MessageReport, DriverError> {
        self.send_with(from, recipients, &smtp::Dsn::default(), msg, more)
    }

    /// [`Connection::send`] with RFC 3461 parameters; the session leaves them out when the
    /// server does not offer DSN and says so in the report (`dsn_not_offered`).
    pub fn send_with(
        &mut self,
        from: &str,
        recipients: &[String],
        dsn: &smtp::Dsn,
        msg: &dyn Outgoing,
        more: bool,
    ) -> Result<MessageReport, DriverError> {
        let size = msg.size().map_err(DriverError::Body)?;
        self.finished = None;
        self.session.submit(smtp::Envelope {
            from: from.to_owned(),
            recipients: recipients.to_vec(),
            size,
            smtputf8: msg.needs_smtputf8(),
            eight_bit: msg.needs_8bitmime(),
            more,
            dsn: dsn.clone(),
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
        match (self.finished.take(), pumped) {
            (Some(report), _) => Ok(report),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Err(DriverError::Internal(
                "the session ended without a message result",
            )),
        }
    }

    /// Ends the session politely when no more messages are to be sent.
    pub fn quit(mut self) {
        if self.session.quit().is_ok() {
            // The messages' fates are known; a failing QUIT changes none of them.
            let _ = self.pump(None);
        }
        self.close();
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.stream.close();
        }
    }

    fn transcript(&mut self) {
        if self.log.enabled() {
            for line in self.session.take_transcript() {
                self.log.line(&line);
            }
        }
    }

    fn tls_done(&mut self) {
        self.tls_info = self.stream.tls_info();
        if let Some(info) = &self.tls_info {
            self.log.line(&format!(
                "* TLS established: {} {}",
                info.version, info.cipher
            ));
            if let Some(leaf) = info.certificates.first() {
                self.log.line(&format!(
                    "* server certificate: {} (issuer {}, valid until {}, sha256 {})",
                    leaf.subject, leaf.issuer, leaf.not_after, leaf.sha256
                ));
            }
        }
    }

    /// The transport failed: the connection is unusable, and nothing more is said on it.
    fn transport_error(&mut self, source: TransportError) -> DriverError {
        let maybe_delivered = self.session.data_in_flight();
        self.close();
        DriverError::Transport {
            source,
            maybe_delivered,
        }
    }

    /// The session failed: the best-effort QUIT it may have queued (only when the dialogue is
    /// still in step), then close.
    fn session_error(&mut self, e: SmtpError) -> DriverError {
        self.transcript();
        let _ = self.write_flight(None);
        self.close();
        DriverError::Smtp(e)
    }

    /// Writes every pending output item as one flight; `body` writes the message when the
    /// session asks for it.
    fn write_flight(&mut self, body: Option<&dyn Outgoing>) -> Result<(), DriverError> {
        let mut items = Vec::new();
        while let Some(item) = self.session.poll_output() {
            items.push(item);
        }
        self.transcript();
        if items.is_empty() || self.closed {
            return Ok(());
        }
        self.waiting_after = None;
        let stage = self.session.stage();
        let mut socket = body::Socket::new(&mut self.stream);
        // A socket that fails inside the body fails before the end of the data (the final dot
        // or the rest of the BDAT octets) was handed to it: nothing can have been delivered.
        let mut cut_in_body = false;
        let result = (|| {
            let mut w = BufWriter::with_capacity(64 * 1024, &mut socket);
            for item in items {
                match item {
                    Output::Bytes(b) => w.write_all(&b).map_err(body::BodyError::Write)?,
                    Output::Body(framing) => {
                        let msg = body.ok_or(body::BodyError::NoMessage)?;
                        body::write(&mut w, msg, framing).inspect_err(|_| cut_in_body = true)?;
                    }
                }
            }
            w.flush().map_err(body::BodyError::Write)
        })();
        let socket_failed = socket.failed();
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(match e.into_driver_error(socket_failed) {
                Ok(io) => {
                    let mut e =
                        self.transport_error(TransportError::from_io(stage.to_string(), io));
                    if let DriverError::Transport {
                        maybe_delivered, ..
                    } = &mut e
                    {
                        *maybe_delivered &= !cut_in_body;
                    }
                    e
                }
                Err(other) => {
                    // Part of a message went out without its end: drop the connection so the
                    // server discards it (RFC 5321 §3.3: only the end of data confirms).
                    self.close();
                    other
                }
            }),
        }
    }

    /// Reads once, under the deadline of the reply being waited for, and feeds the session;
    /// end of stream becomes the session's "closed during X".
    fn read_once(&mut self) -> Result<(), DriverError> {
        let replies = self.session.replies_received();
        if self.waiting_after != Some(replies) {
            self.waiting_after = Some(replies);
            self.stream.bound_reads(self.timeout);
        }
        let mut buf = [0u8; 16 * 1024];
        let n = match self.stream.read(&mut buf) {
            Ok(n) => n,
            // A TLS peer that closes without close_notify: SMTP replies delimit themselves, so
            // the session, not rustls, judges whether anything was cut short (RFC 8446 §6.1).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => {
                let stage = self.session.stage().to_string();
                return Err(self.transport_error(TransportError::from_io(stage, e)));
            }
        };
        let result = if n == 0 {
            self.session.connection_closed()
        } else {
            self.session.receive(&buf[..n])
        };
        self.transcript();
        result.map_err(|e| self.session_error(e))
    }

    /// Drives the dialogue until the session is ready for a message, a message finished, or
    /// the connection closed.
    fn pump(&mut self, body: Option<&dyn Outgoing>) -> Result<(), DriverError> {
        loop {
            self.write_flight(body)?;
            let mut ready = false;
            let mut progressed = false;
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                match event {
                    Event::StartTls => self.upgrade()?,
                    Event::Ready(caps) => {
                        self.caps = Some(caps);
                        ready = true;
                    }
                    Event::Message(report) => self.finished = Some(report),
                    Event::Closed => {
                        self.close();
                        return Ok(());
                    }
                }
            }
            if ready || self.session.is_finished() {
                return Ok(());
            }
            if self.session.wants_read() {
                self.read_once()?;
            } else if self.finished.is_some() {
                return Ok(());
            } else if !progressed {
                self.close();
                return Err(DriverError::Internal(
                    "the session neither wants to read nor has anything to write",
                ));
            }
        }
    }

    /// STARTTLS: the stream hands its plain socket to TLS in place; the handshake completes
    /// here, under the timeout, so certificate errors surface at this step (RFC 3207 §4).
    fn upgrade(&mut self) -> Result<(), DriverError> {
        let Some((name, config)) = self.tls.clone() else {
            self.close();
            return Err(DriverError::Internal("STARTTLS without a TLS config"));
        };
        self.log.line("* starting TLS");
        if let Err(e) = self.stream.start_tls(name, config) {
            return Err(self.transport_error(e));
        }
        self.tls_done();
        self.session
            .tls_established()
            .map_err(|e| self.session_error(e))
    }
}
