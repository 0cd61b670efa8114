//! Mail transactions: RSET, MAIL, RCPT, DATA or BDAT, end of data, and each message's report
//! (RFC 5321 §3.3, RFC 2920, RFC 3030).
//!
//! - Success is a 2yz reply (RFC 5321 §4.2.1): RCPT's 250, 251 and 252 (§3.4) and any other
//!   2yz; DATA alone needs its intermediate 354.
//! - A transaction is settled when MAIL is refused or no recipient can still be accepted: its
//!   unsent commands are withdrawn and it is reported once no reply of it is outstanding. With
//!   PIPELINING those replies are all read and matched (RFC 2920 §3.1): a refused MAIL explains
//!   everything after it.
//! - A refused RSET between messages does not stop the next one: RSET after a completed
//!   transaction changes nothing (RFC 5321 §4.1.1.5), and the next MAIL reply decides.
//! - An address that is not ASCII turns SMTPUTF8 on even if the envelope did not ask for it.
//! - DSN parameters (RFC 3461 §4) go out only when EHLO offered DSN: RET and ENVID on MAIL,
//!   NOTIFY and ORCPT on every RCPT. Otherwise the report's `dsn_not_offered` says they were
//!   left out.
use std::collections::VecDeque;

use super::queue::{Expect, TxnId};
use super::setup::Cleared;
use super::{
    queue_id, Delivered, Envelope, Event, MessageReport, RecipientResult, RecipientStatus, Session,
    State,
};
use crate::smtp::command::{Command, CommandError, Param, Path};
use crate::smtp::reply::Reply;
use crate::smtp::SmtpError;

/// The transactions in flight, oldest first, and the TLS proof mail needs.
pub(super) struct Mail {
    cleared: Cleared,
    txns: VecDeque<Transaction>,
}

/// One mail transaction in progress.
struct Transaction {
    id: TxnId,
    recipients: Vec<RecipientResult>,
    /// RCPT replies still to come.
    rcpt_pending: usize,
    accepted: usize,
    /// Another message follows on this connection.
    more: bool,
    /// A refused MAIL explains everything after it.
    mail_failure: Option<SmtpError>,
    /// DSN was asked for and not offered, so the parameters were left out.
    dsn_not_offered: bool,
}

impl Session {
    /// Submits one message after [`Event::Ready`]. Checks SMTPUTF8, 8BITMIME and the SIZE limit
    /// before anything is sent; on error nothing is sent and the session stays ready.
    pub fn submit(&mut self, envelope: Envelope) -> Result<(), SmtpError> {
        self.check_failed()?;
        let State::Ready(cleared) = self.state else {
            return Err(SmtpError::Misuse(
                "submit() is only allowed after Event::Ready",
            ));
        };
        let caps = self.learnt.caps.clone().unwrap_or_default();
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
        // RFC 3461 §4: the parameters only when DSN is offered; otherwise the message goes
        // without them and the report says so.
        let dsn = caps.dsn().then_some(&envelope.dsn);
        let dsn_not_offered = dsn.is_none() && envelope.dsn.is_requested();
        if let Some(dsn) = dsn {
            params.extend(dsn.ret.map(Param::ret));
            params.extend(dsn.envid.as_ref().map(Param::envid));
        }
        let rcpt_params = |to: &Path| -> Result<Vec<Param>, CommandError> {
            let Some(dsn) = dsn.filter(|d| d.is_requested()) else {
                return Ok(Vec::new());
            };
            let mut p: Vec<Param> = dsn.notify.map(Param::notify).into_iter().collect();
            p.push(Param::orcpt(to)?);
            Ok(p)
        };
        let rcpts = rcpts
            .into_iter()
            .map(|to| Ok((rcpt_params(&to)?, to)))
            .collect::<Result<Vec<_>, CommandError>>()?;

        let id = TxnId(self.transactions);
        self.transactions += 1;
        if id.0 > 0 {
            self.queue.command(Command::Rset, Expect::Rset(id));
        }
        self.queue
            .command(Command::Mail { from, params }, Expect::Mail(id));
        let rcpt_pending = rcpts.len();
        for (i, (params, to)) in rcpts.into_iter().enumerate() {
            let cmd = Command::Rcpt { to, params };
            self.queue.command(cmd, Expect::Rcpt(id, i));
        }
        if caps.chunking() {
            let size = envelope.size;
            let cmd = Command::Bdat { size, last: true };
            self.queue.bdat(cmd, Expect::EndOfData(id), size);
        } else {
            self.queue.command(Command::Data, Expect::Data(id));
        }
        if !envelope.more {
            self.queue.command(Command::Quit, Expect::Quit);
        }
        let txn = Transaction {
            id,
            recipients: envelope
                .recipients
                .into_iter()
                .map(|address| RecipientResult {
                    address,
                    status: RecipientStatus::NotTried,
                })
                .collect(),
            rcpt_pending,
            accepted: 0,
            more: envelope.more,
            mail_failure: None,
            dsn_not_offered,
        };
        self.state = State::Mail(Mail {
            cleared,
            txns: VecDeque::from([txn]),
        });
        Ok(())
    }

