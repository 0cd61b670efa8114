//! cli.md "Diagnostics": for a failure whose usual cause is the user's setup, one line that
//! names the fix (`hint: ...` on stderr, `error.hint` in the JSON report). [`hint`] is the one
//! place these rules live; [`Context`] is what they need to know about the run besides the
//! error itself.
use crate::config::ServerSettings;
use crate::driver::DriverError;
use crate::provider;
use crate::smtp::{SmtpError, TlsMode};
use crate::transport::TransportError;

use super::Error;

/// What the hints need to know about the run. The default (no server) gives only the hints
/// that the error alone decides.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub tls: Option<TlsMode>,
    pub port: Option<u16>,
    /// `--user` was given (so AUTH was attempted or could have been).
    pub user: bool,
    /// The secret was an OAuth2 access token, not a password.
    pub token: bool,
    /// The server's host name, as given or preset.
    pub host: Option<String>,
    /// The `--provider` name, when one was used.
    pub provider: Option<&'static str>,
}

impl Context {
    pub fn of(settings: Option<&ServerSettings>) -> Context {
        let Some(s) = settings else {
            return Context::default();
        };
        Context {
            tls: Some(s.tls),
            port: Some(s.port),
            user: s.user.is_some(),
            token: s.auth.takes_token(),
            host: Some(s.host.clone()),
            provider: s.provider.map(|p| p.name),
        }
    }

    fn is_gmail(&self) -> bool {
        self.provider == Some("gmail") || self.host.as_deref().is_some_and(provider::is_google_host)
    }
}

/// One server reply behind an error: code, enhanced code, text.
struct Said<'a> {
    code: u16,
    enhanced: Option<String>,
    text: &'a str,
}

impl Said<'_> {
    fn is(&self, code: u16, enhanced: &str) -> bool {
        self.code == code && self.enhanced.as_deref() == Some(enhanced)
    }
}

/// The replies an error carries: the one that ended the dialogue and, when no recipient was
/// accepted, each recipient's refusal.
fn replies(e: &Error) -> Vec<Said<'_>> {
    let (smtp, rejected) = match e {
        Error::Driver(DriverError::Smtp(s)) => (s, &[][..]),
        Error::Delivery { source, rejected } => (source, rejected.as_slice()),
        _ => return Vec::new(),
    };
    let mut said: Vec<Said<'_>> = smtp
        .reply()
        .map(|r| Said {
            code: r.code,
            enhanced: r.enhanced.map(|e| e.to_string()),
            text: r.lines.first().map(String::as_str).unwrap_or_default(),
        })
        .into_iter()
        .collect();
    said.extend(rejected.iter().map(|r| Said {
        code: r.code,
        enhanced: r.enhanced.clone(),
        text: &r.text,
    }));
    said
}

const APP_PASSWORD: &str = "https://myaccount.google.com/apppasswords";

/// The hint for `e`, if its usual cause is one cli.md "Diagnostics" names.
pub fn hint(e: &Error, ctx: &Context) -> Option<String> {
    if let Error::Driver(DriverError::Transport { source, .. }) = e {
        return transport_hint(source, ctx);
    }
    let said = replies(e);
    let any = |f: &dyn Fn(&Said<'_>) -> bool| said.iter().any(f);
    if any(&|s| s.is(534, "5.7.9")) {
        return Some(format!(
            "the account wants an application-specific password: create an app password \
             ({APP_PASSWORD} for Google) and use it in place of the account password, or use \
             OAuth2 (--oauth2-login)"
        ));
    }
    if any(&|s| s.is(535, "5.7.139") || s.is(550, "5.7.30")) {
        return Some(
            "Microsoft has SMTP AUTH (basic authentication) disabled for this mailbox: use \
             OAuth2 (--oauth2-login), or ask the tenant admin to enable SMTP AUTH for the mailbox"
                .into(),
        );
    }
    if ctx.token && any(&|s| s.is(535, "5.7.3")) {
        return Some(
            "the token was refused: the account it was issued for is not --user, or it lacks \
             the SMTP.Send scope"
                .into(),
        );
    }
    if !ctx.token && ctx.is_gmail() && any(&|s| s.is(535, "5.7.8")) {
        return Some(format!(
            "Gmail says: wrong password or app password; with 2-step verification Gmail takes \
             an app password ({APP_PASSWORD}), not the account password, or use OAuth2 \
             (--oauth2-login)"
        ));
    }
    // Before the relay rule: "550 5.7.1 ... send as" is about From, not about logging in.
    let send_as = |s: &Said<'_>| {
        let text = s.text.to_ascii_lowercase();
        s.enhanced.as_deref() == Some("5.7.60")
            || (s.enhanced.as_deref() == Some("5.7.1")
                && (text.contains("send as") || text.contains("sendas")))
    };
    if any(&send_as) {
        return Some(
            "the From address is not one this account may send as: give --from the account's \
             own address, or one it is allowed to send as"
                .into(),
        );
    }
    let relay = |s: &Said<'_>| s.code == 530 || s.is(554, "5.7.1") || s.is(550, "5.7.1");
    if !ctx.user
        && (matches!(
            e,
            Error::Driver(DriverError::Smtp(SmtpError::AuthRequired { .. }))
        ) || any(&relay))
    {
        return Some("this server wants you to log in: pass --user".into());
    }
    if any(&|s| s.is(454, "4.7.0") || s.is(421, "4.7.0")) {
        return Some(
            "the server is throttling this account: wait before retrying; for batches, --rate \
             spaces the messages out"
                .into(),
        );
    }
    None
}

