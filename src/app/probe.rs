//! `--probe`: connect, show what the server offers, send no mail (cli.md "Probe").
use serde_json::json;

use super::{error_report, Ctx};
use crate::client::Dialer;
use crate::error::Error;
use crate::report::{Report, TlsReport};
use crate::smtp::{auth, AuthChoice, Capabilities};

pub fn probe(ctx: &Ctx) -> Result<(Report, i32), Error> {
    let server = ctx
        .settings
        .server
        .as_ref()
        .ok_or_else(|| Error::Usage("--probe needs --server HOST[:PORT]".into()))?;
    let dialer = Dialer::without_credentials(server, ctx.ui.verbose)?;
    let conn = match dialer.open(true) {
        Ok(conn) => conn,
        Err(e) => {
            // The report names the server that failed, as a failed send does.
            eprintln!("quizmail: error: {e}");
            let report = Report {
                server: Some(server.display()),
                error: Some(error_report(&e)),
                ..Report::default()
            };
            return Ok((report, e.exit_code()));
        }
    };
    let session = conn.session();
    let caps = session
        .capabilities()
        .cloned()
        .unwrap_or_else(Capabilities::none);
    let tls = conn.tls_info().cloned();
    let auto = auth::choose(
        AuthChoice::Auto,
        caps.auth_mechanisms(),
        session.tls_active(),
    )
    .ok()
    .map(|m| m.name().to_owned());
    let greeting = session.greeting().map(|r| r.raw_lines().join("\n"));
    let before = session.pre_tls_capabilities().map(|c| c.lines().to_vec());
    let certificates: Vec<_> = tls
        .iter()
        .flat_map(|t| &t.certificates)
        .map(|c| {
            json!({"subject": c.subject, "issuer": c.issuer, "not_before": c.not_before,
                   "not_after": c.not_after, "sha256": c.sha256})
        })
        .collect();
    let details = json!({
        "greeting": greeting,
        "capabilities_before_tls": before,
        "capabilities": caps.lines(),
        "certificates": certificates,
        "auth_mechanisms": caps.auth_mechanisms(),
        "auth_auto": auto,
        "size_limit": caps.size_limit(),
        "pipelining": caps.pipelining(),
        "chunking": caps.chunking(),
        "smtputf8": caps.smtputf8(),
        "8bitmime": caps.eight_bit_mime(),
    });
    if !ctx.cli.json {
        let mut out = String::new();
        out.push_str(&format!("Server: {}\n", server.display()));
        if let Some(g) = &greeting {
            out.push_str(&format!("Greeting: {}\n", g.replace('\n', "\n          ")));
        }
        if let Some(b) = &before {
            out.push_str("Before TLS (not trusted, shown only):\n");
            for l in b {
                out.push_str(&format!("  {l}\n"));
            }
        }
        match &tls {
            Some(t) => {
                out.push_str(&format!("TLS: {} {}\n", t.version, t.cipher));
                for (i, c) in t.certificates.iter().enumerate() {
                    out.push_str(&format!(
                        "Certificate {i}: {}\n  issuer:  {}\n  valid:   {} to {}\n  sha256:  {}\n",
                        c.subject, c.issuer, c.not_before, c.not_after, c.sha256
                    ));
                }
            }
            None => out.push_str("TLS: none\n"),
        }
        out.push_str(if tls.is_some() {
            "Capabilities (after TLS):\n"
        } else {
            "Capabilities:\n"
        });
        for l in caps.lines() {
            out.push_str(&format!("  {l}\n"));
        }
        let mechs = caps.auth_mechanisms();
        out.push_str(&format!(
            "AUTH: {}; --auth auto would use {}\n",
            if mechs.is_empty() {
                "none offered".to_owned()
            } else {
                mechs.join(" ")
            },
            auto.as_deref().unwrap_or("nothing (no usable mechanism)")
        ));
        out.push_str(&match caps.size_limit() {
            Some(n) if n > 0 => format!("SIZE limit: {n} octets\n"),
            _ if caps.size_offered() => "SIZE: offered, no limit given\n".to_owned(),
            _ => "SIZE: not offered\n".to_owned(),
        });
        print!("{out}");
    }
    let report = Report {
        sent: false,
        server: Some(server.display()),
        tls: Some(TlsReport {
            mode: server.tls.as_str().into(),
            version: tls.as_ref().map(|t| t.version.clone()),
            cipher: tls.as_ref().map(|t| t.cipher.clone()),
        }),
        probe: Some(details),
        ..Report::default()
    };
    Ok((report, 0))
}
