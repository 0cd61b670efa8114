//! The session driven by conversations written in the transcript language that the scripted
//! server of the end-to-end tests also speaks (tests/support/transcript.rs): `S:` lines are what
//! the session reads, `C:` what it must write next.
use std::collections::VecDeque;

#[path = "../../../tests/support/transcript.rs"]
#[allow(dead_code)]
mod transcript;
use transcript::Item;

use super::*;
use crate::smtp::ReplyError;
use crate::smtp::{AuthChoice, Envid, ErrorClass, Notify, Ret, Secret, SecretKind};

const EHLO_NAME: &str = "client.example.org";

fn config(tls: TlsMode) -> Config {
    Config {
        ehlo_name: EHLO_NAME.into(),
        host: "server.example.com".into(),
        port: 587,
        tls,
        credentials: None,
        probe: false,
        transcript: true,
    }
}

fn with_creds(mut c: Config, choice: AuthChoice) -> Config {
    c.credentials = Some(Credentials {
        user: "tim".into(),
        password: Secret::from("tanstaaftanstaaf".to_string()),
        kind: SecretKind::Password,
        choice,
    });
    c
}

fn envelope(rcpts: &[&str], size: u64, more: bool) -> Envelope {
    Envelope {
        from: "quiz@example.org".into(),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        size,
        smtputf8: false,
        eight_bit: false,
        more,
        dsn: Dsn::default(),
    }
}

/// A tiny driver: runs a conversation written as `S: ` (server lines; consecutive ones
/// arrive in one read), `R: ` (raw bytes without CRLF, same read), `C: ` (the next item the
/// client writes; bodies show as `<body dot>` / `<body raw N>`), `* TLS` (the handshake,
/// after Event::StartTls) and `EOF`. It counts flights: bursts of writes between reads.
struct Driver {
    session: Session,
    envelopes: VecDeque<Envelope>,
    written: VecDeque<String>,
    reports: Vec<MessageReport>,
    errors: Vec<SmtpError>,
    submit_errors: Vec<SmtpError>,
    ready: Vec<Capabilities>,
    tls_requested: bool,
    closed: bool,
    flights: usize,
    reading: bool,
    bytewise: bool,
}

impl Driver {
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(out) = self.session.poll_output() {
                progressed = true;
                if self.reading {
                    self.flights += 1;
                    self.reading = false;
                }
                self.written.push_back(match out {
                    Output::Bytes(b) => {
                        let text = String::from_utf8(b).expect("commands are UTF-8");
                        let line = text.strip_suffix("\r\n").expect("CRLF terminated");
                        assert!(!line.contains(['\r', '\n']), "bare CR/LF in {line:?}");
                        line.to_string()
                    }
                    Output::Body(BodyFraming::Dot) => "<body dot>".into(),
                    Output::Body(BodyFraming::Raw { size }) => format!("<body raw {size}>"),
                });
            }
            if let Some(event) = self.session.poll_event() {
                progressed = true;
                match event {
                    Event::StartTls => self.tls_requested = true,
                    Event::Ready(caps) => {
                        self.ready.push(caps);
                        match self.envelopes.pop_front() {
                            Some(env) => {
                                if let Err(e) = self.session.submit(env) {
                                    self.submit_errors.push(e);
                                    self.session.quit().unwrap();
                                }
                            }
                            None => self.session.quit().unwrap(),
                        }
                    }
                    Event::Message(report) => self.reports.push(report),
                    Event::Closed => self.closed = true,
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.pump();
        assert!(
            self.written.is_empty(),
            "client wrote more than the script says: {:?}",
            self.written
        );
        assert!(
            self.session.wants_read(),
            "session does not want to read at stage {}",
            self.session.stage()
        );
        self.reading = true;
        let chunks: Vec<&[u8]> = if self.bytewise {
            bytes.chunks(1).collect()
        } else {
            vec![bytes]
        };
        for chunk in chunks {
            if let Err(e) = self.session.receive(chunk) {
                self.errors.push(e);
                break;
            }
        }
    }
}

fn run_with(config: Config, envelopes: Vec<Envelope>, script: &str, bytewise: bool) -> Driver {
    let mut d = Driver {
        session: Session::new(config).unwrap(),
        envelopes: envelopes.into(),
        written: VecDeque::new(),
        reports: Vec::new(),
        errors: Vec::new(),
        submit_errors: Vec::new(),
        ready: Vec::new(),
        tls_requested: false,
        closed: false,
        flights: 0,
        reading: true,
        bytewise,
    };
    let items = transcript::parse(script).unwrap_or_else(|e| panic!("bad script: {e}"));
    for item in items {
        match item {
            Item::Server(bytes) => d.feed(&bytes),
            Item::Client(expect) => {
                d.pump();
                let got = d.written.pop_front();
                assert!(
                    got.as_deref().is_some_and(|g| expect.matches(g)),
                    "at stage {}: the client wrote {got:?}, the script says {expect:?}",
                    d.session.stage()
                );
            }
            Item::Tls => {
                d.pump();
                assert!(d.written.is_empty(), "unexpected output {:?}", d.written);
                assert!(std::mem::take(&mut d.tls_requested), "no StartTls event");
                d.session.tls_established().unwrap();
            }
            Item::Eof => {
                d.pump();
                assert!(d.written.is_empty(), "unexpected output {:?}", d.written);
                if let Err(e) = d.session.connection_closed() {
                    d.errors.push(e);
                }
            }
            other => panic!("the session tests have no server to run {other:?}"),
        }
    }
    d.pump();
    assert!(
        d.written.is_empty(),
        "client wrote more than the script says: {:?}",
        d.written
    );
    d
}

/// Runs the script twice: whole chunks and byte by byte; returns the first run.
fn run(config: Config, envelopes: Vec<Envelope>, script: &str) -> Driver {
    let bytewise = run_with(config.clone(), envelopes.clone(), script, true);
    let whole = run_with(config, envelopes, script, false);
    assert_eq!(whole.flights, bytewise.flights);
    assert_eq!(whole.errors.len(), bytewise.errors.len());
    assert_eq!(whole.reports.len(), bytewise.reports.len());
    whole
}

fn error(d: &Driver) -> &SmtpError {
    assert_eq!(d.errors.len(), 1, "errors: {:?}", d.errors);
    &d.errors[0]
}

fn delivered(report: &MessageReport) -> &Delivered {
    match &report.outcome {
        Ok(d) => d,
        Err(e) => panic!("not delivered: {e}"),
    }
}

const GREETING: &str = "S: 220 mx.example.com ESMTP ready";

/// Greeting, EHLO, STARTTLS, handshake, EHLO with `post_tls` keyword lines.
fn starttls_prefix(post_tls: &str) -> String {
    format!(
        "{GREETING}
         C: EHLO client.example.org
         S: 250-mx.example.com
         S: 250-PIPELINING
         S: 250-STARTTLS
         S: 250 8BITMIME
         C: STARTTLS
         S: 220 2.0.0 Ready to start TLS
         * TLS
         C: EHLO client.example.org
         S: 250-mx.example.com Hello
         {post_tls}
         "
    )
}

const FULL_CAPS: &str = "S: 250-PIPELINING
         S: 250-SIZE 10240000
         S: 250-AUTH PLAIN LOGIN CRAM-MD5
         S: 250-ENHANCEDSTATUSCODES
         S: 250-8BITMIME
         S: 250-SMTPUTF8
         S: 250 CHUNKING";

const AUTH_PLAIN: &str = "C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
         S: 235 2.7.0 Authentication successful";

#[test]
fn floor_starttls_plain_pipelining_chunking_is_five_flights() {
    let script = starttls_prefix(FULL_CAPS)
        + AUTH_PLAIN
        + "
         C: MAIL FROM:<quiz@example.org> SIZE=1200
         C: RCPT TO:<ada@example.com>
         C: BDAT 1200 LAST
         C: <body raw 1200>
         C: QUIT
         S: 250 2.1.0 Ok
         S: 250 2.1.5 Ok
         S: 250 2.0.0 Ok: queued as 4B2F1C0A2E
         S: 221 2.0.0 Bye";
    let cfg = with_creds(config(TlsMode::Starttls), AuthChoice::Auto);
    let d = run(
        cfg,
        vec![envelope(&["ada@example.com"], 1200, false)],
        &script,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    // EHLO, STARTTLS, EHLO, AUTH, one transaction flight.
    assert_eq!(d.flights, 5);
    assert!(d.closed && d.session.is_finished());
    assert_eq!(d.reports.len(), 1);
    let ok = delivered(&d.reports[0]);
    assert_eq!(ok.queue_id.as_deref(), Some("4B2F1C0A2E"));
    assert_eq!(
        ok.reply.enhanced.map(|e| e.to_string()).as_deref(),
        Some("2.0.0")
    );
    assert_eq!(
        d.reports[0].accepted().collect::<Vec<_>>(),
        ["ada@example.com"]
    );
    assert_eq!(d.session.auth_mechanism(), Some(Mechanism::Plain));
    assert!(d.session.tls_active());
    // Pre-TLS capabilities are kept for display only; the post-TLS ones are in force.
    let pre = d.session.pre_tls_capabilities().unwrap();
    assert!(pre.starttls() && !pre.chunking());
    let post = d.session.capabilities().unwrap();
    assert!(post.chunking() && !post.starttls());
    assert_eq!(d.ready.len(), 1);
    assert!(d.ready[0].smtputf8());
}

#[test]
fn floor_without_chunking_adds_one_flight_for_the_body() {
    let script = starttls_prefix("S: 250-PIPELINING\nS: 250 AUTH PLAIN")
        + AUTH_PLAIN
        + "
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<ada@example.com>
         C: RCPT TO:<bob@example.com>
         C: DATA
         S: 250 2.1.0 Ok
         S: 250 2.1.5 Ok
         S: 250 2.1.5 Ok
         S: 354 End data with <CR><LF>.<CR><LF>
         C: <body dot>
         C: .
         C: QUIT
         S: 250 2.0.0 Ok: queued as ABC123
         S: 221 2.0.0 Bye";
    let cfg = with_creds(config(TlsMode::Starttls), AuthChoice::Auto);
    let d = run(
        cfg,
        vec![envelope(&["ada@example.com", "bob@example.com"], 10, false)],
        &script,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.flights, 6);
    assert_eq!(delivered(&d.reports[0]).queue_id.as_deref(), Some("ABC123"));
    assert!(!d.session.data_in_flight());
}

#[test]
fn without_pipelining_one_command_per_round_trip() {
    let script = "S: 220 mx ESMTP
         C: EHLO client.example.org
         S: 250-mx
         S: 250 SIZE
         C: MAIL FROM:<quiz@example.org> SIZE=42
         S: 250 ok
         C: RCPT TO:<ada@example.com>
         S: 251 will forward
         C: RCPT TO:<bob@example.com>
         S: 550 5.1.1 no such user
         C: DATA
         S: 354 go ahead
         C: <body dot>
         C: .
         S: 250 ok id=1uXyZ-000ABC-12
         C: QUIT
         S: 221 bye";
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["ada@example.com", "bob@example.com"], 42, false)],
        script,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    // EHLO, MAIL, RCPT, RCPT, DATA, body + dot, QUIT.
    assert_eq!(d.flights, 7);
    let report = &d.reports[0];
    assert_eq!(
        delivered(report).queue_id.as_deref(),
        Some("1uXyZ-000ABC-12")
    );
    assert_eq!(report.accepted().collect::<Vec<_>>(), ["ada@example.com"]);
    let rejected: Vec<_> = report
        .rejected()
        .map(|(a, r)| (a, r.code, r.text()))
        .collect();
    assert_eq!(
        rejected,
        [("bob@example.com", 550, "no such user".to_string())]
    );
}

