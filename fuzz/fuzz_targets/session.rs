//! Plays an arbitrary server against the whole SMTP session (`smtp::Session`), driven as the
//! module doc's driver contract says: it must never panic, and besides
//! - every `Output::Bytes` is one or more CRLF-terminated lines, no bare CR or LF, no NUL;
//! - a body is asked for only after a 354 to DATA, or right after `BDAT <size> LAST`;
//! - in STARTTLS mode nothing but EHLO/STARTTLS/QUIT goes out before TLS (no AUTH, no MAIL);
//!   `--auth auto` never sends PLAIN or LOGIN in the clear; with credentials no MAIL or RCPT
//!   before authentication; a probe never gets Ready;
//! - after an error the session is finished, queues at most a QUIT and gives no new Ready or
//!   StartTls; no error is ever `Misuse` (the driver keeps the contract);
//! - every submitted message gets exactly one `Event::Message`, in order, with its recipients
//!   in envelope order and at least one accepted when it is delivered, unless the session ends
//!   with an error; `data_in_flight()` only after the message's body was handed out;
//! - the transcript holds no control character but TAB, and no client line holds the password.
//!
//! Input: 4 config bytes, then the server's bytes. NUL separates reads (so no NUL reaches the
//! session: the `reply_parser` target covers control characters; NULs in a row make no empty
//! read); the end of input is EOF.
//! - byte 0: bits 0-1 TLS (0 none, 1 and 3 STARTTLS, 2 implicit); bits 2-4 credentials (1 auto,
//!   2 PLAIN, 3 LOGIN, 4 CRAM-MD5, else none); bit 5 probe; bit 6 transcript; bit 7 feed every
//!   read byte by byte.
//! - byte 1: bits 0-1 messages (0 and 1: one, 2: two, 3: three); bits 2-4 `more` of message
//!   1-3; bit 5 SMTPUTF8; bit 6 8BITMIME; bit 7 null reverse path.
//! - byte 2: bits 0-1 recipients per message minus one; bits 2-4 first of them in `RCPTS`.
//! - byte 3: first size in `SIZES` (message i takes the next i-th).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use quizmail::smtp::{
    AuthChoice, BodyFraming, Config, Credentials, Envelope, Event, Mechanism, Output,
    RecipientStatus, Secret, Session, SmtpError, TlsMode,
};

const PASSWORD: &str = "tanstaaftanstaaf";
const RCPTS: [&str; 6] = [
    "ada@example.com",
    "bob@example.org",
    "zoë@example.net",
    "carol@[192.0.2.1]",
    "dave@example.com",
    "bad address@example.com",
];
const SIZES: [u64; 8] = [1200, 0, 42, 10_240_000, 10_240_001, 1, 65_536, u64::MAX];

fuzz_target!(|data: &[u8]| {
    let Some((&[b0, b1, b2, b3], server)) = data.split_first_chunk::<4>() else {
        return;
    };
    let tls = [
        TlsMode::None,
        TlsMode::Starttls,
        TlsMode::Implicit,
        TlsMode::Starttls,
    ][usize::from(b0 & 3)];
    let choice = match (b0 >> 2) & 7 {
        1 => Some(AuthChoice::Auto),
        2 => Some(AuthChoice::Named(Mechanism::Plain)),
        3 => Some(AuthChoice::Named(Mechanism::Login)),
        4 => Some(AuthChoice::Named(Mechanism::CramMd5)),
        _ => None,
    };
    let probe = b0 & 0x20 != 0;
    let transcript = b0 & 0x40 != 0;
    let bytewise = b0 & 0x80 != 0;
    let count = usize::from(b1 & 3).max(1);
    let envelopes: Vec<Envelope> = (0..count)
        .map(|i| Envelope {
            from: if b1 & 0x80 != 0 {
                ""
            } else {
                "quiz@example.org"
            }
            .into(),
            recipients: (0..=usize::from(b2 & 3))
                .map(|r| RCPTS[(usize::from(b2 >> 2 & 7) + r + i) % RCPTS.len()].to_string())
                .collect(),
            size: SIZES[(usize::from(b3) + i) % SIZES.len()],
            smtputf8: b1 & 0x20 != 0,
            eight_bit: b1 & 0x40 != 0,
            more: b1 >> (2 + i) & 1 != 0,
        })
        .collect();
    let config = Config {
        ehlo_name: "client.example.org".into(),
        tls,
        credentials: choice.map(|choice| Credentials {
            user: "tim".into(),
            password: Secret::from(PASSWORD.to_string()),
            choice,
        }),
        probe,
        transcript,
    };
    // An empty read is end of stream to a real driver: only the end of input is EOF here.
    let mut reads: Vec<&[u8]> = server
        .split(|&b| b == 0)
        .filter(|r| !r.is_empty())
        .collect();
    if bytewise {
        reads = reads.into_iter().flat_map(|r| r.chunks(1)).collect();
    }
    Driver {
        session: Session::new(config).expect("a valid EHLO name"),
        tls_up: tls == TlsMode::Implicit,
        tls_mode: tls,
        auto: choice == Some(AuthChoice::Auto),
        creds: choice.is_some(),
        probe,
        envelopes,
        next: 0,
        submitted: Vec::new(),
        reported: 0,
        body_out: false,
        awaiting: Body::None,
        since_data: Vec::new(),
        line_start: Vec::new(),
    }
    .run(reads.into_iter());
});

