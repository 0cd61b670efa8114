//! Interop tests for grade mode: a class of 200 through a real server (aiosmtpd with STARTTLS
//! and AUTH, started by `scripts/test-all`; ports and paths in `QUIZMAIL_IT_*`, see
//! `tests/interop.rs`).
//!
//! The test writes its own quiz and roster, computes every score, the average, the median and
//! the pass rate itself from those files, and compares them with what the server stored
//! (parsed with mail-parser) and with the `--json` report. The server numbers its TCP
//! connections in each stored message's JSON (`scripts/smtp_server.py`), which shows the whole
//! batch went over one connection. `#[ignore]`d so a plain `cargo test` stays offline; a
//! missing variable fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use serde_json::Value;

mod real;
use real::{unique, var, Run};

const SENDER: &str = "quiz@example.test";
/// Hard bound on one grade run (about 200 messages, a debug build).
const RUN_LIMIT: Duration = Duration::from_secs(180);
const STUDENTS: usize = 200;
const TITLE: &str = "Interop grading — SMTP";
const PASS_PERCENT: usize = 60;
/// The correct choice of each question, as an index (0 = a).
const KEY: [usize; 5] = [2, 0, 3, 1, 0];

/// The binary with the test password, bounded by RUN_LIMIT.
fn quizmail(args: &[String]) -> Run {
    real::quizmail(args, Some(&var("QUIZMAIL_IT_PASSWORD")), RUN_LIMIT)
}

// ---- the quiz and the class, and the figures computed here ------------------------------------

fn letter(i: usize) -> char {
    char::from(b'a' + i as u8)
}

fn quiz_toml() -> String {
    let prompts = [
        "Which port is mail submission with STARTTLS?",
        "Which command starts the mail transaction?",
        "What ends the DATA section?",
        "Which RFC defines SMTP AUTH?",
        "What does a 4xx reply mean?",
    ];
    let choices = [
        ["25", "465", "587", "2525"],
        ["MAIL FROM", "RCPT TO", "HELO", "DATA"],
        [
            "QUIT",
            "an empty line",
            "BDAT LAST",
            "a line holding one dot",
        ],
        ["RFC 5321", "RFC 4954", "RFC 6409", "RFC 3207"],
        [
            "try again later",
            "success",
            "permanent failure",
            "send the data",
        ],
    ];
    let mut s = format!("title = \"{TITLE}\"\npass_percent = {PASS_PERCENT}\n");
    for (i, prompt) in prompts.iter().enumerate() {
        let list: Vec<String> = choices[i].iter().map(|c| format!("\"{c}\"")).collect();
        s.push_str(&format!(
            "\n[[questions]]\nprompt = \"{prompt}\"\nchoices = [{}]\nanswer = \"{}\"\n",
            list.join(", "),
            letter(KEY[i])
        ));
        if i % 2 == 0 {
            s.push_str("explain = \"See the RFC.\"\n");
        }
    }
    s
}

struct Student {
    name: String,
    email: String,
    answers: Vec<usize>,
}

impl Student {
    fn score(&self) -> usize {
        self.answers
            .iter()
            .zip(KEY)
            .filter(|(a, k)| **a == *k)
            .count()
    }

    fn passed(&self) -> bool {
        self.score() * 100 >= PASS_PERCENT * KEY.len()
    }

    /// The subject cli.md gives: `Quiz results: TITLE — NAME scored S/T (P%)`; with five
    /// questions every percentage is a whole number.
    fn subject(&self) -> String {
        let s = self.score();
        format!(
            "Quiz results: {TITLE} — {} scored {s}/{} ({}%)",
            self.name,
            KEY.len(),
            s * 100 / KEY.len()
        )
    }
}

