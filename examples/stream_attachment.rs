//! Builds a message carrying one attachment and streams it into a sink, printing the number of
//! octets written. Used to measure that memory stays bounded whatever the attachment's size:
//!
//! `/usr/bin/time -v target/release/examples/stream_attachment big.bin`

use quizmail::message::{Attachment, Compose, Mailbox, Outgoing, Target};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

/// Counts octets on their way to `io::sink()`.
struct Counting<W: Write> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: stream_attachment FILE");
        return ExitCode::from(64);
    };
    match run(path) {
        Ok((written, size)) => {
            println!("{written}");
            if written == size {
                ExitCode::SUCCESS
            } else {
                eprintln!("size() said {size} but {written} octets were written");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("stream_attachment: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: PathBuf) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let from = Mailbox::parse("Benchmark <bench@example.com>")?;
    // Fixed randomness is fine here: the output goes nowhere.
    let mut compose = Compose::new(from, SystemTime::UNIX_EPOCH, [0; 16]);
    compose.to = Mailbox::parse_list("sink@example.com")?;
    compose.subject = "Streaming benchmark".into();
    compose.text = Some(b"The attachment follows.\n".to_vec());
    compose.attachments = vec![Attachment::File(path)];
    let message = compose.build(Target::default())?;
    let size = message.size()?;
    let mut sink = Counting {
        inner: io::sink(),
        count: 0,
    };
    message.write_to(&mut sink)?;
    Ok((sink.count, size))
}
