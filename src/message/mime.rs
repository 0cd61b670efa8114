//! Building a message from what the user asked for: header fields (RFC 5322 §3.6), the MIME
//! tree (RFC 2045 §6 transfer encodings, RFC 2046 §5.1 multiparts, RFC 2387 related, RFC 2183
//! Content-Disposition with RFC 2231 file names) and the streamed writer.
//!
//! Boundaries are `=_qm_` followed by 24 hex digits derived from the injected randomness.
//! No body we write can contain a boundary line: base64 and quoted-printable can never produce
//! the octets `=_` (see `encoding.rs`), 7bit and 8bit text is only used when it does not
//! contain `=_`, and part header lines start with a field name or white space, never `--`.

use super::encoding::{
    base64_lines_len, encoded_words, normalize_crlf, quoted_printable, rfc2231_params,
    stream_base64, write_base64_lines, MAX_WORD,
};
use super::header::{
    check_field_name, check_text, compact_timestamp, first_word_budget, fold, format_date,
    unstructured_tokens, words_as_tokens, HeaderField, MessageId, MAX_LINE,
};
use super::{headers_len, write_message, Mailbox, MessageError, Outgoing, Target};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// An attachment or inline image: a file (read only when the message is written) or data
/// already in memory (such as a generated CSV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    File(PathBuf),
    Data { filename: String, data: Vec<u8> },
}

/// What the user asked for. Fill the fields, then [`Compose::build`].
#[derive(Debug, Clone)]
pub struct Compose {
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    /// Envelope only: never written as a header.
    pub bcc: Vec<Mailbox>,
    pub reply_to: Option<Mailbox>,
    /// Empty means no Subject field.
    pub subject: String,
    /// Extra fields from `--header "Name: value"` (see [`parse_header_arg`]).
    pub headers: Vec<(String, String)>,
    /// The text body as given; it must be UTF-8.
    pub text: Option<Vec<u8>>,
    /// The HTML body as given; it must be UTF-8.
    pub html: Option<Vec<u8>>,
    pub attachments: Vec<Attachment>,
    /// Images the HTML refers to as `cid:FILENAME`.
    pub inline: Vec<Attachment>,
    /// The message this one answers (RFC 5322 §3.6.4).
    pub in_reply_to: Option<MessageId>,
    /// The thread it belongs to, oldest first (RFC 5322 §3.6.4).
    pub references: Vec<MessageId>,
    pub priority: Priority,
    /// The Date field and the Message-ID timestamp.
    pub date: SystemTime,
    /// Randomness for the Message-ID and the MIME boundaries (fill from a CSPRNG).
    pub random: [u8; 16],
}

/// `--priority`: written as `X-Priority` (the de facto field most mail programs read, 1 is
/// highest and 5 lowest) and `Importance` (RFC 2156 §5.3.4, which Outlook reads). `Normal`
/// writes neither: it is what a message without them means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    fn fields(self) -> Vec<HeaderField> {
        let (x_priority, importance) = match self {
            Priority::High => ("1", "high"),
            Priority::Normal => return Vec::new(),
            Priority::Low => ("5", "low"),
        };
        vec![
            HeaderField {
                name: "X-Priority".into(),
                value: format!(" {x_priority}"),
            },
            HeaderField {
                name: "Importance".into(),
                value: format!(" {importance}"),
            },
        ]
    }
}

/// Fields we write ourselves, which `--header` may not add a second time.
const RESERVED: [&str; 10] = [
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
];

/// Fields that a flag writes only when given, so `--header` may set them when it is not.
fn is_flag_field(name: &str) -> bool {
    ["in-reply-to", "references", "x-priority", "importance"]
        .iter()
        .any(|f| name.eq_ignore_ascii_case(f))
}

/// Splits a `--header "Name: value"` argument at its first colon; the value loses the
/// spaces after the colon. Name and value are checked in [`Compose::build`].
pub fn parse_header_arg(arg: &str) -> Result<(String, String), MessageError> {
    let (name, value) = arg.split_once(':').ok_or_else(|| MessageError::BadHeader {
        name: arg.to_string(),
        reason: "expected \"Name: value\"".to_string(),
    })?;
    Ok((name.to_string(), value.trim_start_matches(' ').to_string()))
}

impl Compose {
    /// A message from `from` with no recipients or content yet.
    pub fn new(from: Mailbox, date: SystemTime, random: [u8; 16]) -> Compose {
        Compose {
            from,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: None,
            subject: String::new(),
            headers: Vec::new(),
            text: None,
            html: None,
            attachments: Vec::new(),
            inline: Vec::new(),
            in_reply_to: None,
            references: Vec::new(),
            priority: Priority::Normal,
            date,
            random,
        }
    }