/// A deterministic class with varied answers: a small LCG decides, per student and question,
/// right or wrong (each student has their own chance of being right) and which wrong choice.
fn class(tag: &str, count: usize) -> Vec<Student> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    (0..count)
        .map(|i| {
            let skill = next() % 11;
            let answers = KEY
                .iter()
                .map(|&k| {
                    if next() % 10 < skill {
                        k
                    } else {
                        (k + 1 + next() % 3) % 4
                    }
                })
                .collect();
            let name = match i % 10 {
                3 => format!("Zoë Ångström {i:03}"),
                7 => format!("Hopper, Grace {i:03}"),
                _ => format!("Student {i:03}"),
            };
            Student {
                name,
                email: format!("{tag}-s{i:03}@example.test"),
                answers,
            }
        })
        .collect()
}

/// RFC 4180 field: quoted when it holds a comma or a quote.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn roster_csv(students: &[Student]) -> String {
    let mut s = String::from("name,email,answers\r\n");
    for st in students {
        let answers: Vec<String> = st.answers.iter().map(|&a| letter(a).to_string()).collect();
        s.push_str(&format!(
            "{},{},{}\r\n",
            csv_field(&st.name),
            st.email,
            answers.join(";")
        ));
    }
    s
}

/// Splits one RFC 4180 record (no line breaks inside fields).
fn csv_split(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("a field").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().expect("a field").push(c),
        }
    }
    fields
}

/// The class figures, computed from the roster alone.
struct Figures {
    count: usize,
    average: f64,
    median: f64,
    passed: usize,
    pass_rate: f64,
}

fn figures(students: &[Student]) -> Figures {
    let mut scores: Vec<usize> = students.iter().map(Student::score).collect();
    scores.sort_unstable();
    let n = scores.len();
    let median = if n % 2 == 1 {
        scores[n / 2] as f64
    } else {
        (scores[n / 2 - 1] + scores[n / 2]) as f64 / 2.0
    };
    let passed = students.iter().filter(|s| s.passed()).count();
    Figures {
        count: n,
        average: scores.iter().sum::<usize>() as f64 / n as f64,
        median,
        passed,
        pass_rate: passed as f64 * 100.0 / n as f64,
    }
}

/// The first number in `text` after `label` (e.g. `Average:` in `Average:  3.1/5 (62%)`).
fn number_after(text: &str, label: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in the summary\n{text}"));
    let rest = &line[line.find(label).expect("label") + label.len()..];
    let num: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    num.parse()
        .unwrap_or_else(|_| panic!("no number after {label:?} in {line:?}"))
}

/// The percentage in parentheses on the `label` line: `Passed:   120 of 200 (60%, ...)`.
fn percent_on(text: &str, label: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in the summary\n{text}"));
    let open = line.find('(').expect("a percentage in parentheses");
    let num: String = line[open + 1..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    num.parse()
        .unwrap_or_else(|_| panic!("no percentage in {line:?}"))
}

/// One decimal, as the summary shows figures; a rounding difference of 0.05 is allowed.
fn assert_close(shown: f64, exact: f64, what: &str, ctx: &str) {
    assert!(
        (shown - exact).abs() <= 0.051,
        "{what}: shown {shown}, computed {exact}\n{ctx}"
    );
}

// ---- what the server stored -------------------------------------------------------------------

struct Stored {
    meta: Value,
    raw: Vec<u8>,
}

/// Every message in the STARTTLS aiosmtpd store, by its single recipient.
fn stored_by_rcpt() -> BTreeMap<String, Vec<Stored>> {
    let dir = PathBuf::from(var("QUIZMAIL_IT_STARTTLS_STORE"));
    let mut map: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("aiosmtpd store").flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let meta: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read meta")).expect("meta json");
        let raw = std::fs::read(path.with_extension("eml")).expect("read eml");
        for r in meta["rcpt_tos"].as_array().expect("rcpt_tos") {
            let r = r.as_str().expect("address").to_string();
            map.entry(r).or_default().push(Stored {
                meta: meta.clone(),
                raw: raw.clone(),
            });
        }
    }
    map
}

