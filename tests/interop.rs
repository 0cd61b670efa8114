//! Interop tests: the built `quizmail` binary against real SMTP servers.
//!
//! The servers are started by `scripts/test-all` (aiosmtpd from `scripts/smtp_server.py`, and a
//! private Postfix from `scripts/postfix-instance`), which passes ports and paths in `QUIZMAIL_IT_*`
//! environment variables. Every test is `#[ignore]`d so a plain `cargo test` stays offline; a
//! missing variable makes a test fail, never pass. Each test is independent: it uses its own
//! recipient address and EHLO name, and finds its message and AUTH attempts by them.
//!
//! Only documented flags (docs/MANUAL.md) are used; the binary runs with a cleared
//! environment (no SMTP_* leaking in, no config file) and a hard wall-clock bound.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use serde_json::Value;

mod real;
use real::{unique, var, Run};

const SENDER: &str = "sender@example.test";
const REJECTED: &str = "nobody@example.test";
/// Hard bound on one run of the binary; `--timeout 10` should end it long before.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// How long Postfix may take to deliver into the maildir after accepting.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

fn port(name: &str) -> String {
    var(&format!("QUIZMAIL_IT_{name}_PORT"))
}

fn store(name: &str) -> PathBuf {
    PathBuf::from(var(&format!("QUIZMAIL_IT_{name}_STORE")))
}

fn user() -> String {
    var("QUIZMAIL_IT_USER")
}

fn password() -> String {
    var("QUIZMAIL_IT_PASSWORD")
}

fn ca_file() -> String {
    var("QUIZMAIL_IT_CA_FILE")
}

/// Runs the binary with `args`, the password in SMTP_PASSWORD, nothing else from the
/// environment, bounded by RUN_LIMIT.
fn quizmail(args: &[String], password: Option<&str>) -> Run {
    real::quizmail(args, password, RUN_LIMIT)
}

struct Send {
    port: String,
    tls: &'static str,
    auth: &'static str,
    rcpts: Vec<String>,
    ehlo: String,
    subject: String,
    body: String,
    ca_file: Option<String>,
    fingerprint: Option<String>,
    verbose: bool,
}

impl Send {
    fn new(tag: &str, port: String, tls: &'static str, auth: &'static str) -> Send {
        let id = unique(tag);
        Send {
            port,
            tls,
            auth,
            rcpts: vec![format!("{id}@example.test")],
            ehlo: format!("{id}.client.example.test"),
            subject: format!("interop {id}"),
            body: format!("Hello from the interop test {id}.\nSecond line.\n"),
            ca_file: Some(ca_file()),
            fingerprint: None,
            verbose: false,
        }
    }

    fn rcpt(&self) -> &str {
        &self.rcpts[0]
    }

    fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--server".into(),
            format!("127.0.0.1:{}", self.port),
            "--tls".into(),
            self.tls.into(),
            "--user".into(),
            user(),
            "--auth".into(),
            self.auth.into(),
            "--from".into(),
            SENDER.into(),
            "--subject".into(),
            self.subject.clone(),
            "--body".into(),
            self.body.clone(),
            "--ehlo".into(),
            self.ehlo.clone(),
            "--timeout".into(),
            "10".into(),
            "--retries".into(),
            "0".into(),
            "--json".into(),
        ];
        for r in &self.rcpts {
            a.push("--target-email".into());
            a.push(r.clone());
        }
        if let Some(ca) = &self.ca_file {
            a.push("--ca-file".into());
            a.push(ca.clone());
        }
        if let Some(fp) = &self.fingerprint {
            a.push("--tls-fingerprint".into());
            a.push(fp.clone());
        }
        if self.verbose {
            a.push("-v".into());
        }
        a
    }

    fn run(&self) -> Run {
        self.run_with_password(&password())
    }

    fn run_with_password(&self, pw: &str) -> Run {
        quizmail(&self.args(), Some(pw))
    }
}

