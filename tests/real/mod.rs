//! What the tests against real servers share: the `QUIZMAIL_IT_*` variables that
//! `scripts/test-all` sets, unique names, and running a program with a cleared environment and
//! a wall-clock bound. Each test file uses part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// A variable set by `scripts/test-all`; missing means the servers are not there, which is a
/// failure, never a pass.
pub fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: the interop tests need the real servers that scripts/test-all \
             starts; run scripts/test-all"
        ),
    }
}

/// A token unique to this test run and call, lower case so it works in an address.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "{tag}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// What one run printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The run for a failure message, long outputs cut to their useful ends.
    pub fn describe(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!(
            "exit {}\n--- stdout (first 4000 chars)\n{}\n--- stderr (last 40 lines)\n{tail}",
            self.code,
            self.stdout.chars().take(4000).collect::<String>()
        )
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{}", self.describe()))
    }

    pub fn assert_exit(&self, code: i32) {
        assert_eq!(
            self.code,
            code,
            "unexpected exit status\n{}",
            self.describe()
        );
    }
}

/// Runs `program` with `args`, a cleared environment (PATH, a temporary HOME and
/// XDG_CONFIG_HOME, plus `env`), `stdin` fed and closed, in a temporary working directory;
/// killed and failed past `limit`.
pub fn run_bounded(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    stdin: &[u8],
    limit: Duration,
) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join(".config"))
        .current_dir(home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} still running after {limit:?}: killed",
                program.display()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    writer.join().expect("stdin writer");
    let stdout = String::from_utf8_lossy(&out_t.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_t.join().expect("stderr reader")).into_owned();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Runs the binary with `args`, the password (if any) in SMTP_PASSWORD and nothing else from
/// the environment, bounded by `limit`.
pub fn quizmail(args: &[String], password: Option<&str>, limit: Duration) -> Run {
    let env: Vec<(&str, &str)> = password
        .map(|pw| ("SMTP_PASSWORD", pw))
        .into_iter()
        .collect();
    run_bounded(quizmail_bin(), args, &env, b"", limit)
}

/// The quizmail binary under test.
pub fn quizmail_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_quizmail"))
}
