//! The message layer: what the user asked for ([`Compose`]) becomes a [`Message`] whose header
//! fields are fixed and whose MIME parts are planned but whose files are not read yet; it is
//! written as a stream (attachments read and base64-encoded in chunks) and its exact size is
//! known without writing it. A complete message given by the user is a [`Prepared`].
//!
//! Implements RFC 5322 (format, folding, Date, Message-ID, addresses), RFC 2045–2049 (MIME,
//! quoted-printable, base64, multipart), RFC 2047 (encoded words), RFC 2231 (parameter values),
//! RFC 2387 (multipart/related), RFC 6532 (UTF-8 headers, only when SMTPUTF8 is in use) and the
//! DATA rules of RFC 5321 §4.5.2 ([`DotStuffer`]). No other I/O than reading attachments.

pub mod address;
pub mod encoding;
pub mod header;
pub mod lint;
pub mod markdown;
pub mod mime;
pub mod prepared;
pub mod stream;

pub use address::Mailbox;
pub use header::{HeaderField, MessageId};
pub use mime::{parse_header_arg, Attachment, Compose, Message, Priority};
pub use prepared::Prepared;
pub use stream::{CrlfNormalizer, DotStuffer};

use std::io::{self, Write};
use std::path::PathBuf;

/// What the server offers. With no server (dry run, outbox) both are false, which gives the
/// most portable message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Target {
    /// RFC 6531 SMTPUTF8: UTF-8 addresses and header fields allowed.
    pub smtputf8: bool,
    /// RFC 6152 8BITMIME: 8bit text bodies allowed.
    pub eight_bit_mime: bool,
}

/// Which exit-status class an error belongs to (sysexits.h, decided in `error::Error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad data (EX_DATAERR, 65).
    Data,
    /// An input file missing or unreadable (EX_NOINPUT, 66).
    Input,
}

/// Errors of the message layer. User text is shown with `{:?}` so control characters in it
/// are escaped, not sent to the terminal.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("invalid address {input:?}: {reason}")]
    InvalidAddress { input: String, reason: String },
    #[error("{field} contains a control character (such as CR or LF), refused: {value:?}")]
    ControlChar { field: String, value: String },
    #[error("invalid Message-ID {input:?}: {reason}")]
    BadMessageId { input: String, reason: String },
    #[error("invalid header field {name:?}: {reason}")]
    BadHeader { name: String, reason: String },
    #[error("{what} is not valid UTF-8 (first bad octet at offset {offset})")]
    NotUtf8 { what: String, offset: usize },
    #[error("cannot read {}: {source}", path.display())]
    Input {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot use the file name {name:?}: {reason}")]
    BadFileName { name: String, reason: String },
    #[error("{0} needs SMTPUTF8 (a non-ASCII local part), which the server does not offer")]
    NeedsSmtpUtf8(String),
    #[error("inline images need an HTML body that refers to them as cid:NAME")]
    InlineWithoutHtml,
    #[error("the message is not valid at line {line}: {reason}")]
    BadMessage { line: usize, reason: String },
    #[error("the message names no recipients in To, Cc or Bcc")]
    NoRecipients,
}

impl MessageError {
    /// The exit-status class: unreadable input files are `Input`, everything else `Data`.
    pub fn class(&self) -> ErrorClass {
        match self {
            MessageError::Input { .. } => ErrorClass::Input,
            _ => ErrorClass::Data,
        }
    }
}

/// What the sender, the signer and the outbox need from a message, built ([`Message`]) or
/// prepared ([`Prepared`]). Output is CRLF-only with lines of at most 998 octets; it is not
/// dot-stuffed (wrap the socket in [`DotStuffer`] for DATA).
pub trait Outgoing {
    /// Exact number of octets [`Outgoing::write_to`] writes, computed without producing them.
    fn size(&self) -> io::Result<u64>;
    /// Streams the whole message: header fields, blank line, body.
    fn write_to(&self, w: &mut dyn Write) -> io::Result<()>;
    /// The header fields in order, exactly as written (for DKIM).
    fn headers(&self) -> &[HeaderField];
    /// Streams only what follows the blank line (the DKIM body hash input).
    fn write_body(&self, w: &mut dyn Write) -> io::Result<()>;
    /// Puts a field on top (the DKIM-Signature). `value` is what follows the colon, usually
    /// starting with a space; it may be folded with CRLF + WSP.
    fn prepend_header(&mut self, name: &str, value: &str) -> Result<(), MessageError>;
    /// The Message-ID with angle brackets, when the message has one.
    fn message_id(&self) -> Option<&str>;
    /// True when MAIL FROM must carry SMTPUTF8 (RFC 6531 §3.4).
    fn needs_smtputf8(&self) -> bool;
    /// True when MAIL FROM must carry BODY=8BITMIME (RFC 6152 §3).
    fn needs_8bitmime(&self) -> bool;
}

/// Writes header fields, the blank line and then the body through `body`.
fn write_message(
    headers: &[HeaderField],
    w: &mut dyn Write,
    body: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, w);
    for field in headers {
        out.write_all(field.to_wire().as_bytes())?;
    }
    out.write_all(b"\r\n")?;
    body(&mut out)?;
    out.flush()
}

/// Octets taken by the header section, blank line included.
fn headers_len(headers: &[HeaderField]) -> u64 {
    headers
        .iter()
        .map(|f| (f.name.len() + 1 + f.value.len() + 2) as u64)
        .sum::<u64>()
        + 2
}
