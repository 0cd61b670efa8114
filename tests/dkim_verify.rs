//! quizmail's DKIM signatures checked by an independent verifier: dkimpy (PyPI), with its DNS
//! lookup answered by the record `Signer::dns_record` prints. Keys are made at test time with
//! openssl (and ring for a PKCS#8 v2 Ed25519 key).
//!
//! dkimpy must be installed in `.venv` at the crate root (or point `DKIMPY_PYTHON` at a
//! Python that has it):
//!     python3 -m venv .venv && .venv/bin/pip install 'dkimpy[ed25519]==1.1.8'
//! Without it, or without openssl, these tests fail; they never skip.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use base64::Engine as _;
use quizmail::dkim::{DkimError, ErrorClass, Signer, HEADER_NAME};

const WAIT: Duration = Duration::from_secs(120);

/// Runs a program with bounded waiting; stdout, stderr and the exit status.
fn run(program: &Path, args: &[&str], stdin: &[u8]) -> (Vec<u8>, String, bool) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = thread::spawn(move || input.write_all(&data));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut buf = Vec::new();
        out.read_to_end(&mut buf).map(|_| buf)
    });
    let err_reader = thread::spawn(move || {
        let mut buf = String::new();
        err.read_to_string(&mut buf).map(|_| buf)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > WAIT {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{} did not finish within {WAIT:?}", program.display());
        }
        thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap().unwrap();
    let stdout = reader.join().unwrap().unwrap();
    let stderr = err_reader.join().unwrap().unwrap();
    (stdout, stderr, status.success())
}

fn python() -> PathBuf {
    let path = std::env::var_os("DKIMPY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "dkimpy is required: python3 -m venv .venv && \
         .venv/bin/pip install 'dkimpy[ed25519]==1.1.8' (or set DKIMPY_PYTHON); looked for {}",
        path.display()
    );
    path
}

/// Verifies every message with dkimpy in one process; the key lookup answers only the
/// expected `s._domainkey.d.` name, so a wrong `s=` or `d=` fails too.
const VERIFY_PY: &str = r#"
import base64, json, logging, sys
import dkim, nacl
logging.basicConfig(stream=sys.stderr, level=logging.ERROR)
results = []
for case in json.load(sys.stdin):
    message = base64.b64decode(case["message"])
    record = case["record"].encode()
    qname = case["qname"].encode()
    def lookup(name, timeout=5, record=record, qname=qname):
        return record if name == qname else None
    ok = dkim.verify(message, logger=logging.getLogger(case["label"]), dnsfunc=lookup, minkey=2048)
    results.append(bool(ok))
print(json.dumps(results))
"#;

struct Case {
    label: String,
    message: Vec<u8>,
    expect: bool,
}

/// The TXT text and query name from a `dns_record()` line: the quoted strings joined, as a
/// resolver hands them over (RFC 6376 §3.6.2.2).
fn txt_of(record: &str) -> (String, String) {
    let (name, rest) = record.split_once(" IN TXT ").unwrap();
    let strings: Vec<&str> = rest.split('"').skip(1).step_by(2).collect();
    for s in &strings {
        assert!(s.len() <= 255, "TXT string over 255: {s}");
    }
    (name.to_string(), strings.concat())
}

fn verify_all(signer: &Signer, cases: &[Case]) {
    let (qname, record) = txt_of(&signer.dns_record());
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            serde_json::json!({
                "label": c.label,
                "message": base64::engine::general_purpose::STANDARD.encode(&c.message),
                "record": record,
                "qname": qname,
            })
        })
        .collect();
    let (out, err, ok) = run(
        &python(),
        &["-c", VERIFY_PY],
        serde_json::to_string(&input).unwrap().as_bytes(),
    );
    assert!(ok, "dkimpy failed to run: {err}");
    let results: Vec<bool> = serde_json::from_slice(&out).unwrap();
    assert_eq!(results.len(), cases.len());
    let wrong: Vec<String> = cases
        .iter()
        .zip(&results)
        .filter(|(c, r)| c.expect != **r)
        .map(|(c, r)| format!("{}: expected {}, dkimpy said {r}", c.label, c.expect))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}\ndkimpy log:\n{err}");
}