#[test]
fn pipelined_one_recipient_rejected() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 PIPELINING
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<a@example.com>
         C: RCPT TO:<nobody@example.com>
         C: RCPT TO:<c@example.com>
         C: DATA
         S: 250 ok
         S: 250 ok
         S: 550-5.1.1 <nobody@example.com>: Recipient address rejected:
         S: 550 5.1.1 User unknown
         S: 250 ok
         S: 354 go
         C: <body dot>
         C: .
         C: QUIT
         S: 250 2.0.0 queued
         S: 221 bye";
    let env = envelope(
        &["a@example.com", "nobody@example.com", "c@example.com"],
        5,
        false,
    );
    let d = run(config(TlsMode::None), vec![env], script);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.flights, 3);
    let r = &d.reports[0];
    assert!(r.outcome.is_ok());
    assert_eq!(
        r.accepted().collect::<Vec<_>>(),
        ["a@example.com", "c@example.com"]
    );
    let (addr, reply) = r.rejected().next().unwrap();
    assert_eq!(addr, "nobody@example.com");
    assert_eq!(
        reply.enhanced.map(|e| e.to_string()).as_deref(),
        Some("5.1.1")
    );
    assert_eq!(
        reply.text(),
        "<nobody@example.com>: Recipient address rejected:\nUser unknown"
    );
    assert_eq!(delivered(r).queue_id, None);
}

const PIPELINED_EHLO: &str = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 PIPELINING";

#[test]
fn pipelined_all_recipients_rejected_data_refused() {
    let script = PIPELINED_EHLO.to_string()
        + "
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<a@example.com>
         C: RCPT TO:<b@example.com>
         C: DATA
         S: 250 ok
         S: 550 5.1.1 unknown
         S: 450 4.2.1 try later
         S: 554 5.5.1 no valid recipients
         C: QUIT
         S: 221 bye";
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com", "b@example.com"], 5, false)],
        &script,
    );
    assert!(d.errors.is_empty());
    let err = d.reports[0].outcome.as_ref().unwrap_err();
    assert!(
        matches!(err, SmtpError::NoRecipientAccepted { transient: true }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Temporary);
    assert_eq!(d.reports[0].rejected().count(), 2);
}

#[test]
fn pipelined_all_rejected_but_354_drops_the_connection_without_data() {
    let script = PIPELINED_EHLO.to_string()
        + "
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<a@example.com>
         C: DATA
         S: 250 ok
         S: 550 5.1.1 unknown
         S: 354 go ahead anyway";
    let mut d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 5, false)],
        &script,
    );
    assert!(d.errors.is_empty());
    assert!(d.closed && d.session.is_finished());
    let err = d.reports[0].outcome.as_ref().unwrap_err();
    assert!(matches!(
        err,
        SmtpError::NoRecipientAccepted { transient: false }
    ));
    assert_eq!(err.class(), ErrorClass::Permanent);
    // No body, no dot, no QUIT: the run's final check asserts nothing more was written.
    assert!(!d.session.data_in_flight());
    assert_eq!(d.session.connection_closed().ok(), Some(()));
}

const CHUNKING_EHLO: &str = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250-PIPELINING
         S: 250 CHUNKING";

