//! A scripted SMTP server in a thread on 127.0.0.1:0. Each accepted connection runs one
//! `Script`, a list of transcript items (`transcript.rs`: `S:`, `C:`, `* TLS`, `EOF`, ...),
//! built from text (`Script::parse`) or by builders (`GoodServer`, `Script::reply/expect`).
//! Every byte the client sends is recorded (decrypted once TLS is up). `Server::finish`
//! panics when the client left its script or sent more than it says, unless the test calls
//! `finish_expecting_mismatch`. Every wait is bounded: accept and reads by `Options`, waits
//! and trickles by their duration, and `finish` stops whatever is still waiting.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How often a blocked read or accept looks at the stop signal.
const POLL: Duration = Duration::from_millis(50);
/// A command line longer than this without a line feed is a client bug.
const MAX_LINE: usize = 1 << 20;
/// `EndlessLine` gives up after this much, so a client that never stops reading cannot hang it.
const ENDLESS_CAP: usize = 64 << 20;

use super::transcript;
pub use super::transcript::{Auth as AuthSpec, Expect, Item as Step, Pattern};

/// The items for one connection (the transcript language of `transcript.rs`), and the
/// certificate its `* TLS` items use.
#[derive(Clone, Default)]
pub struct Script {
    steps: Vec<Step>,
    tls: Option<Arc<ServerConfig>>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&transcript::render(&self.steps))
    }
}

impl Script {
    /// An empty script: the client must close without sending anything.
    pub fn new() -> Script {
        Script::default()
    }

    /// A script from transcript text; panics (naming the line) if it is not in the language.
    pub fn parse(text: &str) -> Script {
        Script::new().then(text)
    }

    /// Appends the items of transcript text.
    pub fn then(mut self, text: &str) -> Script {
        let items = transcript::parse(text).unwrap_or_else(|err| panic!("{err}"));
        self.steps.extend(items);
        self
    }

    /// The certificate for every `* TLS` of this script.
    pub fn tls(mut self, config: Arc<ServerConfig>) -> Script {
        self.tls = Some(config);
        self
    }

    /// Appends any item.
    pub fn step(mut self, step: Step) -> Script {
        self.steps.push(step);
        self
    }

    /// The items, for builders that compose scripts.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The script as transcript text.
    pub fn text(&self) -> String {
        transcript::render(&self.steps)
    }

    fn client(self, expect: Expect) -> Script {
        self.step(Step::Client(expect))
    }

    /// Sends bytes exactly as given (`R:`), in one write.
    pub fn send(self, bytes: impl AsRef<[u8]>) -> Script {
        self.step(Step::Server(bytes.as_ref().to_vec()))
    }

    /// Sends a reply line, adding CRLF (use `\r\n` inside for multi-line replies).
    pub fn reply(self, line: &str) -> Script {
        self.send(format!("{line}\r\n"))
    }

    /// Expects this exact command line.
    pub fn expect(self, line: &str) -> Script {
        self.client(Expect::Line(Pattern::Exact(line.to_owned())))
    }

    /// Expects a command line starting with this.
    pub fn expect_prefix(self, prefix: &str) -> Script {
        self.client(Expect::Line(Pattern::Prefix(prefix.to_owned())))
    }

    /// Reads any one line.
    pub fn any_line(self) -> Script {
        self.expect_prefix("")
    }

    /// Reads lines until one starts with this.
    pub fn read_until(self, prefix: &str) -> Script {
        self.step(Step::Until(Pattern::Prefix(prefix.to_owned())))
    }

    /// Starts TLS with this configuration (for implicit TLS, make it the first step).
    pub fn start_tls(mut self, config: Arc<ServerConfig>) -> Script {
        self.tls = Some(config);
        self.step(Step::Tls)
    }

    /// Receives a DATA body and its final `.` line.
    pub fn receive_data(self) -> Script {
        self.client(Expect::BodyDot).expect(".")
    }

    /// Receives exactly `n` raw bytes.
    pub fn receive_bytes(self, n: usize) -> Script {
        self.client(Expect::BodyRaw(Some(n as u64)))
    }

    /// Receives BDAT chunks until LAST; follow it with the reply to LAST.
    pub fn bdat(self) -> Script {
        self.client(Expect::Bdat)
    }

    /// Runs an AUTH exchange.
    pub fn auth(self, spec: AuthSpec) -> Script {
        self.step(Step::Auth(spec))
    }

