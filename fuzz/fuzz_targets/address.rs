//! Feeds arbitrary text to the address parsers (`Mailbox::parse`, `Mailbox::parse_list`): they
//! must never panic, and every mailbox they accept must have header and envelope forms free of
//! CR, LF and other control characters, with or without SMTPUTF8, so nothing typed as an
//! address can add a header line (RFC 5322 §2.2) or an SMTP command (RFC 5321 §4.1.1).
#![no_main]

use libfuzzer_sys::fuzz_target;
use quizmail::message::Mailbox;

fn check(mailbox: &Mailbox) {
    for smtputf8 in [false, true] {
        for form in [
            mailbox.header_form(smtputf8),
            mailbox.envelope_form(smtputf8),
        ]
        .into_iter()
        .flatten()
        {
            assert!(!form.contains(['\r', '\n']), "{form:?} from {mailbox:?}");
            assert!(
                !form.chars().any(char::is_control),
                "{form:?} from {mailbox:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mailbox) = Mailbox::parse(text) {
        check(&mailbox);
    }
    if let Ok(list) = Mailbox::parse_list(text) {
        list.iter().for_each(check);
    }
});
