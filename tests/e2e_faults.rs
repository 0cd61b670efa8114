//! The quizmail binary end to end against the scripted SMTP server on 127.0.0.1: every fault the
//! server can throw at each step of the dialogue, certificate policies, AUTH rules, injection
//! from the server and from user input, pipelining, grade mode over one connection, the outbox,
//! the dry run and config precedence.
//!
//! Each test checks the exit status (cli.md "Exit status"), the one-line error on stderr, the
//! `--json` report where it matters, and the bytes the server recorded: what the client sent and,
//! as much, what it must not have sent.

mod support;

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;
use support::certs::Pki;
use support::server::{Connection, Options, Script, Server, Transcript};
use support::smtp::{queue_id, Fault, GoodServer, Stage};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_quizmail");
/// The client's `--timeout`.
const TIMEOUT_SECS: u64 = 2;
/// How long any one run of the binary may take before the test kills it and fails.
const RUN_LIMIT: Duration = Duration::from_secs(40);
const USER: &str = "ada";
/// Unusual enough that finding it anywhere is a leak, not a coincidence.
const PASSWORD: &str = "pw-Zq7!e2e-s3cr3t";
const FROM: &str = "quiz@example.com";
const TO: &str = "ada@example.com";
const EHLO: &str = "client.test";

// ---------------------------------------------------------------------------------------------
// Running the binary

/// An isolated home for one run: HOME, XDG_CONFIG_HOME and the working directory are fresh, so
/// no user configuration leaks in and the outbox lands somewhere the test can look.
struct Home {
    dir: TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().expect("temporary home");
        std::fs::create_dir_all(dir.path().join("config")).expect("config dir");
        std::fs::create_dir_all(dir.path().join("work")).expect("work dir");
        Home { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The working directory of the run.
    fn work(&self) -> PathBuf {
        self.path().join("work")
    }

    /// `$XDG_CONFIG_HOME/quizmail/config.toml`.
    fn write_config(&self, text: &str) -> PathBuf {
        let dir = self.path().join("config").join("quizmail");
        std::fs::create_dir_all(&dir).expect("quizmail config dir");
        let path = dir.join("config.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// A file in the working directory.
    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.work().join(name);
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    fn client(&self) -> Client {
        Client {
            args: Vec::new(),
            env: vec![
                ("HOME".into(), self.path().into()),
                ("XDG_CONFIG_HOME".into(), self.path().join("config").into()),
                ("SMTP_PASSWORD".into(), PASSWORD.into()),
                ("USER".into(), "tester".into()),
                (
                    "PATH".into(),
                    std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
                ),
            ],
            cwd: self.work(),
            retries: None,
        }
    }
}

/// One invocation of the binary, built up flag by flag.
struct Client {
    args: Vec<OsString>,
    env: Vec<(String, OsString)>,
    cwd: PathBuf,
    /// `--retries`, added last so a test can change the default of `server()`.
    retries: Option<u32>,
}

impl Client {
    fn arg(mut self, arg: impl Into<OsString>) -> Client {
        self.args.push(arg.into());
        self
    }

    fn args<I, S>(mut self, args: I) -> Client
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    fn env(mut self, name: &str, value: impl Into<OsString>) -> Client {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// `--server 127.0.0.1:PORT`, a short timeout, no retries, a fixed EHLO name.
    fn server(mut self, port: u16) -> Client {
        self.retries = Some(0);
        self.args([
            "--server".to_owned(),
            format!("127.0.0.1:{port}"),
            "--timeout".to_owned(),
            TIMEOUT_SECS.to_string(),
            "--ehlo".to_owned(),
            EHLO.to_owned(),
        ])
    }

    /// `--retries N` in place of `server()`'s 0.
    fn retries(mut self, n: u32) -> Client {
        self.retries = Some(n);
        self
    }

    /// A plain send: From, one To, a subject and a short body.
    fn mail(self) -> Client {
        self.args([
            "--from",
            FROM,
            "--to",
            TO,
            "--subject",
            "e2e",
            "--body",
            "hello",
        ])
    }

    /// Runs the binary with nothing on standard input, killing it past `RUN_LIMIT`.
    fn run(mut self) -> Outcome {
        if let Some(n) = self.retries {
            self.args.push("--retries".into());
            self.args.push(n.to_string().into());
        }
        let mut command = Command::new(BIN);
        command
            .args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(n, v)| (n, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command.spawn().expect("start quizmail");
        let mut stdout = child.stdout.take().expect("stdout pipe");
        let mut stderr = child.stderr.take().expect("stderr pipe");
        let out = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let err = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for quizmail") {
                break status;
            }
            if started.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("quizmail {:?} ran longer than {RUN_LIMIT:?}", self.args);
            }
            thread::sleep(Duration::from_millis(10));
        };
        let elapsed = started.elapsed();
        Outcome {
            code: status.code().expect("quizmail exited by a signal"),
            stdout: String::from_utf8_lossy(&out.join().expect("stdout reader")).into_owned(),
            stderr: String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned(),
            elapsed,
            args: self.args,
        }
    }
}

/// What one run did.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    args: Vec<OsString>,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "quizmail {:?}\nexit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit status.
    fn code(&self, want: i32) -> &Outcome {
        assert_eq!(self.code, want, "{}", self.describe());
        self
    }

    /// The one `quizmail: error: ...` line; fails unless there is exactly one.
    fn error_line(&self) -> &str {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("quizmail: error: "))
            .collect();
        assert_eq!(lines.len(), 1, "one error line\n{}", self.describe());
        lines[0]
    }

    /// Asserts the error line contains every one of `parts`.
    fn error_says(&self, parts: &[&str]) -> &Outcome {
        let line = self.error_line();
        for part in parts {
            assert!(
                line.contains(part),
                "error line lacks {part:?}\n{}",
                self.describe()
            );
        }
        self
    }

    /// The `--json` report.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e})\n{}", self.describe()))
    }

    /// Asserts `error.kind` and `error.exit_code` of the JSON report, and `sent: false`.
    fn json_error(&self, kind: &str) -> Value {
        let json = self.json();
        assert_eq!(json["sent"], false, "{}", self.describe());
        assert_eq!(json["error"]["kind"], kind, "{}", self.describe());
        assert_eq!(json["error"]["exit_code"], self.code, "{}", self.describe());
        json
    }

    /// Fails if the password shows up on stdout or stderr, in any of its encodings.
    fn no_secret_in_output(&self) -> &Outcome {
        for secret in secret_forms() {
            assert!(
                !self.stdout.contains(&secret) && !self.stderr.contains(&secret),
                "password form {secret:?} printed\n{}",
                self.describe()
            );
        }
        self
    }
}

/// The password as it could leak: plain, PLAIN's base64 (with and without authzid), LOGIN's.
fn secret_forms() -> Vec<String> {
    vec![
        PASSWORD.to_owned(),
        BASE64.encode(format!("\0{USER}\0{PASSWORD}")),
        BASE64.encode(format!("{USER}\0{USER}\0{PASSWORD}")),
        BASE64.encode(PASSWORD),
    ]
}

