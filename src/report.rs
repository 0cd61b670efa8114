//! What a run tells its caller: the JSON report of cli.md ("JSON report") and the human lines
//! printed on stderr. Every field is always present (null when it does not apply), so scripts
//! can rely on one schema.
use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Transport {
    #[default]
    #[serde(rename = "smtp")]
    Smtp,
    #[serde(rename = "outbox")]
    Outbox,
    #[serde(rename = "dry-run")]
    DryRun,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TlsReport {
    pub mode: String,
    pub version: Option<String>,
    pub cipher: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReplyReport {
    pub code: u16,
    pub enhanced: Option<String>,
    pub text: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Rejected {
    pub address: String,
    pub code: u16,
    pub enhanced: Option<String>,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ErrorReport {
    pub kind: &'static str,
    pub message: String,
    pub exit_code: i32,
    /// One line naming the fix when the usual cause is the user's setup (cli.md "Diagnostics").
    pub hint: Option<String>,
}

/// One message's report; in grade mode the top-level report carries one per message.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub sent: bool,
    pub transport: Transport,
    pub server: Option<String>,
    pub tls: Option<TlsReport>,
    pub auth: Option<String>,
    pub envelope_from: Option<String>,
    pub message_id: Option<String>,
    pub size: Option<u64>,
    pub accepted: Vec<String>,
    pub rejected: Vec<Rejected>,
    pub reply: Option<ReplyReport>,
    pub queue_id: Option<String>,
    pub outbox_path: Option<String>,
    pub elapsed_ms: u64,
    pub quiz: Option<serde_json::Value>,
    pub error: Option<ErrorReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Report>>,
    /// `--probe`: what the server offers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeReport>,
}

/// What `--probe` found (cli.md "Probe").
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProbeReport {
    pub greeting: Option<String>,
    /// Shown only, never acted on (RFC 3207 §4.2).
    pub capabilities_before_tls: Option<Vec<String>>,
    pub capabilities: Vec<String>,
    pub certificates: Vec<CertificateReport>,
    pub auth_mechanisms: Vec<String>,
    /// What `--auth auto` would pick.
    pub auth_auto: Option<String>,
    pub size_limit: Option<u64>,
    pub pipelining: bool,
    pub chunking: bool,
    pub smtputf8: bool,
    #[serde(rename = "8bitmime")]
    pub eight_bit_mime: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CertificateReport {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    /// The value `--tls-fingerprint` takes.
    pub sha256: String,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            format!("{{\"sent\": false, \"error\": {{\"kind\": \"internal\", \"message\": {:?}, \"exit_code\": 70}}}}", e.to_string())
        })
    }

    /// The one-paragraph human account of a delivery (stderr).
    pub fn human(&self) -> String {
        let mut out = String::new();
        match self.transport {
            Transport::DryRun => out.push_str("Dry run: the message was NOT sent.\n"),
            Transport::Outbox => {
                if let Some(path) = &self.outbox_path {
                    out.push_str(&format!(
                        "NOT sent: no server is configured. The message is kept in {path}\n\
                         send it with: quizmail --flush --server HOST[:PORT] --user NAME \
                         (or this one alone: quizmail --message {path} --server HOST[:PORT]{})\n",
                        if self.accepted.is_empty() {
                            String::new()
                        } else {
                            format!(" --to {}", self.accepted.join(","))
                        }
                    ));
                }
            }
            Transport::Smtp => {
                let via = self.server.as_deref().unwrap_or("?");
                let mut how = Vec::new();
                if let Some(tls) = &self.tls {
                    if tls.mode != "none" {
                        how.push(format!(
                            "{} {}",
                            tls.mode.to_uppercase(),
                            tls.version.as_deref().unwrap_or("")
                        ));
                    }
                }
                if let Some(a) = &self.auth {
                    how.push(format!("AUTH {a}"));
                }
                let how = if how.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", how.join(", ").replace("  ", " ").trim())
                };
                if !self.accepted.is_empty() && self.sent {
                    out.push_str(&format!(
                        "Sent to {} via {via}{how}",
                        self.accepted.join(", ")
                    ));
                    if let Some(r) = &self.reply {
                        out.push_str(&format!(": {}", reply_line(r.code, &r.enhanced, &r.text)));
                    }
                    out.push('\n');
                }
                for r in &self.rejected {
                    out.push_str(&format!(
                        "Rejected {}: {}\n",
                        r.address,
                        reply_line(r.code, &r.enhanced, &r.text)
                    ));
                }
            }
        }
        out
    }
}

fn reply_line(code: u16, enhanced: &Option<String>, text: &str) -> String {
    match enhanced {
        Some(e) => format!("{code} {e} {text}"),
        None => format!("{code} {text}"),
    }
}

/// Milliseconds as the report gives them.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_every_field_of_the_contract() {
        let r = Report {
            sent: true,
            server: Some("smtp.example.com:587".into()),
            accepted: vec!["ada@example.com".into()],
            ..Report::default()
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        for key in [
            "sent",
            "transport",
            "server",
            "tls",
            "auth",
            "envelope_from",
            "message_id",
            "size",
            "accepted",
            "rejected",
            "reply",
            "queue_id",
            "outbox_path",
            "elapsed_ms",
            "quiz",
            "error",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["transport"], "smtp");
        assert!(v.get("messages").is_none());
        let r = Report {
            transport: Transport::DryRun,
            ..Report::default()
        };
        assert!(r.to_json().contains("\"dry-run\""));
    }

    #[test]
    fn human_lines() {
        let r = Report {
            sent: true,
            server: Some("mx.test:587".into()),
            tls: Some(TlsReport {
                mode: "starttls".into(),
                version: Some("TLSv1.3".into()),
                cipher: None,
            }),
            auth: Some("PLAIN".into()),
            accepted: vec!["a@x.test".into()],
            rejected: vec![Rejected {
                address: "b@x.test".into(),
                code: 550,
                enhanced: Some("5.1.1".into()),
                text: "User unknown".into(),
            }],
            reply: Some(ReplyReport {
                code: 250,
                enhanced: None,
                text: "Ok".into(),
            }),
            ..Report::default()
        };
        let h = r.human();
        assert!(
            h.contains("Sent to a@x.test via mx.test:587 (STARTTLS TLSv1.3, AUTH PLAIN): 250 Ok"),
            "{h}"
        );
        assert!(
            h.contains("Rejected b@x.test: 550 5.1.1 User unknown"),
            "{h}"
        );
    }
}
