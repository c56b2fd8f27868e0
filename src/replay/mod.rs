//! The replay tool's wire format: JSON lines in, JSON lines out, as the
//! "Replay format" section of `shared/SEMANTICS.md` defines them. This module
//! owns the strict JSON reader, the mapping of request lines to [`Command`]s,
//! the formatting of answers and the line loop with its manual clock. It
//! never panics and never stops on bad input: a bad line gets a `parse`
//! answer and the next line is read.
//!
//! The JSON reader is hand-written rather than serde-based so the core crate
//! stays light and the format stays exact: numbers are kept as their source
//! text (so `1.0`, `1e2` and `-0` can be told apart from integers), and
//! duplicate keys are an error at any depth.
//!
//! ```
//! use omnistock::replay::Replayer;
//!
//! let mut replayer = Replayer::new();
//! let answer = replayer.handle_line(br#"{"op":"advance","ms":1000}"#);
//! assert_eq!(answer.as_deref(), Some(r#"{"ok":true,"now_ms":1000}"#));
//! assert_eq!(replayer.handle_line(b"  \r"), None); // blank lines are skipped
//! ```

use crate::clock::{Clock, ManualClock};
use crate::command::{Command, Outcome, ReservationAck, ReservationInfo};
use crate::engine::Inventory;
use crate::error::Error;
use crate::types::Level;
use crate::types::{Channel, Line, ReservationId, Sku, StoreId};
use std::fmt::{self, Write as _};
use std::io::{self, BufRead, Write};
use std::sync::Arc;

pub use json::{parse_json, JsonValue, MAX_DEPTH};

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

/// One request line of a replay script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// An operation of the engine.
    Command(Command),
    /// Move the replay's manual clock forward by `ms` (saturating).
    Advance {
        /// Milliseconds to add to the clock.
        ms: u64,
    },
}

/// Reads one request line. `Ok(None)` for a blank line (empty or JSON
/// whitespace only), which the replay tool skips without answering.
///
/// Quantities of 0, empty `lines` and a `ttl_ms` of 0 parse fine: refusing
/// them as `invalid` is the engine's job, not the parser's.
///
/// # Errors
///
/// A [`ParseError`] when the line is not valid JSON (see [`parse_json`]), is
/// not an object, has no string `op` or an unknown one, or lacks a field the
/// op takes or has it with the wrong type or out of range. Fields the op does
/// not take are ignored whatever their value.
///
/// ```
/// use omnistock::replay::{parse_request, Request};
/// use omnistock::{Channel, Command, Sku, StoreId};
///
/// let line = br#"{"op":"sell","sku":1,"store":2,"qty":3}"#;
/// assert_eq!(
///     parse_request(line).unwrap(),
///     Some(Request::Command(Command::Sell {
///         sku: Sku(1),
///         store: StoreId(2),
///         qty: 3,
///         channel: Channel::InStore,
///     }))
/// );
/// assert!(parse_request(br#"{"op":"sell","sku":1,"store":2,"qty":1.0}"#).is_err());
/// ```
pub fn parse_request(line: &[u8]) -> Result<Option<Request>, ParseError> {
    if line.iter().all(|&byte| json::is_whitespace(byte)) {
        return Ok(None);
    }
    let JsonValue::Object(members) = parse_json(line)? else {
        return Err(ParseError::new("a request must be a JSON object"));
    };
    let fields = Fields::top_level(&members);
    let request = match fields.string("op")? {
        "restock" => Request::Command(Command::Restock {
            sku: fields.sku()?,
            store: fields.store()?,
            qty: fields.u32("qty")?,
        }),
        "set_on_hand" => Request::Command(Command::SetOnHand {
            sku: fields.sku()?,
            store: fields.store()?,
            qty: fields.u32("qty")?,
        }),
        "set_safety_stock" => Request::Command(Command::SetSafetyStock {
            sku: fields.sku()?,
            store: fields.store()?,
            qty: fields.u32("qty")?,
        }),
        "sell" => Request::Command(Command::Sell {
            sku: fields.sku()?,
            store: fields.store()?,
            qty: fields.u32("qty")?,
            channel: fields.channel_or(Channel::InStore)?,
        }),
        "level" => Request::Command(Command::Level {
            sku: fields.sku()?,
            store: fields.store()?,
        }),
        "reserve" => Request::Command(Command::Reserve {
            id: fields.reservation_id()?,
            channel: fields.channel_or(Channel::Online)?,
            ttl_ms: fields.optional_u64("ttl_ms")?,
            lines: fields.lines()?,
        }),
        "commit" => Request::Command(Command::Commit {
            id: fields.reservation_id()?,
        }),
        "release" => Request::Command(Command::Release {
            id: fields.reservation_id()?,
        }),
        "extend" => Request::Command(Command::Extend {
            id: fields.reservation_id()?,
            ttl_ms: fields.u64("ttl_ms")?,
        }),
        "get" => Request::Command(Command::Get {
            id: fields.reservation_id()?,
        }),
        "expire" => Request::Command(Command::Expire),
        "advance" => Request::Advance {
            ms: fields.u64("ms")?,
        },
        other => {
            return Err(ParseError::new(format!(
                "unknown op {}",
                quoted_excerpt(other)
            )))
        }
    };
    Ok(Some(request))
}