/// Asserts the JSON report of a successful send (cli.md "JSON report").
fn assert_sent_report(run: &Run, send: &Send, mechanism: &str) -> Value {
    run.assert_exit(0);
    let j = run.json();
    let ctx = run.describe();
    assert_eq!(j["sent"], true, "{ctx}");
    assert_eq!(j["transport"], "smtp", "{ctx}");
    assert!(j["error"].is_null(), "{ctx}");
    if send.tls == "none" {
        assert!(
            j["tls"].is_null() || j["tls"]["mode"] == "none",
            "plaintext run reports TLS: {ctx}"
        );
    } else {
        assert_eq!(j["tls"]["mode"], send.tls, "{ctx}");
        let version = j["tls"]["version"].as_str().unwrap_or_default();
        assert!(
            version == "TLSv1.3" || version == "TLSv1.2",
            "tls.version {version:?}: {ctx}"
        );
    }
    assert_eq!(j["auth"], mechanism, "{ctx}");
    assert_eq!(j["envelope_from"], SENDER, "{ctx}");
    assert_eq!(j["accepted"], serde_json::json!([send.rcpt()]), "{ctx}");
    let mid = j["message_id"].as_str().unwrap_or_default();
    assert!(
        mid.starts_with('<') && mid.ends_with('>') && mid.contains('@'),
        "message_id {mid:?}: {ctx}"
    );
    assert_eq!(j["reply"]["code"], 250, "{ctx}");
    j
}

/// Checks a delivered message against what was sent, with mail-parser as the oracle.
fn assert_message(raw: &[u8], send: &Send, report: &Value) {
    let text = String::from_utf8_lossy(raw);
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .unwrap_or_else(|| panic!("stored message does not parse:\n{text}"));
    assert_eq!(msg.subject(), Some(send.subject.as_str()), "{text}");
    let mid = report["message_id"]
        .as_str()
        .unwrap_or_default()
        .trim_matches(['<', '>']);
    assert_eq!(msg.message_id(), Some(mid), "{text}");
    let body = msg.body_text(0).unwrap_or_default().replace("\r\n", "\n");
    assert!(
        body.contains(send.body.trim_end()),
        "body {body:?} lacks {:?}",
        send.body
    );
    assert!(!text.contains("\nBcc:"), "Bcc on the wire:\n{text}");
}

/// Every message aiosmtpd stored in `dir` with `rcpt` among its recipients: (metadata, bytes).
fn stored(dir: &Path, rcpt: &str) -> Vec<(Value, Vec<u8>)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let meta: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read meta")).expect("meta json");
        let hit = meta["rcpt_tos"]
            .as_array()
            .is_some_and(|r| r.iter().any(|a| a == rcpt));
        if hit {
            let eml = std::fs::read(path.with_extension("eml")).expect("read eml");
            found.push((meta, eml));
        }
    }
    found
}

