//! Request lines: a line of a replay script to a [`Request`] and back.
//!
//! Reading is done in two steps. The fields an op takes are looked up by
//! name and checked one by one, in a fixed order, against the contract's
//! rules (which serde alone does not give: no sign, fraction or exponent on
//! an integer, `null` a wrong type), so a `parse` answer names the field and
//! what is wrong with it. The checked fields alone (fields an op does not
//! take are ignored whatever their valid JSON value) are then deserialized
//! into a [`Command`] by its derived serde form, which is thereby the replay
//! format. Writing a request is its serde form.

use super::strict::{self, Key, Kind};
use super::{quoted_excerpt, ParseError, Refused, Request};
use crate::command::Command;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Reads one request line. `Ok(None)` for a blank line (empty or JSON
/// whitespace only), which the replay tool skips without answering.
///
/// Quantities of 0, empty `lines` and a `ttl_ms` of 0 parse fine: refusing
/// them as `invalid` is the engine's job, not the parser's.
///
/// # Errors
///
/// A [`ParseError`] when the line is not valid JSON (invalid UTF-8, a
/// duplicate key in any object, nesting deeper than
/// [`MAX_DEPTH`](super::MAX_DEPTH)), is not an object, has no string `op` or
/// an unknown one, or lacks a field the op takes or has it with the wrong
/// type or out of range. Fields the op does not take are ignored whatever
/// their value.
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
    if line.iter().all(|&byte| strict::is_whitespace(byte)) {
        return Ok(None);
    }
    let document = strict::document(line)?;
    if Kind::of(document) != Kind::Object {
        return Err(ParseError::new("a request must be a JSON object"));
    }
    let members = strict::members(document)?;
    let fields = Fields {
        members: &members,
        line: None,
    };
    let op = fields.op()?;
    let basket = op == "sell" && fields.get("lines").is_some();
    let in_campaign =
        op == "reserve" && (fields.get("campaign").is_some() || fields.get("customer").is_some());
    let taken = if basket {
        Some(BASKET)
    } else if in_campaign {
        Some(CAMPAIGN_RESERVE)
    } else {
        fields_of(&op)
    };
    let Some(taken) = taken else {
        return Err(ParseError::new(format!(
            "unknown op {}",
            quoted_excerpt(&op)
        )));
    };
    let mut object = Map::new();
    object.insert("op".to_string(), Value::String(op.clone()));
    fields.checked(taken, &mut object)?;
    // Fields that the op cannot take together with the others: the line
    // reads, and the request is refused as invalid before the engine.
    let stray: Vec<&'static str> = stray_fields(&op, &object)
        .iter()
        .copied()
        .filter(|name| fields.get(name).is_some())
        .collect();
    if basket {
        object.insert("op".to_string(), Value::String("sell_lines".to_string()));
    }
    if in_campaign {
        object.insert(
            "op".to_string(),
            Value::String("reserve_campaign".to_string()),
        );
    }
    let object = Value::Object(object);
    if !stray.is_empty() {
        return Command::deserialize(object)
            .map(|command| Some(Request::Refused(Refused { command, stray })))
            .map_err(|error| ParseError::new(error.to_string()));
    }
    let request = if op == "advance" {
        Advance::deserialize(object).map(|advance| Request::Advance { ms: advance.ms })
    } else {
        Command::deserialize(object).map(Request::Command)
    };
    // The fields were checked above; a failure here would be a field table
    // that disagrees with the serde form, still answered as a parse error.
    request
        .map(Some)
        .map_err(|error| ParseError::new(error.to_string()))
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
    serde_json::to_string(request).expect("a request serializes: string keys, no custom errors")
}

/// The fields that make a request of `op` with these checked fields
/// invalid when present, whatever their value: `sku`, `store` and `qty`
/// beside a basket's `lines`, `campaign` and `customer` on `reserve_any`.
fn stray_fields(op: &str, checked: &Map<String, Value>) -> &'static [&'static str] {
    match op {
        "sell" if checked.contains_key("lines") => &["sku", "store", "qty"],
        "reserve_any" => &["campaign", "customer"],
        _ => &[],
    }
}

