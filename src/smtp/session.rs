//! The SMTP submission session as a sans-I/O state machine: RFC 5321 (§3, §4.1, §4.2, §4.3.2),
//! STARTTLS (RFC 3207), PIPELINING (RFC 2920), AUTH (RFC 4954), CHUNKING (RFC 3030),
//! SMTPUTF8 (RFC 6531), 8BITMIME (RFC 6152), SIZE (RFC 1870).
//!
//! Like rustls' `Connection`, the session never touches a socket: the driver writes what
//! [`Session::poll_output`] hands out, feeds what it reads to [`Session::receive`], and acts on
//! [`Session::poll_event`]. Every reply is matched with the exact code its command expects
//! (220 greeting, 250 EHLO, 220 STARTTLS, 334/235 AUTH, 250 MAIL, 250/251 RCPT, 354 DATA,
//! 250 end of data or BDAT, 221 QUIT); anything else is an error, never "success".
//!
//! # Driver contract
//!
//! 1. Connect (for [`TlsMode::Implicit`], finish the TLS handshake first), then
//!    `Session::new(config)`. The first thing is to read: the server speaks first.
//! 2. Loop:
//!    - **Write** every item of `poll_output()` until it returns `None`, then flush. The items
//!      of one loop turn form one flight (RFC 2920 pipelining): write them all before reading.
//!      - [`Output::Bytes`]: write exactly these bytes.
//!      - [`Output::Body`]`(`[`BodyFraming::Raw`]`{ size })`: write the message as it is,
//!        exactly `size` octets (the [`Envelope::size`] given), no dot-stuffing (BDAT,
//!        RFC 3030 §2).
//!      - [`Output::Body`]`(`[`BodyFraming::Dot`]`)`: write the message dot-stuffed
//!        (RFC 5321 §4.5.2), and make sure what you wrote ends with CRLF (add one if the
//!        message did not). Do NOT write the final `.`: the session hands it out as the next
//!        `Output::Bytes(".\r\n")`, so it knows exactly when end of data went out.
//!    - **Events**: handle every `poll_event()` until `None`:
//!      - [`Event::StartTls`]: run the TLS handshake on the socket now (under the timeout),
//!        then call [`Session::tls_established`]. Nothing was left unread: the session has
//!        already checked that no byte followed the 220 in the same read (plaintext command
//!        injection, CVE-2011-0411); bytes in a later segment reach the TLS handshake and fail it.
//!      - [`Event::Ready`]`(caps)`: build the message now (it depends on SMTPUTF8/8BITMIME in
//!        `caps`) and call [`Session::submit`], or [`Session::quit`] when there is nothing
//!        (more) to send. A `submit` error (data, size) sends nothing and leaves the session
//!        ready: submit another message or `quit()`.
//!      - [`Event::Message`]`(report)`: one message's per-recipient results and outcome.
//!      - [`Event::Closed`]: the dialogue is over (221 received, or the session dropped the
//!        connection on purpose); close the socket. If messages remain, they need a new
//!        connection.
//!    - If [`Session::is_finished`], stop. Otherwise, if [`Session::wants_read`], read; on end
//!      of stream call [`Session::connection_closed`] (its error names the stage and says
//!      whether the message may have been delivered), else pass the bytes to `receive()`.
//! 3. When `receive()` (or `tls_established`, `connection_closed`) returns an error, the session
//!    is finished. If the dialogue was still in step (a refusal, a configuration or auth error),
//!    `poll_output()` now yields a `QUIT`: write it, best effort, and close without waiting for
//!    the reply. Then report the error ([`SmtpError::class`]).
//!
//! On a read timeout or another I/O error, [`Session::stage`] names the step for the message
//! and [`Session::data_in_flight`] says whether a retry could deliver the message twice.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use quizmail::smtp::{BodyFraming, Config, Envelope, Event, Output, Session, TlsMode};
//!
//! type AnyError = Box<dyn std::error::Error>;
//!
//! fn send(sock: &mut std::net::TcpStream, message: &[u8]) -> Result<(), AnyError> {
//!     let config = Config {
//!         ehlo_name: "[127.0.0.1]".into(),
//!         tls: TlsMode::None,
//!         credentials: None,
//!         probe: false,
//!         transcript: false,
//!     };
//!     let mut session = Session::new(config)?;
//!     let mut buf = [0u8; 4096];
//!     loop {
//!         while let Some(out) = session.poll_output() {
//!             match out {
//!                 Output::Bytes(b) => sock.write_all(&b)?,
//!                 Output::Body(BodyFraming::Raw { .. }) => sock.write_all(message)?,
//!                 // `message` ends in CRLF and has no line starting with '.'.
//!                 Output::Body(BodyFraming::Dot) => sock.write_all(message)?,
//!             }
//!         }
//!         while let Some(event) = session.poll_event() {
//!             match event {
//!                 Event::Ready(_caps) => session.submit(Envelope {
//!                     from: "a@example.org".into(),
//!                     recipients: vec!["b@example.org".into()],
//!                     size: message.len() as u64,
//!                     smtputf8: false,
//!                     eight_bit: false,
//!                     more: false,
//!                 })?,
//!                 Event::Message(report) => println!("{:?}", report.outcome),
//!                 Event::StartTls | Event::Closed => {}
//!             }
//!         }
//!         if session.is_finished() {
//!             return Ok(());
//!         }
//!         if session.wants_read() {
//!             let n = sock.read(&mut buf)?;
//!             if n == 0 {
//!                 return Ok(session.connection_closed()?);
//!             }
//!             session.receive(&buf[..n])?;
//!         }
//!     }
//! }
//! ```
//!
//! # Choices
//! - STARTTLS mode means STARTTLS is required: not offered is [`SmtpError::StartTlsNotOffered`],
//!   never a plaintext fallback. Everything learnt before TLS is discarded and EHLO is sent
//!   again (RFC 3207 §4.2); the old capabilities stay readable for `--probe` only.
//! - HELO is tried after EHLO gets 500/502 only when neither STARTTLS nor AUTH is needed.
//! - One AUTH attempt: a 5xx ends it; no other mechanism re-sends the password.
//! - With PIPELINING, RSET (between messages), MAIL, every RCPT and DATA (or BDAT + body, and
//!   QUIT after the last message) go in one flight, and every reply is read and matched even
//!   after a refusal (RFC 2920 §3.1). Without it, one command per round trip.
//! - If DATA was pipelined, no recipient was accepted and the server still answers 354
//!   (allowed by RFC 2920 §3.1, which suggests sending a lone `.`), the session does not send
//!   that `.`: it would submit an empty message, and if our count of accepted recipients were
//!   ever wrong, deliver it. RSET and QUIT cannot be sent either: after a 354 every line is
//!   message content until `.`. So the session reports the message as refused and drops the
//!   connection ([`Event::Closed`] without QUIT). Mail data that never ended confirms nothing:
//!   only the end-of-data indicator confirms the transaction (RFC 5321 §3.3), so the server
//!   has nothing to deliver. Later messages need a new connection.
//! - A refused RSET between messages does not stop the next one: RSET after a completed
//!   transaction changes nothing (RFC 5321 §4.1.1.5), and the next MAIL reply decides.
//! - An address that is not ASCII turns SMTPUTF8 on even if the envelope did not ask for it.
use std::collections::VecDeque;
use std::fmt;

use super::auth::{self, Credentials, Mechanism, Sasl};
use super::capability::Capabilities;
use super::command::{Command, CommandError, Domain, Param, Path};
use super::reply::{Parsed, Reply, ReplyParser};
use super::SmtpError;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext for the whole session.
    None,
    /// STARTTLS is required (RFC 3207): a server that does not offer it is an error.
    Starttls,
    /// The driver completed TLS before the greeting (RFC 8314 §3).
    Implicit,
}

/// What the session needs to know before the greeting.
#[derive(Debug, Clone)]
pub struct Config {
    /// The EHLO/HELO argument: a domain or an address literal such as `[127.0.0.1]`.
    pub ehlo_name: String,
    pub tls: TlsMode,
    /// Authenticate with these after EHLO (after STARTTLS when required).
    pub credentials: Option<Credentials>,
    /// `--probe`: greeting, EHLO, STARTTLS and EHLO again when required, then QUIT.
    pub probe: bool,
    /// Keep a `C: `/`S: ` transcript for `-v` ([`Session::take_transcript`]).
    pub transcript: bool,
}

/// One message to submit, given after [`Event::Ready`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// MAIL FROM address; empty for the null path `<>`.
    pub from: String,
    pub recipients: Vec<String>,
    /// The message size in octets, CRLF line ends, before dot-stuffing (RFC 1870 §3). For BDAT
    /// the driver writes exactly this many octets.
    pub size: u64,
    /// The message needs SMTPUTF8 (UTF-8 in headers or addresses, RFC 6531).
    pub smtputf8: bool,
    /// The message has 8-bit content and needs BODY=8BITMIME (RFC 6152).
    pub eight_bit: bool,
    /// Another message follows on this connection: no QUIT yet, RSET before the next MAIL.
    pub more: bool,
}

/// How the driver writes the message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// After DATA's 354: dot-stuffed, ending in CRLF; the session sends the final `.`.
    Dot,
    /// After `BDAT size LAST`: exactly `size` raw octets.
    Raw { size: u64 },
}

/// Something for the driver to write.
pub enum Output {
    Bytes(Vec<u8>),
    /// Write the message body now.
    Body(BodyFraming),
}

impl fmt::Debug for Output {
    /// Never shows the bytes: an AUTH line carries credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Bytes(b) => write!(f, "Bytes(<{} octets>)", b.len()),
            Output::Body(framing) => write!(f, "Body({framing:?})"),
        }
    }
}

/// What happened, for the driver to act on.
#[derive(Debug)]
pub enum Event {
    /// 220 to STARTTLS: do the TLS handshake, then call [`Session::tls_established`].
    StartTls,
    /// Ready for a message: build it against these capabilities, then [`Session::submit`].
    Ready(Capabilities),
    /// One message is finished.
    Message(MessageReport),
    /// The dialogue is over; close the socket.
    Closed,
}

/// What became of one recipient.
#[derive(Debug)]
pub enum RecipientStatus {
    /// 250 or 251.
    Accepted(Reply),
    /// A 4xx or 5xx reply.
    Rejected(Reply),
    /// Never sent: the transaction ended before (without PIPELINING, after MAIL was refused).
    NotTried,
}

#[derive(Debug)]
pub struct RecipientResult {
    pub address: String,
    pub status: RecipientStatus,
}