    /// Closes the connection (`EOF`): the client must send nothing more.
    pub fn close(self) -> Script {
        self.step(Step::Eof)
    }

    /// Expects the client to close without sending anything more (`C: <eof>`).
    pub fn client_closes(self) -> Script {
        self.client(Expect::Eof)
    }

    /// Stays silent for `duration` (`* wait`).
    pub fn stall(self, duration: Duration) -> Script {
        self.step(Step::Wait(duration))
    }

    /// Sends every later write one byte every `interval` (`* trickle`).
    pub fn trickle(self, interval: Duration) -> Script {
        self.step(Step::Trickle(Some(interval)))
    }

    /// Sends a line that never ends.
    pub fn endless_line(self) -> Script {
        self.step(Step::Endless)
    }

    /// Answers STARTTLS with `220` and `extra` in the same write: the CVE-2011-0411 injection.
    pub fn inject_after_starttls(self, extra: &[u8]) -> Script {
        let mut bytes = b"220 2.0.0 Ready to start TLS\r\n".to_vec();
        bytes.extend_from_slice(extra);
        self.send(bytes)
    }

    /// Switches to the tolerant tail.
    pub fn tail(self) -> Script {
        self.step(Step::Tail)
    }
}

/// Bounds on the server's waits.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// How long to wait for each connection.
    pub accept_timeout: Duration,
    /// How long to wait for the client's next bytes (and for a write to drain).
    pub read_timeout: Duration,
    /// How long `finish` waits for the server thread.
    pub finish_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            accept_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(10),
            finish_timeout: Duration::from_secs(15),
        }
    }
}

/// What the server saw on one connection.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// Every byte the client sent, in order; after STARTTLS the decrypted bytes.
    pub received: Vec<u8>,
    /// Offset in `received` where TLS began, if it did.
    pub tls_started_at: Option<usize>,
    /// The SNI host name the client sent in its ClientHello (none for IP addresses).
    pub sni: Option<String>,
    /// Lines read where a command was expected (and lines left over after the script).
    pub commands: Vec<String>,
    /// Message bodies received by DATA or BDAT.
    pub messages: Vec<ReceivedMessage>,
    /// The AUTH exchange, if one ran.
    pub auth: Option<AuthRecord>,
    /// `C:`/`S:`/`*` lines, for debugging a failing test.
    pub log: Vec<String>,
    /// Why the script did not run to its end (mismatch, timeout, TLS failure, early close),
    /// or what the client sent after it.
    pub error: Option<String>,
    /// The script this connection ran, as transcript text.
    pub script: String,
}

/// One received message.
#[derive(Clone, Debug, Default)]
pub struct ReceivedMessage {
    /// The bytes as sent: dot-stuffed for DATA (without the final `.` line), raw for BDAT.
    pub wire: Vec<u8>,
    /// The message itself: DATA un-stuffed (RFC 5321 §4.5.2), BDAT chunks concatenated.
    pub content: Vec<u8>,
    /// Whether it came by BDAT.
    pub bdat: bool,
}

/// How AUTH went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRecord {
    /// The mechanism the client chose, upper case.
    pub mechanism: String,
    /// The user name it sent (empty if none).
    pub user: String,
    /// Whether the credentials were accepted.
    pub accepted: bool,
}

impl Connection {
    /// `received` as text (lossy), for `contains` assertions.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// Whether any command line begins with `verb` (case-insensitive), e.g. `"AUTH"`.
    pub fn has_command(&self, verb: &str) -> bool {
        self.commands.iter().any(|line| starts_with_ci(line, verb))
    }

    /// Panics with the log if the script did not run cleanly.
    pub fn assert_ok(&self) {
        if let Some(error) = &self.error {
            panic!("server script failed: {error}\n{}", self.log.join("\n"));
        }
    }
}

/// Everything the server recorded.
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    /// One entry per accepted connection, in order.
    pub connections: Vec<Connection>,
    /// False if the server thread had to be abandoned (it was still blocked at the bound).
    pub finished: bool,
}

impl Transcript {
    /// The single connection; panics unless exactly one was made.
    pub fn only(&self) -> &Connection {
        assert_eq!(
            self.connections.len(),
            1,
            "expected exactly one connection: {:#?}",
            self.connections
        );
        &self.connections[0]
    }

