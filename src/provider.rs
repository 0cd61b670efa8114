//! `--provider NAME` presets (cli.md "Server"): the submission server, port and TLS mode of
//! well-known mail services, and the OAuth2 endpoints their tokens come from. Data only: the
//! settings resolver (`config`) applies the server part, each value overridden by its own flag
//! or config key; the OAuth2 part is for token acquisition.
use std::fmt::Write as _;

use crate::smtp::TlsMode;

/// One service's preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The `--provider` value.
    pub name: &'static str,
    pub host: &'static str,
    pub port: u16,
    pub tls: TlsMode,
    /// Where OAuth2 tokens for SMTP come from, when the service offers it.
    pub oauth2: Option<OAuth2Preset>,
}

/// An OAuth2 authorization server for SMTP submission. Microsoft's URLs hold `{tenant}`, to be
/// replaced by [`OAuth2Preset::tenant`] or `--oauth2-tenant` ([`OAuth2Preset::url`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2Preset {
    /// The endpoint family: `google` or `microsoft`.
    pub family: &'static str,
    /// Authorization endpoint (RFC 6749 §3.1), for the browser flow.
    pub auth_url: &'static str,
    /// Token endpoint (RFC 6749 §3.2).
    pub token_url: &'static str,
    /// Device authorization endpoint (RFC 8628 §3.1).
    pub device_url: &'static str,
    /// The scope that allows SMTP submission.
    pub default_scope: &'static str,
    /// The default tenant for `{tenant}` (Microsoft: `consumers` or `organizations`).
    pub tenant: Option<&'static str>,
}

impl OAuth2Preset {
    /// `url` with `{tenant}` replaced by `tenant`, else the preset's own.
    pub fn url(&self, url: &str, tenant: Option<&str>) -> String {
        match tenant.or(self.tenant) {
            Some(t) => url.replace("{tenant}", t),
            None => url.to_owned(),
        }
    }
}

const GOOGLE: OAuth2Preset = OAuth2Preset {
    family: "google",
    auth_url: "https://accounts.google.com/o/oauth2/v2/auth",
    token_url: "https://oauth2.googleapis.com/token",
    device_url: "https://oauth2.googleapis.com/device/code",
    default_scope: "https://mail.google.com/",
    tenant: None,
};

const fn microsoft(tenant: &'static str) -> OAuth2Preset {
    OAuth2Preset {
        family: "microsoft",
        auth_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        token_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        device_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
        default_scope: "https://outlook.office.com/SMTP.Send offline_access",
        tenant: Some(tenant),
    }
}

const fn plain(name: &'static str, host: &'static str, port: u16, tls: TlsMode) -> Provider {
    Provider {
        name,
        host,
        port,
        tls,
        oauth2: None,
    }
}

/// The table of cli.md "Server", in its order.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "gmail",
        host: "smtp.gmail.com",
        port: 587,
        tls: TlsMode::Starttls,
        oauth2: Some(GOOGLE),
    },
    Provider {
        name: "outlook",
        host: "smtp-mail.outlook.com",
        port: 587,
        tls: TlsMode::Starttls,
        oauth2: Some(microsoft("consumers")),
    },
    Provider {
        name: "office365",
        host: "smtp.office365.com",
        port: 587,
        tls: TlsMode::Starttls,
        oauth2: Some(microsoft("organizations")),
    },
    plain("yahoo", "smtp.mail.yahoo.com", 465, TlsMode::Implicit),
    plain("aol", "smtp.aol.com", 465, TlsMode::Implicit),
    plain("icloud", "smtp.mail.me.com", 587, TlsMode::Starttls),
    plain("fastmail", "smtp.fastmail.com", 465, TlsMode::Implicit),
    plain(
        "mailtrap",
        "sandbox.smtp.mailtrap.io",
        2525,
        TlsMode::Starttls,
    ),
];

/// The `--provider` value that prints the table.
pub const LIST: &str = "list";

/// The preset called `name` (case-insensitive, as host names are).
pub fn find(name: &str) -> Option<&'static Provider> {
    PROVIDERS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// "gmail, outlook, ...": for error messages.
