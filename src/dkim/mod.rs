//! DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256 (RFC 8463), relaxed/relaxed.
//!
//! Implements: key loading ([`Signer::load`], RFC 6376 §3.3, RFC 8301 key sizes), relaxed header
//! and body canonicalisation (§3.4.2, §3.4.4) computed in one streamed pass over the body, the
//! signed-header choice and bottom-up selection (§5.4, §5.4.2), the `DKIM-Signature` field
//! (§3.5, §3.7), the key record to publish (§3.6.1, RFC 8463 §4.2), and DMARC alignment
//! warnings ([`alignment_warnings`], RFC 7489 §3.1). Only ring does cryptography.
//!
//! The signer does no I/O of its own while signing: the caller passes the header fields and a
//! closure that writes the body, and injects the time for `t=`.

mod align;
mod canon;
mod key;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::{digest, rand, signature};

pub use align::alignment_warnings;
use canon::{relaxed_header, relaxed_value, RelaxedBody};
use key::Key;

/// The name of the field whose value [`Signer::sign`] returns.
pub const HEADER_NAME: &str = "DKIM-Signature";

/// Header fields signed when present (RFC 6376 §5.4.1 recommends these). From must be present
/// and is signed once more than it occurs, so a From added in transit breaks the signature.
const SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
];

/// Longest line the folded field aims for (RFC 5322 §2.1.1).
const LINE: usize = 78;

/// Which exit status an error maps to: input (66), configuration (78) or data (65).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// A file that cannot be read: the key, or an input the body closure reads.
    Input,
    /// A key, selector or domain that cannot be used as given.
    Config,
    /// Header fields that cannot be signed as given.
    Data,
}

