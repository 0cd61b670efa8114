//! Feeds arbitrary bytes, cut into arbitrary chunks, to the SMTP reply parser: it must never
//! panic, never hold more than MAX_REPLY_LEN bytes, and every reply it yields must be within
//! the caps with a valid RFC 5321 §4.2 code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quizmail::smtp::reply::{Parsed, ReplyParser, MAX_LINES, MAX_REPLY_LEN};

fuzz_target!(|data: &[u8]| {
    // The first byte seeds the chunk sizes, so the fuzzer explores every split point.
    let Some((&seed, mut rest)) = data.split_first() else { return };
    let mut parser = ReplyParser::new();
    let mut step = usize::from(seed) + 1;
    while !rest.is_empty() {
        let take = step.min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        step = step * 7 % 251 + 1;
        let mut input = chunk;
        while !input.is_empty() {
            match parser.parse(input) {
                Ok(Parsed::Complete { reply, consumed }) => {
                    assert!(consumed > 0 && consumed <= input.len());
                    assert!((200..=559).contains(&reply.code));
                    assert!(!reply.lines.is_empty() && reply.lines.len() <= MAX_LINES);
                    assert_eq!(reply.lines.len(), reply.raw_lines().len());
                    assert!(reply.lines.iter().all(|l| !l.chars().any(|c| c.is_control() && c != '\t')));
                    input = &input[consumed..];
                }
                Ok(Parsed::NeedMore) => input = &[],
                Err(_) => {
                    assert_eq!(parser.buffered(), 0);
                    input = &[];
                }
            }
            assert!(parser.buffered() <= MAX_REPLY_LEN);
        }
    }
});
