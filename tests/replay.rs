//! The replay format of `shared/SEMANTICS.md`: one test per parsing rule, the
//! answer formats, and a golden script (`tests/replay/basic.jsonl`) whose
//! expected answers were derived by hand from the contract, not recorded from
//! the engine. The test compares answers as JSON (key order and extra keys
//! free, as the contract allows); CI also checks the exact bytes with
//!
//! ```text
//! cargo run --release --example replay < tests/replay/basic.jsonl | diff - tests/replay/basic.expected.jsonl
//! ```
//!
//! When they disagree, find which of the engine and the expected line breaks
//! the contract before changing the expected file.

use omnistock::replay::{
    format_outcome, format_parse_error, parse_json, parse_request, run, JsonValue, ParseError,
    Replayer, Request, MAX_DEPTH,
};
use omnistock::{
    Channel, Command, Error, Level, Line, Outcome, ReservationAck, ReservationId, ReservationInfo,
    ReservationState, Sku, StoreId,
};

fn command(line: &str) -> Command {
    match parse_request(line.as_bytes()) {
        Ok(Some(Request::Command(command))) => command,
        other => panic!("{line}: expected a command, got {other:?}"),
    }
}

fn parse_error(line: &[u8]) -> ParseError {
    match parse_request(line) {
        Err(error) => error,
        Ok(request) => panic!(
            "{}: expected a parse error, got {request:?}",
            String::from_utf8_lossy(line)
        ),
    }
}

fn assert_parse_error(line: &str) {
    parse_error(line.as_bytes());
}

fn number(text: &str) -> JsonValue {
    JsonValue::Number(text.to_string())
}

// ---------------------------------------------------------------- requests