fn openssl(args: &[&str]) {
    let (_, err, ok) = run(Path::new("openssl"), args, b"");
    assert!(ok, "openssl {args:?} failed: {err}");
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}

fn gen_key(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let path_str = path.to_str().unwrap();
    // `-out` right after the subcommand: genrsa wants the size last.
    let mut full: Vec<&str> = vec![args[0], "-out", path_str];
    full.extend(&args[1..]);
    openssl(&full);
    set_mode(&path, 0o600);
    path
}

fn rsa_pkcs8(dir: &Path, bits: u32) -> PathBuf {
    let opt = format!("rsa_keygen_bits:{bits}");
    gen_key(
        dir,
        &format!("rsa{bits}.pem"),
        &["genpkey", "-algorithm", "RSA", "-pkeyopt", &opt],
    )
}

type Headers = Vec<(String, String)>;

fn fields(list: &[(&str, &str)]) -> Headers {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn assemble(signature: Option<&str>, headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(sig) = signature {
        out.extend_from_slice(format!("{HEADER_NAME}: {sig}\r\n").as_bytes());
    }
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn sign(signer: &Signer, headers: &Headers, body: &[u8]) -> String {
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    // Feed the body in small pieces, as a streaming writer would.
    signer
        .sign(
            headers,
            &mut |w: &mut dyn Write| {
                for chunk in body.chunks(7) {
                    w.write_all(chunk)?;
                }
                Ok(())
            },
            now,
        )
        .unwrap()
}

/// A text message: folded and RFC 2047 headers, leading dots, a 998-octet line, tabs and
/// trailing whitespace, trailing empty lines.
fn text_message() -> (Headers, Vec<u8>) {
    let headers = fields(&[
        ("From", " =?UTF-8?Q?Ada_Lov=C3=A9lace?= <ada@example.com>"),
        (
            "To",
            " Grace Hopper <grace@example.org>,\r\n Alan Turing <alan@example.net>,\r\n\t\"Q, \
             Student\" <student@example.edu>",
        ),
        ("Cc", " Ken <ken@example.com>"),
        ("Reply-To", " quiz-replies@example.com"),
        (
            "Subject",
            " =?UTF-8?B?UXVpeiByZXN1bHRzOiBTTVRQIGZ1bmRhbWVudGFscyDigJQgQWRh?=\r\n \
             =?UTF-8?B?IHNjb3JlZCA4LzEwICg4MCUp?=",
        ),
        ("Date", " Thu, 01 Jan 2026 00:00:00 +0000"),
        ("Message-ID", " <20260101T000000.4f2a@example.com>"),
        ("MIME-Version", " 1.0"),
        ("Content-Type", " text/plain; charset=utf-8"),
        ("Content-Transfer-Encoding", " quoted-printable"),
        ("X-Mailer", " quizmail"),
    ]);
    let mut body = Vec::new();
    body.extend_from_slice(b"Hello Ada,\r\n\r\n");
    body.extend_from_slice(b".a line that starts with a dot\r\n");
    body.extend_from_slice(b"..two dots\r\n.\r\n");
    body.extend_from_slice(b"tabs\tand  spaces   inside \t \r\n");
    body.extend_from_slice(b"  \r\n");
    body.extend_from_slice("x".repeat(998).as_bytes());
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(b"caf=C3=A9 =E2=80=94 soft break=\r\ncontinued\r\n");
    body.extend_from_slice(b"\r\n\r\n \r\n");
    (headers, body)
}

/// multipart/mixed: multipart/alternative (text, HTML) and a base64 attachment.
fn multipart_message() -> (Headers, Vec<u8>) {
    let headers = fields(&[
        ("From", " Quiz <quiz@example.com>"),
        ("To", " ada@example.com"),
        ("Subject", " Quiz results"),
        ("Date", " Thu, 01 Jan 2026 00:00:00 +0000"),
        ("Message-ID", " <mp.1@example.com>"),
        ("MIME-Version", " 1.0"),
        (
            "Content-Type",
            " multipart/mixed;\r\n boundary=\"=_outer_7f3a\"",
        ),
    ]);
    let attachment: Vec<u8> = (0..6000u32).map(|i| (i * 7 % 251) as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&attachment);
    let mut body = String::new();
    body.push_str("This is a multi-part message in MIME format.\r\n\r\n--=_outer_7f3a\r\n");
    body.push_str("Content-Type: multipart/alternative; boundary=\"=_alt_91c\"\r\n\r\n");
    body.push_str("--=_alt_91c\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    body.push_str("Score: 8/10\r\n.\r\n");
    body.push_str("--=_alt_91c\r\nContent-Type: text/html; charset=utf-8\r\n\r\n");
    body.push_str("<p>Score: <b>8/10</b></p>\r\n");
    body.push_str("--=_alt_91c--\r\n\r\n--=_outer_7f3a\r\n");
    body.push_str("Content-Type: application/octet-stream; name=\"results.bin\"\r\n");
    body.push_str("Content-Disposition: attachment;\r\n filename*=UTF-8''r%C3%A9sultats.bin\r\n");
    body.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    for line in encoded.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(line).unwrap());
        body.push_str("\r\n");
    }
    body.push_str("--=_outer_7f3a--\r\n");
    (headers, body.into_bytes())
}

fn minimal_message() -> (Headers, Vec<u8>) {
    let headers = fields(&[
        ("From", " a@example.com"),
        ("To", " b@example.com"),
        ("Subject", " empty"),
    ]);
    (headers, Vec::new())
}

/// Every message verifies; tampering with each signed field or the body fails; changes that
/// relaxed canonicalisation forgives, or to unsigned fields, still verify.
fn full_suite(signer: &Signer) {
    let mut cases = Vec::new();
    for (name, (headers, body)) in [
        ("text", text_message()),
        ("multipart", multipart_message()),
        ("empty body", minimal_message()),
    ] {
        let sig = sign(signer, &headers, &body);
        cases.push(Case {
            label: format!("{name}: as signed"),
            message: assemble(Some(&sig), &headers, &body),
            expect: true,
        });
        for (i, (field, _)) in headers.iter().enumerate() {
            let mut tampered = headers.clone();
            tampered[i].1.push('X');
            let signed = !matches!(field.as_str(), "X-Mailer" | "Content-Transfer-Encoding");
            cases.push(Case {
                label: format!("{name}: {field} changed"),
                message: assemble(Some(&sig), &tampered, &body),
                expect: !signed,
            });
        }
        // Our h= oversigns From (checked in the unit tests); dkimpy also adds a "from" of its
        // own when verifying, so this case holds for either reason.
        let mut extra_from = headers.clone();
        extra_from.insert(0, ("From".into(), " mallory@example.net".into()));
        cases.push(Case {
            label: format!("{name}: second From added"),
            message: assemble(Some(&sig), &extra_from, &body),
            expect: false,
        });
        let mut appended = body.clone();
        appended.extend_from_slice(b"P.S. send money\r\n");
        cases.push(Case {
            label: format!("{name}: body line appended"),
            message: assemble(Some(&sig), &headers, &appended),
            expect: false,
        });
        if !body.is_empty() {
            let mut flipped = body.clone();
            flipped[body.len() / 2] ^= 0x01;
            cases.push(Case {
                label: format!("{name}: body byte changed"),
                message: assemble(Some(&sig), &headers, &flipped),
                expect: false,
            });
            // Relaxed canonicalisation forgives refolding and trailing whitespace.
            let mut relaxed = headers.clone();
            relaxed[1].1 = relaxed[1].1.replace(' ', "  \t");
            let spaced: Vec<u8> = String::from_utf8(body.clone())
                .unwrap()
                .replace("\r\n", " \t\r\n")
                .into_bytes();
            cases.push(Case {
                label: format!("{name}: whitespace changed only"),
                message: assemble(Some(&sig), &relaxed, &spaced),
                expect: true,
            });
        }
    }
    // A body that is not CRLF-terminated, and one with only empty lines.
    let (headers, _) = minimal_message();
    for (label, body) in [
        ("no final CRLF", b"last line".as_slice()),
        ("only empty lines", b"\r\n\r\n\r\n".as_slice()),
    ] {
        let sig = sign(signer, &headers, body);
        cases.push(Case {
            label: label.into(),
            message: assemble(Some(&sig), &headers, body),
            expect: true,
        });
    }
    verify_all(signer, &cases);
}

/// Dot-stuffing happens after signing: the leading dots hashed are the unstuffed ones.
fn sign_and_check_lines(signer: &Signer) {
    let (headers, body) = text_message();
    let sig = sign(signer, &headers, &body);
    let field = format!("{HEADER_NAME}: {sig}");
    for line in field.split("\r\n") {
        assert!(line.len() <= 78, "line over 78: {line:?}");
    }
    let unfolded = sig.replace("\r\n ", "");
    assert!(
        unfolded.contains(
            "h=from:from:to:cc:subject:date:message-id:mime-version:content-type:reply-to;"
        ),
        "{sig}"
    );
    assert!(unfolded.contains("t=1767225600;"), "{sig}");
}

#[test]
#[ignore = "needs dkimpy from PyPI: scripts/test-all installs it and runs these"]
fn verifier_accepts_the_rfc8463_example_and_rejects_it_changed() {
    // RFC 8463 Appendix A.3, the Ed25519 signature only; a positive and a negative control
    // for the harness itself.
    let message = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n \
        d=football.example.com; i=@football.example.com;\r\n \
        q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n \
        subject : date : message-id : from : subject : date;\r\n \
        bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n \
        b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n \
        Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n\
        From: Joe SixPack <joe@football.example.com>\r\n\
        To: Suzie Q <suzie@shopping.example.net>\r\n\
        Subject: Is dinner ready?\r\n\
        Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n\
        Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n\
        \r\n\
        Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n";
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rfc8463.pem");
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\n\
         MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
         -----END PRIVATE KEY-----\n",
    )
    .unwrap();
    set_mode(&key, 0o600);
    let signer = Signer::load(&key, "brisbane", "football.example.com", false).unwrap();
    verify_all(
        &signer,
        &[
            Case {
                label: "RFC 8463 A.3".into(),
                message: message.as_bytes().to_vec(),
                expect: true,
            },
            Case {
                label: "RFC 8463 A.3, body changed".into(),
                message: message.replace("hungry", "Hungry").into_bytes(),
                expect: false,
            },
        ],
    );
}

