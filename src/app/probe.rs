//! `--probe`: connect, show what the server offers, send no mail (cli.md "Probe").
use super::delivery::Smtp;
use super::Ctx;
use crate::error::{self, Error};
use crate::report::{CertificateReport, ProbeReport, Report, TlsReport};
use crate::smtp::{auth, AuthChoice, Capabilities, SecretKind};

pub fn probe(ctx: &Ctx) -> Result<(Report, i32), Error> {
    let server = ctx.settings.server.as_ref().ok_or_else(|| {
        Error::Usage("--probe needs a server: give --server HOST[:PORT] (or SMTP_SERVER)".into())
    })?;
    let failed = |e: Error| {
        // The report names the server that failed, as a failed send does.
        let error = e.report(&ctx.hints());
        error::print(&error);
        let code = error.exit_code;
        let report = Report {
            server: Some(server.display()),
            error: Some(error),
            ..Report::default()
        };
        Ok((report, code))
    };
    let smtp = Smtp::new(server, ctx.ui, true)?;
    let conn = match smtp.open() {
        Ok(conn) => conn,
        Err(e) => return failed(e),
    };
    let session = conn.session();
    let caps = session
        .capabilities()
        .cloned()
        .unwrap_or_else(Capabilities::none);
    let tls = conn.tls_info().cloned();
    let probe = ProbeReport {
        greeting: session.greeting().map(|r| r.raw_lines().join("\n")),
        capabilities_before_tls: session.pre_tls_capabilities().map(|c| c.lines().to_vec()),
        capabilities: caps.lines().to_vec(),
        certificates: tls
            .iter()
            .flat_map(|t| &t.certificates)
            .map(|c| CertificateReport {
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                not_before: c.not_before.clone(),
                not_after: c.not_after.clone(),
                sha256: c.sha256.clone(),
            })
            .collect(),
        auth_mechanisms: caps.auth_mechanisms().to_vec(),
        auth_auto: auth::choose(
            AuthChoice::Auto,
            SecretKind::Password,
            caps.auth_mechanisms(),
            session.tls_active(),
        )
        .ok()
        .map(|m| m.name().to_owned()),
        size_limit: caps.size_limit(),
        pipelining: caps.pipelining(),
        chunking: caps.chunking(),
        smtputf8: caps.smtputf8(),
        eight_bit_mime: caps.eight_bit_mime(),
    };
    if !ctx.cli.json {
        print!("{}", human(&server.display(), &probe, &tls, &caps));
    }
    let report = Report {
        sent: false,
        server: Some(server.display()),
        tls: Some(TlsReport {
            mode: server.tls.as_str().into(),
            version: tls.as_ref().map(|t| t.version.clone()),
            cipher: tls.as_ref().map(|t| t.cipher.clone()),
        }),
        probe: Some(probe),
        ..Report::default()
    };
    Ok((report, 0))
}

fn human(
    server: &str,
    p: &ProbeReport,
    tls: &Option<crate::transport::TlsInfo>,
    caps: &Capabilities,
) -> String {
    let mut out = format!("Server: {server}\n");
    if let Some(g) = &p.greeting {
        out.push_str(&format!("Greeting: {}\n", g.replace('\n', "\n          ")));
    }
    if let Some(b) = &p.capabilities_before_tls {
        out.push_str("Before TLS (not trusted, shown only):\n");
        for l in b {
            out.push_str(&format!("  {l}\n"));
        }
    }
    match tls {
        Some(t) => {
            out.push_str(&format!("TLS: {} {}\n", t.version, t.cipher));
            for (i, c) in p.certificates.iter().enumerate() {
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
    for l in &p.capabilities {
        out.push_str(&format!("  {l}\n"));
    }
    out.push_str(&format!(
        "AUTH: {}; --auth auto would use {}\n",
        if p.auth_mechanisms.is_empty() {
            "none offered".to_owned()
        } else {
            p.auth_mechanisms.join(" ")
        },
        p.auth_auto
            .as_deref()
            .unwrap_or("nothing (no usable mechanism)")
    ));
    out.push_str(&match p.size_limit {
        Some(n) if n > 0 => format!("SIZE limit: {n} octets\n"),
        _ if caps.size_offered() => "SIZE: offered, no limit given\n".to_owned(),
        _ => "SIZE: not offered\n".to_owned(),
    });
    out
}
