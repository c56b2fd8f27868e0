//! The JSON rules of the replay format that serde_json does not enforce on
//! its own. serde_json checks the syntax (RFC 8259: no trailing text, no
//! leading zeros, no raw control characters in strings...); this module adds
//! what the contract asks beyond it: the bytes are UTF-8 (checked first, so
//! the message names the byte), no object anywhere has a key twice, and
//! nothing nests deeper than [`MAX_DEPTH`].
//!
//! Values are handled as [`RawValue`]s, their source text: numbers stay text
//! (so `1.0`, `1e2` and `-0` can be told from integers, and a number too
//! large for any type is still valid JSON in a field the op ignores), and
//! keys are compared as the exact code units they spell (`"\ud800"` and
//! `"\ufffd"` are different keys).

use super::{quoted_excerpt, ParseError};
use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::collections::HashSet;
use std::fmt;

/// Deepest nesting of arrays and objects a request line may have; the
/// request object itself counts as depth 1.
pub const MAX_DEPTH: usize = 128;

/// The JSON type of a value, for messages and dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    /// The type of `raw`, read from its first byte (a raw value has no
    /// surrounding whitespace).
    pub(super) fn of(raw: &RawValue) -> Kind {
        match raw.get().as_bytes().first() {
            Some(b'n') => Kind::Null,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'"') => Kind::String,
            Some(b'[') => Kind::Array,
            Some(b'{') => Kind::Object,
            _ => Kind::Number,
        }
    }

    /// The type's name in a message: `"null"`, `"a number"`...
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// The four whitespace bytes of RFC 8259.
pub(super) fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// Reads one JSON document (any value, surrounded by optional whitespace)
/// and checks the whole of it: UTF-8, RFC 8259 syntax, unique keys in every
/// object, nesting at most [`MAX_DEPTH`].
///
/// # Errors
///
/// A [`ParseError`] describing the first problem found.
pub(super) fn document(line: &[u8]) -> Result<&RawValue, ParseError> {
    let text = std::str::from_utf8(line).map_err(|error| {
        ParseError::new(format!(
            "invalid JSON: not UTF-8 at byte {}",
            error.valid_up_to()
        ))
    })?;
    let raw: &RawValue = serde_json::from_str(text).map_err(|error| invalid(error, text, 0))?;
    check(text, raw, 0)?;
    Ok(raw)
}

/// Checks the containers in `raw`, a value of `text` that sits inside
/// `depth` containers. The recursion stops at [`MAX_DEPTH`], so hostile
/// nesting cannot exhaust the stack (serde_json reads a raw value without
/// recursing).
fn check(text: &str, raw: &RawValue, depth: usize) -> Result<(), ParseError> {
    let kind = Kind::of(raw);
    if !matches!(kind, Kind::Array | Kind::Object) {
        return Ok(());
    }
    // `raw` is a slice of `text`: its offset places messages in the line.
    let offset = (raw.get().as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    if depth == MAX_DEPTH {
        return Err(ParseError::new(format!(
            "invalid JSON at byte {offset}: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    if kind == Kind::Object {
        for (_, value) in members_at(raw, offset)? {
            check(text, value, depth + 1)?;
        }
    } else {
        for value in elements_at(raw, offset)? {
            check(text, value, depth + 1)?;
        }
    }
    Ok(())
}

/// A serde_json error about `text`, which starts at byte `offset` of the
/// line, as the message of a `parse` answer: the byte where serde_json
/// stopped, then what it found wrong.
fn invalid(error: serde_json::Error, text: &str, offset: usize) -> ParseError {
    let message = error.to_string();
    // serde_json appends the position to the problem, as a line (counted on
    // `\n`, which a script line does not hold but any JSON text may) and
    // the column of the byte after the one it stopped on.
    let problem = match message.rsplit_once(" at line ") {
        Some((problem, _)) if error.line() > 0 => problem,
        _ => &message,
    };
    // serde_json's words for a missing value and a misspelt true, false or
    // null.
    let problem = match problem {
        "expected value" | "expected ident" => "expected a value",
        other => other,
    };
    let line_start = match error.line() {
        0 | 1 => 0,
        line => text
            .bytes()
            .enumerate()
            .filter(|&(_, byte)| byte == b'\n')
            .nth(line - 2)
            .map_or(0, |(index, _)| index + 1),
    };
    let byte = offset + line_start + error.column().saturating_sub(1);
    ParseError::new(format!("invalid JSON at byte {byte}: {problem}"))
}

/// A key as the bytes serde_json decodes it to without validating
/// surrogates: UTF-8, with a lone surrogate escape as its WTF-8 bytes. Equal
/// bytes mean equal code units.
pub(super) type Key = Vec<u8>;

/// The members of the object `raw`, in source order.
///
/// # Errors
///
/// When `raw` is not an object, or has a key twice.
pub(super) fn members(raw: &RawValue) -> Result<Vec<(Key, &RawValue)>, ParseError> {
    members_at(raw, 0)
}

fn members_at(raw: &RawValue, offset: usize) -> Result<Vec<(Key, &RawValue)>, ParseError> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    deserializer
        .deserialize_map(MembersVisitor)
        .map_err(|error| invalid(error, raw.get(), offset))
}

/// The elements of the array `raw`, in order.
///
/// # Errors
///
/// When `raw` is not an array.
pub(super) fn elements(raw: &RawValue) -> Result<Vec<&RawValue>, ParseError> {
    elements_at(raw, 0)
}

fn elements_at(raw: &RawValue, offset: usize) -> Result<Vec<&RawValue>, ParseError> {
    serde_json::from_str(raw.get()).map_err(|error| invalid(error, raw.get(), offset))
}

/// The string `raw` decoded, a lone surrogate escape read as U+FFFD.
///
/// # Errors
///
/// When `raw` is not a string.
pub(super) fn string(raw: &RawValue) -> Result<String, ParseError> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    let bytes = deserializer
        .deserialize_bytes(BytesVisitor)
        .map_err(|error| invalid(error, raw.get(), 0))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<(Key, &'de RawValue)>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if !seen.insert(key.clone()) {
                let name = String::from_utf8_lossy(&key);
                return Err(de::Error::custom(format!(
                    "duplicate key {}",
                    quoted_excerpt(&name)
                )));
            }
            members.push((key, map.next_value::<&'de RawValue>()?));
        }
        Ok(members)
    }
}

/// Reads a key through `deserialize_bytes`, which keeps lone surrogates.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON string")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
        Ok(text.as_bytes().to_vec())
    }
}