    /// Every recorded mismatch, with the connection's log, one block per connection.
    pub fn mismatches(&self) -> Vec<String> {
        self.connections
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.error.as_ref().map(|error| {
                    format!(
                        "connection {}: {error}\n--- script\n{}--- what happened\n{}",
                        i + 1,
                        c.script,
                        c.log.join("\n")
                    )
                })
            })
            .collect()
    }
}

/// A running scripted server.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Mutex<Vec<Connection>>>,
    stop: Option<Sender<()>>,
    done: Receiver<()>,
    options: Options,
}

impl Server {
    /// Serves one connection per script, in order, with default bounds.
    pub fn start(scripts: Vec<Script>) -> Server {
        Server::start_with(scripts, Options::default())
    }

    /// Serves one connection with `script`.
    pub fn one(script: Script) -> Server {
        Server::start(vec![script])
    }

    /// Serves one connection per script with these bounds.
    pub fn start_with(scripts: Vec<Script>, options: Options) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("listener address");
        let shared = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name(format!("smtp-script-{}", addr.port()))
            .spawn(move || {
                serve(listener, scripts, &thread_shared, &stop_rx, options);
                // The receiver is gone only if `finish` already gave up on us.
                let _ = done_tx.send(());
            })
            .expect("spawn server thread");
        Server {
            addr,
            shared,
            stop: Some(stop_tx),
            done: done_rx,
            options,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops waiting, and returns what was recorded; panics if the client did not follow a
    /// script (a mismatch, or more bytes than the script says). Call it after the client has
    /// closed its side.
    pub fn finish(self) -> Transcript {
        let transcript = self.finish_unchecked();
        let mismatches = transcript.mismatches();
        if !mismatches.is_empty() {
            panic!(
                "the client did not follow the server's script\n{}",
                mismatches.join("\n\n")
            );
        }
        transcript
    }

    /// For a test whose client is meant to leave the script: returns what was recorded and
    /// panics if every connection did follow its script after all.
    pub fn finish_expecting_mismatch(self) -> Transcript {
        let transcript = self.finish_unchecked();
        assert!(
            !transcript.mismatches().is_empty(),
            "expected the client to leave the script, but it followed it: {:#?}",
            transcript.connections
        );
        transcript
    }

    /// Stops waiting for further connections or bytes, joins the thread (bounded by
    /// `Options::finish_timeout`; past it the thread is left to end on its own timeouts) and
    /// returns what was recorded, mismatches and all.
    fn finish_unchecked(mut self) -> Transcript {
        drop(self.stop.take());
        let finished = self.done.recv_timeout(self.options.finish_timeout).is_ok();
        Transcript {
            connections: lock(&self.shared).clone(),
            finished,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Stops the thread if the test panicked before `finish`; it then ends within `POLL`.
        drop(self.stop.take());
    }
}

fn lock(shared: &Mutex<Vec<Connection>>) -> MutexGuard<'_, Vec<Connection>> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn stopped(stop: &Receiver<()>) -> bool {
    matches!(stop.try_recv(), Err(TryRecvError::Disconnected) | Ok(()))
}

fn serve(
    listener: TcpListener,
    scripts: Vec<Script>,
    shared: &Arc<Mutex<Vec<Connection>>>,
    stop: &Receiver<()>,
    options: Options,
) {
    for script in scripts {
        let Some(tcp) = accept(&listener, stop, options.accept_timeout) else {
            return;
        };
        if tcp.set_write_timeout(Some(options.read_timeout)).is_err() {
            return;
        }
        let index = {
            let mut connections = lock(shared);
            connections.push(Connection {
                script: script.text(),
                ..Connection::default()
            });
            connections.len() - 1
        };
        let mut session = Session {
            io: Io::Plain(tcp),
            buf: Vec::new(),
            shared: Arc::clone(shared),
            index,
            stop,
            options,
            tls: script.tls,
            trickle: None,
            last_bdat: None,
            client_gone: false,
        };
        session.run(script.steps);
    }
}

/// Waits for one connection, looking at the stop signal every `POLL`.
fn accept(listener: &TcpListener, stop: &Receiver<()>, timeout: Duration) -> Option<TcpStream> {
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((tcp, _)) => {
                tcp.set_nonblocking(false).ok()?;
                tcp.set_nodelay(true).ok()?;
                return Some(tcp);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return None;
                }
                match stop.recv_timeout(POLL) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return None,
                }
            }
            Err(_) => return None,
        }
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
    Gone,
}

impl Io {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Io::Plain(tcp) => Some(tcp),
            Io::Tls(tls) => Some(&tls.sock),
            Io::Gone => None,
        }
    }
}

