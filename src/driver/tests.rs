//! The driver over scripted in-memory byte streams: flights, the BDAT count, dot-stuffing,
//! what is written after a failure, and the whole-reply deadline. No sockets.
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::message::{HeaderField, MessageError, Prepared};
use crate::smtp::{AuthChoice, Secret, SecretKind};

/// What the scripted server does at the client's next read.
enum Step {
    /// These bytes arrive after `delay` (of the fake's own clock, not a real sleep).
    Bytes(Vec<u8>, Duration),
    Eof,
}

/// A stream that answers reads from a script and records every write, cut into flights.
struct Fake {
    script: VecDeque<Step>,
    flights: Vec<Vec<u8>>,
    current: Vec<u8>,
    tls_after_flight: Option<usize>,
    /// Reads past the deadline fail as a real socket's would; the fake's clock runs `skew`
    /// ahead of the real one, by the delays of the steps so far (no real sleeping).
    deadline: Option<Instant>,
    skew: Duration,
    reads: usize,
    closed: bool,
    /// Writes fail (a reset connection) once this many bytes were taken.
    fail_writes_after: Option<usize>,
    written: usize,
}

impl Fake {
    fn new(script: Vec<Step>) -> Fake {
        Fake {
            script: script.into(),
            flights: Vec::new(),
            current: Vec::new(),
            tls_after_flight: None,
            deadline: None,
            skew: Duration::ZERO,
            reads: 0,
            closed: false,
            fail_writes_after: None,
            written: 0,
        }
    }

    fn flights_text(&self) -> Vec<String> {
        let mut all = self.flights.clone();
        if !self.current.is_empty() {
            all.push(self.current.clone());
        }
        all.iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }
}

impl Read for Fake {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        assert!(!self.closed, "read after close");
        if !self.current.is_empty() {
            self.flights.push(std::mem::take(&mut self.current));
        }
        self.reads += 1;
        match self.script.pop_front() {
            None => panic!("the client read past the end of the script"),
            Some(Step::Eof) => Ok(0),
            Some(Step::Bytes(bytes, delay)) => {
                self.skew += delay;
                if self
                    .deadline
                    .is_some_and(|d| Instant::now() + self.skew > d)
                {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                assert!(bytes.len() <= buf.len());
                buf[..bytes.len()].copy_from_slice(&bytes);
                Ok(bytes.len())
            }
        }
    }
}