#[test]
fn chunking_all_rejected_reads_every_reply() {
    let script = CHUNKING_EHLO.to_string()
        + "
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<a@example.com>
         C: BDAT 77 LAST
         C: <body raw 77>
         C: QUIT
         S: 250 ok
         S: 550 5.1.1 unknown
         S: 554 5.5.1 no valid recipients
         S: 221 bye";
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 77, false)],
        &script,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.flights, 2);
    assert!(matches!(
        d.reports[0].outcome,
        Err(SmtpError::NoRecipientAccepted { transient: false })
    ));
    assert!(d.closed);
}

#[test]
fn pipelined_mail_refused_explains_everything_after_it() {
    let script = CHUNKING_EHLO.to_string()
        + "
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<a@example.com>
         C: BDAT 3 LAST
         C: <body raw 3>
         C: QUIT
         S: 553 5.7.1 sender not owned by user
         S: 503 5.5.1 need MAIL
         S: 503 5.5.1 need MAIL
         S: 221 bye";
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 3, false)],
        &script,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    match &d.reports[0].outcome {
        Err(SmtpError::Rejected {
            stage: Stage::MailFrom,
            reply,
        }) => assert_eq!(reply.code, 553),
        other => panic!("{other:?}"),
    }
    // The 503 to the pipelined RCPT is about the refused MAIL, not about the recipient.
    assert!(matches!(
        d.reports[0].recipients[0].status,
        RecipientStatus::NotTried
    ));
    assert_eq!(d.reports[0].rejected().count(), 0);
}

#[test]
fn unpipelined_mail_refused_sends_no_recipient() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250 mx
         C: MAIL FROM:<quiz@example.org>
         S: 451 4.3.0 try later
         C: QUIT
         S: 221 bye";
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 3, false)],
        script,
    );
    let r = &d.reports[0];
    assert_eq!(
        r.outcome.as_ref().unwrap_err().class(),
        ErrorClass::Temporary
    );
    assert!(matches!(r.recipients[0].status, RecipientStatus::NotTried));
}

#[test]
fn mail_530_without_credentials_is_an_auth_error() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250 mx
         C: MAIL FROM:<quiz@example.org>
         S: 530 5.7.0 Authentication required
         C: QUIT
         S: 221 bye";
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 3, false)],
        script,
    );
    let err = d.reports[0].outcome.as_ref().unwrap_err();
    assert!(matches!(err, SmtpError::AuthRequired { .. }));
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(err.to_string().contains("give --user"));
}

#[test]
fn two_messages_on_one_connection_with_rset() {
    let script = CHUNKING_EHLO.to_string()
        + "
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<a@example.com>
         C: BDAT 10 LAST
         C: <body raw 10>
         S: 250 ok
         S: 250 ok
         S: 250 ok queued as FIRST
         C: RSET
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<b@example.com>
         C: BDAT 20 LAST
         C: <body raw 20>
         C: QUIT
         S: 250 reset
         S: 250 ok
         S: 250 ok
         S: 250 ok queued as SECOND
         S: 221 bye";
    let envs = vec![
        envelope(&["a@example.com"], 10, true),
        envelope(&["b@example.com"], 20, false),
    ];
    let d = run(config(TlsMode::None), envs, &script);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.flights, 3);
    let ids: Vec<_> = d
        .reports
        .iter()
        .map(|r| delivered(r).queue_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["FIRST", "SECOND"]);
    assert_eq!(d.ready.len(), 2);
}

#[test]
fn two_messages_without_pipelining() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250 mx
         C: MAIL FROM:<quiz@example.org>
         S: 250 ok
         C: RCPT TO:<nobody@example.com>
         S: 550 unknown
         C: RSET
         S: 250 ok
         C: MAIL FROM:<quiz@example.org>
         S: 250 ok
         C: RCPT TO:<b@example.com>
         S: 250 ok
         C: DATA
         S: 354 go
         C: <body dot>
         C: .
         S: 250 ok
         C: QUIT
         S: 221 bye";
    let envs = vec![
        envelope(&["nobody@example.com"], 1, true),
        envelope(&["b@example.com"], 1, false),
    ];
    let d = run(config(TlsMode::None), envs, script);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert!(d.reports[0].outcome.is_err());
    assert!(d.reports[1].outcome.is_ok());
}

#[test]
fn injection_after_starttls_220() {
    for (name, tail) in [
        ("complete reply", "S: 250 injected"),
        ("partial line", "R: 250 inj"),
    ] {
        let script = format!(
            "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 STARTTLS
             C: STARTTLS
             S: 220 go ahead
             {tail}"
        );
        for bytewise in [false, true] {
            let d = run_with(config(TlsMode::Starttls), vec![], &script, bytewise);
            let err = error(&d);
            assert!(
                matches!(err, SmtpError::StartTlsInjection { .. }),
                "{name}: {err}"
            );
            assert_eq!(err.class(), ErrorClass::Protocol);
            assert!(err.to_string().contains("data sent after 220 to STARTTLS"));
            assert!(!d.tls_requested, "{name}: handshake must not start");
            assert!(d.session.is_finished());
        }
    }
}

#[test]
fn starttls_not_offered_is_a_config_error_with_polite_quit() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 AUTH PLAIN
         C: QUIT";
    let d = run(
        with_creds(config(TlsMode::Starttls), AuthChoice::Auto),
        vec![],
        script,
    );
    assert!(matches!(error(&d), SmtpError::StartTlsNotOffered));
    assert_eq!(error(&d).class(), ErrorClass::Config);
    assert_eq!(d.session.stage(), Stage::Ehlo);
    assert!(!d.session.wants_read());
    // The capabilities stay readable for --probe.
    assert_eq!(
        d.session.capabilities().unwrap().auth_mechanisms(),
        ["PLAIN"]
    );
}

#[test]
fn helo_fallback_when_nothing_needs_esmtp() {
    let script = "S: 220 old.example.com
         C: EHLO client.example.org
         S: 502 5.5.2 Command not recognized
         C: HELO client.example.org
         S: 250-old.example.com
         S: 250 PIPELINING
         C: MAIL FROM:<quiz@example.org>
         S: 250 ok
         C: RCPT TO:<a@example.com>
         S: 250 ok
         C: DATA
         S: 354 go
         C: <body dot>
         C: .
         S: 250 ok
         C: QUIT
         S: 221 bye";
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 1, false)],
        script,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    // HELO offers nothing, even if its reply looks like an EHLO one.
    assert_eq!(d.ready[0], Capabilities::none());
    assert!(d.reports[0].outcome.is_ok());
}

#[test]
fn helo_fallback_forbidden_when_tls_or_auth_needed() {
    let refused = "S: 220 old
         C: EHLO client.example.org
         S: 500 unrecognized
         C: QUIT";
    let d = run(config(TlsMode::Starttls), vec![], refused);
    assert!(matches!(error(&d), SmtpError::StartTlsNotOffered));
    let d = run(
        with_creds(config(TlsMode::None), AuthChoice::Auto),
        vec![],
        refused,
    );
    assert!(matches!(error(&d), SmtpError::AuthNotOffered));
    assert_eq!(error(&d).class(), ErrorClass::Config);
    // Other EHLO refusals are not a reason to fall back.
    let d = run(
        config(TlsMode::None),
        vec![],
        "S: 220 x
         C: EHLO client.example.org
         S: 554 go away
         C: QUIT",
    );
    assert!(matches!(
        error(&d),
        SmtpError::Rejected {
            stage: Stage::Ehlo,
            ..
        }
    ));
    assert_eq!(error(&d).class(), ErrorClass::Permanent);
}