    /// Checks everything the user gave and plans the message for `target`. Attachments are
    /// opened to check they are readable regular files, but not read.
    pub fn build(self, target: Target) -> Result<Message, MessageError> {
        let all = std::iter::once(&self.from)
            .chain(&self.to)
            .chain(&self.cc)
            .chain(&self.bcc)
            .chain(&self.reply_to);
        let mut smtputf8 = false;
        for mailbox in all {
            mailbox.validate()?;
            if mailbox.needs_smtputf8() {
                if !target.smtputf8 {
                    return Err(MessageError::NeedsSmtpUtf8(mailbox.addr_spec_unicode()));
                }
                smtputf8 = true;
            }
        }
        check_text("Subject", &self.subject)?;

        let mut boundaries = Boundaries::new(self.random);
        let mut eight_bit = false;
        let root = self.body_tree(target, &mut boundaries, &mut eight_bit)?;

        let message_id = format!(
            "<{}.{}@{}>",
            compact_timestamp(self.date),
            hex(&derive(&self.random, b"message-id")[..16]),
            self.from.ascii_domain()?
        );
        let mut headers = vec![
            HeaderField {
                name: "Date".into(),
                value: format!(" {}", format_date(self.date)),
            },
            address_field("From", std::slice::from_ref(&self.from), smtputf8)?,
        ];
        if let Some(reply_to) = &self.reply_to {
            headers.push(address_field(
                "Reply-To",
                std::slice::from_ref(reply_to),
                smtputf8,
            )?);
        }
        if !self.to.is_empty() {
            headers.push(address_field("To", &self.to, smtputf8)?);
        }
        if !self.cc.is_empty() {
            headers.push(address_field("Cc", &self.cc, smtputf8)?);
        }
        if !self.subject.is_empty() {
            headers.push(HeaderField {
                name: "Subject".into(),
                value: fold("Subject", &unstructured_tokens("Subject", &self.subject)),
            });
        }
        headers.push(HeaderField {
            name: "Message-ID".into(),
            value: format!(" {message_id}"),
        });
        if let Some(id) = &self.in_reply_to {
            headers.push(HeaderField {
                name: "In-Reply-To".into(),
                value: format!(" {}", id.as_str()),
            });
        }
        if !self.references.is_empty() {
            let tokens: Vec<String> = self
                .references
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    if i == 0 {
                        id.as_str().to_string()
                    } else {
                        format!(" {}", id.as_str())
                    }
                })
                .collect();
            headers.push(HeaderField {
                name: "References".into(),
                value: fold("References", &tokens),
            });
        }
        headers.push(HeaderField {
            name: "MIME-Version".into(),
            value: " 1.0".into(),
        });
        headers.extend(self.priority.fields());
        let ours = headers.len();
        for (name, value) in &self.headers {
            let field = extra_field(name, value)?;
            // In-Reply-To and References may occur once (RFC 5322 §3.6); two priorities would
            // contradict each other. A `--header` alone may still set any of them.
            if headers[..ours]
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(name) && is_flag_field(name))
            {
                return Err(MessageError::BadHeader {
                    name: name.to_string(),
                    reason: "it is also set by --in-reply-to, --references or --priority; \
                             give it once"
                        .into(),
                });
            }
            headers.push(field);
        }
        let Part {
            headers: root_headers,
            body,
        } = root;
        headers.extend(root_headers);

        let mut seen = HashSet::new();
        let recipients = self
            .to
            .iter()
            .chain(&self.cc)
            .chain(&self.bcc)
            .filter(|m| seen.insert((m.local.clone(), m.domain.to_lowercase())))
            .cloned()
            .collect();
        Ok(Message {
            headers,
            body,
            message_id,
            smtputf8,
            eight_bit,
            from: self.from,
            recipients,
        })
    }

    /// text | html | alternative(text, html), html becoming related(html, images...) with
    /// inline images, all inside mixed(..., attachments...) when there are attachments.
    fn body_tree(
        &self,
        target: Target,
        boundaries: &mut Boundaries,
        eight_bit: &mut bool,
    ) -> Result<Part, MessageError> {
        let text = match &self.text {
            Some(t) => Some(text_part(
                "text/plain",
                t,
                "the text body",
                target,
                eight_bit,
            )?),
            None => None,
        };
        let html = match &self.html {
            Some(h) => Some(text_part(
                "text/html",
                h,
                "the HTML body",
                target,
                eight_bit,
            )?),
            None => None,
        };
        let html = match (html, self.inline.is_empty()) {
            (None, false) => return Err(MessageError::InlineWithoutHtml),
            (None, true) => None,
            (Some(h), true) => Some(h),
            (Some(h), false) => {
                let mut parts = vec![h];
                let mut names = HashSet::new();
                for image in &self.inline {
                    let part = file_part(image, Disposition::Inline)?;
                    if !names.insert(part.1.clone()) {
                        return Err(MessageError::BadFileName {
                            name: part.1,
                            reason: "two inline images have this name (Content-ID)".into(),
                        });
                    }
                    parts.push(part.0);
                }
                Some(multipart(
                    "related; type=\"text/html\"",
                    boundaries.next(),
                    parts,
                    *eight_bit,
                ))
            }
        };
        let core = match (text, html) {
            (Some(t), Some(h)) => {
                multipart("alternative", boundaries.next(), vec![t, h], *eight_bit)
            }
            (Some(t), None) => t,
            (None, Some(h)) => h,
            (None, None) => text_part("text/plain", b"", "the text body", target, eight_bit)?,
        };
        if self.attachments.is_empty() {
            return Ok(core);
        }
        let mut parts = vec![core];
        for attachment in &self.attachments {
            parts.push(file_part(attachment, Disposition::Attachment)?.0);
        }
        Ok(multipart("mixed", boundaries.next(), parts, *eight_bit))
    }
}

