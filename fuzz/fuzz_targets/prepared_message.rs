//! Feeds arbitrary bytes to the `--message` parser (`message::Prepared::parse`), with and
//! without `-t`: it must never panic, and a message it accepts must be written exactly as
//! long as `size()` says (the SIZE parameter of MAIL FROM, RFC 1870, and BDAT chunk lengths,
//! RFC 3030, depend on it) and pass the strict lint for what it declares it needs (SMTPUTF8,
//! 8BITMIME): CRLF only, lines of at most 998 octets, well-formed header fields, no Bcc.
//!
//! The lint's RFC 2047 §2 limits on encoded words (75 characters, lines of 76) bind whoever
//! encodes the words; `--message` is sent as the user wrote it (cli.md), so the header
//! section is linted with `=?` defused to `=_`, which changes no length and no other rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quizmail::message::lint::lint;
use quizmail::message::{Outgoing, Prepared, Target};

fuzz_target!(|data: &[u8]| {
    for read_recipients in [false, true] {
        let Ok(message) = Prepared::parse(data, read_recipients) else {
            continue;
        };
        if read_recipients {
            assert!(!message.recipients().is_empty());
        }
        let mut written = Vec::new();
        message
            .write_to(&mut written)
            .expect("writing to a Vec cannot fail");
        let size = message.size().expect("size of an in-memory message");
        assert_eq!(written.len() as u64, size);
        let target = Target {
            smtputf8: message.needs_smtputf8(),
            eight_bit_mime: message.needs_8bitmime(),
        };
        if let Err(problem) = lint(&defuse_encoded_words(&written), target) {
            panic!(
                "accepted but fails lint: {problem}\n{:?}",
                String::from_utf8_lossy(&written)
            );
        }
    }
});

/// `written` with every `=?` in the header section replaced by `=_`.
fn defuse_encoded_words(written: &[u8]) -> Vec<u8> {
    let end = written
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(written.len(), |i| i + 4);
    let mut out = written.to_vec();
    for i in 0..end.saturating_sub(1) {
        if out[i] == b'=' && out[i + 1] == b'?' {
            out[i + 1] = b'_';
        }
    }
    out
}