/// Every stored message that came over connection `id` (the server's own numbering).
fn on_connection(id: &Value) -> usize {
    let dir = PathBuf::from(var("QUIZMAIL_IT_STARTTLS_STORE"));
    std::fs::read_dir(&dir)
        .expect("aiosmtpd store")
        .flatten()
        .filter(|e| e.path().extension().and_then(|x| x.to_str()) == Some("json"))
        .filter(|e| {
            let meta: Value =
                serde_json::from_slice(&std::fs::read(e.path()).expect("meta")).expect("meta json");
            meta["connection"] == *id
        })
        .count()
}

fn grade_args(dir: &Path, teacher: &str, ehlo: &str) -> Vec<String> {
    [
        "--roster",
        &dir.join("roster.csv").display().to_string(),
        "--quiz",
        &dir.join("quiz.toml").display().to_string(),
        "--target-email",
        teacher,
        "--from",
        SENDER,
        "--server",
        &format!("127.0.0.1:{}", var("QUIZMAIL_IT_STARTTLS_PORT")),
        "--tls",
        "starttls",
        "--ca-file",
        &var("QUIZMAIL_IT_CA_FILE"),
        "--user",
        &var("QUIZMAIL_IT_USER"),
        "--ehlo",
        ehlo,
        "--timeout",
        "10",
        "--retries",
        "0",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Checks one student's stored copy: addressed to them, their own score in the subject, the
/// text and the results.csv attachment.
fn assert_student_message(st: &Student, copy: &Stored) {
    let shown = String::from_utf8_lossy(&copy.raw);
    assert_eq!(
        copy.meta["rcpt_tos"],
        serde_json::json!([st.email]),
        "envelope of {}",
        st.name
    );
    assert_eq!(copy.meta["mail_from"], SENDER);
    let msg = MessageParser::default()
        .parse(&copy.raw)
        .unwrap_or_else(|| panic!("{}'s message does not parse\n{shown}", st.name));
    let to: Vec<&str> = msg
        .to()
        .map(|a| a.iter().filter_map(|x| x.address()).collect())
        .unwrap_or_default();
    assert_eq!(to, [st.email.as_str()], "To of {}\n{shown}", st.name);
    assert_eq!(msg.subject(), Some(st.subject().as_str()), "{shown}");
    let text = msg.body_text(0).expect("a text part");
    let score = format!("{}/{}", st.score(), KEY.len());
    assert!(
        text.contains(&st.name),
        "{} not in the text\n{text}",
        st.name
    );
    assert!(text.contains(&score), "{score} not in the text\n{text}");
    let (verdict, other) = if st.passed() {
        ("passed", "failed")
    } else {
        ("failed", "passed")
    };
    assert!(
        text.contains(verdict) && !text.contains(other),
        "{}: expected {verdict}\n{text}",
        st.name
    );
    let html = msg.body_html(0).expect("an HTML part");
    assert!(html.contains(&score), "{score} not in the HTML");
    let csv = msg
        .attachments()
        .find(|p| p.attachment_name() == Some("results.csv"))
        .unwrap_or_else(|| panic!("no results.csv\n{shown}"));
    let csv = String::from_utf8_lossy(csv.contents()).replace("\r\n", "\n");
    let rows: Vec<Vec<String>> = csv.lines().map(csv_split).collect();
    assert_eq!(rows[0], ["question", "given", "correct", "ok"], "{csv}");
    assert_eq!(rows.len(), KEY.len() + 1, "{csv}");
    for (i, row) in rows[1..].iter().enumerate() {
        assert!(
            row[1].starts_with(&format!("{})", letter(st.answers[i]))),
            "{csv}"
        );
        assert!(row[2].starts_with(&format!("{})", letter(KEY[i]))), "{csv}");
        assert_eq!(row[3], (st.answers[i] == KEY[i]).to_string(), "{csv}");
    }
}

/// Checks the teacher's summary against figures computed from `graded` (every roster row).
fn assert_summary(copy: &Stored, graded: &[Student]) {
    let f = figures(graded);
    let shown = String::from_utf8_lossy(&copy.raw);
    let msg = MessageParser::default()
        .parse(&copy.raw)
        .unwrap_or_else(|| panic!("the summary does not parse\n{shown}"));
    let subject = msg.subject().unwrap_or_default().to_string();
    assert!(subject.contains(TITLE), "{subject}");
    assert!(
        subject.contains(&format!("{} students", f.count)),
        "{subject}"
    );
    assert!(
        subject.contains(&format!("{} passed", f.passed)),
        "{subject}"
    );
    let text = msg.body_text(0).expect("a text part").replace("\r\n", "\n");
    assert_eq!(number_after(&text, "Students:"), f.count as f64, "{text}");
    assert_close(number_after(&text, "Average:"), f.average, "average", &text);
    assert_close(
        percent_on(&text, "Average:"),
        f.average * 100.0 / KEY.len() as f64,
        "average percent",
        &text,
    );
    assert_eq!(number_after(&text, "Median:"), f.median, "median\n{text}");
    assert_eq!(
        number_after(&text, "Passed:"),
        f.passed as f64,
        "passed\n{text}"
    );
    assert_close(
        percent_on(&text, "Passed:"),
        f.pass_rate,
        "pass rate",
        &text,
    );
    for st in graded {
        assert!(
            text.contains(&st.name),
            "{} missing from the summary",
            st.name
        );
    }
    // The class CSV: one row per student with their score and answers.
    let csv = msg
        .attachments()
        .find(|p| p.attachment_name().is_some_and(|n| n.ends_with(".csv")))
        .unwrap_or_else(|| panic!("no class CSV\n{shown}"));
    let csv = String::from_utf8_lossy(csv.contents()).replace("\r\n", "\n");
    let rows: Vec<Vec<String>> = csv.lines().skip(1).map(csv_split).collect();
    assert_eq!(rows.len(), graded.len(), "{csv}");
    for (st, row) in graded.iter().zip(&rows) {
        assert_eq!(row[0], st.name, "{row:?}");
        assert_eq!(row[1], st.email, "{row:?}");
        assert_eq!(row[2], st.score().to_string(), "{row:?}");
        let answers: Vec<String> = st.answers.iter().map(|&a| letter(a).to_string()).collect();
        assert_eq!(&row[row.len() - KEY.len()..], answers.as_slice(), "{row:?}");
    }
}

struct Class {
    dir: tempfile::TempDir,
    students: Vec<Student>,
    teacher: String,
    ehlo: String,
}

fn write_class(tag: &str, students: Vec<Student>) -> Class {
    let id = unique(tag);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("quiz.toml"), quiz_toml()).expect("quiz");
    std::fs::write(dir.path().join("roster.csv"), roster_csv(&students)).expect("roster");
    Class {
        dir,
        students,
        teacher: format!("{id}-teacher@example.test"),
        ehlo: format!("{id}.client.example.test"),
    }
}

/// The accepted addresses of every per-message report.
fn accepted(messages: &[Value]) -> BTreeSet<String> {
    messages
        .iter()
        .flat_map(|m| m["accepted"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn grade_200_students_over_one_connection() {
    let tag = unique("gr");
    let students = class(&tag, STUDENTS);
    // The generator must give a spread, or the figures prove little.
    let distinct: BTreeSet<usize> = students.iter().map(Student::score).collect();
    assert!(distinct.len() >= 5, "scores {distinct:?}");
    let c = write_class("gr", students);
    let run = quizmail(&grade_args(c.dir.path(), &c.teacher, &c.ehlo));
    assert_eq!(run.code, 0, "{}", run.describe());
    let j = run.json();
    let ctx = run.describe();
    assert_eq!(j["sent"], true, "{ctx}");
    assert!(j["error"].is_null(), "{ctx}");
    let messages = j["messages"].as_array().expect("messages in grade mode");
    assert_eq!(messages.len(), STUDENTS + 1, "{ctx}");
    assert!(messages
        .iter()
        .all(|m| m["sent"] == true && m["error"].is_null()));
    let mut expected: BTreeSet<String> = c.students.iter().map(|s| s.email.clone()).collect();
    expected.insert(c.teacher.clone());
    assert_eq!(accepted(messages), expected, "accepted addresses");
    for (st, m) in c.students.iter().zip(messages) {
        assert_eq!(m["accepted"], serde_json::json!([st.email]), "report order");
        assert_eq!(m["quiz"]["score"], st.score(), "{m}");
        assert_eq!(m["quiz"]["passed"], st.passed(), "{m}");
    }

    let store = stored_by_rcpt();
    let mut connection = None;
    for st in &c.students {
        let copies = store
            .get(&st.email)
            .unwrap_or_else(|| panic!("nothing stored for {}", st.email));
        assert_eq!(copies.len(), 1, "{} copies for {}", copies.len(), st.email);
        assert_student_message(st, &copies[0]);
        assert_eq!(copies[0].meta["ehlo"], c.ehlo.as_str());
        let conn = &copies[0].meta["connection"];
        assert!(conn.is_u64(), "the server did not number connections");
        assert_eq!(connection.get_or_insert(conn.clone()), conn, "{}", st.email);
    }
    let teacher = store.get(&c.teacher).expect("the summary was stored");
    assert_eq!(teacher.len(), 1);
    assert_eq!(
        teacher[0].meta["connection"],
        connection.clone().expect("one")
    );
    assert_summary(&teacher[0], &c.students);
    // The connection carried exactly this batch: 200 results and the summary.
    assert_eq!(on_connection(&connection.expect("one")), STUDENTS + 1);
}

/// One row with an invalid address: it is reported, the other 200 students and the teacher
/// still get their mail over the one connection, and the exit status is 65 (cli.md: "bad
/// data: an invalid address").
#[test]
#[ignore = "needs real servers: run scripts/test-all"]
fn grade_goes_on_past_an_invalid_address() {
    let tag = unique("grbad");
    let mut students = class(&tag, STUDENTS + 1);
    let bad = 117;
    students[bad].email = "not an address".into();
    let bad_name = students[bad].name.clone();
    let c = write_class("grbad", students);
    let run = quizmail(&grade_args(c.dir.path(), &c.teacher, &c.ehlo));
    let ctx = run.describe();
    assert_eq!(run.code, 65, "{ctx}");
    let j = run.json();
    assert_eq!(j["sent"], false, "{ctx}");
    assert_eq!(j["error"]["exit_code"], 65, "{ctx}");
    let messages = j["messages"].as_array().expect("messages in grade mode");
    assert_eq!(
        messages.len(),
        STUDENTS + 2,
        "one report per roster row and the summary"
    );
    let failed: Vec<&Value> = messages.iter().filter(|m| !m["error"].is_null()).collect();
    assert_eq!(failed.len(), 1, "{ctx}");
    assert_eq!(failed[0]["sent"], false);
    assert_eq!(failed[0]["error"]["exit_code"], 65);
    assert_eq!(
        failed[0]["quiz"]["name"],
        bad_name.as_str(),
        "{}",
        failed[0]
    );
    // The header is line 1, so student i is on line i + 2.
    let line = format!("line {}", bad + 2);
    assert!(
        failed[0]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&line)),
        "the error does not name {line}: {}",
        failed[0]
    );
    assert_eq!(
        messages.iter().filter(|m| m["sent"] == true).count(),
        STUDENTS + 1
    );

    let store = stored_by_rcpt();
    let mut connections = BTreeSet::new();
    for (i, st) in c.students.iter().enumerate() {
        if i == bad {
            continue;
        }
        let copies = store
            .get(&st.email)
            .unwrap_or_else(|| panic!("nothing stored for {}", st.email));
        assert_eq!(copies.len(), 1);
        assert_student_message(st, &copies[0]);
        connections.insert(copies[0].meta["connection"].to_string());
    }
    let teacher = store.get(&c.teacher).expect("the summary was stored");
    connections.insert(teacher[0].meta["connection"].to_string());
    assert_eq!(connections.len(), 1, "{connections:?}");
    // Every row was graded, so the summary covers all 201 (the teacher sees the bad row).
    assert_summary(&teacher[0], &c.students);
}
