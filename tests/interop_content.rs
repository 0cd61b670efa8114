//! Interop tests for message content and DKIM: the built `quizmail` binary sends through real
//! servers (aiosmtpd with STARTTLS, and Postfix's submission port), and the copy the server
//! stored is checked with independent tools: mail-parser (a dev-dependency) for the MIME
//! structure and dkimpy (PyPI, in `.venv`) for the signatures.
//!
//! The servers and the venv come from `scripts/test-all`, which passes ports and paths in
//! `QUIZMAIL_IT_*` variables (see `tests/interop.rs`). Every test is `#[ignore]`d so a plain
//! `cargo test` stays offline; a missing variable, openssl or dkimpy makes a test fail, never
//! pass. The binary runs with a cleared environment and a hard wall-clock bound.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::Value;

mod real;
use real::{run_bounded, unique, var, Run};

const SENDER: &str = "sender@example.test";
/// Hard bound on one run of the binary or of dkimpy; `--timeout 10` should end it long before.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// How long Postfix may take to deliver into the maildir after accepting.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

const SUBJECT: &str = "Résumé — 試験 ✓";
const PDF_NAME: &str = "résumé-試験.pdf";
const PNG_NAME: &str = "chart.png";

/// Exit 0, one JSON object on stdout, `"sent": true`; returns the report.
fn assert_ok(run: &Run) -> Value {
    assert_eq!(run.code, 0, "unexpected exit status\n{}", run.describe());
    let j = run.json();
    assert_eq!(j["sent"], true, "{}", run.describe());
    j
}

/// The binary with the test password, bounded by RUN_LIMIT.
fn quizmail(args: &[String]) -> Run {
    real::quizmail(args, Some(&var("QUIZMAIL_IT_PASSWORD")), RUN_LIMIT)
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn path_arg(p: &Path) -> String {
    p.to_str().expect("UTF-8 temp path").to_string()
}

/// The real servers: both take STARTTLS (required), AUTH PLAIN, and store what they accept.
#[derive(Clone, Copy, Debug)]
enum Server {
    Aiosmtpd,
    Postfix,
}

impl Server {
    /// Flags that connect to this server: STARTTLS with the test CA, AUTH, no retries.
    fn args(self) -> Vec<String> {
        let port = match self {
            Server::Aiosmtpd => var("QUIZMAIL_IT_STARTTLS_PORT"),
            Server::Postfix => var("QUIZMAIL_IT_POSTFIX_SUBMISSION_PORT"),
        };
        strings(&[
            "--server",
            &format!("127.0.0.1:{port}"),
            "--tls",
            "starttls",
            "--ca-file",
            &var("QUIZMAIL_IT_CA_FILE"),
            "--user",
            &var("QUIZMAIL_IT_USER"),
            "--auth",
            "plain",
            "--timeout",
            "10",
            "--retries",
            "0",
            "--json",
        ])
    }

    /// The stored copy of the one message that went to `rcpt`, with CRLF line ends.
    fn fetch(self, rcpt: &str) -> Vec<u8> {
        match self {
            Server::Aiosmtpd => {
                let mut found = aiosmtpd_stored(rcpt);
                assert_eq!(
                    found.len(),
                    1,
                    "aiosmtpd stored {} copies for {rcpt}",
                    found.len()
                );
                found.remove(0).1
            }
            Server::Postfix => to_crlf(&postfix_delivered(rcpt)),
        }
    }
}

/// Every message the STARTTLS aiosmtpd stored with `rcpt` among its recipients.
fn aiosmtpd_stored(rcpt: &str) -> Vec<(Value, Vec<u8>)> {
    let dir = PathBuf::from(var("QUIZMAIL_IT_STARTTLS_STORE"));
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("aiosmtpd store").flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let meta: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read meta")).expect("meta json");
        if meta["rcpt_tos"]
            .as_array()
            .is_some_and(|r| r.iter().any(|a| a == rcpt))
        {
            let eml = std::fs::read(path.with_extension("eml")).expect("read eml");
            found.push((meta, eml));
        }
    }
    found
}

