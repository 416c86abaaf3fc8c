//! `splitOrder`: move chosen positions of a bill to a new bill (docs/protocol.md).
//!
//! The request is checked against the mirror before it is journaled: the bill is open and
//! `splitAvailable`, every position is on it (once), and each quantity is > 0 and at most the
//! line's count. `controlSum` (its meaning is only [inferred]: the total of the chosen lines) is
//! compared with the chosen lines; a mismatch, or a `controlSum` missing or unreadable, is
//! logged and the split goes on, unless `[compat] strict_control_sum = true`, which answers FAIL
//! `WRONG_CONTROL_SUM` (`BAD_REQUEST` when missing/unreadable). A line taken whole counts its
//! `sum`; a part of a line counts `sum × quantity ÷ count`, in exact integer arithmetic, rounded
//! half up to the kopeck per line (the POS splits a line's sum the same way, see docs/journal.md).
//! Any mismatch answers FAIL and nothing is journaled: no money has moved yet.
//!
//! Then the command is journaled and the agent waits for the POS, which moves the positions,
//! updates the mirror, and only then acknowledges with `result = {"newBillId": …}`. The answer is
//! the getBill shape with two orders: the parent as it now stands and the new bill, both read
//! from the mirror. A repeated rID answers the stored outcome without checking again (the bill
//! has changed since). splitOrder always waits for the POS, whatever `ack_mode`: its answer is
//! made of the POS's result.

use serde::Deserialize;

use super::journaled::{self, Failed};
use super::{fail_body, substate, Answer, Ctx, OpError};
use crate::journal::store::{Dedup, NewCommand};
use crate::journal::Command;
use crate::json_in::{Capped, Scalar};
use crate::mirror::orders::{self, Order};
use crate::money::{Kopecks, Qty};
use crate::request::{parse_fields, Envelope};
use crate::wire::order;

pub const NEEDS: &[(&str, &[&str])] = orders::NEEDS;

/// Most positions one split may name.
pub const MAX_POSITIONS: usize = 64;

#[derive(Deserialize)]
pub struct SplitPosition {
    pub id: heapless::String<128>,
    pub quantity: Qty,
}

#[derive(Deserialize)]
pub struct Fields {
    #[serde(rename = "billId")]
    pub bill_id: heapless::String<128>,
    /// Read leniently (a number or a decimal string); checked in [`check`].
    #[serde(rename = "controlSum")]
    pub control_sum: Option<Scalar>,
    /// On the heap, at most [`MAX_POSITIONS`] (see `json_in::Capped`).
    pub positions: Capped<SplitPosition, MAX_POSITIONS>,
}

pub fn parse(frame: &[u8]) -> Result<Fields, String> {
    parse_fields::<Fields>(frame).map_err(|e| e.to_string())
}

/// The part of a line's sum that `qty` of its `count` carries: exact when whole, else
/// `sum × qty ÷ count` rounded half up (i128, no overflow for any accepted amount).
pub fn part_sum(sum: Kopecks, count: Qty, qty: Qty) -> Kopecks {
    if qty == count || count.0 <= 0 {
        return sum;
    }
    let (s, q, c) = (sum.0 as i128, qty.0 as i128, count.0 as i128);
    Kopecks(((s * q * 2 + c) / (c * 2)) as i64)
}