/// Why a key could not be loaded or a message signed; [`DkimError::class`] picks the exit status.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot read DKIM key {}: {source}", path.display())]
    KeyUnreadable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("DKIM key {} is not a regular file", path.display())]
    KeyNotAFile { path: PathBuf },
    #[error(
        "DKIM key {} is readable by group or others (mode {mode:04o}); run `chmod 600 {}` \
         or pass --dkim-key-insecure to use it anyway",
        path.display(),
        path.display()
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("DKIM key {}: {reason}", path.display())]
    KeyFormat { path: PathBuf, reason: String },
    #[error(
        "DKIM key {} is a {bits}-bit RSA key; use 2048 to 4096 bits \
         (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`)",
        path.display()
    )]
    KeySize { path: PathBuf, bits: usize },
    #[error("invalid DKIM selector {value:?}: {reason}")]
    Selector { value: String, reason: &'static str },
    #[error("invalid DKIM domain {value:?}: {reason}")]
    Domain { value: String, reason: &'static str },
    #[error("cannot DKIM-sign header field {name:?}: {reason}")]
    Header { name: String, reason: &'static str },
    #[error("the message has no From header field, which DKIM must sign (RFC 6376 §5.4)")]
    MissingFrom,
    #[error("writing the message body for the DKIM body hash failed: {0}")]
    Body(#[source] io::Error),
    #[error("the clock is before 1970, so the DKIM t= tag cannot be set")]
    Clock,
    #[error("DKIM signing failed: the system random number generator failed")]
    Sign,
}

impl DkimError {
    /// Input (exit 66), configuration (78) or data (65). A body closure error is input: it
    /// means a file the message reads (an attachment) failed while streaming.
    pub fn class(&self) -> ErrorClass {
        match self {
            DkimError::KeyUnreadable { .. } | DkimError::KeyNotAFile { .. } => ErrorClass::Input,
            DkimError::Body(_) => ErrorClass::Input,
            DkimError::Header { .. } | DkimError::MissingFrom => ErrorClass::Data,
            DkimError::KeyPermissions { .. }
            | DkimError::KeyFormat { .. }
            | DkimError::KeySize { .. }
            | DkimError::Selector { .. }
            | DkimError::Domain { .. }
            | DkimError::Clock
            | DkimError::Sign => ErrorClass::Config,
        }
    }
}

/// A loaded signing key with its selector and signing domain.
pub struct Signer {
    key: Key,
    selector: String,
    domain: String,
    /// Only RSA uses it, for ring's blinding; the signature itself is deterministic.
    rng: rand::SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("algorithm", &self.algorithm())
            .field("selector", &self.selector)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads a PEM key: RSA (PKCS#1 `BEGIN RSA PRIVATE KEY` or PKCS#8 `BEGIN PRIVATE KEY`,
    /// 2048–4096 bits) or Ed25519 (PKCS#8 v1 or v2). A key readable by group or others is
    /// refused unless `allow_insecure_permissions`. The domain may be given in U-labels; it is
    /// signed as A-labels.
    pub fn load(
        path: &Path,
        selector: &str,
        domain: &str,
        allow_insecure_permissions: bool,
    ) -> Result<Signer, DkimError> {
        let selector = validate_selector(selector)?;
        let domain = validate_domain(domain)?;
        let key = key::load(path, allow_insecure_permissions)?;
        Ok(Signer {
            key,
            selector,
            domain,
            rng: rand::SystemRandom::new(),
        })
    }

    /// The `a=` value this key signs with.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        }
    }

    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The signing domain (`d=`), in A-labels.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Signs for `domain` from now on (validated, U-labels become A-labels): a prepared
    /// message's From domain, the default `d=`, is known only once the message is read.
    pub fn set_domain(&mut self, domain: &str) -> Result<(), DkimError> {
        self.domain = validate_domain(domain)?;
        Ok(())
    }

    /// Signs a message and returns the VALUE of the `DKIM-Signature` field (without the name,
    /// colon or final CRLF), folded so that `DKIM-Signature: VALUE` keeps lines ≤ 78 octets.
    /// Write it as `DKIM-Signature: {value}\r\n` before the other header fields.
    ///
    /// `headers` are the message's fields in order, as written (values may hold folding
    /// CRLF+WSP; a leading space after the colon is optional). `body` must write the body
    /// exactly as sent, CRLF line ends, before dot-stuffing. `now` gives `t=`.
    pub fn sign(
        &self,
        headers: &[(String, String)],
        body: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
        now: SystemTime,
    ) -> Result<String, DkimError> {
        check_headers(headers)?;
        let h = signed_header_names(headers)?;
        let timestamp = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| DkimError::Clock)?
            .as_secs();
        let body_hash = body_hash(body)?;
        let tags = [
            "v=1;".to_string(),
            format!("a={};", self.algorithm()),
            "c=relaxed/relaxed;".to_string(),
            format!("d={};", self.domain),
            format!("s={};", self.selector),
            format!("t={timestamp};"),
        ];
        let mut folder = Folder::new();
        for tag in &tags {
            folder.word(tag, true);
        }
        for (i, name) in h.iter().enumerate() {
            let last = if i + 1 == h.len() { ";" } else { "" };
            let token = if i == 0 {
                format!("h={name}{last}")
            } else {
                format!(":{name}{last}")
            };
            folder.word(&token, i == 0);
        }
        folder.word(&format!("bh={};", b64(body_hash.as_ref())), true);
        folder.new_line();
        folder.word("b=", false);
        let unsigned = folder.text.clone();
        let names: Vec<&str> = h.iter().map(String::as_str).collect();
        let signature = self.sign_header_block(headers, &names, &unsigned)?;
        folder.base64(&b64(&signature));
        Ok(folder.text)
    }

    /// Signs the hash input of §3.7 for a `DKIM-Signature` value that ends with an empty `b=`.
    /// `sign` builds that value; the RFC 8463 test passes the RFC's own.
    fn sign_header_block(
        &self,
        headers: &[(String, String)],
        h: &[&str],
        unsigned_value: &str,
    ) -> Result<Vec<u8>, DkimError> {
        let data = header_hash_input(headers, h, unsigned_value);
        match &self.key {
            Key::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &self.rng, &data, &mut sig)
                    .map_err(|_| DkimError::Sign)?;
                Ok(sig)
            }
            // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data, not the data.
            Key::Ed25519(pair) => {
                let hash = digest::digest(&digest::SHA256, &data);
                Ok(pair.sign(hash.as_ref()).as_ref().to_vec())
            }
        }
    }

    /// The TXT record to publish (RFC 6376 §3.6.1), as one zone-file line, the text split into
    /// strings of at most 255 octets (RFC 1035 §3.3.14).
    pub fn dns_record(&self) -> String {
        let k = match self.key {
            Key::Rsa(_) => "rsa",
            Key::Ed25519(_) => "ed25519",
        };
        let text = format!("v=DKIM1; k={k}; p={}", b64(&self.key.dns_public_key()));
        let strings: Vec<String> = text
            .as_bytes()
            .chunks(255)
            .map(|chunk| format!("\"{}\"", String::from_utf8_lossy(chunk)))
            .collect();
        format!(
            "{}._domainkey.{}. IN TXT {}",
            self.selector,
            self.domain,
            strings.join(" ")
        )
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Streams the body through the relaxed canonicaliser into SHA-256 (`bh=`, RFC 6376 §3.7).
fn body_hash(
    body: &mut dyn FnMut(&mut dyn io::Write) -> io::Result<()>,
) -> Result<digest::Digest, DkimError> {
    let mut canon = RelaxedBody::new();
    body(&mut canon).map_err(DkimError::Body)?;
    Ok(canon.finish())
}

/// Field names must be printable ASCII without a colon (RFC 5322 §3.6.8); a CR or LF in a value
/// is only allowed as CRLF followed by WSP (folding, §2.2.3), else the header would not be what
/// was signed.
fn check_headers(headers: &[(String, String)]) -> Result<(), DkimError> {
    for (name, value) in headers {
        let bad = |reason| {
            Err(DkimError::Header {
                name: name.clone(),
                reason,
            })
        };
        if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
            return bad("the field name is not printable ASCII without a colon");
        }
        let bytes = value.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let folding = match b {
                b'\r' => {
                    bytes.get(i + 1) == Some(&b'\n')
                        && matches!(bytes.get(i + 2), Some(b' ' | b'\t'))
                }
                b'\n' => {
                    i > 0 && bytes[i - 1] == b'\r' && matches!(bytes.get(i + 1), Some(b' ' | b'\t'))
                }
                _ => true,
            };
            if !folding {
                return bad("the value has a CR or LF that is not folding (CRLF followed by WSP)");
            }
        }
    }
    Ok(())
}