impl Write for Fake {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        assert!(!self.closed, "write after close");
        if self
            .fail_writes_after
            .is_some_and(|n| self.written + buf.len() > n)
        {
            return Err(io::ErrorKind::ConnectionReset.into());
        }
        self.written += buf.len();
        self.current.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Wire for Fake {
    fn start_tls(
        &mut self,
        _name: ServerName<'static>,
        _config: Arc<ClientConfig>,
    ) -> Result<(), TransportError> {
        if !self.current.is_empty() {
            self.flights.push(std::mem::take(&mut self.current));
        }
        self.tls_after_flight = Some(self.flights.len());
        Ok(())
    }
    fn tls_info(&self) -> Option<TlsInfo> {
        None
    }
    fn bound_reads(&mut self, budget: Duration) {
        self.deadline = Some(Instant::now() + self.skew + budget);
    }
    fn close(&mut self) {
        self.closed = true;
    }
}

/// Server lines, CRLF added, arriving together.
fn s(lines: &[&str]) -> Step {
    let mut bytes = Vec::new();
    for l in lines {
        bytes.extend_from_slice(l.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    Step::Bytes(bytes, Duration::ZERO)
}

fn tls_config() -> Option<(ServerName<'static>, Arc<ClientConfig>)> {
    let config = crate::transport::TlsPolicy::WebRoots
        .client_config()
        .expect("web roots");
    Some((ServerName::try_from("mx.test").expect("name"), config))
}

fn config(tls: TlsMode, user: bool) -> smtp::Config {
    smtp::Config {
        ehlo_name: "client.test".into(),
        host: "mx.test".into(),
        port: 587,
        tls,
        credentials: user.then(|| Credentials {
            user: "tim".into(),
            password: Secret::from("tanstaaftanstaaf".to_string()),
            kind: SecretKind::Password,
            choice: AuthChoice::Auto,
        }),
        probe: false,
        transcript: false,
    }
}

const TIMEOUT: Duration = Duration::from_secs(5);

fn message(body: &str) -> Prepared {
    let raw = format!("From: a@x.test\r\nTo: b@x.test\r\nSubject: t\r\n\r\n{body}");
    Prepared::parse(raw.as_bytes(), false).expect("message")
}

fn start(fake: Fake, cfg: smtp::Config) -> Result<Connection<Fake>, DriverError> {
    let tls = tls_config();
    Connection::start(fake, cfg, tls, TIMEOUT, Log::default())
}

#[test]
fn starttls_auth_pipelining_chunking_in_five_flights_with_exact_bdat_count() {
    let fake = Fake::new(vec![
        s(&["220 mx.test ESMTP"]),
        s(&["250-mx.test", "250-PIPELINING", "250 STARTTLS"]),
        s(&["220 2.0.0 go ahead"]),
        s(&[
            "250-mx.test",
            "250-PIPELINING",
            "250-CHUNKING",
            "250 AUTH PLAIN",
        ]),
        s(&["235 2.7.0 ok"]),
        s(&["250 ok", "250 ok", "250 ok: queued as ABC", "221 bye"]),
    ]);
    let mut conn = start(fake, config(TlsMode::Starttls, true)).unwrap();
    let msg = message(".dot line\r\nend\r\n");
    let size = msg.size().unwrap();
    let report = conn
        .send("a@x.test", &["b@x.test".into()], &msg, false)
        .unwrap();
    assert_eq!(report.outcome.unwrap().queue_id.as_deref(), Some("ABC"));
    let flights = conn.stream.flights_text();
    assert_eq!(flights.len(), 5, "{flights:#?}");
    assert_eq!(flights[0], "EHLO client.test\r\n");
    assert_eq!(flights[1], "STARTTLS\r\n");
    assert_eq!(conn.stream.tls_after_flight, Some(2));
    assert_eq!(flights[2], "EHLO client.test\r\n");
    assert!(flights[3].starts_with("AUTH PLAIN "));
    let last = &flights[4];
    let head = format!("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nBDAT {size} LAST\r\n");
    assert!(last.starts_with(&head), "{last}");
    // BDAT carries the message as it is: no dot-stuffing, exactly `size` octets, then QUIT.
    assert_eq!(last.len(), head.len() + size as usize + "QUIT\r\n".len());
    assert!(last.contains("\r\n.dot line\r\n"));
    assert!(last.ends_with("end\r\nQUIT\r\n"));
    assert!(conn.stream.closed, "closed after 221");
}

#[test]
fn data_is_dot_stuffed_and_ends_with_the_sessions_dot() {
    let fake = Fake::new(vec![
        s(&["220 mx.test"]),
        s(&["250-mx.test", "250 PIPELINING"]),
        s(&["250 ok", "250 ok", "354 go"]),
        s(&["250 queued", "221 bye"]),
    ]);
    let mut conn = start(fake, config(TlsMode::None, false)).unwrap();
    let msg = message(".dot line\r\nno newline at the end");
    conn.send("a@x.test", &["b@x.test".into()], &msg, false)
        .unwrap();
    let flights = conn.stream.flights_text();
    assert_eq!(
        flights[1],
        "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nDATA\r\n"
    );
    assert!(
        flights[2].ends_with("\r\n..dot line\r\nno newline at the end\r\n.\r\nQUIT\r\n"),
        "{:?}",
        flights[2]
    );
    assert_eq!(flights.len(), 3);
}

#[test]
fn a_refusal_is_followed_by_quit_and_a_421_by_silence() {
    let refused = Fake::new(vec![
        s(&["220 mx.test"]),
        s(&["250 mx.test"]),
        s(&["550 5.7.1 not you"]),
        s(&["221 bye"]),
    ]);
    let mut conn = start(refused, config(TlsMode::None, false)).unwrap();
    let report = conn
        .send("a@x.test", &["b@x.test".into()], &message("x\r\n"), false)
        .unwrap();
    assert!(report.outcome.is_err());
    let flights = conn.stream.flights_text();
    assert_eq!(flights[1], "MAIL FROM:<a@x.test>\r\n");
    assert_eq!(flights[2], "QUIT\r\n", "{flights:#?}");

    let closing = Fake::new(vec![
        s(&["220 mx.test"]),
        s(&["250 mx.test"]),
        s(&["421 4.3.2 shutting down"]),
    ]);
    let mut conn = start(closing, config(TlsMode::None, false)).unwrap();
    let err = conn
        .send("a@x.test", &["b@x.test".into()], &message("x\r\n"), false)
        .unwrap_err();
    assert!(matches!(
        err,
        DriverError::Smtp(SmtpError::ServiceClosing { .. })
    ));
    assert_eq!(conn.stream.flights_text().len(), 2, "nothing after the 421");
    assert!(conn.stream.closed);
    assert!(!conn.is_open());
}

#[test]
fn a_drop_after_the_bdat_body_may_have_delivered() {
    let fake = Fake::new(vec![
        s(&["220 mx.test"]),
        s(&["250-mx.test", "250-PIPELINING", "250 CHUNKING"]),
        s(&["250 ok", "250 ok"]),
        Step::Eof,
    ]);
    let mut conn = start(fake, config(TlsMode::None, false)).unwrap();
    let err = conn
        .send("a@x.test", &["b@x.test".into()], &message("x\r\n"), false)
        .unwrap_err();
    assert!(err.maybe_delivered(), "{err}");
    assert!(conn.stream.closed);
}

#[test]
fn a_drop_inside_the_body_cannot_have_delivered() {
    let mut fake = Fake::new(vec![
        s(&["220 mx.test"]),
        s(&["250 mx.test"]),
        s(&["250 ok"]),
        s(&["250 ok"]),
        s(&["354 go"]),
    ]);
    fake.fail_writes_after = Some(100_000);
    let mut conn = start(fake, config(TlsMode::None, false)).unwrap();
    let body = "0123456789abcdef\r\n".repeat(20_000);
    let err = conn
        .send("a@x.test", &["b@x.test".into()], &message(&body), false)
        .unwrap_err();
    assert!(!err.maybe_delivered(), "{err}");
    assert!(conn.stream.closed);
}

#[test]
fn a_trickled_greeting_times_out_after_the_whole_reply_deadline() {
    // One byte every 2 s, forever: each read makes progress, but the reply never completes.
    let trickle: Vec<Step> = (0..1000)
        .map(|_| Step::Bytes(b"2".to_vec(), Duration::from_secs(2)))
        .collect();
    let err = start(Fake::new(trickle), config(TlsMode::None, false))
        .err()
        .expect("timed out");
    let DriverError::Transport { source, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(
        matches!(source, TransportError::Timeout { during } if during == "greeting"),
        "{source:?}"
    );
}

#[test]
fn each_reply_gets_its_own_deadline() {
    // Two replies of one flight, each 4 s after the last with a 5 s timeout: both in time.
    let late = |lines: &[&str]| match s(lines) {
        Step::Bytes(b, _) => Step::Bytes(b, Duration::from_secs(4)),
        eof => eof,
    };
    let fake = Fake::new(vec![
        late(&["220 mx.test"]),
        late(&["250-mx.test", "250 PIPELINING"]),
        late(&["250 ok"]),
        late(&["250 ok"]),
        late(&["354 go"]),
        late(&["250 queued"]),
        late(&["221 bye"]),
    ]);
    let mut conn = start(fake, config(TlsMode::None, false)).unwrap();
    conn.send("a@x.test", &["b@x.test".into()], &message("x\r\n"), false)
        .unwrap()
        .outcome
        .unwrap();
}

/// A message whose source fails after its first bytes, as a vanished attachment would.
struct Failing(Prepared);

impl Outgoing for Failing {
    fn size(&self) -> io::Result<u64> {
        self.0.size()
    }
    fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(b"Subject: half\r\n")?;
        Err(io::Error::other("attachment vanished"))
    }
    fn headers(&self) -> &[HeaderField] {
        self.0.headers()
    }
    fn write_body(&self, w: &mut dyn Write) -> io::Result<()> {
        self.0.write_body(w)
    }
    fn prepend_header(&mut self, name: &str, value: &str) -> Result<(), MessageError> {
        self.0.prepend_header(name, value)
    }
    fn message_id(&self) -> Option<&str> {
        None
    }
    fn needs_smtputf8(&self) -> bool {
        false
    }
    fn needs_8bitmime(&self) -> bool {
        false
    }
}

#[test]
fn a_message_that_cannot_be_read_drops_the_connection_before_the_end_of_data() {
    let fake = Fake::new(vec![
        s(&["220 mx.test"]),
        s(&["250-mx.test", "250 PIPELINING"]),
        s(&["250 ok", "250 ok", "354 go"]),
    ]);
    let mut conn = start(fake, config(TlsMode::None, false)).unwrap();
    let err = conn
        .send(
            "a@x.test",
            &["b@x.test".into()],
            &Failing(message("x\r\n")),
            false,
        )
        .unwrap_err();
    assert!(matches!(err, DriverError::Body(_)), "{err:?}");
    assert!(conn.stream.closed);
    let flights = conn.stream.flights_text();
    assert!(
        !flights.last().unwrap().contains("\r\n.\r\n"),
        "no end of data: {flights:?}"
    );
}

#[test]
fn the_transcript_reaches_the_log_sink_redacted() {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let log = Log::to(move |l| sink.lock().unwrap().push(l.to_owned()));
    let fake = Fake::new(vec![
        s(&["220 mx.test"]),
        s(&["250-mx.test", "250 AUTH PLAIN"]),
        s(&["235 ok"]),
        s(&["221 bye"]),
    ]);
    let mut cfg = config(TlsMode::None, true);
    cfg.transcript = true;
    if let Some(c) = cfg.credentials.as_mut() {
        c.choice = AuthChoice::Named(Mechanism::Plain);
    }
    let conn = Connection::start(fake, cfg, None, TIMEOUT, log).unwrap();
    conn.quit();
    let lines = lines.lock().unwrap();
    assert!(
        lines.contains(&"C: AUTH PLAIN <redacted>".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"S: 235 ok".to_string()), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("dGlt")), "{lines:?}");
}

#[test]
fn address_literals() {
    assert_eq!(
        address_literal(Some("127.0.0.1:25".parse().unwrap())),
        "[127.0.0.1]"
    );
    assert_eq!(
        address_literal(Some("[::1]:25".parse().unwrap())),
        "[IPv6:::1]"
    );
}