#[test]
fn every_v1_op_parses_with_exact_field_names() {
    assert_eq!(
        command(r#"{"op":"restock","sku":1,"store":2,"qty":10}"#),
        Command::Restock {
            sku: Sku(1),
            store: StoreId(2),
            qty: 10
        }
    );
    assert_eq!(
        command(r#"{"op":"set_on_hand","sku":1,"store":2,"qty":0}"#),
        Command::SetOnHand {
            sku: Sku(1),
            store: StoreId(2),
            qty: 0
        }
    );
    assert_eq!(
        command(r#"{"op":"set_safety_stock","sku":1,"store":2,"qty":2}"#),
        Command::SetSafetyStock {
            sku: Sku(1),
            store: StoreId(2),
            qty: 2
        }
    );
    assert_eq!(
        command(r#"{"op":"sell","sku":1,"store":2,"qty":1,"channel":"online"}"#),
        Command::Sell {
            sku: Sku(1),
            store: StoreId(2),
            qty: 1,
            channel: Channel::Online
        }
    );
    assert_eq!(
        command(r#"{"op":"level","sku":1,"store":2}"#),
        Command::Level {
            sku: Sku(1),
            store: StoreId(2)
        }
    );
    assert_eq!(
        command(
            r#"{"op":"reserve","id":7,"channel":"in_store","ttl_ms":60000,"lines":[{"sku":1,"store":2,"qty":2},{"sku":3,"store":4,"qty":5}]}"#
        ),
        Command::Reserve {
            id: ReservationId(7),
            channel: Channel::InStore,
            ttl_ms: Some(60_000),
            lines: vec![
                Line::new(Sku(1), StoreId(2), 2),
                Line::new(Sku(3), StoreId(4), 5)
            ],
        }
    );
    assert_eq!(
        command(r#"{"op":"commit","id":7}"#),
        Command::Commit {
            id: ReservationId(7)
        }
    );
    assert_eq!(
        command(r#"{"op":"release","id":7}"#),
        Command::Release {
            id: ReservationId(7)
        }
    );
    assert_eq!(
        command(r#"{"op":"extend","id":7,"ttl_ms":60000}"#),
        Command::Extend {
            id: ReservationId(7),
            ttl_ms: 60_000
        }
    );
    assert_eq!(
        command(r#"{"op":"get","id":7}"#),
        Command::Get {
            id: ReservationId(7)
        }
    );
    assert_eq!(command(r#"{"op":"expire"}"#), Command::Expire);
    assert_eq!(
        parse_request(br#"{"op":"advance","ms":1000}"#),
        Ok(Some(Request::Advance { ms: 1000 }))
    );
}

#[test]
fn channel_defaults_to_online_for_reserve_and_in_store_for_sell() {
    assert_eq!(
        command(r#"{"op":"reserve","id":1,"lines":[{"sku":1,"store":2,"qty":1}]}"#),
        Command::Reserve {
            id: ReservationId(1),
            channel: Channel::Online,
            ttl_ms: None,
            lines: vec![Line::new(Sku(1), StoreId(2), 1)],
        }
    );
    assert_eq!(
        command(r#"{"op":"sell","sku":1,"store":2,"qty":1}"#),
        Command::Sell {
            sku: Sku(1),
            store: StoreId(2),
            qty: 1,
            channel: Channel::InStore
        }
    );
}

#[test]
fn values_the_engine_refuses_still_parse() {
    // qty 0, no lines and ttl 0 are `invalid` answers from the engine, not
    // parse errors.
    assert_eq!(
        command(r#"{"op":"restock","sku":0,"store":0,"qty":0}"#),
        Command::Restock {
            sku: Sku(0),
            store: StoreId(0),
            qty: 0
        }
    );
    assert_eq!(
        command(r#"{"op":"reserve","id":1,"ttl_ms":0,"lines":[]}"#),
        Command::Reserve {
            id: ReservationId(1),
            channel: Channel::Online,
            ttl_ms: Some(0),
            lines: vec![],
        }
    );
    assert_eq!(
        command(r#"{"op":"extend","id":1,"ttl_ms":0}"#),
        Command::Extend {
            id: ReservationId(1),
            ttl_ms: 0
        }
    );
}

#[test]
fn range_limits_are_inclusive() {
    assert_eq!(
        command(
            r#"{"op":"restock","sku":18446744073709551615,"store":18446744073709551615,"qty":4294967295}"#
        ),
        Command::Restock {
            sku: Sku(u64::MAX),
            store: StoreId(u64::MAX),
            qty: u32::MAX
        }
    );
    assert_eq!(
        parse_request(br#"{"op":"advance","ms":18446744073709551615}"#),
        Ok(Some(Request::Advance { ms: u64::MAX }))
    );
}

#[test]
fn blank_lines_are_skipped() {
    for line in [&b""[..], b" ", b"\t \r", b"\r", b"\n"] {
        assert_eq!(parse_request(line), Ok(None), "{line:?}");
    }
    let mut replayer = Replayer::new();
    assert_eq!(replayer.handle_line(b"  \t\r"), None);
}

#[test]
fn whitespace_around_and_inside_the_object_is_allowed() {
    assert_eq!(
        command(" \t{ \"op\" : \"get\" ,\r\n \"id\" : 3 }\r"),
        Command::Get {
            id: ReservationId(3)
        }
    );
}

#[test]
fn fields_the_op_does_not_take_are_ignored_whatever_their_value() {
    assert_eq!(
        command(
            r#"{"op":"level","sku":1,"store":2,"qty":-1.5e3,"channel":null,"id":"x","lines":{},"ttl_ms":[true,false,{"deep":[null]}]}"#
        ),
        Command::Level {
            sku: Sku(1),
            store: StoreId(2)
        }
    );
    assert_eq!(
        command(r#"{"op":"expire","sku":"all","ms":-0}"#),
        Command::Expire
    );
    // Extra keys inside a line object are ignored too.
    assert_eq!(
        command(
            r#"{"op":"reserve","id":1,"lines":[{"sku":1,"store":2,"qty":1,"note":null,"price":9.99}]}"#
        ),
        Command::Reserve {
            id: ReservationId(1),
            channel: Channel::Online,
            ttl_ms: None,
            lines: vec![Line::new(Sku(1), StoreId(2), 1)],
        }
    );
}

#[test]
fn duplicate_top_level_key_is_a_parse_error() {
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":1,"qty":1}"#);
    assert_parse_error(r#"{"op":"expire","op":"expire"}"#);
    // Same key spelled with an escape.
    assert_parse_error(r#"{"op":"get","id":1,"\u0069d":1}"#);
}

#[test]
fn duplicate_key_in_a_nested_object_is_a_parse_error() {
    assert_parse_error(r#"{"op":"level","sku":1,"store":2,"extra":{"a":1,"a":1}}"#);
    assert_parse_error(r#"{"op":"reserve","id":1,"lines":[{"sku":1,"store":2,"qty":1,"sku":1}]}"#);
    assert_parse_error(r#"{"op":"expire","x":[[{"k":{"z":0,"z":0}}]]}"#);
}

#[test]
fn keys_that_only_look_alike_are_not_duplicates() {
    // A lone surrogate reads as U+FFFD but is a different key from U+FFFD.
    assert!(parse_json(br#"{"\ud800":1,"\ufffd":2}"#).is_ok());
    assert!(parse_json(br#"{"a":{"a":1},"b":{"a":1}}"#).is_ok());
}

#[test]
fn minus_zero_is_a_parse_error() {
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":-0}"#);
    assert_parse_error(r#"{"op":"get","id":-0}"#);
}

#[test]
fn fraction_is_a_parse_error_even_when_whole() {
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":1.0}"#);
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":1.5}"#);
    assert_parse_error(r#"{"op":"advance","ms":0.0}"#);
}

#[test]
fn exponent_is_a_parse_error_even_when_whole() {
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":1e3}"#);
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":1E3}"#);
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":10e+0}"#);
    assert_parse_error(r#"{"op":"get","id":1e-0}"#);
}

#[test]
fn negative_number_is_a_parse_error() {
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":-1}"#);
    assert_parse_error(r#"{"op":"restock","sku":-1,"store":2,"qty":1}"#);
    assert_parse_error(r#"{"op":"advance","ms":-5}"#);
}

#[test]
fn qty_past_u32_is_a_parse_error() {
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":4294967296}"#);
    assert_parse_error(r#"{"op":"reserve","id":1,"lines":[{"sku":1,"store":2,"qty":4294967296}]}"#);
}

#[test]
fn u64_fields_past_u64_are_a_parse_error() {
    assert_parse_error(r#"{"op":"restock","sku":18446744073709551616,"store":2,"qty":1}"#);
    assert_parse_error(r#"{"op":"restock","sku":1,"store":18446744073709551616,"qty":1}"#);
    assert_parse_error(r#"{"op":"get","id":18446744073709551616}"#);
    assert_parse_error(r#"{"op":"advance","ms":18446744073709551616}"#);
    assert_parse_error(r#"{"op":"extend","id":1,"ttl_ms":18446744073709551616}"#);
    assert_parse_error(
        r#"{"op":"reserve","id":1,"ttl_ms":99999999999999999999999999,"lines":[{"sku":1,"store":2,"qty":1}]}"#,
    );
}

#[test]
fn null_is_a_wrong_type_everywhere() {
    assert_parse_error(r#"{"op":null}"#);
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":null}"#);
    assert_parse_error(r#"{"op":"sell","sku":1,"store":2,"qty":1,"channel":null}"#);
    assert_parse_error(
        r#"{"op":"reserve","id":1,"ttl_ms":null,"lines":[{"sku":1,"store":2,"qty":1}]}"#,
    );
    assert_parse_error(r#"{"op":"reserve","id":1,"lines":null}"#);
    assert_parse_error(r#"{"op":"reserve","id":1,"lines":[null]}"#);
}

#[test]
fn wrong_json_type_is_a_parse_error() {
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2,"qty":"1"}"#);
    assert_parse_error(r#"{"op":"restock","sku":true,"store":2,"qty":1}"#);
    assert_parse_error(r#"{"op":"get","id":[1]}"#);
    assert_parse_error(r#"{"op":"reserve","id":1,"lines":{"sku":1,"store":2,"qty":1}}"#);
    assert_parse_error(r#"{"op":"reserve","id":1,"lines":[[1,2,1]]}"#);
    assert_parse_error(r#"{"op":"sell","sku":1,"store":2,"qty":1,"channel":1}"#);
}

#[test]
fn unknown_channel_is_a_parse_error() {
    assert_parse_error(r#"{"op":"sell","sku":1,"store":2,"qty":1,"channel":"web"}"#);
    assert_parse_error(
        r#"{"op":"reserve","id":1,"channel":"Online","lines":[{"sku":1,"store":2,"qty":1}]}"#,
    );
    assert_parse_error(
        r#"{"op":"reserve","id":1,"channel":"","lines":[{"sku":1,"store":2,"qty":1}]}"#,
    );
}

#[test]
fn missing_field_is_a_parse_error() {
    assert_parse_error(r#"{"op":"extend","id":1}"#);
    assert_parse_error(r#"{"op":"restock","sku":1,"store":2}"#);
    assert_parse_error(r#"{"op":"level","sku":1}"#);
    assert_parse_error(r#"{"op":"get"}"#);
    assert_parse_error(r#"{"op":"advance"}"#);
    assert_parse_error(r#"{"op":"reserve","id":1}"#);
    assert_parse_error(r#"{"op":"reserve","id":1,"lines":[{"sku":1,"store":2}]}"#);
    // Field names are exact.
    assert_parse_error(r#"{"op":"restock","SKU":1,"store":2,"qty":1}"#);
    assert_parse_error(r#"{"op":"advance","ttl_ms":5}"#);
}

#[test]
fn unknown_or_missing_op_is_a_parse_error() {
    assert_parse_error(r#"{"op":"teleport"}"#);
    assert_parse_error(r#"{"op":"Restock","sku":1,"store":2,"qty":1}"#);
    assert_parse_error(r#"{"sku":1,"store":2,"qty":1}"#);
    assert_parse_error(r#"{"op":7}"#);
    let message = parse_error(br#"{"op":"teleport"}"#).to_string();
    assert!(message.contains("teleport"), "{message}");
}

#[test]
fn a_line_that_is_not_an_object_is_a_parse_error() {
    for line in [r#"[{"op":"expire"}]"#, r#""expire""#, "1", "null", "true"] {
        assert_parse_error(line);
    }
}

#[test]
fn invalid_json_is_a_parse_error() {
    for line in [
        "not json",
        "{",
        r#"{"op":"expire"} x"#,
        r#"{"op":"expire"}{"op":"expire"}"#,
        r#"{"op":"expire",}"#,
        r#"{'op':'expire'}"#,
        r#"{op:"expire"}"#,
        r#"{"op":"advance","ms":01}"#,
        r#"{"op":"advance","ms":NaN}"#,
        r#"{"op":"advance","ms":Infinity}"#,
        r#"{"op":"advance","ms":+1}"#,
        r#"{"op":"advance","ms":1.}"#,
        r#"{"op":"advance","ms":.5}"#,
        r#"{"op":"advance","ms":1e}"#,
        r#"{"op":"level","sku":1,"store":2,"x":[1,]}"#,
        r#"{"op":"level","sku":1,"store":2,"x":tru}"#,
        r#"{"op":"level","sku":1,"store":2,"x":"\x"}"#,
        r#"{"op":"level","sku":1,"store":2,"x":"\u12"}"#,
        r#"{"op":"level","sku":1,"store":2,"x":"\u+123"}"#,
        "{\"op\":\"level\",\"sku\":1,\"store\":2,\"x\":\"tab\there\"}",
        "{\"op\":\"expire\"}\u{c}",
        "\u{a0}{\"op\":\"expire\"}",
    ] {
        assert_parse_error(line);
    }
}

#[test]
fn invalid_utf8_is_a_parse_error() {
    parse_error(b"{\"op\":\"expire\",\"x\":\"\xff\"}");
    parse_error(b"{\"op\":\"expire\",\"x\":\"\xc3\"}");
    // Overlong encoding and an encoded surrogate.
    parse_error(b"{\"op\":\"expire\",\"x\":\"\xc0\xaf\"}");
    parse_error(b"{\"op\":\"expire\",\"x\":\"\xed\xa0\x80\"}");
    // A byte order mark is not JSON whitespace.
    parse_error("\u{feff}{\"op\":\"expire\"}".as_bytes());
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let depth = 100_000;
    let mut hostile = String::from(r#"{"op":"expire","x":"#);
    hostile.push_str(&"[".repeat(depth));
    hostile.push_str(&"]".repeat(depth));
    hostile.push('}');
    assert_parse_error(&hostile);

    let objects = "{\"a\":".repeat(depth);
    assert!(parse_json(objects.as_bytes()).is_err());
}

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    // The request object is level 1, so MAX_DEPTH - 1 arrays fit inside it.
    let inner = MAX_DEPTH - 1;
    let line = format!(
        r#"{{"op":"expire","x":{}{}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    );
    assert_eq!(command(&line), Command::Expire);
    let too_deep = format!(
        r#"{{"op":"expire","x":{}{}}}"#,
        "[".repeat(inner + 1),
        "]".repeat(inner + 1)
    );
    assert_parse_error(&too_deep);
}

// ------------------------------------------------------------- JSON reader

#[test]
fn strings_decode_every_escape() {
    assert_eq!(
        parse_json(br#""\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \u20AC""#),
        Ok(JsonValue::String(
            "\" \\ / \u{8} \u{c} \n \r \t A é €".to_string()
        ))
    );
}

#[test]
fn surrogate_pairs_decode_and_lone_surrogates_become_replacement_characters() {
    assert_eq!(
        parse_json(br#""\ud83d\ude00""#),
        Ok(JsonValue::String("😀".to_string()))
    );
    assert_eq!(
        parse_json(br#""\ud800""#),
        Ok(JsonValue::String("\u{fffd}".to_string()))
    );
    assert_eq!(
        parse_json(br#""\udc00x\ud800""#),
        Ok(JsonValue::String("\u{fffd}x\u{fffd}".to_string()))
    );
    // Raw UTF-8 passes through untouched.
    assert_eq!(
        parse_json("\"日本 😀\"".as_bytes()),
        Ok(JsonValue::String("日本 😀".to_string()))
    );
}

#[test]
fn numbers_keep_their_source_text() {
    for text in ["0", "-0", "12", "-12", "1.0", "1e2", "1E+2", "-0.5e-3"] {
        assert_eq!(parse_json(text.as_bytes()), Ok(number(text)), "{text}");
    }
    for text in ["01", "-", "--1", "1.", ".1", "1e", "1e+", "0x10", "-01"] {
        assert!(parse_json(text.as_bytes()).is_err(), "{text}");
    }
}

#[test]
fn structure_is_read_in_source_order() {
    assert_eq!(
        parse_json(br#" { "b" : [ 1 , true , null ] , "a" : { } , "c" : [ ] } "#),
        Ok(JsonValue::Object(vec![
            (
                "b".to_string(),
                JsonValue::Array(vec![number("1"), JsonValue::Bool(true), JsonValue::Null])
            ),
            ("a".to_string(), JsonValue::Object(vec![])),
            ("c".to_string(), JsonValue::Array(vec![])),
        ]))
    );
}

#[test]
fn truncated_input_never_panics() {
    let line = br#"{"op":"reserve","id":1,"channel":"online","ttl_ms":60000,"lines":[{"sku":1,"store":2,"qty":2}],"x":"\ud83d\ude00 \u00e9 \n","y":[true,false,null,-1.5e-3]}"#;
    for end in 0..=line.len() {
        let _ = parse_request(&line[..end]);
        let _ = parse_json(&line[..end]);
    }
    // Every single-byte corruption too.
    for index in 0..line.len() {
        for byte in [0u8, b'"', b'\\', b'{', b']', b'-', b'0', 0x80, 0xff] {
            let mut corrupted = line.to_vec();
            corrupted[index] = byte;
            let _ = parse_request(&corrupted);
        }
    }
}

// ------------------------------------------------------------------ answers

#[test]
fn level_answer_lists_the_cell() {
    assert_eq!(
        format_outcome(&Ok(Outcome::Level(Level::new(10, 4, 3)))),
        r#"{"ok":true,"level":{"on_hand":10,"reserved":4,"safety_stock":3,"available_online":3,"available_in_store":6}}"#
    );
}

#[test]
fn reservation_answer_has_expires_at_only_when_pending() {
    let pending = ReservationAck {
        id: ReservationId(7),
        state: ReservationState::Pending,
        replayed: false,
        expires_at_ms: Some(60_000),
    };
    assert_eq!(
        format_outcome(&Ok(Outcome::Reservation(pending))),
        r#"{"ok":true,"id":7,"state":"pending","replayed":false,"expires_at_ms":60000}"#
    );
    let committed = ReservationAck {
        state: ReservationState::Committed,
        replayed: true,
        expires_at_ms: None,
        ..pending
    };
    assert_eq!(
        format_outcome(&Ok(Outcome::Reservation(committed))),
        r#"{"ok":true,"id":7,"state":"committed","replayed":true}"#
    );
}

#[test]
fn get_answer_lists_channel_and_lines() {
    let info = ReservationInfo {
        id: ReservationId(7),
        state: ReservationState::Pending,
        channel: Channel::InStore,
        lines: vec![
            Line::new(Sku(1), StoreId(2), 2),
            Line::new(Sku(3), StoreId(4), 1),
        ],
        expires_at_ms: 60_000,
    };
    assert_eq!(
        format_outcome(&Ok(Outcome::Info(info))),
        r#"{"ok":true,"id":7,"state":"pending","channel":"in_store","lines":[{"sku":1,"store":2,"qty":2},{"sku":3,"store":4,"qty":1}],"expires_at_ms":60000}"#
    );
}

#[test]
fn expire_answer_counts() {
    assert_eq!(
        format_outcome(&Ok(Outcome::Expired(3))),
        r#"{"ok":true,"expired":3}"#
    );
}

#[test]
fn error_answers_carry_their_fields_and_message() {
    assert_eq!(
        format_outcome(&Err(Error::Insufficient {
            sku: Sku(1),
            store: StoreId(2),
            requested: 2,
            available: 1,
        })),
        r#"{"ok":false,"error":"insufficient","sku":1,"store":2,"requested":2,"available":1,"message":"only 1 units of sku 1 at store 2 available for this channel, 2 requested"}"#
    );
    assert_eq!(
        format_outcome(&Err(Error::UnknownItem {
            sku: Sku(1),
            store: StoreId(2)
        })),
        r#"{"ok":false,"error":"unknown_item","sku":1,"store":2,"message":"sku 1 at store 2 is not stocked; restock it or set its on-hand count first"}"#
    );
    assert_eq!(
        format_outcome(&Err(Error::BelowReserved {
            sku: Sku(1),
            store: StoreId(2),
            reserved: 4
        })),
        r#"{"ok":false,"error":"below_reserved","reserved":4,"message":"cannot count sku 1 at store 2 below the 4 units reserved; commit or release reservations first"}"#
    );
    assert_eq!(
        format_outcome(&Err(Error::Overflow {
            sku: Sku(1),
            store: StoreId(2),
            on_hand: 5,
            requested: u32::MAX,
        })),
        r#"{"ok":false,"error":"overflow","sku":1,"store":2,"on_hand":5,"requested":4294967295,"message":"restocking 4294967295 units of sku 1 at store 2 would pass the limit of 4294967295 units on hand (now 5)"}"#
    );
    assert_eq!(
        format_outcome(&Err(Error::Invalid {
            reason: "qty must be at least 1"
        })),
        r#"{"ok":false,"error":"invalid","message":"invalid request: qty must be at least 1"}"#
    );
    for (error, name) in [
        (
            Error::UnknownReservation {
                id: ReservationId(9),
            },
            "unknown_reservation",
        ),
        (
            Error::AlreadyCommitted {
                id: ReservationId(9),
            },
            "already_committed",
        ),
        (
            Error::AlreadyReleased {
                id: ReservationId(9),
            },
            "already_released",
        ),
        (
            Error::Expired {
                id: ReservationId(9),
            },
            "expired",
        ),
        (
            Error::IdConflict {
                id: ReservationId(9),
            },
            "id_conflict",
        ),
    ] {
        let answer = format_outcome(&Err(error.clone()));
        let prefix = format!(r#"{{"ok":false,"error":"{name}","id":9,"message":"#);
        assert!(answer.starts_with(&prefix), "{answer}");
        assert!(answer.contains(&error.to_string()), "{answer}");
    }
}

#[test]
fn parse_error_answer_escapes_its_message() {
    let error = parse_error(b"{\"op\":\"te\\\"le\\u0001port\"}");
    let answer = format_parse_error(&error);
    assert!(
        answer.starts_with(r#"{"ok":false,"error":"parse","message":"#),
        "{answer}"
    );
    assert!(answer.contains(r#"te\"le\u0001port"#), "{answer}");
    // The answer is itself valid JSON that reads back to the message.
    let Ok(JsonValue::Object(members)) = parse_json(answer.as_bytes()) else {
        panic!("not an object: {answer}");
    };
    assert_eq!(
        members[2],
        ("message".to_string(), JsonValue::String(error.to_string()))
    );
}

#[test]
fn a_hostile_op_name_gives_a_short_answer() {
    let line = format!(r#"{{"op":"{}"}}"#, "x".repeat(1_000_000));
    let answer = format_parse_error(&parse_error(line.as_bytes()));
    assert!(answer.len() < 200, "{answer}");
}

// ------------------------------------------------------------- replay loop

#[test]
fn advance_saturates_and_answers_the_new_time() {
    let mut replayer = Replayer::new();
    assert_eq!(
        replayer
            .handle_line(br#"{"op":"advance","ms":0}"#)
            .as_deref(),
        Some(r#"{"ok":true,"now_ms":0}"#)
    );
    assert_eq!(
        replayer
            .handle_line(br#"{"op":"advance","ms":5}"#)
            .as_deref(),
        Some(r#"{"ok":true,"now_ms":5}"#)
    );
    assert_eq!(
        replayer
            .handle_line(br#"{"op":"advance","ms":18446744073709551615}"#)
            .as_deref(),
        Some(r#"{"ok":true,"now_ms":18446744073709551615}"#)
    );
    assert_eq!(
        replayer
            .handle_line(br#"{"op":"advance","ms":1}"#)
            .as_deref(),
        Some(r#"{"ok":true,"now_ms":18446744073709551615}"#)
    );
}

#[test]
fn run_answers_every_non_blank_line_and_carries_on_after_bad_ones() {
    let input: &[u8] = b"{\"op\":\"advance\",\"ms\":1}\r\n\n   \nnot json\n\xff\xfe\n{\"op\":\"advance\",\"ms\":2}";
    let mut output = Vec::new();
    run(input, &mut output).unwrap();
    let output = String::from_utf8(output).unwrap();
    let answers: Vec<&str> = output.lines().collect();
    assert_eq!(answers.len(), 4, "{output}");
    assert_eq!(answers[0], r#"{"ok":true,"now_ms":1}"#);
    assert!(answers[1].starts_with(r#"{"ok":false,"error":"parse","#));
    assert!(answers[2].starts_with(r#"{"ok":false,"error":"parse","#));
    assert_eq!(answers[3], r#"{"ok":true,"now_ms":3}"#);
    assert!(output.ends_with('\n'));
}

#[test]
fn line_count_limit_is_the_engines_not_the_parsers() {
    let reserve_line = |count: u64| {
        let lines: Vec<String> = (0..count)
            .map(|sku| format!(r#"{{"sku":{sku},"store":1,"qty":1}}"#))
            .collect();
        format!(r#"{{"op":"reserve","id":1,"lines":[{}]}}"#, lines.join(","))
    };
    let mut replayer = Replayer::new();
    // 256 lines of unknown items pass the `invalid` check and fail on the
    // first line; 257 lines are `invalid` before any line is looked at.
    let answer = replayer.handle_line(reserve_line(256).as_bytes()).unwrap();
    assert!(
        answer.starts_with(r#"{"ok":false,"error":"unknown_item","sku":0,"store":1,"#),
        "{answer}"
    );
    let answer = replayer.handle_line(reserve_line(257).as_bytes()).unwrap();
    assert!(
        answer.starts_with(r#"{"ok":false,"error":"invalid","#),
        "{answer}"
    );
}

// ------------------------------------------------------------- golden file

/// Compares one answer with its expected line as JSON: every key of the
/// expected object must be in the answer with an equal value (numbers by
/// their text, nested objects the same way); key order and extra keys in
/// the answer do not matter, as the contract allows.
fn assert_answer_matches(script_line: usize, expected: &str, actual: &str) {
    let expected_value = parse_json(expected.as_bytes())
        .unwrap_or_else(|error| panic!("expected line {script_line} is not JSON: {error}"));
    let actual_value = parse_json(actual.as_bytes())
        .unwrap_or_else(|error| panic!("answer {script_line} is not JSON: {error}\n{actual}"));
    if let Some(path) = first_difference(&expected_value, &actual_value, String::new()) {
        panic!("answer {script_line} differs at {path}\nexpected: {expected}\nactual:   {actual}");
    }
}

fn first_difference(expected: &JsonValue, actual: &JsonValue, path: String) -> Option<String> {
    match (expected, actual) {
        (JsonValue::Object(expected), JsonValue::Object(actual)) => {
            expected.iter().find_map(|(key, expected_value)| {
                let path = format!("{path}.{key}");
                match actual.iter().find(|(actual_key, _)| actual_key == key) {
                    Some((_, actual_value)) => first_difference(expected_value, actual_value, path),
                    None => Some(path),
                }
            })
        }
        (JsonValue::Array(expected), JsonValue::Array(actual)) => {
            if expected.len() != actual.len() {
                return Some(format!("{path} (length)"));
            }
            expected
                .iter()
                .zip(actual)
                .enumerate()
                .find_map(|(index, (expected, actual))| {
                    first_difference(expected, actual, format!("{path}[{index}]"))
                })
        }
        _ if expected == actual => None,
        _ => Some(path),
    }
}

#[test]
fn golden_script_gives_the_answers_derived_from_the_contract() {
    let script = include_bytes!("replay/basic.jsonl");
    let expected = include_str!("replay/basic.expected.jsonl");

    let mut output = Vec::new();
    run(&script[..], &mut output).unwrap();
    let output = String::from_utf8(output).unwrap();

    let answers: Vec<&str> = output.lines().collect();
    let expected: Vec<&str> = expected.lines().collect();
    for (index, (expected, actual)) in expected.iter().zip(&answers).enumerate() {
        assert_answer_matches(index + 1, expected, actual);
    }
    assert_eq!(answers.len(), expected.len(), "number of answers");
}

mod format_request_round_trip {
    use omnistock::replay::{format_request, parse_request, Request};
    use omnistock::{Channel, Command, Line, ReservationId, Sku, StoreId};
    use proptest::prelude::*;

    fn channel() -> impl Strategy<Value = Channel> {
        prop_oneof![Just(Channel::Online), Just(Channel::InStore)]
    }

    fn request() -> impl Strategy<Value = Request> {
        let item = (any::<u64>(), any::<u64>(), any::<u32>());
        let line = item.prop_map(|(sku, store, qty)| Line::new(Sku(sku), StoreId(store), qty));
        prop_oneof![
            item.prop_map(|(s, t, q)| Command::Restock {
                sku: Sku(s),
                store: StoreId(t),
                qty: q
            }),
            item.prop_map(|(s, t, q)| Command::SetOnHand {
                sku: Sku(s),
                store: StoreId(t),
                qty: q
            }),
            item.prop_map(|(s, t, q)| Command::SetSafetyStock {
                sku: Sku(s),
                store: StoreId(t),
                qty: q
            }),
            (item, channel()).prop_map(|((s, t, q), channel)| Command::Sell {
                sku: Sku(s),
                store: StoreId(t),
                qty: q,
                channel
            }),
            item.prop_map(|(s, t, _)| Command::Level {
                sku: Sku(s),
                store: StoreId(t)
            }),
            (
                any::<u64>(),
                channel(),
                proptest::option::of(any::<u64>()),
                proptest::collection::vec(line, 0..4)
            )
                .prop_map(|(id, channel, ttl_ms, lines)| Command::Reserve {
                    id: ReservationId(id),
                    channel,
                    ttl_ms,
                    lines
                }),
            any::<u64>().prop_map(|id| Command::Commit {
                id: ReservationId(id)
            }),
            any::<u64>().prop_map(|id| Command::Release {
                id: ReservationId(id)
            }),
            any::<u64>().prop_map(|id| Command::Get {
                id: ReservationId(id)
            }),
            (any::<u64>(), any::<u64>()).prop_map(|(id, ttl_ms)| Command::Extend {
                id: ReservationId(id),
                ttl_ms
            }),
            Just(Command::Expire),
        ]
        .prop_map(Request::Command)
        .boxed()
        .prop_union(any::<u64>().prop_map(|ms| Request::Advance { ms }).boxed())
    }

    proptest! {
        /// Every request written by `format_request` reads back as itself.
        #[test]
        fn format_request_reads_back_as_the_same_request(request in request()) {
            let line = format_request(&request);
            prop_assert_eq!(parse_request(line.as_bytes()).unwrap(), Some(request), "{}", line);
        }
    }
}
