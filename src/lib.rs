//! quizmail: a command-line SMTP submission client that also runs multiple-choice tests and
//! mails the results.
//!
//! The SMTP protocol (`smtp`) is sans-I/O; `message` and `dkim` read only the files they are
//! given (attachments, the key). `transport` and `driver` are the only modules that touch
//! sockets or set deadlines; the time and randomness a message carries are read once in `app`
//! and injected. See docs/ARCHITECTURE.md.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod dkim;
pub mod driver;
pub mod error;
pub mod message;
pub mod provider;
pub mod quiz;
pub mod report;
pub mod smtp;
pub mod transport;
