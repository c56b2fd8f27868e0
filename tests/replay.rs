//! The replay format of `docs/CONTRACT.md`: one test per parsing rule, the
//! answer formats, the serde forms of the data types (which are the format),
//! the tool's command line, and a golden script (`tests/replay/basic.jsonl`) whose
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
    format_outcome, format_parse_error, format_request, main, parse_request, run, ParseError,
    Replayer, Request, MAX_DEPTH, USAGE,
};
use omnistock::{
    Channel, Command, Error, Level, Line, Outcome, ReservationAck, ReservationId, ReservationInfo,
    ReservationState, Sku, StoreId,
};
use serde_json::Value;

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
            qty: 0,
            expect: None
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
            id: ReservationId(7),
            lines: None
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
    assert_eq!(
        command(r#"{"op":"expire","x":{"\ud800":1,"\ufffd":2}}"#),
        Command::Expire
    );
    assert_eq!(
        command(r#"{"op":"expire","x":{"a":{"a":1},"b":{"a":1}},"a":0}"#),
        Command::Expire
    );
    // A key spelled with escapes is the key it spells.
    assert_eq!(
        command(r#"{"\u006fp":"get","\u0069d":3}"#),
        Command::Get {
            id: ReservationId(3)
        }
    );
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
    assert_parse_error(&objects);
    let closed = format!("{objects}1{}", "}".repeat(depth));
    assert_parse_error(&closed);
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

// --------------------------------------------------- JSON in ignored fields

/// `value` in a field `expire` does not take: accepted when it is valid JSON.
fn ignored(value: &str) -> Result<Option<Request>, ParseError> {
    parse_request(format!(r#"{{"op":"expire","x":{value}}}"#).as_bytes())
}

#[test]
fn strings_with_every_escape_are_valid_json() {
    let expire = Ok(Some(Request::Command(Command::Expire)));
    assert_eq!(
        ignored(r#""\" \\ \/ \b \f \n \r \t \u0041 \u00e9 \u20AC""#),
        expire
    );
    // Escapes are decoded where the value is read.
    assert_eq!(command(r#"{"op":"\u0065xpire"}"#), Command::Expire);
    assert_eq!(
        command(r#"{"op":"sell","sku":1,"store":2,"qty":1,"channel":"\u006fnline"}"#),
        Command::Sell {
            sku: Sku(1),
            store: StoreId(2),
            qty: 1,
            channel: Channel::Online
        }
    );
}

#[test]
fn surrogate_pairs_lone_surrogates_and_raw_utf8_are_valid_json() {
    let expire = Ok(Some(Request::Command(Command::Expire)));
    for value in [
        r#""\ud83d\ude00""#,
        r#""\ud800""#,
        r#""\udc00x\ud800""#,
        "\"日本 😀\"",
    ] {
        assert_eq!(ignored(value), expire, "{value}");
    }
    // A lone surrogate never spells a known op or channel.
    assert_parse_error(r#"{"op":"expire\ud800"}"#);
}

#[test]
fn any_valid_number_is_accepted_where_it_is_ignored() {
    let expire = Ok(Some(Request::Command(Command::Expire)));
    for text in [
        "0",
        "-0",
        "12",
        "-12",
        "1.0",
        "1e2",
        "1E+2",
        "-0.5e-3",
        "1e400",
        "-1e400",
        "99999999999999999999999999999",
    ] {
        assert_eq!(ignored(text), expire, "{text}");
    }
    for text in ["01", "-", "--1", "1.", ".1", "1e", "1e+", "0x10", "-01"] {
        assert!(ignored(text).is_err(), "{text}");
    }
}

#[test]
fn every_json_type_is_accepted_where_it_is_ignored() {
    let expire = Ok(Some(Request::Command(Command::Expire)));
    for value in [
        "null",
        "true",
        "false",
        "[]",
        "{}",
        r#"[1,"a",{"b":[null]}]"#,
    ] {
        assert_eq!(ignored(value), expire, "{value}");
    }
}

#[test]
fn truncated_input_never_panics() {
    let line = br#"{"op":"reserve","id":1,"channel":"online","ttl_ms":60000,"lines":[{"sku":1,"store":2,"qty":2}],"x":"\ud83d\ude00 \u00e9 \n","y":[true,false,null,-1.5e-3]}"#;
    for end in 0..=line.len() {
        let _ = parse_request(&line[..end]);
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
    let value: Value = serde_json::from_str(&answer).expect("the answer is JSON");
    assert_eq!(value["message"], Value::String(error.to_string()));
}

#[test]
fn invalid_json_messages_name_the_byte_and_the_problem() {
    for (line, wanted) in [
        (
            &br#"{"op":"expire"} x"#[..],
            "invalid JSON at byte 16: trailing characters",
        ),
        (
            b"{\r\n\"op\":\"expire\"} x",
            "invalid JSON at byte 18: trailing characters",
        ),
        (b"not json", "invalid JSON at byte 1: expected a value"),
        (
            br#"{"op":"expire","x":{"a":1,"a":2}}"#,
            "invalid JSON at byte 28: duplicate key \"a\"",
        ),
        (b"{\"op\":\"\xff\"}", "invalid JSON: not UTF-8 at byte 7"),
    ] {
        assert_eq!(parse_error(line).message(), wanted, "{line:?}");
    }
    let deep = format!(r#"{{"op":"expire","x":{}"#, "[".repeat(MAX_DEPTH));
    let deep = format!("{deep}{}}}", "]".repeat(MAX_DEPTH));
    let message = parse_error(deep.as_bytes()).to_string();
    let start = r#"{"op":"expire","x":"#.len() + MAX_DEPTH - 1;
    assert_eq!(
        message,
        format!("invalid JSON at byte {start}: nested deeper than {MAX_DEPTH} levels")
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

// ------------------------------------------------------------- serde forms

/// One request line of every op, as the contract writes them.
const EVERY_OP: &[&str] = &[
    r#"{"op":"restock","sku":1,"store":2,"qty":10}"#,
    r#"{"op":"set_on_hand","sku":1,"store":2,"qty":8}"#,
    r#"{"op":"set_safety_stock","sku":1,"store":2,"qty":2}"#,
    r#"{"op":"sell","sku":1,"store":2,"qty":1,"channel":"in_store"}"#,
    r#"{"op":"level","sku":1,"store":2}"#,
    r#"{"op":"reserve","id":7,"channel":"online","ttl_ms":60000,"lines":[{"sku":1,"store":2,"qty":2}]}"#,
    r#"{"op":"commit","id":7}"#,
    r#"{"op":"release","id":7}"#,
    r#"{"op":"extend","id":7,"ttl_ms":60000}"#,
    r#"{"op":"get","id":7}"#,
    r#"{"op":"expire"}"#,
];

#[test]
fn a_commands_serde_form_is_its_request_line() {
    for line in EVERY_OP {
        let command = command(line);
        assert_eq!(serde_json::to_string(&command).unwrap(), *line);
        assert_eq!(
            serde_json::from_str::<Command>(line).unwrap(),
            command,
            "{line}"
        );
        assert_eq!(format_request(&Request::Command(command)), *line);
    }
    assert_eq!(
        format_request(&Request::Advance { ms: 1000 }),
        r#"{"op":"advance","ms":1000}"#
    );
}

#[test]
fn a_commands_serde_form_has_the_formats_defaults() {
    for line in [
        r#"{"op":"sell","sku":1,"store":2,"qty":1}"#,
        r#"{"op":"reserve","id":1,"lines":[{"sku":1,"store":2,"qty":1}]}"#,
    ] {
        assert_eq!(
            serde_json::from_str::<Command>(line).ok(),
            Some(command(line)),
            "{line}"
        );
    }
    // A reserve without a ttl is written without one.
    let reserve = command(r#"{"op":"reserve","id":1,"lines":[]}"#);
    assert_eq!(
        serde_json::to_string(&reserve).unwrap(),
        r#"{"op":"reserve","id":1,"channel":"online","lines":[]}"#
    );
    // `null` is not a way to leave a field out.
    assert!(
        serde_json::from_str::<Command>(r#"{"op":"reserve","id":1,"ttl_ms":null,"lines":[]}"#)
            .is_err()
    );
    assert!(serde_json::from_str::<Command>(
        r#"{"op":"sell","sku":1,"store":2,"qty":1,"channel":null}"#
    )
    .is_err());
}

#[test]
fn outcomes_and_errors_read_back_from_their_answers() {
    let outcomes = [
        Outcome::Level(Level::new(10, 4, 3)),
        Outcome::Reservation(ReservationAck {
            id: ReservationId(7),
            state: ReservationState::Pending,
            replayed: false,
            expires_at_ms: Some(60_000),
        }),
        Outcome::Reservation(ReservationAck {
            id: ReservationId(7),
            state: ReservationState::Committed,
            replayed: true,
            expires_at_ms: None,
        }),
        Outcome::Info(ReservationInfo {
            id: ReservationId(7),
            state: ReservationState::Expired,
            channel: Channel::InStore,
            lines: vec![Line::new(Sku(1), StoreId(2), 2)],
            expires_at_ms: 60_000,
        }),
        Outcome::Expired(3),
    ];
    for outcome in outcomes {
        let answer = format_outcome(&Ok(outcome.clone()));
        assert_eq!(
            serde_json::from_str::<Outcome>(&answer).unwrap(),
            outcome,
            "{answer}"
        );
    }
    let errors = [
        Error::Overflow {
            sku: Sku(1),
            store: StoreId(2),
            on_hand: 5,
            requested: 7,
        },
        Error::UnknownItem {
            sku: Sku(1),
            store: StoreId(2),
        },
        Error::Insufficient {
            sku: Sku(1),
            store: StoreId(2),
            requested: 2,
            available: 1,
        },
        Error::IdConflict {
            id: ReservationId(9),
        },
        Error::Expired {
            id: ReservationId(9),
        },
    ];
    for error in errors {
        let answer = format_outcome(&Err(error.clone()));
        assert_eq!(
            serde_json::from_str::<Error>(&answer).unwrap(),
            error,
            "{answer}"
        );
    }
    // The two fields the answer leaves out read back as their defaults.
    let answer = format_outcome(&Err(Error::Invalid { reason: "no lines" }));
    assert_eq!(
        serde_json::from_str::<Error>(&answer).unwrap(),
        Error::Invalid { reason: "" }
    );
    let answer = format_outcome(&Err(Error::BelowReserved {
        sku: Sku(1),
        store: StoreId(2),
        reserved: 4,
    }));
    assert_eq!(
        serde_json::from_str::<Error>(&answer).unwrap(),
        Error::BelowReserved {
            sku: Sku(0),
            store: StoreId(0),
            reserved: 4
        }
    );
}

// ------------------------------------------------------------ command line

/// Runs the tool's `main` on `args` and `input`: (status, stdout, stderr).
fn tool(args: &[&str], input: &[u8]) -> (u8, String, String) {
    let mut output = Vec::new();
    let mut errors = Vec::new();
    let status = main(args.iter().copied(), input, &mut output, &mut errors);
    (
        status,
        String::from_utf8(output).unwrap(),
        String::from_utf8(errors).unwrap(),
    )
}

#[test]
fn help_prints_the_usage_and_succeeds() {
    for flag in ["--help", "-h"] {
        let (status, output, errors) = tool(&[flag], b"{\"op\":\"expire\"}\n");
        assert_eq!(status, 0, "{flag}");
        assert_eq!(output, USAGE, "{flag}: the script is not run");
        assert_eq!(errors, "");
    }
    for needed in [
        "standard input",
        "standard output",
        "--help",
        "docs/CONTRACT.md",
    ] {
        assert!(USAGE.contains(needed), "the usage says {needed}");
    }
}

#[test]
fn a_bad_argument_is_an_error_with_the_usage() {
    for (args, named) in [
        (&["--verbose"][..], "--verbose"),
        (&["-x"][..], "-x"),
        (&["script.jsonl"][..], "script.jsonl"),
        (&["--help", "extra"][..], "extra"),
        (&["--help", "--help"][..], "--help"),
    ] {
        let (status, output, errors) = tool(args, b"{\"op\":\"expire\"}\n");
        assert_eq!(status, 2, "{args:?}");
        assert_eq!(
            output, "",
            "{args:?}: nothing on stdout, the script is not run"
        );
        assert!(errors.contains(named), "{args:?}: {errors}");
        assert!(errors.ends_with(USAGE), "{args:?}: {errors}");
    }
}

#[test]
fn no_argument_replays_standard_input() {
    let (status, output, errors) = tool(&[], b"{\"op\":\"advance\",\"ms\":5}\n\nnot json\n");
    assert_eq!(status, 0);
    assert!(
        output.starts_with("{\"ok\":true,\"now_ms\":5}\n{\"ok\":false,\"error\":\"parse\","),
        "{output}"
    );
    assert_eq!(output.lines().count(), 2);
    assert_eq!(errors, "");
}

#[test]
fn a_write_error_ends_the_replay_with_status_1() {
    struct Closed;
    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut errors = Vec::new();
    let status = main(
        Vec::<String>::new(),
        &b"{\"op\":\"expire\"}\n"[..],
        Closed,
        &mut errors,
    );
    assert_eq!(status, 1);
    assert!(String::from_utf8(errors).unwrap().starts_with("replay: "));
}

mod answers_before_the_next_read {
    //! A driver that sends a line and waits for its answer before sending the
    //! next must see every answer, flushed, before the tool reads on. The
    //! input here refuses to hand out a line until every earlier non-blank
    //! line's answer has been flushed, so the test fails (rather than hangs)
    //! when an answer is held back.

    use std::cell::RefCell;
    use std::io::{self, BufRead, Read, Write};
    use std::rc::Rc;

    #[derive(Default)]
    struct Pipe {
        written: Vec<u8>,
        flushed: Vec<u8>,
    }

    struct Output(Rc<RefCell<Pipe>>);

    impl Write for Output {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().written.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            let mut pipe = self.0.borrow_mut();
            let written = std::mem::take(&mut pipe.written);
            pipe.flushed.extend_from_slice(&written);
            Ok(())
        }
    }

    /// Hands out one line per read, after checking the answers so far.
    struct Driver {
        lines: Vec<&'static [u8]>,
        next: usize,
        answered: usize,
        pipe: Rc<RefCell<Pipe>>,
        current: Vec<u8>,
        position: usize,
    }

    impl Read for Driver {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            let available = self.fill_buf()?;
            let count = available.len().min(buffer.len());
            buffer[..count].copy_from_slice(&available[..count]);
            self.consume(count);
            Ok(count)
        }
    }

    impl BufRead for Driver {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            if self.position == self.current.len() && self.next < self.lines.len() {
                let flushed = self.pipe.borrow().flushed.clone();
                let answers = flushed.iter().filter(|&&byte| byte == b'\n').count();
                assert_eq!(
                    answers, self.answered,
                    "answers flushed before line {} is read",
                    self.next
                );
                let line = self.lines[self.next];
                self.next += 1;
                if !line.iter().all(u8::is_ascii_whitespace) {
                    self.answered += 1;
                }
                self.current = line.to_vec();
                self.position = 0;
            }
            Ok(&self.current[self.position..])
        }

        fn consume(&mut self, count: usize) {
            self.position += count;
        }
    }

    #[test]
    fn every_answer_is_flushed_before_the_next_line_is_read() {
        let lines: Vec<&'static [u8]> = vec![
            b"{\"op\":\"restock\",\"sku\":1,\"store\":2,\"qty\":10}\n",
            b"\n",
            b"not json\n",
            b"{\"op\":\"advance\",\"ms\":5}\r\n",
            b"{\"op\":\"level\",\"sku\":1,\"store\":2}",
        ];
        let pipe = Rc::new(RefCell::new(Pipe::default()));
        let driver = Driver {
            lines,
            next: 0,
            answered: 0,
            pipe: Rc::clone(&pipe),
            current: Vec::new(),
            position: 0,
        };
        // Through the tool's own buffering, as the example sets it up.
        let output = io::BufWriter::new(Output(Rc::clone(&pipe)));
        let mut errors = Vec::new();
        assert_eq!(
            omnistock::replay::main(Vec::<String>::new(), driver, output, &mut errors),
            0
        );
        let pipe = pipe.borrow();
        let answers = String::from_utf8(pipe.flushed.clone()).unwrap();
        assert_eq!(answers.lines().count(), 4, "{answers}");
        assert!(pipe.written.is_empty());
    }
}

// ------------------------------------------------------------- golden file

/// Compares one answer with its expected line as JSON: every key of the
/// expected object must be in the answer with an equal value (integers by
/// value, nested objects the same way); key order and extra keys in
/// the answer do not matter, as the contract allows.
fn assert_answer_matches(script_line: usize, expected: &str, actual: &str) {
    let expected_value: Value = serde_json::from_str(expected)
        .unwrap_or_else(|error| panic!("expected line {script_line} is not JSON: {error}"));
    let actual_value: Value = serde_json::from_str(actual)
        .unwrap_or_else(|error| panic!("answer {script_line} is not JSON: {error}\n{actual}"));
    if let Some(path) = first_difference(&expected_value, &actual_value, String::new()) {
        panic!("answer {script_line} differs at {path}\nexpected: {expected}\nactual:   {actual}");
    }
}

fn first_difference(expected: &Value, actual: &Value, path: String) -> Option<String> {
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            expected.iter().find_map(|(key, expected_value)| {
                let path = format!("{path}.{key}");
                match actual.get(key) {
                    Some(actual_value) => first_difference(expected_value, actual_value, path),
                    None => Some(path),
                }
            })
        }
        (Value::Array(expected), Value::Array(actual)) => {
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
                qty: q,
                expect: None
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
                id: ReservationId(id),
                lines: None
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

// ------------------------------------------------------ v2: fulfilment

/// The fulfilment golden script (`tests/replay/fulfilment.jsonl`): every
/// answer checked by hand against the contract's v2 section. Keys must be
/// exactly those expected (the contract says which appear, such as no
/// `store` in `reserve_any`'s refusals); only `message` may differ.
#[test]
fn fulfilment_script_gives_the_answers_derived_from_the_contract() {
    let script = include_bytes!("replay/fulfilment.jsonl");
    let expected = include_str!("replay/fulfilment.expected.jsonl");
    let mut output = Vec::new();
    run(&script[..], &mut output).unwrap();
    let output = String::from_utf8(output).unwrap();
    let without_message = |line: &str| {
        let mut value: Value = serde_json::from_str(line).unwrap();
        if let Value::Object(members) = &mut value {
            members.remove("message");
        }
        value
    };
    let answers: Vec<&str> = output.lines().collect();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(answers.len(), expected.len(), "number of answers");
    for (index, (expected, actual)) in expected.iter().zip(&answers).enumerate() {
        assert_eq!(
            without_message(actual),
            without_message(expected),
            "answer {}",
            index + 1
        );
    }
}

#[test]
fn fulfilment_ops_parse_with_exact_field_names() {
    assert_eq!(
        command(r#"{"op":"commit","id":7,"lines":[{"sku":1,"store":2,"qty":0}]}"#),
        Command::Commit {
            id: ReservationId(7),
            lines: Some(vec![Line::new(Sku(1), StoreId(2), 0)]),
        }
    );
    assert_eq!(
        command(r#"{"op":"set_on_hand","sku":1,"store":2,"qty":8,"expect":4294967295}"#),
        Command::SetOnHand {
            sku: Sku(1),
            store: StoreId(2),
            qty: 8,
            expect: Some(u32::MAX),
        }
    );
    assert_eq!(
        command(r#"{"op":"sell","lines":[{"sku":1,"store":2,"qty":3}]}"#),
        Command::SellLines {
            lines: vec![Line::new(Sku(1), StoreId(2), 3)],
            channel: Channel::InStore,
        }
    );
    assert_eq!(
        command(
            r#"{"op":"reserve_any","id":7,"sku":1,"qty":2,"stores":[3,18446744073709551615],"split":true,"channel":"in_store","ttl_ms":5}"#
        ),
        Command::ReserveAny {
            id: ReservationId(7),
            sku: Sku(1),
            qty: 2,
            stores: vec![StoreId(3), StoreId(u64::MAX)],
            split: true,
            channel: Channel::InStore,
            ttl_ms: Some(5),
        }
    );
    assert_eq!(command(r#"{"op":"check","sku":"x"}"#), Command::Check);
}

#[test]
fn fulfilment_fields_of_the_wrong_type_are_parse_errors() {
    for line in [
        r#"{"op":"commit","id":7,"lines":null}"#,
        r#"{"op":"commit","id":7,"lines":[{"sku":1,"store":2}]}"#,
        r#"{"op":"set_on_hand","sku":1,"store":2,"qty":8,"expect":null}"#,
        r#"{"op":"set_on_hand","sku":1,"store":2,"qty":8,"expect":4294967296}"#,
        r#"{"op":"sell","lines":{}}"#,
        r#"{"op":"sell","lines":[],"channel":"web"}"#,
        r#"{"op":"reserve_any","id":7,"sku":1,"qty":2,"stores":[1],"split":"yes"}"#,
        r#"{"op":"reserve_any","id":7,"sku":1,"qty":2,"stores":[1.0]}"#,
        r#"{"op":"reserve_any","id":7,"sku":1,"qty":2,"stores":3}"#,
        r#"{"op":"reserve_any","id":7,"sku":1,"stores":[1]}"#,
    ] {
        assert_parse_error(line);
    }
}

#[test]
fn stray_fields_beside_a_basket_or_on_reserve_any_are_invalid_whatever_their_value() {
    for line in [
        r#"{"op":"sell","lines":[{"sku":1,"store":2,"qty":3}],"sku":1}"#,
        r#"{"op":"sell","lines":[{"sku":1,"store":2,"qty":3}],"store":null}"#,
        r#"{"op":"sell","lines":[],"qty":"x"}"#,
        r#"{"op":"reserve_any","id":7,"sku":1,"qty":2,"stores":[1],"campaign":1}"#,
        r#"{"op":"reserve_any","id":7,"sku":1,"qty":2,"stores":[1],"customer":[]}"#,
    ] {
        let request = parse_request(line.as_bytes()).unwrap().unwrap();
        assert!(matches!(request, Request::Refused(_)), "{line}");
        // Written back, it reads as the same refusal.
        let written = format_request(&request);
        assert_eq!(
            parse_request(written.as_bytes()),
            Ok(Some(request)),
            "{written}"
        );
        let answer = Replayer::new().handle_line(line.as_bytes()).unwrap();
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["error"], "invalid", "{line}");
    }
    // A malformed basket is a parse error before the stray field counts.
    assert_parse_error(r#"{"op":"sell","lines":[1],"sku":1}"#);
}

// ------------------------------------------------ v2: campaigns and alerts

/// The answer lines of `script` with `message` left out, for comparison.
fn answers_without_message(output: &str) -> Vec<Value> {
    output
        .lines()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).unwrap();
            if let Value::Object(members) = &mut value {
                members.remove("message");
            }
            value
        })
        .collect()
}

/// The campaigns golden script (`tests/replay/campaigns.jsonl`): quotas,
/// per-customer limits and their order of checks, units given back by
/// release, expiry (lazy and reaped) and partial commit, committed units
/// counted after retention, redefinition, reorder points and alerts. The
/// expected answers were checked by hand against the contract, and the
/// reference model must give them too.
#[test]
fn campaigns_script_gives_the_answers_derived_from_the_contract() {
    let script = include_bytes!("replay/campaigns.jsonl");
    let expected = answers_without_message(include_str!("replay/campaigns.expected.jsonl"));
    let mut output = Vec::new();
    run(&script[..], &mut output).unwrap();
    let engine = answers_without_message(&String::from_utf8(output).unwrap());
    assert_eq!(engine.len(), expected.len(), "number of answers");
    for (index, (expected, actual)) in expected.iter().zip(&engine).enumerate() {
        assert_eq!(actual, expected, "engine, answer {}", index + 1);
    }
    // The reference model, line by line.
    let mut model = omnistock::model::ReferenceModel::new();
    let mut answers = String::new();
    for line in script.split(|&byte| byte == b'\n') {
        let answer = match parse_request(line) {
            Ok(None) => continue,
            Ok(Some(Request::Command(command))) => format_outcome(&model.apply(&command)),
            Ok(Some(Request::Advance { ms })) => {
                format!(r#"{{"ok":true,"now_ms":{}}}"#, model.advance(ms))
            }
            Ok(Some(Request::Refused(refused))) => format_outcome(&Err(Error::Invalid {
                reason: refused.reason(),
            })),
            Err(error) => format_parse_error(&error),
        };
        answers.push_str(&answer);
        answers.push('\n');
    }
    let model = answers_without_message(&answers);
    for (index, (expected, actual)) in expected.iter().zip(&model).enumerate() {
        assert_eq!(actual, expected, "model, answer {}", index + 1);
    }
}

#[test]
fn campaign_ops_parse_with_exact_field_names() {
    use omnistock::{CampaignId, CustomerId};
    assert_eq!(
        command(
            r#"{"op":"campaign","campaign":5,"sku":1,"store":2,"quota":4294967295,"per_customer":0}"#
        ),
        Command::Campaign {
            campaign: CampaignId(5),
            sku: Sku(1),
            store: StoreId(2),
            quota: u32::MAX,
            per_customer: 0,
        }
    );
    assert_eq!(
        command(
            r#"{"op":"reserve","id":7,"lines":[{"sku":1,"store":2,"qty":1}],"campaign":5,"customer":18446744073709551615}"#
        ),
        Command::ReserveCampaign {
            id: ReservationId(7),
            channel: Channel::Online,
            ttl_ms: None,
            lines: vec![Line::new(Sku(1), StoreId(2), 1)],
            campaign: Some(CampaignId(5)),
            customer: Some(CustomerId(u64::MAX)),
        }
    );
    assert_eq!(
        command(r#"{"op":"set_reorder_point","sku":1,"store":2,"qty":3}"#),
        Command::SetReorderPoint {
            sku: Sku(1),
            store: StoreId(2),
            qty: 3,
        }
    );
    assert_eq!(command(r#"{"op":"alerts","id":"x"}"#), Command::Alerts);
    // Written back, each reads as the same request.
    for line in [
        r#"{"op":"reserve","id":7,"lines":[{"sku":1,"store":2,"qty":1}],"customer":3}"#,
        r#"{"op":"campaign","campaign":5,"sku":1,"store":2,"quota":1,"per_customer":1}"#,
    ] {
        let request = parse_request(line.as_bytes()).unwrap().unwrap();
        let written = format_request(&request);
        assert_eq!(
            parse_request(written.as_bytes()),
            Ok(Some(request)),
            "{written}"
        );
    }
}

#[test]
fn campaign_fields_of_the_wrong_type_are_parse_errors() {
    for line in [
        r#"{"op":"campaign","campaign":5,"sku":1,"store":2,"quota":4294967296,"per_customer":0}"#,
        r#"{"op":"campaign","campaign":5,"sku":1,"store":2,"quota":1}"#,
        r#"{"op":"campaign","campaign":-0,"sku":1,"store":2,"quota":1,"per_customer":1}"#,
        r#"{"op":"reserve","id":7,"lines":[{"sku":1,"store":2,"qty":1}],"campaign":null,"customer":1}"#,
        r#"{"op":"reserve","id":7,"lines":[{"sku":1,"store":2,"qty":1}],"campaign":1,"customer":1.0}"#,
        r#"{"op":"set_reorder_point","sku":1,"store":2}"#,
    ] {
        assert_parse_error(line);
    }
}