/// A message ready to be written: header fields fixed, body planned, files not yet read.
#[derive(Debug, Clone)]
pub struct Message {
    headers: Vec<HeaderField>,
    body: Body,
    message_id: String,
    smtputf8: bool,
    eight_bit: bool,
    from: Mailbox,
    recipients: Vec<Mailbox>,
}

impl Message {
    /// The From mailbox (the default envelope sender).
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// To, Cc and Bcc, without duplicates: the RCPT TO list.
    pub fn recipients(&self) -> &[Mailbox] {
        &self.recipients
    }

    fn emit_body(&self, emit: &mut dyn Emit) -> io::Result<()> {
        self.body.emit(emit)?;
        if self.body.needs_final_crlf() {
            emit.bytes(b"\r\n")?;
        }
        Ok(())
    }
}

impl Outgoing for Message {
    fn size(&self) -> io::Result<u64> {
        let mut counter = Counter(0);
        self.emit_body(&mut counter)?;
        Ok(headers_len(&self.headers) + counter.0)
    }

    fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        write_message(&self.headers, w, |out| self.emit_body(&mut Writer(out)))
    }

    fn headers(&self) -> &[HeaderField] {
        &self.headers
    }

    fn write_body(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut out = io::BufWriter::with_capacity(64 * 1024, w);
        self.emit_body(&mut Writer(&mut out))?;
        out.flush()
    }

    fn prepend_header(&mut self, name: &str, value: &str) -> Result<(), MessageError> {
        self.headers.insert(0, HeaderField::validated(name, value)?);
        Ok(())
    }

    fn message_id(&self) -> Option<&str> {
        Some(&self.message_id)
    }

    fn needs_smtputf8(&self) -> bool {
        self.smtputf8
    }

    fn needs_8bitmime(&self) -> bool {
        self.eight_bit
    }
}

/// A MIME entity: its own Content-* fields and its body.
#[derive(Debug, Clone)]
struct Part {
    headers: Vec<HeaderField>,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    /// Text already normalised and transfer-encoded.
    Encoded(Vec<u8>),
    /// A file of a known length, base64-encoded as it is written.
    File {
        path: PathBuf,
        len: u64,
    },
    /// Bytes in memory, base64-encoded as they are written.
    Data(Vec<u8>),
    Multipart {
        boundary: String,
        parts: Vec<Part>,
    },
}

impl Body {
    /// Writes the body without a final CRLF of its own: in a multipart that CRLF belongs to the
    /// next delimiter (RFC 2046 §5.1.1).
    fn emit(&self, emit: &mut dyn Emit) -> io::Result<()> {
        match self {
            Body::Encoded(bytes) => emit.bytes(bytes),
            Body::File { path, len } => emit.file(path, *len),
            Body::Data(data) => emit.data(data),
            Body::Multipart { boundary, parts } => {
                for part in parts {
                    emit.bytes(format!("--{boundary}\r\n").as_bytes())?;
                    for field in &part.headers {
                        emit.bytes(field.to_wire().as_bytes())?;
                    }
                    emit.bytes(b"\r\n")?;
                    part.body.emit(emit)?;
                    emit.bytes(b"\r\n")?;
                }
                emit.bytes(format!("--{boundary}--").as_bytes())
            }
        }
    }

    /// True when the body written last in a message leaves its last line unterminated.
    fn needs_final_crlf(&self) -> bool {
        match self {
            Body::Encoded(bytes) => !bytes.is_empty() && !bytes.ends_with(b"\r\n"),
            Body::File { len, .. } => *len > 0,
            Body::Data(data) => !data.is_empty(),
            Body::Multipart { .. } => true,
        }
    }
}

/// Where a body goes: to a writer, or to a counter that knows base64 lengths from file sizes.
trait Emit {
    fn bytes(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn file(&mut self, path: &Path, len: u64) -> io::Result<()>;
    fn data(&mut self, data: &[u8]) -> io::Result<()>;
}

struct Writer<'a>(&'a mut dyn Write);

impl Emit for Writer<'_> {
    fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn file(&mut self, path: &Path, len: u64) -> io::Result<()> {
        let mut file = File::open(path).map_err(|e| with_path(path, e))?;
        stream_base64(&mut file, len, self.0).map_err(|e| with_path(path, e))
    }

    fn data(&mut self, data: &[u8]) -> io::Result<()> {
        write_base64_lines(data, self.0)
    }
}

struct Counter(u64);

