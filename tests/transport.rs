//! The transport against the scripted server: connect failures, deadlines, implicit TLS,
//! STARTTLS in place, the injection check, each certificate policy, and `TlsInfo`. Also checks
//! the support library's `GoodServer` by driving SMTP by hand.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use quizmail::transport::{
    connect, server_name, CertProblem, ErrorClass, Stream, TlsPolicy, TransportError,
};
use support::certs::{Identity, Pki};
use support::server::{Options, Script, Server};
use support::smtp::{queue_id, Fault, GoodServer, Stage};

const TIMEOUT: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(300);

/// Reads one whole reply (up to the line with a space after the code), byte by byte so that
/// nothing after it is taken from the socket, as a careful STARTTLS client must.
fn read_reply(stream: &mut Stream) -> Result<String, TransportError> {
    let mut reply = Vec::new();
    let mut line_start = 0;
    loop {
        let mut byte = [0u8; 1];
        let n = stream
            .read(&mut byte)
            .map_err(|err| TransportError::from_io("a reply", err))?;
        if n == 0 {
            return Err(TransportError::closed("a reply"));
        }
        reply.push(byte[0]);
        if reply.ends_with(b"\r\n") {
            let line = &reply[line_start..];
            if line.get(3) != Some(&b'-') {
                return Ok(String::from_utf8_lossy(&reply).into_owned());
            }
            line_start = reply.len();
        }
    }
}

fn send(stream: &mut Stream, line: &str) {
    stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    stream.flush().unwrap();
}

fn command(stream: &mut Stream, line: &str) -> String {
    send(stream, line);
    read_reply(stream).unwrap()
}

fn ca_config(pki: &Pki) -> std::sync::Arc<quizmail::transport::ClientConfig> {
    TlsPolicy::CaFile(pki.ca_file.clone())
        .client_config()
        .unwrap()
}

/// A server that starts TLS at once with `identity`, greets and says goodbye.
fn implicit_server(identity: &Identity) -> Server {
    Server::one(
        Script::new()
            .start_tls(identity.server_config())
            .reply("220 mx.quizmail.test ESMTP")
            .expect("QUIT")
            .reply("221 2.0.0 Bye")
            .close(),
    )
}

/// Connects with implicit TLS as `host` under `policy`, greets and quits.
fn implicit_client(port: u16, host: &str, policy: &TlsPolicy) -> Result<Stream, TransportError> {
    let config = policy.client_config()?;
    let tcp = connect("127.0.0.1", port, TIMEOUT)?;
    let mut stream = Stream::implicit_tls(tcp, server_name(host)?, config, TIMEOUT)?;
    assert!(read_reply(&mut stream)?.starts_with("220 "));
    assert!(command(&mut stream, "QUIT").starts_with("221 "));
    Ok(stream)
}

