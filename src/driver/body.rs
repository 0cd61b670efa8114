//! Writing the message into a flight: dot-stuffed for DATA (RFC 5321 §4.5.2), exactly the
//! announced octets for BDAT (RFC 3030 §2), telling a socket failure from a message that could
//! not be read.
use std::io::{self, Write};

use super::DriverError;
use crate::message::{DotStuffer, Outgoing};
use crate::smtp::BodyFraming;

/// Why a flight could not be written.
pub(super) enum BodyError {
    /// The socket failed.
    Write(io::Error),
    /// The message's own source failed (an attachment read), or the socket did underneath it.
    Source(io::Error),
    /// The message wrote a different number of octets than BDAT announced.
    SizeMismatch,
    /// The session asked for a body while no message was being sent.
    NoMessage,
}

impl BodyError {
    /// `Ok(io error)` for a socket failure, else the driver error to report.
    pub(super) fn into_driver_error(self, socket_failed: bool) -> Result<io::Error, DriverError> {
        match self {
            BodyError::Write(e) => Ok(e),
            BodyError::Source(e) if socket_failed => Ok(e),
            BodyError::Source(e) => Err(DriverError::Body(e)),
            BodyError::SizeMismatch => Err(DriverError::Internal(
                "the message was not the size announced in BDAT",
            )),
            BodyError::NoMessage => Err(DriverError::Internal(
                "the session asked for a body with no message",
            )),
        }
    }
}

/// The socket under a flight, remembering whether it failed.
pub(super) struct Socket<'a, W: Write> {
    inner: &'a mut W,
    failed: bool,
}

impl<'a, W: Write> Socket<'a, W> {
    pub(super) fn new(inner: &'a mut W) -> Self {
        Socket {
            inner,
            failed: false,
        }
    }

    pub(super) fn failed(&self) -> bool {
        self.failed
    }
}

impl<W: Write> Write for Socket<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| self.failed = true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

/// Writes the message for DATA (dot-stuffed, ending in CRLF; the session sends the `.`) or
/// for BDAT (exactly `size` raw octets).
pub(super) fn write(
    w: &mut dyn Write,
    msg: &dyn Outgoing,
    framing: BodyFraming,
) -> Result<(), BodyError> {
    match framing {
        BodyFraming::Raw { size } => {
            let mut counted = Counting { inner: w, n: 0 };
            msg.write_to(&mut counted).map_err(BodyError::Source)?;
            if counted.n != size {
                return Err(BodyError::SizeMismatch);
            }
            Ok(())
        }
        BodyFraming::Dot => {
            let mut stuffer = DotStuffer::new(w);
            msg.write_to(&mut stuffer).map_err(BodyError::Source)?;
            stuffer.end_line().map(|_| ()).map_err(BodyError::Write)
        }
    }
}

struct Counting<'a> {
    inner: &'a mut dyn Write,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
