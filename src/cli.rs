//! The command line (README.md and `quizmail --help` document it), as clap derives it.
//!
//! Flags win over the environment (clap's `env`), the environment over the config file
//! (`config::Settings::resolve`). Passwords are deliberately not a flag: argv is visible to every
//! user of the machine through `ps`.
use std::path::PathBuf;

use clap::{ArgAction, Parser, ValueEnum};

/// The largest `--timeout`: a day is more than any SMTP wait needs (RFC 5321 §4.5.3.2 asks
/// for 10 minutes at most), and a deadline of `now + timeout` must not overflow.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// How the connection is protected (cli.md "Server"): the session's own type, named on the
/// command line and in the config file by [`TlsMode::as_str`].
pub use crate::smtp::TlsMode;

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Starttls => "starttls",
            TlsMode::Implicit => "implicit",
            TlsMode::None => "none",
        }
    }

    /// Whether a TLS configuration is needed.
    pub fn is_tls(self) -> bool {
        self != TlsMode::None
    }
}

impl ValueEnum for TlsMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[TlsMode::Starttls, TlsMode::Implicit, TlsMode::None]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            TlsMode::Starttls => {
                "STARTTLS on a plain connection, required: a server that does not offer it is an error"
            }
            TlsMode::Implicit => "TLS from the first byte (RFC 8314), port 465",
            TlsMode::None => "No TLS at all; credentials only with CRAM-MD5 unless a mechanism is named",
        };
        Some(clap::builder::PossibleValue::new(self.as_str()).help(help))
    }
}

impl<'de> serde::Deserialize<'de> for TlsMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TlsMode, D::Error> {
        let name = String::deserialize(d)?;
        TlsMode::value_variants()
            .iter()
            .copied()
            .find(|m| m.as_str() == name)
            .ok_or_else(|| {
                serde::de::Error::unknown_variant(&name, &["starttls", "implicit", "none"])
            })
    }
}

/// `--auth`: `auto` or one named SASL mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthArg {
    Auto,
    Plain,
    Login,
    #[value(name = "cram-md5")]
    CramMd5,
    /// OAuth2 bearer token, Google's and Microsoft's format; the password sources give the token
    Xoauth2,
    /// OAuth2 bearer token, RFC 7628; the password sources give the token
    Oauthbearer,
}

impl AuthArg {
    /// Whether the password sources supply an OAuth2 access token (msmtp's convention).
    pub fn takes_token(self) -> bool {
        matches!(self, AuthArg::Xoauth2 | AuthArg::Oauthbearer)
    }
}

