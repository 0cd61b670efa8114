//! Greeting, EHLO/HELO, STARTTLS and AUTH: everything before the first message.
//!
//! - STARTTLS mode means STARTTLS is required: not offered is [`SmtpError::StartTlsNotOffered`],
//!   never a plaintext fallback. What was learnt before TLS is discarded and EHLO sent again
//!   (RFC 3207 §4.2); the old capabilities stay readable for `--probe` only.
//! - One AUTH attempt: a 5yz ends it; no other mechanism re-sends the password.
use super::queue::Expect;
use super::{Event, Session, Stage, State, TlsMode};
use crate::smtp::auth::{self, Sasl};
use crate::smtp::capability::Capabilities;
use crate::smtp::command::Command;
use crate::smtp::reply::{Reply, ReplyParser};
use crate::smtp::SmtpError;

/// Proof that the TLS policy is met. It is made only from a policy that needs no STARTTLS or
/// by a completed handshake, and AUTH and mail both need one: with STARTTLS required, neither
/// can come before the handshake (RFC 3207 §4).
#[derive(Debug, Clone, Copy)]
pub(super) struct Cleared {
    tls: bool,
}

impl Cleared {
    /// `None` while a STARTTLS is still owed.
    pub(super) fn by_policy(mode: TlsMode) -> Option<Cleared> {
        match mode {
            TlsMode::None => Some(Cleared { tls: false }),
            TlsMode::Implicit => Some(Cleared { tls: true }),
            TlsMode::Starttls => None,
        }
    }
}

impl Session {
    pub(super) fn on_setup(
        &mut self,
        expect: Expect,
        reply: Reply,
        leftover: usize,
    ) -> Result<(), SmtpError> {
        let stage = expect.stage();
        let cleared = match &self.state {
            State::Greeting(c) | State::Hello(c) => *c,
            _ => None,
        };
        match expect {
            // 220 exactly, as for STARTTLS: a shifted dialogue shows first as a wrong 2yz.
            Expect::Greeting if reply.code == 220 => {
                self.learnt.greeting = Some(reply);
                self.send_ehlo(cleared);
                Ok(())
            }
            // 250 exactly: its lines are the capabilities (RFC 5321 §4.1.1.1), and a 220 here
            // would be the greeting or STARTTLS reply of a shifted dialogue.
            Expect::Ehlo if reply.code == 250 => {
                self.after_hello(cleared, Capabilities::parse(&reply))
            }
            Expect::Ehlo if matches!(reply.code, 500 | 502) => self.ehlo_refused(cleared, reply),
            // A HELO reply carries no extension keywords (RFC 5321 §4.1.1.1).
            Expect::Helo if reply.code == 250 => self.after_hello(cleared, Capabilities::none()),
            Expect::StartTls if reply.code == 220 => {
                // Bytes behind the 220 in the same read were sent before the handshake:
                // plaintext command injection (CVE-2011-0411).
                if leftover > 0 {
                    return self.fail_hard(
                        Stage::StartTls,
                        SmtpError::StartTlsInjection { buffered: leftover },
                    );
                }
                self.state = State::TlsHandshake;
                self.events.push_back(Event::StartTls);
                Ok(())
            }
            Expect::Auth => self.on_auth(reply),
            _ => self.refuse(stage, reply),
        }
    }

    /// RFC 3207 §4.2: discard all knowledge obtained from the server before TLS.
    pub(super) fn after_handshake(&mut self) {
        self.learnt.pre_tls_caps = self.learnt.caps.take();
        self.learnt.tls = true;
        self.parser = ReplyParser::new();
        self.queue.set_pipelining(false);
        self.send_ehlo(Some(Cleared { tls: true }));
    }

    fn send_ehlo(&mut self, cleared: Option<Cleared>) {
        self.queue
            .command(Command::Ehlo(self.ehlo.clone()), Expect::Ehlo);
        self.state = State::Hello(cleared);
    }