/// Check the split against the bill; returns the sum of the chosen lines. `strict`:
/// `[compat] strict_control_sum`.
pub fn check(o: &Order, f: &Fields, strict: bool) -> Result<Kopecks, Failed> {
    let bad = |s: &'static str, m: String| {
        Err(Failed {
            substate: s,
            message: m,
        })
    };
    if !o.is_open() {
        return bad(
            substate::ORDER_NOT_FOUND,
            format!("bill {} is not open ({})", o.bill_id, o.state),
        );
    }
    if !o.split_available {
        return bad(
            substate::SPLIT_NOT_AVAILABLE,
            format!("bill {} cannot be split", o.bill_id),
        );
    }
    if f.positions.is_empty() {
        return bad(substate::WRONG_POSITIONS, "no positions to split".into());
    }
    let mut total = Kopecks::ZERO;
    for (i, p) in f.positions.iter().enumerate() {
        if f.positions[..i].iter().any(|q| q.id == p.id) {
            return bad(
                substate::WRONG_POSITIONS,
                format!("position {} is listed twice", p.id),
            );
        }
        let Some(line) = o.positions.iter().find(|l| l.position_id == p.id.as_str()) else {
            return bad(
                substate::WRONG_POSITIONS,
                format!("position {} is not on bill {}", p.id, o.bill_id),
            );
        };
        if p.quantity.0 <= 0 || p.quantity > line.count {
            return bad(
                substate::WRONG_POSITIONS,
                format!(
                    "position {}: quantity {} is not within 0 < q <= {}",
                    p.id, p.quantity, line.count
                ),
            );
        }
        total = total + part_sum(line.sum, line.count, p.quantity);
    }
    let control = match &f.control_sum {
        None | Some(Scalar::Null) => Err("controlSum is missing".to_string()),
        Some(v) => match v.text() {
            Some(t) => Kopecks::from_text(t).map_err(|e| format!("controlSum {t:?}: {e}")),
            None => Err(format!("controlSum is {}, not an amount", v.kind())),
        },
    };
    let problem = match control {
        Ok(c) if c == total => return Ok(total),
        Ok(c) => (
            substate::WRONG_CONTROL_SUM,
            format!("controlSum {c} != chosen lines {total}"),
        ),
        Err(e) => (substate::BAD_REQUEST, e),
    };
    if strict {
        return bad(problem.0, problem.1);
    }
    log_warn!(
        "splitOrder bill {}: {}; splitting anyway ([compat] strict_control_sum = false)",
        o.bill_id,
        problem.1
    );
    Ok(total)
}

pub fn handle(ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    // A repeated rID answers from the journal: the bill was changed by the first one.
    let earlier = match ctx.journal.by_rid(rid) {
        Ok(c) => c,
        Err(e) => return fail(ctx, rid, Failed::journal_unreadable(e)),
    };
    let cmd = match earlier {
        Some(c) => {
            log_info!(
                "splitOrder rID={rid} is a repeat of #{} ({})",
                c.id,
                c.status.as_str()
            );
            c
        }
        None => match journal_new(ctx, rid, frame) {
            Ok(c) => c,
            Err(f) => return fail(ctx, rid, f),
        },
    };
    let rid = rid.to_string();
    journaled::settle(ctx, cmd, false, move |ctx, cmd| {
        let rid = rid.as_str();
        let cmd = match cmd {
            Ok(c) => c,
            Err(f) => return fail(ctx, rid, f),
        };
        if let Some(f) = journaled::not_applied(ctx, &cmd) {
            return fail(ctx, rid, f);
        }
        match success(ctx, rid, &cmd) {
            Ok(a) => Ok(a),
            Err(f) => {
                log_error!(
                    "splitOrder rID={rid}: #{} applied, but {}",
                    cmd.id,
                    f.message
                );
                fail(ctx, rid, f)
            }
        }
    })
}

fn journal_new(ctx: &Ctx, rid: &str, frame: &[u8]) -> Result<Command, Failed> {
    let f = parse(frame).map_err(|e| Failed {
        substate: substate::BAD_REQUEST,
        message: format!("malformed splitOrder: {e}"),
    })?;
    let order = ctx
        .mirror
        .with(|c| orders::order_by_id(c, &f.bill_id, ctx.max_rows()))
        .map_err(|e| Failed {
            substate: substate::POS_UNAVAILABLE,
            message: e.to_string(),
        })?
        .ok_or_else(|| Failed {
            substate: substate::ORDER_NOT_FOUND,
            message: format!("bill {} does not exist", f.bill_id),
        })?;
    let sum = check(&order, &f, ctx.cfg.compat.strict_control_sum)?;
    let new = NewCommand {
        rid,
        operation: "splitOrder",
        bill_id: Some(&f.bill_id),
        external_id: None,
        request: std::str::from_utf8(frame).unwrap_or_default(),
        sum_kop: Some(sum.0),
        tips_kop: None,
        review: None,
        dedup: Dedup::RidOnly,
    };
    Ok(journaled::journal(ctx, &new)?.command().clone())
}