/// Waits (bounded) for Postfix to deliver the copy for `rcpt` into the maildir. Postfix's
/// virtual(8) writes one copy per recipient, headed by `Delivered-To: rcpt`.
fn postfix_delivered(rcpt: &str) -> Vec<u8> {
    let maildir = PathBuf::from(var("QUIZMAIL_IT_POSTFIX_MAILDIR")).join("new");
    let marker = format!("Delivered-To: {rcpt}");
    let start = Instant::now();
    loop {
        if let Ok(entries) = std::fs::read_dir(&maildir) {
            for entry in entries.flatten() {
                if let Ok(bytes) = std::fs::read(entry.path()) {
                    let text = String::from_utf8_lossy(&bytes);
                    if text.lines().any(|l| l.trim_end() == marker) {
                        return bytes;
                    }
                }
            }
        }
        assert!(
            start.elapsed() < DELIVERY_LIMIT,
            "Postfix did not deliver to {rcpt} within {DELIVERY_LIMIT:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// A maildir file uses the local LF convention; the message on the wire (what IMAP would
/// serve, and what DKIM signs) has CRLF.
fn to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The wire rules every stored copy must keep: CRLF only (aiosmtpd stores the bytes as
/// received; a Postfix copy was rebuilt from LF by `to_crlf`), lines ≤ 998 octets (RFC 5322
/// 2.1.1), no Bcc field.
fn assert_wire_rules(raw: &[u8]) {
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && raw[i - 1] == b'\r', "bare LF at byte {i}");
        }
        if b == b'\r' {
            assert_eq!(raw.get(i + 1), Some(&b'\n'), "bare CR at byte {i}");
        }
    }
    for (n, line) in raw.split(|&b| b == b'\n').enumerate() {
        assert!(
            line.len() <= 999,
            "line {} is {} octets with its CR",
            n + 1,
            line.len()
        );
    }
    let head_end = find(raw, b"\r\n\r\n").expect("a header section");
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    assert!(
        !head.starts_with("bcc:") && !head.contains("\r\nbcc:"),
        "a Bcc field reached the server"
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn lf(text: &str) -> String {
    text.replace("\r\n", "\n")
}

// ---- test data made here, with binary bytes ----------------------------------------------------

/// A small valid PDF 1.4 (one page of text) whose body also carries every byte value 0..=255
/// in a second stream, and a binary comment line, as real PDFs do.
fn pdf() -> Vec<u8> {
    let content = b"BT /F1 18 Tf 20 40 Td (Resume test) Tj ET";
    let binary: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 80] /Contents 4 0 R \
          /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
    ];
    let stream = |data: &[u8]| {
        let mut o = format!("<< /Length {} >>\nstream\n", data.len()).into_bytes();
        o.extend_from_slice(data);
        o.extend_from_slice(b"\nendstream");
        o
    };
    objects.push(stream(content));
    objects.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec());
    objects.push(stream(&binary));
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// A valid 8x8 RGB PNG (PNG spec: IHDR, one IDAT holding a stored zlib stream, IEND).
fn png() -> Vec<u8> {
    let (w, h) = (8u32, 8u32);
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0); // filter type None
        for x in 0..w {
            raw.extend_from_slice(&[(x * 32) as u8, (y * 32) as u8, ((x ^ y) * 32) as u8]);
        }
    }
    let mut zlib = vec![0x78, 0x01, 0x01];
    let len = raw.len() as u16;
    zlib.extend_from_slice(&len.to_le_bytes());
    zlib.extend_from_slice(&(!len).to_le_bytes());
    zlib.extend_from_slice(&raw);
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", ihdr), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(&data);
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

/// A text body that SMTP and MIME must not damage: leading dots (RFC 5321 4.5.2 transparency),
/// a line of one dot (the end-of-data marker if unstuffed), a bare LF and a bare CR (normalised
/// to CRLF), trailing spaces, and a 2000-character line (over the 998 limit of RFC 5322 2.1.1).
fn tricky_text() -> String {
    let mut s = String::new();
    s.push_str(".a line that starts with a dot\r\n");
    s.push_str("..two dots\r\n");
    s.push_str(".\r\n");
    s.push_str("a bare LF follows\nand a bare CR follows\rend of those\r\n");
    s.push_str("trailing spaces   \r\n");
    let long: String = (0..2000)
        .map(|i| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]))
        .collect();
    s.push_str(&long);
    s.push_str("\r\nGrüße — 試験 ✓\r\n.\r\nlast line\r\n");
    s
}

