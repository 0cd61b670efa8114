//! Round trips through an independent parser (mail-parser): whatever the user gives, the
//! message we write must read back as the same subject, names, text and attachments, pass the
//! strict lint, and be exactly as long as `size()` said.

use base64::Engine as _;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use proptest::prelude::*;
use quizmail::message::lint::lint;
use quizmail::message::{
    Attachment, Compose, DotStuffer, Mailbox, Message, Outgoing, Prepared, Target,
};
use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

/// Writes the message and checks size() and the lint.
fn render(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    m.write_to(&mut out).unwrap();
    assert_eq!(m.size().unwrap(), out.len() as u64, "size() must be exact");
    let target = Target {
        smtputf8: m.needs_smtputf8(),
        eight_bit_mime: m.needs_8bitmime(),
    };
    if let Err(e) = lint(&out, target) {
        panic!("lint: {e}\n{}", String::from_utf8_lossy(&out));
    }
    out
}

fn decode_base64(raw: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .unwrap()
}

fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n")
}

/// Text a user might type in a header: any characters but controls.
fn header_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            4 => prop::char::range('a', 'z'),
            2 => Just(' '),
            1 => prop::sample::select(vec!['"', '\\', '=', '?', ',', '<', '>', '(', ';', ':', '@', '_']),
        ],
        0..max,
    )
    .prop_map(|chars| chars.into_iter().filter(|c| !c.is_control()).collect())
}

/// Bodies with leading dots, bare CR and LF, long lines and non-ASCII text.
fn body_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => "[a-z ]{0,20}",
            1 => Just(".".to_string()),
            1 => Just("\n".to_string()),
            1 => Just("\r".to_string()),
            1 => Just("\r\n".to_string()),
            1 => Just("=_".to_string()),
            1 => "[é日😀ß ]{0,10}",
            1 => (900usize..1500).prop_map(|n| "x".repeat(n)),
            1 => Just("From the start".to_string()),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// File names: any characters but controls and '/', not empty, within 255 octets.
fn file_name() -> impl Strategy<Value = String> {
    header_text(60)
        .prop_map(|s| s.replace('/', "_"))
        .prop_filter("a usable file name", |s| {
            !s.is_empty() && s != "." && s != ".." && s.len() <= 255
        })
}

