//! The command line (README.md and `quizmail --help` document it), as clap derives it.
//!
//! Flags win over the environment (clap's `env`), the environment over the config file
//! (`config::Settings::resolve`). Passwords are deliberately not a flag: argv is visible to every
//! user of the machine through `ps`.
use std::path::PathBuf;

use clap::{Arg, ArgAction, Parser, ValueEnum};

/// The largest `--timeout`: a day is more than any SMTP wait needs (RFC 5321 §4.5.3.2 asks
/// for 10 minutes at most), and a deadline of `now + timeout` must not overflow.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// How the connection is protected (cli.md "Server"): the session's own type, named on the
/// command line and in the config file by [`TlsMode::as_str`].
pub use crate::smtp::TlsMode;
use crate::smtp::{Envid, Notify, Ret};

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

/// `--dsn-notify` (RFC 3461 §4.1): `never` alone, or any of success, failure, delay.
fn parse_notify(s: &str) -> Result<Notify, String> {
    Notify::parse(s)
}

/// `--dsn-ret` (RFC 3461 §4.3).
fn parse_ret(s: &str) -> Result<Ret, String> {
    match s.to_ascii_lowercase().as_str() {
        "full" => Ok(Ret::Full),
        "hdrs" => Ok(Ret::Hdrs),
        _ => Err(format!("{s:?} is not full or hdrs")),
    }
}

/// `--envid`: checked (printable ASCII, at most 100 characters of xtext) as the command line
/// is read, so a bad value is a usage error before anything else happens.
fn parse_envid(s: &str) -> Result<Envid, String> {
    Envid::new(s).map_err(|e| e.reason.to_string())
}

/// The `--help` headings (cli.md "Flags"). Each section of [`Cli`] names its heading on its
/// first field; [`inherit_help_headings`] gives it to the fields that follow.
const HEADINGS: &[&str] = &[
    "Content",
    "Quiz",
    SERVER_HEADING,
    AUTH_HEADING,
    "Signing",
    "Output",
];
const SERVER_HEADING: &str = "Server";
/// The login flags sit among the server flags in [`Cli`], under a heading of their own.
const AUTH_HEADING: &str = "Authentication";