#[test]
#[ignore = "needs dkimpy from PyPI: scripts/test-all installs it and runs these"]
fn rsa_2048_pkcs8_from_openssl_genpkey() {
    let dir = tempfile::tempdir().unwrap();
    let key = rsa_pkcs8(dir.path(), 2048);
    let signer = Signer::load(&key, "s2048", "example.com", false).unwrap();
    assert_eq!(signer.algorithm(), "rsa-sha256");
    let record = signer.dns_record();
    assert!(record.starts_with("s2048._domainkey.example.com. IN TXT \"v=DKIM1; k=rsa; p=MIIB"));
    // 2048-bit SPKI is 392 base64 characters: the record needs two strings.
    assert_eq!(record.matches('"').count(), 4, "{record}");
    // p= is the SubjectPublicKeyInfo exactly as openssl writes it.
    let (spki, err, ok) = run(
        Path::new("openssl"),
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ],
        b"",
    );
    assert!(ok, "openssl pkey failed: {err}");
    let (_, txt) = txt_of(&record);
    assert_eq!(
        txt,
        format!(
            "v=DKIM1; k=rsa; p={}",
            base64::engine::general_purpose::STANDARD.encode(spki)
        )
    );
    sign_and_check_lines(&signer);
    full_suite(&signer);
}