/// Fails if the password is in these bytes in any of its encodings.
fn assert_no_secret(bytes: &[u8], what: &str) {
    for secret in secret_forms() {
        assert!(
            !contains(bytes, secret.as_bytes()),
            "password form {secret:?} found in {what}"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The bytes the client sent before TLS began (all of them on a cleartext connection).
fn cleartext(conn: &Connection) -> &[u8] {
    &conn.received[..conn.tls_started_at.unwrap_or(conn.received.len())]
}

/// The command verbs the server read, upper case, in order (`MAIL`, `RCPT`, ...).
fn verbs(conn: &Connection) -> Vec<String> {
    conn.commands
        .iter()
        .map(|c| {
            c.split([' ', ':'])
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase()
        })
        .collect()
}

fn count(conn: &Connection, verb: &str) -> usize {
    verbs(conn).iter().filter(|v| *v == verb).count()
}

/// A scripted server's bounds, shorter than the defaults so a client that stops early does not
/// keep a test waiting.
fn quick() -> Options {
    Options {
        accept_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(5),
        finish_timeout: Duration::from_secs(8),
    }
}

/// The greeting and a cleartext EHLO offering `extensions`.
fn greet(extensions: &[&str]) -> Script {
    let mut lines = vec!["mx.quizmail.test greets you".to_owned()];
    lines.extend(extensions.iter().map(|e| (*e).to_owned()));
    let last = lines.len() - 1;
    let reply: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
        .collect();
    Script::new()
        .reply("220 mx.quizmail.test ESMTP")
        .expect(&format!("EHLO {EHLO}"))
        .reply(&reply.join("\r\n"))
}

fn finish(server: Server) -> Transcript {
    let transcript = server.finish();
    assert!(transcript.finished, "the scripted server did not stop");
    transcript
}

// ---------------------------------------------------------------------------------------------
// The happy path, as a baseline for everything below

#[test]
fn starttls_auth_plain_delivers_and_reports() {
    let pki = Pki::new();
    let home = Home::new();
    let server = GoodServer::new()
        .starttls(pki.good.server_config())
        .auth(&["PLAIN", "LOGIN", "CRAM-MD5"], USER, PASSWORD)
        .message(Some(FROM), &[TO])
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--json", "--ca-file"])
        .arg(&pki.ca_file)
        .run();
    out.code(0).no_secret_in_output();
    let json = out.json();
    assert_eq!(json["sent"], true);
    assert_eq!(json["transport"], "smtp");
    assert_eq!(json["server"], format!("127.0.0.1:{}", server.port()));
    assert_eq!(json["tls"]["mode"], "starttls");
    assert_eq!(json["tls"]["version"], "TLSv1.3");
    assert_eq!(json["auth"], "PLAIN");
    assert_eq!(json["envelope_from"], FROM);
    assert_eq!(json["accepted"], serde_json::json!([TO]));
    assert_eq!(json["rejected"], serde_json::json!([]));
    assert_eq!(json["reply"]["code"], 250);
    assert_eq!(json["queue_id"], queue_id(0));
    assert_eq!(json["error"], Value::Null);

    let transcript = finish(server);
    let conn = transcript.only();
    assert_eq!(
        cleartext(conn),
        format!("EHLO {EHLO}\r\nSTARTTLS\r\n").as_bytes()
    );
    assert_no_secret(cleartext(conn), "the cleartext part of the connection");
    let auth = conn.auth.as_ref().expect("AUTH ran");
    assert_eq!((auth.mechanism.as_str(), auth.accepted), ("PLAIN", true));
    // PLAIN with an initial response: one line, straight on to MAIL (RFC 4954 §4).
    let after_tls = verbs(conn);
    assert_eq!(
        after_tls,
        ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"],
        "{:#?}",
        conn.log
    );
    let auth_line = conn
        .commands
        .iter()
        .find(|c| c.starts_with("AUTH "))
        .expect("AUTH line");
    assert!(auth_line.starts_with("AUTH PLAIN "), "{auth_line}");
    assert_eq!(conn.messages.len(), 1);
    let content = String::from_utf8_lossy(&conn.messages[0].content);
    assert!(content.contains("Subject: e2e\r\n"), "{content}");
    assert!(content.contains("\r\n\r\nhello"), "{content}");
}

// ---------------------------------------------------------------------------------------------
// STARTTLS: injection, and a server that does not offer it

/// A cleartext server offering STARTTLS whose answer to it is `reply_writes`, each element one
/// `write`; then it listens (recording) until the client goes away.
fn starttls_injection(reply_writes: &[&[u8]]) -> (Outcome, Transcript) {
    let home = Home::new();
    let mut script = greet(&["PIPELINING", "STARTTLS", "AUTH PLAIN"]).expect("STARTTLS");
    for write in reply_writes {
        script = script.send(write);
    }
    // Nothing, or the start of a handshake: the callers check the bytes themselves.
    let server = Server::start_with(vec![script.then("C: <anything>")], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--json", "--insecure"])
        .run();
    (out, finish(server))
}

/// What the client may have sent after `STARTTLS`: nothing, or the start of a TLS handshake,
/// and never a cleartext command.
fn assert_nothing_in_clear_after_starttls(conn: &Connection) {
    let starttls = format!("EHLO {EHLO}\r\nSTARTTLS\r\n");
    assert!(
        conn.received.starts_with(starttls.as_bytes()),
        "{:?}",
        conn.text()
    );
    let after = &conn.received[starttls.len()..];
    if let Some(first) = after.first() {
        assert_eq!(*first, 0x16, "only a TLS handshake record may follow");
    }
    for word in ["EHLO", "AUTH", "MAIL", "RCPT", "QUIT", "RSET"] {
        assert!(
            !contains(after, word.as_bytes()),
            "{word} sent after STARTTLS"
        );
    }
    assert_no_secret(&conn.received, "the connection");
}

#[test]
fn starttls_reply_with_injected_reply_in_the_same_write_is_exit_76() {
    let (out, transcript) = starttls_injection(&[b"220 go ahead\r\n250 fake\r\n"]);
    out.code(76)
        .error_says(&["STARTTLS", "injection"])
        .json_error("protocol");
    let conn = transcript.only();
    // Nothing at all after STARTTLS: no handshake, no EHLO in the clear, no QUIT.
    assert_eq!(
        conn.received,
        format!("EHLO {EHLO}\r\nSTARTTLS\r\n").as_bytes()
    );
}

#[test]
fn starttls_reply_followed_by_a_separate_write_is_exit_76() {
    // The second write may arrive before the client looks (seen as injection) or while the
    // handshake runs (a garbage TLS record): a protocol error either way, never a reply.
    let (out, transcript) = starttls_injection(&[b"220 go ahead\r\n", b"250 fake\r\n"]);
    out.code(76).json_error("protocol");
    let line = out.error_line();
    assert!(
        line.contains("STARTTLS") || line.contains("TLS handshake"),
        "{}",
        out.describe()
    );
    assert_nothing_in_clear_after_starttls(transcript.only());
}

#[test]
fn bytes_arriving_during_the_handshake_are_a_protocol_error() {
    // The 220 comes alone; the client starts its handshake; then cleartext arrives where the
    // ServerHello should be. It must fail the handshake, never be read as a reply.
    let home = Home::new();
    let script = greet(&["STARTTLS", "AUTH PLAIN"]).expect("STARTTLS").then(
        "S: 220 go ahead
             * wait 300ms
             S: 250 fake
             C: <anything>   # a ClientHello, checked below",
    );
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--json", "--insecure"])
        .run();
    out.code(76).error_says(&["TLS"]).json_error("protocol");
    let transcript = finish(server);
    let conn = transcript.only();
    assert_nothing_in_clear_after_starttls(conn);
    let hello = &conn.received[format!("EHLO {EHLO}\r\nSTARTTLS\r\n").len()..];
    assert_eq!(
        hello.first(),
        Some(&0x16),
        "the client had started its handshake"
    );
}

#[test]
fn starttls_not_offered_is_exit_78_and_nothing_else_is_sent() {
    let pki = Pki::new();
    let home = Home::new();
    let server = GoodServer::new()
        .starttls(pki.good.server_config())
        .omit_starttls()
        .auth(&["PLAIN", "LOGIN"], USER, PASSWORD)
        .auth_before_tls()
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--json", "--ca-file"])
        .arg(&pki.ca_file)
        .run();
    out.code(78)
        .error_says(&["STARTTLS", "not offer"])
        .json_error("tls");
    let transcript = finish(server);
    let conn = transcript.only();
    let sent = verbs(conn);
    for verb in ["STARTTLS", "AUTH", "MAIL", "RCPT", "DATA"] {
        assert!(!sent.contains(&verb.to_owned()), "{verb} sent: {sent:?}");
    }
    assert_no_secret(&conn.received, "the cleartext connection");
}

// ---------------------------------------------------------------------------------------------
// Certificates

/// Sends over STARTTLS to a server presenting `identity`, with these TLS flags; `refused`:
/// the client is meant to abort the handshake, which leaves the server's script there.
fn cert_run(
    identity: &support::certs::Identity,
    tls_args: &[OsString],
    refused: bool,
) -> (Outcome, Transcript) {
    let home = Home::new();
    let server = GoodServer::new()
        .starttls(identity.server_config())
        .auth(&["PLAIN"], USER, PASSWORD)
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--json"])
        .args(tls_args.iter().cloned())
        .run();
    let transcript = if refused {
        server.finish_expecting_mismatch()
    } else {
        finish(server)
    };
    (out, transcript)
}

fn assert_certificate_refused(out: &Outcome, transcript: &Transcript) {
    out.code(78)
        .error_says(&["certificate verification failed"])
        .json_error("tls");
    let conn = transcript.only();
    let error = conn.error.as_deref().unwrap_or_default();
    assert!(error.contains("TLS handshake failed"), "{error}");
    assert_eq!(conn.tls_started_at, None, "the handshake must not complete");
    assert_eq!(
        conn.commands,
        [format!("EHLO {EHLO}"), "STARTTLS".to_owned()]
    );
    assert_no_secret(&conn.received, "the connection");
}

#[test]
fn wrong_host_certificate_is_exit_78() {
    let pki = Pki::new();
    let (out, transcript) = cert_run(
        &pki.wrong_host,
        &["--ca-file".into(), pki.ca_file.clone().into()],
        true,
    );
    assert_certificate_refused(&out, &transcript);
}

#[test]
fn self_signed_certificate_is_exit_78() {
    let pki = Pki::new();
    let (out, transcript) = cert_run(
        &pki.self_signed,
        &["--ca-file".into(), pki.ca_file.clone().into()],
        true,
    );
    assert_certificate_refused(&out, &transcript);
}

#[test]
fn private_ca_without_ca_file_is_exit_78() {
    let pki = Pki::new();
    let (out, transcript) = cert_run(&pki.good, &[], true);
    assert_certificate_refused(&out, &transcript);
    out.error_says(&["unknown issuer"]);
}

#[test]
fn expired_certificate_is_exit_78() {
    let pki = Pki::new();
    let (out, transcript) = cert_run(
        &pki.expired,
        &["--ca-file".into(), pki.ca_file.clone().into()],
        true,
    );
    assert_certificate_refused(&out, &transcript);
    out.error_says(&["expired"]);
}

#[test]
fn right_fingerprint_is_accepted_without_any_ca() {
    let pki = Pki::new();
    let (out, transcript) = cert_run(
        &pki.self_signed,
        &[
            "--tls-fingerprint".into(),
            pki.self_signed.sha256_colons().into(),
        ],
        false,
    );
    out.code(0);
    assert_eq!(out.json()["sent"], true);
    assert_eq!(transcript.only().messages.len(), 1);
}

#[test]
fn wrong_fingerprint_is_exit_78() {
    let pki = Pki::new();
    // The right CA is trusted too: the pin must win over the chain.
    let (out, transcript) = cert_run(
        &pki.good,
        &[
            "--tls-fingerprint".into(),
            pki.self_signed.sha256.clone().into(),
            "--ca-file".into(),
            pki.ca_file.clone().into(),
        ],
        true,
    );
    assert_certificate_refused(&out, &transcript);
}

#[test]
fn insecure_accepts_anything_and_warns() {
    let pki = Pki::new();
    let (out, transcript) = cert_run(&pki.wrong_host, &["--insecure".into()], false);
    out.code(0);
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("--insecure"),
        "{}",
        out.describe()
    );
    assert_eq!(transcript.only().messages.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// A 4xx, a 5xx, a 421 and a disconnect at every step

/// What a fault at one stage must produce.
struct Expected {
    code: i32,
    kind: &'static str,
    /// Every one of these is in the error line.
    says: Vec<&'static str>,
}

impl Expected {
    fn new(code: i32, kind: &'static str, says: &[&'static str]) -> Expected {
        Expected {
            code,
            kind,
            says: says.to_vec(),
        }
    }
}

const TEMPORARY_4XX: &str = "451 4.3.0 Try again later";
const PERMANENT_5XX: &str = "554 5.3.0 Refused for good";
const CLOSING_421: &str = "421 4.3.2 Service shutting down";

/// Runs a STARTTLS + AUTH PLAIN send against a server with `fault` at `stage`.
fn fault_run(stage: Stage, fault: Fault) -> (Outcome, Transcript) {
    let pki = Pki::new();
    let home = Home::new();
    let server = GoodServer::new()
        .starttls(pki.good.server_config())
        .auth(&["PLAIN", "LOGIN"], USER, PASSWORD)
        .message(Some(FROM), &[TO])
        .fault(stage, fault)
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--json", "--ca-file"])
        .arg(&pki.ca_file)
        .run();
    (out, finish(server))
}

/// Checks one fault: exit status, error line, JSON, that no message went out before it, and
/// what the client did next. The server's script (GoodServer) already insists on it: after a
/// 4xx/5xx that leaves the dialogue in step, `C: QUIT`, `S: 221`, `EOF`; after a 421 or a drop,
/// `EOF` and nothing more from the client (what it had pipelined before the fault aside).
/// `finish()` fails the test otherwise; the record is checked here as well, to say so plainly.
fn check_fault(stage: Stage, fault: Fault, want: &Expected) {
    let (out, transcript) = fault_run(stage, fault.clone());
    let context = format!("{stage:?} {fault:?}");
    assert_eq!(out.code, want.code, "{context}\n{}", out.describe());
    let line = out.error_line();
    for part in &want.says {
        assert!(
            line.contains(part),
            "{context}: error line lacks {part:?}\n{}",
            out.describe()
        );
    }
    let json = out.json_error(want.kind);
    assert!(json["queue_id"].is_null(), "{context}");
    out.no_secret_in_output();
    let conn = transcript.only();
    assert_no_secret(cleartext(conn), "the cleartext part");
    if stage != Stage::DataEnd(0) {
        assert!(conn.messages.is_empty(), "{context}: a message went out");
    }
    let quits = count(conn, "QUIT");
    // With PIPELINING, QUIT rides with the end of the data (RFC 2920 §3.1), so it was sent
    // before the server's 421 or hang-up; the script checks that nothing follows it.
    let pipelined_quit = usize::from(matches!(stage, Stage::DataEnd(_)));
    if closes(&fault) {
        assert_eq!(
            quits, pipelined_quit,
            "{context}: QUIT after the server hung up"
        );
    } else {
        assert_eq!(quits, 1, "{context}: {:?}", conn.commands);
        assert_eq!(
            conn.commands.last().map(String::as_str),
            Some("QUIT"),
            "{context}: something after QUIT"
        );
    }
}

/// A 421 or a disconnect: the server is gone and the client must say nothing more.
fn closes(fault: &Fault) -> bool {
    match fault {
        Fault::Disconnect => true,
        Fault::Reply(reply) => reply.starts_with("421"),
    }
}

/// A 4xx, `five` for a 5xx, a 421 and a disconnect at `stage`, which the error calls `name`.
fn check_all_faults(stage: Stage, name: &'static str, five: Expected) {
    check_faults(stage, name, five, &[]);
}

/// `check_all_faults`, leaving out the faults in `skip` (each has an ignored test of its own).
fn check_faults(stage: Stage, name: &'static str, five: Expected, skip: &[Fault]) {
    let cases = [
        (
            Fault::Reply(TEMPORARY_4XX.into()),
            Expected::new(75, "temporary", &[name, "451"]),
        ),
        (Fault::Reply(PERMANENT_5XX.into()), five),
        (
            Fault::Reply(CLOSING_421.into()),
            Expected::new(75, "temporary", &[name, "421"]),
        ),
        (
            Fault::Disconnect,
            Expected::new(75, "temporary", &["connection closed", name]),
        ),
    ];
    for (fault, want) in cases {
        if !skip.contains(&fault) {
            check_fault(stage, fault, &want);
        }
    }
}

#[test]
fn faults_at_the_greeting() {
    check_all_faults(
        Stage::Greeting,
        "greeting",
        Expected::new(69, "permanent", &["greeting", "554"]),
    );
}

#[test]
fn faults_at_ehlo() {
    check_all_faults(
        Stage::Ehlo,
        "EHLO",
        Expected::new(69, "permanent", &["EHLO", "554"]),
    );
}

#[test]
fn faults_at_starttls() {
    check_all_faults(
        Stage::StartTls,
        "STARTTLS",
        Expected::new(69, "permanent", &["STARTTLS", "554"]),
    );
}

#[test]
fn faults_at_ehlo_after_tls() {
    check_all_faults(
        Stage::EhloAfterTls,
        "EHLO",
        Expected::new(69, "permanent", &["EHLO", "554"]),
    );
}

#[test]
fn faults_at_auth() {
    // A 5xx to AUTH is an authentication failure (77); other replies follow the table.
    check_all_faults(
        Stage::Auth,
        "AUTH",
        Expected::new(77, "auth", &["PLAIN", "554"]),
    );
}

#[test]
fn faults_at_mail() {
    check_all_faults(
        Stage::Mail(0),
        "MAIL FROM",
        Expected::new(69, "permanent", &["MAIL FROM", "554"]),
    );
}

#[test]
fn faults_at_rcpt_of_the_only_recipient() {
    check_all_faults(
        Stage::Rcpt(0, 0),
        "RCPT TO",
        Expected::new(69, "permanent", &["RCPT TO", "554"]),
    );
}

#[test]
fn faults_at_data() {
    check_all_faults(
        Stage::Data(0),
        "DATA",
        Expected::new(69, "permanent", &["DATA", "554"]),
    );
}

#[test]
fn faults_at_end_of_data() {
    check_all_faults(
        Stage::DataEnd(0),
        "end of data",
        Expected::new(69, "permanent", &["end of data", "554"]),
    );
}

#[test]
fn a_421_or_a_drop_at_the_end_of_data_is_followed_by_nothing() {
    check_fault(
        Stage::DataEnd(0),
        Fault::Reply(CLOSING_421.into()),
        &Expected::new(75, "temporary", &["end of data", "421"]),
    );
    check_fault(
        Stage::DataEnd(0),
        Fault::Disconnect,
        &Expected::new(75, "temporary", &["connection closed", "end of data"]),
    );
}

// ---------------------------------------------------------------------------------------------
// Recipients: some refused, all refused

const BOB: &str = "bob@example.com";

/// A cleartext send to TO and BOB with these replies to their RCPTs.
fn two_recipients(
    first: Option<&str>,
    second: Option<&str>,
    pipelining: bool,
) -> (Outcome, Transcript) {
    let home = Home::new();
    let mut server = GoodServer::new().message(Some(FROM), &[TO, BOB]);
    if !pipelining {
        server = server.extensions(&["8BITMIME", "ENHANCEDSTATUSCODES"]);
    }
    for (r, reply) in [first, second].into_iter().enumerate() {
        if let Some(reply) = reply {
            server = server.fault(Stage::Rcpt(0, r), Fault::Reply(reply.into()));
        }
    }
    let server = server.start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--to", BOB, "--tls", "none", "--json"])
        .run();
    (out, finish(server))
}

fn rejected_addresses(json: &Value) -> Vec<(String, u64)> {
    json["rejected"]
        .as_array()
        .expect("rejected is a list")
        .iter()
        .map(|r| {
            (
                r["address"].as_str().expect("address").to_owned(),
                r["code"].as_u64().expect("code"),
            )
        })
        .collect()
}

#[test]
fn one_of_two_recipients_refused_is_exit_69_and_the_other_gets_it() {
    let (out, transcript) = two_recipients(None, Some("550 5.1.1 User unknown"), true);
    out.code(69).error_says(&["1 of 2 recipients refused"]);
    assert!(
        out.stderr
            .contains(&format!("Rejected {BOB}: 550 5.1.1 User unknown")),
        "{}",
        out.describe()
    );
    let json = out.json();
    // The message went out (to TO), so `sent` stays true; the error says who did not get it.
    assert_eq!(json["sent"], true);
    assert_eq!(json["accepted"], serde_json::json!([TO]));
    assert_eq!(rejected_addresses(&json), [(BOB.to_owned(), 550)]);
    assert_eq!(json["rejected"][0]["enhanced"], "5.1.1");
    assert_eq!(json["rejected"][0]["text"], "User unknown");
    assert_eq!(json["error"]["kind"], "permanent");
    assert_eq!(json["error"]["exit_code"], 69);
    assert_eq!(json["queue_id"], queue_id(0));
    let conn = transcript.only();
    assert_eq!(conn.messages.len(), 1);
    assert_eq!(count(conn, "DATA"), 1);
}

#[test]
fn one_of_two_refused_for_now_is_exit_75() {
    let (out, transcript) = two_recipients(Some("450 4.2.1 Mailbox busy"), None, true);
    out.code(75).error_says(&["1 of 2 recipients refused"]);
    let json = out.json();
    assert_eq!(json["accepted"], serde_json::json!([BOB]));
    assert_eq!(rejected_addresses(&json), [(TO.to_owned(), 450)]);
    assert_eq!(json["error"]["kind"], "temporary");
    assert_eq!(transcript.only().messages.len(), 1);
}

#[test]
fn all_recipients_refused_is_exit_69_listing_both_and_no_message() {
    for pipelining in [true, false] {
        let (out, transcript) = two_recipients(
            Some("550 5.1.1 User unknown"),
            Some("553 5.1.3 Bad address"),
            pipelining,
        );
        out.code(69).error_says(&["no recipient", "550", "553"]);
        let json = out.json_error("permanent");
        assert_eq!(
            rejected_addresses(&json),
            [(TO.to_owned(), 550), (BOB.to_owned(), 553)],
            "pipelining {pipelining}"
        );
        assert_eq!(json["accepted"], serde_json::json!([]));
        let conn = transcript.only();
        assert!(conn.messages.is_empty());
        if !pipelining {
            // Without PIPELINING the client knows before DATA: it must not send it.
            assert_eq!(count(conn, "DATA"), 0, "{:?}", conn.commands);
        }
    }
}

#[test]
fn all_recipients_refused_for_now_is_exit_75() {
    let (out, transcript) = two_recipients(
        Some("451 4.3.0 Try later"),
        Some("550 5.1.1 User unknown"),
        false,
    );
    out.code(75).error_says(&["no recipient", "451", "550"]);
    let json = out.json_error("temporary");
    assert_eq!(rejected_addresses(&json).len(), 2);
    let conn = transcript.only();
    assert_eq!(count(conn, "DATA"), 0, "{:?}", conn.commands);
    assert!(conn.messages.is_empty());
}

#[test]
fn pipelined_data_answered_354_after_all_recipients_refused_sends_no_content() {
    // RFC 2920 §3.1 lets a server answer the pipelined DATA with 354 even though no RCPT
    // succeeded; the client must not send the message (nor the lone "." that would end it).
    let home = Home::new();
    let script = greet(&["PIPELINING", "8BITMIME"])
        .expect(&format!("MAIL FROM:<{FROM}>"))
        .expect(&format!("RCPT TO:<{TO}>"))
        .expect("DATA")
        .send("250 2.1.0 Ok\r\n550 5.1.1 User unknown\r\n354 Go ahead anyway\r\n")
        .stall(Duration::from_secs(8));
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .run();
    out.code(69).error_says(&["no recipient", "550"]);
    out.json_error("permanent");
    let transcript = finish(server);
    let conn = transcript.only();
    let sent = conn.text();
    let data_at = sent.find("DATA\r\n").expect("DATA was pipelined") + "DATA\r\n".len();
    assert_eq!(&sent[data_at..], "", "nothing may follow DATA");
}

// ---------------------------------------------------------------------------------------------
// Disconnects and timeouts after the end of the data; retries

/// A pipelining server that takes the message and then, instead of its reply, does `after`.
fn after_the_final_dot(after: &str) -> Script {
    Script::parse(&format!(
        "S: 220 mx.quizmail.test ESMTP
         C: EHLO {EHLO}
         S: 250-mx.quizmail.test greets you
         S: 250 PIPELINING
         C: MAIL FROM:<{FROM}>*
         C: RCPT TO:<{TO}>
         C: DATA
         S: 250 2.1.0 Ok
         S: 250 2.1.5 Ok
         S: 354 Go ahead
         C: <body dot>
         C: .
         {after}"
    ))
}

/// The commands the client sent after the end of its message.
fn after_data(conn: &Connection) -> Vec<String> {
    let at = conn.commands.iter().position(|c| c == "DATA");
    conn.commands[at.map_or(0, |i| i + 1)..].to_vec()
}

#[test]
fn disconnect_after_the_final_dot_is_not_sent_again() {
    let home = Home::new();
    // The strict "nothing after the drop" is a_421_or_a_drop_at_the_end_of_data_is_followed_by_nothing.
    let dropped = after_the_final_dot("EOF\nC: <anything>");
    let spare = GoodServer::new().script();
    let server = Server::start_with(vec![dropped, spare], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .retries(2)
        .run();
    out.code(75).error_says(&[
        "connection closed",
        "end of data",
        "may have been delivered",
    ]);
    out.json_error("temporary");
    assert!(!out.stderr.contains("trying again"), "{}", out.describe());
    let transcript = finish(server);
    assert_eq!(
        transcript.connections.len(),
        1,
        "the message was sent again"
    );
    let conn = &transcript.connections[0];
    assert_eq!(count(conn, "DATA"), 1);
    assert_eq!(conn.messages.len(), 1);
}

#[test]
fn timeout_after_the_final_dot_is_not_sent_again() {
    let home = Home::new();
    // No reply: the client's --timeout runs out long before the wait.
    let silent = after_the_final_dot("* wait 8s\nC: <anything>");
    let spare = GoodServer::new().script();
    let server = Server::start_with(vec![silent, spare], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .retries(1)
        .run();
    out.code(75)
        .error_says(&["timed out", "end of data", "may have been delivered"]);
    let transcript = finish(server);
    assert_eq!(
        transcript.connections.len(),
        1,
        "the message was sent again"
    );
    let conn = &transcript.connections[0];
    assert_eq!(conn.messages.len(), 1);
    // Out of step after a timeout: at most a QUIT, never the message or a new transaction.
    let after = after_data(conn);
    assert!(after.is_empty() || after == ["QUIT"], "{after:?}");
}

#[test]
fn retry_after_a_421_greeting_connects_again_and_delivers() {
    let home = Home::new();
    let busy = Script::new().reply("421 4.3.2 Too busy, try later").close();
    let good = GoodServer::new().message(Some(FROM), &[TO]).script();
    let server = Server::start_with(vec![busy, good], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .retries(1)
        .run();
    out.code(0);
    assert!(
        out.stderr.contains("421") && out.stderr.contains("trying again"),
        "{}",
        out.describe()
    );
    assert!(
        out.elapsed >= Duration::from_millis(900),
        "no backoff: {:?}",
        out.elapsed
    );
    let json = out.json();
    assert_eq!(json["sent"], true);
    assert_eq!(json["error"], Value::Null);
    let transcript = finish(server);
    assert_eq!(transcript.connections.len(), 2);
    // After the 421 the client said nothing at all (the script ends `EOF`).
    assert!(
        transcript.connections[0].commands.is_empty(),
        "{:?}",
        transcript.connections[0].commands
    );
    assert_eq!(transcript.connections[1].messages.len(), 1);
}

#[test]
fn retries_run_out_on_a_server_that_stays_busy() {
    let home = Home::new();
    let busy = || Script::new().reply("421 4.3.2 Too busy, try later").close();
    let server = Server::start_with(vec![busy(), busy(), busy()], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .retries(1)
        .run();
    out.code(75).error_says(&["greeting", "421"]);
    out.json_error("temporary");
    // --retries 1: two attempts in all, not three.
    assert_eq!(finish(server).connections.len(), 2);
}

#[test]
fn connection_refused_is_exit_75() {
    let home = Home::new();
    let addr = support::closed_port();
    let out = home
        .client()
        .server(addr.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .run();
    out.code(75).error_says(&["cannot connect"]);
    let json = out.json_error("temporary");
    assert_eq!(json["server"], format!("127.0.0.1:{}", addr.port()));

    // A probe that cannot connect names the server in its report too.
    let out = home
        .client()
        .server(addr.port())
        .args(["--probe", "--tls", "none", "--json"])
        .run();
    out.code(75).error_says(&["cannot connect"]);
    let json = out.json_error("temporary");
    assert_eq!(json["server"], format!("127.0.0.1:{}", addr.port()));
}

#[test]
fn silent_server_times_out_within_the_timeout() {
    let home = Home::new();
    let (_listener, addr) = support::silent_listener();
    let out = home
        .client()
        .server(addr.port())
        .mail()
        .args(["--json"])
        .run();
    out.code(75).error_says(&["timed out", "greeting"]);
    out.json_error("temporary");
    let timeout = Duration::from_secs(TIMEOUT_SECS);
    assert!(
        out.elapsed >= timeout - Duration::from_millis(200),
        "{:?}",
        out.elapsed
    );
    assert!(
        out.elapsed < timeout + Duration::from_secs(5),
        "{:?}",
        out.elapsed
    );
}

#[test]
fn endless_greeting_line_is_a_protocol_error_and_ends() {
    let home = Home::new();
    let server = Server::start_with(vec![Script::new().endless_line()], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--json"])
        .run();
    out.code(76).error_says(&["greeting"]);
    out.json_error("protocol");
    assert!(out.elapsed < Duration::from_secs(10), "{:?}", out.elapsed);
    let transcript = finish(server);
    assert!(
        transcript.only().received.is_empty(),
        "{:?}",
        transcript.only().text()
    );
}

// ---------------------------------------------------------------------------------------------
// PIPELINING and CHUNKING: what goes in one flight

#[test]
fn pipelining_sends_mail_rcpt_and_data_in_one_flight() {
    // The server reads all four commands before it says anything: a client that waited for
    // the reply to MAIL would time out here.
    let home = Home::new();
    let script = greet(&["PIPELINING", "8BITMIME", "SIZE 1000000"]).then(&format!(
        "C: MAIL FROM:<{FROM}>*
         C: RCPT TO:<{TO}>
         C: RCPT TO:<{BOB}>
         C: DATA
         S: 250 2.1.0 Ok
         S: 250 2.1.5 Ok
         S: 250 2.1.5 Ok
         S: 354 Go ahead
         C: <body dot>
         C: .
         S: 250 2.0.0 Ok: queued as PIPE1
         C: QUIT
         S: 221 2.0.0 Bye
         EOF"
    ));
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--to", BOB, "--tls", "none", "--json"])
        .run();
    out.code(0);
    assert_eq!(out.json()["queue_id"], "PIPE1");
    let transcript = finish(server);
    assert_eq!(transcript.only().messages.len(), 1);
}

#[test]
fn chunking_with_pipelining_sends_everything_through_quit_in_one_flight() {
    let home = Home::new();
    let script = greet(&["PIPELINING", "CHUNKING", "8BITMIME"]).then(&format!(
        "C: MAIL FROM:<{FROM}>*
         C: RCPT TO:<{TO}>
         C: BDAT *          # one chunk, LAST
         C: <body raw *>
         C: QUIT
         S: 250 2.1.0 Ok
         S: 250 2.1.5 Ok
         S: 250 2.0.0 Ok: queued as CHUNK1
         S: 221 2.0.0 Bye
         EOF"
    ));
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .run();
    out.code(0);
    let json = out.json();
    assert_eq!(json["queue_id"], "CHUNK1");
    let transcript = finish(server);
    let conn = transcript.only();
    assert_eq!(conn.messages.len(), 1);
    let message = &conn.messages[0];
    assert!(message.bdat);
    assert_eq!(json["size"], message.content.len());
    assert!(!verbs(conn).contains(&"DATA".to_owned()));
    // BDAT carries the message as it is: no dot-stuffing, no "." line.
    assert!(String::from_utf8_lossy(&message.content).contains("\r\n\r\nhello"));
}

#[test]
fn without_pipelining_mail_is_answered_before_rcpt_is_sent() {
    // The reply to MAIL comes late and refuses: a client that pipelined would already have
    // sent RCPT and DATA.
    let home = Home::new();
    let script = greet(&["8BITMIME"])
        .expect_prefix("MAIL FROM:")
        .stall(Duration::from_millis(300))
        .reply("550 5.7.1 Sender refused")
        .tail();
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none"])
        .run();
    out.code(69).error_says(&["MAIL FROM", "550"]);
    let transcript = finish(server);
    assert_eq!(verbs(transcript.only()), ["EHLO", "MAIL", "QUIT"]);
}

#[test]
fn without_pipelining_rcpt_is_answered_before_data_is_sent() {
    let home = Home::new();
    let script = greet(&["8BITMIME"])
        .expect_prefix("MAIL FROM:")
        .reply("250 2.1.0 Ok")
        .expect(&format!("RCPT TO:<{TO}>"))
        .stall(Duration::from_millis(300))
        .reply("550 5.1.1 User unknown")
        .tail();
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none"])
        .run();
    out.code(69).error_says(&["no recipient", "550"]);
    let transcript = finish(server);
    assert_eq!(verbs(transcript.only()), ["EHLO", "MAIL", "RCPT", "QUIT"]);
}

#[test]
fn without_pipelining_one_command_per_reply_delivers() {
    let home = Home::new();
    let server = Server::start_with(
        vec![GoodServer::new()
            .extensions(&["8BITMIME"])
            .message(Some(FROM), &[TO, BOB])
            .script()],
        quick(),
    );
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--to", BOB, "--tls", "none"])
        .run();
    out.code(0);
    let transcript = finish(server);
    assert_eq!(
        verbs(transcript.only()),
        ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    );
}

// ---------------------------------------------------------------------------------------------
// AUTH rules

#[test]
fn auth_auto_over_tls_prefers_plain_with_an_initial_response() {
    let pki = Pki::new();
    let home = Home::new();
    let server = GoodServer::new()
        .starttls(pki.good.server_config())
        .auth(&["CRAM-MD5", "LOGIN", "PLAIN"], USER, PASSWORD)
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--json", "-v", "--ca-file"])
        .arg(&pki.ca_file)
        .run();
    out.code(0).no_secret_in_output();
    assert!(
        out.stderr.contains("C: AUTH PLAIN <redacted>"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("\n* TLS established: TLSv1.3"),
        "{}",
        out.describe()
    );
    assert_eq!(out.json()["auth"], "PLAIN");
    let transcript = finish(server);
    let conn = transcript.only();
    let auth = conn.auth.as_ref().expect("AUTH ran");
    assert_eq!(auth.mechanism, "PLAIN");
    let auth_lines: Vec<&String> = conn
        .commands
        .iter()
        .filter(|c| c.starts_with("AUTH"))
        .collect();
    assert_eq!(auth_lines.len(), 1);
    let initial = auth_lines[0]
        .strip_prefix("AUTH PLAIN ")
        .expect("initial response");
    let decoded = BASE64.decode(initial).expect("base64");
    assert_eq!(decoded, format!("\0{USER}\0{PASSWORD}").as_bytes());
    // One round trip: the line after AUTH is MAIL, not a SASL response.
    let verbs = verbs(conn);
    let at = verbs.iter().position(|v| v == "AUTH").expect("AUTH");
    assert_eq!(verbs[at + 1], "MAIL");
    assert_no_secret(cleartext(conn), "the cleartext part");
}

#[test]
fn wrong_password_is_exit_77_and_no_other_mechanism_is_tried() {
    let pki = Pki::new();
    let home = Home::new();
    let server = GoodServer::new()
        .starttls(pki.good.server_config())
        .auth(&["PLAIN", "LOGIN", "CRAM-MD5"], USER, "another password")
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--json", "--ca-file"])
        .arg(&pki.ca_file)
        .run();
    out.code(77)
        .error_says(&["authentication", "PLAIN", "535"])
        .no_secret_in_output();
    out.json_error("auth");
    let transcript = finish(server);
    let conn = transcript.only();
    assert_eq!(count(conn, "AUTH"), 1, "{:?}", conn.commands);
    assert_eq!(count(conn, "MAIL"), 0);
    assert!(!conn.auth.as_ref().expect("AUTH ran").accepted);
}

#[test]
fn auth_auto_in_the_clear_refuses_plain_and_login() {
    let home = Home::new();
    let server = Server::one(Script::parse(
        "S: 220 mx.quizmail.test ESMTP
         C: EHLO client.test
         S: 250-mx.quizmail.test greets you
         S: 250 AUTH PLAIN LOGIN
         C: QUIT   # neither may go in the clear unless named: no AUTH at all
         S: 221 2.0.0 Bye
         EOF",
    ));
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--tls", "none", "--json"])
        .run();
    out.code(78)
        .error_says(&["no usable AUTH mechanism"])
        .no_secret_in_output();
    out.json_error("config");
    let transcript = finish(server);
    let conn = transcript.only();
    assert_eq!(count(conn, "AUTH"), 0, "{:?}", conn.commands);
    assert_eq!(count(conn, "MAIL"), 0);
    assert_no_secret(&conn.received, "the cleartext connection");
}

#[test]
fn auth_auto_in_the_clear_uses_cram_md5() {
    let home = Home::new();
    let server = GoodServer::new()
        .auth(&["PLAIN", "LOGIN", "CRAM-MD5"], USER, PASSWORD)
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--tls", "none", "--json"])
        .run();
    out.code(0).no_secret_in_output();
    assert_eq!(out.json()["auth"], "CRAM-MD5");
    let transcript = finish(server);
    let conn = transcript.only();
    assert!(conn.auth.as_ref().expect("AUTH ran").accepted);
    assert_no_secret(&conn.received, "the cleartext connection");
}

#[test]
fn named_plain_in_the_clear_works_and_verbose_never_shows_the_password() {
    let home = Home::new();
    let server = GoodServer::new()
        .auth(&["PLAIN", "LOGIN"], USER, PASSWORD)
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--tls", "none", "--auth", "plain", "-v"])
        .run();
    out.code(0).no_secret_in_output();
    assert!(
        out.stderr.contains("C: AUTH PLAIN <redacted>"),
        "{}",
        out.describe()
    );
    assert!(out.stderr.contains("S: 235"), "{}", out.describe());
    let transcript = finish(server);
    let auth = transcript.only().auth.clone().expect("AUTH ran");
    assert_eq!((auth.mechanism.as_str(), auth.accepted), ("PLAIN", true));
}

#[test]
fn named_login_verbose_never_shows_the_password() {
    let home = Home::new();
    let server = GoodServer::new().auth(&["LOGIN"], USER, PASSWORD).start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--tls", "none", "--auth", "login", "-v"])
        .run();
    out.code(0).no_secret_in_output();
    assert!(out.stderr.contains("AUTH LOGIN"), "{}", out.describe());
    assert!(out.stderr.contains("<redacted>"), "{}", out.describe());
    let transcript = finish(server);
    let auth = transcript.only().auth.clone().expect("AUTH ran");
    assert_eq!((auth.mechanism.as_str(), auth.accepted), ("LOGIN", true));
}

#[test]
fn mail_refused_530_without_user_is_exit_77() {
    let home = Home::new();
    let server = GoodServer::new()
        .fault(
            Stage::Mail(0),
            Fault::Reply("530 5.7.0 Authentication required".into()),
        )
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .run();
    out.code(77).error_says(&["--user", "530"]);
    out.json_error("auth");
    // DATA may have gone in the pipelined flight; the message itself must not.
    assert!(finish(server).only().messages.is_empty());
}

// ---------------------------------------------------------------------------------------------
// CR/LF from user input: refused before any connection

/// Runs a send with `extra` flags against a live server and checks it was refused with 65
/// before the server saw a connection.
fn refused_before_connecting(home: &Home, extra: Vec<OsString>, says: &[&str]) {
    let server = GoodServer::new().start();
    let out = home
        .client()
        .server(server.port())
        .args(["--tls", "none", "--json"])
        .args(extra)
        .run();
    out.code(65).error_says(says).json_error("input");
    let transcript = finish(server);
    assert!(
        transcript.connections.is_empty(),
        "the server saw a connection: {:?}\n{}",
        transcript.connections,
        out.describe()
    );
}

fn flags(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

#[test]
fn crlf_in_the_subject_is_exit_65_before_connecting() {
    let home = Home::new();
    refused_before_connecting(
        &home,
        flags(&[
            "--from",
            FROM,
            "--to",
            TO,
            "--body",
            "x",
            "--subject",
            "a\r\nBcc: x@y.test",
        ]),
        &["Subject", "CR or LF"],
    );
}

#[test]
fn crlf_in_a_header_is_exit_65_before_connecting() {
    let home = Home::new();
    refused_before_connecting(
        &home,
        flags(&[
            "--from",
            FROM,
            "--to",
            TO,
            "--body",
            "x",
            "--header",
            "X-Test: a\r\nB: c",
        ]),
        &["X-Test", "CR or LF"],
    );
}

#[test]
fn crlf_in_from_is_exit_65_before_connecting() {
    let home = Home::new();
    refused_before_connecting(
        &home,
        flags(&[
            "--from",
            "a@b.test\r\nRCPT TO:<x@y.test>",
            "--to",
            TO,
            "--body",
            "x",
        ]),
        &["--from"],
    );
}

#[test]
fn lf_in_to_is_exit_65_before_connecting() {
    let home = Home::new();
    refused_before_connecting(
        &home,
        flags(&[
            "--from",
            FROM,
            "--to",
            "ada@example.com\nRCPT TO:<x@y.test>",
            "--body",
            "x",
        ]),
        &["--target-email"],
    );
}

#[test]
fn newline_in_an_attachment_name_is_exit_65_before_connecting() {
    let home = Home::new();
    let path = home.file("evil\r\nBcc: x@y.test.txt", b"attached\n");
    let mut extra = flags(&["--from", FROM, "--to", TO, "--body", "x", "--attach"]);
    extra.push(path.into());
    refused_before_connecting(&home, extra, &["file name", "CR or LF"]);
}

// ---------------------------------------------------------------------------------------------
// The message body on the wire

#[test]
fn dot_lines_arrive_intact_and_line_ends_are_crlf_on_the_wire() {
    let home = Home::new();
    let body = home.file(
        "body.txt",
        b"first line\n.leading dot\n.\n..two dots\nbare CR\rhere\r\nCRLF line\n. \nlast",
    );
    let server = Server::start_with(vec![GoodServer::new().script()], quick());
    let out = home
        .client()
        .server(server.port())
        .args([
            "--from",
            FROM,
            "--to",
            TO,
            "--subject",
            "dots",
            "--tls",
            "none",
            "--body-file",
        ])
        .arg(&body)
        .run();
    out.code(0);
    let transcript = finish(server);
    let conn = transcript.only();
    // The support server reads lines strictly: a bare LF would have failed finish().
    for (i, pair) in conn.received.windows(2).enumerate() {
        assert!(
            pair != b"\r\r" && !(pair[0] == b'\r' && pair[1] != b'\n'),
            "bare CR at {i}"
        );
        assert!(
            !(pair[1] == b'\n' && pair[0] != b'\r'),
            "bare LF at {}",
            i + 1
        );
    }
    let message = &conn.messages[0];
    let wire = String::from_utf8_lossy(&message.wire);
    assert!(
        wire.contains("\r\n..leading dot\r\n..\r\n...two dots\r\n"),
        "{wire}"
    );
    let content = String::from_utf8_lossy(&message.content);
    let body_at = content.find("\r\n\r\n").expect("header/body separator") + 4;
    assert_eq!(
        &content[body_at..],
        "first line\r\n.leading dot\r\n.\r\n..two dots\r\nbare CR\r\nhere\r\nCRLF line\r\n. \r\nlast\r\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Grade mode: one connection for the whole class

const TEACHER: &str = "teacher@example.com";

const QUIZ: &str = r#"title = "E2E quiz"
pass_percent = 60

[[questions]]
prompt = "First?"
choices = ["right", "wrong"]
answer = "a"

[[questions]]
prompt = "Second?"
choices = ["wrong", "right"]
answer = "b"

[[questions]]
prompt = "Third?"
choices = ["wrong", "wrong too", "right"]
answer = "c"
explain = "The third one."
"#;

/// (name, email, answers) rows of the test roster.
const STUDENTS: [(&str, &str, &str); 5] = [
    ("Ada Lovelace", "ada@example.com", "a;b;c"),
    ("Bob Babbage", "bob@example.com", "b;b;c"),
    ("Cy Hopper", "cy@example.com", "a;a;a"),
    ("Di Turing", "di@example.com", "a;b;a"),
    ("Ed Dijkstra", "ed@example.com", "b;a;b"),
];

/// Writes the quiz and a roster (with `email_of` applied to each row) into the home.
fn grade_files(home: &Home, email_of: impl Fn(usize, &str) -> String) -> (PathBuf, PathBuf) {
    let quiz = home.file("quiz.toml", QUIZ.as_bytes());
    let mut roster = String::from("name,email,answers\n");
    for (i, (name, email, answers)) in STUDENTS.iter().enumerate() {
        roster.push_str(&format!("{name},{},{answers}\n", email_of(i, email)));
    }
    (quiz, home.file("roster.csv", roster.as_bytes()))
}

/// One accepted message as a strict server expects it: RSET first unless it is the first of
/// its connection, then MAIL, RCPT, DATA and the body; queued as `G<tag>`.
fn accept_message(script: Script, first: bool, rcpt: &str, tag: &str) -> Script {
    let script = if first {
        script
    } else {
        script.expect("RSET").reply("250 2.0.0 Ok")
    };
    script
        .expect_prefix(&format!("MAIL FROM:<{FROM}>"))
        .reply("250 2.1.0 Ok")
        .expect(&format!("RCPT TO:<{rcpt}>"))
        .reply("250 2.1.5 Ok")
        .expect("DATA")
        .reply("354 Go ahead")
        .receive_data()
        .reply(&format!("250 2.0.0 Ok: queued as G{tag}"))
}

fn quit(script: Script) -> Script {
    script.expect("QUIT").reply("221 2.0.0 Bye").close()
}

fn grade_client(home: &Home, port: u16, quiz: &Path, roster: &Path) -> Client {
    home.client()
        .server(port)
        .args([
            "--tls", "none", "--json", "--from", FROM, "--to", TEACHER, "--quiz",
        ])
        .arg(quiz)
        .arg("--roster")
        .arg(roster)
}

/// The header block of a received message, for To and Subject checks.
fn head(content: &[u8]) -> String {
    let text = String::from_utf8_lossy(content);
    text.split("\r\n\r\n").next().unwrap_or_default().to_owned()
}

#[test]
fn grade_mode_sends_each_student_and_the_summary_over_one_connection() {
    let home = Home::new();
    let (quiz, roster) = grade_files(&home, |_, email| email.to_owned());
    let mut script = greet(&["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]);
    for (i, (_, email, _)) in STUDENTS.iter().enumerate() {
        script = accept_message(script, i == 0, email, &i.to_string());
    }
    script = quit(accept_message(script, false, TEACHER, "S"));
    let server = Server::start_with(vec![script], quick());
    let out = grade_client(&home, server.port(), &quiz, &roster).run();
    out.code(0);
    let json = out.json();
    assert_eq!(json["sent"], true);
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 6);
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m["sent"], true, "message {i}");
        let tag = if i < 5 { i.to_string() } else { "S".into() };
        assert_eq!(m["queue_id"], format!("G{tag}"), "message {i}");
    }
    assert_eq!(messages[0]["quiz"]["score"], 3);
    assert_eq!(messages[2]["quiz"]["score"], 1);
    assert_eq!(messages[5]["accepted"], serde_json::json!([TEACHER]));

    let transcript = finish(server);
    let conn = transcript.only();
    assert_eq!(count(conn, "EHLO"), 1);
    assert_eq!(count(conn, "RSET"), 5);
    assert_eq!(conn.messages.len(), 6);
    for (i, (_, email, _)) in STUDENTS.iter().enumerate() {
        let head = head(&conn.messages[i].content);
        assert!(
            head.contains(&format!("\r\nTo: {email}")),
            "message {i}: {head}"
        );
        assert!(
            !head.contains(TEACHER),
            "message {i} copied to the teacher: {head}"
        );
        let content = String::from_utf8_lossy(&conn.messages[i].content);
        assert!(content.contains("results.csv"), "message {i}");
    }
    let summary = String::from_utf8_lossy(&conn.messages[5].content);
    assert!(head(&conn.messages[5].content).contains(&format!("\r\nTo: {TEACHER}")));
    assert!(summary.contains("class-results.csv"));
}

#[test]
fn grade_mode_bad_address_in_the_roster_does_not_stop_the_batch() {
    let home = Home::new();
    let (quiz, roster) = grade_files(&home, |i, email| {
        if i == 2 {
            "cy at example".into()
        } else {
            email.to_owned()
        }
    });
    let mut script = greet(&["PIPELINING", "8BITMIME"]);
    let good: Vec<usize> = vec![0, 1, 3, 4];
    for (n, i) in good.iter().enumerate() {
        script = accept_message(script, n == 0, STUDENTS[*i].1, &i.to_string());
    }
    script = quit(accept_message(script, false, TEACHER, "S"));
    let server = Server::start_with(vec![script], quick());
    let out = grade_client(&home, server.port(), &quiz, &roster).run();
    // cli.md: an invalid address is bad data (65); the others are still sent.
    out.code(65);
    assert!(
        out.stderr.contains("roster.csv: line 4") && out.stderr.contains("cy at example"),
        "{}",
        out.describe()
    );
    let json = out.json();
    assert_eq!(json["sent"], false);
    assert_eq!(json["error"]["exit_code"], 65);
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 6);
    for (i, m) in messages.iter().enumerate() {
        if i == 2 {
            assert_eq!(m["sent"], false);
            assert_eq!(m["error"]["kind"], "input");
            assert_eq!(m["quiz"]["name"], "Cy Hopper");
        } else {
            assert_eq!(m["sent"], true, "message {i}");
            assert_eq!(m["error"], Value::Null, "message {i}");
        }
    }
    let transcript = finish(server);
    let conn = transcript.only();
    assert_eq!(conn.messages.len(), 5);
}

#[test]
fn grade_mode_reconnects_after_a_421_and_carries_on() {
    let home = Home::new();
    let (quiz, roster) = grade_files(&home, |_, email| email.to_owned());
    let ext = ["PIPELINING", "8BITMIME"];
    // The first connection takes two students, then closes with 421 at the third's MAIL.
    let mut first = greet(&ext);
    for (i, (_, email, _)) in STUDENTS.iter().enumerate().take(2) {
        first = accept_message(first, i == 0, email, &i.to_string());
    }
    let first = first.expect("RSET").reply("250 2.0.0 Ok").then(
        "C: MAIL FROM:*
             S: 421 4.3.2 Shutting down, come back later
             C: RCPT TO:<cy@example.com>   # pipelined before the 421 arrived
             C: DATA
             EOF",
    );
    // The second takes the rest: no RSET before its first message.
    let mut second = greet(&ext);
    for (i, (_, email, _)) in STUDENTS.iter().enumerate().skip(2) {
        second = accept_message(second, i == 2, email, &i.to_string());
    }
    let second = quit(accept_message(second, false, TEACHER, "S"));
    let server = Server::start_with(vec![first, second], quick());
    let out = grade_client(&home, server.port(), &quiz, &roster)
        .retries(1)
        .run();
    out.code(0);
    assert!(out.stderr.contains("421"), "{}", out.describe());
    let json = out.json();
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 6);
    assert!(messages.iter().all(|m| m["sent"] == true), "{json:#}");
    let transcript = finish(server);
    assert_eq!(transcript.connections.len(), 2);
    assert_eq!(transcript.connections[0].messages.len(), 2);
    assert_eq!(transcript.connections[1].messages.len(), 4);
    let third = head(&transcript.connections[1].messages[0].content);
    assert!(third.contains("\r\nTo: cy@example.com"), "{third}");
}

#[test]
fn grade_mode_refused_student_is_reported_and_the_rest_go_over_the_same_connection() {
    let home = Home::new();
    let (quiz, roster) = grade_files(&home, |_, email| email.to_owned());
    let mut script = greet(&["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]);
    for (i, (_, email, _)) in STUDENTS.iter().enumerate() {
        script = if i == 1 {
            // Bob's mailbox does not exist; the pipelined DATA is refused too.
            script
                .expect("RSET")
                .reply("250 2.0.0 Ok")
                .expect_prefix("MAIL FROM:")
                .reply("250 2.1.0 Ok")
                .expect(&format!("RCPT TO:<{email}>"))
                .reply("550 5.1.1 No such user")
                .expect("DATA")
                .reply("554 5.5.1 No valid recipients")
        } else {
            accept_message(script, i == 0, email, &i.to_string())
        };
    }
    let script = quit(accept_message(script, false, TEACHER, "S"));
    let server = Server::start_with(vec![script], quick());
    let out = grade_client(&home, server.port(), &quiz, &roster).run();
    out.code(69);
    let json = out.json();
    assert_eq!(json["sent"], false);
    assert_eq!(json["error"]["exit_code"], 69);
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 6);
    assert_eq!(messages[1]["sent"], false);
    assert_eq!(messages[1]["error"]["kind"], "permanent");
    assert_eq!(
        rejected_addresses(&messages[1]),
        [(STUDENTS[1].1.to_owned(), 550)]
    );
    for i in [0, 2, 3, 4, 5] {
        assert_eq!(messages[i]["sent"], true, "message {i}");
    }
    let transcript = finish(server);
    let conn = transcript.only();
    assert_eq!(conn.messages.len(), 5);
}

#[test]
fn grade_mode_stops_at_a_failed_login_instead_of_trying_it_for_every_student() {
    let home = Home::new();
    let (quiz, roster) = grade_files(&home, |_, email| email.to_owned());
    let failing = GoodServer::new()
        .auth(&["CRAM-MD5"], USER, "another password")
        .script();
    // One connection per message would be offered; a client that retried the login for every
    // student would use them all (and lock the account on many servers).
    let server = Server::start_with(vec![failing; 6], quick());
    let out = grade_client(&home, server.port(), &quiz, &roster)
        .args(["--user", USER])
        .run();
    out.code(77);
    let json = out.json();
    assert_eq!(json["error"]["kind"], "auth");
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 6);
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m["sent"], false, "message {i}");
        assert_eq!(m["error"]["exit_code"], 77, "message {i}");
    }
    let transcript = finish(server);
    assert_eq!(transcript.connections.len(), 1, "one login attempt only");
    assert_eq!(count(&transcript.connections[0], "AUTH"), 1);
}

#[test]
fn grade_mode_without_a_server_writes_every_message_to_the_outbox() {
    let home = Home::new();
    let (quiz, roster) = grade_files(&home, |_, email| email.to_owned());
    let out = home
        .client()
        .args(["--json", "--from", FROM, "--to", TEACHER, "--quiz"])
        .arg(&quiz)
        .arg("--roster")
        .arg(&roster)
        .run();
    out.code(0);
    let json = out.json();
    let messages = json["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 6);
    let files = std::fs::read_dir(home.work().join("outbox"))
        .expect("outbox directory")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
        })
        .count();
    assert_eq!(files, 6);
    for m in messages {
        assert_eq!(m["transport"], "outbox");
        let path = home
            .work()
            .join(m["outbox_path"].as_str().expect("outbox_path"));
        assert!(path.is_file(), "{}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// No server: the outbox; --dry-run

#[test]
fn no_server_writes_the_outbox_and_says_not_sent() {
    let home = Home::new();
    let out = home.client().mail().arg("--json").run();
    out.code(0);
    assert!(out.stderr.contains("NOT sent"), "{}", out.describe());
    assert!(
        out.stderr.contains("quizmail --message"),
        "{}",
        out.describe()
    );
    let json = out.json();
    assert_eq!(json["transport"], "outbox");
    assert_eq!(json["sent"], false);
    assert_eq!(json["error"], Value::Null);
    let relative = json["outbox_path"].as_str().expect("outbox_path");
    let path = home.work().join(relative);
    assert_eq!(
        path.parent(),
        Some(home.work().join("outbox").as_path()),
        "{relative}"
    );
    // <UTC timestamp>-<Message-ID local part>.eml
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name");
    let message_id = json["message_id"].as_str().expect("message_id");
    let local = message_id
        .trim_matches(['<', '>'])
        .split('@')
        .next()
        .expect("local part");
    let stamp = name
        .strip_suffix(&format!("-{local}.eml"))
        .unwrap_or_else(|| panic!("{name} does not end in -{local}.eml"));
    let stamp = stamp.strip_suffix('Z').unwrap_or(stamp);
    assert!(
        stamp.len() == 15
            && stamp.as_bytes()[8] == b'T'
            && stamp.chars().filter(char::is_ascii_digit).count() == 14,
        "timestamp {stamp:?}"
    );
    let saved = std::fs::read(&path).expect("the outbox file");
    let text = String::from_utf8_lossy(&saved);
    assert!(text.contains("Subject: e2e\r\n"), "{text}");
    assert!(
        text.contains(&format!("Message-ID: {message_id}")),
        "{text}"
    );
    assert!(out.stderr.contains(relative), "{}", out.describe());
}

#[test]
fn dry_run_prints_the_message_and_connects_to_nothing() {
    let home = Home::new();
    let server = GoodServer::new().start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--dry-run"])
        .run();
    out.code(0);
    assert!(
        out.stdout.contains("Subject: e2e\r\n"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains(&format!("To: {TO}\r\n")),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("\r\n\r\nhello"), "{}", out.describe());
    assert!(
        !out.stdout.replace("\r\n", "").contains('\n'),
        "bare LF on stdout"
    );
    assert!(out.stderr.contains("NOT sent"), "{}", out.describe());
    assert!(finish(server).connections.is_empty());
    assert!(!home.work().join("outbox").exists());
}

// ---------------------------------------------------------------------------------------------
// Config file precedence

#[test]
fn config_file_names_the_server() {
    let home = Home::new();
    let server = GoodServer::new().start();
    home.write_config(&format!(
        "server = \"127.0.0.1:{}\"\ntls = \"none\"\ntimeout = 2\nretries = 0\nehlo = \"{EHLO}\"\n",
        server.port()
    ));
    let out = home.client().mail().arg("--json").run();
    out.code(0);
    let json = out.json();
    assert_eq!(json["transport"], "smtp");
    assert_eq!(json["server"], format!("127.0.0.1:{}", server.port()));
    finish(server);
}

#[test]
fn server_flag_beats_the_config_file() {
    let home = Home::new();
    let closed = support::closed_port();
    let server = GoodServer::new().start();
    home.write_config(&format!(
        "server = \"127.0.0.1:{}\"\ntls = \"none\"\n",
        closed.port()
    ));
    let out = home
        .client()
        .server(server.port())
        .mail()
        .arg("--json")
        .run();
    out.code(0);
    assert_eq!(out.json()["server"], format!("127.0.0.1:{}", server.port()));
    finish(server);
}

#[test]
fn environment_beats_the_config_file_and_the_flag_beats_both() {
    let home = Home::new();
    let closed = support::closed_port();
    let server = GoodServer::new().start();
    home.write_config(&format!("server = \"127.0.0.1:{}\"\n", closed.port()));
    let out = home
        .client()
        .env("SMTP_SERVER", format!("127.0.0.1:{}", server.port()))
        .env("SMTP_TLS", "none")
        .mail()
        .args(["--json", "--timeout", "2", "--retries", "0"])
        .run();
    out.code(0);
    finish(server);
    // Flags over the environment: the server offers no STARTTLS, so SMTP_TLS winning would
    // be exit 78.
    let server = GoodServer::new().start();
    let out = home
        .client()
        .env("SMTP_SERVER", format!("127.0.0.1:{}", closed.port()))
        .env("SMTP_TLS", "starttls")
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .run();
    out.code(0);
    finish(server);
}

#[test]
fn misspelt_config_key_is_exit_78_naming_line_and_column() {
    let home = Home::new();
    let server = GoodServer::new().start();
    let path = home.write_config(&format!(
        "server = \"127.0.0.1:{}\"\nsrever = \"typo.example\"\n",
        server.port()
    ));
    let out = home.client().mail().arg("--json").run();
    out.code(78).error_says(&[
        path.to_str().expect("UTF-8 path"),
        "line 2, column 1",
        "srever",
    ]);
    out.json_error("config");
    assert!(finish(server).connections.is_empty());
}

// ---------------------------------------------------------------------------------------------
// More edges: implicit TLS, a missing password, SIZE, replies that do not fit, QUIT

#[test]
fn implicit_tls_delivers_and_refuses_an_expired_certificate() {
    let pki = Pki::new();
    let home = Home::new();
    let server = GoodServer::new()
        .implicit_tls(pki.good.server_config())
        .auth(&["PLAIN"], USER, PASSWORD)
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "implicit", "--user", USER, "--json", "--ca-file"])
        .arg(&pki.ca_file)
        .run();
    out.code(0);
    assert_eq!(out.json()["tls"]["mode"], "implicit");
    let transcript = finish(server);
    assert_eq!(transcript.only().tls_started_at, Some(0));

    let server = GoodServer::new()
        .implicit_tls(pki.expired.server_config())
        .auth(&["PLAIN"], USER, PASSWORD)
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "implicit", "--user", USER, "--json", "--ca-file"])
        .arg(&pki.ca_file)
        .run();
    out.code(78)
        .error_says(&["certificate verification failed", "expired"]);
    out.json_error("tls");
    // The client aborts the handshake, so the script stops at its `* TLS`.
    let transcript = server.finish_expecting_mismatch();
    assert!(transcript.only().commands.is_empty());
    assert_no_secret(&transcript.only().received, "the connection");
}

#[test]
fn password_that_cannot_be_had_is_exit_78_before_connecting() {
    let home = Home::new();
    let server = GoodServer::new()
        .auth(&["CRAM-MD5"], USER, PASSWORD)
        .start();
    let out = home
        .client()
        .env("SMTP_PASSWORD", "")
        .server(server.port())
        .mail()
        .args([
            "--user",
            USER,
            "--tls",
            "none",
            "--json",
            "--password-command",
            "exit 3",
        ])
        .run();
    out.code(78).error_says(&["--password-command"]);
    out.json_error("config");
    assert!(finish(server).connections.is_empty());
}

#[test]
fn message_over_the_size_limit_is_exit_69_without_mail() {
    let home = Home::new();
    let body = home.file("big.txt", "0123456789 abcdefghij\n".repeat(100).as_bytes());
    // No MAIL; the missing QUIT is `refusing_after_ehlo_says_quit_first`.
    let script = greet(&["PIPELINING", "SIZE 1000"]).then("C: <anything>");
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .args(["--from", FROM, "--to", TO, "--tls", "none", "--json"])
        .arg("--body-file")
        .arg(&body)
        .run();
    out.code(69).error_says(&["exceeds", "1000"]);
    out.json_error("permanent");
    let transcript = finish(server);
    assert_eq!(
        count(transcript.only(), "MAIL"),
        0,
        "{:?}",
        transcript.only().commands
    );
}

#[test]
fn malformed_greeting_is_exit_76() {
    let home = Home::new();
    let server = Server::start_with(
        vec![Script::new()
            .reply("hello, I am not SMTP")
            .stall(Duration::from_secs(8))],
        quick(),
    );
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .run();
    out.code(76).error_says(&["malformed reply", "greeting"]);
    out.json_error("protocol");
    let transcript = finish(server);
    let sent = verbs(transcript.only());
    assert!(sent.iter().all(|v| v == "QUIT"), "{sent:?}");
}

#[test]
fn a_reply_ahead_of_its_command_is_exit_76_and_nothing_is_sent() {
    // "250" in the same write as the greeting would answer EHLO before it was asked: taking
    // it shifts every later reply by one.
    let home = Home::new();
    let script = Script::new()
        .send("220 mx.quizmail.test ESMTP\r\n250 early\r\n")
        .stall(Duration::from_secs(8));
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .run();
    out.code(76).error_says(&["before the command"]);
    out.json_error("protocol");
    assert!(finish(server).only().received.is_empty());
}

#[test]
fn a_reply_that_does_not_fit_data_is_exit_76_and_no_body_follows() {
    // 250 where 354 belongs: taking it as "go ahead" would send the message into the void
    // (or, after an injection, into the next transaction).
    let home = Home::new();
    let script = greet(&["8BITMIME"])
        .expect_prefix("MAIL FROM:")
        .reply("250 2.1.0 Ok")
        .expect(&format!("RCPT TO:<{TO}>"))
        .reply("250 2.1.5 Ok")
        .expect("DATA")
        .reply("250 2.0.0 Ok")
        .stall(Duration::from_secs(8));
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .run();
    out.code(76).error_says(&["DATA", "250"]);
    out.json_error("protocol");
    let transcript = finish(server);
    let text = transcript.only().text();
    let after = &text[text.find("DATA\r\n").expect("DATA") + 6..];
    assert!(
        !after.contains("hello") && !after.contains("Subject"),
        "{after:?}"
    );
}

#[test]
fn a_failing_quit_after_delivery_is_still_exit_0() {
    // Over TLS the dropped connection also lacks close_notify.
    let pki = Pki::new();
    for tls in [false, true] {
        for fault in [Fault::Reply("554 5.3.0 Odd".into()), Fault::Disconnect] {
            let home = Home::new();
            let mut server = GoodServer::new().fault(Stage::Quit, fault.clone());
            let mut client = home.client();
            if tls {
                server = server.starttls(pki.good.server_config());
                client = client.arg("--ca-file").arg(&pki.ca_file);
            } else {
                client = client.args(["--tls", "none"]);
            }
            let server = server.start();
            let out = client.server(server.port()).mail().arg("--json").run();
            out.code(0);
            assert_eq!(out.json()["sent"], true, "{fault:?} tls {tls}");
            assert_eq!(finish(server).only().messages.len(), 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Blind copies and prepared messages: what must not be on the wire

#[test]
fn bcc_is_in_the_envelope_and_never_on_the_wire() {
    let home = Home::new();
    let hidden = "hidden@example.com";
    let server = Server::start_with(
        vec![GoodServer::new()
            .message(Some(FROM), &[TO, hidden])
            .script()],
        quick(),
    );
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--bcc", hidden, "--tls", "none", "--json"])
        .run();
    out.code(0);
    let transcript = finish(server);
    let conn = transcript.only();
    let content = String::from_utf8_lossy(&conn.messages[0].content).to_ascii_lowercase();
    assert!(!content.contains("bcc:"), "{content}");
    assert!(!content.contains(hidden), "{content}");
}

#[test]
fn prepared_message_with_read_recipients_strips_bcc_and_is_dot_stuffed() {
    let home = Home::new();
    let hidden = "hidden@example.com";
    let message = home.file(
        "message.eml",
        format!(
            "From: {FROM}\nTo: {TO}\nBcc: {hidden}\nSubject: prepared\nMessage-ID: <prepared.1@example.com>\n\nline one\n.\n.dot\n"
        )
        .as_bytes(),
    );
    let server = Server::start_with(
        vec![GoodServer::new()
            .message(Some(FROM), &[TO, hidden])
            .script()],
        quick(),
    );
    let out = home
        .client()
        .server(server.port())
        .args(["--tls", "none", "--json", "-t", "--message"])
        .arg(&message)
        .run();
    out.code(0);
    let json = out.json();
    assert_eq!(json["message_id"], "<prepared.1@example.com>");
    // MAIL FROM defaults to the message's own From (cli.md), not to $USER@host.
    assert_eq!(json["envelope_from"], FROM);
    let transcript = finish(server);
    let conn = transcript.only();
    let received = &conn.messages[0];
    let content = String::from_utf8_lossy(&received.content);
    assert!(!content.to_ascii_lowercase().contains("bcc:"), "{content}");
    assert!(content.contains("Subject: prepared\r\n"), "{content}");
    assert!(
        content.ends_with("\r\n\r\nline one\r\n.\r\n.dot\r\n"),
        "{content:?}"
    );
    assert!(contains(&received.wire, b"\r\nline one\r\n..\r\n..dot\r\n"));
}

#[test]
fn address_needing_smtputf8_is_exit_65_when_the_server_lacks_it() {
    let home = Home::new();
    // No MAIL; the missing QUIT is `refusing_after_ehlo_says_quit_first` below.
    let script = greet(&["PIPELINING", "8BITMIME"]).then("C: <anything>");
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .args(["--from", FROM, "--to", "josé@example.com", "--body", "x"])
        .args(["--tls", "none", "--json"])
        .run();
    out.code(65).error_says(&["SMTPUTF8"]);
    out.json_error("input");
    let transcript = finish(server);
    assert_eq!(
        count(transcript.only(), "MAIL"),
        0,
        "{:?}",
        transcript.only().commands
    );
}

#[test]
fn refusing_after_ehlo_says_quit_first() {
    // RFC 5321 §4.1.1.10: the client closes only after QUIT.
    let home = Home::new();
    let big = home.file("big.txt", "0123456789 abcdefghij\n".repeat(100).as_bytes());
    let cases: [(&[&str], Vec<OsString>, i32); 2] = [
        (
            &["PIPELINING", "8BITMIME"],
            flags(&["--to", "josé@example.com", "--body", "x"]),
            65,
        ),
        (
            &["PIPELINING", "SIZE 1000"],
            vec!["--to".into(), TO.into(), "--body-file".into(), big.into()],
            69,
        ),
    ];
    for (extensions, args, code) in cases {
        let script = greet(extensions).then(
            "C: QUIT
             S: 221 2.0.0 Bye
             EOF",
        );
        let server = Server::start_with(vec![script], quick());
        let out = home
            .client()
            .server(server.port())
            .args(["--from", FROM, "--tls", "none"])
            .args(args)
            .run();
        out.code(code);
        finish(server);
    }
}

#[test]
fn an_outbox_file_sent_later_arrives_byte_for_byte() {
    let home = Home::new();
    let first = home.client().mail().arg("--json").run();
    first.code(0);
    let relative = first.json()["outbox_path"]
        .as_str()
        .expect("outbox_path")
        .to_owned();
    let saved = std::fs::read(home.work().join(&relative)).expect("outbox file");
    let server = Server::start_with(
        vec![GoodServer::new().message(Some(FROM), &[TO]).script()],
        quick(),
    );
    // The command the outbox notice suggests, with the test's server.
    let out = home
        .client()
        .server(server.port())
        .args([
            "--message",
            &relative,
            "--to",
            TO,
            "--tls",
            "none",
            "--json",
        ])
        .run();
    out.code(0);
    assert_eq!(out.json()["envelope_from"], FROM);
    let transcript = finish(server);
    assert_eq!(
        String::from_utf8_lossy(&transcript.only().messages[0].content),
        String::from_utf8_lossy(&saved)
    );
}

// ---------------------------------------------------------------------------------------------
// Probe

#[test]
fn probe_reports_the_certificate_and_sends_no_mail_and_no_auth() {
    let pki = Pki::new();
    let home = Home::new();
    let script = Script::parse(
        "S: 220 mx.quizmail.test ESMTP
         C: EHLO client.test
         S: 250-mx.quizmail.test greets you
         S: 250-SIZE 10485760
         S: 250 STARTTLS
         C: STARTTLS
         S: 220 2.0.0 Ready to start TLS
         * TLS
         C: EHLO client.test
         S: 250-mx.quizmail.test greets you
         S: 250-SIZE 10485760
         S: 250 AUTH LOGIN PLAIN
         C: QUIT
         EOF   # no 221 and no close_notify: the probe is complete by then",
    )
    .tls(pki.good.server_config());
    let server = Server::start_with(vec![script], quick());
    let out = home
        .client()
        .server(server.port())
        .args(["--probe", "--user", USER, "--json", "--ca-file"])
        .arg(&pki.ca_file)
        .run();
    out.code(0).no_secret_in_output();
    let json = out.json();
    let probe = &json["probe"];
    assert_eq!(probe["certificates"][0]["sha256"], pki.good.sha256);
    assert_eq!(probe["auth_auto"], "PLAIN");
    assert_eq!(probe["size_limit"], 10485760);
    assert_eq!(json["tls"]["version"], "TLSv1.3");
    let transcript = finish(server);
    let conn = transcript.only();
    assert_eq!(verbs(conn), ["EHLO", "STARTTLS", "EHLO", "QUIT"]);
}

// ---------------------------------------------------------------------------------------------
// Quiz mode and 8-bit content

#[test]
fn quiz_mode_checks_every_flag_before_the_test_starts() {
    let home = Home::new();
    let quiz = home.file("quiz.toml", QUIZ.as_bytes());
    let cases: [(&str, &str); 3] = [
        ("--header", "no colon here"),
        ("--subject", "two\nlines"),
        ("--envelope-from", "not an address"),
    ];
    for (flag, value) in cases {
        let out = home
            .client()
            .args([
                "--name",
                "Ada",
                "--answers",
                "a,b,a",
                "--from",
                FROM,
                "--to",
                TO,
            ])
            .args(["--dry-run", flag, value, "--quiz"])
            .arg(&quiz)
            .run();
        out.code(65).error_says(&[flag]);
        assert!(
            !out.stdout.contains("First?") && !out.stdout.contains("E2E quiz"),
            "the test ran before {flag} was checked\n{}",
            out.describe()
        );
    }
}

#[test]
fn quiz_mode_mails_the_results() {
    let home = Home::new();
    let quiz = home.file("quiz.toml", QUIZ.as_bytes());
    let server = Server::start_with(
        vec![GoodServer::new().message(Some(FROM), &[TEACHER]).script()],
        quick(),
    );
    let out = home
        .client()
        .server(server.port())
        .args([
            "--tls",
            "none",
            "--json",
            "--yes",
            "--name",
            "Ada",
            "--answers",
            "a,b,a",
        ])
        .args(["--from", FROM, "--to", TEACHER, "--quiz"])
        .arg(&quiz)
        .run();
    out.code(0);
    let json = out.json();
    assert_eq!(json["quiz"]["score"], 2);
    assert_eq!(json["quiz"]["total"], 3);
    assert_eq!(json["quiz"]["passed"], true);
    let transcript = finish(server);
    let conn = transcript.only();
    let content = String::from_utf8_lossy(&conn.messages[0].content);
    assert!(content.contains("results.csv"), "{content}");
    assert!(content.contains("multipart/alternative"), "{content}");
}

#[test]
fn eight_bit_body_travels_as_seven_bit_to_a_server_without_8bitmime() {
    let home = Home::new();
    let server = Server::start_with(
        vec![GoodServer::new().extensions(&["PIPELINING"]).script()],
        quick(),
    );
    let out = home
        .client()
        .server(server.port())
        .args([
            "--from",
            FROM,
            "--to",
            TO,
            "--subject",
            "Grüße",
            "--body",
            "héllo wörld ✓",
        ])
        .args(["--tls", "none"])
        .run();
    out.code(0);
    let transcript = finish(server);
    let conn = transcript.only();
    assert!(
        conn.received.is_ascii(),
        "8-bit octets sent without 8BITMIME"
    );
    let mail = conn
        .commands
        .iter()
        .find(|c| c.starts_with("MAIL"))
        .expect("MAIL");
    assert!(!mail.contains("BODY=8BITMIME"), "{mail}");
}

#[test]
fn bad_command_line_is_exit_64_with_a_json_report() {
    let home = Home::new();
    let out = home
        .client()
        .mail()
        .args(["--json", "--tls", "sometimes"])
        .run();
    out.code(64);
    let json = out.json_error("usage");
    let message = json["error"]["message"].as_str().expect("message");
    assert!(message.contains("sometimes"), "{message}");
    assert!(!home.work().join("outbox").exists());
}

#[test]
fn a_flag_the_mode_would_ignore_is_exit_64_and_connects_to_nothing() {
    let home = Home::new();
    let server = Server::start_with(vec![], quick());
    let port = server.port().to_string();
    let server_flag = format!("127.0.0.1:{port}");
    let fingerprint = "ab".repeat(32);
    let cases: [(&[&str], &[&str]); 7] = [
        (
            &["--insecure", "--tls-fingerprint", fingerprint.as_str()],
            &["--tls-fingerprint", "--insecure"],
        ),
        (
            &["--insecure", "--ca-file", "corp.pem"],
            &["--ca-file", "--insecure"],
        ),
        (&["--probe", "--dry-run"], &["--dry-run", "--probe"]),
        (
            &["--body", "hi", "--to", TO, "--answers", "a,b"],
            &["--answers", "send mode"],
        ),
        (
            &["--to", TO, "--answers", "a", "--inline", "logo.png"],
            &["--inline", "quiz mode"],
        ),
        (
            &[
                "--roster", "r.csv", "--quiz", "q.toml", "--to", TO, "--cc", TO,
            ],
            &["--cc", "grade mode"],
        ),
        (
            &["--dkim-dns-record", "--to", TO],
            &["--target-email", "--dkim-dns-record"],
        ),
    ];
    for (args, says) in cases {
        let out = home
            .client()
            .args(["--server", server_flag.as_str(), "--json"])
            .args(args)
            .run();
        out.code(64).error_says(says);
        out.json_error("usage");
    }
    assert!(finish(server).connections.is_empty());
    // The environment and the config file hold defaults for every mode: not refused.
    let key = dkim_key(&home, 0o600);
    let out = home
        .client()
        .env("SMTP_SERVER", server_flag.as_str())
        .args([
            "--dkim-selector",
            "sel",
            "--from",
            FROM,
            "--dkim-dns-record",
            "--dkim-key",
        ])
        .arg(&key)
        .run();
    out.code(0);
    assert!(out.stdout.contains("v=DKIM1"), "{}", out.describe());
}

#[test]
fn quiet_silences_advice_but_not_the_insecure_warning() {
    let home = Home::new();
    let out = home
        .client()
        .mail()
        .args([
            "--envelope-from",
            "bounce@elsewhere.test",
            "--dry-run",
            "-q",
        ])
        .run();
    out.code(0);
    assert_eq!(out.stderr, "", "{}", out.describe());
    let out = home
        .client()
        .mail()
        .args(["--server", "127.0.0.1:1", "--insecure", "--dry-run", "-q"])
        .run();
    out.code(0);
    assert!(out.stderr.contains("--insecure"), "{}", out.describe());
}

#[test]
fn quiet_prints_nothing_on_success_and_only_the_error_on_failure() {
    let home = Home::new();
    let server = GoodServer::new().start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "-q"])
        .run();
    out.code(0);
    assert_eq!(out.stderr, "", "{}", out.describe());
    assert_eq!(out.stdout, "", "{}", out.describe());
    finish(server);

    let server = GoodServer::new()
        .fault(Stage::Mail(0), Fault::Reply(PERMANENT_5XX.into()))
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "-q"])
        .run();
    out.code(69);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
    out.error_says(&["MAIL FROM", "554"]);
    finish(server);
}

// ---------------------------------------------------------------------------------------------
// DKIM keys and sender alignment, checked before anything is sent

/// An Ed25519 key from openssl, with the given file mode.
fn dkim_key(home: &Home, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = home.path().join(format!("dkim-{mode:o}.pem"));
    let status = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&path)
        .stderr(Stdio::null())
        .status()
        .expect("openssl is needed to make a test key");
    assert!(status.success(), "openssl genpkey failed");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// Runs a send with `extra` flags against a live server; it must exit `code` with an error
/// naming `says`, and the server must never have seen a connection.
fn dkim_refused_before_connecting(extra: Vec<OsString>, code: i32, says: &[&str]) {
    let home = Home::new();
    let server = GoodServer::new().start();
    let out = home
        .client()
        .server(server.port())
        .args(["--tls", "none"])
        .mail()
        .args(extra)
        .run();
    out.code(code).error_says(says);
    let transcript = finish(server);
    assert!(
        transcript.connections.is_empty(),
        "the server saw a connection\n{}",
        out.describe()
    );
}

#[test]
fn dkim_key_readable_by_others_is_exit_78_before_connecting() {
    let home = Home::new();
    let key = dkim_key(&home, 0o644);
    let mut extra = flags(&["--dkim-selector", "s1", "--dkim-key"]);
    extra.push(key.into());
    dkim_refused_before_connecting(extra, 78, &["chmod 600", "--dkim-key-insecure"]);
}

#[test]
fn dkim_key_missing_is_exit_66_before_connecting() {
    dkim_refused_before_connecting(
        flags(&[
            "--dkim-selector",
            "s1",
            "--dkim-key",
            "/nonexistent/dkim.pem",
        ]),
        66,
        &["/nonexistent/dkim.pem"],
    );
}

#[test]
fn dkim_key_that_is_not_a_key_is_exit_78_before_connecting() {
    let home = Home::new();
    let key = home.file(
        "not-a-key.pem",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let mut extra = flags(&["--dkim-selector", "s1", "--dkim-key"]);
    extra.push(key.into());
    dkim_refused_before_connecting(extra, 78, &["not-a-key.pem"]);
}

#[test]
fn misaligned_envelope_and_dkim_domains_are_warned_about() {
    let home = Home::new();
    let key = dkim_key(&home, 0o600);
    let out = home
        .client()
        .args(["--dry-run", "--envelope-from", "bounces@mailer.test"])
        .args([
            "--dkim-selector",
            "s1",
            "--dkim-domain",
            "other.test",
            "--dkim-key",
        ])
        .arg(key)
        .mail()
        .run();
    out.code(0);
    assert!(
        out.stderr.contains("SPF alignment will fail") && out.stderr.contains("--envelope-from"),
        "{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("DKIM alignment will fail") && out.stderr.contains("--dkim-domain"),
        "{}",
        out.describe()
    );
    // Aligned identifiers (a subdomain of the From domain) give no warning.
    let out = home
        .client()
        .args(["--dry-run", "--envelope-from", "bounces@mail.example.com"])
        .mail()
        .run();
    out.code(0);
    assert!(!out.stderr.contains("alignment"), "{}", out.describe());
}

// ---------------------------------------------------------------------------------------------
// Trickling servers: --timeout bounds the whole reply, not each byte

/// The bound on a run against a trickling server: the timeout and some slack, far below what
/// a client that waited byte by byte would take.
const TRICKLE_LIMIT: Duration = Duration::from_secs(8);

/// Runs a plain send against `script`. With `retry`, `--retries 1` and a spare connection
/// that must stay unused (after the end of the data nothing is sent again); else no retries.
fn trickle_run(script: Script, retry: bool) -> (Outcome, Transcript) {
    let home = Home::new();
    let mut scripts = vec![script];
    if retry {
        scripts.push(GoodServer::new().script());
    }
    let server = Server::start_with(scripts, quick());
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .retries(u32::from(retry))
        .run();
    (out, finish(server))
}

/// Exit 75 within the bound, one error line naming `stage` and the timeout, one connection.
fn assert_trickle_timed_out(out: &Outcome, transcript: &Transcript, stage: &str) {
    out.code(75).error_says(&["timed out", stage]);
    out.json_error("temporary");
    assert!(
        out.elapsed < TRICKLE_LIMIT,
        "took {:?}\n{}",
        out.elapsed,
        out.describe()
    );
    assert_eq!(transcript.connections.len(), 1, "tried again");
}

#[test]
fn greeting_trickled_forever_times_out() {
    let (out, transcript) = trickle_run(
        Script::parse(
            "* trickle 2s
         S: 220 mx.quizmail.test ESMTP and this greeting takes its time, a byte every two seconds
         C: <anything>   # at most a QUIT; checked below",
        ),
        false,
    );
    assert_trickle_timed_out(&out, &transcript, "greeting");
    let sent = &transcript.only().commands;
    assert!(sent.is_empty() || sent == &["QUIT"], "{sent:?}");
}

#[test]
fn ehlo_reply_trickled_times_out() {
    let (out, transcript) = trickle_run(
        Script::parse(&format!(
            "S: 220 mx.quizmail.test ESMTP
         C: EHLO {EHLO}
         * trickle 2s
         S: 250-mx.quizmail.test greets you
         S: 250 PIPELINING
         C: <anything>"
        )),
        false,
    );
    assert_trickle_timed_out(&out, &transcript, "EHLO");
    let sent = &transcript.only().commands;
    assert!(sent[1..].is_empty() || sent[1..] == ["QUIT"], "{sent:?}");
}

#[test]
fn end_of_data_reply_trickled_times_out_and_is_not_sent_again() {
    let (out, transcript) = trickle_run(
        after_the_final_dot("* trickle 2s\nS: 250 2.0.0 Ok: queued as SLOW1\nC: <anything>"),
        true,
    );
    assert_trickle_timed_out(&out, &transcript, "end of data");
    out.error_says(&["may have been delivered"]);
    let conn = transcript.only();
    assert_eq!(conn.messages.len(), 1);
    let after = after_data(conn);
    assert!(after.is_empty() || after == ["QUIT"], "{after:?}");
}

// ---------------------------------------------------------------------------------------------
// Success codes that are not the usual 250

#[test]
fn rcpt_answered_252_is_accepted() {
    let home = Home::new();
    let server = GoodServer::new()
        .message(Some(FROM), &[TO])
        .fault(
            Stage::Rcpt(0, 0),
            Fault::Reply("252 2.1.5 Cannot VRFY user, but will accept message".into()),
        )
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .run();
    out.code(0);
    assert_eq!(out.json()["accepted"], serde_json::json!([TO]));
    assert_eq!(finish(server).only().messages.len(), 1);
}

#[test]
fn mail_answered_with_an_unlisted_251_is_accepted() {
    let home = Home::new();
    let server = GoodServer::new()
        .message(Some(FROM), &[TO])
        .fault(
            Stage::Mail(0),
            Fault::Reply("251 2.1.0 Sender ok, will forward".into()),
        )
        .start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .run();
    out.code(0);
    assert_eq!(out.json()["sent"], true);
    assert_eq!(finish(server).only().messages.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Replies that do not fit, and bytes that do not belong in a reply

#[test]
fn auth_login_answered_235_before_any_credentials_is_exit_76() {
    let home = Home::new();
    let server = Server::start_with(
        vec![Script::parse(&format!(
            "S: 220 mx.quizmail.test ESMTP
             C: EHLO {EHLO}
             S: 250-mx.quizmail.test greets you
             S: 250 AUTH LOGIN
             C: AUTH LOGIN*
             S: 235 2.7.0 Authentication successful   # LOGIN asked nothing yet
             C: <eof>"
        ))],
        quick(),
    );
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--user", USER, "--auth", "login", "--tls", "none", "--json"])
        .run();
    out.code(76).error_says(&["AUTH", "235"]);
    out.json_error("protocol");
    out.no_secret_in_output();
    let transcript = finish(server);
    assert_no_secret(&transcript.only().received, "the connection");
}

#[test]
fn a_nul_or_an_escape_inside_a_reply_is_exit_76() {
    for control in [r"\x00", r"\x1b"] {
        let home = Home::new();
        let server = Server::start_with(
            vec![Script::parse(&format!(
                "S: 220 mx.quizmail.test{control} ESMTP
                 C: <eof>   # a protocol error: nothing more"
            ))],
            quick(),
        );
        let out = home
            .client()
            .server(server.port())
            .mail()
            .args(["--tls", "none", "--json"])
            .run();
        out.code(76).error_says(&["malformed reply", "greeting"]);
        out.json_error("protocol");
        finish(server);
    }
}

// ---------------------------------------------------------------------------------------------
// A quoted local part

const QUOTED: &str = "\"john doe\"@example.com";

#[test]
fn quoted_local_part_is_sent_as_it_is_and_kept_in_to() {
    let home = Home::new();
    let server = Server::start_with(
        vec![GoodServer::new().message(Some(FROM), &[QUOTED]).script()],
        quick(),
    );
    let out = home
        .client()
        .server(server.port())
        .args([
            "--from",
            FROM,
            "--to",
            QUOTED,
            "--subject",
            "q",
            "--body",
            "x",
        ])
        .args(["--tls", "none", "--json"])
        .run();
    out.code(0);
    let transcript = finish(server);
    let conn = transcript.only();
    assert!(
        conn.commands.contains(&format!("RCPT TO:<{QUOTED}>")),
        "{:?}",
        conn.commands
    );
    let head = head(&conn.messages[0].content);
    // In angle brackets: RFC 5322 §3.4 allows them without a display name, and parsers that
    // stop at the quoted string's space read the bare form as a name.
    assert!(head.contains(&format!("\r\nTo: <{QUOTED}>")), "{head}");
}

#[test]
fn cr_or_lf_inside_a_quoted_local_part_is_exit_65_before_connecting() {
    for evil in ["\"john\rdoe\"@example.com", "\"john\ndoe\"@example.com"] {
        let home = Home::new();
        refused_before_connecting(
            &home,
            flags(&["--from", FROM, "--to", evil, "--body", "x"]),
            &["--target-email"],
        );
    }
}

#[test]
fn nul_inside_a_quoted_local_part_is_exit_65_before_connecting() {
    // A NUL cannot be on a command line; a prepared message's To can hold one.
    let home = Home::new();
    let message = home.file(
        "nul.eml",
        format!("From: {FROM}\nTo: \"john\0doe\"@example.com\nSubject: nul\n\nx\n").as_bytes(),
    );
    let server = GoodServer::new().start();
    let out = home
        .client()
        .server(server.port())
        .args(["--tls", "none", "--json", "-t", "--message"])
        .arg(&message)
        .run();
    out.code(65);
    out.json_error("input");
    assert!(finish(server).connections.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Exit codes of cli.md not covered above: 66 for inputs, 73 for outputs

#[test]
fn missing_inputs_are_exit_66_before_connecting() {
    let home = Home::new();
    let cases: [(&[&str], &str); 3] = [
        (
            &["--body", "x", "--attach", "/nonexistent/a.pdf"],
            "/nonexistent/a.pdf",
        ),
        (
            &["--body-file", "/nonexistent/body.txt"],
            "/nonexistent/body.txt",
        ),
        (
            &[
                "--quiz",
                "/nonexistent/quiz.toml",
                "--answers",
                "a",
                "--name",
                "Ada",
                "--yes",
            ],
            "/nonexistent/quiz.toml",
        ),
    ];
    for (args, says) in cases {
        let server = GoodServer::new().start();
        let out = home
            .client()
            .server(server.port())
            .args(["--from", FROM, "--to", TO, "--tls", "none", "--json"])
            .args(args)
            .run();
        out.code(66).error_says(&[says]);
        out.json_error("input");
        assert!(finish(server).connections.is_empty(), "{args:?}");
    }
}

#[test]
fn empty_standard_input_for_the_body_is_exit_66() {
    let home = Home::new();
    let server = GoodServer::new().start();
    let out = home
        .client()
        .server(server.port())
        .args(["--from", FROM, "--to", TO, "--body-file", "-"])
        .args(["--tls", "none", "--json"])
        .run();
    out.code(66);
    out.json_error("input");
    assert!(finish(server).connections.is_empty());
}

#[test]
fn save_file_that_cannot_be_written_is_exit_73() {
    let home = Home::new();
    let out = home
        .client()
        .mail()
        .args(["--dry-run", "--json", "--save", "/nonexistent/dir/sent.eml"])
        .run();
    out.code(73).error_says(&["/nonexistent/dir/sent.eml"]);
}

#[test]
fn outbox_that_cannot_be_written_is_exit_73() {
    let home = Home::new();
    // A regular file where the outbox directory should be.
    let blocker = home.file("not-a-dir", b"x");
    let out = home
        .client()
        .mail()
        .arg("--json")
        .arg("--outbox")
        .arg(&blocker)
        .run();
    out.code(73).error_says(&["not-a-dir"]);
}

// ---------------------------------------------------------------------------------------------
// Content flags: --markdown-file, --attach patterns, --reply-to, --in-reply-to, --references,
// --priority

const MARKDOWN: &str = "# Build 42\n\n| job | result |\n|:--|--:|\n| test | ~~failed~~ ok |\n\n\
                        <script>alert(1)</script>\n\n![chart](cid:chart.png)\n";

/// The header lines of a received message, unfolded.
fn header_lines(content: &[u8]) -> Vec<String> {
    head(content)
        .replace("\r\n ", " ")
        .split("\r\n")
        .map(str::to_owned)
        .collect()
}

#[test]
fn markdown_glob_attachments_and_thread_headers_reach_the_server() {
    let home = Home::new();
    let md = home.file("notes.md", MARKDOWN.as_bytes());
    home.file("chart.png", b"\x89PNG fake");
    std::fs::create_dir(home.work().join("out")).expect("out dir");
    for (name, data) in [
        ("b.pdf", &b"%PDF b"[..]),
        ("a.pdf", b"%PDF a"),
        ("c.txt", b"c"),
    ] {
        std::fs::write(home.work().join("out").join(name), data).expect("write");
    }
    let server = GoodServer::new().message(Some(FROM), &[TO]).start();
    let out = home
        .client()
        .server(server.port())
        .args(["--tls", "none", "--json", "--from", FROM, "--to", TO])
        .args(["--subject", "Build 42", "--markdown-file"])
        .arg(&md)
        .args(["--inline", "chart.png", "--attach", "out/*.pdf"])
        .args(["--reply-to", "Ops <ops@example.com>"])
        .args(["--in-reply-to", "build-41@ci.example", "--priority", "high"])
        .run();
    out.code(0);
    let transcript = finish(server);
    let content = &transcript.only().messages[0].content;
    let lines = header_lines(content);
    for want in [
        "Reply-To: Ops <ops@example.com>",
        "In-Reply-To: <build-41@ci.example>",
        "References: <build-41@ci.example>",
        "X-Priority: 1",
        "Importance: high",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "{want:?} not in {lines:#?}"
        );
    }
    let msg = mail_parser::MessageParser::default()
        .parse(content)
        .expect("the message parses");
    // The text part is the source as given, its line ends CRLF on the wire.
    let text = msg.body_text(0).expect("a text part");
    assert_eq!(text.replace("\r\n", "\n"), MARKDOWN);
    let html = msg.body_html(0).expect("an HTML part");
    assert!(html.contains("<table style=\""), "{html}");
    assert!(html.contains("<del>failed</del>"), "{html}");
    assert!(html.contains("<img src=\"cid:chart.png\""), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(
        !html.contains("<script") && !html.contains("<style"),
        "{html}"
    );
    let names: Vec<&str> = msg
        .attachments()
        .filter_map(mail_parser::MimeHeaders::attachment_name)
        .collect();
    assert_eq!(names, ["chart.png", "a.pdf", "b.pdf"]);
}

#[test]
fn markdown_file_with_another_body_source_is_exit_64() {
    let home = Home::new();
    let md = home.file("notes.md", MARKDOWN.as_bytes());
    let other = home.file("other.txt", b"x");
    for flag in ["--body", "--body-file", "--html-file", "--message"] {
        let server = GoodServer::new().start();
        let out = home
            .client()
            .server(server.port())
            .args(["--tls", "none", "--json", "--to", TO, "--markdown-file"])
            .arg(&md)
            .arg(flag)
            .arg(&other)
            .run();
        out.code(64).json_error("usage");
        assert!(out.stderr.contains("--markdown-file"), "{}", out.describe());
        assert!(finish(server).connections.is_empty(), "{flag}");
    }
}

#[test]
fn markdown_from_empty_standard_input_is_exit_66() {
    let home = Home::new();
    let out = home
        .client()
        .args(["--to", TO, "--markdown-file", "-", "--dry-run", "--json"])
        .run();
    out.code(66).json_error("input");
}

#[test]
fn attach_pattern_matching_nothing_is_exit_66_naming_it_before_connecting() {
    let home = Home::new();
    std::fs::create_dir(home.work().join("out")).expect("out dir");
    let server = GoodServer::new().start();
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json", "--attach", "out/*.pdf"])
        .run();
    out.code(66)
        .error_says(&["--attach \"out/*.pdf\"", "matches no file"])
        .json_error("input");
    assert!(finish(server).connections.is_empty());
}

#[test]
fn attach_name_with_metacharacters_that_exists_is_that_file() {
    let home = Home::new();
    home.file("report[1].pdf", b"literal");
    home.file("report1.pdf", b"a match of the pattern");
    let out = home
        .client()
        .mail()
        .args(["--dry-run", "--attach", "report[1].pdf"])
        .run();
    out.code(0);
    assert!(
        out.stdout.contains("filename=\"report[1].pdf\""),
        "{}",
        out.describe()
    );
    assert!(!out.stdout.contains("report1.pdf"), "{}", out.describe());
}

#[test]
fn bad_message_id_or_reply_to_is_exit_65_before_connecting() {
    let home = Home::new();
    for (flag, value, says) in [
        ("--in-reply-to", "no-at-sign", "<id@host>"),
        (
            "--in-reply-to",
            "<a@b.test>\r\nBcc: x@y.test",
            "control character",
        ),
        ("--references", "<a@b.test> c", "<id@host>"),
        (
            "--reply-to",
            "ops@example.com\r\nBcc: x@y.test",
            "--reply-to",
        ),
    ] {
        let mut extra = flags(&["--from", FROM, "--to", TO, "--body", "x", flag]);
        extra.push(value.into());
        refused_before_connecting(&home, extra, &[flag, says]);
    }
}

#[test]
fn grade_mode_refuses_threading_and_probe_refuses_priority_exit_64() {
    let home = Home::new();
    let (quiz, roster) = grade_files(&home, |_, email| email.to_owned());
    let server = GoodServer::new().start();
    let out = grade_client(&home, server.port(), &quiz, &roster)
        .args(["--in-reply-to", "<a@b.test>"])
        .run();
    out.code(64)
        .error_says(&["--in-reply-to", "grade mode"])
        .json_error("usage");
    let out = home
        .client()
        .server(server.port())
        .args(["--probe", "--tls", "none", "--priority", "high"])
        .run();
    out.code(64).error_says(&["--priority", "--probe"]);
    assert!(finish(server).connections.is_empty());
}

#[test]
fn quiz_results_carry_reply_to_thread_and_priority_headers() {
    let home = Home::new();
    let quiz = home.file("quiz.toml", QUIZ.as_bytes());
    let server = GoodServer::new().message(Some(FROM), &[TO]).start();
    let out = home
        .client()
        .server(server.port())
        .args(["--tls", "none", "--from", FROM, "--to", TO, "--quiz"])
        .arg(&quiz)
        .args(["--answers", "a,b,c", "--name", "Ada", "--yes"])
        .args([
            "--reply-to",
            TEACHER,
            "--in-reply-to",
            "<quiz-1@example.com>",
        ])
        .args(["--references", "<term@example.com> <quiz-1@example.com>"])
        .args(["--priority", "low"])
        .run();
    out.code(0);
    let transcript = finish(server);
    let lines = header_lines(&transcript.only().messages[0].content);
    for want in [
        format!("Reply-To: {TEACHER}"),
        "In-Reply-To: <quiz-1@example.com>".into(),
        "References: <term@example.com> <quiz-1@example.com>".into(),
        "X-Priority: 5".into(),
        "Importance: low".into(),
    ] {
        assert!(lines.contains(&want), "{want:?} not in {lines:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// DSN (RFC 3461) and accounts

const DSN_FLAGS: [&str; 6] = [
    "--dsn-notify",
    "failure,delay",
    "--dsn-ret",
    "hdrs",
    "--envid",
    "run 7+x",
];

/// A server offering `caps` that expects exactly these MAIL and RCPT lines.
fn dsn_script(caps: &str, mail: &str, rcpt: &str) -> Script {
    Script::parse(&format!(
        "S: 220 mx.quizmail.test ESMTP
         C: EHLO client.test
         S: 250-mx.quizmail.test greets you
         S: 250 {caps}
         C: {mail}
         S: 250 2.1.0 Ok
         C: {rcpt}
         S: 250 2.1.5 Ok
         C: DATA
         S: 354 go ahead
         C: <body dot>
         C: .
         S: 250 2.0.0 Ok: queued as Q1
         C: QUIT
         S: 221 2.0.0 Bye
         EOF"
    ))
}

#[test]
fn dsn_parameters_go_on_mail_and_rcpt_when_offered() {
    let home = Home::new();
    let server = Server::one(dsn_script(
        "DSN",
        &format!("MAIL FROM:<{FROM}> RET=HDRS ENVID=run+207+2Bx"),
        &format!("RCPT TO:<{TO}> NOTIFY=FAILURE,DELAY ORCPT=rfc822;{TO}"),
    ));
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none"])
        .args(DSN_FLAGS)
        .run();
    out.code(0);
    assert!(!out.stderr.contains("DSN"), "{}", out.describe());
    let transcript = finish(server);
    assert_eq!(transcript.only().messages.len(), 1);
}

#[test]
fn without_dsn_offered_the_message_goes_without_them_and_one_warning() {
    let home = Home::new();
    let server = Server::one(dsn_script(
        "8BITMIME",
        &format!("MAIL FROM:<{FROM}>"),
        &format!("RCPT TO:<{TO}>"),
    ));
    let out = home
        .client()
        .server(server.port())
        .mail()
        .args(["--tls", "none", "--json"])
        .args(DSN_FLAGS)
        .run();
    out.code(0);
    assert_eq!(out.json()["sent"], true);
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.contains("DSN")).collect();
    assert_eq!(
        warnings,
        ["quizmail: warning: the server does not offer DSN: sending without --dsn-notify, --dsn-ret, --envid"],
        "{}",
        out.describe()
    );
    assert_eq!(finish(server).only().messages.len(), 1);
}

#[test]
fn bad_dsn_values_are_usage_errors() {
    let home = Home::new();
    for bad in [
        &["--dsn-notify", "never,success"][..],
        &["--dsn-notify", "sometimes"],
        &["--dsn-ret", "body"],
        &["--envid", "tab\there"],
        &["--envid", &"x".repeat(101)],
    ] {
        let out = home.client().mail().args(["--dry-run"]).args(bad).run();
        out.code(64);
    }
}

#[test]
fn unknown_account_is_exit_78_naming_the_file() {
    let home = Home::new();
    let path = home.write_config(
        "server = \"127.0.0.1:1\"\ndefault_account = \"wrok\"\n\n[accounts.work]\nfrom = \"a@work.test\"\n",
    );
    let out = home.client().mail().arg("--json").run();
    out.code(78)
        .error_says(&[path.to_str().expect("UTF-8 path"), "line 2", "wrok", "work"]);
    out.json_error("config");
    let path =
        home.write_config("server = \"127.0.0.1:1\"\n[accounts.work]\nfrom = \"a@work.test\"\n");
    let out = home
        .client()
        .env("SMTP_ACCOUNT", "home")
        .mail()
        .arg("--json")
        .run();
    out.code(78).error_says(&[
        path.to_str().expect("UTF-8 path"),
        "\"home\"",
        "work (line 2)",
    ]);
}

#[test]
fn the_account_matching_from_names_the_server() {
    let home = Home::new();
    let closed = support::closed_port();
    let server = GoodServer::new().start();
    home.write_config(&format!(
        "server = \"127.0.0.1:{closed}\"\ntls = \"none\"\ntimeout = 2\nretries = 0\nehlo = \"{EHLO}\"\n\
         default_account = \"other\"\n\n\
         [accounts.other]\nfrom = \"x@other.test\"\n\n\
         [accounts.quiz]\nfrom = \"*@EXAMPLE.com\"\nserver = \"127.0.0.1:{}\"\n",
        server.port(),
        closed = closed.port(),
    ));
    let out = home.client().mail().arg("--json").run();
    out.code(0);
    assert_eq!(out.json()["server"], format!("127.0.0.1:{}", server.port()));
    assert_eq!(out.json()["envelope_from"], FROM);
    finish(server);
    // The environment still beats the account.
    let server = GoodServer::new().start();
    let out = home
        .client()
        .env("SMTP_SERVER", format!("127.0.0.1:{}", server.port()))
        .mail()
        .args(["--json", "--account", "other"])
        .run();
    out.code(0);
    assert_eq!(out.json()["server"], format!("127.0.0.1:{}", server.port()));
    finish(server);
}