#[test]
fn auth_login_by_steps() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 AUTH LOGIN
         C: AUTH LOGIN
         S: 334 VXNlcm5hbWU6
         C: dGlt
         S: 334 UGFzc3dvcmQ6
         C: dGFuc3RhYWZ0YW5zdGFhZg==
         S: 235 ok
         C: QUIT
         S: 221 bye";
    let cfg = with_creds(config(TlsMode::Implicit), AuthChoice::Auto);
    let d = run(cfg, vec![], script);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.session.auth_mechanism(), Some(Mechanism::Login));
}

#[test]
fn auth_cram_md5_in_the_clear_with_auto() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 AUTH PLAIN LOGIN CRAM-MD5
         C: AUTH CRAM-MD5
         S: 334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+
         C: dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw
         S: 235 2.7.0 ok
         C: QUIT
         S: 221 bye";
    let d = run(
        with_creds(config(TlsMode::None), AuthChoice::Auto),
        vec![],
        script,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.session.auth_mechanism(), Some(Mechanism::CramMd5));
}

#[test]
fn auth_535_ends_it_without_trying_another_mechanism() {
    for (choice, exchange) in [
        (AuthChoice::Auto, "C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\nS: 535 5.7.8 Authentication credentials invalid"),
        (
            AuthChoice::Named(Mechanism::Login),
            "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: dGlt\nS: 334 UGFzc3dvcmQ6\nC: dGFuc3RhYWZ0YW5zdGFhZg==\nS: 535 no",
        ),
    ] {
        let script = format!(
            "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 AUTH PLAIN LOGIN CRAM-MD5
             {exchange}
             C: QUIT"
        );
        let d = run(with_creds(config(TlsMode::Implicit), choice), vec![], &script);
        let err = error(&d);
        assert!(matches!(err, SmtpError::AuthFailed { reply, .. } if reply.code == 535), "{err}");
        assert_eq!(err.class(), ErrorClass::Auth);
        assert_eq!(d.session.auth_mechanism(), None);
    }
}

#[test]
fn auth_temporary_failure_and_bad_challenge() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 AUTH PLAIN
         C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
         S: 454 4.7.0 Temporary authentication failure
         C: QUIT";
    let d = run(
        with_creds(config(TlsMode::Implicit), AuthChoice::Auto),
        vec![],
        script,
    );
    assert!(matches!(
        error(&d),
        SmtpError::Rejected {
            stage: Stage::Auth,
            ..
        }
    ));
    assert_eq!(error(&d).class(), ErrorClass::Temporary);
    // A single-line EHLO reply offers no AUTH at all.
    let script = "S: 220 mx\nC: EHLO client.example.org\nS: 250 AUTH PLAIN\nC: QUIT";
    let d = run(
        with_creds(config(TlsMode::Implicit), AuthChoice::Auto),
        vec![],
        script,
    );
    assert!(matches!(error(&d), SmtpError::AuthNotOffered));
    let d = run(
        with_creds(config(TlsMode::None), AuthChoice::Auto),
        vec![],
        "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 AUTH CRAM-MD5
         C: AUTH CRAM-MD5
         S: 334 %%%",
    );
    assert!(matches!(error(&d), SmtpError::BadChallenge(_)));
    assert_eq!(error(&d).class(), ErrorClass::Protocol);
}

#[test]
fn auth_needs_a_usable_mechanism() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 AUTH PLAIN LOGIN
         C: QUIT";
    let d = run(
        with_creds(config(TlsMode::None), AuthChoice::Auto),
        vec![],
        script,
    );
    assert!(matches!(
        error(&d),
        SmtpError::NoUsableMechanism { tls: false, .. }
    ));
    assert_eq!(error(&d).class(), ErrorClass::Config);
    // Named explicitly, PLAIN goes even in the clear.
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 AUTH PLAIN LOGIN
         C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
         S: 235 ok
         C: QUIT
         S: 221 bye";
    let d = run(
        with_creds(config(TlsMode::None), AuthChoice::Named(Mechanism::Plain)),
        vec![],
        script,
    );
    assert!(d.errors.is_empty());
}

const SMALL_EHLO: &str = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 SIZE 1000";

#[test]
fn size_limit_refused_before_mail() {
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 1001, false)],
        &format!("{SMALL_EHLO}\nC: QUIT\nS: 221 bye"),
    );
    assert_eq!(d.submit_errors.len(), 1);
    assert!(matches!(
        d.submit_errors[0],
        SmtpError::TooBig {
            size: 1001,
            limit: 1000
        }
    ));
    assert_eq!(d.submit_errors[0].class(), ErrorClass::Permanent);
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 1000, false)],
        &format!("{SMALL_EHLO}\nC: MAIL FROM:<quiz@example.org> SIZE=1000\nS: 250 ok\nC: RCPT TO:<a@example.com>\nS: 250 ok\nC: DATA\nS: 354 go\nC: <body dot>\nC: .\nS: 250 ok\nC: QUIT\nS: 221 bye"),
    );
    assert!(d.submit_errors.is_empty() && d.errors.is_empty());
}

#[test]
fn smtputf8_and_8bitmime_needed_but_missing() {
    let mut utf8 = envelope(&["a@example.com"], 1, false);
    utf8.smtputf8 = true;
    let mut eight = envelope(&["a@example.com"], 1, false);
    eight.eight_bit = true;
    let non_ascii = envelope(&["δοκιμή@example.com"], 1, false);
    for (env, expected) in [
        (utf8, "SMTPUTF8"),
        (eight, "8BITMIME"),
        (non_ascii, "SMTPUTF8"),
    ] {
        let d = run(
            config(TlsMode::None),
            vec![env],
            &format!("{SMALL_EHLO}\nC: QUIT\nS: 221 bye"),
        );
        assert_eq!(d.submit_errors.len(), 1);
        assert_eq!(d.submit_errors[0].class(), ErrorClass::Data);
        assert!(d.submit_errors[0].to_string().contains(expected));
    }
}

#[test]
fn smtputf8_and_8bitmime_params_when_offered() {
    let mut env = envelope(&["δοκιμή@example.com"], 9, false);
    env.eight_bit = true;
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250-8BITMIME
         S: 250 SMTPUTF8
         C: MAIL FROM:<quiz@example.org> BODY=8BITMIME SMTPUTF8
         S: 250 ok
         C: RCPT TO:<δοκιμή@example.com>
         S: 250 ok
         C: DATA
         S: 354 go
         C: <body dot>
         C: .
         S: 250 ok
         C: QUIT
         S: 221 bye";
    let d = run(config(TlsMode::None), vec![env], script);
    assert!(d.errors.is_empty() && d.submit_errors.is_empty());
}

fn dsn_envelope(rcpts: &[&str]) -> Envelope {
    let mut env = envelope(rcpts, 9, false);
    env.dsn = Dsn {
        notify: Some(Notify::parse("failure,delay").unwrap()),
        ret: Some(Ret::Hdrs),
        envid: Some(Envid::new("run 42").unwrap()),
    };
    env
}

#[test]
fn dsn_parameters_when_offered() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250-PIPELINING
         S: 250-SMTPUTF8
         S: 250 DSN
         C: MAIL FROM:<quiz@example.org> SMTPUTF8 RET=HDRS ENVID=run+2042
         C: RCPT TO:<a+b@example.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a+2Bb@example.com
         C: RCPT TO:<δ@example.com> NOTIFY=FAILURE,DELAY ORCPT=utf-8;\\x{3B4}@example.com
         C: DATA
         S: 250 ok
         S: 250 ok
         S: 250 ok
         S: 354 go
         C: <body dot>
         C: .
         C: QUIT
         S: 250 ok
         S: 221 bye";
    let d = run(
        config(TlsMode::None),
        vec![dsn_envelope(&["a+b@example.com", "δ@example.com"])],
        script,
    );
    assert!(d.errors.is_empty() && d.submit_errors.is_empty());
    assert!(!d.reports[0].dsn_not_offered);
}

