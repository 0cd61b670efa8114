//! Commands waiting to go out and the replies awaited for those that went, oldest first.
//!
//! One rule releases commands ([`Queue::release`]): a command goes out when no reply is
//! awaited, or, with PIPELINING, when no awaited command ends a group (RFC 2920 §3.1: EHLO,
//! STARTTLS, AUTH, DATA and QUIT must be last in a group, because what follows depends on their
//! reply). Without PIPELINING that is one command per round trip (RFC 5321 §4.3.1).
use std::collections::VecDeque;

use super::{BodyFraming, Output, Stage};
use crate::smtp::command::Command;

/// The message a transaction command belongs to. Replies are attributed by it, so several
/// transactions can be in flight on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TxnId(pub(super) u32);

/// The reply awaited for a command that was handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    Rset(TxnId),
    Mail(TxnId),
    /// The reply for the recipient at this index of the envelope.
    Rcpt(TxnId, usize),
    Data(TxnId),
    /// The reply to the final `.` or to `BDAT LAST`.
    EndOfData(TxnId),
    Quit,
}

impl Expect {
    pub(super) fn stage(self) -> Stage {
        match self {
            Expect::Greeting => Stage::Greeting,
            Expect::Ehlo => Stage::Ehlo,
            Expect::Helo => Stage::Helo,
            Expect::StartTls => Stage::StartTls,
            Expect::Auth => Stage::Auth,
            Expect::Rset(_) => Stage::Reset,
            Expect::Mail(_) => Stage::MailFrom,
            Expect::Rcpt(..) => Stage::RcptTo,
            Expect::Data(_) => Stage::Data,
            Expect::EndOfData(_) => Stage::EndOfData,
            Expect::Quit => Stage::Quit,
        }
    }

    pub(super) fn txn(self) -> Option<TxnId> {
        match self {
            Expect::Rset(id)
            | Expect::Mail(id)
            | Expect::Rcpt(id, _)
            | Expect::Data(id)
            | Expect::EndOfData(id) => Some(id),
            _ => None,
        }
    }

    /// RFC 2920 §3.1 (BDAT may be pipelined too, RFC 3030 §4).
    fn ends_group(self) -> bool {
        !matches!(
            self,
            Expect::Rset(_) | Expect::Mail(_) | Expect::Rcpt(..) | Expect::EndOfData(_)
        )
    }
}

struct Item {
    output: Output,
    stage: Stage,
    /// The transcript form: credentials redacted, bodies summarised.
    log: String,
}

/// A command not yet released, with what travels with it (BDAT and its body; the body and the
/// final dot after 354) and the reply it will await (none for a best-effort QUIT).
struct Step {
    items: Vec<Item>,
    expect: Option<Expect>,
}

#[derive(Default)]
pub(super) struct Queue {
    /// Released, for the driver to write.
    out: VecDeque<Item>,
    held: VecDeque<Step>,
    awaited: VecDeque<Expect>,
    pipelining: bool,
}

impl Queue {
    /// The server speaks first (RFC 5321 §3.1).
    pub(super) fn awaiting_greeting() -> Queue {
        Queue {
            awaited: VecDeque::from([Expect::Greeting]),
            ..Queue::default()
        }
    }

    /// Set from the capabilities in force; off until EHLO offered it (RFC 2920 §3.1).
    pub(super) fn set_pipelining(&mut self, on: bool) {
        self.pipelining = on;
    }

    pub(super) fn command(&mut self, cmd: Command, expect: Expect) {
        let step = Step {
            items: vec![command_item(&cmd, expect.stage())],
            expect: Some(expect),
        };
        self.held.push_back(step);
        self.release();
    }

    /// `BDAT size LAST` and exactly `size` octets of body (RFC 3030 §2).
    pub(super) fn bdat(&mut self, cmd: Command, expect: Expect, size: u64) {
        let body = Item {
            output: Output::Body(BodyFraming::Raw { size }),
            stage: Stage::MessageBody,
            log: format!("<message body, {size} octets>"),
        };
        let step = Step {
            items: vec![command_item(&cmd, expect.stage()), body],
            expect: Some(expect),
        };
        self.held.push_back(step);
        self.release();
    }

    /// What answers the reply just read (a SASL response to 334, the body to 354): it comes
    /// before anything queued after that command.
    pub(super) fn answer(&mut self, cmd: Command, expect: Expect) {
        let step = Step {
            items: vec![command_item(&cmd, expect.stage())],
            expect: Some(expect),
        };
        self.held.push_front(step);
        self.release();
    }

    /// After 354: the dot-stuffed body, then the final `.` as its own item so the session knows
    /// when the end of data went out (RFC 5321 §4.1.1.4).
    pub(super) fn answer_with_body(&mut self, expect: Expect) {
        let body = Item {
            output: Output::Body(BodyFraming::Dot),
            stage: Stage::MessageBody,
            log: "<message body, dot-stuffed>".into(),
        };
        let dot = Item {
            output: Output::Bytes(b".\r\n".to_vec()),
            stage: Stage::EndOfData,
            log: ".".into(),
        };
        self.held.push_front(Step {
            items: vec![body, dot],
            expect: Some(expect),
        });
        self.release();
    }