/// The members of one JSON object of a request, read by field name. Keys are
/// unique (the JSON reader refuses duplicates), so the first match is the
/// only one. `line` names the entry of `lines` being read, for messages.
struct Fields<'a> {
    members: &'a [(String, JsonValue)],
    line: Option<usize>,
}

impl<'a> Fields<'a> {
    fn top_level(members: &'a [(String, JsonValue)]) -> Self {
        Fields {
            members,
            line: None,
        }
    }

    fn get(&self, name: &str) -> Option<&'a JsonValue> {
        self.members
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// A message about field `name`, prefixed with the line it sits in.
    fn error(&self, name: &str, problem: &str) -> ParseError {
        match self.line {
            Some(index) => ParseError::new(format!("lines[{index}]: field \"{name}\" {problem}")),
            None => ParseError::new(format!("field \"{name}\" {problem}")),
        }
    }

    fn required(&self, name: &str) -> Result<&'a JsonValue, ParseError> {
        self.get(name).ok_or_else(|| self.error(name, "is missing"))
    }

    fn string(&self, name: &str) -> Result<&'a str, ParseError> {
        match self.required(name)? {
            JsonValue::String(text) => Ok(text),
            other => Err(self.error(name, &format!("must be a string, not {}", other.kind()))),
        }
    }

    /// The field as an unsigned integer of at most `max`. The contract allows
    /// only plain digits: no sign (not even `-0`), fraction or exponent, even
    /// where the value would be a whole number (`1.0`, `1e2`).
    fn unsigned(&self, name: &str, value: &JsonValue, max: u64) -> Result<u64, ParseError> {
        let JsonValue::Number(text) = value else {
            return Err(self.error(name, &format!("must be a number, not {}", value.kind())));
        };
        if text.starts_with('-') {
            return Err(self.error(name, "must not have a minus sign"));
        }
        if !text.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(self.error(
                name,
                "must be an integer written without fraction or exponent",
            ));
        }
        // All digits, so the only way `parse` fails is a value past u64::MAX.
        match text.parse::<u64>() {
            Ok(number) if number <= max => Ok(number),
            _ => Err(self.error(name, &format!("must be at most {max}"))),
        }
    }

    fn u64(&self, name: &str) -> Result<u64, ParseError> {
        self.unsigned(name, self.required(name)?, u64::MAX)
    }

    fn u32(&self, name: &str) -> Result<u32, ParseError> {
        let max = u32::MAX;
        let number = self.unsigned(name, self.required(name)?, max.into())?;
        u32::try_from(number).map_err(|_| self.error(name, &format!("must be at most {max}")))
    }

    fn optional_u64(&self, name: &str) -> Result<Option<u64>, ParseError> {
        self.get(name)
            .map(|value| self.unsigned(name, value, u64::MAX))
            .transpose()
    }

    fn sku(&self) -> Result<Sku, ParseError> {
        self.u64("sku").map(Sku)
    }

    fn store(&self) -> Result<StoreId, ParseError> {
        self.u64("store").map(StoreId)
    }

    fn reservation_id(&self) -> Result<ReservationId, ParseError> {
        self.u64("id").map(ReservationId)
    }

    fn channel_or(&self, default: Channel) -> Result<Channel, ParseError> {
        let Some(value) = self.get("channel") else {
            return Ok(default);
        };
        match value {
            JsonValue::String(name) if name == "online" => Ok(Channel::Online),
            JsonValue::String(name) if name == "in_store" => Ok(Channel::InStore),
            _ => Err(self.error("channel", "must be \"online\" or \"in_store\"")),
        }
    }

    fn lines(&self) -> Result<Vec<Line>, ParseError> {
        let entries = match self.required("lines")? {
            JsonValue::Array(entries) => entries,
            other => {
                return Err(self.error("lines", &format!("must be an array, not {}", other.kind())))
            }
        };
        entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                let JsonValue::Object(members) = entry else {
                    return Err(ParseError::new(format!(
                        "lines[{index}] must be an object, not {}",
                        entry.kind()
                    )));
                };
                let line = Fields {
                    members,
                    line: Some(index),
                };
                Ok(Line::new(line.sku()?, line.store()?, line.u32("qty")?))
            })
            .collect()
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

