//! The top-level error and the one path from an error to its exit code (cli.md "Exit status",
//! sysexits.h as msmtp and sendmail use them), its JSON `error` object and its stderr lines.
use crate::config::ConfigError;
use crate::dkim::{self, DkimError};
use crate::driver::{DriverError, Retryable};
use crate::message::{self, MessageError};
use crate::quiz::{self, QuizError};
use crate::report::{ErrorReport, Rejected};
use crate::smtp::{self, SmtpError};
use crate::transport::{self, TransportError};

pub mod hint;

/// What went wrong, in the contract's terms: one row of the exit table each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 64: bad command line.
    Usage,
    /// 65: bad data (addresses, CR/LF in headers, quiz or roster, needs SMTPUTF8/8BITMIME).
    Data,
    /// 66: an input file missing or unreadable, or empty standard input.
    NoInput,
    /// 69: the server refused for good (5xx).
    Permanent,
    /// 70: a bug.
    Internal,
    /// 73: an output file (outbox, `--save`) cannot be created or written.
    CantCreate,
    /// 75: try again later (connection, timeout, 4xx, 421, drop).
    Temporary,
    /// 76: the server broke the protocol.
    Protocol,
    /// 77: authentication failed or is required but forbidden by the options.
    Auth,
    /// 78: TLS could not be had or verified.
    Tls,
    /// 78: configuration (AUTH mechanism, password, config file).
    Config,
}

impl Class {
    pub fn exit_code(self) -> i32 {
        match self {
            Class::Usage => 64,
            Class::Data => 65,
            Class::NoInput => 66,
            Class::Permanent => 69,
            Class::Internal => 70,
            Class::CantCreate => 73,
            Class::Temporary => 75,
            Class::Protocol => 76,
            Class::Auth => 77,
            Class::Tls | Class::Config => 78,
        }
    }