#[test]
#[ignore = "needs dkimpy from PyPI: scripts/test-all installs it and runs these"]
fn rsa_2048_pkcs1_and_4096_pkcs8() {
    let dir = tempfile::tempdir().unwrap();
    let pkcs1 = gen_key(dir.path(), "pkcs1.pem", &["genrsa", "-traditional", "2048"]);
    assert!(std::fs::read_to_string(&pkcs1)
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let big = rsa_pkcs8(dir.path(), 4096);
    for key in [pkcs1, big] {
        let signer = Signer::load(&key, "sel", "mail.example.com", false).unwrap();
        let (headers, body) = multipart_message();
        let sig = sign(&signer, &headers, &body);
        verify_all(
            &signer,
            &[Case {
                label: key.display().to_string(),
                message: assemble(Some(&sig), &headers, &body),
                expect: true,
            }],
        );
    }
}

#[test]
#[ignore = "needs dkimpy from PyPI: scripts/test-all installs it and runs these"]
fn ed25519_from_openssl_genpkey() {
    let dir = tempfile::tempdir().unwrap();
    let key = gen_key(dir.path(), "ed.pem", &["genpkey", "-algorithm", "ed25519"]);
    let signer = Signer::load(&key, "ed", "example.com", false).unwrap();
    assert_eq!(signer.algorithm(), "ed25519-sha256");
    // RFC 8463 §4.2: the raw 32-byte key, 44 base64 characters, one string.
    let (_, txt) = txt_of(&signer.dns_record());
    assert_eq!(txt.len(), "v=DKIM1; k=ed25519; p=".len() + 44, "{txt}");
    sign_and_check_lines(&signer);
    full_suite(&signer);
}

#[test]
#[ignore = "needs dkimpy from PyPI: scripts/test-all installs it and runs these"]
fn ed25519_pkcs8_v2_from_ring() {
    let dir = tempfile::tempdir().unwrap();
    let rng = ring::rand::SystemRandom::new();
    let doc = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(doc.as_ref())
    );
    let key = dir.path().join("v2.pem");
    std::fs::write(&key, pem).unwrap();
    set_mode(&key, 0o600);
    let signer = Signer::load(&key, "v2", "bücher.example", false).unwrap();
    assert_eq!(signer.domain(), "xn--bcher-kva.example");
    let (headers, body) = text_message();
    let sig = sign(&signer, &headers, &body);
    assert!(sig.contains("d=xn--bcher-kva.example;"));
    verify_all(
        &signer,
        &[Case {
            label: "v2 key".into(),
            message: assemble(Some(&sig), &headers, &body),
            expect: true,
        }],
    );
}