/// The answer line (without its newline) to an engine operation.
///
/// ```
/// use omnistock::replay::format_outcome;
/// use omnistock::{Error, ReservationId};
///
/// let answer = format_outcome(&Err(Error::UnknownReservation { id: ReservationId(7) }));
/// assert_eq!(
///     answer,
///     r#"{"ok":false,"error":"unknown_reservation","id":7,"message":"reservation 7 is unknown (never made, or forgotten after retention)"}"#
/// );
/// ```
#[must_use]
pub fn format_outcome(result: &Result<Outcome, Error>) -> String {
    match result {
        Ok(outcome) => format_success(outcome),
        Err(error) => format_error(error),
    }
}

/// The answer line (without its newline) to a line that could not be read:
/// `{"ok":false,"error":"parse","message":...}`.
#[must_use]
pub fn format_parse_error(error: &ParseError) -> String {
    let mut answer = JsonObject::new();
    answer.bool("ok", false);
    answer.string("error", "parse");
    answer.string("message", error.message());
    answer.finish()
}

fn format_success(outcome: &Outcome) -> String {
    let mut answer = JsonObject::new();
    answer.bool("ok", true);
    match outcome {
        Outcome::Level(level) => answer.raw("level", &level_json(level)),
        Outcome::Reservation(ack) => reservation_ack_fields(&mut answer, ack),
        Outcome::Info(info) => reservation_info_fields(&mut answer, info),
        Outcome::Expired(count) => answer.u64("expired", *count),
    }
    answer.finish()
}

fn level_json(level: &Level) -> String {
    let mut object = JsonObject::new();
    object.u64("on_hand", level.on_hand.into());
    object.u64("reserved", level.reserved.into());
    object.u64("safety_stock", level.safety_stock.into());
    object.u64("available_online", level.available_online.into());
    object.u64("available_in_store", level.available_in_store.into());
    object.finish()
}

fn reservation_ack_fields(answer: &mut JsonObject, ack: &ReservationAck) {
    answer.u64("id", ack.id.0);
    answer.string("state", ack.state.as_str());
    answer.bool("replayed", ack.replayed);
    if let Some(expires_at_ms) = ack.expires_at_ms {
        answer.u64("expires_at_ms", expires_at_ms);
    }
}

fn reservation_info_fields(answer: &mut JsonObject, info: &ReservationInfo) {
    answer.u64("id", info.id.0);
    answer.string("state", info.state.as_str());
    answer.string("channel", info.channel.as_str());
    answer.raw("lines", &lines_json(&info.lines));
    answer.u64("expires_at_ms", info.expires_at_ms);
}

/// `[{"sku":..,"store":..,"qty":..},...]`.
fn lines_json(lines: &[Line]) -> String {
    let lines: Vec<String> = lines
        .iter()
        .map(|line| {
            let mut object = JsonObject::new();
            object.u64("sku", line.sku.0);
            object.u64("store", line.store.0);
            object.u64("qty", line.qty.into());
            object.finish()
        })
        .collect();
    format!("[{}]", lines.join(","))
}

