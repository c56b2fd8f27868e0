//! The replay tool: replays a JSON-lines script against a fresh in-memory
//! engine with a manual clock starting at 0, one answer line per request
//! line (see the "Replay format" section of `docs/CONTRACT.md`, and
//! `--help`):
//!
//! ```text
//! cargo run --release --example replay < tests/replay/basic.jsonl
//! cargo run --release --example replay -- --help
//! ```

use std::io::{self, BufWriter};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Buffered, and flushed after every answer by the replay loop.
    let output = BufWriter::new(io::stdout().lock());
    ExitCode::from(omnistock::replay::main(
        std::env::args_os().skip(1),
        io::stdin().lock(),
        output,
        io::stderr().lock(),
    ))
}