/// The `h=` list (lower case): every occurrence of each field of [`SIGNED_HEADERS`] that is
/// present, and From once more than it occurs (RFC 6376 §5.4, §8.15).
fn signed_header_names(headers: &[(String, String)]) -> Result<Vec<String>, DkimError> {
    let mut h = Vec::new();
    for wanted in SIGNED_HEADERS {
        let count = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .count();
        let times = if wanted == "From" {
            if count == 0 {
                return Err(DkimError::MissingFrom);
            }
            count + 1
        } else {
            count
        };
        h.extend(std::iter::repeat_n(wanted.to_ascii_lowercase(), times));
    }
    Ok(h)
}

/// The data that is signed (RFC 6376 §3.7): each field named in `h`, the last not yet used
/// instance first (§5.4.2), a name with no instance left contributing nothing; then the
/// `DKIM-Signature` field itself with an empty `b=` and no final CRLF.
fn header_hash_input(headers: &[(String, String)], h: &[&str], unsigned_value: &str) -> Vec<u8> {
    let mut used = vec![false; headers.len()];
    let mut data = Vec::new();
    for name in h {
        let found =
            headers.iter().enumerate().rev().find(|(i, (field, _))| {
                !used[*i] && field.trim().eq_ignore_ascii_case(name.trim())
            });
        if let Some((i, (field, value))) = found {
            used[i] = true;
            relaxed_header(field, value, &mut data);
        }
    }
    data.extend_from_slice(b"dkim-signature:");
    relaxed_value(unsigned_value, &mut data);
    data
}

/// Builds the folded field value, counting from the start of the `DKIM-Signature: ` line.
struct Folder {
    text: String,
    column: usize,
}

impl Folder {
    fn new() -> Self {
        Folder {
            text: String::new(),
            column: HEADER_NAME.len() + 2,
        }
    }

    fn new_line(&mut self) {
        self.text.push_str("\r\n ");
        self.column = 1;
    }

    /// Appends a token, after a space when `spaced`; folds first when it would not fit. A token
    /// that is longer than a line on its own stays whole (the limit is "where possible").
    fn word(&mut self, token: &str, spaced: bool) {
        let at_start = self.text.is_empty() || self.text.ends_with("\r\n ");
        let gap = usize::from(spaced && !at_start);
        if !at_start && self.column + gap + token.len() > LINE {
            self.new_line();
        } else if gap == 1 {
            self.text.push(' ');
            self.column += 1;
        }
        self.text.push_str(token);
        self.column += token.len();
    }