fn base_compose(display: &str) -> Compose {
    let mut from = Mailbox::parse("ada@example.com").unwrap();
    from.display_name = Some(display.to_string());
    let mut c = Compose::new(
        from,
        UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        [3; 16],
    );
    c.to = Mailbox::parse_list("Bob <bob@example.org>").unwrap();
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn subject_and_names_round_trip(subject in header_text(200), name in header_text(80),
                                    eight_bit in any::<bool>()) {
        let mut c = base_compose(&name);
        c.subject = subject.clone();
        c.text = Some(b"x".to_vec());
        let target = Target { smtputf8: false, eight_bit_mime: eight_bit };
        let out = render(&c.build(target).unwrap());
        let parsed = MessageParser::default().parse(&out).unwrap();
        if !subject.is_empty() {
            prop_assert_eq!(parsed.subject().unwrap_or(""), subject.as_str());
        }
        let from = parsed.from().unwrap().first().unwrap();
        prop_assert_eq!(from.address().unwrap(), "ada@example.com");
        if !name.is_empty() {
            prop_assert_eq!(from.name().unwrap_or(""), name.as_str());
        }
    }

    #[test]
    fn bodies_round_trip(text in body_text(), html in prop::option::of(body_text()),
                         eight_bit in any::<bool>()) {
        let mut c = base_compose("Ada");
        c.subject = "bodies".into();
        c.text = Some(text.clone().into_bytes());
        c.html = html.clone().map(String::into_bytes);
        let target = Target { smtputf8: false, eight_bit_mime: eight_bit };
        let out = render(&c.build(target).unwrap());
        let parsed = MessageParser::default().parse(&out).unwrap();
        let part = parsed.text_bodies().next().unwrap();
        let mut want = normalise(&text);
        if html.is_none() && !want.is_empty() && !want.ends_with("\r\n") {
            // Alone in the message, the text is its body, whose last line must end with CRLF.
            want.push_str("\r\n");
        }
        prop_assert_eq!(part.text_contents().unwrap_or(""), want.as_str());
        if let Some(html) = html {
            let part = parsed.html_bodies().next().unwrap();
            let want = normalise(&html);
            prop_assert_eq!(part.text_contents().unwrap_or(""), want.as_str());
        }
    }

    #[test]
    fn attachments_round_trip(files in prop::collection::vec((file_name(), prop::collection::vec(any::<u8>(), 0..3000)), 1..4),
                              in_memory in prop::collection::vec((file_name(), prop::collection::vec(any::<u8>(), 0..300)), 0..2)) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = base_compose("Ada");
        c.subject = "files".into();
        c.text = Some("see attached ✓".as_bytes().to_vec());
        let mut expected = Vec::new();
        for (i, (name, data)) in files.iter().enumerate() {
            // A sub-directory per file so equal random names do not collide.
            let sub = dir.path().join(i.to_string());
            std::fs::create_dir(&sub).unwrap();
            let path = sub.join(name);
            std::fs::write(&path, data).unwrap();
            c.attachments.push(Attachment::File(path));
            expected.push((name.clone(), data.clone()));
        }
        for (name, data) in &in_memory {
            c.attachments.push(Attachment::Data { filename: name.clone(), data: data.clone() });
            expected.push((name.clone(), data.clone()));
        }
        let out = render(&c.build(Target::default()).unwrap());
        let parsed = MessageParser::default().parse(&out).unwrap();
        let names: Vec<&str> = parsed.attachments().map(|a| a.attachment_name().unwrap_or("")).collect();
        let expected_names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        prop_assert_eq!(names, expected_names);
        for (part, (_, data)) in parsed.attachments().zip(&expected) {
            // mail-parser turns text/* parts into text, so decode the part's raw body too.
            let raw = &out[part.offset_body as usize..part.offset_end as usize];
            prop_assert_eq!(&decode_base64(raw), data);
            if let PartType::Binary(bytes) | PartType::InlineBinary(bytes) = &part.body {
                prop_assert_eq!(bytes.as_ref(), data.as_slice());
            }
        }
    }

    #[test]
    fn prepared_messages_normalise(body in body_text()) {
        let raw = format!("From: a@x.test\nTo: b@y.test\nBcc: c@z.test\nSubject: p\n\n{body}");
        match Prepared::parse(raw.as_bytes(), true) {
            Ok(p) => {
                let mut out = Vec::new();
                p.write_to(&mut out).unwrap();
                prop_assert_eq!(p.size().unwrap(), out.len() as u64);
                let target = Target { smtputf8: p.needs_smtputf8(), eight_bit_mime: p.needs_8bitmime() };
                prop_assert!(lint(&out, target).is_ok());
                prop_assert_eq!(p.recipients().len(), 2);
            }
            // Only a line over 998 octets may be refused.
            Err(e) => prop_assert!(normalise(&body).split("\r\n").any(|l| l.len() > 998), "{}", e),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Hostile input never panics, and what parses never carries a control character.
    #[test]
    fn parsers_survive_anything(text in "\\PC*|[\\x00-\\x7f]{0,80}", bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let single = Mailbox::parse(&text).map(|m| vec![m]);
        for list in [single, Mailbox::parse_list(&text)].into_iter().flatten() {
            for m in list {
                let shown = m.header_form(true).unwrap();
                prop_assert!(!shown.chars().any(|c| c.is_control()));
            }
        }
        let _ = Prepared::parse(&bytes, true);
        let _ = Prepared::parse(&bytes, false);
    }

    /// The quoted header form of a plain ASCII name parses back to the same mailbox.
    #[test]
    fn ascii_names_quote_and_parse_back(name in "[ -~]{1,60}") {
        let mut m = Mailbox::parse("ada@example.com").unwrap();
        m.display_name = Some(name.clone());
        let form = m.header_form(false).unwrap();
        if !form.starts_with("=?") {
            let back = Mailbox::parse(&form).unwrap();
            prop_assert_eq!(back, m);
        }
    }

    /// Dot-stuffing does not depend on how the data is cut into writes, and unstuffing
    /// (RFC 5321 §4.5.2, receiver side) gives the data back.
    #[test]
    fn dot_stuffing_is_chunk_independent(body in body_text(), cut in 1usize..50) {
        let data = normalise(&body).into_bytes();
        let stuff = |chunk: usize| {
            let mut d = DotStuffer::new(Vec::new());
            for piece in data.chunks(chunk) {
                d.write_all(piece).unwrap();
            }
            d.finish().unwrap()
        };
        let whole = stuff(data.len().max(1));
        prop_assert_eq!(&stuff(cut), &whole);
        let text = String::from_utf8(whole).unwrap();
        let mut lines: Vec<&str> = text.split("\r\n").collect();
        prop_assert_eq!(lines.pop(), Some(""));
        prop_assert_eq!(lines.pop(), Some("."));
        let unstuffed: Vec<&str> = lines.iter().map(|l| l.strip_prefix('.').unwrap_or(l)).collect();
        let mut expected = String::from_utf8(data).unwrap();
        if !expected.is_empty() && !expected.ends_with("\r\n") {
            expected.push_str("\r\n");
        }
        let joined: String = unstuffed.iter().map(|l| format!("{l}\r\n")).collect();
        prop_assert_eq!(joined, expected);
    }
}

/// RFC 5322 §3.2.4 quoted-string of `content`, built here rather than by quizmail.
fn rfc5322_quoted(content: &str) -> String {
    let escaped: String = content
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// How mail-parser 0.11.9 gives an address back: a quoted local part keeps its quotes but
/// loses the backslashes of its quoted-pairs (`"a\"b"@x` comes back as `"a"b"@x`).
fn as_mail_parser_reads(m: &Mailbox) -> String {
    let dot_atom = m.local.split('.').all(|atom| {
        !atom.is_empty()
            && atom
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c))
    });
    if dot_atom {
        format!("{}@{}", m.local, m.domain)
    } else {
        format!("\"{}\"@{}", m.local, m.domain)
    }
}

