//! The transport layer's error enum and the exit class each error belongs to
//! (cli.md "Exit status": 75 temporary, 76 protocol, 78 configuration).

use std::io;
use std::path::PathBuf;

/// Which exit-status class an error belongs to; `error::Error::exit_code()` maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later (sysexits `EX_TEMPFAIL`, 75): refused, timed out, dropped, DNS failure.
    Temporary,
    /// The server broke the protocol (`EX_PROTOCOL`, 76): data after `220` to STARTTLS, a TLS
    /// handshake or record failure that is not about the certificate.
    Protocol,
    /// The server's certificate was rejected (`EX_CONFIG`, 78, reported as a TLS error).
    Tls,
    /// The configuration cannot work as given (`EX_CONFIG`, 78): CA file, fingerprint or server
    /// name unusable.
    Config,
}

/// Why a server certificate was rejected, so callers and tests need not parse messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertProblem {
    /// The chain does not lead to a trusted root (self-signed, private CA without `--ca-file`).
    UnknownIssuer,
    /// The current time is after `notAfter`.
    Expired,
    /// The current time is before `notBefore`.
    NotYetValid,
    /// The certificate does not name the host we connected to.
    WrongName,
    /// `--tls-fingerprint` was given and the leaf certificate does not match it.
    FingerprintMismatch,
    /// Anything else rustls reports about the certificate (bad encoding, revoked, bad signature).
    Other,
}

