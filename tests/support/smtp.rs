//! `GoodServer`: builds the script of a well-behaved submission server (RFC 6409) — greeting,
//! EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA or BDAT, QUIT — with knobs to inject a reply or a
//! disconnect at any stage, or to leave STARTTLS out of EHLO.

use std::sync::Arc;

use rustls::ServerConfig;

use super::server::{AuthSpec, Script, Server, Step};

/// Where in the dialogue a fault applies. Messages and recipients count from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The `220` greeting.
    Greeting,
    /// The reply to the first EHLO.
    Ehlo,
    /// The reply to STARTTLS.
    StartTls,
    /// The reply to EHLO after TLS.
    EhloAfterTls,
    /// The reply to AUTH (the fault replaces the whole exchange).
    Auth,
    /// The reply to MAIL FROM of message n.
    Mail(usize),
    /// The reply to RCPT TO number r of message n.
    Rcpt(usize, usize),
    /// The reply to DATA of message n (the `354`).
    Data(usize),
    /// The reply after the body (end of DATA, or BDAT LAST) of message n.
    DataEnd(usize),
    /// The reply to QUIT.
    Quit,
}

/// What happens instead of the success reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Send this reply line instead. A `4xx`/`5xx` ends the script in the tolerant tail
    /// (except for a recipient while others are accepted); a `421` also closes the connection
    /// (RFC 5321 §3.8).
    Reply(String),
    /// Close the connection instead of replying.
    Disconnect,
}

/// How the server does TLS.
#[derive(Clone)]
pub enum TlsMode {
    /// Cleartext only.
    None,
    /// STARTTLS on a cleartext connection (RFC 3207).
    StartTls(Arc<ServerConfig>),
    /// TLS from the first byte (RFC 8314).
    Implicit(Arc<ServerConfig>),
}

/// One message's envelope as the server expects it.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The MAIL FROM address, or `None` for any.
    pub from: Option<String>,
    /// The RCPT TO addresses, in order.
    pub rcpts: Vec<String>,
}

/// The host name the server greets with.
pub const SERVER_HOST: &str = "mx.quizmail.test";

/// The queue id in the final reply of message `n` (`250 2.0.0 Ok: queued as <id>`).
pub fn queue_id(n: usize) -> String {
    format!("QM{:08}", n + 1)
}

/// A well-behaved submission server script.
#[derive(Clone)]
pub struct GoodServer {
    tls: TlsMode,
    advertise_starttls: bool,
    extensions: Vec<String>,
    auth: Option<AuthSpec>,
    auth_before_tls: bool,
    bdat: bool,
    messages: Vec<Envelope>,
    faults: Vec<(Stage, Fault)>,
    starttls_injection: Option<Vec<u8>>,
}

impl Default for GoodServer {
    fn default() -> GoodServer {
        GoodServer::new()
    }
}

impl GoodServer {
    /// Cleartext, no AUTH, EHLO offering PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES and SIZE,
    /// one message to one recipient (any addresses).
    pub fn new() -> GoodServer {
        GoodServer {
            tls: TlsMode::None,
            advertise_starttls: true,
            extensions: [
                "PIPELINING",
                "8BITMIME",
                "ENHANCEDSTATUSCODES",
                "SIZE 10485760",
            ]
            .map(str::to_owned)
            .to_vec(),
            auth: None,
            auth_before_tls: false,
            bdat: false,
            messages: Vec::new(),
            faults: Vec::new(),
            starttls_injection: None,
        }
    }

    /// Offers STARTTLS and serves this certificate after it.
    pub fn starttls(mut self, config: Arc<ServerConfig>) -> GoodServer {
        self.tls = TlsMode::StartTls(config);
        self
    }

    /// Starts TLS on connect.
    pub fn implicit_tls(mut self, config: Arc<ServerConfig>) -> GoodServer {
        self.tls = TlsMode::Implicit(config);
        self
    }

    /// Leaves STARTTLS out of EHLO; the script then only waits for QUIT.
    pub fn omit_starttls(mut self) -> GoodServer {
        self.advertise_starttls = false;
        self
    }

