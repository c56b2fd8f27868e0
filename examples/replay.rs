//! Replays a JSON-lines script against a fresh in-memory engine with a manual
//! clock starting at 0, one answer line per request line (see the "Replay
//! format" section of `shared/SEMANTICS.md`):
//!
//! ```text
//! cargo run --release --example replay < tests/replay/basic.jsonl
//! ```

use std::io::{self, BufWriter};

fn main() -> io::Result<()> {
    let input = io::stdin().lock();
    // Answers are written in bulk and flushed at the end of the script.
    let output = BufWriter::new(io::stdout().lock());
    omnistock::replay::run(input, output)
}