/// Renders a message to `to` (and `cc`) and has mail-parser read the To and Cc fields back.
fn to_and_cc_read_back(
    to: &Mailbox,
    cc: &Mailbox,
    smtputf8: bool,
) -> Vec<(Option<String>, Option<String>)> {
    let mut c = base_compose("Ada");
    c.to = vec![to.clone()];
    c.cc = vec![cc.clone()];
    c.subject = "quoted".into();
    c.text = Some(b"x".to_vec());
    let target = Target {
        smtputf8,
        eight_bit_mime: false,
    };
    let out = render(&c.build(target).unwrap());
    let parsed = MessageParser::default().parse(&out).unwrap();
    [parsed.to(), parsed.cc()]
        .into_iter()
        .flat_map(|field| field.unwrap().iter())
        .map(|a| (a.name().map(str::to_owned), a.address().map(str::to_owned)))
        .collect()
}

/// RFC 5322 §3.4.1 / RFC 5321 §4.1.2 quoted local parts, as users type them.
#[test]
fn quoted_local_parts_read_back_through_mail_parser() {
    for (typed, name, address) in [
        (
            r#""john doe"@example.com"#,
            None,
            r#""john doe"@example.com"#,
        ),
        (
            r#"John <"john doe"@example.com>"#,
            Some("John"),
            r#""john doe"@example.com"#,
        ),
        (r#""a\"b"@x.test"#, None, r#""a"b"@x.test"#),
        (r#""a\\b"@x.test"#, None, r#""a\b"@x.test"#),
        (r#""a@b"@x.test"#, None, r#""a@b"@x.test"#),
        (
            r#""Doe, J" <"a,b"@x.test>"#,
            Some("Doe, J"),
            r#""a,b"@x.test"#,
        ),
        (
            r#""Fred\ Bloggs"@example.com"#,
            None,
            r#""Fred Bloggs"@example.com"#,
        ),
        // RFC 5321 §4.1.2: a Dot-string is not quoted.
        (r#""john"@x.test"#, None, "john@x.test"),
    ] {
        let m = Mailbox::parse(typed).unwrap();
        let read = to_and_cc_read_back(&m, &m, false);
        let want = (name.map(str::to_owned), Some(address.to_owned()));
        assert_eq!(read, [want.clone(), want], "{typed}");
    }
    // RFC 6531 §3.3: UTF-8 inside the quotes, with SMTPUTF8 only.
    let m = Mailbox::parse(r#"Jörg <"jörg doe"@x.test>"#).unwrap();
    let read = to_and_cc_read_back(&m, &m, true);
    assert_eq!(read[0].1.as_deref(), Some(r#""jörg doe"@x.test"#));
    let mut c = base_compose("Ada");
    c.to = vec![m];
    assert!(c.build(Target::default()).is_err());
}

/// Local-part content: printable ASCII and spaces, with the characters that need quoting
/// (RFC 5322 §3.2.3 specials, and `"` and `\`, which need a quoted-pair) often.
fn local_content() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::char::range('a', 'z'),
            2 => Just(' '),
            2 => prop::sample::select("()<>[]:;@,.\"\\".chars().collect::<Vec<_>>()),
            1 => prop::char::range('!', '~'),
        ],
        1..40,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever a quoted local part holds, quizmail parses its own header form back to the
    /// same mailbox, and the To and Cc fields read back through mail-parser as that address.
    ///
    /// mail-parser 0.11.9 is not a full RFC 5322 parser inside `<...>`: it ends the address at
    /// a `>` and reads `(...)` as a comment even between quotes, and it drops the white space
    /// next to a quoted-pair (`" \""` comes back as `"""`). So it is no oracle for content
    /// with `>`, `(` or `)`, and for content with `"` or `\` it is one for all but spaces.
    #[test]
    fn quoted_local_parts_round_trip(content in local_content(),
                                     name in prop::option::of("[A-Z][a-z]{0,8}( [A-Z][a-z]{0,8}){0,2}")) {
        let quoted = format!("{}@example.com", rfc5322_quoted(&content));
        let typed = match &name {
            Some(name) => format!("{name} <{quoted}>"),
            None => quoted,
        };
        let m = match Mailbox::parse(&typed) {
            Ok(m) => m,
            // Only the RFC 5321 §4.5.3.1.1 limit of 64 octets may refuse it.
            Err(e) => {
                prop_assert!(e.to_string().contains("64 octets"), "{}: {}", typed, e);
                return Ok(());
            }
        };
        prop_assert_eq!(&m.local, &content);
        let header = m.header_form(false).unwrap();
        prop_assert_eq!(&Mailbox::parse(&header).unwrap(), &m);
        if content.contains(['>', '(', ')']) {
            return Ok(());
        }
        let read = to_and_cc_read_back(&m, &m, false);
        let want = as_mail_parser_reads(&m);
        for (got_name, got) in read {
            prop_assert_eq!(&got_name, &name);
            let got = got.unwrap_or_default();
            if content.contains(['"', '\\']) {
                prop_assert_eq!(got.replace(' ', ""), want.replace(' ', ""));
            } else {
                prop_assert_eq!(&got, &want);
            }
        }
    }
}

#[test]
fn inline_images_are_related_to_the_html() {
    let dir = tempfile::tempdir().unwrap();
    let logo = dir.path().join("logo.png");
    std::fs::write(&logo, [0x89, b'P', b'N', b'G', 0, 1, 2, 3]).unwrap();
    let mut c = base_compose("Zoë Ünïcödé");
    c.subject = "Bilder für dich".into();
    c.text = Some(b"text".to_vec());
    c.html = Some(br#"<img src="cid:logo.png">"#.to_vec());
    c.inline = vec![Attachment::File(logo)];
    c.attachments = vec![Attachment::Data {
        filename: "results.csv".into(),
        data: b"question,given,correct,ok\n".to_vec(),
    }];
    let out = render(&c.build(Target::default()).unwrap());
    let parsed = MessageParser::default().parse(&out).unwrap();
    assert_eq!(parsed.subject(), Some("Bilder für dich"));
    assert_eq!(
        parsed.from().unwrap().first().unwrap().name(),
        Some("Zoë Ünïcödé")
    );
    let inline = parsed
        .parts
        .iter()
        .find(|p| p.content_id() == Some("logo.png"))
        .expect("the inline image");
    assert_eq!(inline.contents(), [0x89, b'P', b'N', b'G', 0, 1, 2, 3]);
    assert_eq!(inline.attachment_name(), Some("logo.png"));
}

/// Counts what is written and keeps nothing.
struct Counting(u64);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn large_attachment_streams_with_exact_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(64 * 1024 * 1024 + 1).unwrap();
    drop(file);
    let mut c = base_compose("Ada");
    c.subject = "big".into();
    c.text = Some(b"big file attached".to_vec());
    c.attachments = vec![Attachment::File(path)];
    let m = c.build(Target::default()).unwrap();
    let mut sink = Counting(0);
    m.write_to(&mut sink).unwrap();
    assert_eq!(m.size().unwrap(), sink.0);
    assert!(sink.0 > 64 * 1024 * 1024 * 4 / 3);
}
