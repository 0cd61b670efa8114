//! Runs one invocation: parses the command line, picks the mode, reports, exits.
pub fn main() -> i32 {
    0
}
