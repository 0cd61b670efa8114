//! Send mode: `--body`, `--body-file`, `--html-file`, `--attach`, `--inline` or `--message`.
use std::io::Read;
use std::path::Path;

use super::compose::{addresses, addressing, dedup, random16, sender, with_flag, Addressing};
use super::delivery::{alignment, deliver_one, Content};
use super::Ctx;
use crate::error::Error;
use crate::message::{parse_header_arg, Attachment, Compose, Mailbox, Prepared};
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

    let from = sender(&ctx.settings)?;
    let mut compose = Compose::new(from.clone(), ctx.now, random16());
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
    compose.attachments = cli.attach.iter().cloned().map(Attachment::File).collect();
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
