//! The replay tool's wire format: JSON lines in, JSON lines out, as the
//! "Replay format" section of `docs/CONTRACT.md` defines them. Requests and
//! answers are the serde forms of [`Command`], [`Outcome`] and [`Error`],
//! read and written with `serde_json`. It never panics and never stops on bad
//! input: a bad line gets a `parse` answer and the next line is read.
//!
//! - `strict`: the JSON rules serde_json does not enforce on its own
//!   (duplicate keys at any depth, a nesting limit, UTF-8 first).
//! - `request`: a request line to a [`Request`] and back.
//! - `answer`: the answer line to an operation or to an unreadable line.
//! - `cli`: the line loop with its manual clock, and the tool's arguments.
//!
//! ```
//! use omnistock::replay::Replayer;
//!
//! let mut replayer = Replayer::new();
//! let answer = replayer.handle_line(br#"{"op":"advance","ms":1000}"#);
//! assert_eq!(answer.as_deref(), Some(r#"{"ok":true,"now_ms":1000}"#));
//! assert_eq!(replayer.handle_line(b"  \r"), None); // blank lines are skipped
//! ```

mod answer;
mod cli;
mod request;
mod strict;

use crate::command::Command;
use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use std::fmt;

pub use answer::{format_outcome, format_parse_error};
pub use cli::{main, run, run_on, Replayer, USAGE};
pub use request::{format_request, parse_request};
pub use strict::MAX_DEPTH;

#[cfg(doc)]
use crate::{command::Outcome, error::Error};

/// Why a request line was refused before reaching the engine: not valid JSON,
/// not an object, an unknown op, or a missing or out-of-range field. The
/// replay tool answers it as `{"ok":false,"error":"parse","message":...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    message: String,
}

impl ParseError {
    fn new(message: impl Into<String>) -> Self {
        ParseError {
            message: message.into(),
        }
    }

    /// What is wrong with the line, for a human.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// One request line of a replay script. It serializes to that line: a
/// command as [`Command`] does, `advance` as `{"op":"advance","ms":...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// An operation of the engine.
    Command(Command),
    /// Move the replay's manual clock forward by `ms` (saturating).
    Advance {
        /// Milliseconds to add to the clock.
        ms: u64,
    },
    /// A request the format reads but the contract refuses as `invalid`
    /// before it reaches the engine (nothing changes, not even by lazy
    /// expiry): fields given that the op cannot take together.
    Refused(Refused),
}

/// A request refused as `invalid` for fields that cannot go together: `sku`,
/// `store` or `qty` beside a basket's `lines`, `campaign` or `customer` on
/// a `reserve_any`. It serializes to the command's line with each stray
/// field as `0`, which reads back as the same refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The request without the stray fields.
    pub command: Command,
    /// The stray fields given, in the format's order.
    pub stray: Vec<&'static str>,
}

impl Refused {
    /// The reason of the `invalid` answer.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self.command {
            Command::SellLines { .. } => "a sale with lines takes no sku, store or qty of its own",
            _ => {
                "reserve_any takes no campaign or customer; reserve a campaign's item with reserve"
            }
        }
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Advance {
            op: &'static str,
            ms: u64,
        }
        match self {
            Request::Command(command) => command.serialize(serializer),
            Request::Advance { ms } => Advance {
                op: "advance",
                ms: *ms,
            }
            .serialize(serializer),
            Request::Refused(refused) => {
                let mut line = serde_json::to_value(&refused.command).map_err(S::Error::custom)?;
                if let serde_json::Value::Object(members) = &mut line {
                    for name in &refused.stray {
                        members.insert((*name).to_string(), serde_json::Value::from(0));
                    }
                }
                line.serialize(serializer)
            }
        }
    }
}

/// `text` in quotes for a message, cut short so a hostile line cannot make
/// the answer huge. Quotes and control characters are left to the output
/// escaping.
fn quoted_excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut chars = text.chars();
    let excerpt: String = chars.by_ref().take(MAX_CHARS).collect();
    if chars.next().is_some() {
        format!("\"{excerpt}...\"")
    } else {
        format!("\"{excerpt}\"")
    }
}