    /// EHLO got 500/502: HELO only when neither STARTTLS nor AUTH is needed (RFC 5321 §4.1.4),
    /// because a HELO session offers neither.
    fn ehlo_refused(&mut self, cleared: Option<Cleared>, reply: Reply) -> Result<(), SmtpError> {
        if cleared.is_none() {
            return self.fail_polite(Stage::Ehlo, SmtpError::StartTlsNotOffered);
        }
        if self.credentials.is_some() && !self.probe {
            return self.fail_polite(Stage::Ehlo, SmtpError::AuthNotOffered);
        }
        if self.record {
            self.transcript
                .push(format!("* EHLO refused ({}), trying HELO", reply.code));
        }
        self.queue
            .command(Command::Helo(self.ehlo.clone()), Expect::Helo);
        Ok(())
    }

    fn after_hello(
        &mut self,
        cleared: Option<Cleared>,
        caps: Capabilities,
    ) -> Result<(), SmtpError> {
        let starttls_offered = caps.starttls();
        let offered = caps.auth_mechanisms().to_vec();
        self.learnt.caps = Some(caps);
        let Some(cleared) = cleared else {
            if !starttls_offered {
                return self.fail_polite(Stage::Ehlo, SmtpError::StartTlsNotOffered);
            }
            self.queue.command(Command::StartTls, Expect::StartTls);
            self.state = State::StartTls;
            return Ok(());
        };
        if self.probe {
            self.close();
            return Ok(());
        }
        let Some(creds) = &self.credentials else {
            self.enter_ready(cleared);
            return Ok(());
        };
        let started = auth::choose(creds.choice, creds.kind, &offered, cleared.tls)
            .and_then(|m| Sasl::start(m, creds, &self.host, self.port));
        match started {
            Ok((sasl, cmd)) => {
                self.queue.command(cmd, Expect::Auth);
                self.state = State::Auth {
                    cleared,
                    sasl: Box::new(sasl),
                };
                Ok(())
            }
            Err(e) => self.fail_polite(Stage::Auth, e),
        }
    }

    /// RFC 4954 §4: 334 asks for the next response, 235 (any 2yz) is success, but only once
    /// the mechanism's final response went out: before that it answers nothing we sent.
    fn on_auth(&mut self, reply: Reply) -> Result<(), SmtpError> {
        let stage = Stage::Auth;
        let State::Auth { cleared, sasl } = &mut self.state else {
            return self.fail_hard(stage, SmtpError::Misuse("AUTH reply outside AUTH"));
        };
        let cleared = *cleared;
        if reply.is_positive() {
            // RFC 7628 §3.2.2: after the error challenge the server must fail the exchange.
            if sasl.oauth_failure().is_some() {
                return self.fail_hard(stage, SmtpError::UnexpectedReply { stage, reply });
            }
            if !sasl.final_sent() {
                return self.fail_hard(stage, SmtpError::UnsolicitedReply { stage, reply });
            }
            self.learnt.authenticated = Some(sasl.mechanism());
            self.enter_ready(cleared);
            return Ok(());
        }
        if reply.code == 334 {
            let Some(creds) = &self.credentials else {
                return self.fail_hard(stage, SmtpError::Misuse("AUTH without credentials"));
            };
            return match sasl.respond(&reply, creds) {
                Ok(cmd) => {
                    self.queue.answer(cmd, Expect::Auth);
                    Ok(())
                }
                Err(e) => self.fail_hard(stage, e),
            };
        }
        if reply.is_permanent() {
            let mechanism = sasl.mechanism();
            let oauth = sasl.oauth_failure().cloned().map(Box::new);
            return self.fail_polite(
                stage,
                SmtpError::AuthFailed {
                    mechanism,
                    reply,
                    oauth,
                },
            );
        }
        self.refuse(stage, reply)
    }

    pub(super) fn enter_ready(&mut self, cleared: Cleared) {
        let caps = self.learnt.caps.clone().unwrap_or_default();
        self.queue.set_pipelining(caps.pipelining());
        self.state = State::Ready(cleared);
        self.events.push_back(Event::Ready(caps));
    }
}