/// TLS mode and port disagree (cli.md "Diagnostics", RFC 8314 §3.3).
fn transport_hint(e: &TransportError, ctx: &Context) -> Option<String> {
    if ctx.tls == Some(TlsMode::Implicit) && e.is_plaintext_reply_to_tls() {
        return Some("this port speaks plaintext first: use --tls starttls (port 587)".into());
    }
    let silent_greeting = matches!(e, TransportError::Timeout { during } if during == "greeting");
    if silent_greeting && ctx.port == Some(465) && ctx.tls != Some(TlsMode::Implicit) {
        return Some("port 465 expects TLS at once: use --tls implicit".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Rejected;
    use crate::smtp::{EnhancedCode, Mechanism, Reply, Stage};

    fn reply(code: u16, enhanced: &str, text: &str) -> Reply {
        let mut parts = enhanced.split('.').map(|p| p.parse::<u16>().unwrap());
        let enhanced = EnhancedCode {
            class: parts.next().unwrap() as u8,
            subject: parts.next().unwrap(),
            detail: parts.next().unwrap(),
        };
        Reply::new(code, Some(enhanced), vec![text.into()])
    }

    fn auth_failed(code: u16, enhanced: &str) -> Error {
        SmtpError::AuthFailed {
            mechanism: Mechanism::Plain,
            reply: reply(code, enhanced, "no"),
            oauth: None,
        }
        .into()
    }

    fn ctx() -> Context {
        Context {
            tls: Some(TlsMode::Starttls),
            port: Some(587),
            user: true,
            host: Some("mx.example.com".into()),
            ..Context::default()
        }
    }

    #[test]
    fn each_rule_and_its_conditions() {
        let says = |e: &Error, c: &Context, part: &str| {
            let h = hint(e, c).unwrap_or_default();
            assert!(h.contains(part), "{e}: {h:?} lacks {part:?}");
        };
        says(&auth_failed(534, "5.7.9"), &ctx(), "app password");
        says(&auth_failed(535, "5.7.139"), &ctx(), "SMTP AUTH");
        says(
            &auth_failed(535, "5.7.3"),
            &Context {
                token: true,
                ..ctx()
            },
            "SMTP.Send",
        );
        assert_eq!(hint(&auth_failed(535, "5.7.3"), &ctx()), None);
        let gmail = Context {
            host: Some("smtp.gmail.com".into()),
            ..ctx()
        };
        says(&auth_failed(535, "5.7.8"), &gmail, "app password");
        assert_eq!(hint(&auth_failed(535, "5.7.8"), &ctx()), None);
        assert_eq!(
            hint(
                &auth_failed(535, "5.7.8"),
                &Context {
                    token: true,
                    ..gmail
                }
            ),
            None
        );
        let rcpt = |code, enh: &str, text: &str| Error::Delivery {
            source: SmtpError::NoRecipientAccepted { transient: false },
            rejected: vec![Rejected {
                address: "a@x.test".into(),
                code,
                enhanced: Some(enh.into()),
                text: text.into(),
            }],
        };
        let anonymous = Context {
            user: false,
            ..ctx()
        };
        says(
            &rcpt(554, "5.7.1", "Relay access denied"),
            &anonymous,
            "pass --user",
        );
        assert_eq!(
            hint(&rcpt(554, "5.7.1", "Relay access denied"), &ctx()),
            None
        );
        says(
            &rcpt(
                550,
                "5.7.1",
                "Client does not have permissions to send as this sender",
            ),
            &anonymous,
            "send as",
        );
        let mail = |code, enh: &str| -> Error {
            SmtpError::Rejected {
                stage: Stage::MailFrom,
                reply: reply(code, enh, "x"),
            }
            .into()
        };
        says(&mail(550, "5.7.60"), &ctx(), "send as");
        says(&mail(550, "5.7.30"), &ctx(), "SMTP AUTH");
        says(&mail(454, "4.7.0"), &ctx(), "--rate");
        let closing: Error = SmtpError::ServiceClosing {
            stage: Stage::RcptTo,
            reply: reply(421, "4.7.0", "too many"),
        }
        .into();
        says(&closing, &ctx(), "wait before retrying");
        assert_eq!(hint(&mail(550, "5.1.1"), &ctx()), None);
        let timeout: Error = TransportError::Timeout {
            during: "greeting".into(),
        }
        .into();
        let on_465 = Context {
            port: Some(465),
            ..ctx()
        };
        says(&timeout, &on_465, "--tls implicit");
        assert_eq!(hint(&timeout, &ctx()), None);
        assert_eq!(hint(&Error::Usage("x".into()), &Context::default()), None);
    }
}
