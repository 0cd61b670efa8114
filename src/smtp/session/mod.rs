//! The SMTP submission session as a sans-I/O state machine: RFC 5321 (§3, §4.1, §4.2, §4.3.2),
//! STARTTLS (RFC 3207), PIPELINING (RFC 2920), AUTH (RFC 4954), CHUNKING (RFC 3030),
//! SMTPUTF8 (RFC 6531), 8BITMIME (RFC 6152), SIZE (RFC 1870), DSN (RFC 3461).
//!
//! Like rustls' `Connection`, the session never touches a socket, so every conversation can be
//! tested as a script. The driver writes what [`Session::poll_output`] hands out (all of it:
//! one flight, RFC 2920 §3.1), acts on [`Session::poll_event`] ([`Event::StartTls`]: do the
//! handshake, then [`Session::tls_established`]; [`Event::Ready`]: [`Session::submit`] or
//! [`Session::quit`]; [`Event::Closed`]: close), and while [`Session::wants_read`] feeds what it
//! reads to [`Session::receive`], or reports end of stream with [`Session::connection_closed`].
//! For [`BodyFraming::Dot`] it writes the message dot-stuffed and ending in CRLF, without the
//! final `.` (the session sends it, RFC 5321 §4.5.2); for [`BodyFraming::Raw`] exactly `size`
//! octets (RFC 3030 §2).
//!
//! Every reply is matched to the oldest command awaiting one (RFC 2920 §3.1) and must be what
//! that command expects; a reply that arrives before its command was written is a protocol
//! error, never a success. Once the session failed it stays failed: every call answers with the
//! same error, [`Session::stage`] names where, and `poll_output` may still yield a best-effort
//! `QUIT`. [`Session::data_in_flight`] says whether a retry could deliver a message twice.
//!
//! - `setup`: greeting, EHLO/HELO, STARTTLS (required, never a plaintext fallback), AUTH.
//! - `transaction`: RSET, MAIL, RCPT, DATA or BDAT, end of data, and each message's report.
//! - `queue`: which commands go out when, and which replies are awaited.
use std::collections::VecDeque;
use std::fmt;

use super::auth::{Credentials, Mechanism, Sasl};
use super::capability::Capabilities;
use super::command::{Command, Domain};
use super::dsn::Dsn;
use super::reply::{Parsed, Reply, ReplyParser};
use super::SmtpError;

mod queue;
mod setup;
mod transaction;

use queue::{Expect, Queue};
use setup::Cleared;
use transaction::Mail;

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
    /// The server's host name and port as the user gave them: OAUTHBEARER sends them
    /// (RFC 7628 §3.1), so a token cannot be replayed to another server unnoticed.
    pub host: String,
    pub port: u16,
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
    /// RFC 3461 parameters, sent only when the server offers DSN.
    pub dsn: Dsn,
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
    /// A 2yz reply: 250, 251, or 252 "cannot verify, will accept" (RFC 5321 §3.4).
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
    /// DSN parameters were asked for but the server does not offer DSN, so the message went
    /// without them (RFC 3461 §4); the integrator warns.
    pub dsn_not_offered: bool,
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

/// Where the dialogue is. Each state holds only what it needs; AUTH and mail need a
/// [`Cleared`], which exists only once the TLS policy is met.
enum State {
    Greeting(Option<Cleared>),
    /// EHLO or HELO sent.
    Hello(Option<Cleared>),
    /// STARTTLS sent, waiting for its 220.
    StartTls,
    /// Waiting for the driver's handshake after [`Event::StartTls`].
    TlsHandshake,
    Auth {
        cleared: Cleared,
        sasl: Box<Sasl>,
    },
    Ready(Cleared),
    /// Transactions in flight.
    Mail(Mail),
    /// QUIT is on its way.
    Closing,
    Closed,
    Failed(Box<Failure>),
}

/// Why and where the session failed: kept, so every later call answers with it.
struct Failure {
    stage: Stage,
    error: SmtpError,
    data_in_flight: bool,
}

/// What the server told us, readable after the dialogue for `--probe` and the report.
#[derive(Default)]
struct Learnt {
    greeting: Option<Reply>,
    caps: Option<Capabilities>,
    pre_tls_caps: Option<Capabilities>,
    authenticated: Option<Mechanism>,
    tls: bool,
}

/// The SMTP client session. See the module documentation for the driver contract.
pub struct Session {
    ehlo: Domain,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
    probe: bool,
    record: bool,
    parser: ReplyParser,
    state: State,
    queue: Queue,
    events: VecDeque<Event>,
    transcript: Vec<String>,
    learnt: Learnt,
    /// Transactions started on this connection; the next one's id.
    transactions: u32,
    /// Whole replies received, so a driver can bound the wait for each one.
    replies: u64,
}