pub fn names() -> String {
    PROVIDERS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// clap's value parser for `--provider` and SMTP_PROVIDER: a known name or `list`; anything
/// else is a usage error (64) naming the choices.
pub fn parse_arg(value: &str) -> Result<String, String> {
    if value.eq_ignore_ascii_case(LIST) {
        return Ok(LIST.to_owned());
    }
    find(value).map(|p| p.name.to_owned()).ok_or_else(|| {
        format!(
            "unknown provider {value:?}: expected one of {}, or list",
            names()
        )
    })
}

/// The table `--provider list` prints.
pub fn table() -> String {
    let mut out = format!(
        "{:<10} {:<26} {:>5}  {:<9} {}\n",
        "NAME", "SERVER", "PORT", "TLS", "OAUTH2"
    );
    for p in PROVIDERS {
        let oauth = match &p.oauth2 {
            Some(o) => match o.tenant {
                Some(t) => format!("{} (tenant {t})", o.family),
                None => o.family.to_owned(),
            },
            None => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<10} {:<26} {:>5}  {:<9} {oauth}",
            p.name,
            p.host,
            p.port,
            p.tls.as_str()
        );
    }
    out
}

/// Whether `host` is one of Google's SMTP servers (for the hints of cli.md "Diagnostics").
pub fn is_google_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "smtp.gmail.com" || h == "smtp-relay.gmail.com" || h.ends_with(".googlemail.com")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_table() {
        let row = |n: &str| {
            let p = find(n).unwrap();
            (p.host, p.port, p.tls)
        };
        assert_eq!(row("gmail"), ("smtp.gmail.com", 587, TlsMode::Starttls));
        assert_eq!(
            row("outlook"),
            ("smtp-mail.outlook.com", 587, TlsMode::Starttls)
        );
        assert_eq!(
            row("office365"),
            ("smtp.office365.com", 587, TlsMode::Starttls)
        );
        assert_eq!(
            row("yahoo"),
            ("smtp.mail.yahoo.com", 465, TlsMode::Implicit)
        );
        assert_eq!(row("aol"), ("smtp.aol.com", 465, TlsMode::Implicit));
        assert_eq!(row("icloud"), ("smtp.mail.me.com", 587, TlsMode::Starttls));
        assert_eq!(
            row("fastmail"),
            ("smtp.fastmail.com", 465, TlsMode::Implicit)
        );
        assert_eq!(
            row("mailtrap"),
            ("sandbox.smtp.mailtrap.io", 2525, TlsMode::Starttls)
        );
        assert_eq!(PROVIDERS.len(), 8);
    }

    #[test]
    fn oauth2_endpoints() {
        let g = find("gmail").unwrap().oauth2.as_ref().unwrap();
        assert_eq!(g.token_url, "https://oauth2.googleapis.com/token");
        assert_eq!(g.default_scope, "https://mail.google.com/");
        let o = find("outlook").unwrap().oauth2.as_ref().unwrap();
        assert_eq!(
            o.url(o.token_url, None),
            "https://login.microsoftonline.com/consumers/oauth2/v2.0/token"
        );
        let m = find("office365").unwrap().oauth2.as_ref().unwrap();
        assert_eq!(
            m.url(m.device_url, None),
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode"
        );
        assert_eq!(
            m.url(m.auth_url, Some("contoso.onmicrosoft.com")),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize"
        );
        assert!(find("yahoo").unwrap().oauth2.is_none());
    }

    #[test]
    fn names_and_parsing() {
        assert_eq!(parse_arg("Gmail").unwrap(), "gmail");
        assert_eq!(parse_arg("LIST").unwrap(), "list");
        let e = parse_arg("hotmail").unwrap_err();
        assert!(e.contains("gmail, outlook, office365, yahoo, aol, icloud, fastmail, mailtrap"));
        let t = table();
        assert!(t.contains("office365  smtp.office365.com"), "{t}");
        assert_eq!(t.lines().count(), 9);
        assert!(is_google_host("SMTP.gmail.com."));
        assert!(!is_google_host("smtp.example.com"));
    }
}