    /// Replaces the EHLO extensions (STARTTLS, AUTH and CHUNKING are added as configured).
    pub fn extensions(mut self, extensions: &[&str]) -> GoodServer {
        self.extensions = extensions.iter().map(|e| (*e).to_owned()).collect();
        self
    }

    /// Offers these AUTH mechanisms and accepts these credentials.
    pub fn auth(mut self, mechanisms: &[&str], user: &str, password: &str) -> GoodServer {
        self.auth = Some(AuthSpec {
            mechanisms: mechanisms.iter().map(|m| m.to_ascii_uppercase()).collect(),
            user: user.to_owned(),
            password: password.to_owned(),
        });
        self
    }

    /// Also advertises AUTH before STARTTLS (most servers do not).
    pub fn auth_before_tls(mut self) -> GoodServer {
        self.auth_before_tls = true;
        self
    }

    /// Offers CHUNKING and expects BDAT instead of DATA (RFC 3030).
    pub fn bdat(mut self) -> GoodServer {
        self.bdat = true;
        self
    }

    /// Expects one more message with this envelope (`None`: any MAIL FROM).
    pub fn message(mut self, from: Option<&str>, rcpts: &[&str]) -> GoodServer {
        self.messages.push(Envelope {
            from: from.map(str::to_owned),
            rcpts: rcpts.iter().map(|r| (*r).to_owned()).collect(),
        });
        self
    }

    /// Injects `fault` at `stage`.
    pub fn fault(mut self, stage: Stage, fault: Fault) -> GoodServer {
        self.faults.push((stage, fault));
        self
    }

    /// Sends `extra` right after the `220` to STARTTLS, in the same write.
    pub fn inject_after_starttls(mut self, extra: &[u8]) -> GoodServer {
        self.starttls_injection = Some(extra.to_vec());
        self
    }

    /// Serves one connection with this script.
    pub fn start(&self) -> Server {
        Server::one(self.script())
    }

    /// The script for one connection.
    pub fn script(&self) -> Script {
        let mut b = Builder {
            script: Script::new(),
            ended: false,
            server: self,
        };
        self.build(&mut b);
        b.script
    }

    fn build(&self, b: &mut Builder<'_>) {
        if let TlsMode::Implicit(config) = &self.tls {
            b.push(Step::StartTls(Arc::clone(config)));
        }
        let greeting = format!("220 {SERVER_HOST} ESMTP quizmail test server");
        b.exchange(None, Stage::Greeting, &greeting);
        let starttls = match &self.tls {
            TlsMode::StartTls(config) => Some(config),
            _ => None,
        };
        b.exchange(
            Some(Step::ExpectPrefix("EHLO ".to_owned())),
            Stage::Ehlo,
            &self.ehlo_reply(starttls.is_none()),
        );
        if let Some(config) = starttls {
            if !self.advertise_starttls {
                b.push(Step::Tail);
                b.ended = true;
            }
            let mut ready = b"220 2.0.0 Ready to start TLS\r\n".to_vec();
            if let Some(extra) = &self.starttls_injection {
                ready.extend_from_slice(extra);
            }
            b.exchange_bytes(
                Some(Step::Expect("STARTTLS".to_owned())),
                Stage::StartTls,
                ready,
            );
            b.push(Step::StartTls(Arc::clone(config)));
            b.exchange(
                Some(Step::ExpectPrefix("EHLO ".to_owned())),
                Stage::EhloAfterTls,
                &self.ehlo_reply(true),
            );
        }
        if let Some(spec) = &self.auth {
            if b.fault(Stage::Auth).is_some() {
                b.exchange(
                    Some(Step::ExpectPrefix("AUTH ".to_owned())),
                    Stage::Auth,
                    "",
                );
            } else {
                b.push(Step::Auth(spec.clone()));
            }
        }
        let any = [Envelope {
            from: None,
            rcpts: vec![String::new()],
        }];
        let messages = if self.messages.is_empty() {
            &any[..]
        } else {
            &self.messages[..]
        };
        for (n, envelope) in messages.iter().enumerate() {
            let mail = match &envelope.from {
                Some(from) => format!("MAIL FROM:<{from}>"),
                None => "MAIL FROM:".to_owned(),
            };
            b.exchange(
                Some(Step::ExpectPrefix(mail)),
                Stage::Mail(n),
                "250 2.1.0 Sender ok",
            );
            let mut accepted = 0;
            for (r, rcpt) in envelope.rcpts.iter().enumerate() {
                let expect = if rcpt.is_empty() {
                    "RCPT TO:".to_owned()
                } else {
                    format!("RCPT TO:<{rcpt}>")
                };
                if b.exchange(
                    Some(Step::ExpectPrefix(expect)),
                    Stage::Rcpt(n, r),
                    "250 2.1.5 Recipient ok",
                ) {
                    accepted += 1;
                }
            }
            if accepted == 0 {
                b.push(Step::Tail);
                b.ended = true;
            }
            let queued = format!("250 2.0.0 Ok: queued as {}", queue_id(n));
            if self.bdat {
                b.push(Step::Bdat);
            } else {
                b.exchange(
                    Some(Step::Expect("DATA".to_owned())),
                    Stage::Data(n),
                    "354 End data with <CR><LF>.<CR><LF>",
                );
                b.push(Step::ReceiveData);
            }
            b.exchange(None, Stage::DataEnd(n), &queued);
        }
        b.exchange(
            Some(Step::Expect("QUIT".to_owned())),
            Stage::Quit,
            "221 2.0.0 Bye",
        );
        b.push(Step::Close);
    }

