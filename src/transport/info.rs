//! What the TLS session negotiated and which certificates the server showed, for the report
//! and `--probe` (cli.md "Probe"). Certificate fields come from x509-parser (RFC 5280 §4.1).

use rustls::pki_types::CertificateDer;
use rustls::ClientConnection;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

use super::tls::{hex_lower, sha256};

/// The negotiated TLS parameters and the peer's certificate chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The IANA cipher suite name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The chain as the server sent it, leaf first.
    pub certificates: Vec<CertInfo>,
}

/// One certificate of the peer's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject distinguished name (RFC 4514 string form), e.g. `CN=localhost`.
    pub subject: String,
    /// The issuer distinguished name.
    pub issuer: String,
    /// Start of validity, RFC 3339 in UTC (`2025-01-01T00:00:00Z`).
    pub not_before: String,
    /// End of validity, RFC 3339 in UTC.
    pub not_after: String,
    /// SHA-256 of the DER, lower-case hex: the value `--tls-fingerprint` takes.
    pub sha256: String,
    /// Set when the certificate could not be parsed; the text fields are then empty. Possible
    /// only for chain certificates under `--tls-fingerprint` or `--insecure`.
    pub parse_error: Option<String>,
}

impl TlsInfo {
    /// Reads the negotiated parameters from a connection whose handshake is complete.
    pub(crate) fn from_connection(conn: &ClientConnection) -> Self {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|suite| {
                let id = suite.suite();
                id.as_str().map_or_else(|| format!("{id:?}"), str::to_owned)
            })
            .unwrap_or_default();
        let certificates = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(CertInfo::from_der)
            .collect();
        Self {
            version,
            cipher,
            certificates,
        }
    }
}

impl CertInfo {
    /// Describes one DER certificate; never fails, since the fingerprint is useful even when
    /// the rest cannot be parsed.
    pub fn from_der(der: &CertificateDer<'_>) -> Self {
        let sha256 = hex_lower(&sha256(der));
        match X509Certificate::from_der(der) {
            Ok((_, cert)) => Self {
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                not_before: rfc3339(&cert.validity().not_before),
                not_after: rfc3339(&cert.validity().not_after),
                sha256,
                parse_error: None,
            },
            Err(err) => Self {
                subject: String::new(),
                issuer: String::new(),
                not_before: String::new(),
                not_after: String::new(),
                sha256,
                parse_error: Some(err.to_string()),
            },
        }
    }
}

/// RFC 3339 `date-time` in UTC; X.509 times are UTC with whole seconds (RFC 5280 §4.1.2.5).
/// x509-parser decodes both UTCTime and GeneralizedTime with a zero offset.
fn rfc3339(time: &ASN1Time) -> String {
    let t = time.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