#[derive(Parser, Debug, Default)]
#[command(
    name = "quizmail",
    version,
    about = "Take a multiple-choice test in the terminal and mail the results; or mail anything over SMTP.",
    after_help = "The password comes from SMTP_PASSWORD, --password-file, --password-command or a \
                  no-echo prompt, never from a flag.\nExit codes follow sysexits.h: 0 ok, 64 usage, \
                  65 data, 66 no input, 69 refused, 70 internal, 73 cannot write output, 75 try again, \
                  76 protocol, 77 auth, 78 config."
)]
pub struct Cli {
    // --- Addressing and content -------------------------------------------------------------
    /// Recipient; repeatable and comma-separated
    #[arg(long = "target-email", visible_alias = "to", value_name = "ADDR", action = ArgAction::Append)]
    pub to: Vec<String>,
    /// Carbon-copy recipient; repeatable and comma-separated
    #[arg(long, value_name = "ADDR", action = ArgAction::Append)]
    pub cc: Vec<String>,
    /// Blind-copy recipient: in the envelope only, never in a header
    #[arg(long, value_name = "ADDR", action = ArgAction::Append)]
    pub bcc: Vec<String>,
    /// Author, display name allowed: "Ada Lovelace <ada@example.com>"
    #[arg(long, env = "SMTP_FROM", value_name = "ADDR")]
    pub from: Option<String>,
    /// MAIL FROM / Return-Path; default: the From address
    #[arg(long = "envelope-from", value_name = "ADDR")]
    pub envelope_from: Option<String>,
    /// Subject line
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    /// Extra header "Name: value"; repeatable
    #[arg(long = "header", value_name = "NAME: VALUE", action = ArgAction::Append)]
    pub headers: Vec<String>,
    /// Plain-text body
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["body_file", "message"])]
    pub body: Option<String>,
    /// Plain-text body from a file, or - for standard input
    #[arg(long = "body-file", value_name = "FILE|-", conflicts_with = "message")]
    pub body_file: Option<PathBuf>,
    /// HTML body (with a text body: multipart/alternative)
    #[arg(long = "html-file", value_name = "FILE", conflicts_with = "message")]
    pub html_file: Option<PathBuf>,
    /// Attach a file; repeatable
    #[arg(long, value_name = "FILE", action = ArgAction::Append, conflicts_with = "message")]
    pub attach: Vec<PathBuf>,
    /// Inline image the HTML refers to as cid:FILENAME; repeatable
    #[arg(long, value_name = "FILE", action = ArgAction::Append, conflicts_with = "message")]
    pub inline: Vec<PathBuf>,
    /// Send a complete RFC 5322 message as it is (FILE or -)
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["subject", "headers", "roster", "quiz"])]
    pub message: Option<PathBuf>,
    /// Take recipients from the message's To/Cc/Bcc and strip Bcc
    #[arg(short = 't', long = "read-recipients", requires = "message")]
    pub read_recipients: bool,

    // --- Quiz --------------------------------------------------------------------------------
    /// Quiz file (TOML); default: the built-in sample
    #[arg(long, value_name = "FILE")]
    pub quiz: Option<PathBuf>,
    /// Answers as letters: a,c,b,...
    #[arg(long, value_name = "LIST")]
    pub answers: Option<String>,
    /// The person taking the test
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Send without asking
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Grade a class: CSV with header name,email,answers (answers as a;c;b)
    #[arg(long, value_name = "FILE", requires = "quiz",
          conflicts_with_all = ["answers", "name", "subject", "body", "body_file", "html_file", "attach", "inline"])]
    pub roster: Option<PathBuf>,

    // --- Server ------------------------------------------------------------------------------
    /// SMTP server HOST[:PORT]
    #[arg(long, env = "SMTP_SERVER", value_name = "HOST[:PORT]")]
    pub server: Option<String>,
    /// Preset server, port, TLS mode and OAuth2 endpoints: gmail, outlook, office365, yahoo,
    /// aol, icloud, fastmail, mailtrap; `list` prints them
    #[arg(long, env = "SMTP_PROVIDER", value_name = "NAME", value_parser = crate::provider::parse_arg)]
    pub provider: Option<String>,
    /// Port; default 465 with --tls implicit, else 587
    #[arg(long, env = "SMTP_PORT", value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// starttls (required, never opportunistic), implicit or none
    #[arg(long, env = "SMTP_TLS", value_enum, value_name = "MODE")]
    pub tls: Option<TlsMode>,
    /// Trust these PEM roots in place of the built-in web roots
    #[arg(long = "ca-file", env = "SMTP_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Accept exactly the leaf certificate with this SHA-256 fingerprint
    #[arg(long = "tls-fingerprint", value_name = "SHA256HEX")]
    pub tls_fingerprint: Option<String>,
    /// Skip certificate verification (warned about on every run)
    #[arg(long)]
    pub insecure: bool,
    /// Login name
    #[arg(long, env = "SMTP_USER", value_name = "NAME")]
    pub user: Option<String>,
    /// Read the password from the first line of FILE
    #[arg(
        long = "password-file",
        value_name = "FILE",
        conflicts_with = "password_command"
    )]
    pub password_file: Option<PathBuf>,
    /// Run CMD (with sh -c) and use the first line of its output as the password
    #[arg(long = "password-command", value_name = "CMD")]
    pub password_command: Option<String>,
    /// SASL mechanism: auto, plain, login, cram-md5, xoauth2 or oauthbearer
    #[arg(long, env = "SMTP_AUTH", value_enum, value_name = "MECH")]
    pub auth: Option<AuthArg>,
    /// Name to give in EHLO
    #[arg(long, value_name = "NAME")]
    pub ehlo: Option<String>,
    /// Seconds allowed for connect and for every read and write (default 60)
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub timeout: Option<u64>,
    /// Retries for connection failures and 4xx replies (default 2)
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// TOML config file; default $XDG_CONFIG_HOME/quizmail/config.toml
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show what the server offers and send no mail
    #[arg(long, conflicts_with_all = ["message", "body", "body_file", "roster"])]
    pub probe: bool,

    // --- Signing -----------------------------------------------------------------------------
    /// DKIM private key (PEM: RSA 2048-4096 or Ed25519)
    #[arg(long = "dkim-key", value_name = "PEM")]
    pub dkim_key: Option<PathBuf>,
    /// DKIM selector
    #[arg(long = "dkim-selector", value_name = "SEL")]
    pub dkim_selector: Option<String>,
    /// DKIM signing domain; default: the From domain
    #[arg(long = "dkim-domain", value_name = "DOMAIN")]
    pub dkim_domain: Option<String>,
    /// Accept a DKIM key file that group or others can read
    #[arg(long = "dkim-key-insecure")]
    pub dkim_key_insecure: bool,
    /// Print the DNS TXT record to publish for --dkim-key/--dkim-selector and exit
    #[arg(long = "dkim-dns-record")]
    pub dkim_dns_record: bool,

    // --- Output ------------------------------------------------------------------------------
    /// Print the message that would be sent; connect to nothing
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Also write the message as sent to FILE
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Where messages go when no server is configured (default outbox)
    #[arg(long, value_name = "DIR")]
    pub outbox: Option<PathBuf>,
    /// Show the SMTP dialogue on stderr (credentials redacted)
    #[arg(short, long)]
    pub verbose: bool,
    /// One JSON object on stdout; human text on stderr
    #[arg(long)]
    pub json: bool,
    /// Errors only
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl Cli {
    /// True when the user gave message content, which selects send mode.
    pub fn is_send_mode(&self) -> bool {
        self.body.is_some()
            || self.body_file.is_some()
            || self.html_file.is_some()
            || self.message.is_some()
            || !self.attach.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn to_is_an_alias_and_repeatable() {
        let cli = Cli::try_parse_from([
            "quizmail",
            "--to",
            "a@x.test",
            "--target-email",
            "b@x.test, c@x.test",
        ])
        .unwrap();
        assert_eq!(cli.to, vec!["a@x.test", "b@x.test, c@x.test"]);
    }

    #[test]
    fn there_is_no_password_flag() {
        assert!(Cli::try_parse_from(["quizmail", "--password", "hunter2"]).is_err());
    }

    #[test]
    fn roster_needs_a_quiz() {
        assert!(Cli::try_parse_from(["quizmail", "--roster", "r.csv"]).is_err());
    }

    #[test]
    fn send_mode_is_chosen_by_content_flags() {
        let cli = Cli::try_parse_from(["quizmail", "--body", "hi"]).unwrap();
        assert!(cli.is_send_mode());
        let cli = Cli::try_parse_from(["quizmail", "--to", "a@x.test"]).unwrap();
        assert!(!cli.is_send_mode());
    }

    #[test]
    fn timeout_is_between_one_second_and_a_day() {
        for bad in ["0", "86401", "18446744073709551615"] {
            let e = Cli::try_parse_from(["quizmail", "--timeout", bad]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
        }
        let cli = Cli::try_parse_from(["quizmail", "--timeout", "86400"]).unwrap();
        assert_eq!(cli.timeout, Some(MAX_TIMEOUT_SECS));
    }

    #[test]
    fn port_zero_is_refused() {
        let e = Cli::try_parse_from(["quizmail", "--port", "0"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn tls_and_auth_values() {
        let cli =
            Cli::try_parse_from(["quizmail", "--tls", "implicit", "--auth", "cram-md5"]).unwrap();
        assert_eq!(cli.tls, Some(TlsMode::Implicit));
        assert_eq!(cli.auth, Some(AuthArg::CramMd5));
        for (name, arg) in [
            ("xoauth2", AuthArg::Xoauth2),
            ("oauthbearer", AuthArg::Oauthbearer),
        ] {
            let cli = Cli::try_parse_from(["quizmail", "--auth", name]).unwrap();
            assert_eq!(cli.auth, Some(arg));
            assert!(arg.takes_token());
        }
        assert!(!AuthArg::Plain.takes_token());
    }
}
