//! What `--help`, `--generate-man` and `--generate-completions` give a user, checked by the
//! tools that read them: `man -l` renders the page (groff's warnings on), and bash's own
//! completion machinery runs the generated script.
//!
//! `man` is not on every machine: without it the man test says so and passes, unless
//! QUIZMAIL_REQUIRE_MAN=1 (scripts/test-all sets it after installing man-db), where a missing
//! `man` is a failure.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn quizmail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quizmail"))
        .args(args)
        .env_clear()
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn help_groups_the_flags_under_the_contract_headings() {
    let out = quizmail(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    let headings = [
        "Content:",
        "Quiz:",
        "Server:",
        "Authentication:",
        "Signing:",
        "Output:",
    ];
    let mut at = Vec::new();
    for heading in headings {
        let line = help.lines().position(|l| l == heading);
        at.push(line.unwrap_or_else(|| panic!("no {heading} heading:\n{help}")));
    }
    assert!(at.windows(2).all(|w| w[0] < w[1]), "order: {at:?}");
    // Each flag sits under its own heading.
    let under = |flag: &str| -> &str {
        let line = help
            .lines()
            .position(|l| l.trim_start().starts_with(flag) || l.contains(&format!(", {flag}")))
            .unwrap_or_else(|| panic!("{flag} missing"));
        headings
            .iter()
            .zip(&at)
            .rfind(|(_, &h)| h < line)
            .map_or("", |(name, _)| name)
    };
    assert_eq!(under("--target-email"), "Content:");
    assert_eq!(under("--roster"), "Quiz:");
    assert_eq!(under("--tls "), "Server:");
    assert_eq!(under("--ehlo"), "Server:");
    assert_eq!(under("--password-command"), "Authentication:");
    assert_eq!(under("--dkim-dns-record"), "Signing:");
    assert_eq!(under("--generate-man"), "Output:");
}

/// docs/MANUAL.md is the complete reference: a new flag must be documented there too.
#[test]
fn the_manual_names_every_flag() {
    let manual = include_str!("../docs/MANUAL.md");
    let command = <quizmail::cli::Cli as clap::CommandFactory>::command();
    let missing: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|long| format!("--{long}"))
        .filter(|flag| !manual.contains(&format!("`{flag}")))
        .collect();
    assert!(
        missing.is_empty(),
        "flags in --help but not in docs/MANUAL.md: {missing:?}"
    );
}

#[test]
fn generate_modes_print_only_their_text_and_refuse_other_flags() {
    let out = quizmail(&["--generate-man"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).starts_with(".ie "), "roff expected");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = quizmail(&["--generate-completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(out.stderr.is_empty(), "{shell}");
        assert!(stdout(&out).contains("target-email"), "{shell}");
    }
    let out = quizmail(&["--generate-completions", "bash", "--to", "a@example.com"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty());
    let out = quizmail(&["--generate-completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn generate_man_ignores_a_broken_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("quizmail")).unwrap();
    std::fs::write(dir.path().join("quizmail/config.toml"), "no_such_key = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_quizmail"))
        .arg("--generate-man")
        .env_clear()
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// Runs the generated bash completion for the words `words` (the last one is being completed)
/// and returns COMPREPLY, one entry per line.
fn bash_complete(words: &[&str]) -> Vec<String> {
    let script = stdout(&quizmail(&["--generate-completions", "bash"]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quizmail.bash");
    std::fs::write(&path, script).unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    // bash calls a completion function with the command, the word and the word before it.
    let driver = format!(
        "source '{}' || exit 3\n\
         COMP_WORDS=({})\nCOMP_CWORD={cword}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         _quizmail quizmail '{}' '{prev}' || exit 4\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        path.display(),
        quoted.join(" "),
        words[cword],
    );
    let mut child = Command::new("bash")
        .args(["--norc", "--noprofile", "-s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(driver.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completion_completes_flags_and_values() {
    let reply = bash_complete(&["quizmail", "--targ"]);
    assert_eq!(reply, ["--target-email"], "{reply:?}");
    let reply = bash_complete(&["quizmail", "--tls", ""]);
    for mode in ["starttls", "implicit", "none"] {
        assert!(reply.iter().any(|r| r == mode), "{mode}: {reply:?}");
    }
    let reply = bash_complete(&["quizmail", "--generate-completions", "p"]);
    assert_eq!(reply, ["powershell"], "{reply:?}");
}

#[test]
fn the_man_page_renders_with_man() {
    let has_man = Command::new("man")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_man {
        assert!(
            std::env::var_os("QUIZMAIL_REQUIRE_MAN").is_none(),
            "QUIZMAIL_REQUIRE_MAN is set but `man` cannot be run: install man-db"
        );
        eprintln!("SKIPPED the_man_page_renders_with_man: `man` is not installed (apt-get install man-db)");
        return;
    }
    let page = quizmail(&["--generate-man"]).stdout;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quizmail.1");
    std::fs::write(&path, page).unwrap();
    let out = Command::new("man")
        .args(["--warnings", "-P", "cat", "-l"])
        .arg(&path)
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.trim().is_empty(), "groff warnings:\n{stderr}");
    let text = stdout(&out);
    // man justifies lines with extra spaces: compare words, not spacing.
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "CONTENT",
        "AUTHENTICATION",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "--target-email",
        "SMTP_PASSWORD",
        "config.toml",
        "Try again later",
    ] {
        assert!(
            words.contains(needle),
            "{needle} not in the rendered page:\n{text}"
        );
    }
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
}