/// How a step leaves the script.
enum Flow {
    Continue,
    Tail,
    /// The step ends the connection's script (`* endless`, `C: <anything>`).
    Done,
}

type StepResult = Result<Flow, String>;

/// Why a read returned without data.
enum NoData {
    Eof,
    Timeout,
    Stopped,
    Failed(String),
}

struct Session<'a> {
    io: Io,
    buf: Vec<u8>,
    shared: Arc<Mutex<Vec<Connection>>>,
    index: usize,
    stop: &'a Receiver<()>,
    options: Options,
    /// The certificate for `* TLS`.
    tls: Option<Arc<ServerConfig>>,
    /// `* trickle`: the pause after each byte written.
    trickle: Option<Duration>,
    /// The size the last `BDAT n` announced, for `<body raw *>`.
    last_bdat: Option<u64>,
    /// The client closed its side (or `finish` stopped us).
    client_gone: bool,
}

impl Session<'_> {
    fn record<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        f(&mut lock(&self.shared)[self.index])
    }

    fn log(&self, line: String) {
        self.record(|c| c.log.push(line));
    }

    fn run(&mut self, steps: Vec<Step>) {
        let count = steps.len();
        for (number, step) in steps.into_iter().enumerate() {
            let label = format!("step {}/{count} `{}`", number + 1, describe(&step));
            match self.step(step) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Tail) => {
                    if let Err(error) = self.tail() {
                        self.fail(format!("{label}, tail: {error}"));
                    }
                    return self.close();
                }
                Ok(Flow::Done) => return self.close(),
                Err(error) => {
                    self.fail(format!("{label}: {error}"));
                    return self.close();
                }
            }
        }
        // The end of the script is `C: <eof>`, except that a client still connected when the
        // bound runs out is not blamed (a hand-driven test may hold its stream).
        if let Err(error) = self.client_closes(false) {
            self.fail(format!("after the end of the script: {error}"));
        }
        self.close();
    }

    fn fail(&self, error: String) {
        self.log(format!("! {error}"));
        self.record(|c| {
            if c.error.is_none() {
                c.error = Some(error);
            }
        });
    }

    fn close(&mut self) {
        if let Some(tcp) = self.io.tcp() {
            // The peer may already be gone; nothing to report then.
            let _ = tcp.shutdown(Shutdown::Both);
        }
        self.io = Io::Gone;
    }

    fn step(&mut self, step: Step) -> StepResult {
        match step {
            Step::Server(bytes) => self.send(&bytes),
            Step::Client(Expect::Line(Pattern::Exact(dot))) if dot == "." => {
                // The end of DATA is not a command: log it, keep it out of `commands`.
                let line = self.line()?;
                self.log(format!("C: {}", String::from_utf8_lossy(&line)));
                if line == b"." {
                    Ok(Flow::Continue)
                } else {
                    Err(format!("expected \".\", client sent {line:?}"))
                }
            }
            Step::Client(Expect::Line(want)) => {
                let line = self.command()?;
                if want.matches(&line) {
                    Ok(Flow::Continue)
                } else {
                    Err(format!("expected {}, client sent {line:?}", quoted(&want)))
                }
            }
            Step::Client(Expect::BodyDot) => self.receive_data(),
            Step::Client(Expect::BodyRaw(n)) => {
                let Some(n) = n.or(self.last_bdat) else {
                    return Err("<body raw *> without a BDAT command before it".to_owned());
                };
                let n = usize::try_from(n).map_err(|_| format!("BDAT {n} is too big"))?;
                let wire = self.read_exact(n)?;
                self.log(format!("C: <{n} raw bytes>"));
                self.record(|c| {
                    c.messages.push(ReceivedMessage {
                        content: wire.clone(),
                        wire,
                        bdat: true,
                    })
                });
                Ok(Flow::Continue)
            }
            Step::Client(Expect::Bdat) => self.bdat(),
            Step::Client(Expect::Eof) => self.client_closes(true).map(|()| Flow::Continue),
            Step::Client(Expect::Anything) => {
                self.anything();
                Ok(Flow::Done)
            }
            Step::Until(want) => loop {
                if want.matches(&self.command()?) {
                    return Ok(Flow::Continue);
                }
            },
            Step::Tls => match self.tls.clone() {
                Some(config) => self.start_tls(config),
                None => Err("`* TLS` in a script without a certificate".to_owned()),
            },
            Step::Auth(spec) => self.auth(&spec),
            Step::Eof => {
                self.log("* server closes".to_owned());
                if let Some(tcp) = self.io.tcp() {
                    // Only our side: what the client still sends is recorded, and checked.
                    let _ = tcp.shutdown(Shutdown::Write);
                }
                Ok(Flow::Continue)
            }
            Step::Wait(duration) => self.stall(duration),
            Step::Trickle(interval) => {
                self.trickle = interval;
                Ok(Flow::Continue)
            }
            Step::Endless => self.endless_line(),
            Step::Tail => Ok(Flow::Tail),
        }
    }

    fn send(&mut self, bytes: &[u8]) -> StepResult {
        for line in String::from_utf8_lossy(bytes).split_inclusive('\n') {
            self.log(format!("S: {}", line.trim_end()));
        }
        let Some(interval) = self.trickle else {
            return self
                .write(bytes)
                .map(|()| Flow::Continue)
                .map_err(|err| format!("write failed: {err}"));
        };
        for (sent, byte) in bytes.iter().enumerate() {
            if self.client_gone || self.write(std::slice::from_ref(byte)).is_err() {
                self.log(format!(
                    "* the client went away after {sent} of {} trickled bytes",
                    bytes.len()
                ));
                self.client_gone = true;
                break;
            }
            let deadline = Instant::now() + interval;
            loop {
                match self.fill(deadline) {
                    Ok(_) => {}
                    Err(NoData::Timeout) => break,
                    Err(_) => {
                        self.client_gone = true;
                        break;
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(tcp) => tcp.write_all(bytes).and_then(|()| tcp.flush()),
            Io::Tls(tls) => tls.write_all(bytes).and_then(|()| tls.flush()),
            Io::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn reply(&mut self, line: &str) -> Result<(), String> {
        self.send(format!("{line}\r\n").as_bytes()).map(|_| ())
    }

    /// Waits for the client to close its side; anything it sends first is a mismatch. With
    /// `strict`, so is a client still connected when the read bound runs out.
    fn client_closes(&mut self, strict: bool) -> Result<(), String> {
        let deadline = Instant::now() + self.options.read_timeout;
        loop {
            if !self.buf.is_empty() {
                // Let the rest of that flight arrive, so the error shows all of it.
                let _ = self.fill(Instant::now() + POLL);
                let rest = std::mem::take(&mut self.buf);
                for line in String::from_utf8_lossy(&rest).lines() {
                    self.log(format!("C: {line} (not in the script)"));
                    self.record(|c| c.commands.push(line.to_owned()));
                }
                return Err(format!(
                    "the client sent {:?} where the script expects it to close",
                    String::from_utf8_lossy(&rest)
                ));
            }
            match self.fill(deadline) {
                Ok(_) => {}
                Err(NoData::Eof) | Err(NoData::Stopped) => return Ok(()),
                Err(NoData::Timeout) if !strict => return Ok(()),
                Err(NoData::Timeout) => {
                    return Err("timed out waiting for the client to close".to_owned())
                }
                Err(NoData::Failed(err)) => return Err(format!("read failed: {err}")),
            }
        }
    }

    /// `C: <anything>`: records what comes until the client closes or the bound runs out.
    fn anything(&mut self) {
        let deadline = Instant::now() + self.options.read_timeout;
        while self.fill(deadline).is_ok() {}
        let rest = std::mem::take(&mut self.buf);
        self.log(format!("C: <{} bytes, anything>", rest.len()));
        if rest.is_ascii() {
            for line in String::from_utf8_lossy(&rest).lines() {
                self.record(|c| c.commands.push(line.to_owned()));
            }
        }
    }

    /// Reads more bytes into `buf` (recording them), waiting until `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<usize, NoData> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(NoData::Timeout);
            }
            let wait = left.min(POLL);
            let read = match &mut self.io {
                Io::Plain(tcp) => tcp
                    .set_read_timeout(Some(wait))
                    .and_then(|()| tcp.read(&mut chunk)),
                Io::Tls(tls) => tls
                    .sock
                    .set_read_timeout(Some(wait))
                    .and_then(|()| tls.read(&mut chunk)),
                Io::Gone => return Err(NoData::Eof),
            };
            match read {
                Ok(0) => {
                    self.client_gone = true;
                    return Err(NoData::Eof);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.record(|c| c.received.extend_from_slice(&chunk[..n]));
                    return Ok(n);
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if stopped(self.stop) {
                        return Err(NoData::Stopped);
                    }
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::UnexpectedEof
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Err(NoData::Eof)
                }
                Err(err) => return Err(NoData::Failed(err.to_string())),
            }
        }
    }

    fn fill_or_fail(&mut self, waiting_for: &str) -> Result<(), String> {
        let deadline = Instant::now() + self.options.read_timeout;
        self.fill(deadline).map(|_| ()).map_err(|why| match why {
            NoData::Eof => {
                format!("client closed the connection while the server waited for {waiting_for}")
            }
            NoData::Timeout => format!("timed out waiting for {waiting_for}"),
            NoData::Stopped => format!("stopped by finish() while waiting for {waiting_for}"),
            NoData::Failed(err) => format!("read failed while waiting for {waiting_for}: {err}"),
        })
    }

    /// One line with its line end removed. A bare LF ends the line too, but is reported, since
    /// RFC 5321 §2.3.8 requires CRLF from the client.
    fn line(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(lf) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=lf).collect();
                line.pop();
                if line.last() != Some(&b'\r') {
                    return Err(format!(
                        "bare LF after {:?}",
                        String::from_utf8_lossy(&line)
                    ));
                }
                line.pop();
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(format!("line longer than {MAX_LINE} bytes"));
            }
            self.fill_or_fail("a line")?;
        }
    }

    /// A command line, recorded in `commands` and the log.
    fn command(&mut self) -> Result<String, String> {
        let line = String::from_utf8_lossy(&self.line()?).into_owned();
        self.log(format!("C: {line}"));
        if let Some(size) = line
            .strip_prefix("BDAT ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
        {
            self.last_bdat = Some(size);
        }
        self.record(|c| c.commands.push(line.clone()));
        Ok(line)
    }

    fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            self.fill_or_fail(&format!("{n} bytes of BDAT data"))?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn start_tls(&mut self, config: Arc<ServerConfig>) -> StepResult {
        let Io::Plain(mut tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err("StartTls on a connection that is not plain TCP".to_owned());
        };
        let mut conn = ServerConnection::new(config).map_err(|err| err.to_string())?;
        // Bytes the client sent before we got here belong to the handshake.
        let early = std::mem::take(&mut self.buf);
        let mut slice = early.as_slice();
        while !slice.is_empty() {
            conn.read_tls(&mut slice)
                .map_err(|err| format!("early TLS bytes: {err}"))?;
        }
        tcp.set_read_timeout(Some(self.options.read_timeout))
            .and_then(|()| tcp.set_write_timeout(Some(self.options.read_timeout)))
            .map_err(|err| err.to_string())?;
        let handshake = if early.is_empty() {
            Ok(())
        } else {
            conn.process_new_packets()
                .map(|_| ())
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
        };
        let handshake = handshake.and_then(|()| {
            while conn.is_handshaking() {
                conn.complete_io(&mut tcp)?;
            }
            Ok(())
        });
        if let Err(err) = handshake {
            // Let the client see our alert, then give up on the connection.
            let _ = conn.write_tls(&mut tcp);
            return Err(format!("TLS handshake failed: {err}"));
        }
        let version = conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        self.log(format!("* TLS started ({version})"));
        let sni = conn.server_name().map(str::to_owned);
        self.record(|c| {
            c.tls_started_at = Some(c.received.len());
            c.sni = sni;
        });
        self.io = Io::Tls(Box::new(StreamOwned::new(conn, tcp)));
        Ok(Flow::Continue)
    }

    fn receive_data(&mut self) -> StepResult {
        let mut wire = Vec::new();
        let mut content = Vec::new();
        loop {
            let mut line = self.line()?;
            if line == b"." {
                // The end-of-data line is the script's next item, `C: .`.
                self.buf.splice(0..0, b".\r\n".iter().copied());
                break;
            }
            wire.extend_from_slice(&line);
            wire.extend_from_slice(b"\r\n");
            if line.first() == Some(&b'.') {
                line.remove(0);
            }
            content.extend_from_slice(&line);
            content.extend_from_slice(b"\r\n");
        }
        self.log(format!("C: <{} bytes of DATA>", wire.len()));
        self.record(|c| {
            c.messages.push(ReceivedMessage {
                wire,
                content,
                bdat: false,
            })
        });
        Ok(Flow::Continue)
    }

    fn bdat(&mut self) -> StepResult {
        let mut content = Vec::new();
        loop {
            let command = self.command()?;
            let mut words = command.split_ascii_whitespace();
            let verb = words.next().unwrap_or_default();
            let size = words.next().and_then(|n| n.parse::<usize>().ok());
            let last = words.next();
            let (true, Some(size)) = (verb.eq_ignore_ascii_case("BDAT"), size) else {
                return Err(format!(
                    "expected BDAT <size> [LAST], client sent {command:?}"
                ));
            };
            content.extend(self.read_exact(size)?);
            match last {
                Some(word) if word.eq_ignore_ascii_case("LAST") => break,
                Some(word) => return Err(format!("unexpected BDAT argument {word:?}")),
                None => self.reply(&format!("250 2.0.0 {size} octets received"))?,
            }
        }
        self.record(|c| {
            c.messages.push(ReceivedMessage {
                wire: content.clone(),
                content,
                bdat: true,
            })
        });
        Ok(Flow::Continue)
    }

    fn auth(&mut self, spec: &AuthSpec) -> StepResult {
        let command = self.command()?;
        let mut words = command.split_ascii_whitespace();
        let verb = words.next().unwrap_or_default();
        if !verb.eq_ignore_ascii_case("AUTH") {
            return Err(format!("expected AUTH, client sent {command:?}"));
        }
        let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
        let initial = words.next().map(str::to_owned);
        if !spec.mechanisms.contains(&mechanism) {
            self.reply("504 5.5.4 Unrecognized authentication type")?;
            return Err(format!("client chose unoffered mechanism {mechanism:?}"));
        }
        let outcome = match mechanism.as_str() {
            "PLAIN" => self.auth_plain(initial)?,
            "LOGIN" => self.auth_login(initial)?,
            "CRAM-MD5" => self.auth_cram_md5(&spec.password)?,
            other => return Err(format!("the test server cannot run {other}")),
        };
        let Some(outcome) = outcome else {
            self.reply("501 5.7.0 Authentication cancelled")?;
            self.record_auth(&mechanism, "", false);
            return Ok(Flow::Tail);
        };
        let password_ok = match &outcome.password {
            Secret::Sent(password) => *password == spec.password,
            Secret::Proven(ok) => *ok,
        };
        let accepted = outcome.user == spec.user && password_ok;
        self.record_auth(&mechanism, &outcome.user, accepted);
        if accepted {
            self.reply("235 2.7.0 Authentication successful")?;
            Ok(Flow::Continue)
        } else {
            self.reply("535 5.7.8 Authentication credentials invalid")?;
            Ok(Flow::Tail)
        }
    }

    fn record_auth(&self, mechanism: &str, user: &str, accepted: bool) {
        let record = AuthRecord {
            mechanism: mechanism.to_owned(),
            user: user.to_owned(),
            accepted,
        };
        self.record(|c| c.auth = Some(record));
    }

    /// A client response line, base64-decoded; `None` when the client cancels with `*`
    /// (RFC 4954 §4).
    fn response(&mut self, challenge: &str) -> Result<Option<Vec<u8>>, String> {
        self.reply(&format!("334 {challenge}"))?;
        let line = self.command()?;
        decode_response(&line)
    }

    /// RFC 4616: `authzid NUL authcid NUL passwd`; `=` is an empty initial response.
    fn auth_plain(&mut self, initial: Option<String>) -> Result<Option<Credentials>, String> {
        let decoded = match initial {
            Some(text) => decode_response(&text)?,
            None => self.response("")?,
        };
        let Some(decoded) = decoded else {
            return Ok(None);
        };
        let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        let [_authzid, user, password] = parts.as_slice() else {
            return Err(format!("malformed PLAIN response {decoded:?}"));
        };
        Ok(Some(Credentials {
            user: String::from_utf8_lossy(user).into_owned(),
            password: Secret::Sent(String::from_utf8_lossy(password).into_owned()),
        }))
    }

    /// draft-murchison-sasl-login: `Username:` then `Password:` challenges.
    fn auth_login(&mut self, initial: Option<String>) -> Result<Option<Credentials>, String> {
        let user = match initial {
            Some(text) => decode_response(&text)?,
            None => self.response("VXNlcm5hbWU6")?,
        };
        let Some(user) = user else { return Ok(None) };
        let Some(password) = self.response("UGFzc3dvcmQ6")? else {
            return Ok(None);
        };
        Ok(Some(Credentials {
            user: String::from_utf8_lossy(&user).into_owned(),
            password: Secret::Sent(String::from_utf8_lossy(&password).into_owned()),
        }))
    }

    /// RFC 2195: the client answers `user HEX(HMAC-MD5(password, challenge))`.
    fn auth_cram_md5(&mut self, password: &str) -> Result<Option<Credentials>, String> {
        let challenge = format!("<{}.{}@quizmail.test>", std::process::id(), self.index);
        let Some(answer) = self.response(&BASE64.encode(&challenge))? else {
            return Ok(None);
        };
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let Some((user, digest)) = answer.rsplit_once(' ') else {
            return Err(format!("malformed CRAM-MD5 response {answer:?}"));
        };
        let mut mac =
            Hmac::<md5::Md5>::new_from_slice(password.as_bytes()).map_err(|err| err.to_string())?;
        mac.update(challenge.as_bytes());
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Some(Credentials {
            user: user.to_owned(),
            password: Secret::Proven(digest == expected),
        }))
    }

    /// `* wait`: silent for `duration`, keeping what the client sends for the next items.
    fn stall(&mut self, duration: Duration) -> StepResult {
        self.log(format!("* waiting {duration:?}"));
        let deadline = Instant::now() + duration;
        loop {
            match self.fill(deadline) {
                Ok(_) => {}
                Err(NoData::Timeout) | Err(NoData::Eof) | Err(NoData::Stopped) => {
                    return Ok(Flow::Continue)
                }
                Err(NoData::Failed(err)) => return Err(err),
            }
        }
    }

    fn endless_line(&mut self) -> StepResult {
        self.log("S: 220 xxxx... (never ends)".to_owned());
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        let mut first = b"220 ".to_vec();
        first.extend_from_slice(&chunk);
        let mut next: &[u8] = &first;
        while sent < ENDLESS_CAP && !stopped(self.stop) {
            let written = match &mut self.io {
                Io::Plain(tcp) => tcp.write_all(next),
                Io::Tls(tls) => tls.write_all(next).and_then(|()| tls.flush()),
                Io::Gone => break,
            };
            if written.is_err() {
                // The client gave up and closed: the point of the step.
                break;
            }
            sent += next.len();
            next = &chunk;
        }
        Ok(Flow::Done)
    }

    fn tail(&mut self) -> Result<(), String> {
        loop {
            let line = match self.line() {
                Ok(line) => String::from_utf8_lossy(&line).into_owned(),
                // The client leaving is the normal end of a tail.
                Err(_) => return Ok(()),
            };
            self.log(format!("C: {line}"));
            self.record(|c| c.commands.push(line.clone()));
            if starts_with_ci(&line, "QUIT") {
                self.reply("221 2.0.0 Bye")?;
                return Ok(());
            } else if starts_with_ci(&line, "RSET") || starts_with_ci(&line, "NOOP") {
                self.reply("250 2.0.0 Ok")?;
            } else {
                self.reply("503 5.5.1 Test script ended: only RSET, NOOP and QUIT")?;
            }
        }
    }
}

