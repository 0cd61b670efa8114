//! cli.md "Diagnostics" end to end: each hint reproduced by its cause through the scripted
//! server (or a silent listener), checked as the one `hint: ...` line on stderr and as
//! `error.hint` in the `--json` report, with the exit status and what the client did after.
//! Also `--provider list` and an unknown provider, and XOAUTH2 with a token from the password
//! sources.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;
use support::server::{Script, Server};

const BIN: &str = env!("CARGO_BIN_EXE_quizmail");
const TIMEOUT_SECS: u64 = 2;
const RUN_LIMIT: Duration = Duration::from_secs(40);
const PASSWORD: &str = "pw-Hq4!hint-s3cr3t";
/// An access token in RFC 6750 characters, unusual enough that finding it is a leak.
const TOKEN: &str = "ya29.hint-T0k3n_e2e";
const GREET: &str = "S: 220 mx.quizmail.test ESMTP
     C: EHLO client.test
     S: 250-mx.quizmail.test";

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit status, exactly one `hint:` line saying `hint`, and the same text in
    /// the JSON report's `error.hint`; no secret anywhere.
    fn hints(&self, code: i32, hint: &str) -> Value {
        assert_eq!(self.code, code, "{}", self.describe());
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("hint: "))
            .collect();
        assert_eq!(lines.len(), 1, "one hint line\n{}", self.describe());
        assert!(lines[0].contains(hint), "{}", self.describe());
        let json: Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", self.describe()));
        assert_eq!(json["error"]["exit_code"], code);
        assert_eq!(
            json["error"]["hint"].as_str(),
            Some(&lines[0]["hint: ".len()..]),
            "{}",
            self.describe()
        );
        for secret in [PASSWORD, TOKEN] {
            assert!(
                !self.stdout.contains(secret) && !self.stderr.contains(secret),
                "{secret} printed\n{}",
                self.describe()
            );
        }
        json
    }

    fn no_hint(&self) {
        assert!(
            !self.stderr.contains("hint: "),
            "unexpected hint\n{}",
            self.describe()
        );
    }
}

