//! Runs one invocation: parses the command line, picks the [`Mode`], checks every input before
//! anything touches the network, and hands the mode's result to the report. Each mode has its
//! own file; composition (`compose`) and delivery (`delivery`) are what they share.
mod compose;
mod delivery;
mod grade;
mod mode;
mod probe;
mod quiz_mode;
mod send;
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
    let matches = match Cli::command().try_get_matches() {
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
    let (mut report, code) = match run(&cli, &matches, ui, &mut hints) {
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

/// Everything a mode needs, resolved once.
pub struct Ctx<'a> {
    pub cli: &'a Cli,
    pub ui: Ui,
    pub settings: Settings,
    pub signer: Option<Signer>,
    pub now: SystemTime,
}

fn run(
    cli: &Cli,
    matches: &clap::ArgMatches,
    ui: Ui,
    hints: &mut error::hint::Context,
) -> Result<(Report, i32), Error> {
    let mode = Mode::of(cli);
    mode.check_flags(cli, matches)?;
    if mode == Mode::ProviderList {
        print!("{}", crate::provider::table());
        return Ok((Report::default(), 0));
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
        Mode::Grade => grade::grade(&ctx),
        Mode::Send => send::send(&mut ctx),
        Mode::Quiz => quiz_mode::quiz(&ctx),
        Mode::ProviderList => Err(Error::Internal("--provider list reached dispatch".into())),
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