    pub(super) fn on_transaction(&mut self, expect: Expect, reply: Reply) -> Result<(), SmtpError> {
        let stage = expect.stage();
        let had_credentials = self.credentials.is_some();
        let State::Mail(mail) = &mut self.state else {
            return self.fail_hard(stage, SmtpError::Misuse("transaction reply outside mail"));
        };
        let txn = expect
            .txn()
            .and_then(|id| mail.txns.iter_mut().find(|t| t.id == id));
        let Some(txn) = txn else {
            return self.fail_hard(
                stage,
                SmtpError::Misuse("transaction reply without a transaction"),
            );
        };
        let id = txn.id;
        let settled = reply.is_positive() || reply.is_refusal();
        match expect {
            Expect::Rset(_) if settled => Ok(()),
            Expect::Mail(_) if reply.is_positive() => Ok(()),
            Expect::Mail(_) if reply.is_refusal() => {
                txn.mail_failure = Some(if reply.code == 530 && !had_credentials {
                    SmtpError::AuthRequired { reply }
                } else {
                    SmtpError::Rejected { stage, reply }
                });
                self.settle(id)
            }
            Expect::Rcpt(_, i) if settled => {
                let accepted = reply.is_positive();
                let status = if accepted {
                    RecipientStatus::Accepted(reply)
                } else if txn.mail_failure.is_some() {
                    // A pipelined RCPT after a refused MAIL gets "503 bad sequence": that says
                    // nothing about the recipient, so it was not really tried.
                    RecipientStatus::NotTried
                } else {
                    RecipientStatus::Rejected(reply)
                };
                if let Some(r) = txn.recipients.get_mut(i) {
                    r.status = status;
                }
                txn.accepted += usize::from(accepted);
                txn.rcpt_pending = txn.rcpt_pending.saturating_sub(1);
                if txn.rcpt_pending == 0 && txn.accepted == 0 {
                    return self.settle(id);
                }
                Ok(())
            }
            Expect::Data(_) if reply.code == 354 => match txn.overriding_error(had_credentials) {
                Some(err) => self.drop_after_354(id, err),
                None => {
                    self.queue.answer_with_body(Expect::EndOfData(id));
                    Ok(())
                }
            },
            Expect::Data(_) if reply.is_refusal() => {
                let err = txn
                    .overriding_error(had_credentials)
                    .unwrap_or(SmtpError::Rejected { stage, reply });
                self.finish(id, Err(err))
            }
            Expect::EndOfData(_) if settled => {
                let outcome = match txn.overriding_error(had_credentials) {
                    Some(err) => Err(err),
                    None if reply.is_refusal() => Err(SmtpError::Rejected { stage, reply }),
                    None => Ok(Delivered {
                        queue_id: queue_id(&reply),
                        reply,
                    }),
                };
                self.finish(id, outcome)
            }
            _ => self.fail_hard(stage, SmtpError::UnexpectedReply { stage, reply }),
        }
    }

