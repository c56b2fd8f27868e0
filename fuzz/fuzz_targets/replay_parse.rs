//! `replay_parse`: arbitrary bytes into the replay tool's line parser and its
//! line handler. Neither may panic, and:
//! - a blank line gets no answer, every other line exactly one;
//! - every answer is a JSON object whose `ok` is a boolean, and a line that
//!   does not parse is answered with exactly its `parse` error;
//! - a request that parses, written back as a replay line (by
//!   `replay::format_request` and by the fuzz targets' own writer), parses
//!   to the same request, and a command that serde_json reads through its
//!   derived serde form reads as the same command.
//!
//! The input is handled as one line, then split on `\n` as a script, all fed
//! to one replayer, so later lines act on the state earlier ones built.
#![no_main]

mod common;

use common::request_json;
use libfuzzer_sys::fuzz_target;
use omnistock::replay::{format_parse_error, format_request, parse_request, Replayer, Request};
use omnistock::Command;
use serde_json::Value;

fn check_line(replayer: &mut Replayer, line: &[u8]) {
    let parsed = parse_request(line);
    let answer = replayer.handle_line(line);
    match (&parsed, &answer) {
        (Ok(None), None) => {}
        (Ok(Some(request)), Some(answer)) => {
            check_answer(answer);
            // Both writers: the library's and the fuzz targets' own.
            for written in [format_request(request), request_json(request)] {
                let again = parse_request(written.as_bytes());
                assert_eq!(
                    again,
                    Ok(Some(request.clone())),
                    "round trip of {request:?} through {written}"
                );
            }
            if let Request::Command(command) = request {
                let line = std::str::from_utf8(line).expect("a line that parses is UTF-8");
                // serde_json alone may refuse a line the format accepts (a
                // number too large for f64, a lone surrogate in a field the
                // op ignores); what it does read must be the same command.
                if let Ok(derived) = serde_json::from_str::<Command>(line) {
                    assert_eq!(&derived, command, "derived serde form of {line}");
                }
            }
        }
        (Err(error), Some(answer)) => {
            check_answer(answer);
            assert_eq!(
                *answer,
                format_parse_error(error),
                "answer to an unreadable line"
            );
        }
        _ => panic!(
            "parse_request gave {parsed:?} but handle_line answered {answer:?} for {:?}",
            String::from_utf8_lossy(line)
        ),
    }
}

fn check_answer(answer: &str) {
    match serde_json::from_str::<Value>(answer) {
        Ok(Value::Object(members)) => assert!(
            matches!(members.get("ok"), Some(Value::Bool(_))),
            "answer without a boolean ok: {answer}"
        ),
        other => panic!("answer is not a JSON object: {answer} ({other:?})"),
    }
}

fuzz_target!(|data: &[u8]| {
    // One replayer (building one costs more than the rest of a run).
    let mut replayer = Replayer::new();
    check_line(&mut replayer, data);
    for line in data.split(|&byte| byte == b'\n') {
        check_line(&mut replayer, line);
    }
});