/// The fields of `advance`, the one request that is not a [`Command`].
#[derive(Deserialize)]
struct Advance {
    ms: u64,
}

/// What a field holds, checked by [`Fields::value`].
#[derive(Clone, Copy, Debug)]
enum Type {
    /// An integer in `0..=u64::MAX`, plain digits.
    U64,
    /// An integer in `0..=u32::MAX`, plain digits.
    U32,
    /// `"online"` or `"in_store"`.
    Channel,
    /// An array of `{"sku","store","qty"}` objects.
    Lines,
    /// `true` or `false`.
    Bool,
    /// An array of store ids (`u64`).
    Stores,
}

/// A field an op takes.
#[derive(Clone, Copy, Debug)]
struct Field {
    name: &'static str,
    kind: Type,
    required: bool,
}

const fn required(name: &'static str, kind: Type) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

const fn optional(name: &'static str, kind: Type) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

const SKU: Field = required("sku", Type::U64);
const STORE: Field = required("store", Type::U64);
const QTY: Field = required("qty", Type::U32);
const ID: Field = required("id", Type::U64);
const CHANNEL: Field = optional("channel", Type::Channel);
const TTL_MS: Field = required("ttl_ms", Type::U64);
const OPTIONAL_TTL_MS: Field = optional("ttl_ms", Type::U64);
const LINES: Field = required("lines", Type::Lines);
const MS: Field = required("ms", Type::U64);
const EXPECT: Field = optional("expect", Type::U32);
const OPTIONAL_LINES: Field = optional("lines", Type::Lines);
const STORES: Field = required("stores", Type::Stores);
const SPLIT: Field = optional("split", Type::Bool);

const CAMPAIGN: Field = required("campaign", Type::U64);
const OPTIONAL_CAMPAIGN: Field = optional("campaign", Type::U64);
const OPTIONAL_CUSTOMER: Field = optional("customer", Type::U64);
const QUOTA: Field = required("quota", Type::U32);
const PER_CUSTOMER: Field = required("per_customer", Type::U32);

/// The fields of a `reserve` with `campaign` or `customer` (either alone
/// reads, and is refused as invalid by the engine).
const CAMPAIGN_RESERVE: &[Field] = &[
    ID,
    CHANNEL,
    OPTIONAL_TTL_MS,
    LINES,
    OPTIONAL_CAMPAIGN,
    OPTIONAL_CUSTOMER,
];

/// The fields of a `sell` with `lines` (a POS basket).
const BASKET: &[Field] = &[LINES, CHANNEL];

/// The fields of one entry of `lines`.
const LINE: &[Field] = &[SKU, STORE, QTY];

/// The fields `op` takes, in the order they are checked; `None` for an
/// unknown op.
fn fields_of(op: &str) -> Option<&'static [Field]> {
    Some(match op {
        "restock" | "set_safety_stock" => &[SKU, STORE, QTY],
        "sell" => &[SKU, STORE, QTY, CHANNEL],
        "set_on_hand" => &[SKU, STORE, QTY, EXPECT],
        "level" => &[SKU, STORE],
        "reserve" => &[ID, CHANNEL, OPTIONAL_TTL_MS, LINES],
        "commit" => &[ID, OPTIONAL_LINES],
        "release" | "get" => &[ID],
        "extend" => &[ID, TTL_MS],
        "expire" => &[],
        "advance" => &[MS],
        "reserve_any" => &[ID, SKU, QTY, STORES, SPLIT, CHANNEL, OPTIONAL_TTL_MS],
        "check" | "alerts" => &[],
        "campaign" => &[CAMPAIGN, SKU, STORE, QUOTA, PER_CUSTOMER],
        "set_reorder_point" => &[SKU, STORE, QTY],
        _ => return None,
    })
}

/// The members of one JSON object of a request, read by field name. Keys are
/// unique (checked when the line was read), so the first match is the only
/// one. `line` names the entry of `lines` being read, for messages.
struct Fields<'a, 'raw> {
    members: &'a [(Key, &'raw RawValue)],
    line: Option<usize>,
}

