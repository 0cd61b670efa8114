//! Shared test library for quizmail's end-to-end tests: `mod support;` from a file in `tests/`.
//!
//! - `transcript`: the `S:`/`C:` transcript language (std only; `src/` unit tests share it).
//! - `server`: a scripted SMTP server on 127.0.0.1:0 that runs transcripts, records every byte
//!   the client sends, and fails the test at `finish()` when the client left the script.
//! - `smtp`: `GoodServer`, a script builder for a well-behaved submission server with faults.
//! - `certs`: a test PKI (CA, good, wrong-host, expired and self-signed leaves) made with rcgen.
//!
//! ```ignore
//! let pki = support::certs::Pki::new();
//! let server = GoodServer::new()
//!     .starttls(pki.good.server_config())
//!     .auth(&["PLAIN", "LOGIN"], "ada", "secret")
//!     .message(Some("quiz@example.com"), &["ada@example.com"])
//!     .fault(Stage::Rcpt(0, 0), Fault::Reply("450 4.2.0 Mailbox busy".into()))
//!     .start();
//! // run the client against 127.0.0.1:server.port() with --ca-file pki.ca_file ...
//! let transcript = server.finish();
//! assert!(!transcript.only().has_command("DATA"));
//! ```

// Each test crate uses a different part of this library.
#![allow(dead_code)]

pub mod certs;
pub mod server;
pub mod smtp;
pub mod transcript;

use std::net::{SocketAddr, TcpListener};

/// An address on 127.0.0.1 where nothing listens (connections are refused). The port was just
/// free; another process could take it in between, which on a test machine is rare enough.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("listener address")
}

/// A listener that never accepts: the kernel completes the TCP handshake, then nothing is ever
/// said, which is a silent server without a thread. Keep the listener alive for the test.
pub fn silent_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("listener address");
    (listener, addr)
}
