//! SMTP authentication (RFC 4954): PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login),
//! CRAM-MD5 (RFC 2195), the `--auth auto` choice rule of cli.md, and [`Secret`] for passwords.
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
}

impl Mechanism {
    /// The registered SASL name, as sent in `AUTH` and offered in EHLO.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
        }
    }

    /// Whether the password crosses the wire in a recoverable form (base64 is not encryption).
    pub fn sends_password_in_clear(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse failure for `--auth` values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown AUTH mechanism {0:?} (expected auto, plain, login or cram-md5)")]
pub struct UnknownMechanism(pub String);

impl FromStr for Mechanism {
    type Err = UnknownMechanism;

    /// Case-insensitive, as SASL names are (RFC 4422 §3.1).
    fn from_str(s: &str) -> Result<Mechanism, UnknownMechanism> {
        [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownMechanism(s.to_string()))
    }
}

/// `--auth auto|plain|login|cram-md5`.
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

/// What the session authenticates with.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
    pub choice: AuthChoice,
}

/// The cli.md rule: `auto` over TLS takes PLAIN, then LOGIN, then CRAM-MD5 among those offered;
/// over plaintext only CRAM-MD5, because PLAIN and LOGIN would expose the password. A named
/// mechanism is used as named (also in the clear) but must be offered. `offered` holds the
/// names from the EHLO `AUTH` line.
pub fn choose(choice: AuthChoice, offered: &[String], tls: bool) -> Result<Mechanism, SmtpError> {
    if offered.is_empty() {
        return Err(SmtpError::AuthNotOffered);
    }
    let is_offered = |m: Mechanism| offered.iter().any(|o| o.eq_ignore_ascii_case(m.name()));
    let found = match choice {
        AuthChoice::Named(m) => Some(m).filter(|&m| is_offered(m)),
        AuthChoice::Auto => [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5]
            .into_iter()
            .filter(|m| tls || !m.sends_password_in_clear())
            .find(|&m| is_offered(m)),
    };
    found.ok_or_else(|| SmtpError::NoUsableMechanism {
        offered: offered.to_vec(),
        tls,
    })
}

/// One SASL exchange in progress: the mechanism, how many challenges were answered, and
/// whether the final response went out. Success is only believed after it did: a 235 before
/// the credentials were sent answers a command that does not exist yet (RFC 4954 §4).
#[derive(Debug)]
pub(crate) struct Sasl {
    mechanism: Mechanism,
    answered: u8,
    /// PLAIN's response, held for the empty challenge when it could not ride on the AUTH line.
    held: Option<SaslResponse>,
    final_sent: bool,
}

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
const MAX_COMMAND_LINE: usize = 512;

impl Sasl {
    /// The `AUTH` command opening the exchange. PLAIN carries its initial response (RFC 4954 §4)
    /// to save a round trip, unless that would make the line longer than SMTP allows: then
    /// RFC 4954 §4 says to send it after the server's empty challenge. LOGIN and CRAM-MD5 wait
    /// for a challenge.
    pub(crate) fn start(
        mechanism: Mechanism,
        creds: &Credentials,
    ) -> Result<(Sasl, Command), SmtpError> {
        let mut sasl = Sasl {
            mechanism,
            answered: 0,
            held: None,
            final_sent: false,
        };
        let command = match mechanism {
            Mechanism::Plain => {
                let response = plain_response(&creds.user, creds.password.expose())?;
                let with_initial = Command::auth(mechanism, Some(response));
                if with_initial.to_wire().len() <= MAX_COMMAND_LINE {
                    sasl.final_sent = true;
                    with_initial
                } else {
                    sasl.held = Some(plain_response(&creds.user, creds.password.expose())?);
                    Command::auth(mechanism, None)
                }
            }
            Mechanism::Login | Mechanism::CramMd5 => Command::auth(mechanism, None),
        };
        Ok((sasl, command))
    }

    /// True once the mechanism's last response went out: only then can success be the answer.
    pub(crate) fn final_sent(&self) -> bool {
        self.final_sent
    }

    pub(crate) fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Answers a 334 challenge. LOGIN answers by order (user name, then password) because the
    /// prompt texts vary between servers; any challenge beyond what a mechanism needs means the
    /// server is out of step.
    pub(crate) fn respond(
        &mut self,
        challenge: &Reply,
        creds: &Credentials,
    ) -> Result<Command, SmtpError> {
        let step = self.answered;
        self.answered = self.answered.saturating_add(1);
        let payload = match (self.mechanism, step) {
            (Mechanism::Login, 0) => SaslResponse::encode(creds.user.as_bytes()),
            (Mechanism::Login, 1) => SaslResponse::encode(creds.password.expose()),
            (Mechanism::Plain, 0) if self.held.is_some() => match self.held.take() {
                Some(response) => response,
                None => return Err(SmtpError::BadChallenge("334 after PLAIN")),
            },
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
        self.final_sent = matches!(
            (self.mechanism, step),
            (Mechanism::Login, 1) | (Mechanism::CramMd5, 0) | (Mechanism::Plain, 0)
        );
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
        let (mut sasl, first) = Sasl::start(Mechanism::CramMd5, &c).unwrap();
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
        let (mut sasl, _) = Sasl::start(Mechanism::CramMd5, &c).unwrap();
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
        let (mut sasl, first) = Sasl::start(Mechanism::Plain, &c).unwrap();
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
            Sasl::start(Mechanism::Plain, &nul),
            Err(SmtpError::InvalidCredentials)
        ));
    }

    #[test]
    fn login_answers_by_order() {
        let c = creds("tim", "tanstaaftanstaaf", AuthChoice::Auto);
        let (mut sasl, first) = Sasl::start(Mechanism::Login, &c).unwrap();
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
        let (mut sasl, first) = Sasl::start(Mechanism::Plain, &c).unwrap();
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
            choose(AuthChoice::Auto, &all, true).unwrap(),
            Mechanism::Plain
        );
        assert_eq!(
            choose(AuthChoice::Auto, &offered(&["cram-md5", "login"]), true).unwrap(),
            Mechanism::Login
        );
        assert_eq!(
            choose(AuthChoice::Auto, &offered(&["CRAM-MD5", "XOAUTH2"]), true).unwrap(),
            Mechanism::CramMd5
        );
    }

    #[test]
    fn auto_choice_in_clear_only_cram() {
        assert_eq!(
            choose(
                AuthChoice::Auto,
                &offered(&["PLAIN", "LOGIN", "CRAM-MD5"]),
                false
            )
            .unwrap(),
            Mechanism::CramMd5
        );
        let err = choose(AuthChoice::Auto, &offered(&["PLAIN", "LOGIN"]), false).unwrap_err();
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
            choose(plain, &offered(&["PLAIN"]), false).unwrap(),
            Mechanism::Plain
        );
        assert!(matches!(
            choose(plain, &offered(&["LOGIN"]), true),
            Err(SmtpError::NoUsableMechanism { .. })
        ));
        assert!(matches!(
            choose(plain, &[], true),
            Err(SmtpError::AuthNotOffered)
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
        assert!("xoauth2".parse::<AuthChoice>().is_err());
    }

    #[test]
    fn secret_never_printed() {
        let c = creds("tim", "hunter2", AuthChoice::Auto);
        assert_eq!(format!("{}", c.password), "<redacted>");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.password.expose(), b"hunter2");
    }
}