/// The server took the message.
#[derive(Debug)]
pub struct Delivered {
    /// The reply to the end of data (or to BDAT LAST).
    pub reply: Reply,
    /// The server's queue id, when its reply has a known form ([`queue_id`]).
    pub queue_id: Option<String>,
}

/// One message's result. The message went to the accepted recipients only; when `outcome` is
/// `Ok` and some recipients were rejected, the others still got it.
#[derive(Debug)]
pub struct MessageReport {
    /// In envelope order.
    pub recipients: Vec<RecipientResult>,
    pub outcome: Result<Delivered, SmtpError>,
}

impl MessageReport {
    pub fn accepted(&self) -> impl Iterator<Item = &str> {
        self.recipients
            .iter()
            .filter(|r| matches!(r.status, RecipientStatus::Accepted(_)))
            .map(|r| r.address.as_str())
    }

    pub fn rejected(&self) -> impl Iterator<Item = (&str, &Reply)> {
        self.recipients.iter().filter_map(|r| match &r.status {
            RecipientStatus::Rejected(reply) => Some((r.address.as_str(), reply)),
            _ => None,
        })
    }
}

/// The step of the dialogue, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    Auth,
    /// Waiting for the driver to submit a message.
    Ready,
    Reset,
    MailFrom,
    RcptTo,
    Data,
    MessageBody,
    EndOfData,
    Quit,
    Closed,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Auth => "AUTH",
            Stage::Ready => "idle between messages",
            Stage::Reset => "RSET",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::MessageBody => "message body",
            Stage::EndOfData => "end of data",
            Stage::Quit => "QUIT",
            Stage::Closed => "closed",
        })
    }
}

/// The reply the session waits for, oldest first.
#[derive(Debug)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth(Box<(Sasl, Credentials)>),
    Rset,
    Mail,
    Rcpt(usize),
    Data,
    /// The reply to the final `.` or to `BDAT LAST`.
    EndOfData,
    Quit,
}

impl Expect {
    fn stage(&self) -> Stage {
        match self {
            Expect::Greeting => Stage::Greeting,
            Expect::Ehlo => Stage::Ehlo,
            Expect::Helo => Stage::Helo,
            Expect::StartTls => Stage::StartTls,
            Expect::Auth(_) => Stage::Auth,
            Expect::Rset => Stage::Reset,
            Expect::Mail => Stage::MailFrom,
            Expect::Rcpt(_) => Stage::RcptTo,
            Expect::Data => Stage::Data,
            Expect::EndOfData => Stage::EndOfData,
            Expect::Quit => Stage::Quit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Commands and replies are flowing.
    Dialogue,
    TlsHandshake,
    Ready,
    Closed,
    Failed(Stage),
}

struct Pending {
    output: Output,
    stage: Stage,
    log: String,
}

/// One mail transaction in progress.
struct Transaction {
    recipients: Vec<RecipientResult>,
    /// Commands still to send one by one (without PIPELINING).
    rest: VecDeque<(Command, Expect)>,
    pipelining: bool,
    chunking: bool,
    size: u64,
    more: bool,
    accepted: usize,
    /// A refused MAIL explains everything after it.
    mail_failure: Option<SmtpError>,
}

/// The SMTP client session. See the module documentation for the driver contract.
pub struct Session {
    ehlo: Domain,
    tls_mode: TlsMode,
    credentials: Option<Credentials>,
    had_credentials: bool,
    probe: bool,
    record: bool,
    parser: ReplyParser,
    phase: Phase,
    tls_active: bool,
    output: VecDeque<Pending>,
    expect: VecDeque<Expect>,
    events: VecDeque<Event>,
    transcript: Vec<String>,
    greeting: Option<Reply>,
    caps: Option<Capabilities>,
    pre_tls_caps: Option<Capabilities>,
    authenticated: Option<Mechanism>,
    transactions: usize,
    txn: Option<Transaction>,
    data_in_flight: bool,
}

impl Session {
    /// A session waiting for the greeting. Fails only on an invalid EHLO name.
    pub fn new(config: Config) -> Result<Session, SmtpError> {
        let ehlo = Domain::new(&config.ehlo_name)?;
        Ok(Session {
            ehlo,
            tls_mode: config.tls,
            had_credentials: config.credentials.is_some(),
            credentials: config.credentials,
            probe: config.probe,
            record: config.transcript,
            parser: ReplyParser::new(),
            phase: Phase::Dialogue,
            tls_active: config.tls == TlsMode::Implicit,
            output: VecDeque::new(),
            expect: VecDeque::from([Expect::Greeting]),
            events: VecDeque::new(),
            transcript: Vec::new(),
            greeting: None,
            caps: None,
            pre_tls_caps: None,
            authenticated: None,
            transactions: 0,
            txn: None,
            data_in_flight: false,
        })
    }

    /// The next thing to write, in order; `None` when the flight is complete.
    pub fn poll_output(&mut self) -> Option<Output> {
        let item = self.output.pop_front()?;
        if self.record {
            self.transcript.push(format!("C: {}", item.log));
        }
        Some(item.output)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// True when everything was written and a reply is awaited.
    pub fn wants_read(&self) -> bool {
        self.phase == Phase::Dialogue && self.output.is_empty() && !self.expect.is_empty()
    }

    /// True after [`Event::Closed`] or an error: only a best-effort QUIT may remain to write.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Failed(_))
    }

    /// The step in progress: that of the first unwritten output, else of the oldest unanswered
    /// command; after an error, the step that failed.
    pub fn stage(&self) -> Stage {
        match self.phase {
            Phase::Failed(stage) => stage,
            Phase::Closed => Stage::Closed,
            Phase::TlsHandshake => Stage::TlsHandshake,
            Phase::Ready => Stage::Ready,
            Phase::Dialogue => self
                .output
                .front()
                .map(|p| p.stage)
                .or_else(|| self.expect.front().map(Expect::stage))
                .unwrap_or(Stage::Ready),
        }
    }

    /// The end of message data was handed out and its reply has not come: the server may have
    /// taken the message, so it must not be sent again.
    pub fn data_in_flight(&self) -> bool {
        self.data_in_flight
    }

    pub fn greeting(&self) -> Option<&Reply> {
        self.greeting.as_ref()
    }

    /// The capabilities in force (after TLS, when STARTTLS was used).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.caps.as_ref()
    }

    /// What the server offered before STARTTLS: for `--probe` display only, never acted on.
    pub fn pre_tls_capabilities(&self) -> Option<&Capabilities> {
        self.pre_tls_caps.as_ref()
    }

    pub fn tls_active(&self) -> bool {
        self.tls_active
    }

    /// The mechanism that authenticated the session.
    pub fn auth_mechanism(&self) -> Option<Mechanism> {
        self.authenticated
    }

    /// The `C: `/`S: ` lines since the last call (empty unless [`Config::transcript`]).
    /// Credentials are redacted; server text has its control characters replaced.
    pub fn take_transcript(&mut self) -> Vec<String> {
        std::mem::take(&mut self.transcript)
    }

    /// Feeds bytes read from the server.
    pub fn receive(&mut self, mut input: &[u8]) -> Result<(), SmtpError> {
        match self.phase {
            Phase::Closed => return Ok(()),
            Phase::Failed(_) => return Err(SmtpError::Misuse("receive() after the session ended")),
            Phase::TlsHandshake if !input.is_empty() => {
                return self.fail_hard(
                    Stage::StartTls,
                    SmtpError::StartTlsInjection {
                        buffered: input.len(),
                    },
                )
            }
            _ => {}
        }
        if !self.output.is_empty() {
            return Err(SmtpError::Misuse(
                "receive() before all pending output was written",
            ));
        }
        while !input.is_empty() && !self.is_finished() {
            let (reply, consumed) = match self.parser.parse(input) {
                Ok(Parsed::Complete { reply, consumed }) => (reply, consumed),
                Ok(Parsed::NeedMore) => break,
                Err(source) => {
                    return self.fail_hard(
                        self.stage(),
                        SmtpError::Malformed {
                            stage: self.stage(),
                            source,
                        },
                    )
                }
            };
            input = &input[consumed..];
            if self.record {
                self.transcript
                    .extend(reply.raw_lines().iter().map(|l| format!("S: {l}")));
            }
            let stage = self.stage();
            // A reply before its command was written means the server is out of step with us
            // (or is talking early): matching it to the next command would shift every reply.
            if !self.output.is_empty() || self.phase != Phase::Dialogue {
                return self.fail_hard(stage, unsolicited(stage, reply));
            }
            let Some(expect) = self.expect.pop_front() else {
                return self.fail_hard(stage, unsolicited(stage, reply));
            };
            self.handle(expect, reply, input.len() + self.parser.buffered())?;
        }
        Ok(())
    }

    /// Call after the TLS handshake that followed [`Event::StartTls`] succeeded.
    pub fn tls_established(&mut self) -> Result<(), SmtpError> {
        if self.phase != Phase::TlsHandshake {
            return Err(SmtpError::Misuse(
                "tls_established() without Event::StartTls",
            ));
        }
        // RFC 3207 §4.2: discard all knowledge obtained from the server before TLS.
        self.pre_tls_caps = self.caps.take();
        self.parser = ReplyParser::new();
        self.tls_active = true;
        self.phase = Phase::Dialogue;
        self.send_ehlo();
        Ok(())
    }

    /// End of stream from the server. `Ok` when nothing was lost (the dialogue was over, or only
    /// the 221 to QUIT was missing); otherwise a temporary error naming the stage.
    pub fn connection_closed(&mut self) -> Result<(), SmtpError> {
        if self.is_finished() {
            return Ok(());
        }
        if self.output.is_empty()
            && self.expect.len() == 1
            && matches!(self.expect.front(), Some(Expect::Quit))
        {
            self.expect.clear();
            self.phase = Phase::Closed;
            return Ok(());
        }
        let stage = self.stage();
        let maybe_delivered = self.data_in_flight;
        self.fail_hard(
            stage,
            SmtpError::Closed {
                stage,
                maybe_delivered,
            },
        )
    }

    /// Submits one message after [`Event::Ready`]. Checks SMTPUTF8, 8BITMIME and the SIZE limit
    /// before anything is sent; on error nothing is sent and the session stays ready.
    pub fn submit(&mut self, envelope: Envelope) -> Result<(), SmtpError> {
        if self.phase != Phase::Ready {
            return Err(SmtpError::Misuse(
                "submit() is only allowed after Event::Ready",
            ));
        }
        let caps = self.caps.clone().unwrap_or_default();
        if envelope.recipients.is_empty() {
            return Err(CommandError {
                what: "recipient list",
                value: String::new(),
                reason: "empty",
            }
            .into());
        }
        let from = Path::reverse(&envelope.from)?;
        let rcpts = envelope
            .recipients
            .iter()
            .map(|r| Path::forward(r))
            .collect::<Result<Vec<_>, _>>()?;
        let smtputf8 = envelope.smtputf8 || !from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii());
        if smtputf8 && !caps.smtputf8() {
            return Err(SmtpError::NeedsSmtpUtf8);
        }
        if envelope.eight_bit && !caps.eight_bit_mime() {
            return Err(SmtpError::NeedsEightBitMime);
        }
        if let Some(limit) = caps.size_limit() {
            if envelope.size > limit {
                return Err(SmtpError::TooBig {
                    size: envelope.size,
                    limit,
                });
            }
        }
        let mut params = Vec::new();
        if caps.size_offered() {
            params.push(Param::size(envelope.size));
        }
        if envelope.eight_bit {
            params.push(Param::body_8bitmime());
        }
        if smtputf8 {
            params.push(Param::smtputf8());
        }
        let mut rest = VecDeque::new();
        if self.transactions > 0 {
            rest.push_back((Command::Rset, Expect::Rset));
        }
        rest.push_back((Command::Mail { from, params }, Expect::Mail));
        for (i, to) in rcpts.into_iter().enumerate() {
            rest.push_back((
                Command::Rcpt {
                    to,
                    params: Vec::new(),
                },
                Expect::Rcpt(i),
            ));
        }
        let mut txn = Transaction {
            recipients: envelope
                .recipients
                .into_iter()
                .map(|address| RecipientResult {
                    address,
                    status: RecipientStatus::NotTried,
                })
                .collect(),
            rest,
            pipelining: caps.pipelining(),
            chunking: caps.chunking(),
            size: envelope.size,
            more: envelope.more,
            accepted: 0,
            mail_failure: None,
        };
        self.transactions += 1;
        self.phase = Phase::Dialogue;
        if txn.pipelining {
            while let Some((cmd, expect)) = txn.rest.pop_front() {
                self.push(cmd, Some(expect));
            }
            self.send_data_command(&txn);
        } else {
            self.send_next(&mut txn);
        }
        self.txn = Some(txn);
        Ok(())
    }

