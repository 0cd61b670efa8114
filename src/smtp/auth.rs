//! SMTP authentication (RFC 4954): PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login),
//! CRAM-MD5 (RFC 2195), OAUTHBEARER (RFC 7628) and XOAUTH2 (Google's and Microsoft's published
//! format), the `--auth auto` choice rule of cli.md, and [`Secret`] for passwords and tokens.
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};

use super::command::{Command, SaslResponse};
use super::reply::Reply;
use super::SmtpError;

/// A password or other credential. Debug and Display print `<redacted>`; the bytes are zeroed
/// when dropped (best effort without `unsafe`: copies made by the caller are not covered).
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    /// The secret bytes, for the one place that must send them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s.into_bytes())
    }
}

impl Clone for Secret {
    fn clone(&self) -> Secret {
        Secret(self.0.clone())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        // Keeps the zeroing from being optimised away as a dead store.
        std::hint::black_box(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The SASL mechanisms quizmail speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    CramMd5,
    /// Google's and Microsoft's pre-standard bearer-token mechanism.
    XOAuth2,
    /// RFC 7628 §3.1.
    OAuthBearer,
}

/// Every mechanism, in the order `--auth` lists them.
const ALL: [Mechanism; 5] = [
    Mechanism::Plain,
    Mechanism::Login,
    Mechanism::CramMd5,
    Mechanism::XOAuth2,
    Mechanism::OAuthBearer,
];

impl Mechanism {
    /// The registered SASL name, as sent in `AUTH` and offered in EHLO.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// Whether the secret crosses the wire in a recoverable form (base64 is not encryption):
    /// a bearer token is as good as a password to whoever reads it.
    pub fn sends_password_in_clear(self) -> bool {
        !matches!(self, Mechanism::CramMd5)
    }

    /// The kind of secret the mechanism sends: a bearer token for XOAUTH2 and OAUTHBEARER.
    pub fn secret_kind(self) -> SecretKind {
        match self {
            Mechanism::XOAuth2 | Mechanism::OAuthBearer => SecretKind::BearerToken,
            Mechanism::Plain | Mechanism::Login | Mechanism::CramMd5 => SecretKind::Password,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse failure for `--auth` values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown AUTH mechanism {0:?} (expected auto, plain, login, cram-md5, xoauth2 or oauthbearer)"
)]
pub struct UnknownMechanism(pub String);

impl FromStr for Mechanism {
    type Err = UnknownMechanism;

    /// Case-insensitive, as SASL names are (RFC 4422 §3.1).
    fn from_str(s: &str) -> Result<Mechanism, UnknownMechanism> {
        ALL.into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownMechanism(s.to_string()))
    }
}

/// `--auth auto|plain|login|cram-md5|xoauth2|oauthbearer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthChoice {
    #[default]
    Auto,
    Named(Mechanism),
}

impl FromStr for AuthChoice {
    type Err = UnknownMechanism;

    fn from_str(s: &str) -> Result<AuthChoice, UnknownMechanism> {
        if s.eq_ignore_ascii_case("auto") {
            Ok(AuthChoice::Auto)
        } else {
            s.parse().map(AuthChoice::Named)
        }
    }
}

/// What the secret of [`Credentials`] is: it decides which mechanisms may carry it, so a
/// token never goes out by PLAIN or LOGIN and a password never as a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretKind {
    #[default]
    Password,
    /// An OAuth2 access token (RFC 6750 bearer token).
    BearerToken,
}

/// What the session authenticates with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    /// The password, or the access token when `kind` says so.
    pub password: Secret,
    pub kind: SecretKind,
    pub choice: AuthChoice,
}

