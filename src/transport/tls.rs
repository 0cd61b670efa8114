//! Certificate policy: which server certificates a run accepts, turned into one rustls
//! `ClientConfig` (ring provider only). RFC 8314 §3.3 / RFC 3207 §4.1: a submission client
//! verifies the server's identity; `--tls-fingerprint` and `--insecure` are the user's explicit
//! exceptions, and both still verify the handshake signatures so the peer must hold the key.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::TransportError;

/// Which server certificates to accept (cli.md `--ca-file`, `--tls-fingerprint`, `--insecure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPolicy {
    /// The built-in Mozilla roots (webpki-roots), chain and host name checked.
    WebRoots,
    /// The roots in this PEM file instead of the web roots, chain and host name checked.
    CaFile(PathBuf),
    /// Exactly the leaf certificate whose DER has this SHA-256; chain and name not checked.
    Fingerprint([u8; 32]),
    /// Any certificate; the caller prints the warning on every run.
    Insecure,
}

impl TlsPolicy {
    /// Parses a `--tls-fingerprint` value into `TlsPolicy::Fingerprint`.
    pub fn fingerprint(hex: &str) -> Result<Self, TransportError> {
        parse_fingerprint(hex).map(Self::Fingerprint)
    }

    /// Builds the client configuration once per run; reads the CA file here so a bad file is a
    /// configuration error before any connection is made.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TransportError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| TransportError::Tls {
                during: "building the TLS configuration".to_owned(),
                source: err,
            })?;
        let config = match self {
            Self::WebRoots => {
                let roots = RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Self::CaFile(path) => builder
                .with_root_certificates(load_ca_file(path)?)
                .with_no_client_auth(),
            Self::Fingerprint(sha256) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    pin: Some(*sha256),
                    provider,
                }))
                .with_no_client_auth(),
            Self::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    pin: None,
                    provider,
                }))
                .with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// Reads every certificate of a PEM file into a root store; an empty result is an error, since
/// trusting nothing would fail every handshake with a misleading "unknown issuer".
fn load_ca_file(path: &Path) -> Result<RootCertStore, TransportError> {
    let ca_error = |reason: String| TransportError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|err| ca_error(err.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|err| ca_error(format!("not valid PEM: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| ca_error(format!("unusable certificate: {err}")))?;
    }
    if roots.is_empty() {
        return Err(ca_error("no CERTIFICATE block found".to_owned()));
    }
    Ok(roots)
}

/// Parses 64 hex digits, with or without `:` between bytes, in either case.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], TransportError> {
    let bad = |reason: String| TransportError::Fingerprint { reason };
    let digits: Vec<u8> = text.trim().bytes().filter(|&b| b != b':').collect();
    if digits.len() != 64 {
        return Err(bad(format!(
            "expected 64 hexadecimal digits (a SHA-256), got {}",
            digits.len()
        )));
    }
    if let Some(pos) = digits.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(bad(format!("not hexadecimal at digit {}", pos + 1)));
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    Ok(out)
}

/// The value of one ASCII hex digit (checked by the caller).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// Lower-case hex without separators: the form `CertInfo::sha256` shows and
/// `--tls-fingerprint` takes.
pub fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a certificate's DER encoding.
pub(crate) fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The server name to verify and send as SNI. An IP address (also `[::1]`) is verified against
/// the certificate's IP SANs and sent without SNI (RFC 6066 §3 forbids literal addresses there).
/// IDN hosts must already be in A-label form.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TransportError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(bare.to_owned()).map_err(|err| TransportError::ServerName {
        host: host.to_owned(),
        reason: err.to_string(),
    })
}

/// The leaf did not match `--tls-fingerprint`; carried inside `CertificateError::Other` so
/// `TransportError::from_tls` can recognise it.
#[derive(Debug)]
pub(crate) struct FingerprintMismatch {
    expected: [u8; 32],
    presented: [u8; 32],
}

impl fmt::Display for FingerprintMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fingerprint mismatch: the server's certificate has SHA-256 {}, --tls-fingerprint expects {}",
            hex_lower(&self.presented),
            hex_lower(&self.expected)
        )
    }
}

impl std::error::Error for FingerprintMismatch {}

/// Accepts the leaf whose SHA-256 equals `pin` (or any leaf when `pin` is `None`, for
/// `--insecure`), while still checking the handshake signatures with the provider's
/// algorithms: the peer must own the certificate's private key.
#[derive(Debug)]
struct PinnedVerifier {
    pin: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(expected) = self.pin else {
            return Ok(ServerCertVerified::assertion());
        };
        let presented = sha256(end_entity);
        if presented == expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                    FingerprintMismatch {
                        expected,
                        presented,
                    },
                ))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::CertProblem;

    // SHA-256("abc"), FIPS 180-2 Appendix B.1.
    const ABC_HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn sha256_matches_fips_180_vector() {
        assert_eq!(hex_lower(&sha256(b"abc")), ABC_HEX);
    }

    #[test]
    fn fingerprint_accepts_colons_and_any_case() {
        let plain = parse_fingerprint(ABC_HEX).unwrap();
        let colons: String = ABC_HEX
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), plain);
        assert_eq!(hex_lower(&plain), ABC_HEX);
    }

    #[test]
    fn fingerprint_rejects_wrong_length_and_non_hex() {
        for bad in ["", "abcd", &ABC_HEX[..62], &format!("{ABC_HEX}00")] {
            let err = parse_fingerprint(bad).unwrap_err();
            assert!(matches!(err, TransportError::Fingerprint { .. }), "{bad}");
        }
        let mut not_hex = ABC_HEX.to_owned();
        not_hex.replace_range(10..12, "zz");
        assert!(matches!(
            parse_fingerprint(&not_hex),
            Err(TransportError::Fingerprint { .. })
        ));
        // A multi-byte character must be an error, not a panic on a char boundary.
        let mut plus = ABC_HEX[..62].to_owned();
        plus.push_str("+f");
        assert!(parse_fingerprint(&plus).is_err());
        let mut non_ascii = ABC_HEX[..62].to_owned();
        non_ascii.push('é');
        assert!(parse_fingerprint(&non_ascii).is_err());
    }

    #[test]
    fn server_name_ip_literals_and_hosts() {
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("smtp.example.com").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("bad host"),
            Err(TransportError::ServerName { .. })
        ));
    }

    #[test]
    fn ca_file_problems_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"").unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for path in [missing, empty, garbage] {
            let err = TlsPolicy::CaFile(path.clone()).client_config().unwrap_err();
            assert!(
                matches!(err, TransportError::CaFile { .. }),
                "{path:?}: {err}"
            );
            assert_eq!(err.class(), crate::transport::ErrorClass::Config);
        }
    }

    #[test]
    fn every_policy_builds() {
        let fp = TlsPolicy::fingerprint(ABC_HEX).unwrap();
        for policy in [TlsPolicy::WebRoots, TlsPolicy::Insecure, fp] {
            policy.client_config().unwrap();
        }
    }

    #[test]
    fn mismatch_is_recognised_as_fingerprint_problem() {
        let verifier = PinnedVerifier {
            pin: Some([0; 32]),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let cert = CertificateDer::from(b"abc".to_vec());
        let name = server_name("localhost").unwrap();
        let err = verifier
            .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
            .unwrap_err();
        let err = TransportError::from_tls("TLS handshake".to_owned(), err);
        let TransportError::Certificate { problem, reason } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*problem, CertProblem::FingerprintMismatch);
        assert!(reason.contains(ABC_HEX), "{reason}");
        let ok = PinnedVerifier {
            pin: Some(sha256(b"abc")),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        ok.verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
            .unwrap();
    }
}
