//! Send mode: `--body`, `--body-file`, `--html-file`, `--markdown-file`, `--attach`,
//! `--inline` or `--message`.
use std::io::Read;
use std::path::{Path, PathBuf};

use super::compose::{
    addresses, addressing, dedup, random16, sender, with_flag, Addressing, HeaderFlags,
};
use super::delivery::{alignment, deliver_one, Content};
use super::Ctx;
use crate::error::Error;
use crate::message::{
    markdown, parse_header_arg, Attachment, Compose, Mailbox, MessageError, Prepared,
};
use crate::report::Report;

/// Reads a file, or standard input for `-`; an empty standard input is an input error (66).
pub fn read_input(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    if path == Path::new("-") {
        let mut data = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut data)
            .map_err(|source| Error::Input {
                what: format!("{what} from standard input"),
                source,
            })?;
        if data.is_empty() {
            return Err(Error::Input {
                what: format!("{what} from standard input"),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "standard input is empty",
                ),
            });
        }
        return Ok(data);
    }
    std::fs::read(path).map_err(|source| Error::Input {
        what: format!("{what} {}", path.display()),
        source,
    })
}

/// The files `--attach` names: an existing path as it is (even one holding `*`, `?` or `[`),
/// else a pattern's matches in sorted order, so a CI job's `--attach 'out/*.pdf'` attaches
/// the same list on every run. A pattern that matches no file is an input error (66), never an
/// empty list: a report without its attachments should not go out unnoticed. Directories among
/// the matches are skipped (they cannot be attached); a leading `.` must be matched literally,
/// as in the shell.
pub fn attachments(patterns: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    for path in patterns {
        let pattern = match path.to_str() {
            Some(p) if p.contains(['*', '?', '[']) && std::fs::symlink_metadata(path).is_err() => p,
            // A plain name: a missing one is reported by the message layer when it is opened.
            _ => {
                out.push(path.clone());
                continue;
            }
        };
        let missing = |reason: String| Error::Input {
            what: format!("--attach {pattern:?}"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, reason),
        };
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let paths = glob::glob_with(pattern, options).map_err(|e| {
            missing(format!(
                "no such file, and not a valid pattern ({e}); check the name"
            ))
        })?;
        let mut matches = Vec::new();
        for entry in paths {
            let found = entry.map_err(|e| Error::Input {
                what: format!("--attach {pattern:?}: {}", e.path().display()),
                source: e.into(),
            })?;
            if !found.is_dir() {
                matches.push(found);
            }
        }
        if matches.is_empty() {
            return Err(missing(
                "the pattern matches no file; check the path (and quote the pattern)".into(),
            ));
        }
        matches.sort();
        out.extend(matches);
    }
    Ok(out)
}