/// Every AUTH command aiosmtpd saw from a client that said EHLO `ehlo`.
fn auth_attempts(dir: &Path, ehlo: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("auth.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["ehlo"] == ehlo)
        .collect()
}

/// Sends through an aiosmtpd server and checks report, envelope, AUTH and content.
fn send_ok_aiosmtpd(server: &str, tag: &str, tls: &'static str, auth: &'static str, mech: &str) {
    let send = Send::new(tag, port(server), tls, auth);
    let run = send.run();
    let report = assert_sent_report(&run, &send, mech);
    let msgs = stored(&store(server), send.rcpt());
    assert_eq!(
        msgs.len(),
        1,
        "server stored {} copies\n{}",
        msgs.len(),
        run.describe()
    );
    let (meta, eml) = &msgs[0];
    assert_eq!(meta["mail_from"], SENDER);
    assert_eq!(meta["rcpt_tos"], serde_json::json!([send.rcpt()]));
    assert_eq!(meta["auth_user"], user());
    assert_eq!(meta["auth_mechanism"], mech);
    assert_eq!(meta["ehlo"], send.ehlo.as_str());
    if tls == "none" {
        assert!(meta["tls_version"].is_null());
    } else {
        assert_eq!(meta["tls_version"], report["tls"]["version"]);
    }
    assert_message(eml, &send, &report);
}

/// Asserts a refused run: the exit status, `sent: false` and the error's exit code.
fn assert_failed(run: &Run, code: i32) {
    run.assert_exit(code);
    let j = run.json();
    assert_eq!(j["sent"], false, "{}", run.describe());
    assert_eq!(j["error"]["exit_code"], code, "{}", run.describe());
}

// ---- aiosmtpd: STARTTLS ---------------------------------------------------------------------

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn starttls_auth_plain() {
    send_ok_aiosmtpd("STARTTLS", "st-plain", "starttls", "plain", "PLAIN");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn starttls_auth_login() {
    send_ok_aiosmtpd("STARTTLS", "st-login", "starttls", "login", "LOGIN");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn starttls_auth_cram_md5() {
    send_ok_aiosmtpd("STARTTLS", "st-cram", "starttls", "cram-md5", "CRAM-MD5");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn starttls_auth_auto_picks_plain() {
    send_ok_aiosmtpd("STARTTLS", "st-auto", "starttls", "auto", "PLAIN");
}

// ---- aiosmtpd: implicit TLS -----------------------------------------------------------------

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn implicit_tls_auth_plain() {
    send_ok_aiosmtpd("IMPLICIT", "imp-plain", "implicit", "plain", "PLAIN");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn implicit_tls_auth_login() {
    send_ok_aiosmtpd("IMPLICIT", "imp-login", "implicit", "login", "LOGIN");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn implicit_tls_auth_cram_md5() {
    send_ok_aiosmtpd("IMPLICIT", "imp-cram", "implicit", "cram-md5", "CRAM-MD5");
}

// ---- aiosmtpd: plaintext --------------------------------------------------------------------

/// Over plaintext, `auto` must choose CRAM-MD5 even though PLAIN and LOGIN are offered too.
#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn plaintext_auth_auto_picks_cram_md5() {
    let send = Send::new("pl-auto", port("PLAIN_CRAM"), "none", "auto");
    let run = send.run();
    assert_sent_report(&run, &send, "CRAM-MD5");
    let attempts = auth_attempts(&store("PLAIN_CRAM"), &send.ehlo);
    let mechs: Vec<&str> = attempts
        .iter()
        .filter_map(|a| a["mechanism"].as_str())
        .collect();
    assert_eq!(mechs, ["CRAM-MD5"], "AUTH commands seen: {attempts:?}");
    let msgs = stored(&store("PLAIN_CRAM"), send.rcpt());
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0["auth_mechanism"], "CRAM-MD5");
}

/// A plaintext server offering only PLAIN/LOGIN: `auto` has no usable mechanism (78) and must
/// not send any AUTH, let alone the password in the clear.
#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn plaintext_auth_auto_never_sends_plain_in_clear() {
    let send = Send::new("pl-noplain", port("PLAIN_NOCRAM"), "none", "auto");
    let run = send.run();
    assert_failed(&run, 78);
    let attempts = auth_attempts(&store("PLAIN_NOCRAM"), &send.ehlo);
    assert!(attempts.is_empty(), "AUTH was sent: {attempts:?}");
    assert!(stored(&store("PLAIN_NOCRAM"), send.rcpt()).is_empty());
}

// ---- aiosmtpd: refusals ---------------------------------------------------------------------

/// One good and one rejected recipient: exit 69, the report lists both, the good one got it.
#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn rejected_recipient_among_accepted() {
    let mut send = Send::new("st-rej", port("STARTTLS"), "starttls", "plain");
    send.rcpts.push(REJECTED.into());
    let run = send.run();
    run.assert_exit(69);
    let j = run.json();
    let ctx = run.describe();
    assert_eq!(j["accepted"], serde_json::json!([send.rcpt()]), "{ctx}");
    let rejected = j["rejected"].as_array().expect("rejected is a list");
    assert_eq!(rejected.len(), 1, "{ctx}");
    assert_eq!(rejected[0]["address"], REJECTED, "{ctx}");
    assert_eq!(rejected[0]["code"], 550, "{ctx}");
    assert_eq!(rejected[0]["enhanced"], "5.1.1", "{ctx}");
    let msgs = stored(&store("STARTTLS"), send.rcpt());
    assert_eq!(
        msgs.len(),
        1,
        "the accepted recipient did not get it\n{ctx}"
    );
    assert_eq!(msgs[0].0["rcpt_tos"], serde_json::json!([send.rcpt()]));
    assert_message(&msgs[0].1, &send, &j);
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn wrong_password_exits_77() {
    let send = Send::new("st-badpw", port("STARTTLS"), "starttls", "plain");
    let run = send.run_with_password("not-the-password");
    assert_failed(&run, 77);
    assert_eq!(run.json()["error"]["kind"], "auth", "{}", run.describe());
    assert!(stored(&store("STARTTLS"), send.rcpt()).is_empty());
}

/// `--tls starttls` is required, never opportunistic: no STARTTLS offered means 78 and no
/// AUTH, no mail.
#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn starttls_required_but_not_offered_exits_78() {
    let send = Send::new("nostarttls", port("PLAIN_NOCRAM"), "starttls", "plain");
    let run = send.run();
    assert_failed(&run, 78);
    assert!(auth_attempts(&store("PLAIN_NOCRAM"), &send.ehlo).is_empty());
    assert!(stored(&store("PLAIN_NOCRAM"), send.rcpt()).is_empty());
}

/// The test CA is not among the built-in web roots: verification fails (78) before AUTH.
#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn untrusted_certificate_without_ca_file_exits_78() {
    let mut send = Send::new("st-untrusted", port("STARTTLS"), "starttls", "plain");
    send.ca_file = None;
    let run = send.run();
    assert_failed(&run, 78);
    assert_eq!(run.json()["error"]["kind"], "tls", "{}", run.describe());
    assert!(auth_attempts(&store("STARTTLS"), &send.ehlo).is_empty());
    assert!(stored(&store("STARTTLS"), send.rcpt()).is_empty());
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn tls_fingerprint_pins_the_leaf() {
    let mut send = Send::new("st-pin", port("STARTTLS"), "starttls", "plain");
    send.ca_file = None;
    send.fingerprint = Some(var("QUIZMAIL_IT_CERT_SHA256"));
    let run = send.run();
    assert_sent_report(&run, &send, "PLAIN");
    assert_eq!(stored(&store("STARTTLS"), send.rcpt()).len(), 1);
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn tls_fingerprint_mismatch_exits_78() {
    let mut send = Send::new("st-badpin", port("STARTTLS"), "starttls", "plain");
    send.ca_file = None;
    send.fingerprint = Some("00".repeat(32));
    let run = send.run();
    assert_failed(&run, 78);
    assert!(auth_attempts(&store("STARTTLS"), &send.ehlo).is_empty());
    assert!(stored(&store("STARTTLS"), send.rcpt()).is_empty());
}

// ---- aiosmtpd: -v transcript and --probe ------------------------------------------------------

/// The forms in which a password could leak into a transcript.
fn secret_forms(user: &str, pw: &str) -> Vec<String> {
    let mut forms = vec![pw.to_string()];
    for engine in [&STANDARD, &STANDARD_NO_PAD] {
        forms.push(engine.encode(pw));
        forms.push(engine.encode(format!("\0{user}\0{pw}")));
        forms.push(engine.encode(format!("{user}\0{user}\0{pw}")));
    }
    forms
}

fn transcript_hides_password(tag: &str, auth: &'static str) {
    let mut send = Send::new(tag, port("STARTTLS"), "starttls", auth);
    send.verbose = true;
    let run = send.run();
    run.assert_exit(0);
    let err = &run.stderr;
    assert!(
        err.lines().any(|l| l.starts_with("C: EHLO")),
        "no C: lines in -v output\n{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("S: 250")),
        "no S: lines in -v output\n{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("C: AUTH")),
        "no AUTH line in -v output\n{err}"
    );
    for form in secret_forms(&user(), &password()) {
        assert!(
            !err.contains(&form) && !run.stdout.contains(&form),
            "the password leaked as {form:?}\n{err}"
        );
    }
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn verbose_transcript_hides_password_plain() {
    transcript_hides_password("v-plain", "plain");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn verbose_transcript_hides_password_login() {
    transcript_hides_password("v-login", "login");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn verbose_transcript_hides_password_cram_md5() {
    transcript_hides_password("v-cram", "cram-md5");
}

/// All string values anywhere in a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn probe_json_lists_capabilities_and_certificate() {
    let ehlo = format!("{}.client.example.test", unique("probe"));
    let args: Vec<String> = [
        "--probe",
        "--json",
        "--server",
        &format!("127.0.0.1:{}", port("STARTTLS")),
        "--tls",
        "starttls",
        "--ca-file",
        &ca_file(),
        "--ehlo",
        &ehlo,
        "--timeout",
        "10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let run = quizmail(&args, None);
    run.assert_exit(0);
    let j = run.json();
    let mut all = Vec::new();
    strings(&j, &mut all);
    let upper: Vec<String> = all.iter().map(|s| s.to_ascii_uppercase()).collect();
    let has = |word: &str| upper.iter().any(|s| s.contains(word));
    for word in ["STARTTLS", "PLAIN", "LOGIN", "CRAM-MD5", "8BITMIME", "SIZE"] {
        assert!(has(word), "probe output lacks {word}\n{}", run.describe());
    }
    let fp = var("QUIZMAIL_IT_CERT_SHA256");
    let found = all.iter().any(|s| {
        s.chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .eq_ignore_ascii_case(&fp)
    });
    assert!(
        found,
        "probe output lacks the certificate SHA-256 {fp}\n{}",
        run.describe()
    );
    assert!(
        all.iter().any(|s| s.contains("localhost")),
        "probe output lacks the certificate subject\n{}",
        run.describe()
    );
    assert!(
        auth_attempts(&store("STARTTLS"), &ehlo).is_empty(),
        "probe sent AUTH"
    );
}

// ---- Postfix ----------------------------------------------------------------------------------

/// Waits (bounded) for Postfix to deliver the copy for `rcpt` into the maildir.
fn postfix_delivered(rcpt: &str) -> String {
    let maildir = PathBuf::from(var("QUIZMAIL_IT_POSTFIX_MAILDIR")).join("new");
    let marker = format!("Delivered-To: {rcpt}");
    let start = Instant::now();
    loop {
        if let Ok(entries) = std::fs::read_dir(&maildir) {
            for entry in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    if text.lines().any(|l| l.trim_end() == marker) {
                        return text;
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

/// Sends through Postfix; returns the -v transcript (stderr) after checking report and delivery.
fn postfix_send(
    port_name: &str,
    tag: &str,
    tls: &'static str,
    auth: &'static str,
    mech: &str,
) -> String {
    let mut send = Send::new(tag, port(port_name), tls, auth);
    send.verbose = true;
    let run = send.run();
    let report = assert_sent_report(&run, &send, mech);
    let delivered = postfix_delivered(send.rcpt());
    assert!(
        delivered.starts_with(&format!("Return-Path: <{SENDER}>")),
        "{delivered}"
    );
    // ESMTPSA: the message came over TLS (S) after authentication (A), RFC 3848.
    assert!(delivered.contains("with ESMTPSA id "), "{delivered}");
    if let Some(queue_id) = report["queue_id"].as_str() {
        assert!(
            delivered.contains(&format!("with ESMTPSA id {queue_id}")),
            "queue_id {queue_id} is not the one Postfix assigned\n{delivered}"
        );
    } else {
        panic!(
            "report has no queue_id for Postfix's \"queued as\"\n{}",
            run.describe()
        );
    }
    assert_message(delivered.as_bytes(), &send, &report);
    run.stderr
}

fn offered(transcript: &str, keyword: &str) -> bool {
    transcript
        .lines()
        .filter_map(|l| l.strip_prefix("S: 250"))
        // "S: 250-KEYWORD" and "S: 250 KEYWORD": skip the separator after the code.
        .any(|l| {
            l.get(1..)
                .is_some_and(|k| k.trim().eq_ignore_ascii_case(keyword))
        })
}

fn sent_command(transcript: &str, verb: &str) -> bool {
    transcript
        .lines()
        .any(|l| l.strip_prefix("C: ").is_some_and(|c| c.starts_with(verb)))
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_starttls_auth_plain() {
    postfix_send(
        "POSTFIX_SUBMISSION",
        "pf-plain",
        "starttls",
        "plain",
        "PLAIN",
    );
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_starttls_auth_login() {
    postfix_send(
        "POSTFIX_SUBMISSION",
        "pf-login",
        "starttls",
        "login",
        "LOGIN",
    );
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_starttls_auth_cram_md5() {
    postfix_send(
        "POSTFIX_SUBMISSION",
        "pf-cram",
        "starttls",
        "cram-md5",
        "CRAM-MD5",
    );
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_implicit_tls_auth_auto() {
    postfix_send("POSTFIX_SUBMISSIONS", "pf-imp", "implicit", "auto", "PLAIN");
}

/// PIPELINING and CHUNKING offered: the message goes with BDAT (RFC 3030), not DATA.
#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_pipelining_and_chunking_on() {
    let t = postfix_send("POSTFIX_SUBMISSION", "pf-on", "starttls", "plain", "PLAIN");
    assert!(offered(&t, "PIPELINING") && offered(&t, "CHUNKING"), "{t}");
    assert!(
        sent_command(&t, "BDAT"),
        "CHUNKING offered but BDAT not used\n{t}"
    );
    assert!(
        !sent_command(&t, "DATA"),
        "DATA used although CHUNKING was offered\n{t}"
    );
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_pipelining_off() {
    let t = postfix_send(
        "POSTFIX_NOPIPELINING",
        "pf-nopipe",
        "starttls",
        "plain",
        "PLAIN",
    );
    assert!(!offered(&t, "PIPELINING") && offered(&t, "CHUNKING"), "{t}");
    assert!(sent_command(&t, "BDAT"), "{t}");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_chunking_off() {
    let t = postfix_send(
        "POSTFIX_NOCHUNKING",
        "pf-nochunk",
        "starttls",
        "plain",
        "PLAIN",
    );
    assert!(offered(&t, "PIPELINING") && !offered(&t, "CHUNKING"), "{t}");
    assert!(sent_command(&t, "DATA") && !sent_command(&t, "BDAT"), "{t}");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_pipelining_and_chunking_off() {
    let t = postfix_send(
        "POSTFIX_NEITHER",
        "pf-neither",
        "starttls",
        "plain",
        "PLAIN",
    );
    assert!(
        !offered(&t, "PIPELINING") && !offered(&t, "CHUNKING"),
        "{t}"
    );
    assert!(sent_command(&t, "DATA") && !sent_command(&t, "BDAT"), "{t}");
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_rejected_recipient_among_accepted() {
    let mut send = Send::new("pf-rej", port("POSTFIX_SUBMISSION"), "starttls", "plain");
    send.rcpts.push(REJECTED.into());
    let run = send.run();
    run.assert_exit(69);
    let j = run.json();
    assert_eq!(
        j["accepted"],
        serde_json::json!([send.rcpt()]),
        "{}",
        run.describe()
    );
    assert_eq!(j["rejected"][0]["address"], REJECTED, "{}", run.describe());
    assert_eq!(j["rejected"][0]["code"], 550, "{}", run.describe());
    assert_eq!(j["rejected"][0]["enhanced"], "5.1.1", "{}", run.describe());
    let delivered = postfix_delivered(send.rcpt());
    assert_message(delivered.as_bytes(), &send, &j);
}

// ---- DSN (RFC 3461) and accounts ---------------------------------------------------------------

/// Postfix offers DSN: the parameters it recorded come back in the success notification its
/// bounce daemon writes to the envelope sender (RFC 3464): `Original-Envelope-Id` is our ENVID,
/// `Original-Recipient` our ORCPT, the notification exists at all because of NOTIFY=SUCCESS,
/// and RET=HDRS makes it return the headers only (`text/rfc822-headers`).
#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn postfix_records_the_dsn_parameters() {
    let mut send = Send::new("pf-dsn", port("POSTFIX_SUBMISSION"), "starttls", "plain");
    send.verbose = true;
    let id = unique("dsn-sender");
    let sender = format!("{id}@example.test");
    let envid = format!("env-{id}");
    let mut args = send.args();
    let from = args.iter().position(|a| a == "--from").expect("--from") + 1;
    args[from] = sender.clone();
    args.extend(
        [
            "--dsn-notify",
            "success,failure",
            "--dsn-ret",
            "hdrs",
            "--envid",
            &envid,
        ]
        .map(String::from),
    );
    let run = quizmail(&args, Some(&password()));
    run.assert_exit(0);
    assert!(offered(&run.stderr, "DSN"), "{}", run.describe());
    assert!(
        !run.stderr.contains("does not offer DSN"),
        "{}",
        run.describe()
    );
    let rcpt = send.rcpt().to_owned();
    // The message itself, and the notification to the sender.
    postfix_delivered(&rcpt);
    let dsn = postfix_delivered(&sender);
    let ctx = format!("{}\n--- notification\n{dsn}", run.describe());
    assert!(
        dsn.contains(&format!("Original-Envelope-Id: {envid}")),
        "{ctx}"
    );
    assert!(
        dsn.contains(&format!("Original-Recipient: rfc822;{rcpt}")),
        "{ctx}"
    );
    assert!(dsn.contains("Action: delivered"), "{ctx}");
    assert!(dsn.contains("text/rfc822-headers"), "{ctx}");
    assert!(
        !dsn.contains(send.body.lines().next().unwrap_or("-")),
        "{ctx}"
    );
}

/// aiosmtpd does not offer DSN: it records the MAIL and RCPT parameters it got, and there are
/// none of RFC 3461's; the run says so once on stderr.
#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn aiosmtpd_without_dsn_gets_the_message_without_parameters() {
    let send = Send::new("aio-dsn", port("STARTTLS"), "starttls", "plain");
    let mut args = send.args();
    args.extend(
        [
            "--dsn-notify",
            "failure",
            "--dsn-ret",
            "full",
            "--envid",
            "e1",
        ]
        .map(String::from),
    );
    let run = quizmail(&args, Some(&password()));
    run.assert_exit(0);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("does not offer DSN"))
        .collect();
    assert_eq!(
        warnings,
        ["quizmail: warning: the server does not offer DSN: sending without --dsn-notify, --dsn-ret, --envid"],
        "{}",
        run.describe()
    );
    let msgs = stored(&store("STARTTLS"), send.rcpt());
    assert_eq!(msgs.len(), 1, "{}", run.describe());
    let meta = &msgs[0].0;
    let params: Vec<String> = ["mail_options", "rcpt_options"]
        .iter()
        .flat_map(|k| meta[k].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_ascii_uppercase))
        .collect();
    for p in &params {
        assert!(
            !["NOTIFY=", "ORCPT=", "RET=", "ENVID="]
                .iter()
                .any(|k| p.starts_with(k)),
            "server recorded {p}: {meta}"
        );
    }
}

/// Two accounts: the default one would log in as a user the server does not know; --from
/// matches the other's `*@example.test`, and the server records its user and our envelope.
#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn aiosmtpd_sees_the_account_that_matches_from() {
    let id = unique("acct");
    let rcpt = format!("{id}@example.test");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    let server = format!("127.0.0.1:{}", port("STARTTLS"));
    std::fs::write(
        &config,
        format!(
            "tls = \"starttls\"\nca_file = {ca:?}\nauth = \"plain\"\ntimeout = 10\nretries = 0\n\
             default_account = \"other\"\n\n\
             [accounts.other]\nserver = {server:?}\nuser = \"stranger@other.test\"\nfrom = \"me@other.test\"\n\n\
             [accounts.quiz]\nserver = {server:?}\nuser = {user:?}\nfrom = \"*@example.test\"\n",
            ca = ca_file(),
            user = user(),
        ),
    )
    .expect("write config");
    let args: Vec<String> = [
        "--config",
        config.to_str().expect("UTF-8 path"),
        "--from",
        SENDER,
        "--to",
        &rcpt,
        "--subject",
        "accounts",
        "--body",
        "hello",
        "--ehlo",
        &format!("{id}.client.example.test"),
        "--json",
    ]
    .map(String::from)
    .to_vec();
    let run = quizmail(&args, Some(&password()));
    run.assert_exit(0);
    let msgs = stored(&store("STARTTLS"), &rcpt);
    assert_eq!(msgs.len(), 1, "{}", run.describe());
    let meta = &msgs[0].0;
    assert_eq!(meta["auth_user"], user(), "{meta}");
    assert_eq!(meta["mail_from"], SENDER, "{meta}");
}