/// Runs the binary in a fresh home against `host:port` with a plain send, `--json`, no
/// retries and a short timeout, plus `extra`.
fn run(host: &str, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Outcome {
    let home = tempfile::tempdir().expect("home");
    let server = format!("{host}:{port}");
    let mut args = vec![
        "--server",
        &server,
        "--timeout",
        "2",
        "--retries",
        "0",
        "--ehlo",
        "client.test",
        "--from",
        "quiz@example.com",
        "--to",
        "ada@example.com",
        "--subject",
        "e2e",
        "--body",
        "hello",
        "--json",
    ];
    args.extend_from_slice(extra);
    run_args(&args, env, home.path())
}

fn run_args(args: &[&str], env: &[(&str, &str)], home: &std::path::Path) -> Outcome {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("SMTP_PASSWORD", PASSWORD)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("start quizmail");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("quizmail {args:?} ran longer than {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        code: status.code().expect("exit code"),
        elapsed: started.elapsed(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Runs the client against `script` with `extra` flags; checks the server saw the script.
fn against(script: &str, extra: &[&str], env: &[(&str, &str)]) -> Outcome {
    let server = Server::one(Script::parse(script));
    let out = run("127.0.0.1", server.port(), extra, env);
    server.finish();
    out
}

/// An AUTH PLAIN refusal in the clear (`--auth plain` names it, so it goes without TLS).
fn auth_plain_refused(reply: &str, extra: &[&str]) -> Outcome {
    let script = format!(
        "{GREET}
         S: 250 AUTH PLAIN LOGIN
         C: AUTH PLAIN *
         {reply}
         C: QUIT
         S: 221 2.0.0 Bye"
    );
    let mut args = vec![
        "--tls",
        "none",
        "--user",
        "ada@example.com",
        "--auth",
        "plain",
    ];
    args.extend_from_slice(extra);
    against(&script, &args, &[])
}

#[test]
fn implicit_tls_on_a_plaintext_port_is_recognised_at_once() {
    // The server greets in plaintext; the client's ClientHello gets `220 ...` back.
    let out = against(
        "S: 220 mx.quizmail.test ESMTP
         C: <anything>",
        &["--tls", "implicit"],
        &[],
    );
    let json = out.hints(
        76,
        "this port speaks plaintext first: use --tls starttls (port 587)",
    );
    assert_eq!(json["error"]["kind"], "protocol");
    assert!(
        out.elapsed < Duration::from_secs(TIMEOUT_SECS),
        "waited for the timeout: {:?}",
        out.elapsed
    );
}

#[test]
fn starttls_on_port_465_times_out_with_the_implicit_hint() {
    // A listener that never accepts says nothing, as an implicit-TLS server does to a client
    // waiting for a greeting. Port 465 needs privileges: an address of its own in 127/8 keeps
    // it clear of anything else on the machine.
    let listener = match TcpListener::bind("127.46.5.1:465") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipped: cannot listen on 127.46.5.1:465 ({e})");
            return;
        }
    };
    let out = run("127.46.5.1", 465, &["--tls", "starttls"], &[]);
    out.hints(75, "port 465 expects TLS at once: use --tls implicit");
    assert!(out.elapsed >= Duration::from_secs(TIMEOUT_SECS));
    drop(listener);
    // The same silence on another port is not blamed on the TLS mode.
    let (_silent, addr) = support::silent_listener();
    let out = run("127.0.0.1", addr.port(), &["--tls", "starttls"], &[]);
    assert_eq!(out.code, 75, "{}", out.describe());
    out.no_hint();
}

#[test]
fn gmail_wants_an_app_password() {
    let out = auth_plain_refused(
        "S: 534-5.7.9 Application-specific password required. For more information, go to
         S: 534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor",
        &[],
    );
    let json = out.hints(77, "create an app password");
    assert_eq!(json["error"]["kind"], "auth");
}

#[test]
fn gmail_refuses_the_password() {
    let refusal = "S: 535-5.7.8 Username and Password not accepted. For more information, go to
                   S: 535 5.7.8  https://support.google.com/mail/?p=BadCredentials";
    // --provider gmail, its server replaced by the scripted one.
    let out = auth_plain_refused(refusal, &["--provider", "gmail"]);
    out.hints(77, "wrong password or app password");
    // The same reply from another server is only an authentication failure.
    auth_plain_refused(refusal, &[]).no_hint();
}

#[test]
fn microsoft_has_smtp_auth_disabled() {
    for reply in [
        "S: 535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
        "S: 550 5.7.30 Basic authentication is not supported for Client Submission.",
    ] {
        let out = auth_plain_refused(reply, &[]);
        out.hints(77, "use OAuth2 (--oauth2-login), or ask the tenant admin to enable SMTP AUTH");
    }
}

/// base64 of the XOAUTH2 initial response for ada@example.com and TOKEN (Google's format:
/// `user=` ^A `auth=Bearer ` token ^A^A).
fn xoauth2_response() -> String {
    BASE64.encode(format!(
        "user=ada@example.com\x01auth=Bearer {TOKEN}\x01\x01"
    ))
}

#[test]
fn xoauth2_with_a_token_from_the_password_sources() {
    let script = format!(
        "{GREET}
         S: 250 AUTH PLAIN LOGIN XOAUTH2
         C: AUTH XOAUTH2 {}
         S: 235 2.7.0 Accepted
         C: MAIL FROM:<quiz@example.com>*
         S: 250 2.1.0 Ok
         C: RCPT TO:<ada@example.com>
         S: 250 2.1.5 Ok
         C: DATA
         S: 354 go ahead
         C: <body dot>
         C: .
         S: 250 2.0.0 Ok: queued as 1A2B
         C: QUIT
         S: 221 2.0.0 Bye",
        xoauth2_response()
    );
    let out = against(
        &script,
        &[
            "--tls",
            "none",
            "--user",
            "ada@example.com",
            "--auth",
            "xoauth2",
            "-v",
        ],
        &[("SMTP_PASSWORD", TOKEN)],
    );
    assert_eq!(out.code, 0, "{}", out.describe());
    assert!(
        out.stderr.contains("C: AUTH XOAUTH2 <redacted>"),
        "{}",
        out.describe()
    );
    assert!(!out.stderr.contains(TOKEN) && !out.stderr.contains(&xoauth2_response()));
    let json: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["auth"], "XOAUTH2");
}

#[test]
fn a_refused_token_carries_the_servers_status_and_the_scope_hint() {
    // RFC 7628 §3.2.2 error challenge, answered with an empty line for XOAUTH2.
    let challenge = BASE64.encode(
        r#"{"status":"invalid_token","scope":"https://outlook.office.com/SMTP.Send","openid-configuration":"https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"}"#,
    );
    let script = format!(
        "{GREET}
         S: 250 AUTH LOGIN XOAUTH2
         C: AUTH XOAUTH2 {}
         S: 334 {challenge}
         C:
         S: 535 5.7.3 Authentication unsuccessful
         C: QUIT
         S: 221 2.0.0 Bye",
        xoauth2_response()
    );
    let out = against(
        &script,
        &[
            "--tls",
            "none",
            "--user",
            "ada@example.com",
            "--auth",
            "xoauth2",
        ],
        &[("SMTP_PASSWORD", TOKEN)],
    );
    let json = out.hints(77, "lacks the SMTP.Send scope");
    let message = json["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("invalid_token"), "{message}");
    assert!(
        message.contains("scope https://outlook.office.com/SMTP.Send"),
        "{message}"
    );
}

#[test]
fn relay_refused_without_user_asks_for_a_login() {
    for (at_mail, reply) in [
        (true, "S: 530 5.7.0 Authentication required"),
        (false, "S: 554 5.7.1 <ada@example.com>: Relay access denied"),
        (false, "S: 550 5.7.1 Unable to relay"),
    ] {
        let exchange = if at_mail {
            format!("C: MAIL FROM:<quiz@example.com>*\n{reply}")
        } else {
            format!(
                "C: MAIL FROM:<quiz@example.com>*
                 S: 250 2.1.0 Ok
                 C: RCPT TO:<ada@example.com>
                 {reply}"
            )
        };
        let script = format!(
            "{GREET}
             S: 250 8BITMIME
             {exchange}
             * tail"
        );
        let out = against(&script, &["--tls", "none"], &[]);
        let code = if reply.contains("530") { 77 } else { 69 };
        out.hints(code, "this server wants you to log in: pass --user");
    }
}

#[test]
fn send_as_refused_names_the_from_address() {
    for reply in [
        "S: 550 5.7.60 SMTP; Client does not have permissions to send as this sender",
        "S: 550 5.7.1 Client does not have permissions to send as this sender",
    ] {
        // Without --user too: "send as" is about From, not about logging in.
        let script = format!(
            "{GREET}
             S: 250 8BITMIME
             C: MAIL FROM:<quiz@example.com>*
             {reply}
             * tail"
        );
        let out = against(&script, &["--tls", "none"], &[]);
        out.hints(69, "the From address is not one this account may send as");
    }
}

#[test]
fn throttling_says_wait_and_rate() {
    for (reply, tail) in [
        ("S: 421 4.7.0 Try again later, closing connection.", ""),
        (
            "S: 454 4.7.0 Too many login attempts, please try again later",
            "* tail",
        ),
    ] {
        let exchange = if reply.starts_with("S: 454") {
            format!("S: 250 AUTH PLAIN\nC: AUTH PLAIN *\n{reply}\n{tail}")
        } else {
            format!("S: 250 AUTH PLAIN\nC: AUTH PLAIN *\n{reply}\nEOF")
        };
        let script = format!("{GREET}\n{exchange}");
        let out = against(
            &script,
            &[
                "--tls",
                "none",
                "--user",
                "ada@example.com",
                "--auth",
                "plain",
            ],
            &[],
        );
        let json = out.hints(75, "wait before retrying; for batches, --rate");
        assert_eq!(json["error"]["kind"], "temporary");
    }
}

#[test]
fn an_ordinary_refusal_has_no_hint() {
    let out = auth_plain_refused("S: 535 5.7.8 Authentication credentials invalid", &[]);
    assert_eq!(out.code, 77, "{}", out.describe());
    out.no_hint();
    let json: Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(json["error"]["hint"], Value::Null);
}

#[test]
fn provider_list_and_unknown_providers() {
    let home = tempfile::tempdir().expect("home");
    let out = run_args(&["--provider", "list"], &[], home.path());
    assert_eq!(out.code, 0, "{}", out.describe());
    for row in [
        "gmail      smtp.gmail.com",
        "office365  smtp.office365.com           587  starttls  microsoft (tenant organizations)",
        "mailtrap   sandbox.smtp.mailtrap.io    2525  starttls",
    ] {
        assert!(out.stdout.contains(row), "{row}\n{}", out.describe());
    }
    let out = run_args(&["--provider", "list", "--body", "x"], &[], home.path());
    assert_eq!(out.code, 64, "{}", out.describe());
    let out = run_args(&["--provider", "hotmail", "--body", "x"], &[], home.path());
    assert_eq!(out.code, 64, "{}", out.describe());
    assert!(out
        .stderr
        .contains("gmail, outlook, office365, yahoo, aol, icloud, fastmail, mailtrap"));
    let out = run_args(&["--body", "x"], &[("SMTP_PROVIDER", "nope")], home.path());
    assert_eq!(out.code, 64, "{}", out.describe());
}
