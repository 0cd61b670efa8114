//! sendmail mode (cli.md "sendmail mode"): quizmail invoked as `sendmail` (a symlink) or with
//! `--sendmail` first takes the sendmail command line, as msmtp-mta does, so cron, mailx and
//! git send-email can hand it mail. That command line is not clap-shaped (`-oi`, `-fADDR`,
//! `-bp`, options glued to their values), so it is parsed by hand here and turned into the
//! quizmail command line of the send path with `--message -` semantics; the message on
//! standard input is completed first (From, Date, Message-ID, local names with `maildomain`
//! or the aliases file), as sendmail does before it queues.
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::compose::{hex, local_host_name, random16};
use super::ui::Ui;
use crate::config::FileConfig;
use crate::error::Error;
use crate::message::header;

/// True when this run takes the sendmail command line.
pub fn invoked(args: &[OsString]) -> bool {
    let name = args
        .first()
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str());
    name == Some("sendmail") || args.get(1).is_some_and(|a| a == "--sendmail")
}

/// What the sendmail command line asked for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args {
    pub action: Action,
    /// `-t`: recipients from To, Cc and Bcc as well.
    pub read_recipients: bool,
    /// `-i`/`-oi`: a line with a single dot does not end the message.
    pub ignore_dots: bool,
    /// `-f`/`-r`: the envelope sender.
    pub from: Option<String>,
    /// `-F`: the full name for a From field quizmail adds.
    pub full_name: Option<String>,
    /// `-N`, `-R`, `-V`: DSN requests (RFC 3461).
    pub dsn: Vec<String>,
    pub recipients: Vec<String>,
    /// quizmail's own options that sendmail mode passes on.
    pub passed: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    /// `-bm` (the default): deliver the message on standard input.
    #[default]
    Mail,
    /// `-bp`: list the queue.
    List,
    /// `-q`: run the queue.
    Flush,
}

/// Parses the sendmail command line (without the program name and `--sendmail`).
pub fn parse(args: &[String]) -> Result<Args, Error> {
    let mut out = Args::default();
    let mut i = 0;
    let usage = |m: String| Error::Usage(format!("sendmail mode: {m}"));
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.recipients.extend(args[i..].iter().cloned());
            break;
        }
        // quizmail's own options, so an account or config can be chosen.
        if let Some(long) = arg.strip_prefix("--") {
            match long {
                "account" | "config" | "outbox" => {
                    let value = args
                        .get(i)
                        .ok_or_else(|| usage(format!("{arg} needs a value")))?;
                    i += 1;
                    out.passed.push(arg.into());
                    out.passed.push(value.into());
                }
                "json" | "verbose" | "quiet" => out.passed.push(arg.into()),
                _ => return Err(usage(format!("unknown option {arg}"))),
            }
            continue;
        }
        let Some(opt) = arg.strip_prefix('-').filter(|o| !o.is_empty()) else {
            out.recipients.push(arg.clone());
            continue;
        };
        let letter = opt.chars().next().unwrap_or_default();
        let glued = &opt[letter.len_utf8()..];
        // The value of an option that takes one: glued (`-fa@x`) or the next argument.
        let value = |i: &mut usize| -> Result<String, Error> {
            if !glued.is_empty() {
                return Ok(glued.to_owned());
            }
            let v = args
                .get(*i)
                .cloned()
                .ok_or_else(|| usage(format!("-{letter} needs a value")))?;
            *i += 1;
            Ok(v)
        };
        match letter {
            't' if glued.is_empty() => out.read_recipients = true,
            'i' if glued.is_empty() => out.ignore_dots = true,
            'v' if glued.is_empty() => out.passed.push("--verbose".into()),
            'f' | 'r' => out.from = Some(value(&mut i)?),
            'F' => out.full_name = Some(value(&mut i)?),
            'N' | 'R' | 'V' => {
                let v = value(&mut i)?;
                out.dsn.push(format!("-{letter} {v}"));
            }
            'b' => {
                out.action = match glued {
                    "m" => Action::Mail,
                    "p" => Action::List,
                    // newaliases: the aliases file is read on every run; nothing to rebuild.
                    "i" => Action::Mail,
                    other => {
                        return Err(usage(format!("-b{other} is not supported (only -bm, -bp)")))
                    }
                }
            }
            // `-q`, `-q30m`, `-qf`: run the queue once, now.
            'q' => out.action = Action::Flush,
            'o' => {
                // -oi is -i; -oem, -odb, -oXvalue...: accepted and ignored. `-o X` takes
                // the next argument only when nothing is glued.
                if glued == "i" {
                    out.ignore_dots = true;
                } else if glued.is_empty() {
                    value(&mut i)?;
                }
            }
            // Options with a value, ignored: -B type, -L tag, -C file, -O opt=val, -X log,
            // -h hops.
            'B' | 'L' | 'C' | 'O' | 'X' | 'h' => {
                value(&mut i)?;
            }
            // Flags without a value, ignored: -ee, -em, -m, -n, -U, -G, -A...
            _ => {}
        }
    }
    Ok(out)
}

