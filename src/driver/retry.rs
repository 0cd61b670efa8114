//! The one retry rule of every mode (cli.md `--retries`): connection failures and 4xx replies
//! are tried again with backoff, never after the end of the data was sent.
use std::time::Duration;

/// An error that knows whether trying again can help and cannot deliver twice.
pub trait Retryable {
    fn is_retryable(&self) -> bool;
}

/// Runs `attempt` up to `retries + 1` times while it fails with a retryable error, calling
/// `waiting(error, wait, next_attempt)` before each pause.
pub fn with_retries<T, E: Retryable>(
    retries: u32,
    mut attempt: impl FnMut() -> Result<T, E>,
    mut waiting: impl FnMut(&E, Duration, u32),
) -> Result<T, E> {
    let mut tries = 0;
    loop {
        match attempt() {
            Err(e) if e.is_retryable() && tries < retries => {
                tries += 1;
                let wait = backoff(tries);
                waiting(&e, wait, tries + 1);
                std::thread::sleep(wait);
            }
            other => return other,
        }
    }
}

/// 1 s, 2 s, 4 s … capped at 30 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs((1u64 << attempt.saturating_sub(1).min(5)).min(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let secs: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    struct E(bool);
    impl Retryable for E {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }

    #[test]
    fn stops_at_success_at_a_final_error_or_after_the_retries() {
        let mut calls = 0;
        let r: Result<u32, E> = with_retries(
            0,
            || {
                calls += 1;
                Err(E(true))
            },
            |_, _, _| panic!("no retry with --retries 0"),
        );
        assert!(r.is_err());
        assert_eq!(calls, 1);
        let mut calls = 0;
        let r: Result<u32, E> = with_retries(
            5,
            || {
                calls += 1;
                Err(E(false))
            },
            |_, _, _| panic!("a final error is not retried"),
        );
        assert!(r.is_err());
        assert_eq!(calls, 1);
        let mut waits = Vec::new();
        let mut calls = 0;
        let r: Result<u32, E> = with_retries(
            3,
            || {
                calls += 1;
                if calls < 2 {
                    Err(E(true))
                } else {
                    Ok(calls)
                }
            },
            |_, wait, next| waits.push((wait, next)),
        );
        assert_eq!(r.ok(), Some(2));
        assert_eq!(waits, [(Duration::from_secs(1), 2)]);
    }
}