/// The input line (without its newline) that asks for `request`, in the
/// contract's replay format: [`parse_request`] reads it back as the same
/// request. Simulations and fuzz targets use it to print a failing history
/// as a script the replay tool runs.
///
/// ```
/// use omnistock::replay::{format_request, parse_request, Request};
/// use omnistock::{Command, ReservationId};
///
/// let request = Request::Command(Command::Extend { id: ReservationId(7), ttl_ms: 60_000 });
/// let line = format_request(&request);
/// assert_eq!(line, r#"{"op":"extend","id":7,"ttl_ms":60000}"#);
/// assert_eq!(parse_request(line.as_bytes()).unwrap(), Some(request));
/// ```
#[must_use]
pub fn format_request(request: &Request) -> String {
    let mut object = JsonObject::new();
    let command = match request {
        Request::Advance { ms } => {
            object.string("op", "advance");
            object.u64("ms", *ms);
            return object.finish();
        }
        Request::Command(command) => command,
    };
    let item = |object: &mut JsonObject, op: &str, sku: Sku, store: StoreId| {
        object.string("op", op);
        object.u64("sku", sku.0);
        object.u64("store", store.0);
    };
    match command {
        Command::Restock { sku, store, qty } => {
            item(&mut object, "restock", *sku, *store);
            object.u64("qty", (*qty).into());
        }
        Command::SetOnHand { sku, store, qty } => {
            item(&mut object, "set_on_hand", *sku, *store);
            object.u64("qty", (*qty).into());
        }
        Command::SetSafetyStock { sku, store, qty } => {
            item(&mut object, "set_safety_stock", *sku, *store);
            object.u64("qty", (*qty).into());
        }
        Command::Sell {
            sku,
            store,
            qty,
            channel,
        } => {
            item(&mut object, "sell", *sku, *store);
            object.u64("qty", (*qty).into());
            object.string("channel", channel.as_str());
        }
        Command::Level { sku, store } => item(&mut object, "level", *sku, *store),
        Command::Reserve {
            id,
            channel,
            ttl_ms,
            lines,
        } => {
            object.string("op", "reserve");
            object.u64("id", id.0);
            object.string("channel", channel.as_str());
            if let Some(ttl_ms) = ttl_ms {
                object.u64("ttl_ms", *ttl_ms);
            }
            object.raw("lines", &lines_json(lines));
        }
        Command::Commit { id } | Command::Release { id } | Command::Get { id } => {
            let op = match command {
                Command::Commit { .. } => "commit",
                Command::Release { .. } => "release",
                _ => "get",
            };
            object.string("op", op);
            object.u64("id", id.0);
        }
        Command::Extend { id, ttl_ms } => {
            object.string("op", "extend");
            object.u64("id", id.0);
            object.u64("ttl_ms", *ttl_ms);
        }
        Command::Expire => object.string("op", "expire"),
    }
    object.finish()
}

/// `{"ok":false,"error":<name>, <what the caller needs to react>, "message":..}`.
fn format_error(error: &Error) -> String {
    let mut answer = JsonObject::new();
    answer.bool("ok", false);
    answer.string("error", error.name());
    match error {
        Error::Invalid { .. } => {}
        Error::Overflow {
            sku,
            store,
            on_hand,
            requested,
        } => {
            answer.u64("sku", sku.0);
            answer.u64("store", store.0);
            answer.u64("on_hand", (*on_hand).into());
            answer.u64("requested", (*requested).into());
        }
        Error::BelowReserved { reserved, .. } => answer.u64("reserved", (*reserved).into()),
        Error::UnknownItem { sku, store } => {
            answer.u64("sku", sku.0);
            answer.u64("store", store.0);
        }
        Error::Insufficient {
            sku,
            store,
            requested,
            available,
        } => {
            answer.u64("sku", sku.0);
            answer.u64("store", store.0);
            answer.u64("requested", (*requested).into());
            answer.u64("available", (*available).into());
        }
        Error::UnknownReservation { id }
        | Error::AlreadyCommitted { id }
        | Error::AlreadyReleased { id }
        | Error::Expired { id }
        | Error::IdConflict { id } => answer.u64("id", id.0),
    }
    answer.string("message", &error.to_string());
    answer.finish()
}

/// Writes one JSON object, members in the order they are added.
struct JsonObject {
    text: String,
}

impl JsonObject {
    fn new() -> Self {
        JsonObject {
            text: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        write_json_string(&mut self.text, key);
        self.text.push(':');
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.text.push_str(if value { "true" } else { "false" });
    }

    fn u64(&mut self, key: &str, value: u64) {
        self.key(key);
        // Writing to a String cannot fail.
        let _ = write!(self.text, "{value}");
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        write_json_string(&mut self.text, value);
    }

    /// A member whose value is already JSON text.
    fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.text.push_str(json);
    }

    fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// Appends `value` as a JSON string: quotes, backslashes and control
/// characters escaped, everything else (including non-ASCII) as is.
fn write_json_string(out: &mut String, value: &str) {
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            control if u32::from(control) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// An engine driven by a replay script: an [`Inventory`] with the default
/// ttl and retention on a [`ManualClock`] that starts at 0 and moves only on
/// `advance` lines.
#[derive(Debug)]
pub struct Replayer {
    clock: Arc<ManualClock>,
    inventory: Inventory,
}

impl Replayer {
    /// A fresh engine at time 0 with no items and no reservations.
    #[must_use]
    pub fn new() -> Self {
        let clock = Arc::new(ManualClock::new());
        let inventory = Inventory::builder()
            .clock(Arc::clone(&clock) as Arc<dyn Clock>)
            .build();
        Replayer { clock, inventory }
    }

    /// The engine the script drives, for inspection after a replay.
    #[must_use]
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Applies one request line and returns its answer line (without the
    /// newline), or `None` for a blank line.
    pub fn handle_line(&mut self, line: &[u8]) -> Option<String> {
        let answer = match parse_request(line) {
            Ok(None) => return None,
            Ok(Some(Request::Command(command))) => format_outcome(&self.inventory.apply(&command)),
            Ok(Some(Request::Advance { ms })) => {
                let mut answer = JsonObject::new();
                answer.bool("ok", true);
                answer.u64("now_ms", self.clock.advance(ms));
                answer.finish()
            }
            Err(error) => format_parse_error(&error),
        };
        Some(answer)
    }
}

impl Default for Replayer {
    fn default() -> Self {
        Replayer::new()
    }
}

/// Replays a whole script on a fresh [`Replayer`]: reads `input` line by line
/// (as bytes, split on `\n`; a trailing `\r` is JSON whitespace), writes one
/// answer line per non-blank input line to `output`, flushing after each so
/// a driver that waits for every answer before sending the next line works.
/// Bad lines get a `parse` answer and never stop the replay.
///
/// # Errors
///
/// The first I/O error of `input` or `output`, which ends the replay early.
pub fn run<R: BufRead, W: Write>(mut input: R, mut output: W) -> io::Result<()> {
    let mut replayer = Replayer::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if let Some(answer) = replayer.handle_line(&line) {
            output.write_all(answer.as_bytes())?;
            output.write_all(b"\n")?;
            output.flush()?;
        }
    }
    output.flush()
}

/// A strict RFC 8259 JSON reader. Beyond the RFC it refuses duplicate keys
/// (the replay format makes them an error) and nesting deeper than
/// [`MAX_DEPTH`] (so hostile input cannot exhaust the stack).
mod json {
    use super::ParseError;
    use std::collections::HashSet;

    /// Deepest nesting of arrays and objects [`parse_json`] accepts; the
    /// top-level container counts as depth 1.
    pub const MAX_DEPTH: usize = 128;

    /// A JSON document as read by [`parse_json`].
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum JsonValue {
        /// `null`.
        Null,
        /// `true` or `false`.
        Bool(bool),
        /// A number, kept as its source text (valid JSON number grammar, e.g.
        /// `12`, `-0`, `1.5e3`), so callers decide what they accept.
        Number(String),
        /// A string with its escapes decoded. An unpaired surrogate escape
        /// (`"\ud800"`) decodes to U+FFFD.
        String(String),
        /// An array.
        Array(Vec<JsonValue>),
        /// An object's members in source order; keys are unique.
        Object(Vec<(String, JsonValue)>),
    }

    impl JsonValue {
        /// The JSON type name, for messages: `"null"`, `"a number"`...
        pub(super) fn kind(&self) -> &'static str {
            match self {
                JsonValue::Null => "null",
                JsonValue::Bool(_) => "a boolean",
                JsonValue::Number(_) => "a number",
                JsonValue::String(_) => "a string",
                JsonValue::Array(_) => "an array",
                JsonValue::Object(_) => "an object",
            }
        }
    }

    /// Reads one JSON document (any value at top level, surrounded by optional
    /// whitespace). Fails on invalid UTF-8, anything RFC 8259 does not allow
    /// (trailing text, leading zeros, `NaN`, raw control characters in
    /// strings...), duplicate keys in any object, and nesting deeper than
    /// [`MAX_DEPTH`].
    ///
    /// # Errors
    ///
    /// A [`ParseError`] naming the byte offset of the first problem (or of
    /// the first invalid UTF-8 byte).
    ///
    /// ```
    /// use omnistock::replay::{parse_json, JsonValue};
    ///
    /// assert_eq!(
    ///     parse_json(br#" {"a": [1, "\u00e9"]} "#).unwrap(),
    ///     JsonValue::Object(vec![(
    ///         "a".to_string(),
    ///         JsonValue::Array(vec![
    ///             JsonValue::Number("1".to_string()),
    ///             JsonValue::String("é".to_string()),
    ///         ]),
    ///     )])
    /// );
    /// assert!(parse_json(br#"{"a":1,"a":2}"#).is_err());
    /// ```
    pub fn parse_json(input: &[u8]) -> Result<JsonValue, ParseError> {
        let text = std::str::from_utf8(input).map_err(|error| {
            ParseError::new(format!(
                "invalid JSON: not UTF-8 at byte {}",
                error.valid_up_to()
            ))
        })?;
        let mut reader = Reader {
            text,
            pos: 0,
            depth: 0,
        };
        reader.skip_whitespace();
        let value = reader.value()?;
        reader.skip_whitespace();
        if reader.pos != text.len() {
            return Err(reader.error("unexpected text after the JSON value"));
        }
        Ok(value)
    }

    /// The four whitespace bytes of RFC 8259.
    pub(super) fn is_whitespace(byte: u8) -> bool {
        matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
    }

    /// A recursive-descent reader over text already known to be UTF-8. `pos`
    /// is always on a char boundary: it only moves past ASCII bytes or whole
    /// chars.
    struct Reader<'a> {
        text: &'a str,
        pos: usize,
        depth: usize,
    }