#[test]
fn dsn_parameters_left_out_when_not_offered() {
    let script = format!(
        "{SMALL_EHLO}
         C: MAIL FROM:<quiz@example.org> SIZE=9
         S: 250 ok
         C: RCPT TO:<a@example.com>
         S: 250 ok
         C: DATA
         S: 354 go
         C: <body dot>
         C: .
         S: 250 ok
         C: QUIT
         S: 221 bye"
    );
    let d = run(
        config(TlsMode::None),
        vec![dsn_envelope(&["a@example.com"])],
        &script,
    );
    assert!(d.errors.is_empty() && d.submit_errors.is_empty());
    assert!(d.reports[0].dsn_not_offered);
    // Nothing asked, nothing to report.
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 9, false)],
        &script,
    );
    assert!(!d.reports[0].dsn_not_offered);
}

#[test]
fn invalid_addresses_are_data_errors() {
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com\r\nRSET"], 1, false)],
        &format!("{SMALL_EHLO}\nC: QUIT\nS: 221 bye"),
    );
    assert_eq!(d.submit_errors[0].class(), ErrorClass::Data);
    let d = run(
        config(TlsMode::None),
        vec![envelope(&[], 1, false)],
        &format!("{SMALL_EHLO}\nC: QUIT\nS: 221 bye"),
    );
    assert_eq!(d.submit_errors[0].class(), ErrorClass::Data);
    assert!(Session::new(Config {
        ehlo_name: "bad name".into(),
        ..config(TlsMode::None)
    })
    .is_err());
}

/// A full pipelined session without chunking, cut at step `n` by `cut`.
fn steps() -> Vec<(&'static str, Stage)> {
    vec![
        ("S: 220 mx", Stage::Greeting),
        (
            "C: EHLO client.example.org\nS: 250-mx\nS: 250-PIPELINING\nS: 250 STARTTLS",
            Stage::Ehlo,
        ),
        ("C: STARTTLS\nS: 220 go", Stage::StartTls),
        (
            "* TLS\nC: EHLO client.example.org\nS: 250-mx\nS: 250-PIPELINING\nS: 250 AUTH LOGIN",
            Stage::Ehlo,
        ),
        ("C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6", Stage::Auth),
        ("C: dGlt\nS: 334 UGFzc3dvcmQ6", Stage::Auth),
        ("C: dGFuc3RhYWZ0YW5zdGFhZg==\nS: 235 ok", Stage::Auth),
        (
            "C: MAIL FROM:<quiz@example.org>\nC: RCPT TO:<a@example.com>\nC: DATA\nS: 250 ok",
            Stage::MailFrom,
        ),
        ("S: 250 ok", Stage::RcptTo),
        ("S: 354 go", Stage::Data),
        ("C: <body dot>\nC: .\nC: QUIT\nS: 250 ok", Stage::EndOfData),
        ("S: 221 bye", Stage::Quit),
    ]
}

fn cut_script(n: usize, cut: &str) -> String {
    let steps = steps();
    let mut script: Vec<String> = steps[..n].iter().map(|(s, _)| s.to_string()).collect();
    // Keep the client lines of step n, replace its server reply with the cut.
    let client: Vec<&str> = steps[n]
        .0
        .lines()
        .filter(|l| !l.starts_with("S: "))
        .collect();
    script.extend(client.iter().map(|l| l.to_string()));
    script.push(cut.to_string());
    script.join("\n")
}

fn full_config() -> Config {
    with_creds(
        config(TlsMode::Starttls),
        AuthChoice::Named(Mechanism::Login),
    )
}

#[test]
fn full_pipelined_session_without_cut() {
    let script = steps()
        .iter()
        .map(|(s, _)| *s)
        .collect::<Vec<_>>()
        .join("\n");
    let d = run(
        full_config(),
        vec![envelope(&["a@example.com"], 5, false)],
        &script,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert!(d.reports[0].outcome.is_ok() && d.closed);
}

#[test]
fn service_closing_421_at_every_step() {
    for (n, (_, stage)) in steps().into_iter().enumerate() {
        if stage == Stage::Quit {
            continue;
        }
        let script = cut_script(n, "S: 421 4.3.2 Service shutting down");
        let d = run(
            full_config(),
            vec![envelope(&["a@example.com"], 5, false)],
            &script,
        );
        let err = error(&d);
        assert!(
            matches!(err, SmtpError::ServiceClosing { stage: s, .. } if *s == stage),
            "step {n}: {err}"
        );
        assert_eq!(err.class(), ErrorClass::Temporary, "step {n}");
        assert_eq!(err.reply().map(|r| r.code), Some(421));
        assert!(d.session.is_finished());
        assert!(!d.session.data_in_flight(), "step {n}: a 421 settles it");
        // No QUIT after 421: the server is already closing (checked by the run: nothing
        // more was written).
    }
}

#[test]
fn eof_at_every_step() {
    for (n, (_, stage)) in steps().into_iter().enumerate() {
        let script = cut_script(n, "EOF");
        let d = run(
            full_config(),
            vec![envelope(&["a@example.com"], 5, false)],
            &script,
        );
        if stage == Stage::Quit {
            // Only the 221 was missing: nothing was lost.
            assert!(d.errors.is_empty(), "{:?}", d.errors);
            assert!(d.reports[0].outcome.is_ok());
            continue;
        }
        let err = error(&d);
        assert!(
            matches!(err, SmtpError::Closed { stage: s, .. } if *s == stage),
            "step {n}: {err}"
        );
        assert_eq!(err.class(), ErrorClass::Temporary);
        assert_eq!(
            err.may_have_been_delivered(),
            stage == Stage::EndOfData,
            "step {n}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("connection closed during {stage}")));
    }
}

#[test]
fn eof_during_tls_handshake_and_while_ready() {
    let d = run(full_config(), vec![], "S: 220 mx\nC: EHLO client.example.org\nS: 250-mx\nS: 250 STARTTLS\nC: STARTTLS\nS: 220 go\nEOF");
    assert!(matches!(
        error(&d),
        SmtpError::Closed {
            stage: Stage::TlsHandshake,
            maybe_delivered: false
        }
    ));
}

#[test]
fn eof_after_bdat_body_may_have_delivered() {
    let script = CHUNKING_EHLO.to_string()
        + "
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<a@example.com>
         C: BDAT 5 LAST
         C: <body raw 5>
         C: QUIT
         S: 250 ok
         S: 250 ok
         EOF";
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 5, false)],
        &script,
    );
    assert!(error(&d).may_have_been_delivered());
    assert!(matches!(
        error(&d),
        SmtpError::Closed {
            stage: Stage::EndOfData,
            ..
        }
    ));
}