/// `name: addr, addr` lines (`#` comments, continuation lines start with white space);
/// `default:` is for every name not listed.
pub fn parse_aliases(text: &str) -> HashMap<String, Vec<String>> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = entries.last_mut() {
                last.1.push(',');
                last.1.push_str(line);
            }
            continue;
        }
        if let Some((name, targets)) = line.split_once(':') {
            entries.push((name.trim().to_ascii_lowercase(), targets.to_owned()));
        }
    }
    entries
        .into_iter()
        .map(|(name, targets)| {
            let list = targets
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
            (name, list)
        })
        .collect()
}

/// How local names (no `@`) become addresses.
#[derive(Clone, Debug, Default)]
pub struct Local {
    pub aliases: HashMap<String, Vec<String>>,
    pub maildomain: Option<String>,
}

impl Local {
    /// `root` → the aliases file's entry (or `default:`), else `root@maildomain`; an address
    /// with `@` stays as it is. A name neither can complete is a data error (65).
    pub fn expand(&self, name: &str) -> Result<Vec<String>, Error> {
        if name.contains('@') {
            return Ok(vec![name.to_owned()]);
        }
        let listed = self
            .aliases
            .get(&name.to_ascii_lowercase())
            .or_else(|| self.aliases.get("default"));
        let targets = match listed {
            Some(t) => t.clone(),
            None => vec![name.to_owned()],
        };
        targets.iter().map(|t| self.complete(t)).collect()
    }

    /// `root` → `root@maildomain`.
    pub fn complete(&self, name: &str) -> Result<String, Error> {
        if name.contains('@') {
            return Ok(name.to_owned());
        }
        match &self.maildomain {
            Some(d) => Ok(format!("{name}@{d}")),
            None => Err(Error::Data(format!(
                "{name:?} has no domain: set maildomain (or an aliases file) in the config file"
            ))),
        }
    }
}

