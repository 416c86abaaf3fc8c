//! `checkProductsRestrictions`: can the guest order these items now? (docs/protocol.md,
//! [code] only).
//!
//! Request: `items:[{id, quantity, modifier?:[{id, groupId?, quantity}]}]` (`modifiers` is
//! accepted too; a missing `quantity` means 1). The request is parsed into fixed-capacity
//! buffers: at most [`MAX_ITEMS`] items, [`MAX_MODIFIERS`] modifiers per item and ids of at most
//! [`MAX_ID`] bytes; beyond that the request is refused with FAIL `BAD_REQUEST` and a log line.
//!
//! For each requested item and modifier (in request order, modifiers after their item) the
//! answer has `{"id","name","available","exceedQuantity"}`:
//! - an item is looked up in `menu_items`, a modifier in `modifiers` (then `menu_items`);
//! - `available` = it exists, is active, and the total quantity asked for that id over the
//!   whole request is within its `stop_list` balance (no stop_list row = unlimited);
//! - `exceedQuantity` = total asked − balance, at least 0 (unknown or inactive: balance 0).
//!
//! `checkResult` is [`check_result::OK`] when every line is available, else
//! [`check_result::NOT_AVAILABLE`]. Both strings are [inferred] and live only here.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;

use super::{fail_body, substate, Answer, Ctx, OpError};
use crate::json::JsonBuf;
use crate::mirror::MirrorError;
use crate::money::Qty;
use crate::request::{parse_fields, Envelope};

/// Most items in one request.
pub const MAX_ITEMS: usize = 50;
/// Most modifiers on one item.
pub const MAX_MODIFIERS: usize = 10;
/// Longest id, in bytes.
pub const MAX_ID: usize = 64;

/// The `checkResult` values ([inferred]).
pub mod check_result {
    pub const OK: &str = "OK";
    pub const NOT_AVAILABLE: &str = "NOT_AVAILABLE";
}

pub const NEEDS: &[(&str, &[&str])] = &[
    ("menu_items", &["id", "name", "is_active"]),
    ("modifiers", &["id", "name", "is_active"]),
    ("stop_list", &["item_id", "remaining_milli"]),
];

type Id = heapless::String<MAX_ID>;

/// `groupId` is not needed for the check and is skipped unread.
#[derive(Deserialize)]
struct ModifierReq {
    id: Id,
    quantity: Option<Qty>,
}

#[derive(Deserialize)]
struct ItemReq {
    id: Id,
    quantity: Option<Qty>,
    #[serde(alias = "modifiers")]
    modifier: Option<heapless::Vec<ModifierReq, MAX_MODIFIERS>>,
}

/// One requested line, flattened: an item, then its modifiers.
struct Line {
    id: Id,
    qty: Qty,
    modifier: bool,
}

/// `items`, read one element at a time into a short list of lines (at most
/// `MAX_ITEMS * (1 + MAX_MODIFIERS)`): holding the whole array in fixed-capacity structs would
/// cost tens of KiB of stack per copy, and the parser copies often.
struct Lines(Vec<Line>);