/// An error from connecting, TLS, or reading and writing the connection.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The host name could not be resolved.
    #[error("cannot resolve {target}: {source}")]
    Resolve {
        /// `host:port` as the user gave it.
        target: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The host name resolved to no address at all.
    #[error("{target} resolved to no address")]
    NoAddress {
        /// `host:port` as the user gave it.
        target: String,
    },
    /// Every resolved address failed; `source` is the error of the last one tried.
    #[error("cannot connect to {target} ({tried} address(es) tried): {source}")]
    Connect {
        /// `host:port` as the user gave it.
        target: String,
        /// How many resolved addresses were tried.
        tried: usize,
        /// The error of the last address tried (refused, timed out, unreachable).
        source: io::Error,
    },
    /// No byte moved within `--timeout`.
    #[error("timed out during {during}")]
    Timeout {
        /// What was being waited for, e.g. "the greeting" or "TLS handshake".
        during: String,
    },
    /// The server closed the connection.
    #[error("connection closed by the server during {during}")]
    Closed {
        /// What was being done when the connection ended.
        during: String,
    },
    /// Any other socket error.
    #[error("I/O error during {during}: {source}")]
    Io {
        /// What was being done.
        during: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The server certificate was rejected by the configured policy.
    #[error("certificate verification failed: {reason}{}", problem_hint(*.problem))]
    Certificate {
        /// The kind of rejection.
        problem: CertProblem,
        /// rustls's (or the fingerprint check's) explanation.
        reason: String,
    },
    /// A TLS failure that is not about the certificate (alert, no common version, bad record).
    #[error("TLS error during {during}: {source}")]
    Tls {
        /// What was being done.
        during: String,
        /// rustls's error.
        source: rustls::Error,
    },
    /// `--ca-file` is missing, unreadable, not PEM, or holds no usable certificate.
    #[error("cannot use CA file {}: {reason}", .path.display())]
    CaFile {
        /// The file named by `--ca-file`.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `--tls-fingerprint` is not 32 bytes of hexadecimal.
    #[error("invalid --tls-fingerprint value: {reason}")]
    Fingerprint {
        /// What is wrong with it.
        reason: String,
    },
    /// The host cannot be used as a TLS server name.
    #[error("{host:?} cannot be used as a TLS server name: {reason}")]
    ServerName {
        /// The host as given.
        host: String,
        /// rustls's reason.
        reason: String,
    },
    /// Bytes from the server were already waiting when the TLS handshake was about to start:
    /// a STARTTLS command-injection attempt (CVE-2011-0411 class), never handed to TLS.
    #[error("protocol error: data sent after 220 to STARTTLS")]
    InjectedData,
    /// STARTTLS was asked for on a stream that already runs TLS.
    #[error("protocol error: STARTTLS on a connection that already uses TLS")]
    AlreadyTls,
}

fn problem_hint(problem: CertProblem) -> &'static str {
    match problem {
        CertProblem::FingerprintMismatch => "",
        _ => ", use --ca-file or --tls-fingerprint",
    }
}

impl TransportError {
    /// The server answered the ClientHello with something that is not a TLS record: an SMTP
    /// server greeting in plaintext (`220 ...`, whose first octet is no TLS content type) on a
    /// port where implicit TLS was asked for. rustls reports it at once, so no timeout runs.
    pub fn is_plaintext_reply_to_tls(&self) -> bool {
        matches!(
            self,
            Self::Tls {
                source: rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
                ..
            }
        )
    }

    /// The exit-status class (cli.md): the integrator maps it to 75, 76 or 78.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Resolve { .. }
            | Self::NoAddress { .. }
            | Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::Closed { .. }
            | Self::Io { .. } => ErrorClass::Temporary,
            Self::Tls { .. } | Self::InjectedData | Self::AlreadyTls => ErrorClass::Protocol,
            Self::Certificate { .. } => ErrorClass::Tls,
            Self::CaFile { .. } | Self::Fingerprint { .. } | Self::ServerName { .. } => {
                ErrorClass::Config
            }
        }
    }

    /// Classifies an error from `Stream`'s `Read`/`Write` (or a TLS handshake): a socket
    /// timeout becomes `Timeout`, a reset or early end `Closed`, a rustls error `Certificate`
    /// or `Tls`. `during` names what was being waited for ("reply to RCPT TO").
    pub fn from_io(during: impl Into<String>, err: io::Error) -> Self {
        let during = during.into();
        match err.kind() {
            // SO_RCVTIMEO/SO_SNDTIMEO expiry is EAGAIN (WouldBlock) on Unix, TimedOut on Windows.
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Self::Timeout { during },
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Self::Closed { during },
            io::ErrorKind::InvalidData => {
                match err
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    Some(tls) => Self::from_tls(during, tls.clone()),
                    None => Self::Io {
                        during,
                        source: err,
                    },
                }
            }
            _ => Self::Io {
                during,
                source: err,
            },
        }
    }

    /// The end of the stream (a read returned 0 bytes) while `during`.
    pub fn closed(during: impl Into<String>) -> Self {
        Self::Closed {
            during: during.into(),
        }
    }

    /// Splits certificate rejections (configuration, 78) from other TLS failures (76).
    pub(crate) fn from_tls(during: String, err: rustls::Error) -> Self {
        use rustls::CertificateError as C;
        let rustls::Error::InvalidCertificate(cert) = &err else {
            return Self::Tls {
                during,
                source: err,
            };
        };
        let problem = match cert {
            C::UnknownIssuer => CertProblem::UnknownIssuer,
            C::Expired | C::ExpiredContext { .. } => CertProblem::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => CertProblem::NotYetValid,
            C::NotValidForName | C::NotValidForNameContext { .. } => CertProblem::WrongName,
            C::Other(other)
                if other
                    .0
                    .downcast_ref::<super::tls::FingerprintMismatch>()
                    .is_some() =>
            {
                CertProblem::FingerprintMismatch
            }
            _ => CertProblem::Other,
        };
        let reason = match (problem, cert) {
            (CertProblem::UnknownIssuer, _) => {
                "unknown issuer: the certificate chain does not lead to a trusted root".to_owned()
            }
            (CertProblem::FingerprintMismatch, C::Other(other)) => other.0.to_string(),
            _ => cert.to_string(),
        };
        Self::Certificate { problem, reason }
    }
}
