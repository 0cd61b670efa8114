//! The sans-I/O SMTP submission core: no sockets, no clock, no threads.
//!
//! - [`reply`]: resumable reply parser (RFC 5321 §4.2, RFC 2034, RFC 3463).
//! - [`command`]: commands as values with an exact wire form (RFC 5321 §4.1, RFC 4954, RFC 3030).
//! - [`dsn`]: delivery status notification parameters and xtext (RFC 3461, RFC 6533).
//! - [`capability`]: what an EHLO reply offers (RFC 5321 §4.1.1.1 and the extension RFCs).
//! - [`auth`]: PLAIN, LOGIN, CRAM-MD5, XOAUTH2, OAUTHBEARER and the `--auth auto` rule
//!   (RFC 4954, 4616, 2195, 7628).
//! - [`session`]: the state machine a blocking driver runs over a socket (RFC 5321, 3207, 2920,
//!   3030, 6531, 6152, 1870).
//!
//! Every failure is an [`SmtpError`]; [`SmtpError::class`] sorts it into the [`ErrorClass`] the
//! integrator maps to an exit status.
pub mod auth;
pub mod capability;
pub mod command;
pub mod dsn;
pub mod reply;
pub mod session;

pub use auth::{AuthChoice, Credentials, Mechanism, OAuthFailure, Secret, SecretKind};
pub use capability::Capabilities;
pub use command::{Command, CommandError};
pub use dsn::{Dsn, Envid, Notify, Ret};
pub use reply::{EnhancedCode, Parsed, Reply, ReplyClass, ReplyError, ReplyParser};
pub use session::{
    BodyFraming, Config, Delivered, Envelope, Event, MessageReport, Output, RecipientResult,
    RecipientStatus, Session, Stage, TlsMode,
};

/// How the integrator should treat an error (one exit status per class, cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later: a 4xx reply, 421, a dropped connection (exit 75).
    Temporary,
    /// Refused for good: a 5xx reply, a message over the SIZE limit (exit 69).
    Permanent,
    /// The dialogue is out of step: malformed or unexpected reply, STARTTLS injection (exit 76).
    Protocol,
    /// Authentication failed, or the server wants authentication and none was given (exit 77).
    Auth,
    /// Configuration: STARTTLS required but not offered, no usable AUTH mechanism (exit 78).
    Config,
    /// Bad data: the message needs SMTPUTF8 or 8BITMIME the server lacks, a CR/LF in an
    /// address (exit 65).
    Data,
}