impl Session {
    /// A session waiting for the greeting. Fails only on an invalid EHLO name.
    pub fn new(config: Config) -> Result<Session, SmtpError> {
        let ehlo = Domain::new(&config.ehlo_name)?;
        Ok(Session {
            ehlo,
            host: config.host,
            port: config.port,
            credentials: config.credentials,
            probe: config.probe,
            record: config.transcript,
            parser: ReplyParser::new(),
            state: State::Greeting(Cleared::by_policy(config.tls)),
            queue: Queue::awaiting_greeting(),
            events: VecDeque::new(),
            transcript: Vec::new(),
            learnt: Learnt {
                tls: config.tls == TlsMode::Implicit,
                ..Learnt::default()
            },
            transactions: 0,
            replies: 0,
        })
    }

    /// The next thing to write, in order; `None` when the flight is complete.
    pub fn poll_output(&mut self) -> Option<Output> {
        let (output, log) = self.queue.pop_output()?;
        if self.record {
            self.transcript.push(format!("C: {log}"));
        }
        Some(output)
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// True when everything was written and a reply is awaited.
    pub fn wants_read(&self) -> bool {
        let talking = !matches!(
            self.state,
            State::TlsHandshake | State::Ready(_) | State::Closed | State::Failed(_)
        );
        talking && !self.queue.has_output() && self.queue.is_awaiting()
    }

    /// True after [`Event::Closed`] or an error: only a best-effort QUIT may remain to write.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Closed | State::Failed(_))
    }

    /// The step in progress: that of the first unwritten output, else of the oldest unanswered
    /// command; after an error, the step that failed.
    pub fn stage(&self) -> Stage {
        match &self.state {
            State::Failed(failure) => failure.stage,
            State::Closed => Stage::Closed,
            State::TlsHandshake => Stage::TlsHandshake,
            State::Ready(_) => Stage::Ready,
            _ => self.queue.stage().unwrap_or(Stage::Ready),
        }
    }

    /// How many whole replies have been received: a driver bounds the wait for each one
    /// (a server that trickles bytes must not stretch it).
    pub fn replies_received(&self) -> u64 {
        self.replies
    }

    /// The end of message data was handed out and its reply has not come: the server may have
    /// taken the message, so it must not be sent again.
    pub fn data_in_flight(&self) -> bool {
        match &self.state {
            State::Failed(failure) => failure.data_in_flight,
            _ => self.queue.awaits_end_of_data(),
        }
    }

    pub fn greeting(&self) -> Option<&Reply> {
        self.learnt.greeting.as_ref()
    }

