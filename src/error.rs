//! The top-level error and the one place where errors become exit codes (cli.md "Exit status",
//! sysexits.h as msmtp and sendmail use them) and JSON `error.kind` values.
use crate::config::ConfigError;
use crate::dkim::{self, DkimError};
use crate::quiz::{self, QuizError};

/// What went wrong, in the contract's terms.
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
            Class::Temporary => "temporary",
            Class::Protocol => "protocol",
            Class::Auth => "auth",
            Class::Tls => "tls",
            Class::Config => "config",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Data(String),
    #[error("{what}: {source}")]
    Input {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Dkim(#[from] DkimError),
    #[error(transparent)]
    Quiz(#[from] QuizError),
}

impl Error {
    pub fn class(&self) -> Class {
        match self {
            Error::Usage(_) => Class::Usage,
            Error::Data(_) => Class::Data,
            Error::Input { .. } => Class::NoInput,
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
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.class().exit_code()
    }
}