fn cert_problem(err: &TransportError) -> CertProblem {
    match err {
        TransportError::Certificate { problem, .. } => *problem,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[test]
fn refused_connection_is_temporary() {
    let addr = support::closed_port();
    let err = connect("127.0.0.1", addr.port(), TIMEOUT).unwrap_err();
    let TransportError::Connect { source, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(err.class(), ErrorClass::Temporary);
}

#[test]
fn localhost_resolves_and_connects() {
    // Where "localhost" resolves to ::1 first, this also needs the fall-through to 127.0.0.1
    // (the unit tests check that order deterministically).
    let server = GoodServer::new().start();
    let tcp = connect("localhost", server.port(), TIMEOUT).unwrap();
    assert_eq!(tcp.peer_addr().unwrap(), server.addr());
    let mut stream = Stream::plain(tcp, TIMEOUT).unwrap();
    assert!(read_reply(&mut stream).unwrap().starts_with("220 "));
    drop(stream);
    server.finish_expecting_mismatch();
}

#[test]
fn silent_server_times_out_reading() {
    let server = Server::one(Script::new().stall(Duration::from_secs(10)));
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut stream = Stream::plain(tcp, SHORT).unwrap();
    let started = Instant::now();
    let err = read_reply(&mut stream).unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, TransportError::Timeout { during } if during == "a reply"),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Temporary);
    assert!(elapsed >= SHORT && elapsed < TIMEOUT, "{elapsed:?}");
    drop(stream);
    server.finish();
}

#[test]
fn closed_connection_is_not_a_timeout() {
    let server = Server::one(Script::new().reply("220 hello").close());
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut stream = Stream::plain(tcp, TIMEOUT).unwrap();
    read_reply(&mut stream).unwrap();
    let err = read_reply(&mut stream).unwrap_err();
    assert!(matches!(err, TransportError::Closed { .. }), "{err:?}");
    drop(stream);
    server.finish();
}

#[test]
fn endless_line_keeps_flowing_until_the_client_stops() {
    let server = Server::one(Script::new().endless_line());
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut stream = Stream::plain(tcp, TIMEOUT).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    while total < buf.len() {
        let n = stream.read(&mut buf[total..]).unwrap();
        assert!(n > 0);
        total += n;
    }
    assert!(buf.starts_with(b"220 xxx"));
    assert!(!buf.contains(&b'\n'));
    drop(stream);
    assert!(server.finish().finished);
}

#[test]
fn implicit_tls_with_ca_file_and_tls_info() {
    let pki = Pki::new();
    let server = implicit_server(&pki.good);
    let mut stream = implicit_client(
        server.port(),
        "localhost",
        &TlsPolicy::CaFile(pki.ca_file.clone()),
    )
    .unwrap();
    assert!(stream.is_tls());
    let info = stream.tls_info().unwrap();
    assert_eq!(info.version, "TLSv1.3");
    assert!(info.cipher.starts_with("TLS13_"), "{}", info.cipher);
    assert_eq!(info.certificates.len(), 2);
    let leaf = &info.certificates[0];
    assert_eq!(leaf.sha256, pki.good.sha256);
    assert_eq!(leaf.subject, "CN=localhost");
    assert_eq!(leaf.issuer, "CN=quizmail test CA, O=quizmail tests");
    // rcgen's default validity.
    assert_eq!(leaf.not_before, "1975-01-01T00:00:00Z");
    assert_eq!(leaf.not_after, "4096-01-01T00:00:00Z");
    assert_eq!(leaf.parse_error, None);
    assert_eq!(info.certificates[1].subject, leaf.issuer);
    stream.close().unwrap();
    let transcript = server.finish();
    transcript.only().assert_ok();
    assert_eq!(transcript.only().tls_started_at, Some(0));
    assert_eq!(transcript.only().sni.as_deref(), Some("localhost"));
}

#[test]
fn ip_address_host_verifies_ip_san() {
    let pki = Pki::new();
    let server = implicit_server(&pki.good);
    implicit_client(
        server.port(),
        "127.0.0.1",
        &TlsPolicy::CaFile(pki.ca_file.clone()),
    )
    .unwrap();
    let transcript = server.finish();
    transcript.only().assert_ok();
    // RFC 6066 §3: no literal addresses in SNI.
    assert_eq!(transcript.only().sni, None);
}

#[test]
fn tls12_server_is_reported_as_such() {
    let pki = Pki::new();
    let server = Server::one(
        Script::new()
            .start_tls(pki.good.server_config_tls12())
            .reply("220 old server")
            .expect("QUIT")
            .reply("221 bye"),
    );
    let stream = implicit_client(
        server.port(),
        "localhost",
        &TlsPolicy::CaFile(pki.ca_file.clone()),
    )
    .unwrap();
    let info = stream.tls_info().unwrap();
    assert_eq!(info.version, "TLSv1.2");
    assert!(
        info.cipher.starts_with("TLS_ECDHE_ECDSA_WITH_"),
        "{}",
        info.cipher
    );
    drop(stream);
    server.finish();
}

#[test]
fn starttls_upgrades_in_place() {
    let pki = Pki::new();
    let server = Server::one(
        Script::new()
            .reply("220 mx.quizmail.test ESMTP")
            .expect("EHLO client.test")
            .reply("250-mx.quizmail.test\r\n250 STARTTLS")
            .expect("STARTTLS")
            .reply("220 2.0.0 Ready to start TLS")
            .start_tls(pki.good.server_config())
            .expect("EHLO client.test")
            .reply("250 mx.quizmail.test")
            .expect("QUIT")
            .reply("221 2.0.0 Bye")
            .close(),
    );
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut plain = Stream::plain(tcp, TIMEOUT).unwrap();
    assert!(!plain.is_tls());
    assert!(plain.tls_info().is_none());
    read_reply(&mut plain).unwrap();
    assert!(command(&mut plain, "EHLO client.test").contains("STARTTLS"));
    assert!(command(&mut plain, "STARTTLS").starts_with("220 "));
    plain
        .starttls(server_name("localhost").unwrap(), ca_config(&pki))
        .unwrap();
    let mut tls = plain;
    assert!(tls.is_tls());
    assert!(command(&mut tls, "EHLO client.test").starts_with("250 "));
    assert!(command(&mut tls, "QUIT").starts_with("221 "));
    drop(tls);
    let transcript = server.finish();
    let conn = transcript.only();
    conn.assert_ok();
    let plain_part = b"EHLO client.test\r\nSTARTTLS\r\n";
    assert_eq!(conn.tls_started_at, Some(plain_part.len()));
    assert_eq!(&conn.received[..plain_part.len()], plain_part);
    assert_eq!(
        &conn.received[plain_part.len()..],
        b"EHLO client.test\r\nQUIT\r\n"
    );
}

#[test]
fn data_after_starttls_220_is_injection() {
    let pki = Pki::new();
    let server = Server::one(
        Script::new()
            .reply("220 mx.quizmail.test ESMTP")
            .expect("STARTTLS")
            .inject_after_starttls(b"250 injected reply\r\n")
            .start_tls(pki.good.server_config()),
    );
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut plain = Stream::plain(tcp, TIMEOUT).unwrap();
    read_reply(&mut plain).unwrap();
    assert!(command(&mut plain, "STARTTLS").starts_with("220 "));
    // Both arrived in one segment; give loopback a moment regardless.
    std::thread::sleep(Duration::from_millis(50));
    let err = plain
        .starttls(server_name("localhost").unwrap(), ca_config(&pki))
        .unwrap_err();
    assert!(matches!(err, TransportError::InjectedData), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Protocol);
    assert_eq!(
        err.to_string(),
        "protocol error: data sent after 220 to STARTTLS"
    );
    let transcript = server.finish_expecting_mismatch();
    // The client never began a handshake: the server saw no ClientHello.
    assert!(transcript.only().error.is_some());
    assert_eq!(transcript.only().received, b"STARTTLS\r\n");
}

#[test]
fn starttls_on_tls_stream_is_refused() {
    let pki = Pki::new();
    let server = implicit_server(&pki.good);
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let config = ca_config(&pki);
    let name = server_name("localhost").unwrap();
    let mut tls = Stream::implicit_tls(tcp, name.clone(), config.clone(), TIMEOUT).unwrap();
    let err = tls.starttls(name, config).unwrap_err();
    assert!(matches!(err, TransportError::AlreadyTls), "{err:?}");
    server.finish_expecting_mismatch();
}

#[test]
fn wrong_host_certificate_is_rejected() {
    let pki = Pki::new();
    let server = implicit_server(&pki.wrong_host);
    let err = implicit_client(
        server.port(),
        "localhost",
        &TlsPolicy::CaFile(pki.ca_file.clone()),
    )
    .unwrap_err();
    assert_eq!(cert_problem(&err), CertProblem::WrongName);
    assert_eq!(err.class(), ErrorClass::Tls);
    let text = err.to_string();
    assert!(
        text.starts_with("certificate verification failed: "),
        "{text}"
    );
    assert!(text.contains("mail.example.net"), "{text}");
    assert!(
        text.ends_with("use --ca-file or --tls-fingerprint"),
        "{text}"
    );
    let transcript = server.finish_expecting_mismatch();
    assert!(transcript
        .only()
        .error
        .as_deref()
        .unwrap_or("")
        .contains("TLS handshake failed"));
}

#[test]
fn self_signed_certificate_is_untrusted() {
    let pki = Pki::new();
    let server = implicit_server(&pki.self_signed);
    let err = implicit_client(
        server.port(),
        "localhost",
        &TlsPolicy::CaFile(pki.ca_file.clone()),
    )
    .unwrap_err();
    assert_eq!(cert_problem(&err), CertProblem::UnknownIssuer);
    assert_eq!(err.class(), ErrorClass::Tls);
    server.finish_expecting_mismatch();
}

#[test]
fn private_ca_is_untrusted_by_web_roots() {
    let pki = Pki::new();
    let server = implicit_server(&pki.good);
    let err = implicit_client(server.port(), "localhost", &TlsPolicy::WebRoots).unwrap_err();
    assert_eq!(cert_problem(&err), CertProblem::UnknownIssuer);
    server.finish_expecting_mismatch();
}

#[test]
fn expired_certificate_is_rejected() {
    let pki = Pki::new();
    let server = implicit_server(&pki.expired);
    let err = implicit_client(
        server.port(),
        "localhost",
        &TlsPolicy::CaFile(pki.ca_file.clone()),
    )
    .unwrap_err();
    assert_eq!(cert_problem(&err), CertProblem::Expired);
    assert!(err.to_string().contains("expired"), "{err}");
    server.finish_expecting_mismatch();
}

#[test]
fn fingerprint_accepts_exactly_that_leaf() {
    let pki = Pki::new();
    // Self-signed and for another host: the pin alone decides.
    for (identity, host) in [
        (&pki.self_signed, "localhost"),
        (&pki.wrong_host, "localhost"),
    ] {
        let server = implicit_server(identity);
        let policy = TlsPolicy::fingerprint(&identity.sha256_colons()).unwrap();
        let stream = implicit_client(server.port(), host, &policy).unwrap();
        assert_eq!(
            stream.tls_info().unwrap().certificates[0].sha256,
            identity.sha256
        );
        drop(stream);
        server.finish().only().assert_ok();
    }
}

#[test]
fn fingerprint_mismatch_is_rejected() {
    let pki = Pki::new();
    let server = implicit_server(&pki.self_signed);
    let policy = TlsPolicy::fingerprint(&pki.good.sha256).unwrap();
    let err = implicit_client(server.port(), "localhost", &policy).unwrap_err();
    assert_eq!(cert_problem(&err), CertProblem::FingerprintMismatch);
    assert_eq!(err.class(), ErrorClass::Tls);
    let text = err.to_string();
    assert!(text.contains(&pki.self_signed.sha256), "{text}");
    assert!(text.contains(&pki.good.sha256), "{text}");
    server.finish_expecting_mismatch();
}

#[test]
fn insecure_accepts_any_certificate() {
    let pki = Pki::new();
    for identity in [&pki.expired, &pki.self_signed, &pki.wrong_host] {
        let server = implicit_server(identity);
        let stream = implicit_client(server.port(), "localhost", &TlsPolicy::Insecure).unwrap();
        let info = stream.tls_info().unwrap();
        assert_eq!(info.certificates[0].sha256, identity.sha256);
        drop(stream);
        server.finish().only().assert_ok();
    }
    let server = implicit_server(&pki.expired);
    let stream = implicit_client(server.port(), "localhost", &TlsPolicy::Insecure).unwrap();
    let leaf = &stream.tls_info().unwrap().certificates[0];
    assert_eq!(leaf.not_before, "2000-01-01T00:00:00Z");
    assert_eq!(leaf.not_after, "2001-01-01T00:00:00Z");
    drop(stream);
    server.finish();
}

#[test]
fn silent_server_times_out_the_handshake() {
    let (_listener, addr) = support::silent_listener();
    let pki = Pki::new();
    let tcp = connect("127.0.0.1", addr.port(), TIMEOUT).unwrap();
    let started = Instant::now();
    let err = Stream::implicit_tls(
        tcp,
        server_name("localhost").unwrap(),
        ca_config(&pki),
        SHORT,
    )
    .unwrap_err();
    assert!(
        matches!(&err, TransportError::Timeout { during } if during == "TLS handshake"),
        "{err:?}"
    );
    assert!(started.elapsed() < TIMEOUT);
}

#[test]
fn close_during_handshake_is_closed() {
    let pki = Pki::new();
    let server = Server::one(Script::new().close());
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let err = Stream::implicit_tls(
        tcp,
        server_name("localhost").unwrap(),
        ca_config(&pki),
        TIMEOUT,
    )
    .unwrap_err();
    assert!(matches!(err, TransportError::Closed { .. }), "{err:?}");
    server.finish_expecting_mismatch();
}

#[test]
fn plaintext_server_on_tls_port_is_a_tls_error() {
    let pki = Pki::new();
    let server = Server::one(Script::new().reply("220 I speak cleartext"));
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let err = Stream::implicit_tls(
        tcp,
        server_name("localhost").unwrap(),
        ca_config(&pki),
        TIMEOUT,
    )
    .unwrap_err();
    assert!(matches!(err, TransportError::Tls { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Protocol);
    server.finish_expecting_mismatch();
}

#[test]
fn closed_tls_connection_is_closed_not_timeout() {
    let pki = Pki::new();
    let server = Server::one(
        Script::new()
            .start_tls(pki.good.server_config())
            .reply("220 hello")
            .close(),
    );
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut stream = Stream::implicit_tls(
        tcp,
        server_name("localhost").unwrap(),
        ca_config(&pki),
        TIMEOUT,
    )
    .unwrap();
    read_reply(&mut stream).unwrap();
    let err = read_reply(&mut stream).unwrap_err();
    assert!(matches!(err, TransportError::Closed { .. }), "{err:?}");
    server.finish();
}

#[test]
fn tls_read_times_out_when_server_stalls() {
    let pki = Pki::new();
    let server = Server::one(
        Script::new()
            .start_tls(pki.good.server_config())
            .stall(Duration::from_secs(10)),
    );
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut stream = Stream::implicit_tls(
        tcp,
        server_name("localhost").unwrap(),
        ca_config(&pki),
        SHORT,
    )
    .unwrap();
    assert_eq!(stream.timeout(), SHORT);
    let err = read_reply(&mut stream).unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err:?}");
    drop(stream);
    server.finish();
}

// --- The support library's GoodServer, driven by hand ---

#[test]
fn good_server_full_dialogue_with_starttls_auth_and_data() {
    let pki = Pki::new();
    let server = GoodServer::new()
        .starttls(pki.good.server_config())
        .auth(&["PLAIN", "LOGIN"], "ada", "s3cret")
        .message(
            Some("quiz@example.com"),
            &["ada@example.com", "bob@example.com"],
        )
        .start();
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut s = Stream::plain(tcp, TIMEOUT).unwrap();
    assert!(read_reply(&mut s)
        .unwrap()
        .starts_with("220 mx.quizmail.test"));
    let ehlo = command(&mut s, "EHLO client.test");
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(command(&mut s, "STARTTLS").starts_with("220 "));
    s.starttls(server_name("localhost").unwrap(), ca_config(&pki))
        .unwrap();
    let ehlo = command(&mut s, "EHLO client.test");
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    let plain = BASE64.encode(b"\0ada\0s3cret");
    assert!(command(&mut s, &format!("AUTH PLAIN {plain}")).starts_with("235 "));
    assert!(command(&mut s, "MAIL FROM:<quiz@example.com> SIZE=40").starts_with("250 "));
    assert!(command(&mut s, "RCPT TO:<ada@example.com>").starts_with("250 "));
    assert!(command(&mut s, "RCPT TO:<bob@example.com>").starts_with("250 "));
    assert!(command(&mut s, "DATA").starts_with("354 "));
    s.write_all(b"Subject: hi\r\n\r\n..leading dot\r\nend\r\n.\r\n")
        .unwrap();
    s.flush().unwrap();
    let queued = read_reply(&mut s).unwrap();
    assert!(queued.contains(&queue_id(0)), "{queued}");
    assert!(command(&mut s, "QUIT").starts_with("221 "));
    drop(s);
    let transcript = server.finish();
    let conn = transcript.only();
    conn.assert_ok();
    assert_eq!(conn.auth.as_ref().unwrap().mechanism, "PLAIN");
    assert!(conn.auth.as_ref().unwrap().accepted);
    assert_eq!(conn.messages.len(), 1);
    assert_eq!(
        conn.messages[0].content,
        b"Subject: hi\r\n\r\n.leading dot\r\nend\r\n"
    );
    assert_eq!(
        conn.messages[0].wire,
        b"Subject: hi\r\n\r\n..leading dot\r\nend\r\n"
    );
    assert!(conn.has_command("quit"));
}

#[test]
fn good_server_cram_md5_and_bdat() {
    let server = GoodServer::new()
        .auth(&["CRAM-MD5"], "tim", "tanstaaftanstaaf")
        .bdat()
        .start();
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut s = Stream::plain(tcp, TIMEOUT).unwrap();
    read_reply(&mut s).unwrap();
    let ehlo = command(&mut s, "EHLO client.test");
    assert!(
        ehlo.contains("CHUNKING") && ehlo.contains("AUTH CRAM-MD5"),
        "{ehlo}"
    );
    let challenge = command(&mut s, "AUTH CRAM-MD5");
    let challenge = BASE64.decode(challenge[4..].trim()).unwrap();
    let mut mac = Hmac::<md5::Md5>::new_from_slice(b"tanstaaftanstaaf").unwrap();
    mac.update(&challenge);
    let digest: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let answer = BASE64.encode(format!("tim {digest}"));
    assert!(command(&mut s, &answer).starts_with("235 "));
    assert!(command(&mut s, "MAIL FROM:<a@example.com>").starts_with("250 "));
    assert!(command(&mut s, "RCPT TO:<b@example.com>").starts_with("250 "));
    s.write_all(b"BDAT 5\r\nhello").unwrap();
    s.flush().unwrap();
    assert!(read_reply(&mut s).unwrap().starts_with("250 "));
    s.write_all(b"BDAT 7 LAST\r\n, world").unwrap();
    s.flush().unwrap();
    let queued = read_reply(&mut s).unwrap();
    assert!(queued.starts_with("250 2.0.0 Ok: queued"), "{queued}");
    assert!(command(&mut s, "QUIT").starts_with("221 "));
    drop(s);
    let transcript = server.finish();
    let conn = transcript.only();
    conn.assert_ok();
    assert!(conn.auth.as_ref().unwrap().accepted);
    assert_eq!(conn.messages[0].content, b"hello, world");
    assert!(conn.messages[0].bdat);
}

#[test]
fn good_server_wrong_password_then_tail() {
    let server = GoodServer::new().auth(&["PLAIN"], "ada", "right").start();
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut s = Stream::plain(tcp, TIMEOUT).unwrap();
    read_reply(&mut s).unwrap();
    command(&mut s, "EHLO client.test");
    let plain = BASE64.encode(b"\0ada\0wrong");
    assert!(command(&mut s, "AUTH PLAIN").starts_with("334"));
    assert!(command(&mut s, &plain).starts_with("535 "));
    assert!(command(&mut s, "MAIL FROM:<a@example.com>").starts_with("503 "));
    assert!(command(&mut s, "QUIT").starts_with("221 "));
    drop(s);
    let transcript = server.finish();
    let conn = transcript.only();
    conn.assert_ok();
    assert_eq!(
        conn.auth,
        Some(support::server::AuthRecord {
            mechanism: "PLAIN".into(),
            user: "ada".into(),
            accepted: false
        })
    );
    assert!(!conn.has_command("DATA"));
}

#[test]
fn good_server_faults_rcpt_and_disconnect() {
    let server = GoodServer::new()
        .message(None, &["a@example.com", "b@example.com"])
        .fault(
            Stage::Rcpt(0, 0),
            Fault::Reply("550 5.1.1 User unknown".into()),
        )
        .fault(Stage::DataEnd(0), Fault::Disconnect)
        .start();
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut s = Stream::plain(tcp, TIMEOUT).unwrap();
    read_reply(&mut s).unwrap();
    command(&mut s, "EHLO client.test");
    command(&mut s, "MAIL FROM:<q@example.com>");
    assert!(command(&mut s, "RCPT TO:<a@example.com>").starts_with("550 5.1.1"));
    assert!(command(&mut s, "RCPT TO:<b@example.com>").starts_with("250 "));
    assert!(command(&mut s, "DATA").starts_with("354 "));
    // QUIT rides with the end of the data, as a pipelining client sends it (RFC 2920 §3.1).
    s.write_all(b"body\r\n.\r\nQUIT\r\n").unwrap();
    s.flush().unwrap();
    let err = read_reply(&mut s).unwrap_err();
    assert!(matches!(err, TransportError::Closed { .. }), "{err:?}");
    drop(s);
    server.finish().only().assert_ok();
}

#[test]
fn good_server_421_closes_and_missing_starttls_tails() {
    let server = GoodServer::new()
        .fault(
            Stage::Greeting,
            Fault::Reply("421 4.3.2 Service not available".into()),
        )
        .start();
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut s = Stream::plain(tcp, TIMEOUT).unwrap();
    assert!(read_reply(&mut s).unwrap().starts_with("421 "));
    assert!(matches!(
        read_reply(&mut s),
        Err(TransportError::Closed { .. })
    ));
    drop(s);
    server.finish().only().assert_ok();

    let pki = Pki::new();
    let server = GoodServer::new()
        .starttls(pki.good.server_config())
        .omit_starttls()
        .start();
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut s = Stream::plain(tcp, TIMEOUT).unwrap();
    read_reply(&mut s).unwrap();
    assert!(!command(&mut s, "EHLO client.test").contains("STARTTLS"));
    assert!(command(&mut s, "QUIT").starts_with("221 "));
    drop(s);
    server.finish().only().assert_ok();
}

#[test]
fn server_records_script_mismatch_and_missing_connections() {
    let server = Server::start_with(
        vec![
            Script::new().reply("220 hi").expect("EHLO a"),
            Script::new().reply("220 never reached"),
        ],
        Options {
            accept_timeout: Duration::from_secs(30),
            ..Options::default()
        },
    );
    let tcp = connect("127.0.0.1", server.port(), TIMEOUT).unwrap();
    let mut s = Stream::plain(tcp, TIMEOUT).unwrap();
    read_reply(&mut s).unwrap();
    send(&mut s, "HELO b");
    assert!(matches!(
        read_reply(&mut s),
        Err(TransportError::Closed { .. })
    ));
    drop(s);
    // finish() must not wait for the second, never-made connection.
    let started = Instant::now();
    let transcript = server.finish_expecting_mismatch();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(transcript.finished);
    assert_eq!(transcript.connections.len(), 1);
    let error = transcript.connections[0].error.as_deref().unwrap();
    assert!(
        error.contains("\"EHLO a\"") && error.contains("\"HELO b\""),
        "{error}"
    );
}