fn load_err(key: &Path) -> DkimError {
    Signer::load(key, "sel", "example.com", false).unwrap_err()
}

#[test]
fn key_errors_have_the_right_class_and_message() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("nope.pem");
    let e = load_err(&missing);
    assert_eq!(e.class(), ErrorClass::Input);
    assert!(e.to_string().contains("nope.pem"), "{e}");

    let small = gen_key(dir.path(), "rsa1024.pem", &["genrsa", "1024"]);
    let e = load_err(&small);
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.to_string().contains("1024-bit RSA key"), "{e}");
    assert!(e.to_string().contains("2048 to 4096 bits"), "{e}");

    let large = rsa_pkcs8(dir.path(), 4608);
    let e = load_err(&large);
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.to_string().contains("4608-bit RSA key"), "{e}");

    let ec = gen_key(
        dir.path(),
        "ec.pem",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
    );
    let e = load_err(&ec);
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.to_string().contains("ECDSA"), "{e}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    set_mode(&garbage, 0o600);
    let e = load_err(&garbage);
    assert_eq!(e.class(), ErrorClass::Config);
    assert!(e.to_string().contains("malformed PKCS#8"), "{e}");

    let readable = rsa_pkcs8(dir.path(), 2048);
    if cfg!(unix) {
        set_mode(&readable, 0o644);
        let e = load_err(&readable);
        assert_eq!(e.class(), ErrorClass::Config);
        let text = e.to_string();
        assert!(
            text.contains(&format!("chmod 600 {}", readable.display())),
            "{text}"
        );
        assert!(text.contains("--dkim-key-insecure"), "{text}");
        assert!(Signer::load(&readable, "sel", "example.com", true).is_ok());
    }
}