    /// The capabilities in force (after TLS, when STARTTLS was used).
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.learnt.caps.as_ref()
    }

    /// What the server offered before STARTTLS: for `--probe` display only, never acted on.
    pub fn pre_tls_capabilities(&self) -> Option<&Capabilities> {
        self.learnt.pre_tls_caps.as_ref()
    }

    pub fn tls_active(&self) -> bool {
        self.learnt.tls
    }

    /// The mechanism that authenticated the session.
    pub fn auth_mechanism(&self) -> Option<Mechanism> {
        self.learnt.authenticated
    }

    /// The `C: `/`S: ` lines since the last call (empty unless [`Config::transcript`]).
    /// Credentials are redacted; server lines with control characters never get this far.
    pub fn take_transcript(&mut self) -> Vec<String> {
        std::mem::take(&mut self.transcript)
    }

    /// Feeds bytes read from the server.
    pub fn receive(&mut self, mut input: &[u8]) -> Result<(), SmtpError> {
        self.check_failed()?;
        match self.state {
            State::Closed => return Ok(()),
            // Bytes after the 220 to STARTTLS, read before the handshake: plaintext command
            // injection (CVE-2011-0411, RFC 3207 §4.1); they must never be taken as replies.
            State::TlsHandshake if !input.is_empty() => {
                return self.fail_hard(
                    Stage::StartTls,
                    SmtpError::StartTlsInjection {
                        buffered: input.len(),
                    },
                )
            }
            _ => {}
        }
        if self.queue.has_output() {
            return Err(SmtpError::Misuse(
                "receive() before all pending output was written",
            ));
        }
        while !input.is_empty() && !self.is_finished() {
            let (reply, consumed) = match self.parser.parse(input) {
                Ok(Parsed::Complete { reply, consumed }) => (reply, consumed),
                Ok(Parsed::NeedMore) => break,
                Err(source) => {
                    let stage = self.stage();
                    return self.fail_hard(stage, SmtpError::Malformed { stage, source });
                }
            };
            input = &input[consumed..];
            self.replies += 1;
            if self.record {
                self.transcript
                    .extend(reply.raw_lines().iter().map(|l| format!("S: {l}")));
            }
            let stage = self.stage();
            // A reply before its command was written answers nothing yet: matching it to the
            // next command would shift every reply after it.
            if self.queue.has_output() || matches!(self.state, State::TlsHandshake) {
                return self.fail_hard(stage, unsolicited(stage, reply));
            }
            let Some(expect) = self.queue.take_awaited() else {
                return self.fail_hard(stage, unsolicited(stage, reply));
            };
            self.handle(expect, reply, input.len() + self.parser.buffered())?;
            self.queue.release();
        }
        // The start of a reply already waiting while the command it would answer is not yet
        // written: the server is talking early, as a whole reply there would be (above).
        if !self.is_finished() && self.queue.has_output() && self.parser.buffered() > 0 {
            let stage = self.stage();
            return self.fail_hard(stage, SmtpError::EarlyReply { stage });
        }
        Ok(())
    }

    /// Call after the TLS handshake that followed [`Event::StartTls`] succeeded.
    pub fn tls_established(&mut self) -> Result<(), SmtpError> {
        self.check_failed()?;
        if !matches!(self.state, State::TlsHandshake) {
            return Err(SmtpError::Misuse(
                "tls_established() without Event::StartTls",
            ));
        }
        self.after_handshake();
        Ok(())
    }

    /// End of stream from the server. `Ok` when nothing was lost (the dialogue was over, or only
    /// the 221 to QUIT was missing); otherwise a temporary error naming the stage.
    pub fn connection_closed(&mut self) -> Result<(), SmtpError> {
        self.check_failed()?;
        if matches!(self.state, State::Closed) {
            return Ok(());
        }
        if self.queue.only_quit_left() {
            self.queue.clear();
            self.state = State::Closed;
            return Ok(());
        }
        let stage = self.stage();
        let maybe_delivered = self.data_in_flight();
        self.fail_hard(
            stage,
            SmtpError::Closed {
                stage,
                maybe_delivered,
            },
        )
    }

    /// Ends the session after [`Event::Ready`] when no (more) message is to be sent.
    pub fn quit(&mut self) -> Result<(), SmtpError> {
        self.check_failed()?;
        if !matches!(self.state, State::Ready(_)) {
            return Err(SmtpError::Misuse(
                "quit() is only allowed after Event::Ready",
            ));
        }
        self.close();
        Ok(())
    }

    /// The sticky failure: once failed, every call answers with the same error.
    fn check_failed(&self) -> Result<(), SmtpError> {
        match &self.state {
            State::Failed(failure) => Err(failure.error.clone()),
            _ => Ok(()),
        }
    }

    fn close(&mut self) {
        self.queue.command(Command::Quit, Expect::Quit);
        self.state = State::Closing;
    }

    fn handle(&mut self, expect: Expect, reply: Reply, leftover: usize) -> Result<(), SmtpError> {
        let stage = expect.stage();
        // A definite answer to the end of data settles whether the message was taken; only a
        // reply that fits no rule leaves it in doubt.
        let in_doubt = matches!(expect, Expect::EndOfData(_)) && reply.is_intermediate();
        // The server may announce its shutdown in answer to any command (RFC 5321 §3.8).
        if reply.code == 421 {
            return self.fail_hard(stage, SmtpError::ServiceClosing { stage, reply });
        }
        match expect {
            Expect::Greeting | Expect::Ehlo | Expect::Helo | Expect::StartTls | Expect::Auth => {
                self.on_setup(expect, reply, leftover)
            }
            // 221 exactly: QUIT ends the dialogue, so there is nothing left to say politely to
            // any other reply (RFC 5321 §4.1.1.10).
            Expect::Quit if reply.code == 221 => {
                self.queue.clear();
                self.state = State::Closed;
                self.events.push_back(Event::Closed);
                Ok(())
            }
            Expect::Quit => self.fail_hard(stage, SmtpError::UnexpectedReply { stage, reply }),
            Expect::Rset(_)
            | Expect::Mail(_)
            | Expect::Rcpt(..)
            | Expect::Data(_)
            | Expect::EndOfData(_) => {
                let result = self.on_transaction(expect, reply);
                if let (true, State::Failed(failure)) = (in_doubt, &mut self.state) {
                    failure.data_in_flight = true;
                }
                result
            }
        }
    }

    /// Stops without a QUIT: the connection is out of step, compromised or closing.
    fn fail_hard(&mut self, stage: Stage, error: SmtpError) -> Result<(), SmtpError> {
        self.fail(stage, error, false)
    }

    /// Stops with a QUIT for the driver to send best effort: the dialogue is still in step.
    fn fail_polite(&mut self, stage: Stage, error: SmtpError) -> Result<(), SmtpError> {
        self.fail(stage, error, true)
    }

    fn fail(&mut self, stage: Stage, error: SmtpError, quit: bool) -> Result<(), SmtpError> {
        // After a failure only finished messages are still worth reporting: a pending Ready or
        // StartTls would invite the driver to carry on.
        self.events.retain(|e| matches!(e, Event::Message(_)));
        let data_in_flight = self.data_in_flight();
        self.queue.clear();
        if quit {
            self.queue.farewell();
        }
        self.state = State::Failed(Box::new(Failure {
            stage,
            error: error.clone(),
            data_in_flight,
        }));
        Err(error)
    }

    /// A reply that is not the success the command expects: a refusal ends the session
    /// politely, anything else means the dialogue is out of step.
    fn refuse(&mut self, stage: Stage, reply: Reply) -> Result<(), SmtpError> {
        if reply.is_refusal() {
            self.fail_polite(stage, SmtpError::Rejected { stage, reply })
        } else {
            self.fail_hard(stage, SmtpError::UnexpectedReply { stage, reply })
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
mod tests;