    /// The transaction's fate is known: nothing more of it is sent, and it is reported as soon
    /// as no reply of it is outstanding.
    fn settle(&mut self, id: TxnId) -> Result<(), SmtpError> {
        self.queue.withdraw(id);
        if self.queue.awaits_txn(id) {
            return Ok(());
        }
        let had_credentials = self.credentials.is_some();
        let err = match self.txn_mut(id) {
            Some(txn) => txn.overriding_error(had_credentials),
            None => None,
        };
        let err = err.unwrap_or(SmtpError::Misuse("transaction settled without a cause"));
        self.finish(id, Err(err))
    }

    fn txn_mut(&mut self, id: TxnId) -> Option<&mut Transaction> {
        match &mut self.state {
            State::Mail(mail) => mail.txns.iter_mut().find(|t| t.id == id),
            _ => None,
        }
    }

    /// Reports the message and moves on: to the next message, or to the QUIT queued with it.
    fn finish(
        &mut self,
        id: TxnId,
        outcome: Result<Delivered, SmtpError>,
    ) -> Result<(), SmtpError> {
        let State::Mail(mail) = &mut self.state else {
            return Ok(());
        };
        let Some(pos) = mail.txns.iter().position(|t| t.id == id) else {
            return Ok(());
        };
        let Some(txn) = mail.txns.remove(pos) else {
            return Ok(());
        };
        let cleared = mail.cleared;
        let idle = mail.txns.is_empty();
        self.events.push_back(Event::Message(MessageReport {
            recipients: txn.recipients,
            outcome,
            dsn_not_offered: txn.dsn_not_offered,
        }));
        if idle {
            if txn.more {
                self.enter_ready(cleared);
            } else {
                self.state = State::Closing;
            }
        }
        Ok(())
    }

    /// DATA got 354 though no recipient was accepted, which RFC 2920 §3.1 allows. The lone
    /// `.` it suggests would submit an empty message (and deliver it, were our count of
    /// accepted recipients ever wrong); RSET and QUIT cannot be sent either, since after 354
    /// every line is content. So the connection is dropped: mail data that never ended
    /// confirms nothing (RFC 5321 §3.3). Later messages need a new connection.
    fn drop_after_354(&mut self, id: TxnId, err: SmtpError) -> Result<(), SmtpError> {
        let (recipients, dsn_not_offered) = match self.txn_mut(id) {
            Some(txn) => (std::mem::take(&mut txn.recipients), txn.dsn_not_offered),
            None => (Vec::new(), false),
        };
        self.events.push_back(Event::Message(MessageReport {
            recipients,
            outcome: Err(err),
            dsn_not_offered,
        }));
        self.events.push_back(Event::Closed);
        self.queue.clear();
        self.state = State::Closed;
        if self.record {
            self.transcript
                .push("* 354 without an accepted recipient: closing without sending data".into());
        }
        Ok(())
    }
}

impl Transaction {
    /// A refused MAIL explains every reply after it, and with no recipient accepted the reply
    /// to DATA or BDAT is only a consequence: these errors take precedence.
    fn overriding_error(&mut self, had_credentials: bool) -> Option<SmtpError> {
        match self.mail_failure.take() {
            Some(err) => Some(err),
            None if self.accepted == 0 => Some(self.no_recipient(had_credentials)),
            None => None,
        }
    }

    /// Every recipient was refused: temporary if any refusal was, so a retry can help; a 530
    /// when no credentials were given means the server wants authentication.
    fn no_recipient(&self, had_credentials: bool) -> SmtpError {
        let rejections = || {
            self.recipients.iter().filter_map(|r| match &r.status {
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
}
