//! Answer lines: `{"ok":true, <the outcome's serde form>}`,
//! `{"ok":false, <the error's serde form>, "message":...}`, the `parse`
//! answer to a line that could not be read, and the answer to `advance`.
//! Members come in that order; strings are escaped by serde_json (quotes,
//! backslashes and control characters; everything else as is).

use super::ParseError;
use crate::command::Outcome;
use crate::error::Error;
use serde::Serialize;

#[derive(Serialize)]
struct Success<'a> {
    ok: bool,
    #[serde(flatten)]
    outcome: &'a Outcome,
}

#[derive(Serialize)]
struct Failure<'a> {
    ok: bool,
    #[serde(flatten)]
    error: &'a Error,
    message: String,
}

#[derive(Serialize)]
struct Unreadable<'a> {
    ok: bool,
    error: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
struct Now {
    ok: bool,
    now_ms: u64,
}

/// One answer line. The answer types have string keys and no serializer
/// that can fail, so serde_json cannot refuse them.
fn line(answer: &impl Serialize) -> String {
    serde_json::to_string(answer).expect("an answer serializes: string keys, no custom errors")
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
        Ok(outcome) => line(&Success { ok: true, outcome }),
        Err(error) => line(&Failure {
            ok: false,
            error,
            message: error.to_string(),
        }),
    }
}

/// The answer line (without its newline) to a line that could not be read:
/// `{"ok":false,"error":"parse","message":...}`.
#[must_use]
pub fn format_parse_error(error: &ParseError) -> String {
    line(&Unreadable {
        ok: false,
        error: "parse",
        message: error.message(),
    })
}

/// The answer line to `advance`: the clock's time after it.
pub(super) fn format_now(now_ms: u64) -> String {
    line(&Now { ok: true, now_ms })
}