    /// Ends the session after [`Event::Ready`] when no (more) message is to be sent.
    pub fn quit(&mut self) -> Result<(), SmtpError> {
        if self.phase != Phase::Ready {
            return Err(SmtpError::Misuse(
                "quit() is only allowed after Event::Ready",
            ));
        }
        self.phase = Phase::Dialogue;
        self.push(Command::Quit, Some(Expect::Quit));
        Ok(())
    }

    fn push(&mut self, cmd: Command, expect: Option<Expect>) {
        let stage = expect.as_ref().map_or(Stage::Quit, Expect::stage);
        self.output.push_back(Pending {
            output: Output::Bytes(cmd.to_wire()),
            stage,
            log: cmd.to_string(),
        });
        self.expect.extend(expect);
    }

    fn push_raw(&mut self, output: Output, stage: Stage, log: String) {
        self.output.push_back(Pending { output, stage, log });
    }

    fn send_ehlo(&mut self) {
        self.push(Command::Ehlo(self.ehlo.clone()), Some(Expect::Ehlo));
    }

    /// Stops without a QUIT: the connection is out of step, compromised or closing.
    fn fail_hard(&mut self, stage: Stage, err: SmtpError) -> Result<(), SmtpError> {
        self.drop_stale_events();
        self.output.clear();
        self.expect.clear();
        self.txn = None;
        self.phase = Phase::Failed(stage);
        Err(err)
    }

    /// Stops with a QUIT for the driver to send best effort: the dialogue is still in step.
    fn fail_polite(&mut self, stage: Stage, err: SmtpError) -> Result<(), SmtpError> {
        self.drop_stale_events();
        self.output.clear();
        self.expect.clear();
        self.txn = None;
        self.push(Command::Quit, None);
        self.phase = Phase::Failed(stage);
        Err(err)
    }

    /// After a failure only finished messages are still worth reporting: a pending Ready or
    /// StartTls would invite the driver to carry on.
    fn drop_stale_events(&mut self) {
        self.events.retain(|e| matches!(e, Event::Message(_)));
    }

    /// A reply that is not the success the command expects, outside a transaction.
    fn refuse(&mut self, stage: Stage, reply: Reply) -> Result<(), SmtpError> {
        match reply.code {
            421 => self.fail_hard(stage, SmtpError::ServiceClosing { stage, reply }),
            400..=599 => self.fail_polite(stage, SmtpError::Rejected { stage, reply }),
            _ => self.fail_hard(stage, SmtpError::UnexpectedReply { stage, reply }),
        }
    }

    fn handle(&mut self, expect: Expect, reply: Reply, leftover: usize) -> Result<(), SmtpError> {
        match expect {
            Expect::Greeting if reply.code == 220 => {
                self.greeting = Some(reply);
                self.send_ehlo();
                Ok(())
            }
            Expect::Ehlo if reply.code == 250 => self.after_hello(Capabilities::parse(&reply)),
            Expect::Ehlo if matches!(reply.code, 500 | 502) => self.ehlo_refused(reply),
            // A HELO reply carries no extension keywords (RFC 5321 §4.1.1.1).
            Expect::Helo if reply.code == 250 => self.after_hello(Capabilities::none()),
            Expect::StartTls if reply.code == 220 => {
                if leftover > 0 {
                    return self.fail_hard(
                        Stage::StartTls,
                        SmtpError::StartTlsInjection { buffered: leftover },
                    );
                }
                self.phase = Phase::TlsHandshake;
                self.events.push_back(Event::StartTls);
                Ok(())
            }
            Expect::Auth(exchange) => self.on_auth(*exchange, reply),
            Expect::Quit if reply.code == 221 => {
                self.phase = Phase::Closed;
                self.events.push_back(Event::Closed);
                Ok(())
            }
            // QUIT was the last command: answering anything but 221 is out of step, and there
            // is nothing left to say politely.
            Expect::Quit if reply.code == 421 => {
                let stage = Stage::Quit;
                self.fail_hard(stage, SmtpError::ServiceClosing { stage, reply })
            }
            Expect::Quit => {
                let stage = Stage::Quit;
                self.fail_hard(stage, SmtpError::UnexpectedReply { stage, reply })
            }
            Expect::Rset | Expect::Mail | Expect::Rcpt(_) | Expect::Data | Expect::EndOfData => {
                self.on_transaction(expect, reply)
            }
            other => self.refuse(other.stage(), reply),
        }
    }

    /// EHLO got 500/502: HELO only when neither STARTTLS nor AUTH is needed (RFC 5321 §4.1.4),
    /// because a HELO session offers neither.
    fn ehlo_refused(&mut self, reply: Reply) -> Result<(), SmtpError> {
        if self.tls_mode == TlsMode::Starttls && !self.tls_active {
            return self.fail_polite(Stage::Ehlo, SmtpError::StartTlsNotOffered);
        }
        if self.credentials.is_some() && !self.probe {
            return self.fail_polite(Stage::Ehlo, SmtpError::AuthNotOffered);
        }
        if self.record {
            self.transcript
                .push(format!("* EHLO refused ({}), trying HELO", reply.code));
        }
        self.push(Command::Helo(self.ehlo.clone()), Some(Expect::Helo));
        Ok(())
    }

    fn after_hello(&mut self, caps: Capabilities) -> Result<(), SmtpError> {
        let starttls_offered = caps.starttls();
        let tls = self.tls_active;
        self.caps = Some(caps);
        if self.tls_mode == TlsMode::Starttls && !tls {
            if !starttls_offered {
                return self.fail_polite(Stage::Ehlo, SmtpError::StartTlsNotOffered);
            }
            self.push(Command::StartTls, Some(Expect::StartTls));
            return Ok(());
        }
        if self.probe {
            self.push(Command::Quit, Some(Expect::Quit));
            return Ok(());
        }
        let Some(creds) = self.credentials.take() else {
            self.enter_ready();
            return Ok(());
        };
        let offered = self
            .caps
            .as_ref()
            .map(|c| c.auth_mechanisms().to_vec())
            .unwrap_or_default();
        let started =
            auth::choose(creds.choice, &offered, tls).and_then(|m| Sasl::start(m, &creds));
        match started {
            Ok((sasl, cmd)) => {
                self.push(cmd, Some(Expect::Auth(Box::new((sasl, creds)))));
                Ok(())
            }
            Err(e) => self.fail_polite(Stage::Auth, e),
        }
    }

    fn on_auth(&mut self, exchange: (Sasl, Credentials), reply: Reply) -> Result<(), SmtpError> {
        let (mut sasl, creds) = exchange;
        match reply.code {
            235 => {
                self.authenticated = Some(sasl.mechanism());
                self.enter_ready();
                Ok(())
            }
            334 => match sasl.respond(&reply, &creds) {
                Ok(cmd) => {
                    self.push(cmd, Some(Expect::Auth(Box::new((sasl, creds)))));
                    Ok(())
                }
                Err(e) => self.fail_hard(Stage::Auth, e),
            },
            500..=599 => {
                let mechanism = sasl.mechanism();
                self.fail_polite(Stage::Auth, SmtpError::AuthFailed { mechanism, reply })
            }
            _ => self.refuse(Stage::Auth, reply),
        }
    }

    fn enter_ready(&mut self) {
        self.phase = Phase::Ready;
        self.events
            .push_back(Event::Ready(self.caps.clone().unwrap_or_default()));
    }

    fn send_next(&mut self, txn: &mut Transaction) {
        match txn.rest.pop_front() {
            Some((cmd, expect)) => self.push(cmd, Some(expect)),
            None => self.send_data_command(txn),
        }
    }

    /// DATA, or with CHUNKING `BDAT size LAST` and the body (RFC 3030 §2); with PIPELINING and
    /// no message to follow, QUIT rides in the same flight.
    fn send_data_command(&mut self, txn: &Transaction) {
        if txn.chunking {
            self.push(
                Command::Bdat {
                    size: txn.size,
                    last: true,
                },
                Some(Expect::EndOfData),
            );
            let log = format!("<message body, {} octets>", txn.size);
            self.push_raw(
                Output::Body(BodyFraming::Raw { size: txn.size }),
                Stage::MessageBody,
                log,
            );
            self.data_in_flight = true;
            self.pipeline_quit(txn);
        } else {
            self.push(Command::Data, Some(Expect::Data));
        }
    }

    fn pipeline_quit(&mut self, txn: &Transaction) {
        if txn.pipelining && !txn.more {
            self.push(Command::Quit, Some(Expect::Quit));
        }
    }