/// The message on standard input made ready to send, as sendmail would: cut at a lone dot
/// unless `-i`, CRLF lines, local names in To/Cc/Bcc expanded, and From, Date and Message-ID
/// supplied when missing.
pub fn complete_message(
    raw: &[u8],
    args: &Args,
    local: &Local,
    from: &str,
    now: SystemTime,
) -> Result<Vec<u8>, Error> {
    let mut lines: Vec<&[u8]> = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !args.ignore_dots && line == b"." {
            break;
        }
        lines.push(line);
    }
    if raw.ends_with(b"\n") && lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let split = lines.iter().position(|l| l.is_empty());
    let (head, body) = match split {
        Some(at) => (&lines[..at], &lines[at + 1..]),
        None if lines.first().is_some_and(|l| is_field_start(l)) => (&lines[..], &[][..]),
        None => (&[][..], &lines[..]),
    };
    // Unfolded fields, each with its raw lines kept for the ones left as they are.
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    for line in head {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            if let Some(last) = fields.last_mut() {
                last.1.extend_from_slice(b"\r\n");
                last.1.extend_from_slice(line);
            }
            continue;
        }
        let name = line
            .iter()
            .position(|&b| b == b':')
            .map(|i| {
                String::from_utf8_lossy(&line[..i])
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        fields.push((name, line.to_vec()));
    }
    let has = |n: &str| fields.iter().any(|(name, _)| name == n);
    let mut out: Vec<u8> = Vec::new();
    let mut author_domain = None;
    for (name, raw_field) in &fields {
        let text = String::from_utf8_lossy(raw_field).into_owned();
        let rewritten = match name.as_str() {
            "to" | "cc" | "bcc" => Some(rewrite_list(&text, &|n| local.expand(n))?),
            "from" | "sender" | "reply-to" => Some(rewrite_list(&text, &|n| {
                local.complete(n).map(|a| vec![a])
            })?),
            _ => None,
        };
        if name == "from" {
            author_domain = domain_of(rewritten.as_deref().unwrap_or(&text));
        }
        match rewritten {
            Some(t) => out.extend_from_slice(t.as_bytes()),
            None => out.extend_from_slice(raw_field),
        }
        out.extend_from_slice(b"\r\n");
    }
    let mut added = Vec::new();
    if !has("from") {
        let addr = local.complete(from)?;
        author_domain = domain_of(&addr);
        added.push(match &args.full_name {
            Some(n) if !n.trim().is_empty() => {
                format!("From: {} <{addr}>", quote_phrase(n.trim()))
            }
            _ => format!("From: {addr}"),
        });
    }
    if !has("date") {
        added.push(format!("Date: {}", header::format_date(now)));
    }
    if !has("message-id") {
        let domain = author_domain
            .or_else(|| local.maildomain.clone())
            .or_else(local_host_name)
            .unwrap_or_else(|| "localhost".into());
        added.push(format!(
            "Message-ID: <{}.{}@{domain}>",
            header::compact_timestamp(now),
            hex(&random16())
        ));
    }
    let mut message = Vec::new();
    for a in added {
        message.extend_from_slice(a.as_bytes());
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(&out);
    message.extend_from_slice(b"\r\n");
    for line in body {
        message.extend_from_slice(line);
        message.extend_from_slice(b"\r\n");
    }
    Ok(message)
}

fn is_field_start(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    colon > 0 && line[..colon].iter().all(|&b| b.is_ascii_graphic())
}

fn domain_of(text: &str) -> Option<String> {
    let at = text.rfind('@')?;
    let domain: String = text[at + 1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .collect();
    (!domain.is_empty()).then_some(domain)
}

/// `"Cron Daemon"` when the name is not all atext words.
fn quote_phrase(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c));
    if plain {
        name.to_owned()
    } else {
        format!(
            "\"{}\"",
            name.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace(['\r', '\n'], " ")
        )
    }
}

/// Rewrites each address of a `Name: a, b (c), D <e>` field whose address has no `@`.
fn rewrite_list(
    field: &str,
    expand: &dyn Fn(&str) -> Result<Vec<String>, Error>,
) -> Result<String, Error> {
    let Some((name, value)) = field.split_once(':') else {
        return Ok(field.to_owned());
    };
    let value = value.replace("\r\n", "");
    let mut items = Vec::new();
    for item in split_outside(&value) {
        items.push(rewrite_item(item.trim(), expand)?);
    }
    let items: Vec<String> = items.into_iter().filter(|i| !i.is_empty()).collect();
    Ok(format!("{name}: {}", items.join(", ")))
}

fn rewrite_item(
    item: &str,
    expand: &dyn Fn(&str) -> Result<Vec<String>, Error>,
) -> Result<String, Error> {
    if item.is_empty() || item.contains('@') || item.ends_with(';') {
        return Ok(item.to_owned());
    }
    // `Name <root>`
    if let (Some(open), Some(close)) = (item.find('<'), item.rfind('>')) {
        if open < close {
            let addrs = expand(item[open + 1..close].trim())?;
            let phrase = item[..open].trim();
            return Ok(match (addrs.as_slice(), phrase.is_empty()) {
                ([one], false) => format!("{phrase} <{one}>"),
                _ => addrs.join(", "),
            });
        }
    }
    // `root` or `root (Cron Daemon)`
    let (addr, comment) = match item.find('(') {
        Some(i) => (item[..i].trim(), Some(item[i..].trim())),
        None => (item, None),
    };
    if addr.is_empty() || addr.contains(char::is_whitespace) {
        return Ok(item.to_owned());
    }
    let addrs = expand(addr)?;
    Ok(match (addrs.as_slice(), comment) {
        ([one], Some(c)) => format!("{one} {c}"),
        _ => addrs.join(", "),
    })
}