/// The cli.md rule. For a password, `auto` over TLS takes PLAIN, then LOGIN, then CRAM-MD5
/// among those offered; over plaintext only CRAM-MD5, because PLAIN and LOGIN would expose the
/// password. For a bearer token, `auto` takes OAUTHBEARER (the standard, RFC 7628), else XOAUTH2,
/// and never a password mechanism; over plaintext neither, since the token would be readable.
/// A named mechanism is used as named (also in the clear) but must be offered and must carry
/// the kind of secret given. `offered` holds the names from the EHLO `AUTH` line.
pub fn choose(
    choice: AuthChoice,
    kind: SecretKind,
    offered: &[String],
    tls: bool,
) -> Result<Mechanism, SmtpError> {
    if offered.is_empty() {
        return Err(SmtpError::AuthNotOffered);
    }
    let is_offered = |m: Mechanism| offered.iter().any(|o| o.eq_ignore_ascii_case(m.name()));
    let found = match choice {
        AuthChoice::Named(m) if m.secret_kind() != kind => {
            return Err(SmtpError::WrongSecretKind { mechanism: m, kind })
        }
        AuthChoice::Named(m) => Some(m).filter(|&m| is_offered(m)),
        AuthChoice::Auto => {
            let order: &[Mechanism] = match kind {
                SecretKind::Password => &[Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5],
                SecretKind::BearerToken => &[Mechanism::OAuthBearer, Mechanism::XOAuth2],
            };
            order
                .iter()
                .copied()
                .filter(|m| tls || !m.sends_password_in_clear())
                .find(|&m| is_offered(m))
        }
    };
    found.ok_or_else(|| SmtpError::NoUsableMechanism {
        offered: offered.to_vec(),
        tls,
        kind,
    })
}

/// What an OAuth2 server said in its error challenge (RFC 7628 §3.2.2): the JSON `status`
/// (`invalid_token`, `insufficient_scope`, ...) and the `scope` the token would need. Neither
/// is a secret; the `openid-configuration` URL is not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthFailure {
    pub status: Option<String>,
    pub scope: Option<String>,
}

impl OAuthFailure {
    /// Decodes the base64 JSON of the challenge. Base64 that is not valid is a protocol error;
    /// JSON we cannot read still gets its answer (the exchange must be finished either way) and
    /// leaves both fields empty.
    fn decode(challenge: &Reply) -> Result<OAuthFailure, SmtpError> {
        let text = challenge.lines.concat();
        let raw = BASE64
            .decode(text.trim())
            .map_err(|_| SmtpError::BadChallenge("OAuth2 error challenge is not base64"))?;
        let json: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
        // Only printable ASCII from the server reaches an error message.
        let field = |name: &str| {
            json.get(name).and_then(|v| v.as_str()).map(|s| {
                s.chars()
                    .filter(|c| c.is_ascii_graphic() || *c == ' ')
                    .collect()
            })
        };
        Ok(OAuthFailure {
            status: field("status"),
            scope: field("scope"),
        })
    }
}

impl fmt::Display for OAuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status.as_deref().unwrap_or("unknown status"))?;
        if let Some(scope) = &self.scope {
            write!(f, ", scope {scope}")?;
        }
        Ok(())
    }
}

/// One SASL exchange in progress: the mechanism, how many challenges were answered, and
/// whether the final response went out. Success is only believed after it did: a 235 before
/// the credentials were sent answers a command that does not exist yet (RFC 4954 §4).
#[derive(Debug)]
pub(crate) struct Sasl {
    mechanism: Mechanism,
    answered: u8,
    /// The initial response, held for the empty challenge when it could not ride on the AUTH
    /// line (PLAIN, XOAUTH2, OAUTHBEARER).
    held: Option<SaslResponse>,
    final_sent: bool,
    /// The OAuth2 error challenge, once answered: the exchange can only fail now.
    oauth_failure: Option<OAuthFailure>,
}

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
const MAX_COMMAND_LINE: usize = 512;

impl Sasl {
    /// The `AUTH` command opening the exchange. PLAIN, XOAUTH2 and OAUTHBEARER carry their
    /// initial response (RFC 4954 §4) to save a round trip, unless that would make the line
    /// longer than SMTP allows: then RFC 4954 §4 says to send it after the server's empty
    /// challenge. LOGIN and CRAM-MD5 wait for a challenge. `host` and `port` are the server's,
    /// which OAUTHBEARER names (RFC 7628 §3.1).
    pub(crate) fn start(
        mechanism: Mechanism,
        creds: &Credentials,
        host: &str,
        port: u16,
    ) -> Result<(Sasl, Command), SmtpError> {
        let mut sasl = Sasl {
            mechanism,
            answered: 0,
            held: None,
            final_sent: false,
            oauth_failure: None,
        };
        let initial = || -> Result<Option<SaslResponse>, SmtpError> {
            let secret = creds.password.expose();
            Ok(Some(match mechanism {
                Mechanism::Plain => plain_response(&creds.user, secret)?,
                Mechanism::XOAuth2 => xoauth2_response(&creds.user, secret)?,
                Mechanism::OAuthBearer => oauthbearer_response(&creds.user, secret, host, port)?,
                Mechanism::Login | Mechanism::CramMd5 => return Ok(None),
            }))
        };
        let command = match initial()? {
            None => Command::auth(mechanism, None),
            Some(response) => {
                let with_initial = Command::auth(mechanism, Some(response));
                if with_initial.to_wire().len() <= MAX_COMMAND_LINE {
                    sasl.final_sent = true;
                    with_initial
                } else {
                    sasl.held = initial()?;
                    Command::auth(mechanism, None)
                }
            }
        };
        Ok((sasl, command))
    }

