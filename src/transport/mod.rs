//! The blocking layer under the SMTP driver: TCP connect, implicit TLS (RFC 8314 §3.3),
//! STARTTLS (RFC 3207 §4) with the injection check of RFC 3207 §6, the certificate policy,
//! and a deadline on every socket operation. The SMTP conversation itself is `smtp::`.
//!
//! Typical use by the driver:
//! ```no_run
//! # use std::time::Duration;
//! # use quizmail::transport::*;
//! # fn run() -> Result<(), TransportError> {
//! let timeout = Duration::from_secs(60);
//! let config = TlsPolicy::WebRoots.client_config()?; // once per run
//! let tcp = connect("smtp.example.com", 587, timeout)?;
//! let mut stream = Stream::plain(tcp, timeout)?;
//! // ... greeting, EHLO, STARTTLS, 220, own reply buffer checked empty ...
//! stream.starttls(server_name("smtp.example.com")?, config)?;
//! let info = stream.tls_info();
//! # Ok(()) }
//! ```

mod error;
mod info;
mod stream;
mod tls;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

pub use error::{CertProblem, ErrorClass, TransportError};
pub use info::{CertInfo, TlsInfo};
pub use rustls::pki_types::ServerName;
pub use rustls::ClientConfig;
pub use stream::Stream;
pub use tls::{hex_lower, parse_fingerprint, server_name, TlsPolicy};

/// Connects to `host:port`, trying every resolved address in order (IPv6 and IPv4, as the
/// resolver orders them, RFC 6724), each with `timeout`; the error names the last failure.
/// `host` may be a bracketed literal such as `[::1]`. Name resolution is bounded by `timeout`
/// too ([`resolve`]). TCP_NODELAY is set: SMTP is a lock-step dialogue of short lines, and
/// Nagle would delay each command waiting for an ACK.
pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, TransportError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let target = if bare.contains(':') {
        format!("[{bare}]:{port}")
    } else {
        format!("{bare}:{port}")
    };
    let addrs = resolve(bare, port, timeout).map_err(|source| TransportError::Resolve {
        target: target.clone(),
        source,
    })?;
    connect_any(target, &addrs, timeout)
}

/// The system resolver (getaddrinfo) has no deadline of its own, so it runs on a helper thread
/// and is abandoned after `timeout`: a dead DNS server costs `--timeout`, not a hang. Address
/// literals need no lookup and are answered at once.
fn resolve(host: &str, port: u16, timeout: Duration) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_owned();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect::<Vec<_>>);
            // The receiver may have given up already; nothing is left to tell then.
            let _ = tx.send(result);
        })?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from the resolver within {}s", timeout.as_secs()),
        )),
    }
}

/// Tries `addrs` in order; the first that connects wins.
fn connect_any(
    target: String,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, TransportError> {
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(tcp) => {
                tcp.set_nodelay(true)
                    .map_err(|err| TransportError::from_io("connecting", err))?;
                return Ok(tcp);
            }
            Err(err) => last_error = Some(err),
        }
    }
    match last_error {
        Some(source) => Err(TransportError::Connect {
            target,
            tried: addrs.len(),
            source,
        }),
        None => Err(TransportError::NoAddress { target }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn resolve_answers_literals_at_once_and_names_through_the_resolver() {
        let literal = resolve("::1", 587, Duration::from_millis(1)).unwrap();
        assert_eq!(literal, vec!["[::1]:587".parse().unwrap()]);
        // localhost comes from /etc/hosts: no network is touched.
        let local = resolve("localhost", 25, Duration::from_secs(5)).unwrap();
        assert!(
            local.iter().all(|a| a.ip().is_loopback() && a.port() == 25),
            "{local:?}"
        );
        assert!(!local.is_empty());
    }

    #[test]
    fn connects_to_bracketed_and_bare_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = connect("127.0.0.1", port, Duration::from_secs(5)).unwrap();
        assert!(tcp.nodelay().unwrap());
        connect("[127.0.0.1]", port, Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn ipv6_literal_when_available() {
        // Hosts without IPv6 loopback cannot bind; that is not this code's failure.
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            return;
        };
        let port = listener.local_addr().unwrap().port();
        connect("[::1]", port, Duration::from_secs(5)).unwrap();
        connect("::1", port, Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn refused_names_target_and_is_temporary() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let err = connect("127.0.0.1", port, Duration::from_secs(5)).unwrap_err();
        let TransportError::Connect { target, source, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(target, &format!("127.0.0.1:{port}"));
        assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        assert_eq!(err.class(), ErrorClass::Temporary);
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")));
    }

    fn refused_addr() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    #[test]
    fn later_address_is_tried_after_a_refusal() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let live = listener.local_addr().unwrap();
        let addrs = [refused_addr(), live];
        let tcp = connect_any("x:1".into(), &addrs, Duration::from_secs(5)).unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), live);
    }

    #[test]
    fn every_address_failing_reports_the_count_and_no_address_is_its_own_error() {
        let addrs = [refused_addr(), refused_addr()];
        let err = connect_any("x:1".into(), &addrs, Duration::from_secs(5)).unwrap_err();
        assert!(
            matches!(err, TransportError::Connect { tried: 2, .. }),
            "{err:?}"
        );
        let err = connect_any("x:1".into(), &[], Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, TransportError::NoAddress { .. }), "{err:?}");
        assert_eq!(err.class(), ErrorClass::Temporary);
    }

    #[test]
    fn io_errors_are_classified() {
        use std::io::{Error, ErrorKind};
        let timeout = TransportError::from_io("the greeting", Error::from(ErrorKind::WouldBlock));
        assert!(matches!(&timeout, TransportError::Timeout { during } if during == "the greeting"));
        let closed = TransportError::from_io("DATA", Error::from(ErrorKind::UnexpectedEof));
        assert!(matches!(closed, TransportError::Closed { .. }));
        let tls = TransportError::from_io(
            "reply",
            Error::new(
                ErrorKind::InvalidData,
                rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
            ),
        );
        assert!(matches!(tls, TransportError::Tls { .. }));
        assert_eq!(tls.class(), ErrorClass::Protocol);
        let cert = TransportError::from_io(
            "TLS handshake",
            Error::new(
                ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            ),
        );
        assert!(matches!(
            cert,
            TransportError::Certificate {
                problem: CertProblem::UnknownIssuer,
                ..
            }
        ));
        assert_eq!(cert.class(), ErrorClass::Tls);
        assert!(cert
            .to_string()
            .contains("use --ca-file or --tls-fingerprint"));
    }
}