    fn on_transaction(&mut self, expect: Expect, reply: Reply) -> Result<(), SmtpError> {
        let stage = expect.stage();
        let Some(mut txn) = self.txn.take() else {
            return self.fail_hard(
                stage,
                SmtpError::Misuse("transaction reply without a transaction"),
            );
        };
        let refused = reply.is_transient() || reply.is_permanent();
        // A definite answer to the end of data settles whether the message was taken; a
        // malformed or unexpected one leaves it in doubt.
        if matches!(expect, Expect::EndOfData) && (refused || reply.code == 250) {
            self.data_in_flight = false;
        }
        if reply.code == 421 {
            return self.fail_hard(stage, SmtpError::ServiceClosing { stage, reply });
        }
        match expect {
            // RSET after a completed transaction changes nothing (RFC 5321 §4.1.1.5), so a
            // refusal does not stop the next one: with PIPELINING its MAIL and data are already
            // on their way, and the MAIL reply decides.
            Expect::Rset if reply.code == 250 || refused => {
                if !txn.pipelining {
                    self.send_next(&mut txn);
                }
            }
            Expect::Mail if reply.code == 250 => {
                if !txn.pipelining {
                    self.send_next(&mut txn);
                }
            }
            Expect::Mail if refused => {
                let err = if reply.code == 530 && !self.had_credentials {
                    SmtpError::AuthRequired { reply }
                } else {
                    SmtpError::Rejected { stage, reply }
                };
                if !txn.pipelining {
                    return self.finish(txn, Err(err));
                }
                txn.mail_failure = Some(err);
            }
            Expect::Rcpt(i) if matches!(reply.code, 250 | 251) || refused => {
                let accepted = matches!(reply.code, 250 | 251);
                if let Some(r) = txn.recipients.get_mut(i) {
                    r.status = if accepted {
                        RecipientStatus::Accepted(reply)
                    } else if txn.mail_failure.is_some() {
                        // A pipelined RCPT after a refused MAIL gets "503 bad sequence": that
                        // says nothing about the recipient, so it was not really tried.
                        RecipientStatus::NotTried
                    } else {
                        RecipientStatus::Rejected(reply)
                    };
                }
                txn.accepted += usize::from(accepted);
                if !txn.pipelining {
                    if txn.rest.is_empty() && txn.accepted == 0 {
                        let err = no_recipient(&txn, self.had_credentials);
                        return self.finish(txn, Err(err));
                    }
                    self.send_next(&mut txn);
                }
            }
            Expect::Data if reply.code == 354 => {
                if let Some(err) = txn.overriding_error(self.had_credentials) {
                    return self.drop_after_354(txn, err);
                }
                self.push_raw(
                    Output::Body(BodyFraming::Dot),
                    Stage::MessageBody,
                    "<message body, dot-stuffed>".into(),
                );
                self.push_raw(
                    Output::Bytes(b".\r\n".to_vec()),
                    Stage::EndOfData,
                    ".".into(),
                );
                self.expect.push_back(Expect::EndOfData);
                self.data_in_flight = true;
                self.pipeline_quit(&txn);
            }
            Expect::Data if refused => {
                let err = txn
                    .overriding_error(self.had_credentials)
                    .unwrap_or(SmtpError::Rejected { stage, reply });
                return self.finish(txn, Err(err));
            }
            Expect::EndOfData if reply.code == 250 || refused => {
                let result = match txn.overriding_error(self.had_credentials) {
                    Some(err) => Err(err),
                    None if refused => Err(SmtpError::Rejected { stage, reply }),
                    None => Ok(Delivered {
                        queue_id: queue_id(&reply),
                        reply,
                    }),
                };
                return self.finish(txn, result);
            }
            _ => return self.fail_hard(stage, SmtpError::UnexpectedReply { stage, reply }),
        }
        self.txn = Some(txn);
        Ok(())
    }

    /// Reports the message and moves on: to the next message, or QUIT.
    fn finish(
        &mut self,
        txn: Transaction,
        outcome: Result<Delivered, SmtpError>,
    ) -> Result<(), SmtpError> {
        let more = txn.more;
        self.events.push_back(Event::Message(MessageReport {
            recipients: txn.recipients,
            outcome,
        }));
        if self.expect.iter().any(|e| matches!(e, Expect::Quit)) {
            return Ok(());
        }
        if more {
            self.enter_ready();
        } else {
            self.push(Command::Quit, Some(Expect::Quit));
        }
        Ok(())
    }

    /// DATA got 354 though no recipient was accepted (RFC 2920 §3.1): see the module doc.
    fn drop_after_354(&mut self, txn: Transaction, err: SmtpError) -> Result<(), SmtpError> {
        self.events.push_back(Event::Message(MessageReport {
            recipients: txn.recipients,
            outcome: Err(err),
        }));
        self.events.push_back(Event::Closed);
        self.output.clear();
        self.expect.clear();
        self.phase = Phase::Closed;
        if self.record {
            self.transcript
                .push("* 354 without an accepted recipient: closing without sending data".into());
        }
        Ok(())
    }
}

impl Transaction {
    /// With PIPELINING, a refused MAIL explains every reply after it, and with no recipient
    /// accepted the reply to DATA or BDAT is only a consequence: these errors take precedence.
    fn overriding_error(&mut self, had_credentials: bool) -> Option<SmtpError> {
        match self.mail_failure.take() {
            Some(err) => Some(err),
            None if self.accepted == 0 => Some(no_recipient(self, had_credentials)),
            None => None,
        }
    }
}

fn unsolicited(stage: Stage, reply: Reply) -> SmtpError {
    if reply.code == 421 {
        // A server may announce its shutdown at any time (RFC 5321 §3.8).
        SmtpError::ServiceClosing { stage, reply }
    } else {
        SmtpError::UnsolicitedReply { stage, reply }
    }
}

/// Every recipient was refused: temporary if any refusal was, so a retry can help; a 530 when
/// no credentials were given means the server wants authentication.
fn no_recipient(txn: &Transaction, had_credentials: bool) -> SmtpError {
    let rejections = || {
        txn.recipients.iter().filter_map(|r| match &r.status {
            RecipientStatus::Rejected(reply) => Some(reply),
            _ => None,
        })
    };
    if !had_credentials {
        if let Some(reply) = rejections().find(|r| r.code == 530) {
            return SmtpError::AuthRequired {
                reply: reply.clone(),
            };
        }
    }
    SmtpError::NoRecipientAccepted {
        transient: rejections().any(Reply::is_transient),
    }
}

