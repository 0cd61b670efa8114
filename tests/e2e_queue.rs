//! The outbox as a queue, end to end (cli.md "The outbox: nothing is lost"): the binary against
//! the scripted server on 127.0.0.1 with a fault at every step of the dialogue, and for each
//! fault where the message ends up (waiting, failed/, unconfirmed/) and that `--flush` never
//! sends anything twice. Also crash safety (a flush killed half way), two flushes at once,
//! an outbox that cannot be written (73), grade and quiz mode, and `--flush --list`.

mod support;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::{Options, Script, Server, Transcript};
use support::smtp::{Fault, GoodServer, Stage};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_quizmail");
const PASSWORD: &str = "pw-Qu3ue-s3cr3t";
const FROM: &str = "quiz@example.com";
const TO: &str = "ada@example.com";
const EHLO: &str = "client.test";
const RUN_LIMIT: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------------------------
// Running the binary

struct Home {
    dir: TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().expect("temporary home");
        std::fs::create_dir_all(dir.path().join("work")).expect("work dir");
        Home { dir }
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn outbox(&self) -> PathBuf {
        self.work().join("outbox")
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.work().join(name);
        std::fs::write(&path, contents).expect("write test file");
        path
    }

    fn command(&self, args: &[OsString]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("SMTP_PASSWORD", PASSWORD)
            .env("USER", "tester")
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .current_dir(self.work())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn run(&self, args: &[&str]) -> Outcome {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let child = self.command(&args).spawn().expect("start quizmail");
        wait(child, args)
    }

    /// A plain message to `to` through `port` (no retries, a short timeout).
    fn send(&self, port: u16, to: &[&str], extra: &[&str]) -> Outcome {
        let mut args = server_args(port);
        args.extend(["--from", FROM, "--subject", "queued"].map(String::from));
        if !extra.contains(&"--body-file") {
            args.extend(["--body", "hello"].map(String::from));
        }
        for t in to {
            args.extend(["--to".to_owned(), (*t).to_owned()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn flush(&self, port: u16, extra: &[&str]) -> Outcome {
        let mut args = server_args(port);
        args.push("--flush".into());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The `.eml` files of a folder of the outbox (`""` for the waiting ones), sorted.
    fn kept(&self, folder: &str) -> Vec<PathBuf> {
        let Ok(read) = std::fs::read_dir(self.outbox().join(folder)) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = read
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
    }

    /// The sidecar of a kept message.
    fn record(&self, eml: &Path) -> Value {
        let text = std::fs::read_to_string(eml.with_extension("json")).expect("sidecar");
        assert!(
            !text.contains(PASSWORD),
            "a credential in the sidecar: {text}"
        );
        serde_json::from_str(&text).expect("sidecar JSON")
    }
}

fn server_args(port: u16) -> Vec<String> {
    [
        "--server",
        &format!("127.0.0.1:{port}"),
        "--tls",
        "none",
        "--timeout",
        "2",
        "--ehlo",
        EHLO,
        "--retries",
        "0",
        "--json",
    ]
    .map(String::from)
    .to_vec()
}

fn wait(mut child: Child, args: Vec<OsString>) -> Outcome {
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut buf = String::new();
        let _ = stdout.read_to_string(&mut buf);
        buf
    });
    let err = thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("quizmail {args:?} ran longer than {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        args,
    }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    args: Vec<OsString>,
}

impl Outcome {
    fn describe(&self) -> String {
        format!(
            "quizmail {:?}\nexit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    fn code(&self, want: i32) -> &Outcome {
        assert_eq!(self.code, want, "{}", self.describe());
        self
    }

    fn says(&self, parts: &[&str]) -> &Outcome {
        for p in parts {
            assert!(
                self.stderr.contains(p),
                "stderr lacks {p:?}\n{}",
                self.describe()
            );
        }
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.describe()))
    }
}

fn quick() -> Options {
    Options {
        accept_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(5),
        finish_timeout: Duration::from_secs(8),
    }
}

fn finish(server: Server) -> Transcript {
    let t = server.finish();
    assert!(t.finished, "the scripted server did not stop");
    assert!(t.mismatches().is_empty(), "{}", t.mismatches().join("\n"));
    t
}

/// Message-IDs of everything the servers took, with how often each came.
fn received_ids(transcripts: &[&Transcript]) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for t in transcripts {
        for c in &t.connections {
            for m in &c.messages {
                let text = String::from_utf8_lossy(&m.content);
                let id = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Message-ID: "))
                    .expect("a Message-ID")
                    .trim()
                    .to_owned();
                *ids.entry(id).or_default() += 1;
            }
        }
    }
    ids
}

/// The greeting and an EHLO reply without PIPELINING, so the dialogue is one line at a time.
fn greet() -> Script {
    Script::new()
        .reply("220 mx.quizmail.test ESMTP")
        .expect(&format!("EHLO {EHLO}"))
        .reply("250-mx.quizmail.test\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES")
}

fn open_transaction(script: Script, first: bool, rcpt: &str) -> Script {
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
}

/// Queues `n` messages against a closed port; returns their Message-IDs in order.
fn queue_messages(home: &Home, n: usize) -> Vec<String> {
    let port = support::closed_port().port();
    (0..n)
        .map(|_| {
            let out = home.send(port, &[TO], &[]);
            out.code(75);
            out.json()["message_id"]
                .as_str()
                .expect("message_id")
                .to_owned()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Where each fault leaves the message

#[test]
fn a_refused_connection_keeps_the_message_and_flush_sends_it_once() {
    let home = Home::new();
    let port = support::closed_port().port();
    let out = home.send(port, &[TO], &[]);
    out.code(75)
        .says(&["NOT sent", "send it with: quizmail --flush"]);
    let json = out.json();
    let path = home
        .work()
        .join(json["outbox_path"].as_str().expect("outbox_path"));
    assert_eq!(home.kept("").as_slice(), std::slice::from_ref(&path));
    assert!(out.stderr.contains(&path.display().to_string()) || out.stderr.contains("outbox/"));
    let record = home.record(&path);
    assert_eq!(record["pending"], serde_json::json!([TO]));
    assert_eq!(record["delivered"], serde_json::json!([]));
    assert_eq!(record["envelope_from"], FROM);
    assert_eq!(record["message_id"], json["message_id"]);
    assert_eq!(record["attempts"], 1);
    assert!(record["next_attempt_at"].as_u64() > record["created_at"].as_u64());
    assert!(record["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    let kept = std::fs::read(&path).expect("kept message");

    // Not due yet: --due leaves it alone and connects to nothing.
    home.flush(port, &["--due"]).code(0).says(&["Nothing due"]);
    assert_eq!(home.kept("").len(), 1);

    let server = Server::start_with(
        vec![GoodServer::new().message(Some(FROM), &[TO]).script()],
        quick(),
    );
    let out = home.flush(server.port(), &[]);
    out.code(0);
    let t = finish(server);
    assert_eq!(t.only().messages.len(), 1);
    assert_eq!(t.only().messages[0].content, kept, "sent exactly as kept");
    assert!(home.kept("").is_empty());
    assert!(!path.with_extension("json").exists());
    // Nothing left: a second flush connects to nothing.
    home.flush(port, &[]).code(0).says(&["Nothing waiting"]);
}

#[test]
fn a_421_greeting_before_mail_keeps_it_waiting() {
    let home = Home::new();
    let server = GoodServer::new()
        .fault(Stage::Greeting, Fault::Reply("421 4.3.2 Not now".into()))
        .start();
    home.send(server.port(), &[TO], &[])
        .code(75)
        .says(&["NOT sent"]);
    finish(server);
    assert_eq!(home.kept("").len(), 1);
    assert!(home.kept("failed").is_empty() && home.kept("unconfirmed").is_empty());
}

#[test]
fn mixed_recipients_only_the_deferred_wait_and_nobody_gets_it_twice() {
    let home = Home::new();
    let (a, b, c) = ("a@example.com", "b@example.com", "c@example.com");
    let server = GoodServer::new()
        .message(Some(FROM), &[a, b, c])
        .fault(
            Stage::Rcpt(0, 1),
            Fault::Reply("451 4.2.0 Mailbox busy".into()),
        )
        .fault(
            Stage::Rcpt(0, 2),
            Fault::Reply("550 5.1.1 No such user".into()),
        )
        .start();
    let out = home.send(server.port(), &[a, b, c], &[]);
    out.code(69);
    let t1 = finish(server);
    assert_eq!(t1.only().messages.len(), 1);
    let waiting = home.kept("");
    assert_eq!(waiting.len(), 1);
    let record = home.record(&waiting[0]);
    assert_eq!(record["pending"], serde_json::json!([b]));
    assert_eq!(record["delivered"], serde_json::json!([a]));
    let failed = home.kept("failed");
    assert_eq!(failed.len(), 1);
    let record = home.record(&failed[0]);
    assert_eq!(record["pending"], serde_json::json!([c]));
    assert!(record["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("550")));

    // The flush sends to b alone.
    let server = Server::start_with(
        vec![GoodServer::new().message(Some(FROM), &[b]).script()],
        quick(),
    );
    home.flush(server.port(), &[]).code(0);
    let t2 = finish(server);
    assert!(!t2.only().text().contains(&format!("RCPT TO:<{a}>")));
    assert!(!t2.only().text().contains(&format!("RCPT TO:<{c}>")));
    assert!(home.kept("").is_empty());
    assert_eq!(home.kept("failed").len(), 1, "failed/ is never retried");
}

#[test]
fn a_drop_after_354_during_the_data_keeps_it_waiting_and_flush_completes_it() {
    let home = Home::new();
    // A server that says 354, reads a little of the body and drops the connection: closing
    // with unread bytes resets it, so the client's next writes fail before the final dot.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dropper = thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut w = stream;
        let mut line = String::new();
        w.write_all(b"220 mx.quizmail.test ESMTP\r\n")
            .expect("greet");
        for reply in [
            "250 mx.quizmail.test",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 Go ahead",
        ] {
            line.clear();
            reader.read_line(&mut line).expect("command");
            w.write_all(format!("{reply}\r\n").as_bytes())
                .expect("reply");
        }
        let mut some = [0u8; 4096];
        let _ = reader.read(&mut some);
    });
    // A body large enough that the socket fails before its end (and its final dot) is written.
    let big = home.file("big.txt", "0123456789abcdef\n".repeat(1 << 18).as_bytes());
    let big = big.to_str().expect("path");
    let out = home.send(port, &[TO], &["--body-file", big]);
    out.code(75).says(&["NOT sent"]);
    dropper.join().expect("the dropping server");
    assert_eq!(home.kept("").len(), 1, "{}", out.describe());
    assert!(home.kept("unconfirmed").is_empty());
    let server = Server::start_with(
        vec![GoodServer::new().message(Some(FROM), &[TO]).script()],
        quick(),
    );
    home.flush(server.port(), &[]).code(0);
    assert_eq!(finish(server).only().messages.len(), 1);
    assert!(home.kept("").is_empty());
}

#[test]
fn a_drop_after_the_final_dot_is_unconfirmed_and_never_resent() {
    let home = Home::new();
    let server = GoodServer::new()
        .fault(Stage::DataEnd(0), Fault::Disconnect)
        .start();
    let out = home.send(server.port(), &[TO], &[]);
    out.code(75).says(&["may have been delivered"]);
    server.finish();
    assert!(home.kept("").is_empty());
    let unconfirmed = home.kept("unconfirmed");
    assert_eq!(unconfirmed.len(), 1);
    assert_eq!(
        out.json()["outbox_path"]
            .as_str()
            .map(|p| home.work().join(p)),
        Some(unconfirmed[0].clone())
    );
    assert_eq!(
        home.record(&unconfirmed[0])["pending"],
        serde_json::json!([TO])
    );
    let port = support::closed_port().port();
    home.flush(port, &[]).code(0).says(&["Nothing waiting"]);
}

#[test]
fn a_5xx_to_the_end_of_data_goes_to_failed_with_the_reply() {
    let home = Home::new();
    let server = GoodServer::new()
        .fault(Stage::DataEnd(0), Fault::Reply("554 5.7.1 Spam".into()))
        .start();
    home.send(server.port(), &[TO], &[])
        .code(69)
        .says(&["failed"]);
    finish(server);
    assert!(home.kept("").is_empty());
    let failed = home.kept("failed");
    assert_eq!(failed.len(), 1);
    assert!(home.record(&failed[0])["last_error"]
        .as_str()
        .is_some_and(|e| e.contains("554")));
}

#[test]
fn an_outbox_that_cannot_be_written_is_exit_73_and_says_so() {
    let home = Home::new();
    let blocker = home.file("not-a-dir", b"x");
    let port = support::closed_port().port();
    let out = home.send(port, &[TO], &["--outbox", blocker.to_str().expect("path")]);
    out.code(73)
        .says(&["NOT sent", "could NOT be kept", "not-a-dir"]);
    assert_eq!(out.json()["error"]["exit_code"], 73);
}

// ---------------------------------------------------------------------------------------------
// --flush: order, crash safety, two at once, --list, --max-age

#[test]
fn flush_sends_in_creation_order_over_one_connection() {
    let home = Home::new();
    let ids = queue_messages(&home, 3);
    let mut script = greet();
    for i in 0..3 {
        script = open_transaction(script, i == 0, TO).reply("250 2.0.0 Ok: queued");
    }
    let script = script.expect("QUIT").reply("221 2.0.0 Bye").close();
    let server = Server::start_with(vec![script], quick());
    let out = home.flush(server.port(), &[]);
    out.code(0);
    assert_eq!(out.json()["messages"].as_array().map(Vec::len), Some(3));
    let t = finish(server);
    let got: Vec<String> = t
        .only()
        .messages
        .iter()
        .map(|m| message_id(&m.content))
        .collect();
    assert_eq!(got, ids);
    assert!(home.kept("").is_empty());
}

fn message_id(content: &[u8]) -> String {
    String::from_utf8_lossy(content)
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("Message-ID")
        .trim()
        .to_owned()
}

#[test]
fn a_flush_killed_half_way_loses_nothing_and_duplicates_nothing() {
    let home = Home::new();
    let ids = queue_messages(&home, 3);
    // The first message is delivered; the second's end of data never gets its reply.
    let script = open_transaction(greet(), true, TO)
        .reply("250 2.0.0 Ok: queued")
        .then_stall();
    let server = Server::start_with(vec![script], quick());
    let mut args: Vec<OsString> = server_args(server.port())
        .into_iter()
        .map(Into::into)
        .collect();
    args.push("--flush".into());
    // The stalled reply must outlast the kill.
    let at = args
        .iter()
        .position(|a| a == "--timeout")
        .expect("--timeout")
        + 1;
    args[at] = "30".into();
    let mut child = home.command(&args).spawn().expect("start the flush");
    // Wait until the second message's transaction is open, then kill the flush.
    let started = Instant::now();
    loop {
        let marked = home
            .kept("")
            .iter()
            .filter(|p| home.record(p)["sending_since"].is_u64())
            .count();
        let first_gone = home.kept("").len() == 2;
        if marked == 1 && first_gone {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let out = wait(child, args);
            panic!("the flush never got going\n{}", out.describe());
        }
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(300));
    child.kill().expect("SIGKILL the flush");
    let _ = child.wait();
    let t1 = server.finish();

    let server = Server::start_with(
        vec![GoodServer::new().message(Some(FROM), &[TO]).script()],
        quick(),
    );
    let out = home.flush(server.port(), &[]);
    out.code(0).says(&["may have been delivered"]);
    let t2 = finish(server);
    let got = received_ids(&[&t1, &t2]);
    assert_eq!(got.get(&ids[0]), Some(&1), "{got:?}");
    assert_eq!(got.get(&ids[2]), Some(&1), "{got:?}");
    assert!(got.values().all(|&n| n == 1), "{got:?}");
    assert!(home.kept("").is_empty());
    let unconfirmed = home.kept("unconfirmed");
    assert_eq!(unconfirmed.len(), 1);
    assert_eq!(home.record(&unconfirmed[0])["message_id"], ids[1].as_str());
}

trait Stall {
    fn then_stall(self) -> Script;
}

impl Stall for Script {
    /// RSET and the next transaction up to its body, then silence: no reply to the final dot.
    fn then_stall(self) -> Script {
        open_transaction(self, false, TO).stall(Duration::from_secs(30))
    }
}

#[test]
fn two_flushes_started_together_send_each_message_once() {
    let home = Home::new();
    let ids = queue_messages(&home, 3);
    let mut script = greet();
    for i in 0..3 {
        script = open_transaction(script, i == 0, TO).reply("250 2.0.0 Ok: queued");
    }
    let script = script.expect("QUIT").reply("221 2.0.0 Bye").close();
    let server = Server::start_with(vec![script], quick());
    let mut args: Vec<OsString> = server_args(server.port())
        .into_iter()
        .map(Into::into)
        .collect();
    args.push("--flush".into());
    let a = home.command(&args).spawn().expect("first flush");
    let b = home.command(&args).spawn().expect("second flush");
    let (a, b) = (wait(a, args.clone()), wait(b, args));
    a.code(0);
    b.code(0);
    let t = finish(server);
    let got = received_ids(&[&t]);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(ids.iter().all(|id| got.get(id) == Some(&1)), "{got:?}");
    assert!(home.kept("").is_empty());
}

#[test]
fn flush_list_shows_every_folder_and_max_age_moves_old_ones_to_failed() {
    let home = Home::new();
    let ids = queue_messages(&home, 1);
    let port = support::closed_port().port();
    let out = home.run(&["--flush", "--list"]);
    out.code(0);
    assert!(out.stdout.contains(&ids[0]), "{}", out.describe());
    // Age it by ten days.
    let path = &home.kept("")[0];
    let mut record = home.record(path);
    let created = record["created_at"].as_u64().expect("created_at");
    record["created_at"] = (created - 10 * 86_400).into();
    std::fs::write(path.with_extension("json"), record.to_string()).expect("rewrite");
    home.flush(port, &[]).code(69).says(&["--max-age"]);
    assert!(home.kept("").is_empty());
    assert_eq!(home.kept("failed").len(), 1);
    let out = home.run(&["--flush", "--list"]);
    assert!(out.stdout.contains("failed"), "{}", out.describe());
}

// ---------------------------------------------------------------------------------------------
// Quiz and grade modes keep their results the same way

#[test]
fn quiz_results_that_cannot_be_sent_are_kept() {
    let home = Home::new();
    let port = support::closed_port().port();
    let quiz = home.file("quiz.toml", QUIZ.as_bytes());
    let mut args = server_args(port);
    args.extend(
        [
            "--answers",
            "a",
            "--name",
            "Ada",
            "--yes",
            "--from",
            FROM,
            "--to",
            TO,
        ]
        .map(String::from),
    );
    args.push("--quiz".into());
    args.push(quiz.display().to_string());
    let out = home.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    out.code(75).says(&["NOT sent", "quizmail --flush"]);
    assert_eq!(home.kept("").len(), 1);
}

const QUIZ: &str = r#"title = "Queue quiz"
[[questions]]
prompt = "First?"
choices = ["right", "wrong"]
answer = "a"
"#;

#[test]
fn a_class_cut_off_half_way_is_completed_by_flush_without_a_duplicate() {
    let home = Home::new();
    let quiz = home.file("quiz.toml", QUIZ.as_bytes());
    let students = ["ada@example.com", "bob@example.com", "cy@example.com"];
    let mut roster = String::from("name,email,answers\n");
    for (i, s) in students.iter().enumerate() {
        roster.push_str(&format!("Student {i},{s},a\n"));
    }
    let roster = home.file("roster.csv", roster.as_bytes());
    // Two students' messages go through, then the server drops the connection for good.
    let mut script = greet();
    for (i, s) in students.iter().take(2).enumerate() {
        script = open_transaction(script, i == 0, s).reply("250 2.0.0 Ok: queued");
    }
    let script = script.expect("RSET").close();
    let server = Server::start_with(vec![script], quick());
    let mut args = server_args(server.port());
    args.extend(["--from", FROM, "--to", "teacher@example.com", "--quiz"].map(String::from));
    args.push(quiz.display().to_string());
    args.push("--roster".into());
    args.push(roster.display().to_string());
    let out = home.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    out.code(75);
    let t1 = server.finish();
    assert_eq!(home.kept("").len(), 2, "{}", out.describe());

    let mut script = greet();
    script = open_transaction(script, true, students[2]).reply("250 2.0.0 Ok: queued");
    script = open_transaction(script, false, "teacher@example.com").reply("250 2.0.0 Ok: queued");
    let script = script.expect("QUIT").reply("221 2.0.0 Bye").close();
    let server = Server::start_with(vec![script], quick());
    home.flush(server.port(), &[]).code(0);
    let t2 = finish(server);
    let got = received_ids(&[&t1, &t2]);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.values().all(|&n| n == 1), "{got:?}");
    assert!(home.kept("").is_empty());
}

// ---------------------------------------------------------------------------------------------
// sendmail mode

impl Home {
    /// `sendmail ARGS` through a symlink named sendmail, `stdin` on standard input, settings
    /// from the environment and `config`.
    fn sendmail(&self, port: u16, config: &str, args: &[&str], stdin: &[u8]) -> Outcome {
        use std::io::Write;
        let link = self.dir.path().join("sendmail");
        if !link.exists() {
            std::os::unix::fs::symlink(BIN, &link).expect("sendmail symlink");
        }
        let config_path = self.file("config.toml", config.as_bytes());
        let mut all: Vec<OsString> = vec!["--config".into(), config_path.into()];
        all.extend(args.iter().map(OsString::from));
        // The same environment as every run, through the symlink.
        let template = self.command(&all);
        let mut through = Command::new(&link);
        through
            .args(&all)
            .env_clear()
            .envs(template.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .env("SMTP_SERVER", format!("127.0.0.1:{port}"))
            .env("SMTP_TLS", "none")
            .current_dir(self.work())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = through.spawn().expect("start sendmail");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        wait(child, all)
    }
}

const SENDMAIL_CONFIG: &str = "maildomain = \"host.test\"\naliases = \"ALIASES\"\n\
                               retries = 0\ntimeout = 2\nehlo = \"client.test\"\n";

fn sendmail_config(home: &Home) -> String {
    let aliases = home.file(
        "aliases",
        b"root: admin@example.com\ndefault: catchall@example.com\n",
    );
    SENDMAIL_CONFIG.replace("ALIASES", aliases.to_str().expect("path"))
}

#[test]
fn sendmail_mode_takes_crons_message_with_aliases_and_maildomain() {
    let home = Home::new();
    let server = Server::start_with(
        vec![GoodServer::new()
            .message(Some("root@host.test"), &["admin@example.com"])
            .script()],
        quick(),
    );
    let cron = b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@box> backup\n\nall good\n";
    let config = sendmail_config(&home);
    let out = home.sendmail(
        server.port(),
        &config,
        &["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
        cron,
    );
    out.code(0);
    assert_eq!(out.stderr, "", "{}", out.describe());
    let t = finish(server);
    let text = String::from_utf8_lossy(&t.only().messages[0].content).into_owned();
    assert!(
        text.contains("From: root@host.test (Cron Daemon)\r\n"),
        "{text}"
    );
    assert!(text.contains("To: admin@example.com\r\n"), "{text}");
    assert!(
        text.contains("\r\nDate: ") || text.starts_with("Date: "),
        "{text}"
    );
    assert!(text.contains("Message-ID: <"), "{text}");
    assert!(home.kept("").is_empty());
}

#[test]
fn sendmail_mode_queues_with_exit_0_lists_with_bp_and_sends_with_q() {
    let home = Home::new();
    let config = sendmail_config(&home);
    let closed = support::closed_port().port();
    let msg = b"From: ada@example.com\nTo: bob@example.com\nBcc: nobody\nSubject: t\n\nhi\n";
    home.sendmail(closed, &config, &["-t", "-N", "never"], msg)
        .code(0)
        .says(&["DSN is not supported yet"]);
    let kept = home.kept("");
    assert_eq!(kept.len(), 1);
    let record = home.record(&kept[0]);
    assert_eq!(
        record["pending"],
        serde_json::json!(["bob@example.com", "catchall@example.com"])
    );
    let text = std::fs::read_to_string(&kept[0]).expect("kept");
    assert!(!text.contains("Bcc"), "{text}");
    let listed = home.sendmail(closed, &config, &["-bp"], b"");
    listed.code(0);
    assert!(
        listed.stdout.contains("bob@example.com"),
        "{}",
        listed.describe()
    );

    let server = Server::start_with(
        vec![GoodServer::new()
            .message(
                Some("ada@example.com"),
                &["bob@example.com", "catchall@example.com"],
            )
            .script()],
        quick(),
    );
    home.sendmail(server.port(), &config, &["-q"], b"").code(0);
    assert_eq!(finish(server).only().messages.len(), 1);
    assert!(home.kept("").is_empty());
}

#[test]
fn sendmail_mode_without_a_domain_for_a_local_name_is_exit_65() {
    let home = Home::new();
    let closed = support::closed_port().port();
    let out = home.sendmail(closed, "", &["root"], b"Subject: t\n\nhi\n");
    out.code(65).says(&["maildomain"]);
    assert!(home.kept("").is_empty());
}