/// What the text must decode to: every line end CRLF (the bare CR and LF become line ends).
fn normalised(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

// ---- a message with every kind of part ------------------------------------------------------

struct Files {
    _dir: tempfile::TempDir,
    text: PathBuf,
    html: PathBuf,
    png: PathBuf,
    pdf: PathBuf,
    text_body: String,
    html_body: String,
}

fn files() -> Files {
    let dir = tempfile::tempdir().expect("temp dir");
    let text_body = format!(
        "Hello,\n\nyour résumé is attached (試験 ✓).\n{}",
        tricky_text()
    );
    let html_body = format!(
        "<!DOCTYPE html>\n<html><body>\n<p>Résumé — 試験 ✓</p>\n<p><img src=\"cid:{PNG_NAME}\" \
         alt=\"chart\"></p>\n<p>{}</p>\n</body></html>\n",
        "word ".repeat(300).trim_end()
    );
    let text = dir.path().join("body.txt");
    let html = dir.path().join("page.html");
    let png_path = dir.path().join(PNG_NAME);
    let pdf_path = dir.path().join(PDF_NAME);
    std::fs::write(&text, &text_body).expect("write text");
    std::fs::write(&html, &html_body).expect("write html");
    std::fs::write(&png_path, png()).expect("write png");
    std::fs::write(&pdf_path, pdf()).expect("write pdf");
    Files {
        _dir: dir,
        text,
        html,
        png: png_path,
        pdf: pdf_path,
        text_body,
        html_body,
    }
}

/// Sends text + HTML + inline PNG + PDF with a UTF-8 subject and filename, and checks that
/// every part of the stored copy decodes to exactly what was given.
fn rich_message(server: Server, tag: &str) {
    let f = files();
    let rcpt = format!("{}@example.test", unique(tag));
    let mut args = server.args();
    args.extend(strings(&[
        "--from",
        SENDER,
        "--to",
        &rcpt,
        "--subject",
        SUBJECT,
        "--body-file",
        &path_arg(&f.text),
        "--html-file",
        &path_arg(&f.html),
        "--inline",
        &path_arg(&f.png),
        "--attach",
        &path_arg(&f.pdf),
    ]));
    let run = quizmail(&args);
    let report = assert_ok(&run);
    assert_eq!(
        report["accepted"],
        serde_json::json!([rcpt]),
        "{}",
        run.describe()
    );

    let raw = server.fetch(&rcpt);
    assert_wire_rules(&raw);
    let shown = String::from_utf8_lossy(&raw);
    let msg = MessageParser::default()
        .parse(&raw)
        .unwrap_or_else(|| panic!("stored message does not parse:\n{shown}"));
    assert_eq!(msg.subject(), Some(SUBJECT), "{shown}");
    let mid = report["message_id"]
        .as_str()
        .unwrap_or_default()
        .trim_matches(['<', '>']);
    assert_eq!(msg.message_id(), Some(mid), "{shown}");

    assert_eq!(msg.text_body_count(), 1, "{shown}");
    assert_eq!(msg.html_body_count(), 1, "{shown}");
    let text = msg.body_text(0).expect("a text body");
    assert_eq!(
        lf(&text),
        lf(&normalised(&f.text_body)),
        "text body differs"
    );
    let html = msg.body_html(0).expect("an HTML body");
    assert_eq!(lf(&html), f.html_body, "HTML body differs");

    let binary: Vec<_> = msg.parts.iter().filter(|p| p.is_binary()).collect();
    assert_eq!(binary.len(), 2, "expected the image and the PDF\n{shown}");
    let image = binary
        .iter()
        .find(|p| p.is_content_type("image", "png"))
        .unwrap_or_else(|| panic!("no image/png part\n{shown}"));
    assert_eq!(
        image.contents(),
        png().as_slice(),
        "inline image bytes differ"
    );
    let cid = image.content_id().expect("the image has a Content-ID");
    assert_eq!(cid.trim_matches(['<', '>']), PNG_NAME, "Content-ID");
    assert!(
        html.contains(&format!("cid:{}", cid.trim_matches(['<', '>']))),
        "the HTML does not refer to the image's Content-ID"
    );
    let attachment = binary
        .iter()
        .find(|p| p.is_content_type("application", "pdf"))
        .unwrap_or_else(|| panic!("no application/pdf part\n{shown}"));
    assert_eq!(attachment.attachment_name(), Some(PDF_NAME), "{shown}");
    assert_eq!(attachment.contents(), pdf().as_slice(), "PDF bytes differ");
    let disposition = attachment
        .content_disposition()
        .expect("the PDF has a Content-Disposition");
    assert!(disposition.is_attachment(), "{shown}");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn aiosmtpd_attachment_inline_image_utf8_subject_and_filename() {
    rich_message(Server::Aiosmtpd, "ct-rich");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_attachment_inline_image_utf8_subject_and_filename() {
    rich_message(Server::Postfix, "ct-pf-rich");
}

/// A text-only body with every SMTP hazard arrives intact: the dots survive (stuffed on the
/// wire, unstuffed by the server), the long line is wrapped for transport and restored by
/// decoding, bare CR/LF arrive as CRLF.
fn tricky_body(server: Server, tag: &str) {
    let rcpt = format!("{}@example.test", unique(tag));
    let body = tricky_text();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("body.txt");
    std::fs::write(&path, &body).expect("write body");
    let mut args = server.args();
    args.extend(strings(&[
        "--from",
        SENDER,
        "--to",
        &rcpt,
        "--subject",
        "dots and long lines",
        "--body-file",
        &path_arg(&path),
    ]));
    assert_ok(&quizmail(&args));
    let raw = server.fetch(&rcpt);
    assert_wire_rules(&raw);
    let shown = String::from_utf8_lossy(&raw);
    let msg = MessageParser::default()
        .parse(&raw)
        .unwrap_or_else(|| panic!("stored message does not parse:\n{shown}"));
    let text = msg.body_text(0).expect("a text body");
    assert_eq!(lf(&text), lf(&normalised(&body)), "body differs\n{shown}");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn aiosmtpd_leading_dots_bare_lf_and_long_line() {
    tricky_body(Server::Aiosmtpd, "ct-dots");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_leading_dots_bare_lf_and_long_line() {
    tricky_body(Server::Postfix, "ct-pf-dots");
}

/// `--message FILE -t`: recipients from To/Cc/Bcc; the Bcc recipient is in the envelope and
/// gets the message, and no copy carries a Bcc field (RFC 5322 3.6.3).
fn message_read_recipients(server: Server, tag: &str) {
    let id = unique(tag);
    let to = format!("{id}-to@example.test");
    let cc = format!("{id}-cc@example.test");
    let bcc = format!("{id}-bcc@example.test");
    // LF line ends on purpose: a prepared file from an editor.
    let message = format!(
        "From: Sender <{SENDER}>\nTo: {to}\nCc: {cc}\nBcc: Hidden <{bcc}>\n\
         Subject: prepared {id}\nDate: Sun, 22 Nov 2026 10:00:00 +0000\n\
         Message-ID: <{id}@example.test>\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=us-ascii\n\n.dot first\nbody of {id}\n"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("prepared.eml");
    std::fs::write(&path, &message).expect("write message");
    let mut args = server.args();
    args.extend(strings(&["--message", &path_arg(&path), "-t"]));
    let run = quizmail(&args);
    let report = assert_ok(&run);
    let mut accepted: Vec<String> = report["accepted"]
        .as_array()
        .unwrap_or_else(|| panic!("no accepted list\n{}", run.describe()))
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    accepted.sort();
    let mut expected = vec![to.clone(), cc.clone(), bcc.clone()];
    expected.sort();
    assert_eq!(accepted, expected, "{}", run.describe());
    // MAIL FROM defaults to the message's own From address (cli.md --envelope-from), not --user.
    assert_eq!(report["envelope_from"], SENDER, "{}", run.describe());

    if let Server::Aiosmtpd = server {
        let found = aiosmtpd_stored(&bcc);
        assert_eq!(found.len(), 1, "one transaction for all three recipients");
        let mut rcpts: Vec<String> = found[0].0["rcpt_tos"]
            .as_array()
            .expect("rcpt_tos")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        rcpts.sort();
        assert_eq!(rcpts, expected, "envelope recipients");
        assert_eq!(found[0].0["mail_from"], SENDER, "MAIL FROM");
    }
    for rcpt in [&to, &cc, &bcc] {
        let raw = server.fetch(rcpt);
        assert_wire_rules(&raw);
        let shown = String::from_utf8_lossy(&raw);
        let msg = MessageParser::default()
            .parse(&raw)
            .unwrap_or_else(|| panic!("stored message does not parse:\n{shown}"));
        if let Server::Postfix = server {
            let return_path = format!("Return-Path: <{SENDER}>\r\n");
            assert!(shown.starts_with(&return_path), "{shown}");
        }
        assert!(
            msg.bcc().is_none(),
            "Bcc field delivered to {rcpt}\n{shown}"
        );
        assert!(msg.to().is_some_and(|a| a.contains(&to)), "{shown}");
        assert!(msg.cc().is_some_and(|a| a.contains(&cc)), "{shown}");
        assert_eq!(msg.subject(), Some(format!("prepared {id}").as_str()));
        let text = msg.body_text(0).expect("a body");
        assert_eq!(lf(&text), format!(".dot first\nbody of {id}\n"), "{shown}");
        // The hidden address appears nowhere in the fields the sender wrote (Postfix's own
        // Delivered-To and X-Original-To name the mailbox it delivered to).
        let head_end = find(&raw, b"\r\n\r\n").expect("headers");
        let written = String::from_utf8_lossy(&raw[..head_end])
            .split("\r\n")
            .filter(|l| !l.starts_with("Delivered-To:") && !l.starts_with("X-Original-To:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!written.contains(&bcc), "{bcc} visible in\n{written}");
    }
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn aiosmtpd_message_file_read_recipients_strips_bcc() {
    message_read_recipients(Server::Aiosmtpd, "ct-bcc");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_message_file_read_recipients_strips_bcc() {
    message_read_recipients(Server::Postfix, "ct-pf-bcc");
}

// ---- DKIM end to end ------------------------------------------------------------------------

fn python() -> PathBuf {
    let path = std::env::var_os("DKIMPY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "dkimpy is required: scripts/test-all installs it in .venv (or set DKIMPY_PYTHON); \
         looked for {}",
        path.display()
    );
    path
}

/// dkimpy verifies each message; its DNS lookup answers only the expected
/// `selector._domainkey.domain.` name with the record quizmail printed.
const VERIFY_PY: &str = r#"
import base64, json, logging, sys
import dkim, nacl
logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
results = []
for case in json.load(sys.stdin):
    message = base64.b64decode(case["message"])
    record, qname = case["record"].encode(), case["qname"].encode()
    def lookup(name, timeout=5, record=record, qname=qname):
        return record if name == qname else None
    log = logging.getLogger(case["label"])
    results.append(bool(dkim.verify(message, logger=log, dnsfunc=lookup)))
print(json.dumps(results))
"#;

/// The query name and TXT text of `quizmail --dkim-dns-record`: the quoted strings joined,
/// as a resolver hands them over (RFC 6376 3.6.2.2).
fn dns_record(key: &Path, selector: &str) -> (String, String) {
    let run = quizmail(&strings(&[
        "--dkim-key",
        &path_arg(key),
        "--dkim-selector",
        selector,
        "--from",
        SENDER,
        "--dkim-dns-record",
    ]));
    assert_eq!(run.code, 0, "{}", run.describe());
    let line = run.stdout.trim();
    let (name, rest) = line
        .split_once(" IN TXT ")
        .unwrap_or_else(|| panic!("not a TXT record: {line}"));
    let txt: String = rest.split('"').skip(1).step_by(2).collect();
    assert!(txt.starts_with("v=DKIM1;"), "{txt}");
    (name.to_string(), txt)
}

/// dkimpy's verdict on each message, and its debug log.
fn verify(cases: &[(String, Vec<u8>)], qname: &str, record: &str) -> (Vec<bool>, String) {
    let input: Vec<Value> = cases
        .iter()
        .map(|(label, message)| {
            serde_json::json!({
                "label": label,
                "message": base64::engine::general_purpose::STANDARD.encode(message),
                "record": record,
                "qname": qname,
            })
        })
        .collect();
    let run = run_bounded(
        &python(),
        &strings(&["-c", VERIFY_PY]),
        &[],
        serde_json::to_string(&input).expect("json").as_bytes(),
        RUN_LIMIT,
    );
    assert_eq!(run.code, 0, "dkimpy failed to run\n{}", run.describe());
    let results: Vec<bool> = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("dkimpy output ({e})\n{}", run.describe()));
    assert_eq!(results.len(), cases.len());
    (results, run.stderr)
}

/// The copy with one body octet changed: an alphanumeric one in the middle of the body, so
/// relaxed canonicalisation cannot forgive it.
fn tampered(raw: &[u8]) -> Vec<u8> {
    let body = find(raw, b"\r\n\r\n").expect("headers") + 4;
    let mid = body + (raw.len() - body) / 2;
    let at = (mid..raw.len())
        .find(|&i| raw[i].is_ascii_alphanumeric())
        .expect("an alphanumeric body octet");
    let mut out = raw.to_vec();
    out[at] ^= 0x01;
    out
}

fn openssl_key(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut full = strings(&["genpkey"]);
    full.extend(strings(args));
    full.extend(strings(&["-out", &path_arg(&path)]));
    let run = run_bounded(Path::new("openssl"), &full, &[], b"", RUN_LIMIT);
    assert_eq!(run.code, 0, "openssl {full:?}\n{}", run.describe());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    }
    path
}

/// Signs with RSA-2048 and with Ed25519 through `server`, and has dkimpy verify the stored
/// copies (a Postfix copy has Return-Path, Delivered-To and Received added on top, which are
/// not signed) and reject each copy with one body octet changed.
fn dkim_end_to_end(server: Server, tag: &str) {
    let f = files();
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = [
        (
            "rsa-sha256",
            openssl_key(
                dir.path(),
                "rsa.pem",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            ),
        ),
        (
            "ed25519-sha256",
            openssl_key(dir.path(), "ed.pem", &["-algorithm", "ed25519"]),
        ),
    ];
    for (algorithm, key) in keys {
        let selector = format!("s{}", unique("k").replace('-', ""));
        let (qname, record) = dns_record(&key, &selector);
        assert_eq!(qname, format!("{selector}._domainkey.example.test."));
        let rcpt = format!("{}@example.test", unique(tag));
        let mut args = server.args();
        args.extend(strings(&[
            "--from",
            SENDER,
            "--to",
            &rcpt,
            "--subject",
            SUBJECT,
            "--body-file",
            &path_arg(&f.text),
            "--attach",
            &path_arg(&f.pdf),
            "--dkim-key",
            &path_arg(&key),
            "--dkim-selector",
            &selector,
        ]));
        assert_ok(&quizmail(&args));
        let raw = server.fetch(&rcpt);
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let unfolded = shown.replace("\r\n ", " ").replace("\r\n\t", " ");
        assert!(
            unfolded.contains(&format!("a={algorithm};")),
            "not signed with {algorithm}\n{shown}"
        );
        assert!(unfolded.contains(&format!("s={selector};")), "{shown}");
        assert!(unfolded.contains("d=example.test;"), "{shown}");
        let msg = MessageParser::default().parse(&raw).expect("parses");
        assert_eq!(msg.subject(), Some(SUBJECT));
        let cases = vec![
            (format!("{server:?} {algorithm} as stored"), raw.clone()),
            (
                format!("{server:?} {algorithm} body changed"),
                tampered(&raw),
            ),
        ];
        let (results, log) = verify(&cases, &qname, &record);
        assert_eq!(
            results,
            [true, false],
            "dkimpy on [as stored, body changed]\n{log}\n--- stored copy\n{shown}"
        );
    }
}

#[test]
#[ignore = "needs real servers and dkimpy: run scripts/test-all"]
fn aiosmtpd_dkim_rsa_and_ed25519_verify_with_dkimpy() {
    dkim_end_to_end(Server::Aiosmtpd, "ct-dkim");
}

#[test]
#[ignore = "needs real servers and dkimpy: run scripts/test-all"]
fn postfix_dkim_rsa_and_ed25519_verify_with_dkimpy() {
    dkim_end_to_end(Server::Postfix, "ct-pf-dkim");
}

/// `--message FILE` with a DKIM key and no `--from`: `d=` and MAIL FROM default to the
/// message's own From domain (cli.md), not to `--user`'s, and dkimpy verifies the stored copy
/// against that domain's record.
#[test]
#[ignore = "needs real servers and dkimpy: run scripts/test-all"]
fn aiosmtpd_dkim_message_file_signs_for_its_own_from_domain() {
    let author = "ada@other.test";
    let dir = tempfile::tempdir().expect("temp dir");
    let key = openssl_key(dir.path(), "ed.pem", &["-algorithm", "ed25519"]);
    let selector = format!("s{}", unique("m").replace('-', ""));
    let run = quizmail(&strings(&[
        "--dkim-key",
        &path_arg(&key),
        "--dkim-selector",
        &selector,
        "--from",
        author,
        "--dkim-dns-record",
    ]));
    assert_eq!(run.code, 0, "{}", run.describe());
    let line = run.stdout.trim().to_string();
    let (qname, rest) = line.split_once(" IN TXT ").expect("a TXT record");
    let record: String = rest.split('"').skip(1).step_by(2).collect();
    assert_eq!(qname, format!("{selector}._domainkey.other.test."));

    let rcpt = format!("{}@example.test", unique("ct-dkim-msg"));
    // An ASCII header (RFC 2047 subject): aiosmtpd offers no SMTPUTF8.
    let subject = format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(SUBJECT)
    );
    let message = format!(
        "From: Ada <{author}>\nTo: {rcpt}\nSubject: {subject}\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=us-ascii\n\n.leading dot\nsigned as other.test\n"
    );
    let path = dir.path().join("prepared.eml");
    std::fs::write(&path, message.as_bytes()).expect("write message");
    let mut args = Server::Aiosmtpd.args();
    args.extend(strings(&[
        "--message",
        &path_arg(&path),
        "-t",
        "--dkim-key",
        &path_arg(&key),
        "--dkim-selector",
        &selector,
    ]));
    let report = assert_ok(&quizmail(&args));
    assert_eq!(report["envelope_from"], author);
    let raw = Server::Aiosmtpd.fetch(&rcpt);
    let shown = String::from_utf8_lossy(&raw).into_owned();
    assert!(shown.contains("d=other.test;"), "{shown}");
    let msg = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(msg.subject(), Some(SUBJECT));
    let cases = vec![
        ("as stored".to_string(), raw.clone()),
        ("body changed".to_string(), tampered(&raw)),
    ];
    let (results, log) = verify(&cases, qname, &record);
    assert_eq!(results, [true, false], "{log}\n--- stored copy\n{shown}");
}

// ---- --markdown-file, --attach patterns, threading and priority ---------------------------------

const MARKDOWN: &str = "# Nightly build\n\n| job | result | time |\n|:--|:-:|--:|\n\
                        | build | ~~failed~~ passed | 3m |\n| test | passed | 12m |\n\n\
                        Raw HTML is shown, not run: <script>alert(1)</script>\n\n\
                        ![chart](cid:chart.png)\n";

/// A CI notification as the README shows it: a Markdown body with a table, strikethrough and an
/// inline image, `--attach DIR/*.pdf`, In-Reply-To, References and a priority. The stored copy
/// is read with mail-parser: the text part is the source, the HTML part the styled rendering
/// (no `<style>`, no live `<script>`), the PDFs in sorted order, the header fields exact.
fn markdown_notification(server: Server, tag: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let md = dir.path().join("report.md");
    std::fs::write(&md, MARKDOWN).expect("write markdown");
    let png_path = dir.path().join(PNG_NAME);
    std::fs::write(&png_path, png()).expect("write png");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    let first = pdf();
    let mut second = pdf();
    second.extend_from_slice(b"% second\n");
    std::fs::write(out.join("b-tests.pdf"), &second).expect("write pdf");
    std::fs::write(out.join("a-build.pdf"), &first).expect("write pdf");
    std::fs::write(out.join("notes.txt"), b"not a match").expect("write txt");

    let rcpt = format!("{}@example.test", unique(tag));
    let parent = format!("<{}@ci.example.test>", unique("run"));
    let root = format!("<{}@ci.example.test>", unique("root"));
    let mut args = server.args();
    args.extend(strings(&[
        "--from",
        SENDER,
        "--to",
        &rcpt,
        "--subject",
        "Nightly build passed",
        "--markdown-file",
        &path_arg(&md),
        "--inline",
        &path_arg(&png_path),
        "--attach",
        &format!("{}/*.pdf", path_arg(&out)),
        "--reply-to",
        "Ops Team <ops@example.test>",
        "--in-reply-to",
        parent.trim_matches(['<', '>']),
        "--references",
        &format!("{root} {parent}"),
        "--priority",
        "high",
    ]));
    let run = quizmail(&args);
    assert_ok(&run);

    let raw = server.fetch(&rcpt);
    assert_wire_rules(&raw);
    let shown = String::from_utf8_lossy(&raw);
    let msg = MessageParser::default()
        .parse(&raw)
        .unwrap_or_else(|| panic!("stored message does not parse:\n{shown}"));

    // Header fields, exactly.
    let ids = |v: &mail_parser::HeaderValue| -> Vec<String> {
        v.as_text_list()
            .unwrap_or_default()
            .iter()
            .map(|s| format!("<{s}>"))
            .collect()
    };
    assert_eq!(
        ids(msg.in_reply_to()),
        std::slice::from_ref(&parent),
        "{shown}"
    );
    assert_eq!(
        ids(msg.references()),
        [root.clone(), parent.clone()],
        "{shown}"
    );
    let raw_field = |name: &str| msg.header_raw(name).map(|v| v.trim().to_string());
    assert_eq!(raw_field("X-Priority").as_deref(), Some("1"), "{shown}");
    assert_eq!(raw_field("Importance").as_deref(), Some("high"), "{shown}");
    assert_eq!(
        raw_field("Reply-To").as_deref(),
        Some("Ops Team <ops@example.test>"),
        "{shown}"
    );
    let reply_to = msg.reply_to().and_then(|a| a.first()).expect("Reply-To");
    assert_eq!(reply_to.address(), Some("ops@example.test"));

    // The text alternative is the Markdown source as given.
    assert_eq!(msg.text_body_count(), 1, "{shown}");
    assert_eq!(msg.html_body_count(), 1, "{shown}");
    let text = msg.body_text(0).expect("a text body");
    assert_eq!(lf(&text), MARKDOWN, "text body differs\n{shown}");

    // The HTML alternative: the rendered table, styled inline, and nothing a webmail strips.
    let html = msg.body_html(0).expect("an HTML body");
    for want in [
        "<table style=\"border-collapse: collapse;",
        "<th style=\"border: 1px solid #d0d7de; padding: 6px 13px; font-weight: bold; \
         background-color: #f6f8fa; text-align: left\">job</th>",
        "<th style=\"border: 1px solid #d0d7de; padding: 6px 13px; font-weight: bold; \
         background-color: #f6f8fa; text-align: center\">result</th>",
        "<td style=\"border: 1px solid #d0d7de; padding: 6px 13px; text-align: center\">\
         <del>failed</del> passed</td>",
        "<td style=\"border: 1px solid #d0d7de; padding: 6px 13px; text-align: right\">12m</td>",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "<img src=\"cid:chart.png\" alt=\"chart\"",
    ] {
        assert!(html.contains(want), "HTML lacks {want:?}\n{html}");
    }
    let lower = html.to_ascii_lowercase();
    assert!(
        !lower.contains("<style") && !lower.contains("class="),
        "{html}"
    );
    assert!(!lower.contains("<script"), "{html}");

    // The inline image, then the PDFs in sorted order; notes.txt did not match.
    let image = msg
        .parts
        .iter()
        .find(|p| p.is_content_type("image", "png"))
        .unwrap_or_else(|| panic!("no image/png part\n{shown}"));
    assert_eq!(image.contents(), png().as_slice());
    assert_eq!(image.content_id(), Some(PNG_NAME), "{shown}");
    let pdfs: Vec<(&str, &[u8])> = msg
        .attachments()
        .filter(|p| p.is_content_type("application", "pdf"))
        .map(|p| (p.attachment_name().unwrap_or_default(), p.contents()))
        .collect();
    assert_eq!(
        pdfs,
        [
            ("a-build.pdf", first.as_slice()),
            ("b-tests.pdf", second.as_slice())
        ],
        "{shown}"
    );
    assert!(!shown.contains("notes.txt"), "{shown}");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn aiosmtpd_markdown_glob_attachments_thread_and_priority() {
    markdown_notification(Server::Aiosmtpd, "ct-md");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_markdown_glob_attachments_thread_and_priority() {
    markdown_notification(Server::Postfix, "ct-pf-md");
}