    /// The EHLO reply; `final_ehlo` is the one the session keeps (after STARTTLS, or the only
    /// one when there is no STARTTLS): it lists AUTH and not STARTTLS.
    fn ehlo_reply(&self, final_ehlo: bool) -> String {
        let mut lines = vec![format!("{SERVER_HOST} greets you")];
        lines.extend(self.extensions.iter().cloned());
        if self.bdat {
            lines.push("CHUNKING".to_owned());
        }
        if !final_ehlo && self.advertise_starttls {
            lines.push("STARTTLS".to_owned());
        }
        if let Some(spec) = &self.auth {
            if final_ehlo || self.auth_before_tls {
                lines.push(format!("AUTH {}", spec.mechanisms.join(" ")));
            }
        }
        let last = lines.len() - 1;
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("250{}{line}", if i == last { ' ' } else { '-' }))
            .collect::<Vec<_>>()
            .join("\r\n")
    }
}

/// Accumulates steps; once a fault ends the dialogue, later steps are dropped.
struct Builder<'a> {
    script: Script,
    ended: bool,
    server: &'a GoodServer,
}

impl Builder<'_> {
    fn push(&mut self, step: Step) {
        if !self.ended {
            self.script = std::mem::take(&mut self.script).step(step);
        }
    }

    fn fault(&self, stage: Stage) -> Option<&Fault> {
        self.server
            .faults
            .iter()
            .find(|(at, _)| *at == stage)
            .map(|(_, fault)| fault)
    }

    /// Expects the command (if any), then replies with `success` or the fault; returns whether
    /// the reply was a success (2xx/3xx).
    fn exchange(&mut self, expect: Option<Step>, stage: Stage, success: &str) -> bool {
        self.exchange_bytes(expect, stage, format!("{success}\r\n").into_bytes())
    }

    fn exchange_bytes(&mut self, expect: Option<Step>, stage: Stage, success: Vec<u8>) -> bool {
        if let Some(step) = expect {
            self.push(step);
        }
        match self.fault(stage).cloned() {
            None => {
                self.push(Step::Send(success));
                true
            }
            Some(Fault::Disconnect) => {
                self.push(Step::Close);
                self.ended = true;
                false
            }
            Some(Fault::Reply(reply)) => {
                self.push(Step::Send(format!("{reply}\r\n").into_bytes()));
                let failed = reply.starts_with('4') || reply.starts_with('5');
                if reply.starts_with("421") {
                    self.push(Step::Close);
                    self.ended = true;
                } else if failed && !matches!(stage, Stage::Rcpt(..)) {
                    self.push(Step::Tail);
                    self.ended = true;
                }
                !failed
            }
        }
    }
}