#[derive(PartialEq)]
enum Body {
    None,
    /// DATA went out: a 354 may come, then the dot-stuffed body.
    AfterData,
    /// `BDAT size LAST` went out: the raw body must follow at once.
    Raw(u64),
    /// The dot-stuffed body went out: the final `.` must follow at once.
    FinalDot,
}

struct Driver {
    session: Session,
    tls_mode: TlsMode,
    tls_up: bool,
    auto: bool,
    creds: bool,
    probe: bool,
    envelopes: Vec<Envelope>,
    next: usize,
    /// Indices into `envelopes` of the messages submitted, in order.
    submitted: Vec<usize>,
    reported: usize,
    /// The current message's body was handed out.
    body_out: bool,
    awaiting: Body,
    /// What the server sent since DATA went out, from the start of the line then unfinished.
    since_data: Vec<u8>,
    /// The server's unfinished line: a reply may start before its command is written.
    line_start: Vec<u8>,
}

impl Driver {
    fn run<'a>(mut self, mut reads: impl Iterator<Item = &'a [u8]>) {
        loop {
            self.write();
            self.transcript();
            while let Some(event) = self.session.poll_event() {
                if let Err(e) = self.event(event) {
                    return self.failed(e);
                }
                self.write();
            }
            if self.session.is_finished() {
                assert_eq!(
                    self.reported,
                    self.submitted.len(),
                    "a message got no report"
                );
                assert!(self.session.poll_output().is_none());
                // Closed stays closed: later bytes are ignored.
                assert!(self.session.receive(b"250 ok\r\n").is_ok());
                assert!(
                    self.session.poll_output().is_none() && self.session.poll_event().is_none()
                );
                return;
            }
            assert!(
                self.session.wants_read(),
                "stuck at {}",
                self.session.stage()
            );
            let result = match reads.next() {
                Some(read) => {
                    trace(format_args!("S: {:?}", String::from_utf8_lossy(read)));
                    if self.awaiting == Body::AfterData {
                        self.since_data.extend_from_slice(read);
                    }
                    match read.iter().rposition(|&b| b == b'\n') {
                        Some(i) => self.line_start = read[i + 1..].to_vec(),
                        None => self.line_start.extend_from_slice(read),
                    }
                    self.session.receive(read)
                }
                None => {
                    trace(format_args!("S: EOF"));
                    self.session.connection_closed()
                }
            };
            if let Err(e) = result {
                return self.failed(e);
            }
        }
    }

    fn write(&mut self) {
        while let Some(out) = self.session.poll_output() {
            match &out {
                Output::Bytes(b) => trace(format_args!("C: {:?}", String::from_utf8_lossy(b))),
                other => trace(format_args!("C: {other:?}")),
            }
            match out {
                Output::Bytes(bytes) => self.bytes(&bytes),
                Output::Body(framing) => {
                    match (framing, &self.awaiting) {
                        (BodyFraming::Dot, Body::AfterData)
                            if starts_reply(&self.since_data, b"354") =>
                        {
                            self.awaiting = Body::FinalDot
                        }
                        (BodyFraming::Raw { size }, &Body::Raw(s)) if size == s => {
                            self.awaiting = Body::None
                        }
                        _ => panic!("{framing:?} out of place"),
                    }
                    let current = *self.submitted.last().expect("a body with no message");
                    if let BodyFraming::Raw { size } = framing {
                        assert_eq!(size, self.envelopes[current].size);
                    }
                    self.body_out = true;
                }
            }
        }
        assert!(
            !self.session.data_in_flight() || self.body_out,
            "data in flight, no body"
        );
    }

    fn bytes(&mut self, mut bytes: &[u8]) {
        assert!(!bytes.is_empty());
        while !bytes.is_empty() {
            let end = bytes.windows(2).position(|w| w == b"\r\n");
            let end =
                end.unwrap_or_else(|| panic!("no CRLF: {:?}", String::from_utf8_lossy(bytes)));
            let line = &bytes[..end];
            bytes = &bytes[end + 2..];
            assert!(
                !line.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)),
                "bad line {:?}",
                String::from_utf8_lossy(line)
            );
            self.line(line);
        }
    }

    fn line(&mut self, line: &[u8]) {
        let upper = String::from_utf8_lossy(line).to_ascii_uppercase();
        let verb = upper.split(' ').next().unwrap_or("");
        if self.awaiting == Body::FinalDot {
            assert_eq!(line, b".", "the final dot must follow the body");
            self.awaiting = Body::None;
            return;
        }
        assert!(
            !matches!(self.awaiting, Body::Raw(_)),
            "BDAT with no body: {upper}"
        );
        if self.tls_mode == TlsMode::Starttls && !self.tls_up {
            assert!(
                matches!(verb, "EHLO" | "HELO" | "STARTTLS" | "QUIT"),
                "{verb} before TLS"
            );
        }
        if self.auto && !self.tls_up {
            assert!(!upper.starts_with("AUTH PLAIN") && !upper.starts_with("AUTH LOGIN"));
        }
        if matches!(verb, "MAIL" | "RCPT" | "DATA" | "BDAT" | "RSET") {
            assert!(!self.probe, "{verb} in a probe");
            assert!(
                !self.creds || self.session.auth_mechanism().is_some(),
                "{verb} before AUTH"
            );
        }
        match verb {
            "DATA" => {
                self.awaiting = Body::AfterData;
                self.since_data = self.line_start.clone();
            }
            "BDAT" => {
                let size = upper.split(' ').nth(1).and_then(|s| s.parse().ok());
                assert!(upper.ends_with(" LAST"), "{upper}");
                self.awaiting = Body::Raw(size.expect("BDAT size"));
            }
            "MAIL" | "RSET" => self.awaiting = Body::None,
            _ => {}
        }
    }

    fn event(&mut self, event: Event) -> Result<(), SmtpError> {
        trace(format_args!("event: {event:?}"));
        match event {
            Event::StartTls => {
                assert!(self.tls_mode == TlsMode::Starttls && !self.tls_up);
                self.session.tls_established()?;
                self.tls_up = true;
            }
            Event::Ready(_) => {
                assert!(!self.probe, "Ready in a probe");
                assert_eq!(
                    self.reported,
                    self.submitted.len(),
                    "Ready with a message open"
                );
                assert!(!self.session.data_in_flight());
                loop {
                    let Some(envelope) = self.envelopes.get(self.next) else {
                        return self.session.quit();
                    };
                    self.next += 1;
                    self.body_out = false;
                    // A refused envelope (SMTPUTF8, 8BITMIME, SIZE, address) sends nothing.
                    if self.session.submit(envelope.clone()).is_ok() {
                        self.submitted.push(self.next - 1);
                        return Ok(());
                    }
                }
            }
            Event::Message(report) => {
                let i = *self
                    .submitted
                    .get(self.reported)
                    .expect("a report with no message");
                self.reported += 1;
                let addresses: Vec<&str> = report
                    .recipients
                    .iter()
                    .map(|r| r.address.as_str())
                    .collect();
                assert_eq!(addresses, self.envelopes[i].recipients);
                if report.outcome.is_ok() {
                    assert!(report
                        .recipients
                        .iter()
                        .any(|r| matches!(r.status, RecipientStatus::Accepted(_))));
                }
            }
            Event::Closed => assert!(self.session.is_finished()),
        }
        Ok(())
    }

    /// After an error: finished, at most a QUIT to write, then only message reports.
    fn failed(mut self, e: SmtpError) {
        trace(format_args!("error: {e}"));
        assert!(!matches!(e, SmtpError::Misuse(_)), "{e:?}");
        assert!(self.session.is_finished(), "not finished after {e:?}");
        if let Some(out) = self.session.poll_output() {
            assert!(
                matches!(out, Output::Bytes(ref b) if b == b"QUIT\r\n"),
                "{out:?}"
            );
        }
        assert!(self.session.poll_output().is_none());
        while let Some(event) = self.session.poll_event() {
            assert!(matches!(event, Event::Message(_)), "{event:?} after {e:?}");
            self.event(event).expect("a report");
        }
        assert!(self.reported <= self.submitted.len());
        // A finished session stays finished: more server bytes change nothing.
        assert!(self.session.receive(b"250 ok\r\n").is_err());
        // ... and every later call answers with the same sticky error.
        assert!(self.session.connection_closed().is_err());
        assert!(self.session.poll_output().is_none() && self.session.poll_event().is_none());
        assert!(self.session.is_finished() && !self.session.wants_read());
        let _ = self.session.stage();
        self.transcript();
    }

    fn transcript(&mut self) {
        for line in self.session.take_transcript() {
            // TAB is allowed in reply text (RFC 5321 §4.2: textstring).
            assert!(
                !line.chars().any(|c| c.is_control() && c != '\t'),
                "{line:?}"
            );
            // What the server says is its own business; what we say must be redacted.
            assert!(
                line.starts_with("S: ") || !line.contains(PASSWORD),
                "{line:?}"
            );
        }
    }
}

/// With `FUZZ_TRACE=1` in the environment, prints the dialogue: to read a crash, run the
/// target binary on the artifact with it.
fn trace(what: std::fmt::Arguments) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some()) {
        eprintln!("{what}");
    }
}

/// Whether `read` holds a line starting with `code` (at its start or after an LF).
fn starts_reply(read: &[u8], code: &[u8]) -> bool {
    read.starts_with(code)
        || read
            .windows(code.len() + 1)
            .any(|w| w[0] == b'\n' && &w[1..] == code)
}
