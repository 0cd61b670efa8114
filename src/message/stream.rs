//! Streaming writers for the wire: SMTP DATA transparency (RFC 5321 §4.5.2) and CRLF
//! normalisation (RFC 5322 §2.3: CR and LF only together as CRLF). Normalising bare CR and bare
//! LF to CRLF before DATA means no `<LF>.<LF>` or `<CR>.<CR>` sequence can reach a server that
//! would read it as the end of the data (SMTP smuggling).

use std::io::{self, Write};

/// Dot-stuffs SMTP DATA (RFC 5321 §4.5.2): a `.` at the start of any line gets a second `.`,
/// also when the line starts in a later `write` call. Feed it CRLF-normalised bytes; call
/// [`DotStuffer::finish`] to end the data with `.` CRLF.
pub struct DotStuffer<W: Write> {
    inner: W,
    at_line_start: bool,
    last_two: [u8; 2],
    written: u64,
}

impl<W: Write> DotStuffer<W> {
    pub fn new(inner: W) -> DotStuffer<W> {
        DotStuffer {
            inner,
            at_line_start: true,
            last_two: [0, 0],
            written: 0,
        }
    }

    /// Writes the end-of-data line `.` CRLF, first ending the last line with CRLF when the
    /// content did not (RFC 5321 §4.1.1.4), flushes and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        let mut inner = self.end_line()?;
        inner.write_all(b".\r\n")?;
        inner.flush()?;
        Ok(inner)
    }

    /// Ends the last line with CRLF when the content did not, without the end-of-data `.`:
    /// for a driver whose SMTP session sends that line itself.
    pub fn end_line(mut self) -> io::Result<W> {
        if self.written > 0 && self.last_two != *b"\r\n" {
            self.inner.write_all(b"\r\n")?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for DotStuffer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut start = 0;
        for (i, &b) in buf.iter().enumerate() {
            if self.at_line_start && b == b'.' {
                self.inner.write_all(&buf[start..i])?;
                self.inner.write_all(b".")?;
                start = i;
            }
            self.at_line_start = b == b'\n';
        }
        self.inner.write_all(&buf[start..])?;
        match buf {
            [] => {}
            [one] => self.last_two = [self.last_two[1], *one],
            [.., a, b] => self.last_two = [*a, *b],
        }
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Rewrites bare LF and bare CR as CRLF, keeping CRLF as it is, across `write` boundaries.
/// Call [`CrlfNormalizer::finish`] so a trailing CR is written as CRLF.
pub struct CrlfNormalizer<W: Write> {
    inner: W,
    pending_cr: bool,
}

impl<W: Write> CrlfNormalizer<W> {
    pub fn new(inner: W) -> CrlfNormalizer<W> {
        CrlfNormalizer {
            inner,
            pending_cr: false,
        }
    }

    /// Completes a trailing bare CR, flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.pending_cr {
            self.inner.write_all(b"\r\n")?;
        }
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for CrlfNormalizer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut start = 0;
        for (i, &b) in buf.iter().enumerate() {
            match b {
                b'\r' => {
                    self.inner.write_all(&buf[start..i])?;
                    if self.pending_cr {
                        self.inner.write_all(b"\r\n")?;
                    }
                    self.pending_cr = true;
                    start = i + 1;
                }
                b'\n' => {
                    self.inner.write_all(&buf[start..i])?;
                    self.inner.write_all(b"\r\n")?;
                    self.pending_cr = false;
                    start = i + 1;
                }
                _ if self.pending_cr => {
                    self.inner.write_all(b"\r\n")?;
                    self.pending_cr = false;
                    start = i;
                }
                _ => {}
            }
        }
        self.inner.write_all(&buf[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuff(chunks: &[&[u8]]) -> Vec<u8> {
        let mut d = DotStuffer::new(Vec::new());
        for c in chunks {
            d.write_all(c).unwrap();
        }
        d.finish().unwrap()
    }

    #[test]
    fn dot_stuffing_rfc5321_4_5_2() {
        assert_eq!(
            stuff(&[b".\r\n..x\r\ny.\r\n"]),
            b"..\r\n...x\r\ny.\r\n.\r\n"
        );
        assert_eq!(stuff(&[b".a"]), b"..a\r\n.\r\n");
        assert_eq!(stuff(&[]), b".\r\n");
        assert_eq!(stuff(&[b"a\r\n"]), b"a\r\n.\r\n");
    }

    #[test]
    fn dot_stuffing_across_write_boundaries() {
        assert_eq!(
            stuff(&[b"a\r\n", b".b\r", b"\n", b".", b"c"]),
            b"a\r\n..b\r\n..c\r\n.\r\n"
        );
        assert_eq!(stuff(&[b"a\r", b"\n"]), b"a\r\n.\r\n");
        // Byte at a time must equal all at once.
        let data = b".x\r\n.\r\n..\r\nend.\r\n.";
        let one: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(stuff(&one), stuff(&[data]));
    }

    fn norm(chunks: &[&[u8]]) -> Vec<u8> {
        let mut n = CrlfNormalizer::new(Vec::new());
        for c in chunks {
            n.write_all(c).unwrap();
        }
        n.finish().unwrap()
    }

    #[test]
    fn crlf_normaliser() {
        assert_eq!(norm(&[b"a\nb\rc\r\nd"]), b"a\r\nb\r\nc\r\nd");
        assert_eq!(norm(&[b"a\r", b"\nb\r", b"", b"c\r"]), b"a\r\nb\r\nc\r\n");
        assert_eq!(norm(&[b"\r\r\n\n"]), b"\r\n\r\n\r\n");
        // The smuggling sequence <LF>.<LF> becomes an ordinary CRLF-delimited dot line,
        // which dot-stuffing then doubles.
        let normalised = norm(&[b"x\n.\ny"]);
        assert_eq!(normalised, b"x\r\n.\r\ny");
        assert_eq!(stuff(&[&normalised]), b"x\r\n..\r\ny\r\n.\r\n");
        let data = b"a\r\n\rb\n\r\r\nc\r";
        let one: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(norm(&one), crate::message::encoding::normalize_crlf(data));
    }
}
