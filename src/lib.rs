//! quizmail: a command-line SMTP submission client that also runs multiple-choice tests and
//! mails the results.
//!
//! The protocol code is sans-I/O (`smtp`, `message`, `dkim`); `transport` and `driver` are the
//! only places that touch sockets and clocks. See docs/ARCHITECTURE.md.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod dkim;
pub mod driver;
pub mod error;
pub mod message;
pub mod quiz;
pub mod report;
pub mod smtp;
pub mod transport;