impl<'de> Deserialize<'de> for Lines {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Lines;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "an array of at most {MAX_ITEMS} items")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Lines, A::Error> {
                let mut lines = Vec::new();
                let mut items = 0;
                while let Some(it) = seq.next_element::<ItemReq>()? {
                    items += 1;
                    if items > MAX_ITEMS {
                        return Err(serde::de::Error::invalid_length(items, &self));
                    }
                    lines.push(Line {
                        id: it.id,
                        qty: it.quantity.unwrap_or(Qty::ONE),
                        modifier: false,
                    });
                    for m in it.modifier.into_iter().flatten() {
                        lines.push(Line {
                            id: m.id,
                            qty: m.quantity.unwrap_or(Qty::ONE),
                            modifier: true,
                        });
                    }
                }
                Ok(Lines(lines))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
struct Fields {
    items: Option<Lines>,
}

/// What the mirror says about one id.
struct Known {
    name: String,
    active: bool,
    /// `None` = not on the stop list (unlimited).
    remaining: Option<Qty>,
}

fn lookup(conn: &Connection, id: &str, modifier: bool) -> Result<Option<Known>, MirrorError> {
    type NameActive = (Option<String>, Option<i64>);
    let find = |table: &str| -> Result<Option<NameActive>, MirrorError> {
        let sql = format!("SELECT name, is_active FROM {table} WHERE id = ?1 LIMIT 1");
        let mut st = conn.prepare_cached(&sql)?;
        st.query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(|e| MirrorError::in_query(&sql, e))
    };
    let found = if modifier {
        match find("modifiers")? {
            Some(f) => Some(f),
            None => find("menu_items")?,
        }
    } else {
        find("menu_items")?
    };
    let Some((name, active)) = found else {
        return Ok(None);
    };
    const STOP: &str = "SELECT remaining_milli FROM stop_list WHERE item_id = ?1 LIMIT 1";
    let mut st = conn.prepare_cached(STOP)?;
    let remaining: Option<Option<i64>> = st
        .query_row(params![id], |r| r.get(0))
        .optional()
        .map_err(|e| MirrorError::in_query(STOP, e))?;
    Ok(Some(Known {
        name: name.unwrap_or_default(),
        active: active.is_none_or(|a| a != 0),
        remaining: remaining.map(|r| Qty(r.unwrap_or(0).max(0))),
    }))
}

fn write_fail(j: &mut JsonBuf) {
    j.key("result")
        .begin_obj()
        .f_str("checkResult", check_result::NOT_AVAILABLE)
        .key("itemResults")
        .begin_arr()
        .end_arr()
        .end_obj();
}

pub fn handle(ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    let fields = match parse_fields::<Fields>(frame) {
        Ok(f) => f,
        Err(e) => {
            let msg = format!(
                "checkProductsRestrictions request is malformed or over the caps \
                 (at most {MAX_ITEMS} items, {MAX_MODIFIERS} modifiers per item, ids of {MAX_ID} bytes): {e}"
            );
            log_warn!("checkProductsRestrictions rID={rid}: {msg}");
            return fail_body(ctx, rid, substate::BAD_REQUEST, &msg, write_fail);
        }
    };
    let Some(Lines(lines)) = fields.items else {
        let msg = "checkProductsRestrictions needs items";
        log_warn!("checkProductsRestrictions rID={rid}: {msg}");
        return fail_body(ctx, rid, substate::BAD_REQUEST, msg, write_fail);
    };
    let total_for = |id: &str| Qty(lines.iter().filter(|l| l.id == id).map(|l| l.qty.0).sum());

    let mut j = ctx.body();
    j.begin_obj()
        .f_str("rID", rid)
        .key("result")
        .begin_obj()
        .key("itemResults")
        .begin_arr();
    let res = ctx.mirror.with(|c| {
        let mut all_ok = true;
        for l in &lines {
            let known = lookup(c, &l.id, l.modifier)?;
            let asked = total_for(&l.id);
            let (name, remaining) = match &known {
                Some(k) if k.active => (k.name.as_str(), k.remaining),
                Some(k) => (k.name.as_str(), Some(Qty(0))),
                None => ("", Some(Qty(0))),
            };
            let exceed = remaining.map_or(Qty(0), |r| Qty((asked.0 - r.0).max(0)));
            let available = matches!(&known, Some(k) if k.active) && exceed.0 == 0;
            all_ok &= available;
            j.begin_obj()
                .f_str("id", &l.id)
                .f_str("name", name)
                .f_bool("available", available)
                .f_qty("exceedQuantity", exceed)
                .end_obj();
        }
        Ok(all_ok)
    });
    match res {
        Ok(all_ok) => {
            let verdict = if all_ok {
                check_result::OK
            } else {
                check_result::NOT_AVAILABLE
            };
            j.end_arr()
                .f_str("checkResult", verdict)
                .end_obj()
                .end_obj();
            Answer::callback(j, format!("SUCCESS {verdict} lines={}", lines.len()))
        }
        Err(e) => {
            drop(j);
            fail_body(
                ctx,
                rid,
                substate::POS_UNAVAILABLE,
                &e.to_string(),
                write_fail,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request at every cap parses in a 256 KiB stack (unoptimised build): the blocking-pool
    /// thread that runs operations has 2 MiB, shared with SQLite and the rest of the call.
    #[test]
    fn full_request_parses_in_a_small_stack() {
        let id = "я".repeat(MAX_ID / 2);
        let m = format!(r#"{{"id":"{id}","groupId":"{id}","quantity":1.3}}"#);
        let item = format!(
            r#"{{"id":"{id}","quantity":0.5,"modifier":[{}]}}"#,
            [m.as_str(); MAX_MODIFIERS].join(",")
        );
        let frame = format!(
            r#"{{"rID":"a","operation":"checkProductsRestrictions","items":[{}]}}"#,
            vec![item.as_str(); MAX_ITEMS].join(",")
        );
        let n = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let f = parse_fields::<Fields>(frame.as_bytes()).unwrap();
                let lines = f.items.unwrap().0;
                assert_eq!(lines[0].qty, Qty(500));
                assert_eq!(lines[1].qty, Qty(1300));
                assert!(lines[1].modifier && !lines[0].modifier);
                lines.len()
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(n, MAX_ITEMS * (1 + MAX_MODIFIERS));
    }
}