impl Emit for Counter {
    fn bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0 += bytes.len() as u64;
        Ok(())
    }

    /// Checks the file still has the length the plan was made with.
    fn file(&mut self, path: &Path, len: u64) -> io::Result<()> {
        let now = std::fs::metadata(path)
            .map_err(|e| with_path(path, e))?
            .len();
        if now != len {
            return Err(with_path(
                path,
                io::Error::other(format!("changed size from {len} to {now} octets")),
            ));
        }
        self.0 += base64_lines_len(len);
        Ok(())
    }

    fn data(&mut self, data: &[u8]) -> io::Result<()> {
        self.0 += base64_lines_len(data.len() as u64);
        Ok(())
    }
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Picks the transfer encoding for a text body (RFC 2045 §6): 7bit for ASCII with lines of at
/// most 998 octets, 8bit for such UTF-8 when the server has 8BITMIME, else quoted-printable.
fn text_part(
    content_type: &str,
    raw: &[u8],
    what: &str,
    target: Target,
    eight_bit: &mut bool,
) -> Result<Part, MessageError> {
    if let Err(e) = std::str::from_utf8(raw) {
        return Err(MessageError::NotUtf8 {
            what: what.to_string(),
            offset: e.valid_up_to(),
        });
    }
    let text = normalize_crlf(raw);
    let lines_fit = text
        .split(|&b| b == b'\n')
        .all(|l| l.strip_suffix(b"\r").unwrap_or(l).len() <= MAX_LINE);
    let unencoded_ok = lines_fit && !text.contains(&0) && !text.windows(2).any(|w| w == b"=_");
    let (encoding, body) = if unencoded_ok && text.is_ascii() {
        ("7bit", text)
    } else if unencoded_ok && target.eight_bit_mime {
        *eight_bit = true;
        ("8bit", text)
    } else {
        ("quoted-printable", quoted_printable(&text))
    };
    Ok(Part {
        headers: vec![
            HeaderField {
                name: "Content-Type".into(),
                value: format!(" {content_type}; charset=utf-8"),
            },
            HeaderField {
                name: "Content-Transfer-Encoding".into(),
                value: format!(" {encoding}"),
            },
        ],
        body: Body::Encoded(body),
    })
}

/// A multipart entity; labelled 8bit when a part inside is (RFC 2045 §6.4).
fn multipart(subtype: &str, boundary: String, parts: Vec<Part>, eight_bit: bool) -> Part {
    let mut headers = vec![HeaderField {
        name: "Content-Type".into(),
        value: fold(
            "Content-Type",
            &[
                format!("multipart/{subtype};"),
                format!(" boundary=\"{boundary}\""),
            ],
        ),
    }];
    if eight_bit {
        headers.push(HeaderField {
            name: "Content-Transfer-Encoding".into(),
            value: " 8bit".into(),
        });
    }
    Part {
        headers,
        body: Body::Multipart { boundary, parts },
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Attachment,
    Inline,
}

/// A base64 part for an attachment or inline image, and its file name.
fn file_part(
    attachment: &Attachment,
    disposition: Disposition,
) -> Result<(Part, String), MessageError> {
    let (filename, body) = match attachment {
        Attachment::File(path) => {
            let name = path
                .file_name()
                .ok_or_else(|| MessageError::Input {
                    path: path.clone(),
                    source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
                })?
                .to_str()
                .ok_or_else(|| MessageError::BadFileName {
                    name: path.display().to_string(),
                    reason: "it is not valid UTF-8; rename the file".into(),
                })?
                .to_string();
            let input = |source| MessageError::Input {
                path: path.clone(),
                source,
            };
            let file = File::open(path).map_err(input)?;
            let meta = file.metadata().map_err(input)?;
            if !meta.is_file() {
                return Err(input(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file",
                )));
            }
            let body = Body::File {
                path: path.clone(),
                len: meta.len(),
            };
            (name, body)
        }
        Attachment::Data { filename, data } => (filename.clone(), Body::Data(data.clone())),
    };
    check_filename(&filename, disposition)?;
    let mut content_type = vec![format!("{};", attachment_type(&filename))];
    content_type.extend(name_param(&filename));
    let disposition_word = match disposition {
        Disposition::Attachment => "attachment;",
        Disposition::Inline => "inline;",
    };
    let mut content_disposition = vec![disposition_word.to_string()];
    content_disposition.extend(filename_params(&filename));
    let mut headers = vec![
        HeaderField {
            name: "Content-Type".into(),
            value: fold("Content-Type", &content_type),
        },
        HeaderField {
            name: "Content-Transfer-Encoding".into(),
            value: " base64".into(),
        },
        HeaderField {
            name: "Content-Disposition".into(),
            value: fold("Content-Disposition", &content_disposition),
        },
    ];
    if disposition == Disposition::Inline {
        headers.push(HeaderField {
            name: "Content-ID".into(),
            value: format!(" <{filename}>"),
        });
    }
    Ok((Part { headers, body }, filename))
}

/// The content type guessed from the name. message/* and multipart/* may not be
/// base64-encoded (RFC 2046 §5.2.1, RFC 2045 §6.4), so such files go as application/octet-stream.
fn attachment_type(filename: &str) -> String {
    let mime = mime_guess::from_path(filename).first_or_octet_stream();
    match mime.type_().as_str() {
        "message" | "multipart" => "application/octet-stream".to_string(),
        _ => mime.essence_str().to_string(),
    }
}

/// File names with control characters are refused, not encoded: a CR or LF would survive the
/// encoding into the recipient's file system. Inline names become Content-IDs and `cid:` URLs
/// (RFC 2392), so they are limited to characters that need no escaping in either.
fn check_filename(name: &str, disposition: Disposition) -> Result<(), MessageError> {
    let bad = |reason: &str| MessageError::BadFileName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(bad(
            "it contains a control character (such as CR or LF); rename the file",
        ));
    }
    if disposition == Disposition::Inline && name.len() > INLINE_NAME_MAX {
        return Err(bad(
            "an inline image name must be at most 200 characters; rename the file",
        ));
    }
    if disposition == Disposition::Inline
        && !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~+-".contains(&b))
    {
        return Err(bad(
            "an inline image name becomes a Content-ID and a cid: URL, so it may only hold \
             ASCII letters, digits and . _ ~ + -; rename the file",
        ));
    }
    Ok(())
}