/// Splits at commas outside quotes, angle brackets and comments.
fn split_outside(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut angle, mut escaped) = (0u32, false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            '<' if !quoted && depth == 0 => angle = true,
            '>' if !quoted && depth == 0 => angle = false,
            ',' if !quoted && depth == 0 && !angle => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

/// The quizmail command line for a sendmail one, and the completed message for `-bm`.
pub fn translate(
    args: &[OsString],
    now: SystemTime,
) -> Result<(Vec<OsString>, Option<Vec<u8>>), Error> {
    let skip = if args.get(1).is_some_and(|a| a == "--sendmail") {
        2
    } else {
        1
    };
    let words: Vec<String> = args
        .iter()
        .skip(skip)
        .map(|a| {
            a.to_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::Usage(format!("sendmail mode: {a:?} is not UTF-8")))
        })
        .collect::<Result<_, _>>()?;
    let parsed = parse(&words)?;
    let mut argv: Vec<OsString> = vec!["quizmail".into()];
    argv.extend(parsed.passed.iter().cloned());
    // As sendmail: silent unless something went wrong (or -v), since cron mails any output.
    if !parsed
        .passed
        .iter()
        .any(|a| a == "--verbose" || a == "--quiet")
    {
        argv.push("--quiet".into());
    }
    match parsed.action {
        Action::List => {
            argv.extend(["--flush".into(), "--list".into()]);
            return Ok((argv, None));
        }
        Action::Flush => {
            argv.push("--flush".into());
            return Ok((argv, None));
        }
        Action::Mail => {}
    }
    for d in &parsed.dsn {
        Ui::warn_always(&format!(
            "DSN is not supported yet: {d} is accepted and ignored"
        ));
    }
    let config_path = passed_value(&parsed.passed, "--config");
    let file = FileConfig::load(config_path.as_deref())?;
    let local = Local {
        aliases: match &file.aliases {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Input {
                    what: format!("the aliases file {}", path.display()),
                    source,
                })?;
                parse_aliases(&text)
            }
            None => HashMap::new(),
        },
        maildomain: file.maildomain.clone(),
    };
    // The From a message without one gets: the configured from, else -f, else the user.
    let from = std::env::var("SMTP_FROM")
        .ok()
        .filter(|f| !f.is_empty())
        .or(file.from.clone())
        .or(parsed.from.clone())
        .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "root".into()));
    let raw = super::send::read_input(Path::new("-"), "the message")?;
    let message = complete_message(&raw, &parsed, &local, &from, now)?;
    argv.extend(["--sendmail".into(), "--message".into(), "-".into()]);
    if parsed.read_recipients {
        argv.push("--read-recipients".into());
    }
    if let Some(f) = &parsed.from {
        argv.push("--envelope-from".into());
        argv.push(local.complete(f)?.into());
    }
    for r in &parsed.recipients {
        for addr in r.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            for expanded in local.expand(addr)? {
                argv.push("--to".into());
                argv.push(expanded.into());
            }
        }
    }
    Ok((argv, Some(message)))
}