/// clap's derive can switch `next_help_heading` only at a flattened field, so a field without
/// a heading takes the one of the field before it, as it would under `next_help_heading`.
fn inherit_help_headings() -> impl FnMut(Arg) -> Arg {
    let mut current: Option<&'static str> = None;
    move |arg| match arg.get_help_heading() {
        Some(heading) => {
            current = HEADINGS.iter().copied().find(|h| *h == heading);
            arg
        }
        None => arg.help_heading(current),
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
                  76 protocol, 77 auth, 78 config.",
    mut_args = inherit_help_headings()
)]
pub struct Cli {
    // --- Addressing and content -------------------------------------------------------------
    #[arg(help_heading = "Content")]
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
    /// Markdown body (FILE or -): the source as text/plain, its rendering as text/html
    #[arg(long = "markdown-file", value_name = "FILE|-",
          conflicts_with_all = ["body", "body_file", "html_file", "message"])]
    pub markdown_file: Option<PathBuf>,
    /// Attach a file, or every match of a quoted glob ('out/*.pdf'); repeatable
    #[arg(long, value_name = "FILE", action = ArgAction::Append, conflicts_with = "message")]
    pub attach: Vec<PathBuf>,
    /// Inline image the HTML refers to as cid:FILENAME; repeatable
    #[arg(long, value_name = "FILE", action = ArgAction::Append, conflicts_with = "message")]
    pub inline: Vec<PathBuf>,
    /// Where replies go (Reply-To)
    #[arg(long = "reply-to", value_name = "ADDR", conflicts_with = "message")]
    pub reply_to: Option<String>,
    /// The Message-ID this answers (In-Reply-To; also References unless --references)
    #[arg(long = "in-reply-to", value_name = "MSGID", conflicts_with = "message")]
    pub in_reply_to: Option<String>,
    /// The thread's Message-IDs, oldest first, separated by spaces (References)
    #[arg(long, value_name = "\"MSGID ...\"", conflicts_with = "message")]
    pub references: Option<String>,
    /// high or low: X-Priority and Importance; normal adds neither
    #[arg(long, value_enum, value_name = "LEVEL", conflicts_with = "message")]
    pub priority: Option<PriorityArg>,
    /// Send a complete RFC 5322 message as it is (FILE or -)
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["subject", "headers", "roster", "quiz"])]
    pub message: Option<PathBuf>,
    /// Take recipients from the message's To/Cc/Bcc and strip Bcc
    #[arg(short = 't', long = "read-recipients", requires = "message")]
    pub read_recipients: bool,
    /// When to send delivery status notifications: never, or any of success,failure,delay
    #[arg(long = "dsn-notify", value_name = "never|success,failure,delay", value_parser = parse_notify)]
    pub dsn_notify: Option<Notify>,
    /// What a failure notification returns: full message or hdrs only
    #[arg(long = "dsn-ret", value_name = "full|hdrs", value_parser = parse_ret)]
    pub dsn_ret: Option<Ret>,
    /// Envelope identifier that notifications carry back (printable ASCII, RFC 3461 §4.4)
    #[arg(long, value_name = "TEXT", value_parser = parse_envid)]
    pub envid: Option<Envid>,

    // --- Quiz --------------------------------------------------------------------------------
    #[arg(help_heading = "Quiz")]
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
    #[arg(help_heading = SERVER_HEADING)]
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
    #[arg(help_heading = AUTH_HEADING)]
    #[arg(long, env = "SMTP_USER", value_name = "NAME")]
    pub user: Option<String>,
    /// Read the password from the first line of FILE
    #[arg(help_heading = AUTH_HEADING)]
    #[arg(
        long = "password-file",
        value_name = "FILE",
        conflicts_with = "password_command"
    )]
    pub password_file: Option<PathBuf>,
    /// Run CMD (with sh -c) and use the first line of its output as the password
    #[arg(help_heading = AUTH_HEADING)]
    #[arg(long = "password-command", value_name = "CMD")]
    pub password_command: Option<String>,
    /// SASL mechanism: auto, plain, login, cram-md5, xoauth2 or oauthbearer
    #[arg(help_heading = AUTH_HEADING)]
    #[arg(long, env = "SMTP_AUTH", value_enum, value_name = "MECH")]
    pub auth: Option<AuthArg>,
    /// Name to give in EHLO
    #[arg(help_heading = SERVER_HEADING)]
    #[arg(long, value_name = "NAME")]
    pub ehlo: Option<String>,
    /// Seconds allowed for connect and for every read and write (default 60)
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECS))]
    pub timeout: Option<u64>,
    /// Retries for connection failures and 4xx replies (default 2)
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// Use the config file's [accounts.NAME]; default: the account whose from matches --from
    #[arg(long, env = "SMTP_ACCOUNT", value_name = "NAME")]
    pub account: Option<String>,
    /// TOML config file; default $XDG_CONFIG_HOME/quizmail/config.toml
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Show what the server offers and send no mail
    #[arg(long, conflicts_with_all = ["message", "body", "body_file", "roster"])]
    pub probe: bool,

    // --- Signing -----------------------------------------------------------------------------
    #[arg(help_heading = "Signing")]
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
    #[arg(help_heading = "Output")]
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
    /// Print the man page (roff) and exit
    #[arg(long = "generate-man")]
    pub generate_man: bool,
    /// Print a completion script for SHELL and exit
    #[arg(long = "generate-completions", value_name = "SHELL")]
    pub generate_completions: Option<clap_complete::Shell>,

    // --- The outbox --------------------------------------------------------------------------
    /// Send every message waiting in the outbox now, oldest first (for cron: --flush --due)
    #[arg(long)]
    pub flush: bool,
    /// With --flush: only the messages whose next attempt is due (1, 5, 15, 60 min, hourly)
    #[arg(long, requires = "flush", conflicts_with = "list")]
    pub due: bool,
    /// With --flush: list the outbox (waiting, failed/, unconfirmed/) and send nothing
    #[arg(long, requires = "flush")]
    pub list: bool,
    /// With --flush: a waiting message older than this moves to failed/ (default 5d)
    #[arg(long = "max-age", value_name = "AGE", requires = "flush")]
    pub max_age: Option<String>,
    /// Take the sendmail command line that follows (must come first; also chosen when
    /// quizmail runs as `sendmail`)
    #[arg(long, hide = true)]
    pub sendmail: bool,
}

impl Cli {
    /// True when the user gave message content, which selects send mode.
    pub fn is_send_mode(&self) -> bool {
        self.body.is_some()
            || self.body_file.is_some()
            || self.html_file.is_some()
            || self.markdown_file.is_some()
            || self.message.is_some()
            || !self.attach.is_empty()
    }
}

/// `--priority`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PriorityArg {
    High,
    Normal,
    Low,
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
    fn markdown_file_is_a_body_source_that_excludes_the_others() {
        let cli = Cli::try_parse_from(["quizmail", "--markdown-file", "-"]).unwrap();
        assert!(cli.is_send_mode());
        for other in [
            &["--body", "x"][..],
            &["--body-file", "b.txt"],
            &["--html-file", "b.html"],
            &["--message", "m.eml"],
        ] {
            let mut args = vec!["quizmail", "--markdown-file", "n.md"];
            args.extend(other);
            let e = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{other:?}"
            );
        }
    }

    #[test]
    fn header_flags_cannot_go_with_a_prepared_message() {
        for flag in [
            &["--reply-to", "a@x.test"][..],
            &["--in-reply-to", "<a@x.test>"],
            &["--references", "<a@x.test>"],
            &["--priority", "high"],
        ] {
            let mut args = vec!["quizmail", "--message", "m.eml"];
            args.extend(flag);
            let e = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{flag:?}"
            );
        }
        let e = Cli::try_parse_from(["quizmail", "--priority", "urgent"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
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