    /// True once the mechanism's last response went out and no OAuth2 error challenge came:
    /// only then can success be the answer.
    pub(crate) fn final_sent(&self) -> bool {
        self.final_sent && self.oauth_failure.is_none()
    }

    /// The OAuth2 error challenge was answered: only a failure can follow.
    pub(crate) fn oauth_failure(&self) -> Option<&OAuthFailure> {
        self.oauth_failure.as_ref()
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Answers a 334 challenge. LOGIN answers by order (user name, then password) because the
    /// prompt texts vary between servers; any challenge beyond what a mechanism needs means the
    /// server is out of step. After XOAUTH2's or OAUTHBEARER's final response, a 334 carries
    /// the server's base64 JSON error (RFC 7628 §3.2.2): it is answered with `AQ==` (a lone
    /// %x01, RFC 7628 §3.2.3) for OAUTHBEARER and an empty line for XOAUTH2, and the server
    /// then sends its final failure.
    pub(crate) fn respond(
        &mut self,
        challenge: &Reply,
        creds: &Credentials,
    ) -> Result<Command, SmtpError> {
        let step = self.answered;
        self.answered = self.answered.saturating_add(1);
        let token = matches!(self.mechanism, Mechanism::XOAuth2 | Mechanism::OAuthBearer);
        if token && self.final_sent && self.oauth_failure.is_none() {
            self.oauth_failure = Some(OAuthFailure::decode(challenge)?);
            let answer: &[u8] = match self.mechanism {
                Mechanism::OAuthBearer => &[0x01],
                _ => b"",
            };
            return Ok(Command::auth_response(SaslResponse::encode(answer)));
        }
        let payload = match (self.mechanism, step) {
            (Mechanism::Login, 0) => SaslResponse::encode(creds.user.as_bytes()),
            (Mechanism::Login, 1) => SaslResponse::encode(creds.password.expose()),
            (Mechanism::Plain | Mechanism::XOAuth2 | Mechanism::OAuthBearer, 0)
                if self.held.is_some() =>
            {
                match self.held.take() {
                    Some(response) => response,
                    None => return Err(SmtpError::BadChallenge("334 after the initial response")),
                }
            }
            (Mechanism::CramMd5, 0) => {
                let text = challenge
                    .lines
                    .first()
                    .map(|l| l.trim())
                    .unwrap_or_default();
                let decoded = BASE64
                    .decode(text)
                    .map_err(|_| SmtpError::BadChallenge("CRAM-MD5 challenge is not base64"))?;
                cram_md5_response(&creds.user, creds.password.expose(), &decoded)?
            }
            (Mechanism::Plain, _) => {
                return Err(SmtpError::BadChallenge(
                    "334 after a PLAIN initial response",
                ))
            }
            _ => {
                return Err(SmtpError::BadChallenge(
                    "more challenges than the mechanism has",
                ))
            }
        };
        self.final_sent = !matches!((self.mechanism, step), (Mechanism::Login, 0));
        Ok(Command::auth_response(payload))
    }
}

/// `authzid NUL authcid NUL passwd` with an empty authzid (RFC 4616 §2).
fn plain_response(user: &str, password: &[u8]) -> Result<SaslResponse, SmtpError> {
    if user.as_bytes().contains(&0) || password.contains(&0) {
        return Err(SmtpError::InvalidCredentials);
    }
    let mut raw = Secret::new(Vec::with_capacity(user.len() + password.len() + 2));
    raw.0.push(0);
    raw.0.extend_from_slice(user.as_bytes());
    raw.0.push(0);
    raw.0.extend_from_slice(password);
    Ok(SaslResponse::encode(raw.expose()))
}

/// A bearer token is `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
/// (RFC 6750 §2.1); anything else (a control character, the %x01 separator, a space) would
/// corrupt the key/value list, so it is refused rather than sent.
fn check_token(user: &str, token: &[u8]) -> Result<(), SmtpError> {
    let token_ok = !token.is_empty()
        && token
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
    if !token_ok || user.chars().any(|c| c.is_control()) {
        return Err(SmtpError::InvalidCredentials);
    }
    Ok(())
}

/// `user=USER ^A auth=Bearer TOKEN ^A ^A` (Google's "XOAUTH2 mechanism" page; Microsoft's
/// "Authenticate an IMAP, POP or SMTP connection using OAuth" uses the same form).
fn xoauth2_response(user: &str, token: &[u8]) -> Result<SaslResponse, SmtpError> {
    check_token(user, token)?;
    let mut raw = Secret::new(format!("user={user}\x01auth=Bearer ").into_bytes());
    raw.0.extend_from_slice(token);
    raw.0.extend_from_slice(b"\x01\x01");
    Ok(SaslResponse::encode(raw.expose()))
}

/// RFC 7628 §3.1: the GS2 header `n,a=USER,` (no channel binding; `,` and `=` in the authzid
/// escaped as `=2C` and `=3D`, RFC 5801 §4), then `^A host=HOST ^A port=PORT ^A auth=Bearer
/// TOKEN ^A ^A`.
fn oauthbearer_response(
    user: &str,
    token: &[u8],
    host: &str,
    port: u16,
) -> Result<SaslResponse, SmtpError> {
    check_token(user, token)?;
    if host.chars().any(|c| c.is_control()) {
        return Err(SmtpError::InvalidCredentials);
    }
    let authzid = user.replace('=', "=3D").replace(',', "=2C");
    let mut raw = Secret::new(
        format!("n,a={authzid},\x01host={host}\x01port={port}\x01auth=Bearer ").into_bytes(),
    );
    raw.0.extend_from_slice(token);
    raw.0.extend_from_slice(b"\x01\x01");
    Ok(SaslResponse::encode(raw.expose()))
}

/// `user SP hex(HMAC-MD5(password, challenge))` (RFC 2195 §2).
fn cram_md5_response(
    user: &str,
    password: &[u8],
    challenge: &[u8],
) -> Result<SaslResponse, SmtpError> {
    let mut mac = <Hmac<md5::Md5> as Mac>::new_from_slice(password)
        .map_err(|_| SmtpError::InvalidCredentials)?;
    mac.update(challenge);
    let digest = mac.finalize().into_bytes();
    let mut answer = Secret::new(format!("{user} ").into_bytes());
    for b in digest {
        answer.0.extend_from_slice(format!("{b:02x}").as_bytes());
    }
    Ok(SaslResponse::encode(answer.expose()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, password: &str, choice: AuthChoice) -> Credentials {
        Credentials {
            user: user.into(),
            password: Secret::from(password.to_string()),
            kind: SecretKind::Password,
            choice,
        }
    }

    fn offered(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn wire(c: &Command) -> String {
        String::from_utf8(c.to_wire()).unwrap()
    }

    #[test]
    fn cram_md5_rfc2195_vector() {
        // RFC 2195 §2 example; the challenge is <1896.697170952@postoffice.reston.mci.net>.
        let c = creds("tim", "tanstaaftanstaaf", AuthChoice::Auto);
        let (mut sasl, first) =
            Sasl::start(Mechanism::CramMd5, &c, "server.example.com", 587).unwrap();
        assert_eq!(wire(&first), "AUTH CRAM-MD5\r\n");
        let challenge = Reply::new(
            334,
            None,
            vec!["PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+".into()],
        );
        let answer = sasl.respond(&challenge, &c).unwrap();
        assert_eq!(
            wire(&answer),
            "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n"
        );
        assert_eq!(answer.to_string(), "<redacted>");
        assert!(matches!(
            sasl.respond(&challenge, &c),
            Err(SmtpError::BadChallenge(_))
        ));
    }

    #[test]
    fn cram_md5_rejects_non_base64_challenge() {
        let c = creds("tim", "x", AuthChoice::Auto);
        let (mut sasl, _) = Sasl::start(Mechanism::CramMd5, &c, "server.example.com", 587).unwrap();
        let bad = Reply::new(334, None, vec!["not base64!".into()]);
        assert!(matches!(
            sasl.respond(&bad, &c),
            Err(SmtpError::BadChallenge(_))
        ));
    }

    #[test]
    fn plain_initial_response() {
        // base64("\0tim\0tanstaaftanstaaf"), computed with Python's base64 module.
        let c = creds("tim", "tanstaaftanstaaf", AuthChoice::Auto);
        let (mut sasl, first) =
            Sasl::start(Mechanism::Plain, &c, "server.example.com", 587).unwrap();
        assert_eq!(wire(&first), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
        assert_eq!(first.to_string(), "AUTH PLAIN <redacted>");
        assert!(sasl.final_sent());
        let again = Reply::new(334, None, vec![String::new()]);
        assert!(matches!(
            sasl.respond(&again, &c),
            Err(SmtpError::BadChallenge(_))
        ));
        let nul = creds("a\0b", "x", AuthChoice::Auto);
        assert!(matches!(
            Sasl::start(Mechanism::Plain, &nul, "server.example.com", 587),
            Err(SmtpError::InvalidCredentials)
        ));
    }

    #[test]
    fn login_answers_by_order() {
        let c = creds("tim", "tanstaaftanstaaf", AuthChoice::Auto);
        let (mut sasl, first) =
            Sasl::start(Mechanism::Login, &c, "server.example.com", 587).unwrap();
        assert_eq!(wire(&first), "AUTH LOGIN\r\n");
        let user_prompt = Reply::new(334, None, vec!["VXNlcm5hbWU6".into()]);
        let pass_prompt = Reply::new(334, None, vec!["UGFzc3dvcmQ6".into()]);
        assert_eq!(wire(&sasl.respond(&user_prompt, &c).unwrap()), "dGlt\r\n");
        assert_eq!(
            wire(&sasl.respond(&pass_prompt, &c).unwrap()),
            "dGFuc3RhYWZ0YW5zdGFhZg==\r\n"
        );
        assert!(sasl.final_sent());
        assert!(sasl.respond(&pass_prompt, &c).is_err());
    }

    #[test]
    fn plain_without_initial_response_when_the_line_would_be_too_long() {
        let c = creds("tim", &"p".repeat(400), AuthChoice::Auto);
        let (mut sasl, first) =
            Sasl::start(Mechanism::Plain, &c, "server.example.com", 587).unwrap();
        assert_eq!(wire(&first), "AUTH PLAIN\r\n");
        assert!(!sasl.final_sent());
        let empty = Reply::new(334, None, vec![String::new()]);
        let raw = format!("\0tim\0{}", "p".repeat(400));
        assert_eq!(
            wire(&sasl.respond(&empty, &c).unwrap()),
            format!("{}\r\n", BASE64.encode(raw))
        );
        assert!(sasl.final_sent());
        assert!(sasl.respond(&empty, &c).is_err());
    }

    #[test]
    fn auto_choice_over_tls_prefers_plain_then_login_then_cram() {
        let all = offered(&["LOGIN", "CRAM-MD5", "PLAIN"]);
        assert_eq!(
            choose(AuthChoice::Auto, SecretKind::Password, &all, true).unwrap(),
            Mechanism::Plain
        );
        assert_eq!(
            choose(
                AuthChoice::Auto,
                SecretKind::Password,
                &offered(&["cram-md5", "login"]),
                true
            )
            .unwrap(),
            Mechanism::Login
        );
        assert_eq!(
            choose(
                AuthChoice::Auto,
                SecretKind::Password,
                &offered(&["CRAM-MD5", "XOAUTH2"]),
                true
            )
            .unwrap(),
            Mechanism::CramMd5
        );
    }

    #[test]
    fn auto_choice_in_clear_only_cram() {
        assert_eq!(
            choose(
                AuthChoice::Auto,
                SecretKind::Password,
                &offered(&["PLAIN", "LOGIN", "CRAM-MD5"]),
                false
            )
            .unwrap(),
            Mechanism::CramMd5
        );
        let err = choose(
            AuthChoice::Auto,
            SecretKind::Password,
            &offered(&["PLAIN", "LOGIN"]),
            false,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            SmtpError::NoUsableMechanism { tls: false, .. }
        ));
        assert_eq!(err.class(), super::super::ErrorClass::Config);
    }

    #[test]
    fn named_choice() {
        let plain = AuthChoice::Named(Mechanism::Plain);
        assert_eq!(
            choose(plain, SecretKind::Password, &offered(&["PLAIN"]), false).unwrap(),
            Mechanism::Plain
        );
        assert!(matches!(
            choose(plain, SecretKind::Password, &offered(&["LOGIN"]), true),
            Err(SmtpError::NoUsableMechanism { .. })
        ));
        assert!(matches!(
            choose(plain, SecretKind::Password, &[], true),
            Err(SmtpError::AuthNotOffered)
        ));
    }

    fn token(user: &str, token: &str, choice: AuthChoice) -> Credentials {
        Credentials {
            kind: SecretKind::BearerToken,
            ..creds(user, token, choice)
        }
    }

    /// RFC 7628 §4.1 (IMAP, port 143) and §4.3 (SMTP, port 587): the initial client response
    /// for user@example.com at server.example.com, copied from the RFC.
    #[test]
    fn oauthbearer_rfc7628_vectors() {
        let c = token(
            "user@example.com",
            "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
            AuthChoice::Auto,
        );
        for (port, expected) in [
            (587, "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9NTg3AWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"),
            (143, "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"),
        ] {
            let (sasl, first) =
                Sasl::start(Mechanism::OAuthBearer, &c, "server.example.com", port).unwrap();
            assert_eq!(wire(&first), format!("AUTH OAUTHBEARER {expected}\r\n"));
            assert_eq!(first.to_string(), "AUTH OAUTHBEARER <redacted>");
            assert!(sasl.final_sent());
        }
    }

    /// Google's "XOAUTH2 mechanism" page: the SASL XOAUTH2 initial client response example.
    #[test]
    fn xoauth2_google_vector() {
        let c = token(
            "someuser@example.com",
            "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
            AuthChoice::Auto,
        );
        let (sasl, first) = Sasl::start(Mechanism::XOAuth2, &c, "smtp.gmail.com", 587).unwrap();
        assert_eq!(
            wire(&first),
            "AUTH XOAUTH2 dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==\r\n"
        );
        assert_eq!(first.to_string(), "AUTH XOAUTH2 <redacted>");
        assert!(sasl.final_sent());
    }

    #[test]
    fn oauthbearer_escapes_the_authzid() {
        let c = token("a,b=c@x", "t0k", AuthChoice::Auto);
        let (_, first) = Sasl::start(Mechanism::OAuthBearer, &c, "h", 1).unwrap();
        let line = wire(&first);
        let b64 = line["AUTH OAUTHBEARER ".len()..].trim_end();
        let raw = BASE64.decode(b64).unwrap();
        assert_eq!(
            raw,
            b"n,a=a=2Cb=3Dc@x,\x01host=h\x01port=1\x01auth=Bearer t0k\x01\x01"
        );
    }

    #[test]
    fn token_mechanisms_without_initial_response_when_too_long() {
        for m in [Mechanism::XOAuth2, Mechanism::OAuthBearer] {
            let c = token("u@example.com", &"t".repeat(400), AuthChoice::Auto);
            let (mut sasl, first) = Sasl::start(m, &c, "mx.example.com", 587).unwrap();
            assert_eq!(wire(&first), format!("AUTH {m}\r\n"));
            assert!(!sasl.final_sent());
            let empty = Reply::new(334, None, vec![String::new()]);
            let answer = wire(&sasl.respond(&empty, &c).unwrap());
            let raw = BASE64.decode(answer.trim_end()).unwrap();
            assert!(raw.ends_with(format!("auth=Bearer {}\x01\x01", "t".repeat(400)).as_bytes()));
            assert!(sasl.final_sent());
        }
    }

    /// RFC 7628 §4.3's error challenge, answered with %x01 (OAUTHBEARER) or an empty line
    /// (XOAUTH2); afterwards the exchange can only fail.
    #[test]
    fn error_challenge_is_decoded_and_answered() {
        let challenge = Reply::new(
            334,
            None,
            vec!["eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=".into()],
        );
        for (m, answer) in [
            (Mechanism::OAuthBearer, "AQ==\r\n"),
            (Mechanism::XOAuth2, "\r\n"),
        ] {
            let c = token("user@example.com", "tok", AuthChoice::Auto);
            let (mut sasl, _) = Sasl::start(m, &c, "server.example.com", 587).unwrap();
            assert_eq!(wire(&sasl.respond(&challenge, &c).unwrap()), answer);
            assert!(!sasl.final_sent());
            assert_eq!(
                sasl.oauth_failure(),
                Some(&OAuthFailure {
                    status: Some("invalid_token".into()),
                    scope: Some("example_scope".into()),
                })
            );
            assert!(matches!(
                sasl.respond(&challenge, &c),
                Err(SmtpError::BadChallenge(_))
            ));
        }
        let c = token("user@example.com", "tok", AuthChoice::Auto);
        let (mut sasl, _) = Sasl::start(Mechanism::XOAuth2, &c, "h", 587).unwrap();
        let bad = Reply::new(334, None, vec!["%%%".into()]);
        assert!(matches!(
            sasl.respond(&bad, &c),
            Err(SmtpError::BadChallenge(_))
        ));
    }

    #[test]
    fn a_token_with_separators_or_spaces_is_refused() {
        for bad in ["", "a b", "a\x01b", "a\nb"] {
            let c = token("u@example.com", bad, AuthChoice::Auto);
            for m in [Mechanism::XOAuth2, Mechanism::OAuthBearer] {
                assert!(
                    matches!(
                        Sasl::start(m, &c, "h", 587),
                        Err(SmtpError::InvalidCredentials)
                    ),
                    "{m} {bad:?}"
                );
            }
        }
    }

    #[test]
    fn auto_with_a_token_takes_oauthbearer_then_xoauth2_never_a_password_mechanism() {
        let bearer = SecretKind::BearerToken;
        let all = offered(&["PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"]);
        assert_eq!(
            choose(AuthChoice::Auto, bearer, &all, true).unwrap(),
            Mechanism::OAuthBearer
        );
        assert_eq!(
            choose(
                AuthChoice::Auto,
                bearer,
                &offered(&["PLAIN", "xoauth2"]),
                true
            )
            .unwrap(),
            Mechanism::XOAuth2
        );
        let err = choose(
            AuthChoice::Auto,
            bearer,
            &offered(&["PLAIN", "LOGIN", "CRAM-MD5"]),
            true,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            SmtpError::NoUsableMechanism {
                kind: SecretKind::BearerToken,
                ..
            }
        ));
        assert!(err.to_string().contains("OAuth2 token"), "{err}");
        // In the clear the token would be readable: only when named.
        assert!(choose(AuthChoice::Auto, bearer, &all, false).is_err());
        let named = AuthChoice::Named(Mechanism::XOAuth2);
        assert_eq!(
            choose(named, bearer, &all, true).unwrap(),
            Mechanism::XOAuth2
        );
        assert_eq!(
            choose(named, bearer, &all, false).unwrap(),
            Mechanism::XOAuth2
        );
        // A password never goes out as a token, nor a token by PLAIN or LOGIN.
        assert_eq!(
            choose(
                AuthChoice::Auto,
                SecretKind::Password,
                &offered(&["XOAUTH2", "OAUTHBEARER"]),
                true
            )
            .map_err(|e| e.class()),
            Err(super::super::ErrorClass::Config)
        );
        for m in [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5] {
            assert!(matches!(
                choose(AuthChoice::Named(m), bearer, &all, true),
                Err(SmtpError::WrongSecretKind { .. })
            ));
        }
        assert!(matches!(
            choose(named, SecretKind::Password, &all, true),
            Err(SmtpError::WrongSecretKind { .. })
        ));
    }

    #[test]
    fn parse_names() {
        assert_eq!(
            "cram-md5".parse::<AuthChoice>().unwrap(),
            AuthChoice::Named(Mechanism::CramMd5)
        );
        assert_eq!("AUTO".parse::<AuthChoice>().unwrap(), AuthChoice::Auto);
        assert_eq!("Plain".parse::<Mechanism>().unwrap(), Mechanism::Plain);
        assert_eq!(
            "xoauth2".parse::<AuthChoice>().unwrap(),
            AuthChoice::Named(Mechanism::XOAuth2)
        );
        assert_eq!(
            "OAuthBearer".parse::<Mechanism>().unwrap(),
            Mechanism::OAuthBearer
        );
        assert!("gssapi".parse::<AuthChoice>().is_err());
    }

    #[test]
    fn secret_never_printed() {
        let c = creds("tim", "hunter2", AuthChoice::Auto);
        assert_eq!(format!("{}", c.password), "<redacted>");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.password.expose(), b"hunter2");
    }
}
