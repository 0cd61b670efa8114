//! The "relaxed" canonicalisation algorithms of RFC 6376 §3.4.2 (header fields) and §3.4.4 (body).
//!
//! The body canonicaliser is a `Write` adapter that feeds a SHA-256 context as the message is
//! streamed, so signing never holds the body in memory: trailing whitespace and trailing empty
//! lines, which can only be judged once more input arrives, are kept as a flag and a counter.

use std::io;

use ring::digest;

/// Output is collected here before it goes to the digest, so that a byte-at-a-time state machine
/// does not call into the hash for every byte.
const CHUNK: usize = 8 * 1024;

/// RFC 6376 §3.4.4 relaxed body canonicalisation, hashed as it is written.
pub(crate) struct RelaxedBody {
    ctx: digest::Context,
    out: Vec<u8>,
    /// A CR was seen; it ends the line only if an LF follows.
    pending_cr: bool,
    /// Whitespace was seen since the last content byte; it becomes one SP if content follows.
    pending_wsp: bool,
    /// The current line has content, so its CRLF is kept whatever follows.
    line_has_content: bool,
    /// Empty lines seen since the last content: dropped at the end of the body, else restored.
    empty_lines: u64,
}

impl RelaxedBody {
    pub(crate) fn new() -> Self {
        RelaxedBody {
            ctx: digest::Context::new(&digest::SHA256),
            out: Vec::with_capacity(CHUNK),
            pending_cr: false,
            pending_wsp: false,
            line_has_content: false,
            empty_lines: 0,
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
        if self.out.len() >= CHUNK {
            self.ctx.update(&self.out);
            self.out.clear();
        }
    }

    fn content(&mut self, byte: u8) {
        while self.empty_lines > 0 {
            self.emit(b"\r\n");
            self.empty_lines -= 1;
        }
        if self.pending_wsp {
            self.emit(b" ");
            self.pending_wsp = false;
        }
        self.emit(&[byte]);
        self.line_has_content = true;
    }

    fn end_of_line(&mut self) {
        // Whitespace at the end of a line is ignored (§3.4.4, first rule).
        self.pending_wsp = false;
        if self.line_has_content {
            self.emit(b"\r\n");
        } else {
            self.empty_lines += 1;
        }
        self.line_has_content = false;
    }

    fn push(&mut self, byte: u8) {
        if self.pending_cr {
            self.pending_cr = false;
            if byte == b'\n' {
                self.end_of_line();
                return;
            }
            self.content(b'\r');
        }
        match byte {
            b'\r' => self.pending_cr = true,
            b' ' | b'\t' => self.pending_wsp = true,
            _ => self.content(byte),
        }
    }

    /// Ends the body: empty lines at the end are ignored, and a non-empty body that does not end
    /// with CRLF gets one (§3.4.4); an empty body hashes as nothing at all.
    pub(crate) fn finish(mut self) -> digest::Digest {
        if self.pending_cr {
            self.pending_cr = false;
            self.content(b'\r');
        }
        if self.line_has_content {
            self.emit(b"\r\n");
        }
        self.ctx.update(&self.out);
        self.ctx.finish()
    }
}

impl io::Write for RelaxedBody {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &byte in buf {
            self.push(byte);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// RFC 6376 §3.4.2 relaxed header canonicalisation of one field, CRLF-terminated: lower-case
/// name, unfolded value, whitespace runs as one SP, no whitespace around the colon or at the end.
pub(crate) fn relaxed_header(name: &str, value: &str, out: &mut Vec<u8>) {
    out.extend(
        name.trim_end_matches([' ', '\t'])
            .bytes()
            .map(|b| b.to_ascii_lowercase()),
    );
    out.push(b':');
    relaxed_value(value, out);
    out.extend_from_slice(b"\r\n");
}

/// The value part of [`relaxed_header`], without the CRLF.
pub(crate) fn relaxed_value(value: &str, out: &mut Vec<u8>) {
    let mut pending_wsp = false;
    let mut started = false;
    for byte in value.bytes() {
        match byte {
            // Unfolding: the CRLF of a fold goes, its WSP is then collapsed with the rest.
            b'\r' | b'\n' => {}
            b' ' | b'\t' => pending_wsp = true,
            _ => {
                if pending_wsp && started {
                    out.push(b' ');
                }
                pending_wsp = false;
                started = true;
                out.push(byte);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn body(input: &[u8]) -> Vec<u8> {
        // The digest hides the canonical bytes, so hash the expected form the same way.
        let mut canon = RelaxedBody::new();
        canon.write_all(input).unwrap();
        canon.finish().as_ref().to_vec()
    }

    fn sha256(bytes: &[u8]) -> Vec<u8> {
        digest::digest(&digest::SHA256, bytes).as_ref().to_vec()
    }

    #[test]
    fn rfc6376_3_4_5_relaxed_headers() {
        // "A: <SP> X <CRLF>" and "B <SP> : <SP> Y <HTAB><CRLF> <HTAB> Z <SP><SP><CRLF>"
        let mut out = Vec::new();
        relaxed_header("A", " X", &mut out);
        relaxed_header("B ", " Y\t\r\n\tZ  ", &mut out);
        assert_eq!(out, b"a:X\r\nb:Y Z\r\n");
    }

    #[test]
    fn rfc6376_3_4_5_relaxed_body() {
        // "<SP> C <SP><CRLF> D <SP><HTAB><SP> E <CRLF> <CRLF> <CRLF>"
        let input = b" C \r\nD \t E\r\n\r\n\r\n";
        assert_eq!(body(input), sha256(b" C\r\nD E\r\n"));
    }

    #[test]
    fn empty_body_hashes_as_nothing() {
        // RFC 6376 §3.4.4: the relaxed form of an empty body is empty (errata 1384 for
        // bodies of only empty lines).
        assert_eq!(body(b""), sha256(b""));
        assert_eq!(body(b"\r\n\r\n \t\r\n"), sha256(b""));
    }

    #[test]
    fn missing_final_crlf_is_added_and_trailing_wsp_dropped() {
        assert_eq!(body(b"abc"), sha256(b"abc\r\n"));
        assert_eq!(body(b"abc  \t"), sha256(b"abc\r\n"));
        assert_eq!(body(b"abc\r\n \t "), sha256(b"abc\r\n"));
    }

    #[test]
    fn inner_empty_and_blank_lines_are_kept() {
        assert_eq!(body(b"a\r\n  \r\n\r\nb\r\n"), sha256(b"a\r\n\r\n\r\nb\r\n"));
    }

    #[test]
    fn bare_cr_and_lf_are_content() {
        assert_eq!(body(b"a\rb\nc\r\n"), sha256(b"a\rb\nc\r\n"));
        assert_eq!(body(b"a\r"), sha256(b"a\r\r\n"));
    }

    #[test]
    fn split_writes_give_the_same_hash() {
        let input: &[u8] = b"x \t y\r\n\r\n. dot\r\n \r\nend  \r\n\r\n";
        let whole = body(input);
        for split in 0..input.len() {
            let mut canon = RelaxedBody::new();
            canon.write_all(&input[..split]).unwrap();
            canon.write_all(&input[split..]).unwrap();
            assert_eq!(canon.finish().as_ref(), &whole[..], "split at {split}");
        }
        assert_eq!(whole, sha256(b"x y\r\n\r\n. dot\r\n\r\nend\r\n"));
    }

    #[test]
    fn many_trailing_empty_lines_use_a_counter() {
        let mut canon = RelaxedBody::new();
        canon.write_all(b"text\r\n").unwrap();
        for _ in 0..100_000 {
            canon.write_all(b"\r\n").unwrap();
        }
        assert_eq!(canon.empty_lines, 100_000);
        assert!(canon.out.len() < CHUNK);
        assert_eq!(canon.finish().as_ref(), &sha256(b"text\r\n")[..]);
    }

    #[test]
    fn long_bodies_cross_the_chunk_boundary() {
        let line = "0123456789 ".repeat(90) + "\r\n";
        let input = line.repeat(50);
        let expected = (line.trim_end().to_string() + "\r\n").repeat(50);
        assert_eq!(body(input.as_bytes()), sha256(expected.as_bytes()));
    }
}