    /// Base64 may be broken anywhere by FWS (RFC 6376 §2.4), so fill every line.
    fn base64(&mut self, value: &str) {
        let mut rest = value;
        while !rest.is_empty() {
            if self.column >= LINE {
                self.new_line();
            }
            let take = (LINE - self.column).min(rest.len());
            self.text.push_str(&rest[..take]);
            self.column += take;
            rest = &rest[take..];
        }
    }
}

/// LDH labels (RFC 5321 §4.1.2 sub-domain), each ≤ 63 octets, the name ≤ 253.
fn ldh_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("only letters, digits, hyphens and dots are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label starts or ends with a hyphen");
        }
    }
    Ok(())
}

fn validate_selector(selector: &str) -> Result<String, DkimError> {
    let err = |reason| DkimError::Selector {
        value: selector.to_string(),
        reason,
    };
    if selector.contains(['\r', '\n']) {
        return Err(err("it contains CR or LF"));
    }
    ldh_name(selector).map_err(err)?;
    Ok(selector.to_string())
}

fn validate_domain(domain: &str) -> Result<String, DkimError> {
    let err = |reason| DkimError::Domain {
        value: domain.to_string(),
        reason,
    };
    if domain.contains(['\r', '\n']) {
        return Err(err("it contains CR or LF"));
    }
    let trimmed = domain.strip_suffix('.').unwrap_or(domain);
    if trimmed.is_empty() {
        return Err(err("it is empty"));
    }
    let ascii =
        idna::domain_to_ascii(trimmed).map_err(|_| err("it is not a valid domain name (IDNA)"))?;
    ldh_name(&ascii).map_err(err)?;
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8463 Appendix A.3: the example message's header fields.
    fn rfc8463_headers() -> Vec<(String, String)> {
        [
            ("From", " Joe SixPack <joe@football.example.com>"),
            ("To", " Suzie Q <suzie@shopping.example.net>"),
            ("Subject", " Is dinner ready?"),
            ("Date", " Fri, 11 Jul 2003 21:00:37 -0700 (PDT)"),
            (
                "Message-ID",
                " <20030712040037.46341.5F8J@football.example.com>",
            ),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
    }

    const RFC8463_BODY: &[u8] =
        b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n";

    /// RFC 8463 Appendix A.3: the ed25519-sha256 signature field, with its `b=` value removed
    /// as a verifier removes it (RFC 6376 §3.7).
    const RFC8463_UNSIGNED: &str = " v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n \
        d=football.example.com; i=@football.example.com;\r\n \
        q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n \
        subject : date : message-id : from : subject : date;\r\n \
        bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n \
        b=";

    const RFC8463_B: &str =
        "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==";

    /// RFC 8463 Appendix A.2: the published Ed25519 public key.
    const RFC8463_PUBLIC: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    const RFC8463_H: [&str; 8] = [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "from",
        "subject",
        "date",
    ];

    fn rfc8463_signer() -> Signer {
        let key = match key::parse_key(key::tests::RFC8463_KEY_PEM) {
            Ok(key) => key,
            Err(e) => panic!("{e:?}"),
        };
        Signer {
            key,
            selector: "brisbane".into(),
            domain: "football.example.com".into(),
            rng: rand::SystemRandom::new(),
        }
    }

    fn unb64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    #[test]
    fn rfc8463_body_hash() {
        let hash = body_hash(&mut |w: &mut dyn io::Write| w.write_all(RFC8463_BODY)).unwrap();
        assert_eq!(
            b64(hash.as_ref()),
            "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
        );
    }

    #[test]
    fn rfc8463_published_signature_verifies_over_our_canonical_headers() {
        let data = header_hash_input(&rfc8463_headers(), &RFC8463_H, RFC8463_UNSIGNED);
        let hash = digest::digest(&digest::SHA256, &data);
        signature::UnparsedPublicKey::new(&signature::ED25519, unb64(RFC8463_PUBLIC))
            .verify(hash.as_ref(), &unb64(RFC8463_B))
            .unwrap();
    }

    #[test]
    fn rfc8463_signature_is_reproduced_exactly() {
        let signer = rfc8463_signer();
        let sig = signer
            .sign_header_block(&rfc8463_headers(), &RFC8463_H, RFC8463_UNSIGNED)
            .unwrap();
        assert_eq!(b64(&sig), RFC8463_B);
    }

    #[test]
    fn rfc8463_dns_record() {
        assert_eq!(
            rfc8463_signer().dns_record(),
            "brisbane._domainkey.football.example.com. IN TXT \
             \"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\""
        );
    }

    /// Pulls `name=value` out of a signature value, whitespace removed.
    fn tag(value: &str, name: &str) -> String {
        let flat: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        flat.split(';')
            .find_map(|t| t.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {value}"))
            .to_string()
    }

    #[test]
    fn sign_produces_a_folded_field_that_verifies() {
        let signer = rfc8463_signer();
        let mut headers = rfc8463_headers();
        headers.push(("MIME-Version".into(), " 1.0".into()));
        headers.push((
            "Content-Type".into(),
            " text/plain;\r\n\tcharset=utf-8".into(),
        ));
        let now = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let value = signer
            .sign(
                &headers,
                &mut |w: &mut dyn io::Write| w.write_all(RFC8463_BODY),
                now,
            )
            .unwrap();
        let field = format!("{HEADER_NAME}: {value}");
        for line in field.split("\r\n") {
            assert!(line.len() <= LINE, "{line:?}");
        }
        assert!(value.starts_with("v=1; a=ed25519-sha256; c=relaxed/relaxed;"));
        assert_eq!(tag(&value, "d"), "football.example.com");
        assert_eq!(tag(&value, "s"), "brisbane");
        assert_eq!(tag(&value, "t"), "1700000000");
        assert_eq!(
            tag(&value, "h"),
            "from:from:to:subject:date:message-id:mime-version:content-type"
        );
        assert_eq!(
            tag(&value, "bh"),
            "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
        );
        // Verify as a receiver would: strip the b= value, canonicalise, check with the key.
        let b = tag(&value, "b");
        let cut = value.rfind("b=").unwrap() + 2;
        let h = tag(&value, "h");
        let h: Vec<&str> = h.split(':').collect();
        let data = header_hash_input(&headers, &h, &value[..cut]);
        let hash = digest::digest(&digest::SHA256, &data);
        signature::UnparsedPublicKey::new(&signature::ED25519, unb64(RFC8463_PUBLIC))
            .verify(hash.as_ref(), &unb64(&b))
            .unwrap();
    }

    #[test]
    fn bottom_up_selection_and_oversigning() {
        let headers: Vec<(String, String)> = [
            ("Received", "x"),
            ("To", "first@example.com"),
            ("From", "a@example.com"),
            ("To", "second@example.com"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let h = signed_header_names(&headers).unwrap();
        assert_eq!(h, ["from", "from", "to", "to"]);
        let names: Vec<&str> = h.iter().map(String::as_str).collect();
        let data = header_hash_input(&headers, &names, "b=");
        assert_eq!(
            String::from_utf8(data).unwrap(),
            "from:a@example.com\r\nto:second@example.com\r\nto:first@example.com\r\n\
             dkim-signature:b="
        );
        // A From added above the signed one is picked up by the second "from" in h= (the
        // one that hashed nothing when signing), so the signature breaks (RFC 6376 §8.15).
        let mut forged = headers.clone();
        forged.insert(0, ("From".into(), "mallory@example.net".into()));
        let forged_data = header_hash_input(&forged, &names, "b=");
        assert!(String::from_utf8(forged_data)
            .unwrap()
            .starts_with("from:a@example.com\r\nfrom:mallory@example.net\r\n"));
    }

    #[test]
    fn missing_from_and_bad_headers_are_data_errors() {
        let body = &mut |_: &mut dyn io::Write| Ok(());
        let signer = rfc8463_signer();
        let only_to = vec![("To".to_string(), "x@example.com".to_string())];
        let e = signer.sign(&only_to, body, UNIX_EPOCH).unwrap_err();
        assert!(matches!(e, DkimError::MissingFrom));
        assert_eq!(e.class(), ErrorClass::Data);
        for (name, value) in [
            ("From", "a@example.com\r\nBcc: evil@example.com"),
            ("From", "a@example.com\nx"),
            ("From", "a@example.com\r"),
            ("Fr om", "a@example.com"),
            ("From:", "a@example.com"),
        ] {
            let headers = vec![(name.to_string(), value.to_string())];
            let e = signer.sign(&headers, body, UNIX_EPOCH).unwrap_err();
            assert_eq!(e.class(), ErrorClass::Data, "{name:?} {value:?}");
        }
    }

    #[test]
    fn body_write_errors_are_input_errors() {
        let signer = rfc8463_signer();
        let e = signer
            .sign(
                &rfc8463_headers(),
                &mut |_: &mut dyn io::Write| Err(io::Error::other("attachment vanished")),
                UNIX_EPOCH,
            )
            .unwrap_err();
        assert!(matches!(e, DkimError::Body(_)));
        assert_eq!(e.class(), ErrorClass::Input);
        assert!(e.to_string().contains("attachment vanished"));
    }

    #[test]
    fn selectors_and_domains_are_validated() {
        assert_eq!(validate_selector("s2024.eu").unwrap(), "s2024.eu");
        assert_eq!(validate_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(
            validate_domain("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in ["", "a\r\nb", "a b", "-a", "a..b", "a_b", &"x".repeat(64)] {
            let e = validate_selector(bad).unwrap_err();
            assert_eq!(e.class(), ErrorClass::Config, "{bad:?}");
        }
        for bad in [
            "",
            ".",
            "example.com\n",
            "exa mple.com",
            "a..com",
            "x;y.com",
        ] {
            let e = validate_domain(bad).unwrap_err();
            assert_eq!(e.class(), ErrorClass::Config, "{bad:?}");
        }
    }

    #[test]
    fn set_domain_validates_and_uses_a_labels() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ed.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\n\
             MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n\
             -----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let mut signer = Signer::load(&key, "sel", "example.com", true).unwrap();
        signer.set_domain("Bücher.example").unwrap();
        assert_eq!(signer.domain(), "xn--bcher-kva.example");
        assert!(signer.set_domain("a..b").is_err());
        assert_eq!(signer.domain(), "xn--bcher-kva.example");
    }

    #[test]
    fn folding_keeps_long_h_lists_within_the_line_limit() {
        let mut folder = Folder::new();
        folder.word("v=1", true);
        for i in 0..40 {
            folder.word(&format!(":field-{i}"), false);
        }
        folder.base64(&"A".repeat(400));
        let field = format!("{HEADER_NAME}: {}", folder.text);
        for line in field.split("\r\n") {
            assert!(line.len() <= LINE, "{line:?}");
            assert!(!line.trim().is_empty());
        }
    }

    #[test]
    fn key_file_errors_have_their_class() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = Signer::load(&missing, "s", "example.com", false).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Input);
        assert!(e.to_string().contains("missing.pem"));

        let e = Signer::load(dir.path(), "s", "example.com", false).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Input);

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a key\n").unwrap();
        set_mode(&garbage, 0o600);
        let e = Signer::load(&garbage, "s", "example.com", false).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
        assert!(e.to_string().contains("no PEM private key"), "{e}");

        let good = dir.path().join("ed.pem");
        std::fs::write(&good, key::tests::RFC8463_KEY_PEM).unwrap();
        set_mode(&good, 0o600);
        let signer = Signer::load(&good, "brisbane", "football.example.com", false).unwrap();
        assert_eq!(signer.algorithm(), "ed25519-sha256");
        assert!(!format!("{signer:?}").contains("11qY"));
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(not(unix))]
    fn set_mode(_path: &Path, _mode: u32) {}

    #[cfg(unix)]
    #[test]
    fn readable_key_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ed.pem");
        std::fs::write(&path, key::tests::RFC8463_KEY_PEM).unwrap();
        for mode in [0o644, 0o640, 0o604] {
            set_mode(&path, mode);
            let e = Signer::load(&path, "s", "example.com", false).unwrap_err();
            assert_eq!(e.class(), ErrorClass::Config);
            let text = e.to_string();
            assert!(
                text.contains(&format!("chmod 600 {}", path.display())),
                "{text}"
            );
            assert!(text.contains("--dkim-key-insecure"), "{text}");
            assert!(Signer::load(&path, "s", "example.com", true).is_ok());
        }
    }
}