    impl Reader<'_> {
        fn error(&self, problem: &str) -> ParseError {
            ParseError::new(format!("invalid JSON at byte {}: {problem}", self.pos))
        }

        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.pos).copied()
        }

        fn skip_whitespace(&mut self) {
            while self.peek().is_some_and(is_whitespace) {
                self.pos += 1;
            }
        }

        /// Consumes `byte` (ASCII) or fails with `expected`.
        fn expect(&mut self, byte: u8, expected: &str) -> Result<(), ParseError> {
            if self.peek() == Some(byte) {
                self.pos += 1;
                Ok(())
            } else {
                Err(self.error(expected))
            }
        }

        fn value(&mut self) -> Result<JsonValue, ParseError> {
            match self.peek() {
                None => Err(self.error("unexpected end of input, expected a value")),
                Some(b'{') => self.nested(Self::object),
                Some(b'[') => self.nested(Self::array),
                Some(b'"') => Ok(JsonValue::String(String::from_utf16_lossy(&self.string()?))),
                Some(b't') => self.literal("true", JsonValue::Bool(true)),
                Some(b'f') => self.literal("false", JsonValue::Bool(false)),
                Some(b'n') => self.literal("null", JsonValue::Null),
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(_) => Err(self.error("expected a value")),
            }
        }

        /// Runs `container` one level deeper, refusing to pass [`MAX_DEPTH`].
        fn nested(
            &mut self,
            container: fn(&mut Self) -> Result<JsonValue, ParseError>,
        ) -> Result<JsonValue, ParseError> {
            if self.depth == MAX_DEPTH {
                return Err(self.error(&format!("nested deeper than {MAX_DEPTH} levels")));
            }
            self.depth += 1;
            let value = container(self);
            self.depth -= 1;
            value
        }

        fn literal(&mut self, word: &str, value: JsonValue) -> Result<JsonValue, ParseError> {
            if self.text[self.pos..].starts_with(word) {
                self.pos += word.len();
                Ok(value)
            } else {
                Err(self.error("expected a value"))
            }
        }

        fn object(&mut self) -> Result<JsonValue, ParseError> {
            self.expect(b'{', "expected '{'")?;
            let mut members = Vec::new();
            // Keys compared as UTF-16 code units, the exact JSON string value:
            // "\ud800" and "\ufffd" are different keys even though both read
            // as U+FFFD.
            let mut seen: HashSet<Vec<u16>> = HashSet::new();
            self.skip_whitespace();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(JsonValue::Object(members));
            }
            loop {
                self.skip_whitespace();
                let key_start = self.pos;
                if self.peek() != Some(b'"') {
                    return Err(self.error("expected a string key"));
                }
                let key = self.string()?;
                let name = String::from_utf16_lossy(&key);
                if !seen.insert(key) {
                    self.pos = key_start;
                    return Err(self.error("duplicate key"));
                }
                self.skip_whitespace();
                self.expect(b':', "expected ':' after a key")?;
                self.skip_whitespace();
                let value = self.value()?;
                members.push((name, value));
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        return Ok(JsonValue::Object(members));
                    }
                    _ => return Err(self.error("expected ',' or '}' in an object")),
                }
            }
        }

        fn array(&mut self) -> Result<JsonValue, ParseError> {
            self.expect(b'[', "expected '['")?;
            let mut elements = Vec::new();
            self.skip_whitespace();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(JsonValue::Array(elements));
            }
            loop {
                self.skip_whitespace();
                elements.push(self.value()?);
                self.skip_whitespace();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        return Ok(JsonValue::Array(elements));
                    }
                    _ => return Err(self.error("expected ',' or ']' in an array")),
                }
            }
        }

        /// A string's value as UTF-16 code units, which is what JSON strings
        /// are: escapes may spell surrogates, paired or not.
        fn string(&mut self) -> Result<Vec<u16>, ParseError> {
            self.expect(b'"', "expected '\"'")?;
            let mut units = Vec::new();
            loop {
                let Some(ch) = self.text[self.pos..].chars().next() else {
                    return Err(self.error("unterminated string"));
                };
                match ch {
                    '"' => {
                        self.pos += 1;
                        return Ok(units);
                    }
                    '\\' => {
                        self.pos += 1;
                        self.escape(&mut units)?;
                    }
                    control if u32::from(control) < 0x20 => {
                        return Err(self.error("control character in a string"));
                    }
                    other => {
                        let mut buffer = [0; 2];
                        units.extend_from_slice(other.encode_utf16(&mut buffer));
                        self.pos += other.len_utf8();
                    }
                }
            }
        }

        /// The escape after a backslash.
        fn escape(&mut self, units: &mut Vec<u16>) -> Result<(), ParseError> {
            let unit = match self.peek() {
                Some(b'"') => u16::from(b'"'),
                Some(b'\\') => u16::from(b'\\'),
                Some(b'/') => u16::from(b'/'),
                Some(b'b') => 0x08,
                Some(b'f') => 0x0c,
                Some(b'n') => u16::from(b'\n'),
                Some(b'r') => u16::from(b'\r'),
                Some(b't') => u16::from(b'\t'),
                Some(b'u') => {
                    // Checked to be hex digits first: `from_str_radix` alone
                    // would also take a sign.
                    let unit = self
                        .text
                        .as_bytes()
                        .get(self.pos + 1..self.pos + 5)
                        .filter(|digits| digits.iter().all(u8::is_ascii_hexdigit))
                        .and_then(|digits| std::str::from_utf8(digits).ok())
                        .and_then(|digits| u16::from_str_radix(digits, 16).ok())
                        .ok_or_else(|| self.error("expected four hex digits after \\u"))?;
                    units.push(unit);
                    self.pos += 5;
                    return Ok(());
                }
                _ => return Err(self.error("invalid escape in a string")),
            };
            units.push(unit);
            self.pos += 1;
            Ok(())
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as text.
        fn number(&mut self) -> Result<JsonValue, ParseError> {
            let start = self.pos;
            if self.peek() == Some(b'-') {
                self.pos += 1;
            }
            match self.peek() {
                Some(b'0') => {
                    self.pos += 1;
                    if self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                        return Err(self.error("leading zero in a number"));
                    }
                }
                Some(b'1'..=b'9') => self.digits(),
                _ => return Err(self.error("expected a digit")),
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
                self.required_digits()?;
            }
            if matches!(self.peek(), Some(b'e' | b'E')) {
                self.pos += 1;
                if matches!(self.peek(), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
                self.required_digits()?;
            }
            Ok(JsonValue::Number(self.text[start..self.pos].to_string()))
        }

        fn digits(&mut self) {
            while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                self.pos += 1;
            }
        }

        fn required_digits(&mut self) -> Result<(), ParseError> {
            if !self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                return Err(self.error("expected a digit"));
            }
            self.digits();
            Ok(())
        }
    }
}