fn passed_value(passed: &[OsString], flag: &str) -> Option<PathBuf> {
    passed
        .iter()
        .position(|a| a == flag)
        .and_then(|i| passed.get(i + 1))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_sendmail_command_line() {
        let a = parse(&words(
            "-t -oi -f ada@x.test -FAda -N success -oem -odi -B 8BITMIME -- bob",
        ))
        .unwrap();
        assert!(a.read_recipients && a.ignore_dots);
        assert_eq!(a.from.as_deref(), Some("ada@x.test"));
        assert_eq!(a.full_name.as_deref(), Some("Ada"));
        assert_eq!(a.dsn, ["-N success"]);
        assert_eq!(a.recipients, ["bob"]);
        assert_eq!(a.action, Action::Mail);
        assert_eq!(parse(&words("-bp")).unwrap().action, Action::List);
        assert_eq!(parse(&words("-q")).unwrap().action, Action::Flush);
        assert_eq!(parse(&words("-q30m")).unwrap().action, Action::Flush);
        let a = parse(&words("-i -fgit@x.test -L tag -C /etc/x root a@b.test")).unwrap();
        assert!(a.ignore_dots);
        assert_eq!(a.from.as_deref(), Some("git@x.test"));
        assert_eq!(a.recipients, ["root", "a@b.test"]);
        assert_eq!(parse(&words("-bs")).unwrap_err().exit_code(), 64);
        assert_eq!(parse(&words("-f")).unwrap_err().exit_code(), 64);
        let a = parse(&words("--account work -t")).unwrap();
        assert_eq!(a.passed, ["--account", "work"].map(OsString::from));
    }

    #[test]
    fn invoked_by_name_or_flag() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(invoked(&os(&["/usr/sbin/sendmail", "-t"])));
        assert!(invoked(&os(&["quizmail", "--sendmail", "-t"])));
        assert!(!invoked(&os(&["quizmail", "-t", "--sendmail"])));
    }

    #[test]
    fn aliases_and_maildomain() {
        let local = Local {
            aliases: parse_aliases(
                "# comment\nroot: admin@x.test, ops\npostmaster: root@x.test\n  more@x.test\ndefault: catch@x.test\n",
            ),
            maildomain: Some("x.test".into()),
        };
        assert_eq!(
            local.expand("root").unwrap(),
            ["admin@x.test", "ops@x.test"]
        );
        assert_eq!(
            local.expand("postmaster").unwrap(),
            ["root@x.test", "more@x.test"]
        );
        assert_eq!(local.expand("nobody").unwrap(), ["catch@x.test"]);
        assert_eq!(local.expand("a@y.test").unwrap(), ["a@y.test"]);
        let bare = Local::default();
        assert_eq!(bare.expand("root").unwrap_err().exit_code(), 65);
    }

    #[test]
    fn a_cron_message_is_completed() {
        let local = Local {
            aliases: HashMap::new(),
            maildomain: Some("host.test".into()),
        };
        let raw =
            b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@h> run\n\nout\n.\nmore\n";
        let args = Args::default();
        let now = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let m = complete_message(raw, &args, &local, "root", now).unwrap();
        let text = String::from_utf8(m).unwrap();
        assert!(
            text.contains("From: root@host.test (Cron Daemon)\r\n"),
            "{text}"
        );
        assert!(text.contains("To: root@host.test\r\n"), "{text}");
        assert!(text.contains("Subject: Cron <root@h> run\r\n"), "{text}");
        assert!(text.starts_with("Date: "), "{text}");
        assert!(text.contains("@host.test>\r\n"), "{text}");
        // Without -i a lone dot ends the message.
        assert!(text.ends_with("\r\n\r\nout\r\n"), "{text:?}");
        let args = Args {
            ignore_dots: true,
            full_name: Some("Cron Daemon".into()),
            ..Args::default()
        };
        let m = complete_message(b"To: a@x.test\n\n.\nmore\n", &args, &local, "root", now).unwrap();
        let text = String::from_utf8(m).unwrap();
        assert!(
            text.starts_with("From: Cron Daemon <root@host.test>\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n.\r\nmore\r\n"), "{text:?}");
    }

    #[test]
    fn address_lists_keep_what_has_a_domain() {
        let expand = |n: &str| Ok(vec![format!("{n}@d.test")]);
        assert_eq!(
            rewrite_list("To: \"B, C\" <b@x.test>, root, Ops <ops>", &expand).unwrap(),
            "To: \"B, C\" <b@x.test>, root@d.test, Ops <ops@d.test>"
        );
    }
}
