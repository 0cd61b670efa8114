//! `--generate-man` and `--generate-completions SHELL` (cli.md "Output"): the man page and the
//! shell completion scripts, both derived from the one clap definition in `cli`, so they cannot
//! list a flag that does not exist or miss one that does.
use std::io::{self, Write};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

use crate::cli::Cli;
use crate::error::Error;

/// The man page's DESCRIPTION: what `--help` says in one line, told at the length a man page
/// reader expects.
const DESCRIPTION: &str = "\
quizmail runs a multiple-choice test in the terminal and mails the results (text, HTML and a \
CSV attachment) over SMTP. It also mails anything else: a body, an HTML page, attachments or a \
complete prepared message, from scripts and CI jobs.

The mode is chosen by the flags. Quiz mode (the default) runs the built-in sample or --quiz \
FILE and mails the results to every --target-email. Send mode (--body, --body-file, \
--html-file, --attach or --message) mails that content. Grade mode (--roster FILE with --quiz \
FILE) scores a class and mails each student their results and the teacher a summary. --probe \
shows what a server offers and sends nothing. --dkim-dns-record prints the DNS record for a \
DKIM key. --generate-man and --generate-completions print this page or a completion script. A \
flag that the chosen mode cannot use is refused (exit 64).

With no server configured, the message is written to the outbox (--outbox, default outbox/) \
and quizmail says it was NOT sent. STARTTLS is required, never opportunistic; certificates are \
verified; passwords never come from a flag. Settings come from flags, then the environment, \
then the config file.";

/// The EXIT STATUS section (sysexits.h, cli.md "Exit status").
const EXIT_CODES: &[(&str, &str)] = &[
    (
        "0",
        "Every recipient accepted, or the outbox file or dry run written.",
    ),
    ("64", "Bad command line."),
    (
        "65",
        "Bad data: an invalid address, CR or LF in a header value, a bad quiz or roster, a \
         message that needs SMTPUTF8 or 8BITMIME the server lacks.",
    ),
    (
        "66",
        "An input file missing or unreadable; empty standard input where a body or answers \
         were expected.",
    ),
    (
        "69",
        "The server refused for good (5xx), or a recipient was refused (the others still got \
         the message).",
    ),
    (
        "70",
        "Internal error: a bug in quizmail (please report it).",
    ),
    (
        "73",
        "An output file cannot be created or written: the outbox, --save FILE, or standard \
         output.",
    ),
    (
        "75",
        "Try again later: connection refused or timed out, a 4xx reply, 421, a dropped \
         connection.",
    ),
    (
        "76",
        "Protocol error: a malformed reply, data after 220 to STARTTLS, a reply that does not \
         fit the command.",
    ),
    (
        "77",
        "Authentication failed, or required but forbidden by the options.",
    ),
    (
        "78",
        "Configuration: TLS required but not offered, certificate not verified, no usable AUTH \
         mechanism, no password, a bad config file.",
    ),
];

/// The ENVIRONMENT section; flags win over these, these over the config file.
const ENVIRONMENT: &[(&str, &str)] = &[
    ("SMTP_SERVER", "The server, HOST or HOST:PORT (--server)."),
    ("SMTP_PORT", "The port (--port)."),
    ("SMTP_TLS", "starttls, implicit or none (--tls)."),
    ("SMTP_USER", "The login name (--user)."),
    (
        "SMTP_PASSWORD",
        "The password. There is no password flag: argv is visible to every user.",
    ),
    ("SMTP_AUTH", "The SASL mechanism (--auth)."),
    ("SMTP_FROM", "The From address (--from)."),
    (
        "SMTP_CA_FILE",
        "Trusted root certificates, PEM (--ca-file).",
    ),
    (
        "XDG_CONFIG_HOME",
        "Where the default config file is looked for (default ~/.config).",
    ),
    (
        "NO_COLOR",
        "When set and not empty, the quiz is drawn without colour.",
    ),
];

/// Writes the man page to standard output.
pub fn man() -> Result<(), Error> {
    let mut page = Vec::new();
    render_man(&mut page).map_err(internal)?;
    print(&page)
}

/// Writes the completion script for `shell` to standard output.
pub fn completions(shell: Shell) -> Result<(), Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "quizmail", &mut script);
    print(&script)
}

/// The whole page: clap_mangen's sections (one per `--help` heading), then ours.
fn render_man(w: &mut dyn Write) -> io::Result<()> {
    let command = Cli::command().long_about(DESCRIPTION);
    let man = Man::new(command).manual("quizmail manual");
    man.render_title(w)?;
    // No hyphenation: a flag broken as --tar-/get-email reads as two words.
    w.write_all(b".nh\n")?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    let mut roff = Roff::new();
    tagged_section(&mut roff, "EXIT STATUS", EXIT_CODES);
    tagged_section(&mut roff, "ENVIRONMENT", ENVIRONMENT);
    files_section(&mut roff);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        roman("docs/MANUAL.md in the source distribution is the complete user reference: "),
        roman("modes, the config file, the JSON report, the outbox and security."),
    ]);
    roff.to_writer(w)?;
    man.render_version_section(w)
}

/// A section of `.TP` paragraphs: the tag in bold, the text under it.
fn tagged_section(roff: &mut Roff, title: &str, rows: &[(&str, &str)]) {
    roff.control("SH", [title]);
    for (tag, text) in rows {
        roff.control("TP", []);
        roff.text([bold(*tag)]);
        roff.text([roman(*text)]);
    }
}

fn files_section(roff: &mut Roff) {
    let rows: [(&str, Vec<Inline>); 2] = [
        (
            "$XDG_CONFIG_HOME/quizmail/config.toml",
            vec![roman(
                "The config file when --config is not given (or ~/.config/quizmail/config.toml). \
                 Its keys are the long flag names with _ for -, such as server, port, tls, user, \
                 password_command, from and dkim_key; an unknown key is an error (exit 78).",
            )],
        ),
        (
            "outbox/",
            vec![
                roman("Where a message goes when no server is configured ("),
                italic("--outbox DIR"),
                roman("), as the .eml file that would have been sent."),
            ],
        ),
    ];
    roff.control("SH", ["FILES"]);
    for (tag, text) in rows {
        roff.control("TP", []);
        roff.text([bold(tag)]);
        roff.text(text);
    }
}

fn print(bytes: &[u8]) -> Result<(), Error> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| Error::Output {
            what: "standard output".into(),
            source,
        })
}

/// Rendering into memory cannot fail but for a bug.
fn internal(e: io::Error) -> Error {
    Error::Internal(format!("rendering the man page: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        let mut page = Vec::new();
        render_man(&mut page).unwrap();
        String::from_utf8(page).unwrap()
    }

    #[test]
    fn the_man_page_has_its_sections_and_every_flag() {
        let page = page();
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH DESCRIPTION",
            ".SH CONTENT",
            ".SH QUIZ",
            ".SH SERVER",
            ".SH AUTHENTICATION",
            ".SH SIGNING",
            ".SH OUTPUT",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH FILES",
        ] {
            assert!(page.contains(section), "{section} missing");
        }
        for arg in Cli::command().get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                // roff writes every hyphen of an option as \-.
                let roffed = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(page.contains(&roffed), "--{long} missing");
            }
        }
        for (code, _) in EXIT_CODES {
            assert!(page.contains(&format!("\\fB{code}\\fR")), "exit {code}");
        }
        assert_eq!(EXIT_CODES.len(), 11);
    }
}
