//! The connection the SMTP driver reads and writes: plain TCP, or rustls over TCP after implicit
//! TLS (RFC 8314 §3.3) or STARTTLS (RFC 3207 §4), with `--timeout` on every socket operation.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::{TlsInfo, TransportError};

const HANDSHAKE: &str = "TLS handshake";

/// A plain or TLS connection. Every `read` and `write` is bounded by the timeout; map their
/// errors with [`TransportError::from_io`] (a timeout is `Timeout`, never `Closed`). Over TLS,
/// `write` may leave bytes in rustls's buffer: call `flush` before waiting for a reply.
#[derive(Debug)]
pub struct Stream {
    inner: Inner,
    timeout: Duration,
}

#[derive(Debug)]
enum Inner {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// A cleartext connection (`--tls none`, or before STARTTLS).
    pub fn plain(tcp: TcpStream, timeout: Duration) -> Result<Self, TransportError> {
        set_timeouts(&tcp, timeout)?;
        Ok(Self {
            inner: Inner::Plain(tcp),
            timeout,
        })
    }

    /// TLS from the first byte (RFC 8314 §3.3, port 465). The handshake completes here, within
    /// `timeout` in total, so a rejected certificate is reported as such at this step.
    pub fn implicit_tls(
        tcp: TcpStream,
        server_name: ServerName<'static>,
        config: Arc<ClientConfig>,
        timeout: Duration,
    ) -> Result<Self, TransportError> {
        handshake(tcp, server_name, config, timeout)
    }

    /// Upgrades after the server's `220` to STARTTLS (RFC 3207 §4). The plain stream is consumed,
    /// so nothing read in cleartext can be used afterwards.
    ///
    /// The caller must first check that its own reply buffer is empty; this checks the socket:
    /// a byte already waiting there is `InjectedData` (RFC 3207 §6 / CVE-2011-0411, "data sent
    /// after 220 to STARTTLS"). Bytes that arrive after this check cannot be told apart from
    /// the TLS handshake; they reach rustls as records and fail the handshake as a TLS error,
    /// so they are never taken as SMTP replies either way.
    pub fn starttls(
        self,
        server_name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> Result<Self, TransportError> {
        let tcp = match self.inner {
            Inner::Plain(tcp) => tcp,
            Inner::Tls(_) => return Err(TransportError::AlreadyTls),
        };
        ensure_nothing_waiting(&tcp)?;
        handshake(tcp, server_name, config, self.timeout)
    }

    /// Whether the connection runs TLS (the AUTH `auto` rule of cli.md depends on it).
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// Version, cipher and certificate chain; `None` on a plain connection.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        match &self.inner {
            Inner::Plain(_) => None,
            Inner::Tls(tls) => Some(TlsInfo::from_connection(&tls.conn)),
        }
    }

    /// The timeout applied to every read and write.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The server's address, for the report and `-v`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// Our address, for the default EHLO address literal (`[127.0.0.1]`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().local_addr()
    }

    /// Ends the connection: over TLS sends close_notify first (RFC 8446 §6.1) so the server
    /// sees a clean end rather than a truncation. A server that already closed (after `221`)
    /// is the normal end, not an error.
    pub fn close(self) -> Result<(), TransportError> {
        const CLOSING: &str = "closing the connection";
        let already_closed = |err: &TransportError| matches!(err, TransportError::Closed { .. });
        let tcp = match self.inner {
            Inner::Plain(tcp) => tcp,
            Inner::Tls(mut tls) => {
                tls.conn.send_close_notify();
                while tls.conn.wants_write() {
                    match tls.conn.write_tls(&mut tls.sock) {
                        Ok(_) => {}
                        Err(err) => match TransportError::from_io(CLOSING, err) {
                            err if already_closed(&err) => break,
                            err => return Err(err),
                        },
                    }
                }
                tls.into_parts().1
            }
        };
        match tcp.shutdown(std::net::Shutdown::Both) {
            Err(err) if err.kind() != io::ErrorKind::NotConnected => {
                match TransportError::from_io(CLOSING, err) {
                    err if already_closed(&err) => Ok(()),
                    err => Err(err),
                }
            }
            _ => Ok(()),
        }
    }

    fn tcp(&self) -> &TcpStream {
        match &self.inner {
            Inner::Plain(tcp) => tcp,
            Inner::Tls(tls) => &tls.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.read(buf),
            Inner::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.write(buf),
            Inner::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.flush(),
            Inner::Tls(tls) => tls.flush(),
        }
    }
}

fn set_timeouts(tcp: &TcpStream, timeout: Duration) -> Result<(), TransportError> {
    let setting = |err| TransportError::from_io("setting the socket timeout", err);
    tcp.set_read_timeout(Some(timeout)).map_err(setting)?;
    tcp.set_write_timeout(Some(timeout)).map_err(setting)
}

/// Runs the whole handshake now, every socket operation bounded by what is left of `timeout`.
fn handshake(
    tcp: TcpStream,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<Stream, TransportError> {
    let mut conn = ClientConnection::new(config, server_name)
        .map_err(|err| TransportError::from_tls(HANDSHAKE.to_owned(), err))?;
    let mut io = Deadlined {
        tcp: &tcp,
        deadline: Instant::now() + timeout,
    };
    while conn.is_handshaking() {
        conn.complete_io(&mut io)
            .map_err(|err| TransportError::from_io(HANDSHAKE, err))?;
    }
    set_timeouts(&tcp, timeout)?;
    Ok(Stream {
        inner: Inner::Tls(Box::new(StreamOwned::new(conn, tcp))),
        timeout,
    })
}

/// Peeks without blocking for bytes the server sent after its `220` to STARTTLS.
fn ensure_nothing_waiting(tcp: &TcpStream) -> Result<(), TransportError> {
    const CHECK: &str = "STARTTLS";
    tcp.set_nonblocking(true)
        .map_err(|err| TransportError::from_io(CHECK, err))?;
    let mut byte = [0u8; 1];
    let peeked = tcp.peek(&mut byte);
    // Restore blocking mode before judging, so no path leaves the socket non-blocking.
    tcp.set_nonblocking(false)
        .map_err(|err| TransportError::from_io(CHECK, err))?;
    match peeked {
        Ok(0) => Err(TransportError::closed(CHECK)),
        Ok(_) => Err(TransportError::InjectedData),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(err) => Err(TransportError::from_io(CHECK, err)),
    }
}

/// A socket view whose every read and write gets the time left until `deadline`, so the
/// handshake as a whole, not each record, is bounded by `--timeout`.
struct Deadlined<'a> {
    tcp: &'a TcpStream,
    deadline: Instant,
}

impl Deadlined<'_> {
    fn time_left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            Ok(left)
        }
    }
}

impl Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut tcp = self.tcp;
        tcp.set_read_timeout(Some(self.time_left()?))?;
        tcp.read(buf)
    }
}

impl Write for Deadlined<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut tcp = self.tcp;
        tcp.set_write_timeout(Some(self.time_left()?))?;
        tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut tcp = self.tcp;
        tcp.flush()
    }
}
