//! Certificates made at test time with rcgen: a private CA, a good leaf for `localhost`,
//! `127.0.0.1` and `::1`, a leaf for another host, an expired leaf, and a self-signed leaf.
//! The CA is written as PEM into a temporary directory for `--ca-file`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tempfile::TempDir;

/// The whole test PKI; the PEM files live as long as this value.
pub struct Pki {
    dir: TempDir,
    /// PEM of the test CA: pass it as `--ca-file`.
    pub ca_file: PathBuf,
    /// The CA certificate itself.
    pub ca_cert: CertificateDer<'static>,
    /// Leaf for `localhost`, `127.0.0.1` and `::1`, issued by the CA.
    pub good: Identity,
    /// Leaf for `mail.example.net` only, issued by the CA.
    pub wrong_host: Identity,
    /// Leaf for `localhost`/`127.0.0.1`, issued by the CA, valid only during the year 2000.
    pub expired: Identity,
    /// Self-signed leaf for `localhost`/`127.0.0.1`, not under the CA.
    pub self_signed: Identity,
}

/// A certificate chain and its key, ready to serve.
pub struct Identity {
    /// Leaf first, then the CA when CA-issued (as real servers send intermediates).
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
    /// Lower-case hex SHA-256 of the leaf DER: the `--tls-fingerprint` value.
    pub sha256: String,
    /// The leaf's PEM file in the PKI directory (for `--ca-file` tests that trust a leaf).
    pub cert_file: PathBuf,
}

impl Identity {
    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// A rustls server configuration (ring provider, TLS 1.2 and 1.3) presenting this identity.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config_for(rustls::DEFAULT_VERSIONS)
    }

    /// The same, limited to TLS 1.2 (to see what a client reports for an older server).
    pub fn server_config_tls12(&self) -> Arc<ServerConfig> {
        self.server_config_for(&[&rustls::version::TLS12])
    }

    fn server_config_for(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ServerConfig> {
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .expect("ring supports TLS 1.2 and 1.3")
                .with_no_client_auth()
                .with_single_cert(
                    self.chain.clone(),
                    PrivateKeyDer::Pkcs8(self.key.clone_key()),
                )
                .expect("generated key matches certificate");
        Arc::new(config)
    }

    /// The fingerprint as a user might paste it: upper case, colon-separated.
    pub fn sha256_colons(&self) -> String {
        self.sha256
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).expect("hex is ASCII"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl Pki {
    /// Generates everything (ECDSA P-256, fast) into a fresh temporary directory.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "quizmail test CA");
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "quizmail tests");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let ca_cert = ca.der().clone();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write CA PEM");
        let issuer = Issuer::new(ca_params, ca_key);

        let local = ["localhost", "127.0.0.1", "::1"];
        let good = leaf(dir.path(), "good", &local, Some((&issuer, &ca_cert)), false);
        let wrong_host = leaf(
            dir.path(),
            "wrong-host",
            &["mail.example.net"],
            Some((&issuer, &ca_cert)),
            false,
        );
        let expired = leaf(
            dir.path(),
            "expired",
            &local,
            Some((&issuer, &ca_cert)),
            true,
        );
        let self_signed = leaf(dir.path(), "self-signed", &local, None, false);
        Pki {
            dir,
            ca_file,
            ca_cert,
            good,
            wrong_host,
            expired,
            self_signed,
        }
    }

    /// The temporary directory holding the PEM files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes an extra file (an empty or broken CA file, say) into the directory.
    pub fn write_file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write test file");
        path
    }
}

fn leaf(
    dir: &Path,
    name: &str,
    names: &[&str],
    issuer: Option<(&Issuer<'_, KeyPair>, &CertificateDer<'static>)>,
    expired: bool,
) -> Identity {
    let key = KeyPair::generate().expect("leaf key");
    let sans: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if expired {
        params.not_before = date_time_ymd(2000, 1, 1);
        params.not_after = date_time_ymd(2001, 1, 1);
    }
    let cert = match issuer {
        Some((issuer, _)) => params.signed_by(&key, issuer).expect("issued leaf"),
        None => params.self_signed(&key).expect("self-signed leaf"),
    };
    let mut chain = vec![cert.der().clone()];
    if let Some((_, ca_cert)) = issuer {
        chain.push(ca_cert.clone());
    }
    let cert_file = dir.join(format!("{name}.pem"));
    std::fs::write(&cert_file, cert.pem()).expect("write leaf PEM");
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.der());
    let sha256 = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Identity {
        chain,
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
        sha256,
        cert_file,
    }
}
