//! The modes of cli.md "Modes", as data: which one a command line chooses and the flags each
//! cannot use, so refusing those flags (exit 64, never silently ignored) and dispatching are
//! one `match` each. Later modes (merge, flush, sendmail, OAuth2 login, classroom) add a
//! variant and their row here.
use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The default: take the test, mail the results.
    Quiz,
    /// `--body`, `--body-file`, `--html-file`, `--markdown-file`, `--attach` or `--message`.
    Send,
    /// `--probe`.
    Probe,
    /// `--roster` with `--quiz`.
    Grade,
    /// `--dkim-dns-record`.
    DnsRecord,
    /// `--generate-man`.
    Man,
    /// `--generate-completions SHELL`.
    Completions(clap_complete::Shell),
    /// `--flush`: send what the outbox holds.
    Flush,
    /// The sendmail command line (`sendmail`, or `--sendmail` first), translated by
    /// `app::sendmail` into send mode's `--message -`.
    Sendmail,
    /// `--provider list`: prints the presets.
    ProviderList,
}

/// The flags (clap ids) a mode cannot use.
enum Refused {
    These(&'static [&'static str]),
    AllBut(&'static [&'static str]),
}

impl Mode {
    pub fn of(cli: &Cli) -> Mode {
        if cli.provider.as_deref() == Some(crate::provider::LIST) {
            Mode::ProviderList
        } else if cli.generate_man {
            Mode::Man
        } else if let Some(shell) = cli.generate_completions {
            Mode::Completions(shell)
        } else if cli.dkim_dns_record {
            Mode::DnsRecord
        } else if cli.flush {
            Mode::Flush
        } else if cli.sendmail {
            Mode::Sendmail
        } else if cli.probe {
            Mode::Probe
        } else if cli.roster.is_some() {
            Mode::Grade
        } else if cli.is_send_mode() {
            Mode::Send
        } else {
            Mode::Quiz
        }
    }

    /// How the error names the mode.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Quiz => {
                "quiz mode (no --body, --body-file, --html-file, --markdown-file, --attach or \
                 --message)"
            }
            Mode::Send => "send mode",
            Mode::Probe => "--probe",
            Mode::Grade => "grade mode (--roster)",
            Mode::DnsRecord => "--dkim-dns-record",
            Mode::Man => "--generate-man",
            Mode::Completions(_) => "--generate-completions",
            Mode::Flush => "--flush",
            Mode::Sendmail => "sendmail mode",
            Mode::ProviderList => "--provider list",
        }
    }

    fn refused(self) -> Refused {
        match self {
            Mode::Quiz => Refused::These(&["inline"]),
            Mode::Send => Refused::These(&["quiz", "answers", "name"]),
            // One message per student: --save would keep only one of them. Each student's
            // results start a conversation of their own, so no one Message-ID can be what
            // they all reply to (--reply-to and --priority do apply to every message).
            Mode::Grade => Refused::These(&[
                "cc",
                "bcc",
                "save",
                "markdown_file",
                "in_reply_to",
                "references",
            ]),
            Mode::Probe => Refused::These(&[
                "to",
                "cc",
                "bcc",
                "envelope_from",
                "subject",
                "headers",
                "html_file",
                "markdown_file",
                "attach",
                "inline",
                "reply_to",
                "in_reply_to",
                "references",
                "priority",
                "quiz",
                "answers",
                "name",
                "dry_run",
                "save",
                "outbox",
                "dkim_key",
                "dkim_selector",
                "dkim_domain",
                "dsn_notify",
                "dsn_ret",
                "envid",
            ]),
            // A kept message is sent as it was built: its content, its addressing and its
            // signature are fixed; only the server settings and the outbox apply.
            Mode::Flush => Refused::These(&[
                "to",
                "cc",
                "bcc",
                "from",
                "envelope_from",
                "subject",
                "headers",
                "body",
                "body_file",
                "html_file",
                "attach",
                "inline",
                "message",
                "read_recipients",
                "quiz",
                "answers",
                "name",
                "yes",
                "roster",
                "probe",
                "dry_run",
                "save",
                "dkim_key",
                "dkim_selector",
                "dkim_domain",
                "dkim_key_insecure",
            ]),
            // The message comes whole on standard input: no content or quiz flags.
            Mode::Sendmail => Refused::These(&[
                "cc",
                "bcc",
                "subject",
                "headers",
                "body",
                "body_file",
                "html_file",
                "attach",
                "inline",
                "quiz",
                "answers",
                "name",
                "roster",
                "probe",
                "dry_run",
                "save",
            ]),
            // It only prints a record: the key, its names and the config are all it reads.
            Mode::DnsRecord => Refused::AllBut(&[
                "dkim_dns_record",
                "dkim_key",
                "dkim_selector",
                "dkim_domain",
                "dkim_key_insecure",
                "from",
                "config",
                "account",
                "quiet",
                "verbose",
            ]),
            // They print text derived from the flags' definitions: no flag's value changes it.
            Mode::Man => Refused::AllBut(&["generate_man"]),
            Mode::Completions(_) => Refused::AllBut(&["generate_completions"]),
            // It only prints the table.
            Mode::ProviderList => Refused::AllBut(&["provider", "config", "quiet", "verbose"]),
        }
    }

    /// Refuses the flags this mode cannot use, when given on the command line (the
    /// environment and the config file hold defaults for every mode).
    pub fn check_flags(self, cli: &Cli, matches: &clap::ArgMatches) -> Result<(), Error> {
        let refused = |id: &str| match self.refused() {
            Refused::These(ids) => ids.contains(&id),
            Refused::AllBut(ids) => !ids.contains(&id),
        };
        refuse_given(matches, self.name(), &refused)?;
        // --insecure verifies nothing: a pin or a CA given with it would not be checked, which
        // the user plainly expects. (--ca-file with --tls none is let through, as curl and msmtp
        // do, so a wrapper can pass its CA whatever the mode; so is --tls-fingerprint with
        // --ca-file: the pin, the stricter, is checked.)
        if cli.insecure {
            refuse_given(matches, "--insecure", &|id| {
                matches!(id, "tls_fingerprint" | "ca_file")
            })?;
        }
        Ok(())
    }
}

