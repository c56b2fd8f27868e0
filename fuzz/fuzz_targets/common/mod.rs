//! Helpers shared by the fuzz targets: writing a request as a replay-format
//! line (so a failing input prints a script for `cargo run --example
//! replay`), and small conversions. The engine-against-model driver and the
//! conservation checks are `omnistock::model`'s.
#![allow(dead_code)] // not every target uses every helper

use omnistock::replay::Request;
use omnistock::{Channel, Command, Line};
use std::fmt::Write as _;

/// `request` as one line of the replay format (`docs/CONTRACT.md`).
pub fn request_json(request: &Request) -> String {
    let mut out = String::new();
    match request {
        // Refusals and the fulfilment ops through the library's writer.
        Request::Refused(_) => out.push_str(&omnistock::replay::format_request(request)),
        Request::Advance { ms } => {
            let _ = write!(out, r#"{{"op":"advance","ms":{ms}}}"#);
        }
        Request::Command(command) => match command {
            Command::Restock { sku, store, qty } => {
                item_op(&mut out, "restock", sku.0, store.0, Some(*qty))
            }
            Command::SetOnHand {
                sku,
                store,
                qty,
                expect: None,
            } => item_op(&mut out, "set_on_hand", sku.0, store.0, Some(*qty)),
            Command::SetSafetyStock { sku, store, qty } => {
                item_op(&mut out, "set_safety_stock", sku.0, store.0, Some(*qty))
            }
            Command::Sell {
                sku,
                store,
                qty,
                channel,
            } => {
                let _ = write!(
                    out,
                    r#"{{"op":"sell","sku":{},"store":{},"qty":{qty},"channel":"{}"}}"#,
                    sku.0,
                    store.0,
                    channel.as_str()
                );
            }
            Command::Level { sku, store } => item_op(&mut out, "level", sku.0, store.0, None),
            Command::Reserve {
                id,
                channel,
                ttl_ms,
                lines,
            } => {
                let _ = write!(
                    out,
                    r#"{{"op":"reserve","id":{},"channel":"{}""#,
                    id.0,
                    channel.as_str()
                );
                if let Some(ttl) = ttl_ms {
                    let _ = write!(out, r#","ttl_ms":{ttl}"#);
                }
                out.push_str(r#","lines":["#);
                for (i, line) in lines.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(
                        out,
                        r#"{{"sku":{},"store":{},"qty":{}}}"#,
                        line.sku.0, line.store.0, line.qty
                    );
                }
                out.push_str("]}");
            }
            Command::Commit { id, lines: None } => id_op(&mut out, "commit", id.0),
            Command::Release { id } => id_op(&mut out, "release", id.0),
            Command::Get { id } => id_op(&mut out, "get", id.0),
            Command::Extend { id, ttl_ms } => {
                let _ = write!(out, r#"{{"op":"extend","id":{},"ttl_ms":{ttl_ms}}}"#, id.0);
            }
            Command::Expire => out.push_str(r#"{"op":"expire"}"#),
            _ => out.push_str(&omnistock::replay::format_request(request)),
        },
    }
    out
}

fn item_op(out: &mut String, op: &str, sku: u64, store: u64, qty: Option<u32>) {
    let _ = write!(out, r#"{{"op":"{op}","sku":{sku},"store":{store}"#);
    if let Some(qty) = qty {
        let _ = write!(out, r#","qty":{qty}"#);
    }
    out.push('}');
}

fn id_op(out: &mut String, op: &str, id: u64) {
    let _ = write!(out, r#"{{"op":"{op}","id":{id}}}"#);
}

/// The lines of a reservation request as a sorted multiset of
/// `(sku, store, qty)`, for comparing requests whose line order differs.
pub fn line_set(lines: &[Line]) -> Vec<(u64, u64, u32)> {
    let mut set: Vec<_> = lines.iter().map(|l| (l.sku.0, l.store.0, l.qty)).collect();
    set.sort_unstable();
    set
}

/// `Channel` from a fuzz-chosen flag.
pub fn channel(in_store: bool) -> Channel {
    if in_store {
        Channel::InStore
    } else {
        Channel::Online
    }
}