    /// A QUIT after a failure, written best effort, its reply not read.
    pub(super) fn farewell(&mut self) {
        self.held.push_back(Step {
            items: vec![command_item(&Command::Quit, Stage::Quit)],
            expect: None,
        });
        self.release();
    }

    /// The one rule; see the module doc.
    pub(super) fn release(&mut self) {
        while !self.held.is_empty() {
            let open = self.awaited.is_empty()
                || (self.pipelining && !self.awaited.iter().any(|e| e.ends_group()));
            let Some(step) = open.then(|| self.held.pop_front()).flatten() else {
                break;
            };
            self.out.extend(step.items);
            self.awaited.extend(step.expect);
        }
    }

    /// The next item to write, with its transcript form.
    pub(super) fn pop_output(&mut self) -> Option<(Output, String)> {
        self.out.pop_front().map(|item| (item.output, item.log))
    }

    pub(super) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub(super) fn is_awaiting(&self) -> bool {
        !self.awaited.is_empty()
    }

    /// The oldest awaited reply, which the reply just read answers (RFC 2920 §3.1: in order).
    pub(super) fn take_awaited(&mut self) -> Option<Expect> {
        self.awaited.pop_front()
    }

    /// A settled transaction sends nothing more: its unsent commands are dropped.
    pub(super) fn withdraw(&mut self, txn: TxnId) {
        self.held
            .retain(|step| step.expect.and_then(Expect::txn) != Some(txn));
    }

    /// Replies of `txn` still to come for commands already handed out.
    pub(super) fn awaits_txn(&self, txn: TxnId) -> bool {
        self.awaited.iter().any(|e| e.txn() == Some(txn))
    }

    /// The end of some message's data went out and its reply has not come.
    pub(super) fn awaits_end_of_data(&self) -> bool {
        self.awaited
            .iter()
            .any(|e| matches!(e, Expect::EndOfData(_)))
    }

    /// Everything was answered but the QUIT.
    pub(super) fn only_quit_left(&self) -> bool {
        self.out.is_empty() && self.held.is_empty() && self.awaited == [Expect::Quit]
    }

    /// The step of the first unwritten item, else of the oldest awaited reply.
    pub(super) fn stage(&self) -> Option<Stage> {
        self.out
            .front()
            .map(|item| item.stage)
            .or_else(|| self.awaited.front().map(|e| e.stage()))
    }

    pub(super) fn clear(&mut self) {
        self.out.clear();
        self.held.clear();
        self.awaited.clear();
    }
}

fn command_item(cmd: &Command, stage: Stage) -> Item {
    Item {
        output: Output::Bytes(cmd.to_wire()),
        stage,
        log: cmd.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(q: &mut Queue) -> Vec<String> {
        std::iter::from_fn(|| q.pop_output().map(|(_, log)| log)).collect()
    }

    fn mail(q: &mut Queue, id: TxnId) {
        q.command(Command::Rset, Expect::Rset(id));
        q.command(Command::Data, Expect::Data(id));
        q.command(Command::Quit, Expect::Quit);
    }

    #[test]
    fn with_pipelining_everything_up_to_a_group_end_goes_at_once() {
        let mut q = Queue::default();
        q.set_pipelining(true);
        mail(&mut q, TxnId(0));
        assert_eq!(written(&mut q), ["RSET", "DATA"]);
        assert_eq!(q.take_awaited(), Some(Expect::Rset(TxnId(0))));
        assert_eq!(q.take_awaited(), Some(Expect::Data(TxnId(0))));
        q.answer_with_body(Expect::EndOfData(TxnId(0)));
        assert_eq!(
            written(&mut q),
            ["<message body, dot-stuffed>", ".", "QUIT"]
        );
        assert!(q.awaits_end_of_data());
    }

    #[test]
    fn without_pipelining_one_command_per_reply() {
        let mut q = Queue::default();
        mail(&mut q, TxnId(0));
        assert_eq!(written(&mut q), ["RSET"]);
        assert_eq!(q.take_awaited(), Some(Expect::Rset(TxnId(0))));
        assert!(written(&mut q).is_empty(), "released only by release()");
        q.release();
        assert_eq!(written(&mut q), ["DATA"]);
    }

    #[test]
    fn a_settled_transaction_withdraws_only_its_own_commands() {
        let mut q = Queue::default();
        mail(&mut q, TxnId(0));
        q.take_awaited();
        q.withdraw(TxnId(0));
        assert!(!q.awaits_txn(TxnId(0)));
        q.release();
        assert_eq!(written(&mut q), ["RSET", "QUIT"]);
        assert!(q.only_quit_left());
    }
}
