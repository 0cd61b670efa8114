//! Loading the signing key from a PEM file, and the public key for the DNS record.
//!
//! RSA keys (PKCS#1 or PKCS#8, 2048 to 4096 bits: RFC 8301 §3.2 forbids fewer than 1024 and we
//! require 2048) sign rsa-sha256; Ed25519 keys (PKCS#8 v1 or v2) sign ed25519-sha256 (RFC 8463).
//! The little DER reading done here only finds the algorithm and the modulus size, so that a
//! rejected key is explained precisely; ring does the real parsing and all the cryptography.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _, RsaKeyPair};

use super::DkimError;

/// No PEM private key comes near this; a bigger file is something else.
const MAX_KEY_FILE: u64 = 64 * 1024;
pub(crate) const MIN_RSA_BITS: usize = 2048;
pub(crate) const MAX_RSA_BITS: usize = 4096;

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

pub(crate) enum Key {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl Key {
    /// The public key as RFC 6376 §3.6.1 (`k=rsa`: SubjectPublicKeyInfo) and RFC 8463 §4.2
    /// (`k=ed25519`: the raw 32 bytes) publish it in `p=`.
    pub(crate) fn dns_public_key(&self) -> Vec<u8> {
        match self {
            Key::Rsa(pair) => rsa_spki(pair.public().as_ref()),
            Key::Ed25519(pair) => pair.public_key().as_ref().to_vec(),
        }
    }
}

/// Reads and parses the key file. Permissions are checked on the open file before its contents
/// are read, so a leaked key is refused without being used.
pub(crate) fn load(path: &Path, allow_insecure_permissions: bool) -> Result<Key, DkimError> {
    let unreadable = |source| DkimError::KeyUnreadable {
        path: path.to_path_buf(),
        source,
    };
    let format = |reason: String| DkimError::KeyFormat {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(DkimError::KeyNotAFile {
            path: path.to_path_buf(),
        });
    }
    if let Some(mode) = insecure_mode(&meta) {
        if !allow_insecure_permissions {
            return Err(DkimError::KeyPermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(format(format!(
            "{} bytes is too large for a PEM private key",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format("not a PEM text file (it is not UTF-8 text)".to_string()))?;
    parse_key(&text).map_err(|problem| match problem {
        Problem::Format(reason) => format(reason),
        Problem::RsaSize(bits) => DkimError::KeySize {
            path: path.to_path_buf(),
            bits,
        },
    })
}

#[cfg(unix)]
fn insecure_mode(meta: &std::fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn insecure_mode(_meta: &std::fs::Metadata) -> Option<u32> {
    None
}

#[derive(Debug, PartialEq)]
pub(crate) enum Problem {
    Format(String),
    RsaSize(usize),
}

fn fmt(reason: &str) -> Problem {
    Problem::Format(reason.to_string())
}

pub(crate) fn parse_key(text: &str) -> Result<Key, Problem> {
    let (label, der) = pem_block(text)?;
    match label.as_str() {
        "RSA PRIVATE KEY" => pkcs1_key(&der),
        "PRIVATE KEY" => pkcs8_key(&der),
        "ENCRYPTED PRIVATE KEY" => Err(fmt(
            "the key is encrypted; write an unencrypted copy with \
             `openssl pkey -in KEY -out PLAIN.pem` and protect it with chmod 600",
        )),
        "EC PRIVATE KEY" => Err(fmt(
            "ECDSA keys cannot sign DKIM; use an RSA (2048-4096 bits) or Ed25519 key",
        )),
        "OPENSSH PRIVATE KEY" => Err(fmt(
            "OpenSSH key files are not supported; use a PEM key such as \
             `openssl genpkey -algorithm ed25519`",
        )),
        other => Err(Problem::Format(format!(
            "unsupported PEM block \"{other}\"; expected BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY"
        ))),
    }
}

/// The first PEM block whose label names a private key (RFC 7468 §2), base64-decoded.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), Problem> {
    let mut lines = text.lines().map(str::trim);
    let label = loop {
        let Some(line) = lines.next() else {
            return Err(fmt(
                "no PEM private key found (expected a -----BEGIN PRIVATE KEY----- line)",
            ));
        };
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        {
            if label.ends_with("PRIVATE KEY") {
                break label.to_string();
            }
        }
    };
    let end = format!("-----END {label}-----");
    let mut b64 = String::new();
    for line in lines {
        if line == end {
            let der = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| Problem::Format(format!("the PEM base64 is invalid: {e}")))?;
            return Ok((label, der));
        }
        if line.contains(':') {
            // RFC 1421 headers such as "Proc-Type: 4,ENCRYPTED" mark a legacy encrypted key.
            return Err(fmt(
                "the key is encrypted (PEM headers present); write an unencrypted copy with \
                 `openssl pkey -in KEY -out PLAIN.pem`",
            ));
        }
        b64.push_str(line);
    }
    Err(Problem::Format(format!(
        "the PEM block has no \"{end}\" line"
    )))
}

fn pkcs8_key(der: &[u8]) -> Result<Key, Problem> {
    let (oid, private_key) = pkcs8_parts(der).ok_or_else(|| fmt("malformed PKCS#8 structure"))?;
    match oid {
        OID_RSA_ENCRYPTION => {
            check_rsa_size(private_key)?;
            RsaKeyPair::from_pkcs8(der)
                .map(Key::Rsa)
                .map_err(|e| Problem::Format(format!("the RSA key was rejected: {e}")))
        }
        OID_ED25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(Key::Ed25519)
            .map_err(|e| Problem::Format(format!("the Ed25519 key was rejected: {e}"))),
        OID_RSASSA_PSS => Err(fmt(
            "RSASSA-PSS keys cannot sign DKIM (it uses PKCS#1 v1.5); use an rsaEncryption key \
             from `openssl genpkey -algorithm RSA`",
        )),
        OID_EC_PUBLIC_KEY => Err(fmt(
            "ECDSA keys cannot sign DKIM; use an RSA (2048-4096 bits) or Ed25519 key",
        )),
        OID_ED448 => Err(fmt(
            "Ed448 keys cannot sign DKIM; use an RSA (2048-4096 bits) or Ed25519 key",
        )),
        _ => Err(fmt(
            "unsupported key algorithm; use an RSA (2048-4096 bits) or Ed25519 key",
        )),
    }
}

/// RSA keys outside 2048..=4096 bits are refused before ring sees them, so the message can
/// name the size (RFC 8301 §3.2 sets 1024 as the floor; 2048 is today's practice).
fn check_rsa_size(rsa_private_key: &[u8]) -> Result<(), Problem> {
    let bits = rsa_modulus_bits(rsa_private_key).ok_or_else(|| fmt("malformed RSA key"))?;
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(Problem::RsaSize(bits))
    }
}

fn pkcs1_key(rsa_private_key: &[u8]) -> Result<Key, Problem> {
    check_rsa_size(rsa_private_key)?;
    RsaKeyPair::from_der(rsa_private_key)
        .map(Key::Rsa)
        .map_err(|e| Problem::Format(format!("the RSA key was rejected: {e}")))
}

/// A DER TLV reader, just enough for the outer layers of PKCS#8 and RSAPrivateKey.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&t, rest) = self.0.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let (value, rest) = rest.split_at(len);
        self.0 = rest;
        Some(value)
    }
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;

/// RFC 5958 OneAsymmetricKey: the algorithm OID and the privateKey octets.
fn pkcs8_parts(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut outer = Der(Der(der).read(SEQUENCE)?);
    outer.read(INTEGER)?;
    let mut alg = Der(outer.read(SEQUENCE)?);
    let oid = alg.read(OID)?;
    let private_key = outer.read(OCTET_STRING)?;
    Some((oid, private_key))
}

fn rsa_modulus_bits(der: &[u8]) -> Option<usize> {
    let mut key = Der(Der(der).read(SEQUENCE)?);
    key.read(INTEGER)?;
    let modulus = key.read(INTEGER)?;
    let start = modulus.iter().position(|&b| b != 0)?;
    let significant = &modulus[start..];
    let leading = usize::try_from(significant[0].leading_zeros()).ok()?;
    Some(significant.len() * 8 - leading)
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der_tlv(tag: u8, value: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    der_len(value.len(), out);
    out.extend_from_slice(value);
}

/// Wraps ring's PKCS#1 RSAPublicKey in the SubjectPublicKeyInfo (RFC 5280 §4.1, RFC 3279 §2.3.1)
/// that `k=rsa` records carry.
fn rsa_spki(rsa_public_key: &[u8]) -> Vec<u8> {
    let mut alg = Vec::new();
    der_tlv(OID, OID_RSA_ENCRYPTION, &mut alg);
    alg.extend_from_slice(&[0x05, 0x00]);
    let mut bits = vec![0u8];
    bits.extend_from_slice(rsa_public_key);
    let mut body = Vec::new();
    der_tlv(SEQUENCE, &alg, &mut body);
    der_tlv(0x03, &bits, &mut body);
    let mut spki = Vec::new();
    der_tlv(SEQUENCE, &body, &mut spki);
    spki
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// RFC 8463 Appendix A.1: the example Ed25519 private key (the RFC 8032 §7.1 TEST 1 seed).
    pub(crate) const RFC8463_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
        -----END PRIVATE KEY-----\n";

    #[test]
    fn rfc8463_key_gives_the_published_public_key() {
        let key = parse_key(RFC8463_KEY_PEM).ok().unwrap();
        assert!(matches!(key, Key::Ed25519(_)));
        // RFC 8463 Appendix A.2: brisbane._domainkey.football.example.com p=
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(key.dns_public_key()),
            "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        );
    }

    #[test]
    fn ring_v2_pkcs8_ed25519_loads() {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(doc.as_ref())
        );
        assert!(matches!(parse_key(&pem), Ok(Key::Ed25519(_))));
    }

    fn problem(text: &str) -> String {
        match parse_key(text) {
            Err(Problem::Format(reason)) => reason,
            Err(Problem::RsaSize(bits)) => format!("size {bits}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn garbage_and_unsupported_keys_are_explained() {
        assert!(problem("hello").contains("no PEM private key"));
        assert!(
            problem("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n")
                .contains("base64")
        );
        assert!(problem("-----BEGIN PRIVATE KEY-----\nAAAA\n").contains("END PRIVATE KEY"));
        assert!(
            problem("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n")
                .contains("malformed PKCS#8")
        );
        assert!(
            problem("-----BEGIN EC PRIVATE KEY-----\nMAA=\n-----END EC PRIVATE KEY-----\n")
                .contains("ECDSA")
        );
        assert!(problem(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n"
        )
        .contains("encrypted"));
        assert!(problem(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nMAA=\n-----END RSA PRIVATE KEY-----\n"
        )
        .contains("encrypted"));
    }

    #[test]
    fn ecdsa_pkcs8_is_refused_by_algorithm() {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(doc.as_ref())
        );
        assert!(problem(&pem).contains("ECDSA"));
    }

    #[test]
    fn modulus_bits_ignore_the_sign_byte() {
        // SEQUENCE { INTEGER 0, INTEGER 0x00 0x80 0x00.. (2048 bits) }
        let mut n = vec![0x00, 0x80];
        n.extend(std::iter::repeat_n(0u8, 255));
        let mut inner = Vec::new();
        der_tlv(INTEGER, &[0], &mut inner);
        der_tlv(INTEGER, &n, &mut inner);
        let mut der = Vec::new();
        der_tlv(SEQUENCE, &inner, &mut der);
        assert_eq!(rsa_modulus_bits(&der), Some(2048));
    }

    #[test]
    fn der_lengths() {
        let mut out = Vec::new();
        der_len(5, &mut out);
        der_len(0x80, &mut out);
        der_len(0x1234, &mut out);
        assert_eq!(out, [5, 0x81, 0x80, 0x82, 0x12, 0x34]);
    }
}