/// Refuses the flags (clap ids) for which `refused` holds that were given on the command line.
fn refuse_given(
    matches: &clap::ArgMatches,
    mode: &str,
    refused: &dyn Fn(&str) -> bool,
) -> Result<(), Error> {
    let command = Cli::command();
    let given: Vec<String> = command
        .get_arguments()
        .filter(|a| refused(a.get_id().as_str()))
        .filter(|a| {
            matches.value_source(a.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine)
        })
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} cannot be used with {mode}: it would be ignored; leave it out",
        given.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;

    fn check(args: &[&str]) -> Result<Mode, Error> {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        let mode = Mode::of(&cli);
        mode.check_flags(&cli, &matches).map(|()| mode)
    }

    #[test]
    fn each_mode_is_chosen_and_refuses_what_it_would_ignore() {
        assert_eq!(check(&["q"]).unwrap(), Mode::Quiz);
        assert_eq!(check(&["q", "--body", "x"]).unwrap(), Mode::Send);
        assert_eq!(
            check(&["q", "--markdown-file", "m.md"]).unwrap(),
            Mode::Send
        );
        assert_eq!(check(&["q", "--attach", "*.pdf"]).unwrap(), Mode::Send);
        for flags in [
            &["q", "--reply-to", "a@b.test", "--priority", "low"][..],
            &["q", "--in-reply-to", "<a@b>", "--references", "<a@b>"],
        ] {
            assert_eq!(check(flags).unwrap(), Mode::Quiz, "{flags:?}");
        }
        assert_eq!(
            check(&[
                "q",
                "--roster",
                "r",
                "--quiz",
                "q",
                "--reply-to",
                "t@b.test",
                "--priority",
                "high"
            ])
            .unwrap(),
            Mode::Grade
        );
        assert_eq!(check(&["q", "--probe"]).unwrap(), Mode::Probe);
        assert_eq!(
            check(&["q", "--roster", "r.csv", "--quiz", "q.toml"]).unwrap(),
            Mode::Grade
        );
        assert_eq!(check(&["q", "--dkim-dns-record"]).unwrap(), Mode::DnsRecord);
        assert_eq!(check(&["q", "--generate-man"]).unwrap(), Mode::Man);
        assert_eq!(
            check(&["q", "--generate-completions", "zsh"]).unwrap(),
            Mode::Completions(clap_complete::Shell::Zsh)
        );
        assert_eq!(check(&["q", "--flush", "--due"]).unwrap(), Mode::Flush);
        assert_eq!(
            check(&["q", "--provider", "list"]).unwrap(),
            Mode::ProviderList
        );
        assert_eq!(check(&["q", "--provider", "gmail"]).unwrap(), Mode::Quiz);
        let refused = [
            (
                &["q", "--inline", "a.png"][..],
                "--inline cannot be used with quiz mode",
            ),
            (
                &["q", "--body", "x", "--name", "A"][..],
                "--name cannot be used with send mode",
            ),
            (
                &["q", "--probe", "--dry-run"][..],
                "--dry-run cannot be used with --probe",
            ),
            (
                &["q", "--roster", "r", "--quiz", "q", "--save", "f"][..],
                "--save cannot be used with grade mode",
            ),
            (
                &[
                    "q",
                    "--roster",
                    "r",
                    "--quiz",
                    "q",
                    "--in-reply-to",
                    "<a@b>",
                ][..],
                "--in-reply-to cannot be used with grade mode",
            ),
            (
                &[
                    "q",
                    "--roster",
                    "r",
                    "--quiz",
                    "q",
                    "--markdown-file",
                    "m.md",
                ][..],
                "--markdown-file cannot be used with grade mode",
            ),
            (
                &["q", "--probe", "--priority", "high"][..],
                "--priority cannot be used with --probe",
            ),
            (
                &["q", "--dkim-dns-record", "--to", "a@x.test"][..],
                "--target-email cannot be used with --dkim-dns-record",
            ),
            (
                &["q", "--generate-man", "--generate-completions", "bash"][..],
                "--generate-completions cannot be used with --generate-man",
            ),
            (
                &["q", "--generate-completions", "fish", "-q", "--body", "x"][..],
                "--body, --quiet cannot be used with --generate-completions",
            ),
            (
                &["q", "--flush", "--to", "a@x.test"][..],
                "--target-email cannot be used with --flush",
            ),
            (
                &["q", "--provider", "list", "--body", "x"][..],
                "--body cannot be used with --provider list",
            ),
            (
                &["q", "--insecure", "--ca-file", "c.pem"][..],
                "--ca-file cannot be used with --insecure",
            ),
        ];
        for (args, says) in refused {
            let e = check(args).unwrap_err();
            assert_eq!(e.exit_code(), 64);
            assert!(e.to_string().starts_with(says), "{args:?}: {e}");
        }
    }
}