#[test]
fn replies_that_do_not_fit_the_command_are_protocol_errors() {
    for (script, stage) in [
        ("S: 250 not a greeting", Stage::Greeting),
        ("S: 220 mx\nC: EHLO client.example.org\nS: 220 shifted", Stage::Ehlo),
        ("S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: MAIL FROM:<quiz@example.org>\nS: 354 shifted", Stage::MailFrom),
        ("S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: MAIL FROM:<quiz@example.org>\nS: 250 ok\nC: RCPT TO:<a@example.com>\nS: 354 x", Stage::RcptTo),
        ("S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: MAIL FROM:<quiz@example.org>\nS: 250 ok\nC: RCPT TO:<a@example.com>\nS: 250 ok\nC: DATA\nS: 250 no", Stage::Data),
        ("S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: MAIL FROM:<quiz@example.org>\nS: 250 ok\nC: RCPT TO:<a@example.com>\nS: 250 ok\nC: DATA\nS: 354 go\nC: <body dot>\nC: .\nS: 354 again", Stage::EndOfData),
        ("S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: MAIL FROM:<quiz@example.org>\nS: 250 ok\nC: RCPT TO:<a@example.com>\nS: 250 ok\nC: DATA\nS: 354 go\nC: <body dot>\nC: .\nS: 250 ok\nC: QUIT\nS: 250 not bye", Stage::Quit),
    ] {
        let d = run(config(TlsMode::None), vec![envelope(&["a@example.com"], 1, false)], script);
        let err = error(&d);
        assert!(matches!(err, SmtpError::UnexpectedReply { stage: s, .. } if *s == stage), "{err}");
        assert_eq!(err.class(), ErrorClass::Protocol);
    }
    // A refused QUIT gets no second QUIT (the run checks nothing more is written).
    let script = "S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: QUIT\nS: 500 what";
    let d = run(config(TlsMode::None), vec![], script);
    assert!(matches!(
        error(&d),
        SmtpError::UnexpectedReply {
            stage: Stage::Quit,
            ..
        }
    ));
}

#[test]
fn early_talker_and_unsolicited_replies() {
    // The server answers EHLO before it was sent. Only visible when both replies arrive in
    // one read: read byte by byte, the driver would have written EHLO in between.
    let d = run_with(config(TlsMode::None), vec![], "S: 220 mx\nS: 250 mx", false);
    assert!(matches!(
        error(&d),
        SmtpError::UnsolicitedReply {
            stage: Stage::Ehlo,
            ..
        }
    ));
    // An extra reply after the last expected one.
    let d = run(
        config(TlsMode::None),
        vec![],
        "S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nS: 250 extra",
    );
    assert_eq!(error(&d).class(), ErrorClass::Protocol);
}

#[test]
fn the_start_of_a_reply_before_its_command_is_an_early_reply() {
    // Found by the session fuzz target: a whole early reply was refused, but its unfinished
    // start stayed in the parser and later answered the command written after it.
    let mut d = run_with(config(TlsMode::None), vec![], "S: 220 mx\nR: 25", false);
    assert!(
        matches!(error(&d), SmtpError::EarlyReply { stage: Stage::Ehlo }),
        "{:?}",
        d.errors
    );
    assert_eq!(error(&d).class(), ErrorClass::Protocol);
    assert!(
        d.session.poll_output().is_none(),
        "nothing is written after it"
    );
}

#[test]
fn refused_rset_does_not_stop_the_next_message() {
    let script = CHUNKING_EHLO.to_string()
        + "
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<a@example.com>
         C: BDAT 1 LAST
         C: <body raw 1>
         S: 250 ok
         S: 250 ok
         S: 250 ok
         C: RSET
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<b@example.com>
         C: BDAT 1 LAST
         C: <body raw 1>
         C: QUIT
         S: 502 no RSET here
         S: 250 ok
         S: 250 ok
         S: 250 ok
         S: 221 bye";
    let envs = vec![
        envelope(&["a@example.com"], 1, true),
        envelope(&["b@example.com"], 1, false),
    ];
    let d = run(config(TlsMode::None), envs, &script);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert!(d.reports.iter().all(|r| r.outcome.is_ok()));
    assert!(d.closed);
}

#[test]
fn malformed_reply_to_end_of_data_leaves_the_message_in_doubt() {
    let script = CHUNKING_EHLO.to_string()
        + "
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<a@example.com>
         C: BDAT 1 LAST
         C: <body raw 1>
         C: QUIT
         S: 250 ok
         S: 250 ok
         S: 2xx garbage";
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 1, false)],
        &script,
    );
    assert!(matches!(
        error(&d),
        SmtpError::Malformed {
            stage: Stage::EndOfData,
            ..
        }
    ));
    assert!(d.session.data_in_flight());
}

#[test]
fn malformed_reply_names_the_stage() {
    let d = run(
        config(TlsMode::None),
        vec![],
        "S: 220 mx\nC: EHLO client.example.org\nS: 250-mx\nS: 251 mismatch",
    );
    assert!(matches!(
        error(&d),
        SmtpError::Malformed {
            stage: Stage::Ehlo,
            ..
        }
    ));
    assert_eq!(error(&d).class(), ErrorClass::Protocol);
}

#[test]
fn greeting_554_is_refused_with_quit() {
    let d = run(
        config(TlsMode::None),
        vec![],
        "S: 554 5.7.1 no service for you\nC: QUIT",
    );
    assert!(matches!(
        error(&d),
        SmtpError::Rejected {
            stage: Stage::Greeting,
            ..
        }
    ));
    assert_eq!(error(&d).class(), ErrorClass::Permanent);
}

#[test]
fn final_reply_refused() {
    let script = CHUNKING_EHLO.to_string()
        + "
         C: MAIL FROM:<quiz@example.org>
         C: RCPT TO:<a@example.com>
         C: BDAT 5 LAST
         C: <body raw 5>
         C: QUIT
         S: 250 ok
         S: 250 ok
         S: 452 4.3.1 insufficient storage
         S: 221 bye";
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 5, false)],
        &script,
    );
    let err = d.reports[0].outcome.as_ref().unwrap_err();
    assert!(matches!(
        err,
        SmtpError::Rejected {
            stage: Stage::EndOfData,
            ..
        }
    ));
    assert_eq!(err.class(), ErrorClass::Temporary);
    assert!(!d.session.data_in_flight());
}

#[test]
fn probe_stops_after_the_second_ehlo() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250-STARTTLS
         S: 250 SIZE 100
         C: STARTTLS
         S: 220 go
         * TLS
         C: EHLO client.example.org
         S: 250-mx
         S: 250-AUTH PLAIN
         S: 250 SIZE 200
         C: QUIT
         S: 221 bye";
    let mut cfg = with_creds(config(TlsMode::Starttls), AuthChoice::Auto);
    cfg.probe = true;
    let d = run(cfg, vec![], script);
    assert!(d.errors.is_empty() && d.ready.is_empty() && d.closed);
    assert_eq!(
        d.session.greeting().map(|g| g.text()).as_deref(),
        Some("mx")
    );
    assert_eq!(
        d.session
            .pre_tls_capabilities()
            .and_then(|c| c.size_limit()),
        Some(100)
    );
    assert_eq!(
        d.session.capabilities().and_then(|c| c.size_limit()),
        Some(200)
    );
    assert_eq!(d.flights, 4);
}

#[test]
fn transcript_is_redacted_and_ordered() {
    let script = starttls_prefix("S: 250 AUTH PLAIN") + AUTH_PLAIN + "\nC: QUIT\nS: 221 bye";
    let mut d = run(
        with_creds(config(TlsMode::Starttls), AuthChoice::Auto),
        vec![],
        &script,
    );
    let t = d.session.take_transcript();
    let expected: Vec<String> = script
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("C: ") || l.starts_with("S: "))
        .map(|l| l.replace("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", "<redacted>"))
        .collect();
    assert_eq!(t, expected);
    assert!(t.contains(&"C: AUTH PLAIN <redacted>".to_string()));
    assert!(d.session.take_transcript().is_empty());
    let mut cfg = config(TlsMode::None);
    cfg.transcript = false;
    let mut d = run(
        cfg,
        vec![],
        "S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\nC: QUIT\nS: 221 bye",
    );
    assert!(d.session.take_transcript().is_empty());
}