    /// `error.kind` of the JSON report.
    pub fn kind(self) -> &'static str {
        match self {
            Class::Usage => "usage",
            Class::Data | Class::NoInput => "input",
            Class::Permanent => "permanent",
            Class::Internal => "internal",
            Class::CantCreate | Class::Config => "config",
            Class::Temporary => "temporary",
            Class::Protocol => "protocol",
            Class::Auth => "auth",
            Class::Tls => "tls",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Data(String),
    /// An input file or standard input could not be read.
    #[error("cannot read {what}: {source}")]
    Input {
        what: String,
        source: std::io::Error,
    },
    /// The outbox, `--save` or standard output could not be written.
    #[error("cannot write {what}: {source}")]
    Output {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Dkim(#[from] DkimError),
    #[error(transparent)]
    Quiz(#[from] QuizError),
    /// A message-layer error, with the flag or field it came from when known.
    #[error("{}{source}", if context.is_empty() { String::new() } else { format!("{context}: ") })]
    Message {
        context: String,
        source: MessageError,
    },
    /// The connection or the session failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The transaction failed; the recipients refused on the way are kept for the report and
    /// named in the message, since "no recipient was accepted" alone says neither who nor why.
    #[error("{source}{}", refusals(source, rejected))]
    Delivery {
        source: SmtpError,
        rejected: Vec<Rejected>,
    },
    /// The message went out, but not to everyone.
    #[error("{count} of {of} recipients refused")]
    PartlyRefused {
        count: usize,
        of: usize,
        /// Every refusal was a 4xx: those recipients may be tried later.
        transient: bool,
    },
    /// A case that cannot happen: a bug.
    #[error("internal error (a bug, please report it): {0}")]
    Internal(String),
}

/// `; RCPT TO:<a@x> refused: 550 5.1.1 User unknown` for each refused recipient, when those
/// refusals are why the transaction failed (after a refused MAIL they are only its echo).
fn refusals(source: &SmtpError, rejected: &[Rejected]) -> String {
    if !matches!(source, SmtpError::NoRecipientAccepted { .. }) {
        return String::new();
    }
    rejected
        .iter()
        .map(|r| {
            let enhanced = r
                .enhanced
                .as_deref()
                .map(|e| format!(" {e}"))
                .unwrap_or_default();
            format!(
                "; RCPT TO:<{}> refused: {}{enhanced} {}",
                r.address, r.code, r.text
            )
        })
        .collect()
}

impl From<MessageError> for Error {
    fn from(source: MessageError) -> Error {
        Error::Message {
            context: String::new(),
            source,
        }
    }
}

impl From<TransportError> for Error {
    fn from(source: TransportError) -> Error {
        Error::Driver(source.into())
    }
}

impl From<SmtpError> for Error {
    fn from(source: SmtpError) -> Error {
        Error::Driver(source.into())
    }
}

impl Error {
    /// The one place an error becomes a row of the exit table.
    pub fn class(&self) -> Class {
        match self {
            Error::Usage(_) => Class::Usage,
            Error::Data(_) => Class::Data,
            Error::Input { .. } => Class::NoInput,
            Error::Output { .. } => Class::CantCreate,
            Error::Config(_) => Class::Config,
            Error::Dkim(e) => match e.class() {
                dkim::ErrorClass::Input => Class::NoInput,
                dkim::ErrorClass::Config => Class::Config,
                dkim::ErrorClass::Data => Class::Data,
            },
            Error::Quiz(e) => match e.class() {
                quiz::ErrorClass::Usage => Class::Usage,
                quiz::ErrorClass::Data => Class::Data,
                quiz::ErrorClass::Input => Class::NoInput,
            },
            Error::Message { source, .. } => match source.class() {
                message::ErrorClass::Data => Class::Data,
                message::ErrorClass::Input => Class::NoInput,
            },
            Error::Driver(DriverError::Smtp(e)) | Error::Delivery { source: e, .. } => {
                smtp_class(e)
            }
            Error::Driver(DriverError::Transport { source, .. }) => match source.class() {
                transport::ErrorClass::Temporary => Class::Temporary,
                transport::ErrorClass::Protocol => Class::Protocol,
                transport::ErrorClass::Tls => Class::Tls,
                transport::ErrorClass::Config => Class::Config,
            },
            Error::Driver(DriverError::Body(_)) => Class::NoInput,
            Error::Driver(DriverError::Internal(_)) | Error::Internal(_) => Class::Internal,
            Error::PartlyRefused { transient, .. } => {
                if *transient {
                    Class::Temporary
                } else {
                    Class::Permanent
                }
            }
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.class().exit_code()
    }

    /// The JSON report's `error` object, which also carries the exit code and the
    /// [`hint::hint`] for this run's `context` (cli.md "Diagnostics").
    pub fn report(&self, context: &hint::Context) -> ErrorReport {
        let class = self.class();
        ErrorReport {
            kind: class.kind(),
            message: self.to_string(),
            exit_code: class.exit_code(),
            hint: hint::hint(self, context),
        }
    }
}

impl Retryable for Error {
    /// `--retries` applies: a temporary failure that cannot have delivered the message.
    fn is_retryable(&self) -> bool {
        let maybe_delivered = match self {
            Error::Driver(e) => e.maybe_delivered(),
            Error::Delivery { source, .. } => source.may_have_been_delivered(),
            // Part of the message went out: sending it again would duplicate it.
            _ => return false,
        };
        self.class() == Class::Temporary && !maybe_delivered
    }
}

/// The one error printer: the error line, and the hint line when there is one.
pub fn print(report: &ErrorReport) {
    eprintln!("quizmail: error: {}", report.message);
    if let Some(hint) = &report.hint {
        eprintln!("hint: {hint}");
    }
}

fn smtp_class(e: &SmtpError) -> Class {
    match e {
        SmtpError::StartTlsNotOffered => Class::Tls,
        SmtpError::Misuse(_) => Class::Internal,
        _ => match e.class() {
            smtp::ErrorClass::Temporary => Class::Temporary,
            smtp::ErrorClass::Permanent => Class::Permanent,
            smtp::ErrorClass::Protocol => Class::Protocol,
            smtp::ErrorClass::Auth => Class::Auth,
            smtp::ErrorClass::Config => Class::Config,
            smtp::ErrorClass::Data => Class::Data,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::{Mechanism, Reply, ReplyError, Stage};
    use crate::transport::CertProblem;

    fn reply(code: u16) -> Reply {
        Reply::new(code, None, vec!["text".into()])
    }

    fn io(kind: std::io::ErrorKind) -> std::io::Error {
        std::io::Error::from(kind)
    }

    /// Every row of the exit table in cli.md, with the JSON `error.kind` beside it. (0 is the
    /// absence of an error.)
    #[test]
    fn every_row_of_the_exit_table() {
        let transport = |source| Error::Driver(DriverError::from(source));
        let rows: Vec<(Error, i32, &str)> = vec![
            (Error::Usage("bad flag".into()), 64, "usage"),
            (
                Error::Message {
                    context: "--to".into(),
                    source: MessageError::NeedsSmtpUtf8("jörg@x.test".into()),
                },
                65,
                "input",
            ),
            (SmtpError::NeedsSmtpUtf8.into(), 65, "input"),
            (Error::Data("roster line 3".into()), 65, "input"),
            (
                Error::Input {
                    what: "attachment a.pdf".into(),
                    source: io(std::io::ErrorKind::NotFound),
                },
                66,
                "input",
            ),
            (
                Error::Delivery {
                    source: SmtpError::Rejected {
                        stage: Stage::MailFrom,
                        reply: reply(550),
                    },
                    rejected: vec![],
                },
                69,
                "permanent",
            ),
            (
                Error::PartlyRefused {
                    count: 1,
                    of: 2,
                    transient: false,
                },
                69,
                "permanent",
            ),
            (Error::Internal("cannot happen".into()), 70, "internal"),
            (
                DriverError::Internal("cannot happen").into(),
                70,
                "internal",
            ),
            (SmtpError::Misuse("out of order").into(), 70, "internal"),
            (
                Error::Output {
                    what: "the outbox".into(),
                    source: io(std::io::ErrorKind::PermissionDenied),
                },
                73,
                "config",
            ),
            (
                transport(TransportError::Connect {
                    target: "x:587".into(),
                    tried: 1,
                    source: io(std::io::ErrorKind::ConnectionRefused),
                }),
                75,
                "temporary",
            ),
            (
                transport(TransportError::Timeout {
                    during: "greeting".into(),
                }),
                75,
                "temporary",
            ),
            (
                SmtpError::ServiceClosing {
                    stage: Stage::RcptTo,
                    reply: reply(421),
                }
                .into(),
                75,
                "temporary",
            ),
            (
                Error::Delivery {
                    source: SmtpError::Rejected {
                        stage: Stage::Data,
                        reply: reply(451),
                    },
                    rejected: vec![],
                },
                75,
                "temporary",
            ),
            (
                SmtpError::Closed {
                    stage: Stage::Data,
                    maybe_delivered: false,
                }
                .into(),
                75,
                "temporary",
            ),
            (
                SmtpError::Malformed {
                    stage: Stage::Ehlo,
                    source: ReplyError::LineTooLong,
                }
                .into(),
                76,
                "protocol",
            ),
            (
                SmtpError::StartTlsInjection { buffered: 5 }.into(),
                76,
                "protocol",
            ),
            (transport(TransportError::InjectedData), 76, "protocol"),
            (
                SmtpError::UnexpectedReply {
                    stage: Stage::Data,
                    reply: reply(250),
                }
                .into(),
                76,
                "protocol",
            ),
            (
                SmtpError::AuthFailed {
                    mechanism: Mechanism::Plain,
                    reply: reply(535),
                    oauth: None,
                }
                .into(),
                77,
                "auth",
            ),
            (
                SmtpError::AuthRequired { reply: reply(530) }.into(),
                77,
                "auth",
            ),
            (SmtpError::StartTlsNotOffered.into(), 78, "tls"),
            (
                transport(TransportError::Certificate {
                    problem: CertProblem::Expired,
                    reason: "expired".into(),
                }),
                78,
                "tls",
            ),
            (
                SmtpError::NoUsableMechanism {
                    offered: vec![],
                    tls: false,
                    kind: crate::smtp::SecretKind::Password,
                }
                .into(),
                78,
                "config",
            ),
            (
                Error::Config(ConfigError::NoPassword {
                    user: "ada".into(),
                    why: "no terminal".into(),
                }),
                78,
                "config",
            ),
        ];
        for (e, code, kind) in rows {
            let report = e.report(&hint::Context::default());
            assert_eq!((report.exit_code, report.kind), (code, kind), "{e:?}");
            assert_eq!(e.exit_code(), code);
            assert_eq!(report.message, e.to_string());
        }
    }

    #[test]
    fn only_temporary_failures_that_cannot_have_delivered_are_retried() {
        let refused = Error::from(TransportError::Connect {
            target: "x:587".into(),
            tried: 1,
            source: io(std::io::ErrorKind::ConnectionRefused),
        });
        assert!(refused.is_retryable());
        let after_data = Error::Driver(DriverError::Transport {
            source: TransportError::Timeout {
                during: "end of data".into(),
            },
            maybe_delivered: true,
        });
        assert!(!after_data.is_retryable());
        let closed_after_data = Error::from(SmtpError::Closed {
            stage: Stage::EndOfData,
            maybe_delivered: true,
        });
        assert!(!closed_after_data.is_retryable());
        let permanent = Error::from(SmtpError::AuthFailed {
            mechanism: Mechanism::Plain,
            reply: reply(535),
            oauth: None,
        });
        assert!(!permanent.is_retryable());
        let partly = Error::PartlyRefused {
            count: 1,
            of: 2,
            transient: true,
        };
        assert!(!partly.is_retryable(), "part of it went out");
    }

    #[test]
    fn delivery_error_names_each_refused_recipient() {
        let e = Error::Delivery {
            source: SmtpError::NoRecipientAccepted { transient: false },
            rejected: vec![
                Rejected {
                    address: "a@x.test".into(),
                    code: 550,
                    enhanced: Some("5.1.1".into()),
                    text: "User unknown".into(),
                },
                Rejected {
                    address: "b@x.test".into(),
                    code: 553,
                    enhanced: None,
                    text: "Bad address".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "no recipient was accepted; RCPT TO:<a@x.test> refused: 550 5.1.1 User unknown; \
             RCPT TO:<b@x.test> refused: 553 Bad address"
        );
        assert_eq!(e.exit_code(), 69);
        let after_mail = Error::Delivery {
            source: SmtpError::Misuse("x"),
            rejected: vec![Rejected::default()],
        };
        assert_eq!(after_mail.to_string(), "SMTP session used out of order: x");
    }
}
