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
//!        already checked that no byte followed the 220 (RFC 3207 §4.2 hazard).
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
//! use quizmail::smtp::{BodyFraming, Config, Envelope, Event, Output, Session, SmtpError, TlsMode};
//!
//! fn send(sock: &mut std::net::TcpStream, message: &[u8]) -> Result<(), SmtpError> {
//!     let config = Config {
//!         ehlo_name: "[127.0.0.1]".into(),
//!         tls: TlsMode::None,
//!         credentials: None,
//!         probe: false,
//!         transcript: false,
//!     };
//!     let mut session = Session::new(config)?;
//!     let mut buf = [0u8; 4096];
//!     let io = |_| SmtpError::Misuse("I/O error (the real driver has its own error type)");
//!     loop {
//!         while let Some(out) = session.poll_output() {
//!             match out {
//!                 Output::Bytes(b) => sock.write_all(&b).map_err(io)?,
//!                 Output::Body(BodyFraming::Raw { .. }) => sock.write_all(message).map_err(io)?,
//!                 // `message` is CRLF-terminated and has no line starting with '.'.
//!                 Output::Body(BodyFraming::Dot) => sock.write_all(message).map_err(io)?,
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
//!             let n = sock.read(&mut buf).map_err(io)?;
//!             if n == 0 {
//!                 return session.connection_closed();
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
//!   (allowed by RFC 2920 §3.1), no message data may follow (RFC 5321 §3.3 sends data only for
//!   an accepted transaction) and neither RSET nor QUIT can be sent: after a 354 every line is
//!   message content until `.`. Sending `.` would submit an empty message. So the session
//!   reports the message as refused and drops the connection ([`Event::Closed`] without QUIT):
//!   an unterminated transaction is aborted by the server, as if by RSET (RFC 5321 §3.8).
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
                Ok(Parsed::Partial) => break,
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
        self.output.clear();
        self.expect.clear();
        self.txn = None;
        self.phase = Phase::Failed(stage);
        Err(err)
    }

    /// Stops with a QUIT for the driver to send best effort: the dialogue is still in step.
    fn fail_polite(&mut self, stage: Stage, err: SmtpError) -> Result<(), SmtpError> {
        self.output.clear();
        self.expect.clear();
        self.txn = None;
        self.push(Command::Quit, None);
        self.phase = Phase::Failed(stage);
        Err(err)
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
            Expect::Rset if reply.code == 250 => {
                self.continue_transaction();
                Ok(())
            }
            Expect::Mail | Expect::Rcpt(_) | Expect::Data | Expect::EndOfData => {
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

    /// Without PIPELINING: send the next command of the transaction after a success.
    fn continue_transaction(&mut self) {
        if let Some(mut txn) = self.txn.take() {
            if !txn.pipelining {
                self.send_next(&mut txn);
            }
            self.txn = Some(txn);
        }
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
        if reply.code == 421 {
            return self.fail_hard(stage, SmtpError::ServiceClosing { stage, reply });
        }
        let refused = reply.is_transient() || reply.is_permanent();
        match expect {
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
                self.data_in_flight = false;
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