#[test]
fn misuse_is_reported_not_panicked() {
    let mut s = Session::new(config(TlsMode::None)).unwrap();
    assert!(matches!(
        s.submit(envelope(&["a@b"], 1, false)),
        Err(SmtpError::Misuse(_))
    ));
    assert!(matches!(s.quit(), Err(SmtpError::Misuse(_))));
    assert!(matches!(s.tls_established(), Err(SmtpError::Misuse(_))));
    assert_eq!(s.stage(), Stage::Greeting);
    s.receive(b"220 mx\r\n").unwrap();
    // EHLO is pending: reading before writing it is a driver bug.
    assert!(matches!(
        s.receive(b"250 mx\r\n"),
        Err(SmtpError::Misuse(_))
    ));
}

#[test]
fn queue_id_forms() {
    let id = |text: &str| queue_id(&Reply::new(250, None, vec![text.into()]));
    assert_eq!(
        id("Ok: queued as 4B2F1C0A2E").as_deref(),
        Some("4B2F1C0A2E")
    );
    assert_eq!(
        id("OK id=1uXyZ-000ABC-12").as_deref(),
        Some("1uXyZ-000ABC-12")
    );
    assert_eq!(
        id("Message queued with id 0a1b2c3d.").as_deref(),
        Some("0a1b2c3d")
    );
    assert_eq!(
        id("x8M9aBcD012345 Message accepted for delivery").as_deref(),
        Some("x8M9aBcD012345")
    );
    assert_eq!(id("ok 1700000000 qp 12345").as_deref(), Some("12345"));
    assert_eq!(
        id("OK  1618300000 r4sm123456qkc.12 - gsmtp").as_deref(),
        Some("r4sm123456qkc.12")
    );
    assert_eq!(id("Ok"), None);
    assert_eq!(id("Message accepted for delivery"), None);
}

#[test]
fn rcpt_250_251_252_and_any_2yz_are_success() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250 mx
         C: MAIL FROM:<quiz@example.org>
         S: 251 odd but positive
         C: RCPT TO:<a@example.com>
         S: 250 ok
         C: RCPT TO:<b@example.com>
         S: 251 user not local; will forward
         C: RCPT TO:<c@example.com>
         S: 252 cannot verify, will accept
         C: RCPT TO:<d@example.com>
         S: 253 unlisted but positive
         C: DATA
         S: 354 go
         C: <body dot>
         C: .
         S: 251 ok, queued as X1
         C: QUIT
         S: 221 bye";
    let rcpts = [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ];
    let d = run(
        config(TlsMode::None),
        vec![envelope(&rcpts, 1, false)],
        script,
    );
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let report = &d.reports[0];
    assert_eq!(report.accepted().collect::<Vec<_>>(), rcpts);
    assert_eq!(delivered(report).reply.code, 251);
}

#[test]
fn intermediate_replies_keep_their_exact_code() {
    // DATA needs 354: a 2yz there is out of step, not success.
    let d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 1, false)],
        "S: 220 mx
         C: EHLO client.example.org
         S: 250 mx
         C: MAIL FROM:<quiz@example.org>
         S: 250 ok
         C: RCPT TO:<a@example.com>
         S: 250 ok
         C: DATA
         S: 250 shifted",
    );
    assert!(matches!(
        error(&d),
        SmtpError::UnexpectedReply {
            stage: Stage::Data,
            ..
        }
    ));
    // EHLO needs 250: another 2yz (here the greeting's 220) is a shifted dialogue.
    let d = run(
        config(TlsMode::None),
        vec![],
        "S: 220 mx\nC: EHLO client.example.org\nS: 251 what",
    );
    assert_eq!(error(&d).class(), ErrorClass::Protocol);
}

/// Success to AUTH before the exchange sent its final response answers nothing we sent.
#[test]
fn auth_success_before_the_final_response_is_a_protocol_error() {
    let long = "p".repeat(400);
    let cases = [
        (
            AuthChoice::Named(Mechanism::Login),
            "tanstaaftanstaaf",
            "C: AUTH LOGIN\nS: 235 2.7.0 ok",
        ),
        (
            AuthChoice::Named(Mechanism::Login),
            "tanstaaftanstaaf",
            "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: dGlt\nS: 235 2.7.0 ok",
        ),
        (
            AuthChoice::Named(Mechanism::Plain),
            long.as_str(),
            "C: AUTH PLAIN\nS: 235 2.7.0 ok",
        ),
        (
            AuthChoice::Named(Mechanism::CramMd5),
            "tanstaaftanstaaf",
            "C: AUTH CRAM-MD5\nS: 235 2.7.0 ok",
        ),
    ];
    for (choice, password, exchange) in cases {
        let script = format!(
            "S: 220 mx
             C: EHLO client.example.org
             S: 250-mx
             S: 250 AUTH PLAIN LOGIN CRAM-MD5
             {exchange}"
        );
        let mut cfg = with_creds(config(TlsMode::Implicit), choice);
        if let Some(c) = cfg.credentials.as_mut() {
            c.password = Secret::from(password.to_string());
        }
        let d = run(cfg, vec![], &script);
        let err = error(&d);
        assert!(
            matches!(
                err,
                SmtpError::UnsolicitedReply {
                    stage: Stage::Auth,
                    ..
                }
            ),
            "{exchange}: {err}"
        );
        assert_eq!(err.class(), ErrorClass::Protocol);
        assert_eq!(d.session.auth_mechanism(), None);
        assert!(d.ready.is_empty());
    }
}

#[test]
fn auth_plain_without_initial_response_when_the_line_is_too_long() {
    let password = "p".repeat(400);
    let response = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("\0tim\0{password}"))
    };
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 AUTH PLAIN
         C: AUTH PLAIN
         S: 334
         C: <redacted>
         S: 235 2.7.0 ok
         C: QUIT
         S: 221 bye";
    let mut cfg = with_creds(config(TlsMode::Implicit), AuthChoice::Auto);
    if let Some(c) = cfg.credentials.as_mut() {
        c.password = Secret::from(password);
    }
    let d = run(cfg, vec![], &script.replace("<redacted>", &response));
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.session.auth_mechanism(), Some(Mechanism::Plain));
}

#[test]
fn control_character_in_a_reply_is_malformed() {
    let d = run(
        config(TlsMode::None),
        vec![],
        "S: 220 mx\nC: EHLO client.example.org\nS: 250 mx\0evil",
    );
    assert!(matches!(
        error(&d),
        SmtpError::Malformed {
            stage: Stage::Ehlo,
            source: ReplyError::ControlCharacter { .. },
        }
    ));
    assert_eq!(error(&d).class(), ErrorClass::Protocol);
}