/// Every way the SMTP layer fails. Where the server said something, the full [`Reply`] is kept.
/// `Clone`, so that a failed session answers every later call with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SmtpError {
    #[error("malformed reply during {stage}: {source}")]
    Malformed {
        stage: Stage,
        #[source]
        source: ReplyError,
    },
    #[error("unexpected reply to {stage}: {reply}")]
    UnexpectedReply { stage: Stage, reply: Reply },
    #[error("reply received during {stage} before the command it answers was sent: {reply}")]
    UnsolicitedReply { stage: Stage, reply: Reply },
    #[error("the server began a reply during {stage} before the command it answers was sent")]
    EarlyReply { stage: Stage },
    #[error("data sent after 220 to STARTTLS ({buffered} octets): possible command injection")]
    StartTlsInjection { buffered: usize },
    #[error("server closing the connection during {stage}: {reply}")]
    ServiceClosing { stage: Stage, reply: Reply },
    #[error("connection closed during {stage}{}", if *.maybe_delivered { " (the message may have been delivered, so it is not sent again)" } else { "" })]
    Closed { stage: Stage, maybe_delivered: bool },
    #[error("{stage} refused: {reply}")]
    Rejected { stage: Stage, reply: Reply },
    #[error("no recipient was accepted")]
    NoRecipientAccepted {
        /// True when at least one recipient was refused with a 4xx reply.
        transient: bool,
    },
    #[error("authentication with {mechanism} failed: {reply}{}", oauth.as_ref().map(|o| format!(" (the server says: {o})")).unwrap_or_default())]
    AuthFailed {
        mechanism: Mechanism,
        reply: Reply,
        /// The OAuth2 error challenge that came before the final reply (RFC 7628 §3.2.2).
        /// Boxed: it is rare, and every `Result` carrying an `SmtpError` would grow.
        oauth: Option<Box<OAuthFailure>>,
    },
    #[error("server wants authentication; give --user: {reply}")]
    AuthRequired { reply: Reply },
    #[error("malformed AUTH challenge: {0}")]
    BadChallenge(&'static str),
    #[error("STARTTLS is required but the server does not offer it")]
    StartTlsNotOffered,
    #[error("credentials were given but the server offers no AUTH")]
    AuthNotOffered,
    #[error("no usable AUTH mechanism{}: the server offers {offered:?}{}",
        if *.kind == SecretKind::BearerToken { " for an OAuth2 token (OAUTHBEARER or XOAUTH2)" } else { "" },
        if *.tls { "" } else if *.kind == SecretKind::BearerToken { " over an unencrypted connection (a token only when the mechanism is named with --auth)" } else { " over an unencrypted connection (PLAIN and LOGIN only when named with --auth)" })]
    NoUsableMechanism {
        offered: Vec<String>,
        tls: bool,
        kind: SecretKind,
    },
    #[error("--auth {} carries {}, but {} was given", mechanism.name().to_ascii_lowercase(), if *.kind == SecretKind::Password { "an OAuth2 token" } else { "a password" }, if *.kind == SecretKind::Password { "a password" } else { "an OAuth2 token" })]
    WrongSecretKind {
        mechanism: Mechanism,
        kind: SecretKind,
    },
    #[error("user name, password or token contains a character its mechanism cannot carry (a NUL, or in a token anything but RFC 6750 characters)")]
    InvalidCredentials,
    #[error("the message needs SMTPUTF8, which the server does not offer")]
    NeedsSmtpUtf8,
    #[error("the message needs 8BITMIME, which the server does not offer")]
    NeedsEightBitMime,
    #[error("message of {size} octets exceeds the server's limit of {limit}")]
    TooBig { size: u64, limit: u64 },
    #[error(transparent)]
    InvalidArgument(#[from] CommandError),
    #[error("SMTP session used out of order: {0}")]
    Misuse(&'static str),
}

impl SmtpError {
    /// The class decides the exit status. A reply's class comes from its code (RFC 5321 §4.2.1).
    pub fn class(&self) -> ErrorClass {
        use SmtpError::*;
        match self {
            Malformed { .. }
            | UnexpectedReply { .. }
            | UnsolicitedReply { .. }
            | EarlyReply { .. }
            | StartTlsInjection { .. }
            | BadChallenge(_)
            | Misuse(_) => ErrorClass::Protocol,
            ServiceClosing { .. } | Closed { .. } => ErrorClass::Temporary,
            Rejected { reply, .. } if reply.is_transient() => ErrorClass::Temporary,
            Rejected { .. } | TooBig { .. } => ErrorClass::Permanent,
            NoRecipientAccepted { transient: true } => ErrorClass::Temporary,
            NoRecipientAccepted { transient: false } => ErrorClass::Permanent,
            AuthFailed { .. } | AuthRequired { .. } => ErrorClass::Auth,
            StartTlsNotOffered
            | AuthNotOffered
            | NoUsableMechanism { .. }
            | WrongSecretKind { .. }
            | InvalidCredentials => ErrorClass::Config,
            NeedsSmtpUtf8 | NeedsEightBitMime | InvalidArgument(_) => ErrorClass::Data,
        }
    }

    /// Whether trying again later may help: decided by [`SmtpError::class`], which takes a
    /// reply's verdict from [`Reply::class`].
    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Temporary
    }

    /// The server's reply behind this error, if there is one.
    pub fn reply(&self) -> Option<&Reply> {
        use SmtpError::*;
        match self {
            UnexpectedReply { reply, .. }
            | UnsolicitedReply { reply, .. }
            | ServiceClosing { reply, .. }
            | Rejected { reply, .. }
            | AuthFailed { reply, .. }
            | AuthRequired { reply } => Some(reply),
            _ => None,
        }
    }

    /// True when the end of the message data was sent and its reply never came: the server may
    /// have accepted the message, so a retry could deliver it twice.
    pub fn may_have_been_delivered(&self) -> bool {
        matches!(
            self,
            SmtpError::Closed {
                maybe_delivered: true,
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_reply_codes() {
        let r = |code| Reply::new(code, None, vec!["x".into()]);
        let rejected = |code| SmtpError::Rejected {
            stage: Stage::MailFrom,
            reply: r(code),
        };
        assert_eq!(rejected(451).class(), ErrorClass::Temporary);
        assert_eq!(rejected(550).class(), ErrorClass::Permanent);
        assert_eq!(
            SmtpError::ServiceClosing {
                stage: Stage::Data,
                reply: r(421)
            }
            .class(),
            ErrorClass::Temporary
        );
        assert_eq!(rejected(550).reply().map(|r| r.code), Some(550));
        let closed = SmtpError::Closed {
            stage: Stage::EndOfData,
            maybe_delivered: true,
        };
        assert!(closed.may_have_been_delivered());
        assert_eq!(closed.class(), ErrorClass::Temporary);
        assert_eq!(
            closed.to_string(),
            "connection closed during end of data (the message may have been delivered, so it is not sent again)"
        );
        assert_eq!(SmtpError::StartTlsNotOffered.class(), ErrorClass::Config);
        assert_eq!(SmtpError::NeedsSmtpUtf8.class(), ErrorClass::Data);
        assert_eq!(
            SmtpError::StartTlsInjection { buffered: 3 }.class(),
            ErrorClass::Protocol
        );
    }
}
