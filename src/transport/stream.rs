//! The connection the SMTP driver reads and writes: plain TCP, or rustls over TCP after implicit
//! TLS (RFC 8314 §3.3) or STARTTLS (RFC 3207 §4). Every write is bounded by the timeout; a read
//! is bounded by the deadline the driver set for the whole reply it waits for, so a server that
//! trickles bytes cannot stretch a wait past `--timeout`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::{TlsInfo, TransportError};

const HANDSHAKE: &str = "TLS handshake";

/// A plain or TLS connection. Every `write` is bounded by the timeout, every `read` by the
/// deadline of [`Stream::set_read_deadline`] (else by the timeout); map their errors with
/// [`TransportError::from_io`] (a timeout is `Timeout`, never `Closed`). Over TLS, `write` may
/// leave bytes in rustls's buffer: call `flush` before waiting for a reply.
#[derive(Debug)]
pub struct Stream {
    inner: Inner,
    timeout: Duration,
    read_deadline: Option<Instant>,
}

#[derive(Debug)]
enum Inner {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// After a failed STARTTLS or `close`: the connection is gone, every operation fails.
    Gone,
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection was closed")
}

impl Stream {
    /// A cleartext connection (`--tls none`, or before STARTTLS).
    pub fn plain(tcp: TcpStream, timeout: Duration) -> Result<Self, TransportError> {
        set_timeouts(&tcp, timeout)?;
        Ok(Self {
            inner: Inner::Plain(tcp),
            timeout,
            read_deadline: None,
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

    /// Upgrades in place after the server's `220` to STARTTLS (RFC 3207 §4). The plain socket is
    /// handed to rustls and gone, so nothing read in cleartext can be used afterwards; on failure
    /// the stream is closed for good.
    ///
    /// The caller must first check that its own reply buffer is empty; this checks the socket:
    /// a byte already waiting there is `InjectedData` (RFC 3207 §6 / CVE-2011-0411, "data sent
    /// after 220 to STARTTLS"). Bytes that arrive after this check cannot be told apart from
    /// the TLS handshake; they reach rustls as records and fail the handshake as a TLS error,
    /// so they are never taken as SMTP replies either way.
    pub fn starttls(
        &mut self,
        server_name: ServerName<'static>,
        config: Arc<ClientConfig>,
    ) -> Result<(), TransportError> {
        let tcp = match std::mem::replace(&mut self.inner, Inner::Gone) {
            Inner::Plain(tcp) => tcp,
            tls @ Inner::Tls(_) => {
                self.inner = tls;
                return Err(TransportError::AlreadyTls);
            }
            Inner::Gone => return Err(TransportError::closed("STARTTLS")),
        };
        ensure_nothing_waiting(&tcp)?;
        *self = handshake(tcp, server_name, config, self.timeout)?;
        Ok(())
    }

    /// Bounds every read until the next call: the driver sets it when it starts waiting for a
    /// reply, so `--timeout` covers the whole reply, however it is cut into segments.
    pub fn set_read_deadline(&mut self, deadline: Option<Instant>) {
        self.read_deadline = deadline;
    }

    /// Whether the connection runs TLS (the AUTH `auto` rule of cli.md depends on it).
    pub fn is_tls(&self) -> bool {
        matches!(self.inner, Inner::Tls(_))
    }

    /// Version, cipher and certificate chain; `None` on a plain connection.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        match &self.inner {
            Inner::Plain(_) | Inner::Gone => None,
            Inner::Tls(tls) => Some(TlsInfo::from_connection(&tls.conn)),
        }
    }

    /// The timeout applied to every read and write.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The server's address, for the report and `-v`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp()?.peer_addr()
    }

    /// Our address, for the default EHLO address literal (`[127.0.0.1]`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp()?.local_addr()
    }

    /// Ends the connection: over TLS sends close_notify first (RFC 8446 §6.1) so the server
    /// sees a clean end rather than a truncation. A server that already closed (after `221`)
    /// is the normal end, not an error.
    pub fn close(&mut self) -> Result<(), TransportError> {
        const CLOSING: &str = "closing the connection";
        let already_closed = |err: &TransportError| matches!(err, TransportError::Closed { .. });
        let tcp = match std::mem::replace(&mut self.inner, Inner::Gone) {
            Inner::Gone => return Ok(()),
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

    fn tcp(&self) -> io::Result<&TcpStream> {
        match &self.inner {
            Inner::Plain(tcp) => Ok(tcp),
            Inner::Tls(tls) => Ok(&tls.sock),
            Inner::Gone => Err(gone()),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(deadline) = self.read_deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.tcp()?.set_read_timeout(Some(left))?;
        }
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.read(buf),
            Inner::Tls(tls) => tls.read(buf),
            Inner::Gone => Err(gone()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // rustls may read inside a write (a post-handshake message): that read gets the
        // write's timeout, not a stale reply deadline.
        if self.read_deadline.take().is_some() {
            self.tcp()?.set_read_timeout(Some(self.timeout))?;
        }
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.write(buf),
            Inner::Tls(tls) => tls.write(buf),
            Inner::Gone => Err(gone()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(tcp) => tcp.flush(),
            Inner::Tls(tls) => tls.flush(),
            Inner::Gone => Err(gone()),
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
        read_deadline: None,
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