#[test]
fn a_failure_is_sticky_and_keeps_its_cause() {
    let script = "S: 220 mx
         C: EHLO client.example.org
         S: 250 mx
         C: MAIL FROM:<quiz@example.org>
         S: 354 shifted";
    let mut d = run(
        config(TlsMode::None),
        vec![envelope(&["a@example.com"], 1, false)],
        script,
    );
    let same = |e: Result<(), SmtpError>| {
        matches!(
            e,
            Err(SmtpError::UnexpectedReply {
                stage: Stage::MailFrom,
                ref reply,
            }) if reply.code == 354
        )
    };
    assert!(same(Err(error(&d).clone())));
    let s = &mut d.session;
    assert!(same(s.receive(b"250 ok\r\n")));
    assert!(same(s.connection_closed()));
    assert!(same(s.tls_established()));
    assert!(same(s.quit()));
    assert!(same(s.submit(envelope(&["a@example.com"], 1, false))));
    assert_eq!(s.stage(), Stage::MailFrom);
    assert!(s.is_finished() && !s.wants_read());
}

/// The RFC 7628 §4 user and token, at the §4.3 server and port.
fn with_token(mut c: Config, choice: AuthChoice) -> Config {
    c.credentials = Some(Credentials {
        user: "user@example.com".into(),
        password: Secret::from("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".to_string()),
        kind: SecretKind::BearerToken,
        choice,
    });
    c
}

/// RFC 7628 §4.3's initial client response (server.example.com, port 587).
const OAUTHBEARER_IR: &str = "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9NTg3AWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB";
/// base64 of `user=user@example.com^Aauth=Bearer vF9...Cg==^A^A` (Google's format).
const XOAUTH2_IR: &str = "dXNlcj11c2VyQGV4YW1wbGUuY29tAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB";
/// RFC 7628 §4.3's error challenge: invalid_token, scope example_scope.
const OAUTH_ERROR: &str = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=";

#[test]
fn oauth_mechanisms_succeed_with_the_initial_response() {
    for (choice, offer, line, mechanism) in [
        (
            AuthChoice::Auto,
            "PLAIN LOGIN XOAUTH2 OAUTHBEARER",
            format!("AUTH OAUTHBEARER {OAUTHBEARER_IR}"),
            Mechanism::OAuthBearer,
        ),
        (
            AuthChoice::Auto,
            "PLAIN LOGIN XOAUTH2",
            format!("AUTH XOAUTH2 {XOAUTH2_IR}"),
            Mechanism::XOAuth2,
        ),
        // Named, XOAUTH2 is used even though OAUTHBEARER is offered too.
        (
            AuthChoice::Named(Mechanism::XOAuth2),
            "OAUTHBEARER XOAUTH2",
            format!("AUTH XOAUTH2 {XOAUTH2_IR}"),
            Mechanism::XOAuth2,
        ),
        (
            AuthChoice::Named(Mechanism::OAuthBearer),
            "XOAUTH2 OAUTHBEARER",
            format!("AUTH OAUTHBEARER {OAUTHBEARER_IR}"),
            Mechanism::OAuthBearer,
        ),
    ] {
        let script = starttls_prefix(&format!("S: 250 AUTH {offer}"))
            + &format!(
                "
                 C: {line}
                 S: 235 2.7.0 Accepted
                 C: QUIT
                 S: 221 bye"
            );
        let mut d = run(
            with_token(config(TlsMode::Starttls), choice),
            vec![],
            &script,
        );
        assert!(d.errors.is_empty(), "{offer}: {:?}", d.errors);
        assert_eq!(d.session.auth_mechanism(), Some(mechanism));
        let t = d.session.take_transcript();
        assert!(
            t.contains(&format!("C: AUTH {mechanism} <redacted>")),
            "{t:?}"
        );
        assert!(!t.iter().any(|l| l.contains("vF9dft")), "{t:?}");
    }
}

#[test]
fn oauth_error_challenge_is_answered_and_its_status_kept() {
    for (mechanism, line, answer) in [
        (
            Mechanism::OAuthBearer,
            format!("AUTH OAUTHBEARER {OAUTHBEARER_IR}"),
            "AQ==",
        ),
        (Mechanism::XOAuth2, format!("AUTH XOAUTH2 {XOAUTH2_IR}"), ""),
    ] {
        let script = starttls_prefix("S: 250 AUTH XOAUTH2 OAUTHBEARER")
            + &format!(
                "
                 C: {line}
                 S: 334 {OAUTH_ERROR}
                 C: {answer}
                 S: 535 5.7.8 Authentication credentials invalid
                 C: QUIT"
            );
        let d = run(
            with_token(config(TlsMode::Starttls), AuthChoice::Named(mechanism)),
            vec![],
            &script,
        );
        let err = error(&d);
        let SmtpError::AuthFailed {
            mechanism: m,
            reply,
            oauth: Some(oauth),
        } = err
        else {
            panic!("{err:?}");
        };
        assert_eq!((*m, reply.code), (mechanism, 535));
        assert_eq!(oauth.status.as_deref(), Some("invalid_token"));
        assert_eq!(oauth.scope.as_deref(), Some("example_scope"));
        assert_eq!(err.class(), ErrorClass::Auth);
        assert!(
            err.to_string()
                .contains("the server says: invalid_token, scope example_scope"),
            "{err}"
        );
        assert_eq!(d.session.auth_mechanism(), None);
    }
}

#[test]
fn oauth_success_after_the_error_challenge_is_a_protocol_error() {
    let script = starttls_prefix("S: 250 AUTH XOAUTH2")
        + &format!(
            "
             C: AUTH XOAUTH2 {XOAUTH2_IR}
             S: 334 {OAUTH_ERROR}
             C:
             S: 235 2.7.0 ok"
        );
    let d = run(
        with_token(config(TlsMode::Starttls), AuthChoice::Auto),
        vec![],
        &script,
    );
    assert!(matches!(
        error(&d),
        SmtpError::UnexpectedReply {
            stage: Stage::Auth,
            ..
        }
    ));
    assert_eq!(error(&d).class(), ErrorClass::Protocol);
}

#[test]
fn auto_with_a_token_never_picks_a_password_mechanism() {
    let script = starttls_prefix("S: 250 AUTH PLAIN LOGIN CRAM-MD5") + "\nC: QUIT";
    let d = run(
        with_token(config(TlsMode::Starttls), AuthChoice::Auto),
        vec![],
        &script,
    );
    assert!(matches!(
        error(&d),
        SmtpError::NoUsableMechanism {
            kind: SecretKind::BearerToken,
            ..
        }
    ));
    assert_eq!(error(&d).class(), ErrorClass::Config);
    // And a password is never sent as a token.
    let script = starttls_prefix("S: 250 AUTH XOAUTH2 OAUTHBEARER") + "\nC: QUIT";
    let d = run(
        with_creds(config(TlsMode::Starttls), AuthChoice::Auto),
        vec![],
        &script,
    );
    assert!(matches!(error(&d), SmtpError::NoUsableMechanism { .. }));
}

#[test]
fn oauth_without_initial_response_when_the_line_is_too_long() {
    let long = "t".repeat(400);
    let mut cfg = with_token(config(TlsMode::Implicit), AuthChoice::Auto);
    if let Some(c) = cfg.credentials.as_mut() {
        c.password = Secret::from(long.clone());
    }
    let response = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("n,a=user@example.com,\x01host=server.example.com\x01port=587\x01auth=Bearer {long}\x01\x01"),
    );
    let script = format!(
        "S: 220 mx
         C: EHLO client.example.org
         S: 250-mx
         S: 250 AUTH OAUTHBEARER
         C: AUTH OAUTHBEARER
         S: 334
         C: {response}
         S: 334 {OAUTH_ERROR}
         C: AQ==
         S: 535 5.7.8 no
         C: QUIT"
    );
    let d = run(cfg, vec![], &script);
    assert!(
        matches!(error(&d), SmtpError::AuthFailed { oauth: Some(_), .. }),
        "{:?}",
        d.errors
    );
}