/// What a mechanism learnt from the client.
struct Credentials {
    user: String,
    password: Secret,
}

/// PLAIN and LOGIN send the password; CRAM-MD5 only proves it.
enum Secret {
    Sent(String),
    Proven(bool),
}

fn decode_response(text: &str) -> Result<Option<Vec<u8>>, String> {
    match text.trim() {
        "*" => Ok(None),
        "=" => Ok(Some(Vec::new())),
        encoded => BASE64
            .decode(encoded)
            .map(Some)
            .map_err(|err| format!("bad base64 {encoded:?}: {err}")),
    }
}

fn starts_with_ci(line: &str, prefix: &str) -> bool {
    line.len() >= prefix.len()
        && line.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn describe(step: &Step) -> String {
    let text = step.to_string();
    let first = text.lines().next().unwrap_or_default();
    match first.char_indices().nth(60) {
        Some((at, _)) => format!("{}...", &first[..at]),
        None if text.lines().count() > 1 => format!("{first} ..."),
        None => first.to_owned(),
    }
}

/// A pattern as the error shows it: `"EHLO a"` or `"MAIL FROM:"...`.
fn quoted(pattern: &Pattern) -> String {
    match pattern {
        Pattern::Exact(line) => format!("{line:?}"),
        Pattern::Prefix(prefix) => format!("{prefix:?}..."),
    }
}