pub fn send(ctx: &mut Ctx) -> Result<(Report, i32), Error> {
    let cli = ctx.cli;
    let to = addresses("--target-email", &cli.to)?;
    let cc = addresses("--cc", &cli.cc)?;
    let bcc = addresses("--bcc", &cli.bcc)?;

    if let Some(path) = &cli.message {
        let raw = match ctx.input.take() {
            Some(raw) => raw,
            None => read_input(path, "the message")?,
        };
        let prepared =
            Prepared::parse(&raw, cli.read_recipients).map_err(|e| with_flag("--message", e))?;
        let mut recipients: Vec<Mailbox> = to.into_iter().chain(cc).chain(bcc).collect();
        if cli.read_recipients {
            recipients.extend(prepared.recipients().iter().cloned());
        }
        dedup(&mut recipients);
        // MAIL FROM and the DKIM domain default to the From address (cli.md): for a prepared
        // message that is its own author, since --from cannot change the header it carries.
        let author = prepared.author();
        let from = match (&cli.envelope_from, &author) {
            (Some(e), _) => Mailbox::parse(e).map_err(|e| with_flag("--envelope-from", e))?,
            (None, Some(a)) => a.clone(),
            (None, None) => sender(&ctx.settings)?,
        };
        if let Some(a) = &author {
            if ctx.settings.dkim_domain.is_none() {
                if let Some(signer) = ctx.signer.as_mut() {
                    signer.set_domain(&a.domain)?;
                }
            }
            alignment(ctx, a, &from);
        }
        let envelope = Addressing { from, recipients };
        return deliver_one(
            ctx,
            &Content::Prepared(Box::new(prepared)),
            &envelope,
            None,
            true,
        );
    }

    let header_flags = HeaderFlags::from_cli(cli)?;
    let from = sender(&ctx.settings)?;
    let mut compose = Compose::new(from.clone(), ctx.now, random16());
    header_flags.apply(&mut compose);
    compose.to = to;
    compose.cc = cc;
    compose.bcc = bcc;
    compose.subject = cli.subject.clone().unwrap_or_default();
    for h in &cli.headers {
        compose
            .headers
            .push(parse_header_arg(h).map_err(|e| with_flag("--header", e))?);
    }
    compose.text = match (&cli.body, &cli.body_file) {
        (Some(text), _) => Some(text.clone().into_bytes()),
        (None, Some(path)) => Some(read_input(path, "the body")?),
        (None, None) => None,
    };
    if let Some(path) = &cli.html_file {
        compose.html = Some(read_input(path, "the HTML body")?);
    }
    if let Some(path) = &cli.markdown_file {
        // The source is the text alternative as written: Markdown is meant to read well as
        // plain text (RFC 7763 §1).
        let source = read_input(path, "the Markdown body")?;
        let text = std::str::from_utf8(&source).map_err(|e| {
            with_flag(
                "--markdown-file",
                MessageError::NotUtf8 {
                    what: "the Markdown body".into(),
                    offset: e.valid_up_to(),
                },
            )
        })?;
        compose.html = Some(markdown::to_html(text).into_bytes());
        compose.text = Some(source);
    }
    compose.attachments = attachments(&cli.attach)?
        .into_iter()
        .map(Attachment::File)
        .collect();
    compose.inline = cli.inline.iter().cloned().map(Attachment::File).collect();

    let envelope = addressing(ctx.cli, &compose)?;
    alignment(ctx, &from, &envelope.from);
    deliver_one(
        ctx,
        &Content::Compose(Box::new(compose)),
        &envelope,
        None,
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_pattern_attaches_its_matches_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.pdf", "a.pdf", "c.txt", ".hidden.pdf", "10.pdf"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("dir.pdf")).unwrap();
        let pattern = dir.path().join("*.pdf");
        let got = attachments(&[pattern, dir.path().join("c.txt")]).unwrap();
        assert_eq!(names(&got), ["10.pdf", "a.pdf", "b.pdf", "c.txt"]);
    }

    #[test]
    fn an_existing_name_with_metacharacters_is_taken_literally() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["report[1].pdf", "report1.pdf", "what?.txt", "whatX.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let got = attachments(&[
            dir.path().join("report[1].pdf"),
            dir.path().join("what?.txt"),
        ])
        .unwrap();
        assert_eq!(names(&got), ["report[1].pdf", "what?.txt"]);
        // Not existing literally, the same kind of name is a pattern.
        let got = attachments(&[dir.path().join("report[0-9].pdf")]).unwrap();
        assert_eq!(names(&got), ["report1.pdf"]);
    }

    #[test]
    fn a_pattern_that_matches_nothing_is_exit_66_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("only-a-dir.pdf")).unwrap();
        for pattern in ["*.pdf", "nothing-*.zip", "bad[pattern"] {
            let path = dir.path().join(pattern);
            let e = attachments(&[path]).unwrap_err();
            assert_eq!(e.exit_code(), 66, "{pattern}");
            assert!(e.to_string().contains(pattern), "{e}");
        }
        // A plain missing name is left for the message layer, which says it cannot be read.
        let plain = dir.path().join("missing.pdf");
        assert_eq!(attachments(std::slice::from_ref(&plain)).unwrap(), [plain]);
    }
}