fn success(ctx: &Ctx, rid: &str, cmd: &Command) -> Result<Answer, Failed> {
    let parent_id = cmd.bill_id.clone().unwrap_or_default();
    let Some(child_id) = cmd.pos_result().new_bill_id else {
        return Err(Failed {
            substate: substate::POS_UNAVAILABLE,
            message: format!(
                "the POS applied split #{} without naming the new bill",
                cmd.id
            ),
        });
    };
    let found = ctx.mirror.with(|c| {
        let parent = orders::order_by_id(c, &parent_id, ctx.max_rows())?;
        let child = orders::order_by_id(c, &child_id, ctx.max_rows())?;
        let table = match parent.as_ref().and_then(|p| p.table_id.clone()) {
            Some(t) => orders::table_by_id(c, &t)?.map(|t| t.number),
            None => None,
        };
        Ok((parent, child, table))
    });
    let (parent, child, table) = match found {
        Ok((Some(p), Some(c), t)) => (p, c, t),
        Ok(_) => {
            return Err(Failed {
                substate: substate::POS_UNAVAILABLE,
                message: format!(
                    "the POS applied split #{} but the mirror does not show bills {parent_id} and {child_id}",
                    cmd.id
                ),
            })
        }
        Err(e) => {
            return Err(Failed {
                substate: substate::POS_UNAVAILABLE,
                message: format!("split #{} applied; the mirror cannot be read: {e}", cmd.id),
            })
        }
    };
    let mut j = ctx.body();
    j.begin_obj().f_str("rID", rid).f_str("state", "SUCCESS");
    if let Some(n) = table {
        j.f_str("tableNumber", &n.to_string());
    }
    j.key("orders").begin_arr();
    order::write_order(&mut j, &parent);
    order::write_order(&mut j, &child);
    j.end_arr().end_obj();
    Answer::callback(j, format!("SUCCESS #{} new bill {child_id}", cmd.id)).map_err(|e| Failed {
        substate: substate::POS_UNAVAILABLE,
        message: e.to_string(),
    })
}

fn fail(ctx: &Ctx, rid: &str, f: Failed) -> Result<Answer, OpError> {
    fail_body(ctx, rid, f.substate, &f.message, |_| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_small_on_the_stack_and_its_positions_capped() {
        // The positions live on the heap: a fixed-capacity array here was copied by the parser
        // into a 124 KiB stack frame on the event loop.
        assert!(
            std::mem::size_of::<Fields>() <= 512,
            "{}",
            std::mem::size_of::<Fields>()
        );
        let pos = |n: usize| {
            (0..n)
                .map(|i| format!(r#"{{"id":"p-{i}","quantity":1}}"#))
                .collect::<Vec<_>>()
                .join(",")
        };
        let frame = |n| {
            format!(
                r#"{{"billId":"b","controlSum":1,"positions":[{}]}}"#,
                pos(n)
            )
        };
        let f = parse(frame(MAX_POSITIONS).as_bytes()).unwrap();
        assert_eq!(f.positions.len(), MAX_POSITIONS);
        assert_eq!(f.positions[3].id.as_str(), "p-3");
        let e = parse(frame(MAX_POSITIONS + 1).as_bytes())
            .err()
            .expect("one too many");
        assert!(e.contains("at most 64"), "{e}");
    }

    #[test]
    fn part_sum_is_exact_and_rounds_half_up() {
        // Whole lines keep their exact sum.
        assert_eq!(
            part_sum(Kopecks(108_060), Qty(1000), Qty(1000)),
            Kopecks(108_060)
        );
        // 10.00 for 3: one third is 3.333… -> 3.33, two thirds 6.666… -> 6.67.
        assert_eq!(part_sum(Kopecks(1000), Qty(3000), Qty(1000)), Kopecks(333));
        assert_eq!(part_sum(Kopecks(1000), Qty(3000), Qty(2000)), Kopecks(667));
        // Exactly half a kopeck rounds up: 0.05 for 2, half of it is 0.025 -> 0.03.
        assert_eq!(part_sum(Kopecks(5), Qty(2000), Qty(1000)), Kopecks(3));
        // Weighed line: 227.50 for 0.350 kg, 0.1 kg of it = 65.00.
        assert_eq!(
            part_sum(Kopecks(22_750), Qty(350), Qty(100)),
            Kopecks(6_500)
        );
        // No overflow at the largest accepted amounts.
        let big = Kopecks(crate::money::MAX_KOPECKS);
        let q = Qty(crate::money::MAX_QTY_MILLI);
        assert_eq!(part_sum(big, q, Qty(q.0 / 2)), Kopecks(big.0 / 2));
    }
}
