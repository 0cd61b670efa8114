//! `GoodServer`: builds the script of a well-behaved submission server (RFC 6409) — greeting,
//! EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA or BDAT, QUIT — with knobs to inject a reply or a
//! disconnect at any stage, or to leave STARTTLS out of EHLO.

use std::sync::Arc;

use rustls::ServerConfig;

use super::server::{AuthSpec, Expect, Pattern, Script, Server, Step};

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
    /// Send this reply line instead. After a `4xx`/`5xx` (except for one recipient of
    /// several) the client must send QUIT and nothing else; after a `421` the server closes
    /// (RFC 5321 §3.8) and the client must send nothing more. A 2xx/3xx carries on.
    Reply(String),
    /// Close the connection instead of replying; the client must send nothing more.
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
            b.script = std::mem::take(&mut b.script).tls(Arc::clone(config));
            b.push(Step::Tls);
        }
        let greeting = format!("220 {SERVER_HOST} ESMTP quizmail test server");
        b.exchange(None, Stage::Greeting, &greeting);
        let starttls = match &self.tls {
            TlsMode::StartTls(config) => Some(config),
            _ => None,
        };
        b.exchange(
            Some(line("EHLO *")),
            Stage::Ehlo,
            &self.ehlo_reply(starttls.is_none()),
        );
        if let Some(config) = starttls {
            b.script = std::mem::take(&mut b.script).tls(Arc::clone(config));
            if !self.advertise_starttls {
                // The client must give up politely (cli.md: STARTTLS is required).
                b.quit();
            }
            let mut ready = b"220 2.0.0 Ready to start TLS\r\n".to_vec();
            if let Some(extra) = &self.starttls_injection {
                ready.extend_from_slice(extra);
            }
            b.exchange_bytes(Some(line("STARTTLS")), Stage::StartTls, ready);
            b.push(Step::Tls);
            b.exchange(
                Some(line("EHLO *")),
                Stage::EhloAfterTls,
                &self.ehlo_reply(true),
            );
        }
        if let Some(spec) = &self.auth {
            if b.fault(Stage::Auth).is_some() {
                b.exchange(Some(line("AUTH *")), Stage::Auth, "");
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
            if n > 0 {
                b.push(line("RSET"));
                b.push(reply("250 2.0.0 Ok"));
            }
            self.transaction(b, n, envelope, n + 1 == messages.len());
        }
        // (With PIPELINING and CHUNKING, QUIT may already be waiting: read in order all the same.)
        b.push(line("QUIT"));
        match b.fault(Stage::Quit).cloned() {
            None => b.push(reply("221 2.0.0 Bye")),
            Some(Fault::Reply(text)) => b.push(reply(&text)),
            Some(Fault::Disconnect) => {}
        }
        b.push(Step::Eof);
    }

    fn pipelining(&self) -> bool {
        self.extensions
            .iter()
            .any(|e| e.eq_ignore_ascii_case("PIPELINING"))
    }

    /// MAIL, RCPT..., DATA or BDAT of message `n`. With PIPELINING the client sends MAIL
    /// through DATA (or through BDAT and its chunk, and QUIT after the last message) in one
    /// flight: after a fault, what it had already sent is read, and answered while the
    /// dialogue is still in step.
    fn transaction(&self, b: &mut Builder<'_>, n: usize, envelope: &Envelope, last: bool) {
        let pipelining = self.pipelining();
        let mail = match &envelope.from {
            Some(from) => format!("MAIL FROM:<{from}>*"),
            None => "MAIL FROM:*".to_owned(),
        };
        let mut commands = vec![(line(&mail), Stage::Mail(n), "250 2.1.0 Sender ok")];
        for (r, rcpt) in envelope.rcpts.iter().enumerate() {
            let expect = if rcpt.is_empty() {
                line("RCPT TO:*")
            } else {
                line(&format!("RCPT TO:<{rcpt}>"))
            };
            commands.push((expect, Stage::Rcpt(n, r), "250 2.1.5 Recipient ok"));
        }
        // What the client pipelined after the RCPTs.
        let mut flight_end: Vec<Step> = Vec::new();
        if pipelining {
            if self.bdat {
                flight_end.push(Step::Client(Expect::Bdat));
                if last {
                    flight_end.push(line("QUIT"));
                }
            } else {
                flight_end.push(line("DATA"));
            }
        }
        let mut accepted = 0;
        for (i, (expect, stage, ok)) in commands.iter().enumerate() {
            b.push(expect.clone());
            let fault = b.fault(*stage).cloned();
            let text = match &fault {
                None => (*ok).to_owned(),
                Some(Fault::Reply(text)) => text.clone(),
                Some(Fault::Disconnect) => String::new(),
            };
            let dropped = fault == Some(Fault::Disconnect);
            if !dropped && succeeds(&text) {
                b.push(reply(&text));
                accepted += usize::from(matches!(stage, Stage::Rcpt(..)));
                continue;
            }
            let closing = dropped || text.starts_with("421");
            if matches!(stage, Stage::Rcpt(..)) && !closing {
                // One recipient refused; the others may still be accepted.
                b.push(reply(&text));
                continue;
            }
            if !dropped {
                b.push(reply(&text));
            }
            // A refused MAIL, or a closing reply: read what was pipelined after it.
            if pipelining {
                let rest: Vec<Step> = commands[i + 1..]
                    .iter()
                    .map(|(e, _, _)| e.clone())
                    .chain(flight_end.iter().cloned())
                    .collect();
                if b.refuse_rest(rest, closing) {
                    return;
                }
            }
            b.end(closing);
            return;
        }
        if accepted == 0 {
            // Every recipient refused: the pipelined DATA (or BDAT) is refused too.
            if !b.refuse_rest(flight_end, false) {
                b.quit();
            }
            return;
        }
        let queued = format!("250 2.0.0 Ok: queued as {}", queue_id(n));
        if self.bdat {
            b.push(Step::Client(Expect::Bdat));
        } else {
            b.exchange(
                Some(line("DATA")),
                Stage::Data(n),
                "354 End data with <CR><LF>.<CR><LF>",
            );
            b.push(Step::Client(Expect::BodyDot));
            b.push(line("."));
        }
        if pipelining && last {
            // QUIT rode with the end of the data (RFC 2920 §3.1): after a fault it was already
            // on its way, and there is nothing more.
            if let Some(fault) = b.fault(Stage::DataEnd(n)).cloned() {
                if let Fault::Reply(text) = fault {
                    b.push(reply(&text));
                }
                b.push(line("QUIT"));
                if b.fault(Stage::DataEnd(n)) != Some(&Fault::Disconnect) {
                    b.push(reply("221 2.0.0 Bye"));
                }
                b.push(Step::Eof);
                b.ended = true;
                return;
            }
        }
        b.exchange(None, Stage::DataEnd(n), &queued);
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

/// A `C:` line item: `text` with a final `*` is a prefix.
fn line(text: &str) -> Step {
    Step::Client(Expect::Line(Pattern::parse(text)))
}

/// An `S:` item: one reply (CRLF added; `\r\n` inside for more lines).
fn reply(text: &str) -> Step {
    Step::Server(format!("{text}\r\n").into_bytes())
}

/// A 2xx or 3xx reply.
fn succeeds(text: &str) -> bool {
    text.starts_with('2') || text.starts_with('3')
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

    /// The dialogue is over, still in step: the client says QUIT and nothing else.
    fn quit(&mut self) {
        self.push(line("QUIT"));
        self.push(reply("221 2.0.0 Bye"));
        self.push(Step::Eof);
        self.ended = true;
    }

    /// Ends after a failure: politely (`quit`) or, after a 421 or a drop, with the server
    /// gone and the client saying nothing more.
    fn end(&mut self, closing: bool) {
        if closing {
            self.push(Step::Eof);
            self.ended = true;
        } else {
            self.quit();
        }
    }

    /// Reads commands the client pipelined before it saw a failure; in step (`!closing`)
    /// answers each as a real server would (RCPT without MAIL: 503; DATA or BDAT without a
    /// recipient: 554). Returns whether a pipelined QUIT among them ended the dialogue.
    fn refuse_rest(&mut self, rest: Vec<Step>, closing: bool) -> bool {
        for step in rest {
            if step == line("QUIT") {
                self.push(step);
                if !closing {
                    self.push(reply("221 2.0.0 Bye"));
                }
                self.push(Step::Eof);
                self.ended = true;
                return true;
            }
            let answer = match &step {
                Step::Client(Expect::Line(p)) if p.to_string().starts_with("RCPT") => {
                    "503 5.5.1 Error: need MAIL command"
                }
                _ => "554 5.5.1 Error: no valid recipients",
            };
            self.push(step);
            if !closing {
                self.push(reply(answer));
            }
        }
        false
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
                self.push(Step::Server(success));
                true
            }
            Some(Fault::Disconnect) => {
                self.push(Step::Eof);
                self.ended = true;
                false
            }
            Some(Fault::Reply(text)) => {
                self.push(reply(&text));
                if succeeds(&text) {
                    return true;
                }
                self.end(text.starts_with("421"));
                false
            }
        }
    }
}