/// The queue id in a final reply, best effort, from the common forms:
/// Postfix `queued as ID`, Exim `id=ID`, Stalwart and others `queued with id ID`,
/// Sendmail `ID Message accepted for delivery`, qmail `qp ID`, Gmail `OK <time> ID - gsmtp`.
pub fn queue_id(reply: &Reply) -> Option<String> {
    let text = reply.lines.join(" ");
    let lower = text.to_ascii_lowercase();
    let clean = |s: &str| -> Option<String> {
        let id = s.trim_matches(|c: char| {
            matches!(c, '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | '.' | ':')
        });
        (!id.is_empty()).then(|| id.to_string())
    };
    let after = |marker: &str| {
        lower
            .find(marker)
            .and_then(|i| text[i + marker.len()..].split_whitespace().next())
            .and_then(clean)
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    after("queued as ")
        .or_else(|| after("queued with id "))
        .or_else(|| after("id="))
        .or_else(|| after(" qp "))
        .or_else(|| {
            lower
                .contains("message accepted for delivery")
                .then(|| words.first().copied())
                .flatten()
                .filter(|w| !w.eq_ignore_ascii_case("message"))
                .and_then(clean)
        })
        .or_else(|| match words.as_slice() {
            [.., id, "-", "gsmtp"] => clean(id),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::{AuthChoice, ErrorClass, Secret};

    const EHLO_NAME: &str = "client.example.org";

    fn config(tls: TlsMode) -> Config {
        Config {
            ehlo_name: EHLO_NAME.into(),
            tls,
            credentials: None,
            probe: false,
            transcript: true,
        }
    }

    fn with_creds(mut c: Config, choice: AuthChoice) -> Config {
        c.credentials = Some(Credentials {
            user: "tim".into(),
            password: Secret::from("tanstaaftanstaaf".to_string()),
            choice,
        });
        c
    }

    fn envelope(rcpts: &[&str], size: u64, more: bool) -> Envelope {
        Envelope {
            from: "quiz@example.org".into(),
            recipients: rcpts.iter().map(|r| r.to_string()).collect(),
            size,
            smtputf8: false,
            eight_bit: false,
            more,
        }
    }

    /// A tiny driver: runs a conversation written as `S: ` (server lines; consecutive ones
    /// arrive in one read), `R: ` (raw bytes without CRLF, same read), `C: ` (the next item the
    /// client writes; bodies show as `<body dot>` / `<body raw N>`), `* TLS` (the handshake,
    /// after Event::StartTls) and `EOF`. It counts flights: bursts of writes between reads.
    struct Driver {
        session: Session,
        envelopes: VecDeque<Envelope>,
        written: VecDeque<String>,
        reports: Vec<MessageReport>,
        errors: Vec<SmtpError>,
        submit_errors: Vec<SmtpError>,
        ready: Vec<Capabilities>,
        tls_requested: bool,
        closed: bool,
        flights: usize,
        reading: bool,
        bytewise: bool,
    }

    impl Driver {
        fn pump(&mut self) {
            loop {
                let mut progressed = false;
                while let Some(out) = self.session.poll_output() {
                    progressed = true;
                    if self.reading {
                        self.flights += 1;
                        self.reading = false;
                    }
                    self.written.push_back(match out {
                        Output::Bytes(b) => {
                            let text = String::from_utf8(b).expect("commands are UTF-8");
                            let line = text.strip_suffix("\r\n").expect("CRLF terminated");
                            assert!(!line.contains(['\r', '\n']), "bare CR/LF in {line:?}");
                            line.to_string()
                        }
                        Output::Body(BodyFraming::Dot) => "<body dot>".into(),
                        Output::Body(BodyFraming::Raw { size }) => format!("<body raw {size}>"),
                    });
                }
                if let Some(event) = self.session.poll_event() {
                    progressed = true;
                    match event {
                        Event::StartTls => self.tls_requested = true,
                        Event::Ready(caps) => {
                            self.ready.push(caps);
                            match self.envelopes.pop_front() {
                                Some(env) => {
                                    if let Err(e) = self.session.submit(env) {
                                        self.submit_errors.push(e);
                                        self.session.quit().unwrap();
                                    }
                                }
                                None => self.session.quit().unwrap(),
                            }
                        }
                        Event::Message(report) => self.reports.push(report),
                        Event::Closed => self.closed = true,
                    }
                }
                if !progressed {
                    break;
                }
            }
        }

        fn feed(&mut self, bytes: &[u8]) {
            self.pump();
            assert!(
                self.written.is_empty(),
                "client wrote more than the script says: {:?}",
                self.written
            );
            assert!(
                self.session.wants_read(),
                "session does not want to read at stage {}",
                self.session.stage()
            );
            self.reading = true;
            let chunks: Vec<&[u8]> = if self.bytewise {
                bytes.chunks(1).collect()
            } else {
                vec![bytes]
            };
            for chunk in chunks {
                if let Err(e) = self.session.receive(chunk) {
                    self.errors.push(e);
                    break;
                }
            }
        }
    }

    fn run_with(config: Config, envelopes: Vec<Envelope>, script: &str, bytewise: bool) -> Driver {
        let mut d = Driver {
            session: Session::new(config).unwrap(),
            envelopes: envelopes.into(),
            written: VecDeque::new(),
            reports: Vec::new(),
            errors: Vec::new(),
            submit_errors: Vec::new(),
            ready: Vec::new(),
            tls_requested: false,
            closed: false,
            flights: 0,
            reading: true,
            bytewise,
        };
        let mut lines = script
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .peekable();
        while let Some(line) = lines.next() {
            if line.starts_with("S: ") || line.starts_with("R: ") {
                let mut chunk = Vec::new();
                let mut add = |l: &str| match l.split_at(3) {
                    ("S: ", text) => chunk.extend_from_slice(format!("{text}\r\n").as_bytes()),
                    (_, text) => chunk.extend_from_slice(text.as_bytes()),
                };
                add(line);
                while let Some(next) =
                    lines.next_if(|l| l.starts_with("S: ") || l.starts_with("R: "))
                {
                    add(next);
                }
                d.feed(&chunk);
            } else if let Some(expected) = line.strip_prefix("C: ") {
                d.pump();
                let got = d.written.pop_front();
                assert_eq!(
                    got.as_deref(),
                    Some(expected),
                    "at stage {}",
                    d.session.stage()
                );
            } else if line == "* TLS" {
                d.pump();
                assert!(d.written.is_empty(), "unexpected output {:?}", d.written);
                assert!(std::mem::take(&mut d.tls_requested), "no StartTls event");
                d.session.tls_established().unwrap();
            } else if line == "EOF" {
                d.pump();
                assert!(d.written.is_empty(), "unexpected output {:?}", d.written);
                if let Err(e) = d.session.connection_closed() {
                    d.errors.push(e);
                }
            } else {
                panic!("bad script line {line:?}");
            }
        }
        d.pump();
        assert!(
            d.written.is_empty(),
            "client wrote more than the script says: {:?}",
            d.written
        );
        d
    }

    /// Runs the script twice: whole chunks and byte by byte; returns the first run.
    fn run(config: Config, envelopes: Vec<Envelope>, script: &str) -> Driver {
        let bytewise = run_with(config.clone(), envelopes.clone(), script, true);
        let whole = run_with(config, envelopes, script, false);
        assert_eq!(whole.flights, bytewise.flights);
        assert_eq!(whole.errors.len(), bytewise.errors.len());
        assert_eq!(whole.reports.len(), bytewise.reports.len());
        whole
    }

    fn error(d: &Driver) -> &SmtpError {
        assert_eq!(d.errors.len(), 1, "errors: {:?}", d.errors);
        &d.errors[0]
    }

    fn delivered(report: &MessageReport) -> &Delivered {
        match &report.outcome {
            Ok(d) => d,
            Err(e) => panic!("not delivered: {e}"),
        }
    }

    const GREETING: &str = "S: 220 mx.example.com ESMTP ready";

    /// Greeting, EHLO, STARTTLS, handshake, EHLO with `post_tls` keyword lines.
    fn starttls_prefix(post_tls: &str) -> String {
        format!(
            "{GREETING}
             C: EHLO client.example.org
             S: 250-mx.example.com
             S: 250-PIPELINING
             S: 250-STARTTLS
             S: 250 8BITMIME
             C: STARTTLS
             S: 220 2.0.0 Ready to start TLS
             * TLS
             C: EHLO client.example.org
             S: 250-mx.example.com Hello
             {post_tls}
             "
        )
    }

    const FULL_CAPS: &str = "S: 250-PIPELINING
             S: 250-SIZE 10240000
             S: 250-AUTH PLAIN LOGIN CRAM-MD5
             S: 250-ENHANCEDSTATUSCODES
             S: 250-8BITMIME
             S: 250-SMTPUTF8
             S: 250 CHUNKING";

    const AUTH_PLAIN: &str = "C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
             S: 235 2.7.0 Authentication successful";

    #[test]
    fn floor_starttls_plain_pipelining_chunking_is_five_flights() {
        let script = starttls_prefix(FULL_CAPS)
            + AUTH_PLAIN
            + "
             C: MAIL FROM:<quiz@example.org> SIZE=1200
             C: RCPT TO:<ada@example.com>
             C: BDAT 1200 LAST
             C: <body raw 1200>
             C: QUIT
             S: 250 2.1.0 Ok
             S: 250 2.1.5 Ok
             S: 250 2.0.0 Ok: queued as 4B2F1C0A2E
             S: 221 2.0.0 Bye";
        let cfg = with_creds(config(TlsMode::Starttls), AuthChoice::Auto);
        let d = run(
            cfg,
            vec![envelope(&["ada@example.com"], 1200, false)],
            &script,
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        // EHLO, STARTTLS, EHLO, AUTH, one transaction flight.
        assert_eq!(d.flights, 5);
        assert!(d.closed && d.session.is_finished());
        assert_eq!(d.reports.len(), 1);
        let ok = delivered(&d.reports[0]);
        assert_eq!(ok.queue_id.as_deref(), Some("4B2F1C0A2E"));
        assert_eq!(
            ok.reply.enhanced.map(|e| e.to_string()).as_deref(),
            Some("2.0.0")
        );
        assert_eq!(
            d.reports[0].accepted().collect::<Vec<_>>(),
            ["ada@example.com"]
        );
        assert_eq!(d.session.auth_mechanism(), Some(Mechanism::Plain));
        assert!(d.session.tls_active());
        // Pre-TLS capabilities are kept for display only; the post-TLS ones are in force.
        let pre = d.session.pre_tls_capabilities().unwrap();
        assert!(pre.starttls() && !pre.chunking());
        let post = d.session.capabilities().unwrap();
        assert!(post.chunking() && !post.starttls());
        assert_eq!(d.ready.len(), 1);
        assert!(d.ready[0].smtputf8());
    }

    #[test]
    fn floor_without_chunking_adds_one_flight_for_the_body() {
        let script = starttls_prefix("S: 250-PIPELINING\nS: 250 AUTH PLAIN")
            + AUTH_PLAIN
            + "
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<ada@example.com>
             C: RCPT TO:<bob@example.com>
             C: DATA
             S: 250 2.1.0 Ok
             S: 250 2.1.5 Ok
             S: 250 2.1.5 Ok
             S: 354 End data with <CR><LF>.<CR><LF>
             C: <body dot>
             C: .
             C: QUIT
             S: 250 2.0.0 Ok: queued as ABC123
             S: 221 2.0.0 Bye";
        let cfg = with_creds(config(TlsMode::Starttls), AuthChoice::Auto);
        let d = run(
            cfg,
            vec![envelope(&["ada@example.com", "bob@example.com"], 10, false)],
            &script,
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.flights, 6);
        assert_eq!(delivered(&d.reports[0]).queue_id.as_deref(), Some("ABC123"));
        assert!(!d.session.data_in_flight());
    }

    #[test]
    fn without_pipelining_one_command_per_round_trip() {
        let script = "S: 220 mx ESMTP
             C: EHLO client.example.org
             S: 250-mx
             S: 250 SIZE
             C: MAIL FROM:<quiz@example.org> SIZE=42
             S: 250 ok
             C: RCPT TO:<ada@example.com>
             S: 251 will forward
             C: RCPT TO:<bob@example.com>
             S: 550 5.1.1 no such user
             C: DATA
             S: 354 go ahead
             C: <body dot>
             C: .
             S: 250 ok id=1uXyZ-000ABC-12
             C: QUIT
             S: 221 bye";
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["ada@example.com", "bob@example.com"], 42, false)],
            script,
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        // EHLO, MAIL, RCPT, RCPT, DATA, body + dot, QUIT.
        assert_eq!(d.flights, 7);
        let report = &d.reports[0];
        assert_eq!(
            delivered(report).queue_id.as_deref(),
            Some("1uXyZ-000ABC-12")
        );
        assert_eq!(report.accepted().collect::<Vec<_>>(), ["ada@example.com"]);
        let rejected: Vec<_> = report
            .rejected()
            .map(|(a, r)| (a, r.code, r.text()))
            .collect();
        assert_eq!(
            rejected,
            [("bob@example.com", 550, "no such user".to_string())]
        );
    }

    #[test]
    fn pipelined_one_recipient_rejected() {
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 PIPELINING
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<a@example.com>
             C: RCPT TO:<nobody@example.com>
             C: RCPT TO:<c@example.com>
             C: DATA
             S: 250 ok
             S: 250 ok
             S: 550-5.1.1 <nobody@example.com>: Recipient address rejected:
             S: 550 5.1.1 User unknown
             S: 250 ok
             S: 354 go
             C: <body dot>
             C: .
             C: QUIT
             S: 250 2.0.0 queued
             S: 221 bye";
        let env = envelope(
            &["a@example.com", "nobody@example.com", "c@example.com"],
            5,
            false,
        );
        let d = run(config(TlsMode::None), vec![env], script);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.flights, 3);
        let r = &d.reports[0];
        assert!(r.outcome.is_ok());
        assert_eq!(
            r.accepted().collect::<Vec<_>>(),
            ["a@example.com", "c@example.com"]
        );
        let (addr, reply) = r.rejected().next().unwrap();
        assert_eq!(addr, "nobody@example.com");
        assert_eq!(
            reply.enhanced.map(|e| e.to_string()).as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            reply.text(),
            "<nobody@example.com>: Recipient address rejected:\nUser unknown"
        );
        assert_eq!(delivered(r).queue_id, None);
    }

    const PIPELINED_EHLO: &str = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 PIPELINING";

    #[test]
    fn pipelined_all_recipients_rejected_data_refused() {
        let script = PIPELINED_EHLO.to_string()
            + "
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<a@example.com>
             C: RCPT TO:<b@example.com>
             C: DATA
             S: 250 ok
             S: 550 5.1.1 unknown
             S: 450 4.2.1 try later
             S: 554 5.5.1 no valid recipients
             C: QUIT
             S: 221 bye";
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com", "b@example.com"], 5, false)],
            &script,
        );
        assert!(d.errors.is_empty());
        let err = d.reports[0].outcome.as_ref().unwrap_err();
        assert!(
            matches!(err, SmtpError::NoRecipientAccepted { transient: true }),
            "{err}"
        );
        assert_eq!(err.class(), ErrorClass::Temporary);
        assert_eq!(d.reports[0].rejected().count(), 2);
    }

    #[test]
    fn pipelined_all_rejected_but_354_drops_the_connection_without_data() {
        let script = PIPELINED_EHLO.to_string()
            + "
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<a@example.com>
             C: DATA
             S: 250 ok
             S: 550 5.1.1 unknown
             S: 354 go ahead anyway";
        let mut d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 5, false)],
            &script,
        );
        assert!(d.errors.is_empty());
        assert!(d.closed && d.session.is_finished());
        let err = d.reports[0].outcome.as_ref().unwrap_err();
        assert!(matches!(
            err,
            SmtpError::NoRecipientAccepted { transient: false }
        ));
        assert_eq!(err.class(), ErrorClass::Permanent);
        // No body, no dot, no QUIT: the run's final check asserts nothing more was written.
        assert!(!d.session.data_in_flight());
        assert_eq!(d.session.connection_closed().ok(), Some(()));
    }

    const CHUNKING_EHLO: &str = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250-PIPELINING
             S: 250 CHUNKING";

    #[test]
    fn chunking_all_rejected_reads_every_reply() {
        let script = CHUNKING_EHLO.to_string()
            + "
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<a@example.com>
             C: BDAT 77 LAST
             C: <body raw 77>
             C: QUIT
             S: 250 ok
             S: 550 5.1.1 unknown
             S: 554 5.5.1 no valid recipients
             S: 221 bye";
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 77, false)],
            &script,
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.flights, 2);
        assert!(matches!(
            d.reports[0].outcome,
            Err(SmtpError::NoRecipientAccepted { transient: false })
        ));
        assert!(d.closed);
    }

    #[test]
    fn pipelined_mail_refused_explains_everything_after_it() {
        let script = CHUNKING_EHLO.to_string()
            + "
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<a@example.com>
             C: BDAT 3 LAST
             C: <body raw 3>
             C: QUIT
             S: 553 5.7.1 sender not owned by user
             S: 503 5.5.1 need MAIL
             S: 503 5.5.1 need MAIL
             S: 221 bye";
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 3, false)],
            &script,
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        match &d.reports[0].outcome {
            Err(SmtpError::Rejected {
                stage: Stage::MailFrom,
                reply,
            }) => assert_eq!(reply.code, 553),
            other => panic!("{other:?}"),
        }
        // The 503 to the pipelined RCPT is about the refused MAIL, not about the recipient.
        assert!(matches!(
            d.reports[0].recipients[0].status,
            RecipientStatus::NotTried
        ));
        assert_eq!(d.reports[0].rejected().count(), 0);
    }

    #[test]
    fn unpipelined_mail_refused_sends_no_recipient() {
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250 mx
             C: MAIL FROM:<quiz@example.org>
             S: 451 4.3.0 try later
             C: QUIT
             S: 221 bye";
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 3, false)],
            script,
        );
        let r = &d.reports[0];
        assert_eq!(
            r.outcome.as_ref().unwrap_err().class(),
            ErrorClass::Temporary
        );
        assert!(matches!(r.recipients[0].status, RecipientStatus::NotTried));
    }

    #[test]
    fn mail_530_without_credentials_is_an_auth_error() {
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250 mx
             C: MAIL FROM:<quiz@example.org>
             S: 530 5.7.0 Authentication required
             C: QUIT
             S: 221 bye";
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 3, false)],
            script,
        );
        let err = d.reports[0].outcome.as_ref().unwrap_err();
        assert!(matches!(err, SmtpError::AuthRequired { .. }));
        assert_eq!(err.class(), ErrorClass::Auth);
        assert!(err.to_string().contains("give --user"));
    }

    #[test]
    fn two_messages_on_one_connection_with_rset() {
        let script = CHUNKING_EHLO.to_string()
            + "
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<a@example.com>
             C: BDAT 10 LAST
             C: <body raw 10>
             S: 250 ok
             S: 250 ok
             S: 250 ok queued as FIRST
             C: RSET
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<b@example.com>
             C: BDAT 20 LAST
             C: <body raw 20>
             C: QUIT
             S: 250 reset
             S: 250 ok
             S: 250 ok
             S: 250 ok queued as SECOND
             S: 221 bye";
        let envs = vec![
            envelope(&["a@example.com"], 10, true),
            envelope(&["b@example.com"], 20, false),
        ];
        let d = run(config(TlsMode::None), envs, &script);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.flights, 3);
        let ids: Vec<_> = d
            .reports
            .iter()
            .map(|r| delivered(r).queue_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["FIRST", "SECOND"]);
        assert_eq!(d.ready.len(), 2);
    }

    #[test]
    fn two_messages_without_pipelining() {
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250 mx
             C: MAIL FROM:<quiz@example.org>
             S: 250 ok
             C: RCPT TO:<nobody@example.com>
             S: 550 unknown
             C: RSET
             S: 250 ok
             C: MAIL FROM:<quiz@example.org>
             S: 250 ok
             C: RCPT TO:<b@example.com>
             S: 250 ok
             C: DATA
             S: 354 go
             C: <body dot>
             C: .
             S: 250 ok
             C: QUIT
             S: 221 bye";
        let envs = vec![
            envelope(&["nobody@example.com"], 1, true),
            envelope(&["b@example.com"], 1, false),
        ];
        let d = run(config(TlsMode::None), envs, script);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert!(d.reports[0].outcome.is_err());
        assert!(d.reports[1].outcome.is_ok());
    }

    #[test]
    fn injection_after_starttls_220() {
        for (name, tail) in [
            ("complete reply", "S: 250 injected"),
            ("partial line", "R: 250 inj"),
        ] {
            let script = format!(
                "S: 220 mx
                 C: EHLO client.example.org
                 S: 250-mx
                 S: 250 STARTTLS
                 C: STARTTLS
                 S: 220 go ahead
                 {tail}"
            );
            for bytewise in [false, true] {
                let d = run_with(config(TlsMode::Starttls), vec![], &script, bytewise);
                let err = error(&d);
                assert!(
                    matches!(err, SmtpError::StartTlsInjection { .. }),
                    "{name}: {err}"
                );
                assert_eq!(err.class(), ErrorClass::Protocol);
                assert!(err.to_string().contains("data sent after 220 to STARTTLS"));
                assert!(!d.tls_requested, "{name}: handshake must not start");
                assert!(d.session.is_finished());
            }
        }
    }

    #[test]
    fn starttls_not_offered_is_a_config_error_with_polite_quit() {
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 AUTH PLAIN
             C: QUIT";
        let d = run(
            with_creds(config(TlsMode::Starttls), AuthChoice::Auto),
            vec![],
            script,
        );
        assert!(matches!(error(&d), SmtpError::StartTlsNotOffered));
        assert_eq!(error(&d).class(), ErrorClass::Config);
        assert_eq!(d.session.stage(), Stage::Ehlo);
        assert!(!d.session.wants_read());
        // The capabilities stay readable for --probe.
        assert_eq!(
            d.session.capabilities().unwrap().auth_mechanisms(),
            ["PLAIN"]
        );
    }

    #[test]
    fn helo_fallback_when_nothing_needs_esmtp() {
        let script = "S: 220 old.example.com
             C: EHLO client.example.org
             S: 502 5.5.2 Command not recognized
             C: HELO client.example.org
             S: 250-old.example.com
             S: 250 PIPELINING
             C: MAIL FROM:<quiz@example.org>
             S: 250 ok
             C: RCPT TO:<a@example.com>
             S: 250 ok
             C: DATA
             S: 354 go
             C: <body dot>
             C: .
             S: 250 ok
             C: QUIT
             S: 221 bye";
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 1, false)],
            script,
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        // HELO offers nothing, even if its reply looks like an EHLO one.
        assert_eq!(d.ready[0], Capabilities::none());
        assert!(d.reports[0].outcome.is_ok());
    }

    #[test]
    fn helo_fallback_forbidden_when_tls_or_auth_needed() {
        let refused = "S: 220 old
             C: EHLO client.example.org
             S: 500 unrecognized
             C: QUIT";
        let d = run(config(TlsMode::Starttls), vec![], refused);
        assert!(matches!(error(&d), SmtpError::StartTlsNotOffered));
        let d = run(
            with_creds(config(TlsMode::None), AuthChoice::Auto),
            vec![],
            refused,
        );
        assert!(matches!(error(&d), SmtpError::AuthNotOffered));
        assert_eq!(error(&d).class(), ErrorClass::Config);
        // Other EHLO refusals are not a reason to fall back.
        let d = run(
            config(TlsMode::None),
            vec![],
            "S: 220 x
             C: EHLO client.example.org
             S: 554 go away
             C: QUIT",
        );
        assert!(matches!(
            error(&d),
            SmtpError::Rejected {
                stage: Stage::Ehlo,
                ..
            }
        ));
        assert_eq!(error(&d).class(), ErrorClass::Permanent);
    }

    #[test]
    fn auth_login_by_steps() {
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 AUTH LOGIN
             C: AUTH LOGIN
             S: 334 VXNlcm5hbWU6
             C: dGlt
             S: 334 UGFzc3dvcmQ6
             C: dGFuc3RhYWZ0YW5zdGFhZg==
             S: 235 ok
             C: QUIT
             S: 221 bye";
        let cfg = with_creds(config(TlsMode::Implicit), AuthChoice::Auto);
        let d = run(cfg, vec![], script);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.session.auth_mechanism(), Some(Mechanism::Login));
    }

    #[test]
    fn auth_cram_md5_in_the_clear_with_auto() {
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 AUTH PLAIN LOGIN CRAM-MD5
             C: AUTH CRAM-MD5
             S: 334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
             C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
             S: 235 2.7.0 ok
             C: QUIT
             S: 221 bye";
        let d = run(
            with_creds(config(TlsMode::None), AuthChoice::Auto),
            vec![],
            script,
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.session.auth_mechanism(), Some(Mechanism::CramMd5));
    }

    #[test]
    fn auth_535_ends_it_without_trying_another_mechanism() {
        for (choice, exchange) in [
            (AuthChoice::Auto, "C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\nS: 535 5.7.8 Authentication credentials invalid"),
            (
                AuthChoice::Named(Mechanism::Login),
                "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: dGlt\nS: 334 UGFzc3dvcmQ6\nC: dGFuc3RhYWZ0YW5zdGFhZg==\nS: 535 no",
            ),
        ] {
            let script = format!(
                "S: 220 mx
                 C: EHLO client.example.org
                 S: 250-mx
                 S: 250 AUTH PLAIN LOGIN CRAM-MD5
                 {exchange}
                 C: QUIT"
            );
            let d = run(with_creds(config(TlsMode::Implicit), choice), vec![], &script);
            let err = error(&d);
            assert!(matches!(err, SmtpError::AuthFailed { reply, .. } if reply.code == 535), "{err}");
            assert_eq!(err.class(), ErrorClass::Auth);
            assert_eq!(d.session.auth_mechanism(), None);
        }
    }

    #[test]
    fn auth_temporary_failure_and_bad_challenge() {
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 AUTH PLAIN
             C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
             S: 454 4.7.0 Temporary authentication failure
             C: QUIT";
        let d = run(
            with_creds(config(TlsMode::Implicit), AuthChoice::Auto),
            vec![],
            script,
        );
        assert!(matches!(
            error(&d),
            SmtpError::Rejected {
                stage: Stage::Auth,
                ..
            }
        ));
        assert_eq!(error(&d).class(), ErrorClass::Temporary);
        // A single-line EHLO reply offers no AUTH at all.
        let script = "S: 220 mx\nC: EHLO client.example.org\nS: 250 AUTH PLAIN\nC: QUIT";
        let d = run(
            with_creds(config(TlsMode::Implicit), AuthChoice::Auto),
            vec![],
            script,
        );
        assert!(matches!(error(&d), SmtpError::AuthNotOffered));
        let d = run(
            with_creds(config(TlsMode::None), AuthChoice::Auto),
            vec![],
            "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 AUTH CRAM-MD5
             C: AUTH CRAM-MD5
             S: 334 %%%",
        );
        assert!(matches!(error(&d), SmtpError::BadChallenge(_)));
        assert_eq!(error(&d).class(), ErrorClass::Protocol);
    }

    #[test]
    fn auth_needs_a_usable_mechanism() {
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 AUTH PLAIN LOGIN
             C: QUIT";
        let d = run(
            with_creds(config(TlsMode::None), AuthChoice::Auto),
            vec![],
            script,
        );
        assert!(matches!(
            error(&d),
            SmtpError::NoUsableMechanism { tls: false, .. }
        ));
        assert_eq!(error(&d).class(), ErrorClass::Config);
        // Named explicitly, PLAIN goes even in the clear.
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 AUTH PLAIN LOGIN
             C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
             S: 235 ok
             C: QUIT
             S: 221 bye";
        let d = run(
            with_creds(config(TlsMode::None), AuthChoice::Named(Mechanism::Plain)),
            vec![],
            script,
        );
        assert!(d.errors.is_empty());
    }

    const SMALL_EHLO: &str = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 SIZE 1000";

    #[test]
    fn size_limit_refused_before_mail() {
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 1001, false)],
            &format!("{SMALL_EHLO}\nC: QUIT\nS: 221 bye"),
        );
        assert_eq!(d.submit_errors.len(), 1);
        assert!(matches!(
            d.submit_errors[0],
            SmtpError::TooBig {
                size: 1001,
                limit: 1000
            }
        ));
        assert_eq!(d.submit_errors[0].class(), ErrorClass::Permanent);
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 1000, false)],
            &format!("{SMALL_EHLO}\nC: MAIL FROM:<quiz@example.org> SIZE=1000\nS: 250 ok\nC: RCPT TO:<a@example.com>\nS: 250 ok\nC: DATA\nS: 354 go\nC: <body dot>\nC: .\nS: 250 ok\nC: QUIT\nS: 221 bye"),
        );
        assert!(d.submit_errors.is_empty() && d.errors.is_empty());
    }

    #[test]
    fn smtputf8_and_8bitmime_needed_but_missing() {
        let mut utf8 = envelope(&["a@example.com"], 1, false);
        utf8.smtputf8 = true;
        let mut eight = envelope(&["a@example.com"], 1, false);
        eight.eight_bit = true;
        let non_ascii = envelope(&["δοκιμή@example.com"], 1, false);
        for (env, expected) in [
            (utf8, "SMTPUTF8"),
            (eight, "8BITMIME"),
            (non_ascii, "SMTPUTF8"),
        ] {
            let d = run(
                config(TlsMode::None),
                vec![env],
                &format!("{SMALL_EHLO}\nC: QUIT\nS: 221 bye"),
            );
            assert_eq!(d.submit_errors.len(), 1);
            assert_eq!(d.submit_errors[0].class(), ErrorClass::Data);
            assert!(d.submit_errors[0].to_string().contains(expected));
        }
    }

    #[test]
    fn smtputf8_and_8bitmime_params_when_offered() {
        let mut env = envelope(&["δοκιμή@example.com"], 9, false);
        env.eight_bit = true;
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250-8BITMIME
             S: 250 SMTPUTF8
             C: MAIL FROM:<quiz@example.org> BODY=8BITMIME SMTPUTF8
             S: 250 ok
             C: RCPT TO:<δοκιμή@example.com>
             S: 250 ok
             C: DATA
             S: 354 go
             C: <body dot>
             C: .
             S: 250 ok
             C: QUIT
             S: 221 bye";
        let d = run(config(TlsMode::None), vec![env], script);
        assert!(d.errors.is_empty() && d.submit_errors.is_empty());
    }

    #[test]
    fn invalid_addresses_are_data_errors() {
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com\r\nRSET"], 1, false)],
            &format!("{SMALL_EHLO}\nC: QUIT\nS: 221 bye"),
        );
        assert_eq!(d.submit_errors[0].class(), ErrorClass::Data);
        let d = run(
            config(TlsMode::None),
            vec![envelope(&[], 1, false)],
            &format!("{SMALL_EHLO}\nC: QUIT\nS: 221 bye"),
        );
        assert_eq!(d.submit_errors[0].class(), ErrorClass::Data);
        assert!(Session::new(Config {
            ehlo_name: "bad name".into(),
            ..config(TlsMode::None)
        })
        .is_err());
    }

    /// A full pipelined session without chunking, cut at step `n` by `cut`.
    fn steps() -> Vec<(&'static str, Stage)> {
        vec![
            ("S: 220 mx", Stage::Greeting),
            ("C: EHLO client.example.org\nS: 250-mx\nS: 250-PIPELINING\nS: 250 STARTTLS", Stage::Ehlo),
            ("C: STARTTLS\nS: 220 go", Stage::StartTls),
            ("* TLS\nC: EHLO client.example.org\nS: 250-mx\nS: 250-PIPELINING\nS: 250 AUTH LOGIN", Stage::Ehlo),
            ("C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6", Stage::Auth),
            ("C: dGlt\nS: 334 UGFzc3dvcmQ6", Stage::Auth),
            ("C: dGFuc3RhYWZ0YW5zdGFhZg==\nS: 235 ok", Stage::Auth),
            ("C: MAIL FROM:<quiz@example.org>\nC: RCPT TO:<a@example.com>\nC: DATA\nS: 250 ok", Stage::MailFrom),
            ("S: 250 ok", Stage::RcptTo),
            ("S: 354 go", Stage::Data),
            ("C: <body dot>\nC: .\nC: QUIT\nS: 250 ok", Stage::EndOfData),
            ("S: 221 bye", Stage::Quit),
        ]
    }

    fn cut_script(n: usize, cut: &str) -> String {
        let steps = steps();
        let mut script: Vec<String> = steps[..n].iter().map(|(s, _)| s.to_string()).collect();
        // Keep the client lines of step n, replace its server reply with the cut.
        let client: Vec<&str> = steps[n]
            .0
            .lines()
            .filter(|l| !l.starts_with("S: "))
            .collect();
        script.extend(client.iter().map(|l| l.to_string()));
        script.push(cut.to_string());
        script.join("\n")
    }

    fn full_config() -> Config {
        with_creds(
            config(TlsMode::Starttls),
            AuthChoice::Named(Mechanism::Login),
        )
    }

    #[test]
    fn full_pipelined_session_without_cut() {
        let script = steps()
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>()
            .join("\n");
        let d = run(
            full_config(),
            vec![envelope(&["a@example.com"], 5, false)],
            &script,
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert!(d.reports[0].outcome.is_ok() && d.closed);
    }

    #[test]
    fn service_closing_421_at_every_step() {
        for (n, (_, stage)) in steps().into_iter().enumerate() {
            if stage == Stage::Quit {
                continue;
            }
            let script = cut_script(n, "S: 421 4.3.2 Service shutting down");
            let d = run(
                full_config(),
                vec![envelope(&["a@example.com"], 5, false)],
                &script,
            );
            let err = error(&d);
            assert!(
                matches!(err, SmtpError::ServiceClosing { stage: s, .. } if *s == stage),
                "step {n}: {err}"
            );
            assert_eq!(err.class(), ErrorClass::Temporary, "step {n}");
            assert_eq!(err.reply().map(|r| r.code), Some(421));
            assert!(d.session.is_finished());
            assert!(!d.session.data_in_flight(), "step {n}: a 421 settles it");
            // No QUIT after 421: the server is already closing (checked by the run: nothing
            // more was written).
        }
    }

    #[test]
    fn eof_at_every_step() {
        for (n, (_, stage)) in steps().into_iter().enumerate() {
            let script = cut_script(n, "EOF");
            let d = run(
                full_config(),
                vec![envelope(&["a@example.com"], 5, false)],
                &script,
            );
            if stage == Stage::Quit {
                // Only the 221 was missing: nothing was lost.
                assert!(d.errors.is_empty(), "{:?}", d.errors);
                assert!(d.reports[0].outcome.is_ok());
                continue;
            }
            let err = error(&d);
            assert!(
                matches!(err, SmtpError::Closed { stage: s, .. } if *s == stage),
                "step {n}: {err}"
            );
            assert_eq!(err.class(), ErrorClass::Temporary);
            assert_eq!(
                err.may_have_been_delivered(),
                stage == Stage::EndOfData,
                "step {n}"
            );
            assert!(err
                .to_string()
                .starts_with(&format!("connection closed during {stage}")));
        }
    }

    #[test]
    fn eof_during_tls_handshake_and_while_ready() {
        let d = run(full_config(), vec![], "S: 220 mx\nC: EHLO client.example.org\nS: 250-mx\nS: 250 STARTTLS\nC: STARTTLS\nS: 220 go\nEOF");
        assert!(matches!(
            error(&d),
            SmtpError::Closed {
                stage: Stage::TlsHandshake,
                maybe_delivered: false
            }
        ));
    }

    #[test]
    fn eof_after_bdat_body_may_have_delivered() {
        let script = CHUNKING_EHLO.to_string()
            + "
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<a@example.com>
             C: BDAT 5 LAST
             C: <body raw 5>
             C: QUIT
             S: 250 ok
             S: 250 ok
             EOF";
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 5, false)],
            &script,
        );
        assert!(error(&d).may_have_been_delivered());
        assert!(matches!(
            error(&d),
            SmtpError::Closed {
                stage: Stage::EndOfData,
                ..
            }
        ));
    }

    #[test]
    fn replies_that_do_not_fit_the_command_are_protocol_errors() {
        for (script, stage) in [
            ("S: 250 not a greeting", Stage::Greeting),
            ("S: 220 mx\nC: EHLO client.example.org\nS: 220 shifted", Stage::Ehlo),
            ("S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: MAIL FROM:<quiz@example.org>\nS: 354 shifted", Stage::MailFrom),
            ("S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: MAIL FROM:<quiz@example.org>\nS: 250 ok\nC: RCPT TO:<a@example.com>\nS: 354 x", Stage::RcptTo),
            ("S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: MAIL FROM:<quiz@example.org>\nS: 250 ok\nC: RCPT TO:<a@example.com>\nS: 250 ok\nC: DATA\nS: 250 no", Stage::Data),
            ("S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: MAIL FROM:<quiz@example.org>\nS: 250 ok\nC: RCPT TO:<a@example.com>\nS: 250 ok\nC: DATA\nS: 354 go\nC: <body dot>\nC: .\nS: 354 again", Stage::EndOfData),
            ("S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: MAIL FROM:<quiz@example.org>\nS: 250 ok\nC: RCPT TO:<a@example.com>\nS: 250 ok\nC: DATA\nS: 354 go\nC: <body dot>\nC: .\nS: 250 ok\nC: QUIT\nS: 250 not bye", Stage::Quit),
        ] {
            let d = run(config(TlsMode::None), vec![envelope(&["a@example.com"], 1, false)], script);
            let err = error(&d);
            assert!(matches!(err, SmtpError::UnexpectedReply { stage: s, .. } if *s == stage), "{err}");
            assert_eq!(err.class(), ErrorClass::Protocol);
        }
        // A refused QUIT gets no second QUIT (the run checks nothing more is written).
        let script = "S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: QUIT\nS: 500 what";
        let d = run(config(TlsMode::None), vec![], script);
        assert!(matches!(
            error(&d),
            SmtpError::UnexpectedReply {
                stage: Stage::Quit,
                ..
            }
        ));
    }

    #[test]
    fn early_talker_and_unsolicited_replies() {
        // The server answers EHLO before it was sent. Only visible when both replies arrive in
        // one read: read byte by byte, the driver would have written EHLO in between.
        let d = run_with(config(TlsMode::None), vec![], "S: 220 mx\nS: 250 mx", false);
        assert!(matches!(
            error(&d),
            SmtpError::UnsolicitedReply {
                stage: Stage::Ehlo,
                ..
            }
        ));
        // An extra reply after the last expected one.
        let d = run(
            config(TlsMode::None),
            vec![],
            "S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nS: 250 extra",
        );
        assert_eq!(error(&d).class(), ErrorClass::Protocol);
    }

    #[test]
    fn refused_rset_does_not_stop_the_next_message() {
        let script = CHUNKING_EHLO.to_string()
            + "
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<a@example.com>
             C: BDAT 1 LAST
             C: <body raw 1>
             S: 250 ok
             S: 250 ok
             S: 250 ok
             C: RSET
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<b@example.com>
             C: BDAT 1 LAST
             C: <body raw 1>
             C: QUIT
             S: 502 no RSET here
             S: 250 ok
             S: 250 ok
             S: 250 ok
             S: 221 bye";
        let envs = vec![
            envelope(&["a@example.com"], 1, true),
            envelope(&["b@example.com"], 1, false),
        ];
        let d = run(config(TlsMode::None), envs, &script);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert!(d.reports.iter().all(|r| r.outcome.is_ok()));
        assert!(d.closed);
    }

    #[test]
    fn malformed_reply_to_end_of_data_leaves_the_message_in_doubt() {
        let script = CHUNKING_EHLO.to_string()
            + "
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<a@example.com>
             C: BDAT 1 LAST
             C: <body raw 1>
             C: QUIT
             S: 250 ok
             S: 250 ok
             S: 2xx garbage";
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 1, false)],
            &script,
        );
        assert!(matches!(
            error(&d),
            SmtpError::Malformed {
                stage: Stage::EndOfData,
                ..
            }
        ));
        assert!(d.session.data_in_flight());
    }

    #[test]
    fn malformed_reply_names_the_stage() {
        let d = run(
            config(TlsMode::None),
            vec![],
            "S: 220 mx\nC: EHLO client.example.org\nS: 250-mx\nS: 251 mismatch",
        );
        assert!(matches!(
            error(&d),
            SmtpError::Malformed {
                stage: Stage::Ehlo,
                ..
            }
        ));
        assert_eq!(error(&d).class(), ErrorClass::Protocol);
    }

    #[test]
    fn greeting_554_is_refused_with_quit() {
        let d = run(
            config(TlsMode::None),
            vec![],
            "S: 554 5.7.1 no service for you\nC: QUIT",
        );
        assert!(matches!(
            error(&d),
            SmtpError::Rejected {
                stage: Stage::Greeting,
                ..
            }
        ));
        assert_eq!(error(&d).class(), ErrorClass::Permanent);
    }

    #[test]
    fn final_reply_refused() {
        let script = CHUNKING_EHLO.to_string()
            + "
             C: MAIL FROM:<quiz@example.org>
             C: RCPT TO:<a@example.com>
             C: BDAT 5 LAST
             C: <body raw 5>
             C: QUIT
             S: 250 ok
             S: 250 ok
             S: 452 4.3.1 insufficient storage
             S: 221 bye";
        let d = run(
            config(TlsMode::None),
            vec![envelope(&["a@example.com"], 5, false)],
            &script,
        );
        let err = d.reports[0].outcome.as_ref().unwrap_err();
        assert!(matches!(
            err,
            SmtpError::Rejected {
                stage: Stage::EndOfData,
                ..
            }
        ));
        assert_eq!(err.class(), ErrorClass::Temporary);
        assert!(!d.session.data_in_flight());
    }

    #[test]
    fn probe_stops_after_the_second_ehlo() {
        let script = "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250-STARTTLS
             S: 250 SIZE 100
             C: STARTTLS
             S: 220 go
             * TLS
             C: EHLO client.example.org
             S: 250-mx
             S: 250-AUTH PLAIN
             S: 250 SIZE 200
             C: QUIT
             S: 221 bye";
        let mut cfg = with_creds(config(TlsMode::Starttls), AuthChoice::Auto);
        cfg.probe = true;
        let d = run(cfg, vec![], script);
        assert!(d.errors.is_empty() && d.ready.is_empty() && d.closed);
        assert_eq!(
            d.session.greeting().map(|g| g.text()).as_deref(),
            Some("mx")
        );
        assert_eq!(
            d.session
                .pre_tls_capabilities()
                .and_then(|c| c.size_limit()),
            Some(100)
        );
        assert_eq!(
            d.session.capabilities().and_then(|c| c.size_limit()),
            Some(200)
        );
        assert_eq!(d.flights, 4);
    }

    #[test]
    fn transcript_is_redacted_and_ordered() {
        let script = starttls_prefix("S: 250 AUTH PLAIN") + AUTH_PLAIN + "\nC: QUIT\nS: 221 bye";
        let mut d = run(
            with_creds(config(TlsMode::Starttls), AuthChoice::Auto),
            vec![],
            &script,
        );
        let t = d.session.take_transcript();
        let expected: Vec<String> = script
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("C: ") || l.starts_with("S: "))
            .map(|l| l.replace("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", "<redacted>"))
            .collect();
        assert_eq!(t, expected);
        assert!(t.contains(&"C: AUTH PLAIN <redacted>".to_string()));
        assert!(d.session.take_transcript().is_empty());
        let mut cfg = config(TlsMode::None);
        cfg.transcript = false;
        let mut d = run(
            cfg,
            vec![],
            "S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: QUIT\nS: 221 bye",
        );
        assert!(d.session.take_transcript().is_empty());
    }

    #[test]
    fn misuse_is_reported_not_panicked() {
        let mut s = Session::new(config(TlsMode::None)).unwrap();
        assert!(matches!(
            s.submit(envelope(&["a@b"], 1, false)),
            Err(SmtpError::Misuse(_))
        ));
        assert!(matches!(s.quit(), Err(SmtpError::Misuse(_))));
        assert!(matches!(s.tls_established(), Err(SmtpError::Misuse(_))));
        assert_eq!(s.stage(), Stage::Greeting);
        s.receive(b"220 mx\r\n").unwrap();
        // EHLO is pending: reading before writing it is a driver bug.
        assert!(matches!(
            s.receive(b"250 mx\r\n"),
            Err(SmtpError::Misuse(_))
        ));
    }

    #[test]
    fn queue_id_forms() {
        let id = |text: &str| queue_id(&Reply::new(250, None, vec![text.into()]));
        assert_eq!(
            id("Ok: queued as 4B2F1C0A2E").as_deref(),
            Some("4B2F1C0A2E")
        );
        assert_eq!(
            id("OK id=1uXyZ-000ABC-12").as_deref(),
            Some("1uXyZ-000ABC-12")
        );
        assert_eq!(
            id("Message queued with id 0a1b2c3d.").as_deref(),
            Some("0a1b2c3d")
        );
        assert_eq!(
            id("x8M9aBcD012345 Message accepted for delivery").as_deref(),
            Some("x8M9aBcD012345")
        );
        assert_eq!(id("ok 1700000000 qp 12345").as_deref(), Some("12345"));
        assert_eq!(
            id("OK  1618300000 r4sm123456qkc.12 - gsmtp").as_deref(),
            Some("r4sm123456qkc.12")
        );
        assert_eq!(id("Ok"), None);
        assert_eq!(id("Message accepted for delivery"), None);
    }
}