impl<'raw> Fields<'_, 'raw> {
    fn get(&self, name: &str) -> Option<&'raw RawValue> {
        self.members
            .iter()
            .find(|(key, _)| key == name.as_bytes())
            .map(|(_, value)| *value)
    }

    /// A message about field `name`, prefixed with the line it sits in.
    fn error(&self, name: &str, problem: &str) -> ParseError {
        match self.line {
            Some(index) => ParseError::new(format!("lines[{index}]: field \"{name}\" {problem}")),
            None => ParseError::new(format!("field \"{name}\" {problem}")),
        }
    }

    /// The `op` field: a string.
    fn op(&self) -> Result<String, ParseError> {
        let value = self
            .get("op")
            .ok_or_else(|| self.error("op", "is missing"))?;
        match Kind::of(value) {
            Kind::String => strict::string(value),
            other => Err(self.error("op", &format!("must be a string, not {}", other.name()))),
        }
    }

    /// Checks each of `taken` in order and copies those present to `object`.
    fn checked(&self, taken: &[Field], object: &mut Map<String, Value>) -> Result<(), ParseError> {
        for field in taken {
            match self.get(field.name) {
                Some(value) => {
                    let value = self.value(field, value)?;
                    object.insert(field.name.to_string(), value);
                }
                None if field.required => return Err(self.error(field.name, "is missing")),
                None => {}
            }
        }
        Ok(())
    }

    fn value(&self, field: &Field, value: &RawValue) -> Result<Value, ParseError> {
        let name = field.name;
        match field.kind {
            Type::U64 => self.unsigned(name, value, u64::MAX).map(Value::from),
            Type::U32 => self.unsigned(name, value, u32::MAX.into()).map(Value::from),
            Type::Channel => serde_json::from_str::<crate::types::Channel>(value.get())
                .map(|channel| Value::from(channel.as_str()))
                .map_err(|_| self.error(name, "must be \"online\" or \"in_store\"")),
            Type::Lines => self.lines(name, value),
            Type::Bool => match Kind::of(value) {
                Kind::Bool => Ok(Value::Bool(value.get() == "true")),
                other => Err(self.error(name, &format!("must be a boolean, not {}", other.name()))),
            },
            Type::Stores => self.stores(name, value),
        }
    }

    /// `stores`: an array of store ids.
    fn stores(&self, name: &str, value: &RawValue) -> Result<Value, ParseError> {
        let kind = Kind::of(value);
        if kind != Kind::Array {
            return Err(self.error(name, &format!("must be an array, not {}", kind.name())));
        }
        strict::elements(value)?
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                self.unsigned(&format!("{name}[{index}]"), entry, u64::MAX)
                    .map(Value::from)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    }

    /// The field as an unsigned integer of at most `max`. The contract allows
    /// only plain digits: no sign (not even `-0`), fraction or exponent, even
    /// where the value would be a whole number (`1.0`, `1e2`).
    fn unsigned(&self, name: &str, value: &RawValue, max: u64) -> Result<u64, ParseError> {
        let kind = Kind::of(value);
        if kind != Kind::Number {
            return Err(self.error(name, &format!("must be a number, not {}", kind.name())));
        }
        let text = value.get();
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

    /// `lines`: an array of objects, each checked as [`LINE`] says.
    fn lines(&self, name: &str, value: &RawValue) -> Result<Value, ParseError> {
        let kind = Kind::of(value);
        if kind != Kind::Array {
            return Err(self.error(name, &format!("must be an array, not {}", kind.name())));
        }
        strict::elements(value)?
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                let kind = Kind::of(entry);
                if kind != Kind::Object {
                    return Err(ParseError::new(format!(
                        "lines[{index}] must be an object, not {}",
                        kind.name()
                    )));
                }
                let members = strict::members(entry)?;
                let line = Fields {
                    members: &members,
                    line: Some(index),
                };
                let mut object = Map::new();
                line.checked(LINE, &mut object)?;
                Ok(Value::Object(object))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array)
    }
}