/// Longest inline image name: it becomes the Content-ID, which cannot be folded.
const INLINE_NAME_MAX: usize = 200;

/// Short printable ASCII without `"` or `\` goes in a plain quoted string.
fn is_simple_filename(name: &str) -> bool {
    name.len() <= 60
        && name
            .bytes()
            .all(|b| (32..=126).contains(&b) && b != b'"' && b != b'\\')
}

/// `filename="..."`, or RFC 2231 `filename*=utf-8''...` (with continuations when long).
fn filename_params(name: &str) -> Vec<String> {
    if is_simple_filename(name) {
        return vec![format!(" filename=\"{name}\"")];
    }
    let params = rfc2231_params("filename", name);
    let last = params.len() - 1;
    params
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            if i < last {
                format!(" {p};")
            } else {
                format!(" {p}")
            }
        })
        .collect()
}

/// The Content-Type `name=` fallback for readers without RFC 2231: RFC 2047 words inside the
/// quoted string, as common mail programs write and read it.
fn name_param(name: &str) -> Vec<String> {
    if is_simple_filename(name) {
        return vec![format!(" name=\"{name}\"")];
    }
    // ` name="` before the first word and `"` after the last must fit in 76 columns.
    let budget = MAX_WORD - 8;
    let mut tokens = words_as_tokens(encoded_words(name, budget, budget));
    tokens[0] = format!(" name=\"{}", tokens[0]);
    if let Some(last) = tokens.last_mut() {
        last.push('"');
    }
    tokens
}

/// An address field, folded between mailboxes and between encoded words.
fn address_field(
    name: &str,
    mailboxes: &[Mailbox],
    smtputf8: bool,
) -> Result<HeaderField, MessageError> {
    let mut tokens: Vec<String> = Vec::new();
    for (i, mailbox) in mailboxes.iter().enumerate() {
        let first_max = if i == 0 {
            first_word_budget(name)
        } else {
            MAX_WORD
        };
        let mut own = mailbox.header_tokens(smtputf8, first_max)?;
        if i > 0 {
            own[0] = format!(" {}", own[0]);
        }
        if i + 1 < mailboxes.len() {
            if let Some(last) = own.last_mut() {
                last.push(',');
            }
        }
        tokens.extend(own);
    }
    Ok(HeaderField {
        name: name.into(),
        value: fold(name, &tokens),
    })
}

/// A `--header` field: a valid name that does not clash with ours, a value without control
/// characters; ASCII values are folded at white space as given, others RFC 2047-encoded as
/// unstructured text.
fn extra_field(name: &str, value: &str) -> Result<HeaderField, MessageError> {
    check_field_name(name)?;
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || lower.starts_with("content-") {
        return Err(MessageError::BadHeader {
            name: name.to_string(),
            reason: "this field is written from the other options; use those instead".into(),
        });
    }
    check_text(name, value)?;
    let tokens = if value.is_ascii() {
        split_before_spaces(value)
    } else {
        unstructured_tokens(name, value)
    };
    if std::iter::once(&String::new())
        .chain(&tokens)
        .any(|t| name.len() + 2 + t.len() > MAX_LINE)
    {
        return Err(MessageError::BadHeader {
            name: name.to_string(),
            reason: "the value has a word too long to fit in a 998-octet line".into(),
        });
    }
    Ok(HeaderField {
        name: name.to_string(),
        value: fold(name, &tokens),
    })
}

/// Tokens that each start with their run of spaces, so folding before any of them is exact
/// and no folded line holds only white space.
fn split_before_spaces(value: &str) -> Vec<String> {
    let bytes = value.as_bytes();
    let (Some(first), Some(last)) = (
        bytes.iter().position(|&b| b != b' '),
        bytes.iter().rposition(|&b| b != b' '),
    ) else {
        return if value.is_empty() {
            Vec::new()
        } else {
            vec![value.to_string()]
        };
    };
    let mut starts = vec![0];
    for i in first + 1..=last {
        if bytes[i] == b' ' && bytes[i - 1] != b' ' {
            starts.push(i);
        }
    }
    starts.push(value.len());
    starts
        .windows(2)
        .map(|w| value[w[0]..w[1]].to_string())
        .collect()
}

/// Boundaries from the injected randomness, one per multipart.
struct Boundaries {
    seed: [u8; 16],
    count: u8,
}

impl Boundaries {
    fn new(seed: [u8; 16]) -> Boundaries {
        Boundaries { seed, count: 0 }
    }

    fn next(&mut self) -> String {
        self.count += 1;
        let label = [b'b', b'o', b'u', b'n', b'd', self.count];
        format!("=_qm_{}", hex(&derive(&self.seed, &label)[..12]))
    }
}

