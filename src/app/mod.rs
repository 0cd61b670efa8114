//! Runs one invocation: parses the command line, picks the [`Mode`], checks every input before
//! anything touches the network, and hands the mode's result to the report. Each mode has its
//! own file; composition (`compose`) and delivery (`delivery`) are what they share.
mod compose;
mod delivery;
mod flush;
mod generate;
mod grade;
mod mode;
mod probe;
mod queue;
mod quiz_mode;
mod send;
mod sendmail;
mod ui;

use std::time::{Instant, SystemTime};

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::config::{FileConfig, Settings};
use crate::dkim::Signer;
use crate::error::{self, Class, Error};
use crate::report::{millis, ErrorReport, Report};
pub use mode::Mode;
pub use ui::Ui;

/// Entry point of the binary; returns the exit status.
pub fn main() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let sendmail = sendmail::invoked(&args);
    let (argv, input) = if sendmail {
        match sendmail::translate(&args, SystemTime::now()) {
            Ok(done) => done,
            Err(e) => {
                error::print(&e.report(&error::hint::Context::default()));
                return e.exit_code();
            }
        }
    } else {
        (args, None)
    };
    let matches = match Cli::command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => Class::Usage.exit_code(),
            };
            let _ = e.print();
            if code != 0 {
                usage_json(&e.to_string(), code);
            }
            return code;
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Class::Usage.exit_code();
        }
    };
    let ui = Ui {
        json: cli.json,
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    let started = Instant::now();
    // What the hints need to know of the run; filled once the settings are resolved.
    let mut hints = error::hint::Context::default();
    let (mut report, code) = match run(&cli, &matches, ui, input, &mut hints) {
        Ok(done) => done,
        Err(e) => {
            let error = e.report(&hints);
            error::print(&error);
            let code = error.exit_code;
            let report = Report {
                error: Some(error),
                ..Report::default()
            };
            (report, code)
        }
    };
    report.elapsed_ms = millis(started.elapsed());
    // cli.md "sendmail mode": kept in the outbox for later is success, as sendmail queues.
    let code = if sendmail && code == Class::Temporary.exit_code() && waits(&report) {
        0
    } else {
        code
    };
    if cli.json {
        println!("{}", report.to_json());
    }
    code
}

/// cli.md: with `--json`, stdout is one JSON object, also when the command line itself is
/// wrong (kind "usage"); clap has not parsed `--json` then, so the raw arguments are looked at.
fn usage_json(message: &str, code: i32) {
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    if !json {
        return;
    }
    let first = message.lines().next().unwrap_or_default();
    let report = Report {
        error: Some(ErrorReport {
            kind: Class::Usage.kind(),
            message: first.strip_prefix("error: ").unwrap_or(first).to_owned(),
            exit_code: code,
            hint: None,
        }),
        ..Report::default()
    };
    println!("{}", report.to_json());
}

/// The message waits in the outbox itself (not in failed/ or unconfirmed/).
fn waits(report: &Report) -> bool {
    report.outbox_path.as_deref().is_some_and(|p| {
        let p = std::path::Path::new(p);
        !p.components()
            .any(|c| c.as_os_str() == "failed" || c.as_os_str() == "unconfirmed")
    })
}

/// Everything a mode needs, resolved once.
pub struct Ctx<'a> {
    pub cli: &'a Cli,
    pub ui: Ui,
    pub settings: Settings,
    pub signer: Option<Signer>,
    pub now: SystemTime,
    /// The message for `--message -` when it was read (and completed) before the mode ran:
    /// sendmail mode.
    pub input: Option<Vec<u8>>,
}

fn run(
    cli: &Cli,
    matches: &clap::ArgMatches,
    ui: Ui,
    input: Option<Vec<u8>>,
    hints: &mut error::hint::Context,
) -> Result<(Report, i32), Error> {
    let mode = Mode::of(cli);
    if mode == Mode::Sendmail && input.is_none() {
        return Err(Error::Usage(
            "--sendmail must be the first argument (the sendmail command line follows it)".into(),
        ));
    }
    mode.check_flags(cli, matches)?;
    // Before the config file is read: a broken config must not stop `--generate-man`.
    match mode {
        Mode::ProviderList => {
            print!("{}", crate::provider::table());
            return Ok((Report::default(), 0));
        }
        Mode::Man => return generate::man().map(|()| (Report::default(), 0)),
        Mode::Completions(shell) => {
            return generate::completions(shell).map(|()| (Report::default(), 0))
        }
        _ => {}
    }
    let file = FileConfig::load(cli.config.as_deref())?;
    let settings = Settings::resolve(cli, matches, file)?;
    *hints = error::hint::Context::of(settings.server.as_ref());
    if settings.server.as_ref().is_some_and(|s| s.insecure) {
        Ui::warn_always(
            "--insecure: the server's certificate is NOT verified; anyone on the path can read \
             and change this session",
        );
    }
    let signer = load_signer(cli, &settings)?;
    let mut ctx = Ctx {
        cli,
        ui,
        settings,
        signer,
        now: SystemTime::now(),
        input,
    };
    match mode {
        Mode::DnsRecord => {
            let signer = ctx.signer.as_ref().ok_or_else(|| {
                Error::Usage("--dkim-dns-record needs --dkim-key and --dkim-selector".into())
            })?;
            println!("{}", signer.dns_record());
            Ok((Report::default(), 0))
        }
        Mode::Probe => probe::probe(&ctx),
        Mode::Flush => flush::flush(&ctx),
        Mode::Grade => grade::grade(&ctx),
        Mode::Send | Mode::Sendmail => send::send(&mut ctx),
        Mode::Quiz => quiz_mode::quiz(&ctx),
        Mode::Man | Mode::Completions(_) | Mode::ProviderList => Err(Error::Internal(format!(
            "{} is handled before the configuration is read",
            mode.name()
        ))),
    }
}

impl Ctx<'_> {
    /// What the hints of cli.md "Diagnostics" need to know of this run.
    pub fn hints(&self) -> error::hint::Context {
        error::hint::Context::of(self.settings.server.as_ref())
    }
}

/// The DKIM signer, loaded before anything is sent so a bad key stops the run early.
fn load_signer(cli: &Cli, settings: &Settings) -> Result<Option<Signer>, Error> {
    let (key, selector) = match (&settings.dkim_key, &settings.dkim_selector) {
        (None, None) => {
            if settings.dkim_domain.is_some() {
                return Err(Error::Usage(
                    "--dkim-domain needs --dkim-key and --dkim-selector".into(),
                ));
            }
            return Ok(None);
        }
        (Some(k), Some(s)) => (k, s),
        _ => {
            return Err(Error::Usage(
                "DKIM signing needs both --dkim-key PEM and --dkim-selector SEL".into(),
            ))
        }
    };
    let domain = match &settings.dkim_domain {
        Some(d) => d.clone(),
        None => compose::sender(settings)?.domain.clone(),
    };
    Ok(Some(Signer::load(
        key,
        selector,
        &domain,
        cli.dkim_key_insecure,
    )?))
}