/// Independent values from one seed: SHA-256(seed || label).
fn derive(seed: &[u8; 16], label: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(seed);
    ctx.update(label);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::lint::lint;
    use crate::message::ErrorClass;
    use std::time::{Duration, UNIX_EPOCH};

    const PLAIN: Target = Target {
        smtputf8: false,
        eight_bit_mime: false,
    };

    fn compose() -> Compose {
        let mut c = Compose::new(
            Mailbox::parse("Ada Lovelace <ada@example.com>").unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_795_000_000),
            [7; 16],
        );
        c.to = Mailbox::parse_list("bob@example.org").unwrap();
        c.subject = "Hello".into();
        c.text = Some(b"Hi Bob\n".to_vec());
        c
    }

    /// Writes the message, checks size() and the lint, returns the text.
    fn render(m: &Message, target: Target) -> String {
        let mut out = Vec::new();
        m.write_to(&mut out).unwrap();
        assert_eq!(m.size().unwrap(), out.len() as u64);
        let lint_target = Target {
            smtputf8: m.needs_smtputf8(),
            eight_bit_mime: m.needs_8bitmime(),
        };
        lint(&out, lint_target).unwrap();
        assert!(!m.needs_8bitmime() || target.eight_bit_mime);
        let mut body = Vec::new();
        m.write_body(&mut body).unwrap();
        assert!(out.ends_with(&body));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn simple_text_message() {
        let m = compose().build(PLAIN).unwrap();
        let text = render(&m, PLAIN);
        let id = m.message_id().unwrap();
        assert!(id.starts_with("<20261118T110640.") && id.ends_with("@example.com>"));
        assert_eq!(
            text,
            format!(
                "Date: Wed, 18 Nov 2026 11:06:40 +0000\r\n\
                 From: Ada Lovelace <ada@example.com>\r\n\
                 To: bob@example.org\r\n\
                 Subject: Hello\r\n\
                 Message-ID: {id}\r\n\
                 MIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: 7bit\r\n\
                 \r\n\
                 Hi Bob\r\n"
            )
        );
        assert_eq!(m.headers().len(), 8);
    }

    #[test]
    fn same_inputs_same_bytes_and_different_seed_different_ids() {
        let a = render(&compose().build(PLAIN).unwrap(), PLAIN);
        let b = render(&compose().build(PLAIN).unwrap(), PLAIN);
        assert_eq!(a, b);
        let mut other = compose();
        other.random = [8; 16];
        let other = other.build(PLAIN).unwrap();
        assert_ne!(
            other.message_id(),
            compose().build(PLAIN).unwrap().message_id()
        );
    }

    #[test]
    fn transfer_encoding_choice() {
        let cte = |text: &[u8], target: Target| {
            let mut c = compose();
            c.text = Some(text.to_vec());
            let m = c.build(target).unwrap();
            let rendered = render(&m, target);
            let start = rendered.find("Content-Transfer-Encoding: ").unwrap() + 27;
            let end = start + rendered[start..].find("\r\n").unwrap();
            (rendered[start..end].to_string(), m.needs_8bitmime())
        };
        let eight = Target {
            smtputf8: false,
            eight_bit_mime: true,
        };
        assert_eq!(cte(b"plain", PLAIN), ("7bit".into(), false));
        assert_eq!(
            cte("café".as_bytes(), PLAIN),
            ("quoted-printable".into(), false)
        );
        assert_eq!(cte("café".as_bytes(), eight), ("8bit".into(), true));
        assert_eq!(cte(&[b'x'; 999], eight), ("quoted-printable".into(), false));
        assert_eq!(cte(&[b'x'; 998], PLAIN), ("7bit".into(), false));
        assert_eq!(cte(b"a\0b", eight), ("quoted-printable".into(), false));
        // Text holding the boundary prefix is encoded so no boundary can appear in it.
        assert_eq!(cte(b"--=_qm_x", eight), ("quoted-printable".into(), false));
    }

    #[test]
    fn body_line_endings_normalised() {
        let mut c = compose();
        c.text = Some(b"a\rb\nc\r\n.d".to_vec());
        let text = render(&c.build(PLAIN).unwrap(), PLAIN);
        assert!(text.ends_with("\r\n\r\na\r\nb\r\nc\r\n.d\r\n"), "{text}");
    }

    #[test]
    fn full_tree_with_everything() {
        let dir = tempfile::tempdir().unwrap();
        let pdf = dir.path().join("résumé final.pdf");
        std::fs::write(&pdf, vec![0xffu8; 1000]).unwrap();
        let logo = dir.path().join("logo.png");
        std::fs::write(&logo, b"\x89PNG...").unwrap();
        let mut c = compose();
        c.html = Some(b"<p><img src=\"cid:logo.png\"></p>".to_vec());
        c.inline = vec![Attachment::File(logo)];
        c.attachments = vec![
            Attachment::File(pdf),
            Attachment::Data {
                filename: "results.csv".into(),
                data: b"question,given\n1,a\n".to_vec(),
            },
        ];
        c.cc = Mailbox::parse_list("\"Lovelace, Ada\" <a2@example.com>").unwrap();
        c.bcc = Mailbox::parse_list("hidden@example.net, bob@EXAMPLE.org").unwrap();
        let m = c.build(PLAIN).unwrap();
        let text = render(&m, PLAIN);
        assert!(
            text.contains("Content-Type: multipart/mixed; boundary=\"=_qm_"),
            "{text}"
        );
        assert!(text.contains("Content-Type: multipart/alternative;"));
        assert!(text.contains("Content-Type: multipart/related; type=\"text/html\";"));
        assert!(text.contains("Content-ID: <logo.png>"));
        assert!(text.contains("Content-Disposition: inline; filename=\"logo.png\""));
        assert!(text.contains("filename*=utf-8''r%C3%A9sum%C3%A9%20final.pdf"));
        assert!(text.contains("name=\"=?utf-8?B?csOpc3Vtw6kgZmluYWwucGRm?=\""));
        assert!(text.contains("Content-Type: text/csv; name=\"results.csv\""));
        assert!(!text.to_ascii_lowercase().contains("hidden"));
        let rcpts: Vec<String> = m
            .recipients()
            .iter()
            .map(|r| r.addr_spec_unicode())
            .collect();
        assert_eq!(
            rcpts,
            ["bob@example.org", "a2@example.com", "hidden@example.net"]
        );
    }

    #[test]
    fn html_only_and_empty() {
        let mut c = compose();
        c.text = None;
        c.html = Some(b"<b>x</b>".to_vec());
        let text = render(&c.build(PLAIN).unwrap(), PLAIN);
        assert!(text.contains("Content-Type: text/html; charset=utf-8\r\n"));
        let mut c = compose();
        c.text = None;
        c.subject = String::new();
        let text = render(&c.build(PLAIN).unwrap(), PLAIN);
        assert!(!text.contains("Subject:"));
        assert!(text.ends_with("7bit\r\n\r\n"));
    }

    #[test]
    fn message_attachments_are_not_base64_message_types() {
        assert_eq!(attachment_type("old.eml"), "application/octet-stream");
        assert_eq!(attachment_type("a.pdf"), "application/pdf");
        assert_eq!(attachment_type("noext"), "application/octet-stream");
    }

    #[test]
    fn refusals_and_their_classes() {
        let class = |c: Compose| c.build(PLAIN).unwrap_err().class();
        let mut c = compose();
        c.subject = "Hi\r\nBcc: victim@example.com".into();
        assert_eq!(class(c), ErrorClass::Data);
        let mut c = compose();
        c.from.display_name = Some("Ada\nBcc: x@y.z".into());
        assert_eq!(class(c), ErrorClass::Data);
        let mut c = compose();
        c.to[0].local = "bob\r\nX".into();
        assert_eq!(class(c), ErrorClass::Data);
        for (name, value) in [
            ("X-Ok\r\nBcc", "v"),
            ("X Space", "v"),
            ("X-Colon:", "v"),
            ("X-Tag", "v\r\nBcc: x"),
            ("X-Tag", "v\nb"),
            ("from", "v"),
            ("Message-Id", "v"),
            ("CONTENT-TYPE", "v"),
            ("Bcc", "v"),
            ("MIME-Version", "v"),
        ] {
            let mut c = compose();
            c.headers = vec![(name.into(), value.into())];
            assert_eq!(class(c), ErrorClass::Data, "{name:?}: {value:?}");
        }
        let mut c = compose();
        c.text = Some(vec![b'a', 0xff]);
        assert!(matches!(
            c.build(PLAIN),
            Err(MessageError::NotUtf8 { offset: 1, .. })
        ));
        let mut c = compose();
        c.attachments = vec![Attachment::File("/nonexistent/quizmail/x.pdf".into())];
        assert_eq!(class(c), ErrorClass::Input);
        let mut c = compose();
        c.attachments = vec![Attachment::File("/".into())];
        assert_eq!(class(c), ErrorClass::Input);
        for name in ["a\r\nb.txt", "a\nb", "tab\t.txt", ""] {
            let mut c = compose();
            c.attachments = vec![Attachment::Data {
                filename: name.into(),
                data: vec![1],
            }];
            assert!(
                matches!(c.build(PLAIN), Err(MessageError::BadFileName { .. })),
                "{name:?}"
            );
        }
        let mut c = compose();
        c.inline = vec![Attachment::Data {
            filename: "x.png".into(),
            data: vec![1],
        }];
        assert!(matches!(
            c.build(PLAIN),
            Err(MessageError::InlineWithoutHtml)
        ));
        let mut c = compose();
        c.html = Some(b"<p>".to_vec());
        c.inline = vec![Attachment::Data {
            filename: "my logo.png".into(),
            data: vec![1],
        }];
        assert!(matches!(
            c.build(PLAIN),
            Err(MessageError::BadFileName { .. })
        ));
        let mut c = compose();
        c.html = Some(b"<p>".to_vec());
        c.inline = vec![Attachment::Data {
            filename: format!("{}.png", "x".repeat(300)),
            data: vec![1],
        }];
        assert!(matches!(
            c.build(PLAIN),
            Err(MessageError::BadFileName { .. })
        ));
        let mut c = compose();
        c.headers = vec![("X".repeat(997), String::new())];
        assert!(matches!(
            c.build(PLAIN),
            Err(MessageError::BadHeader { .. })
        ));
    }

    #[test]
    fn smtputf8_addresses() {
        let mut c = compose();
        c.to = Mailbox::parse_list("jörg@bücher.example").unwrap();
        assert!(matches!(
            c.clone().build(PLAIN),
            Err(MessageError::NeedsSmtpUtf8(_))
        ));
        let utf8 = Target {
            smtputf8: true,
            eight_bit_mime: true,
        };
        let m = c.build(utf8).unwrap();
        assert!(m.needs_smtputf8());
        let text = render(&m, utf8);
        assert!(text.contains("To: jörg@bücher.example\r\n"));
        // An IDN domain alone needs no SMTPUTF8: it becomes A-labels.
        let mut c = compose();
        c.to = Mailbox::parse_list("Jörg <joerg@bücher.example>").unwrap();
        let m = c.build(utf8).unwrap();
        assert!(!m.needs_smtputf8());
        let text = render(&m, utf8);
        assert!(text.contains("To: =?utf-8?B?SsO2cmc=?= <joerg@xn--bcher-kva.example>\r\n"));
    }

    #[test]
    fn long_fields_fold() {
        let mut c = compose();
        c.subject = "Ünïcödé subject that is long enough to need several encoded words ".repeat(4);
        c.to = (0..30)
            .map(|i| Mailbox::parse(&format!("Persön {i} <p{i}@example.com>")).unwrap())
            .collect();
        c.headers = vec![("X-Long".into(), "word ".repeat(100))];
        let text = render(&c.build(PLAIN).unwrap(), PLAIN);
        let head = &text[..text.find("\r\n\r\n").unwrap()];
        assert!(head.split("\r\n").all(|l| l.len() <= 76), "{head}");
    }

    #[test]
    fn prepend_header_and_header_args() {
        let mut m = compose().build(PLAIN).unwrap();
        m.prepend_header("DKIM-Signature", " v=1; a=ed25519-sha256;\r\n b=abc")
            .unwrap();
        let text = render(&m, PLAIN);
        assert!(text.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;\r\n b=abc\r\nDate:"));
        assert_eq!(
            parse_header_arg("X-Tag:  two  spaces ").unwrap(),
            ("X-Tag".to_string(), "two  spaces ".to_string())
        );
        assert!(parse_header_arg("no colon").is_err());
        assert_eq!(split_before_spaces("a  b c "), ["a", "  b", " c "]);
        assert_eq!(split_before_spaces("   "), ["   "]);
        assert!(split_before_spaces("").is_empty());
    }

    #[test]
    fn threading_and_priority_fields() {
        let mut c = compose();
        c.reply_to = Some(Mailbox::parse("Ops <ops@example.com>").unwrap());
        c.in_reply_to = Some(MessageId::parse("build-41@ci.example").unwrap());
        c.references = (0..6)
            .map(|i| MessageId::parse(&format!("<build-{i}.aaaaaaaaaaaaaaaa@ci.example>")).unwrap())
            .collect();
        c.priority = Priority::High;
        c.headers = vec![("X-Tag".into(), "v".into())];
        let text = render(&c.build(PLAIN).unwrap(), PLAIN);
        let head = &text[..text.find("\r\n\r\n").unwrap()];
        assert!(
            head.contains("\r\nReply-To: Ops <ops@example.com>\r\n"),
            "{head}"
        );
        assert!(
            head.contains("\r\nIn-Reply-To: <build-41@ci.example>\r\n"),
            "{head}"
        );
        let references = head.split("\r\nReferences:").nth(1).unwrap();
        let references = references.split("\r\nMIME-Version").next().unwrap();
        assert!(references.contains("\r\n "), "folded: {references:?}");
        let ids: Vec<&str> = references.split_whitespace().collect();
        assert_eq!(ids.len(), 6);
        assert_eq!(ids[0], "<build-0.aaaaaaaaaaaaaaaa@ci.example>");
        assert!(head.contains("MIME-Version: 1.0\r\nX-Priority: 1\r\nImportance: high\r\nX-Tag: v"));

        let mut c = compose();
        c.priority = Priority::Low;
        let text = render(&c.build(PLAIN).unwrap(), PLAIN);
        assert!(
            text.contains("X-Priority: 5\r\nImportance: low\r\n"),
            "{text}"
        );
        let mut c = compose();
        c.priority = Priority::Normal;
        let text = render(&c.build(PLAIN).unwrap(), PLAIN);
        assert!(!text.contains("X-Priority") && !text.contains("Importance"));
        assert!(!text.contains("In-Reply-To") && !text.contains("References"));
    }

    #[test]
    fn a_header_may_set_a_threading_or_priority_field_only_when_no_flag_does() {
        let mut c = compose();
        c.headers = vec![
            ("In-Reply-To".into(), "<a@b>".into()),
            ("X-Priority".into(), "2".into()),
        ];
        assert!(c.build(PLAIN).is_ok());
        for (name, set) in [
            ("in-reply-to", 0),
            ("References", 1),
            ("X-Priority", 2),
            ("IMPORTANCE", 2),
        ] {
            let mut c = compose();
            match set {
                0 => c.in_reply_to = Some(MessageId::parse("<a@b>").unwrap()),
                1 => c.references = vec![MessageId::parse("<a@b>").unwrap()],
                _ => c.priority = Priority::Low,
            }
            c.headers = vec![(name.into(), "x".into())];
            assert!(
                matches!(c.build(PLAIN), Err(MessageError::BadHeader { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn attachment_changing_size_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grow.bin");
        std::fs::write(&path, b"12345").unwrap();
        let mut c = compose();
        c.attachments = vec![Attachment::File(path.clone())];
        let m = c.build(PLAIN).unwrap();
        render(&m, PLAIN);
        std::fs::write(&path, b"123456").unwrap();
        assert!(m.size().is_err());
        assert!(m.write_to(&mut io::sink()).is_err());
    }
}
