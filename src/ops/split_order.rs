//! `splitOrder`: move chosen positions of a bill to a new bill (docs/protocol.md).
//!
//! The request is checked against the mirror before it is journaled: the bill is open and
//! `splitAvailable`, every position is on it (once), and each quantity is > 0 and at most the
//! line's count. What moves is [`plan`]'s, the rule docs/journal.md gives the POS: a listed
//! line moves `quantity` of its count and `sum × quantity ÷ count` of its sum (exact integer
//! arithmetic, half up per line), and the modifier lines hanging from it follow in the same
//! proportion. `controlSum` (its meaning is only [inferred]: the total of what is split off) is
//! compared with that total; a mismatch, or a `controlSum` missing or unreadable, is logged and
//! the split goes on, unless `[compat] strict_control_sum = true`, which answers FAIL
//! `WRONG_CONTROL_SUM` (`BAD_REQUEST` when missing/unreadable). Any refusal answers FAIL and
//! nothing is journaled: no money has moved yet.
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
    Kopecks(ratio(sum.0, qty.0, count.0))
}

/// `v × num ÷ den`, rounded half up, in i128 (`den` > 0, all values non-negative).
fn ratio(v: i64, num: i64, den: i64) -> i64 {
    let (v, n, d) = (v as i128, num as i128, den as i128);
    ((v * n * 2 + d) / (d * 2)) as i64
}

/// A line of the bill, as [`plan`] needs it.
#[derive(Debug, Clone, Copy)]
pub struct SplitLine<'a> {
    pub position_id: &'a str,
    pub linked_to: Option<&'a str>,
    pub count: Qty,
    pub sum: Kopecks,
}

impl<'a> From<&'a crate::mirror::orders::Position> for SplitLine<'a> {
    fn from(p: &'a crate::mirror::orders::Position) -> Self {
        SplitLine {
            position_id: &p.position_id,
            linked_to: p.linked_to.as_deref(),
            count: p.count,
            sum: p.sum,
        }
    }
}

/// What one line of the bill gives to the new bill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub position_id: String,
    /// Quantity moved (thousandths); the line's whole count when `whole`.
    pub count: Qty,
    /// Sum moved; the line's whole sum when `whole`.
    pub sum: Kopecks,
    /// The whole line moves (the parent keeps none of it).
    pub whole: bool,
}

/// Which lines move, and how much of each (docs/journal.md, "splitOrder"):
/// - a listed line moves `quantity` of its `count`, and `sum × quantity ÷ count` of its sum
///   (rounded half up to the kopeck; the whole sum when the whole count moves);
/// - a line linked to a listed line (its modifiers, directly or through another modifier)
///   follows it in the same proportion: `count × quantity ÷ dish count` (rounded half up to
///   the thousandth) and `sum × quantity ÷ dish count`; a part that rounds to no quantity
///   stays, and a part that rounds to the whole count takes the whole line;
/// - a listed line linked to another listed line follows that one (its own `quantity` is not
///   used), so nothing moves twice.
///
/// Positions are checked first (on the bill, listed once, 0 < quantity <= count).
pub fn plan(
    bill_id: &str,
    lines: &[SplitLine<'_>],
    positions: &[SplitPosition],
) -> Result<Vec<Move>, Failed> {
    let bad = |m: String| Failed {
        substate: substate::WRONG_POSITIONS,
        message: m,
    };
    if positions.is_empty() {
        return Err(bad("no positions to split".into()));
    }
    for (i, p) in positions.iter().enumerate() {
        if positions[..i].iter().any(|q| q.id == p.id) {
            return Err(bad(format!("position {} is listed twice", p.id)));
        }
        let Some(line) = lines.iter().find(|l| l.position_id == p.id.as_str()) else {
            return Err(bad(format!("position {} is not on bill {bill_id}", p.id)));
        };
        if p.quantity.0 <= 0 || p.quantity > line.count {
            return Err(bad(format!(
                "position {}: quantity {} is not within 0 < q <= {}",
                p.id, p.quantity, line.count
            )));
        }
    }
    let listed = |id: &str| positions.iter().find(|p| p.id.as_str() == id);
    let line = |id: &str| lines.iter().find(|l| l.position_id == id);
    let mut moves = Vec::new();
    for l in lines {
        // The outermost listed line among this line and the lines it hangs from.
        let mut mover = listed(l.position_id).map(|p| (l, p));
        let mut up = l.linked_to;
        let mut steps = 0;
        while let Some(id) = up {
            steps += 1;
            if steps > lines.len() {
                break; // a cycle of links: stop at what was found so far
            }
            let Some(parent) = line(id) else { break };
            if let Some(p) = listed(id) {
                mover = Some((parent, p));
            }
            up = parent.linked_to;
        }
        let Some((a, p)) = mover else { continue };
        let (q, of) = (p.quantity.0, a.count.0);
        let count = if q == of {
            l.count.0
        } else {
            ratio(l.count.0, q, of)
        };
        if count <= 0 {
            continue;
        }
        let whole = count >= l.count.0;
        moves.push(Move {
            position_id: l.position_id.to_string(),
            count: if whole { l.count } else { Qty(count) },
            sum: if whole {
                l.sum
            } else {
                Kopecks(ratio(l.sum.0, q, of))
            },
            whole,
        });
    }
    Ok(moves)
}

/// Check the split against the bill; returns the sum of what moves ([`plan`]). `strict`:
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
    let lines: Vec<SplitLine<'_>> = o.positions.iter().map(SplitLine::from).collect();
    let total = plan(&o.bill_id, &lines, &f.positions)?
        .iter()
        .fold(Kopecks::ZERO, |t, m| t + m.sum);
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
    let probe = NewCommand {
        rid,
        operation: "splitOrder",
        ..NewCommand::default()
    };
    let earlier = match ctx.journal.find_existing(&probe) {
        Ok(c) => c,
        Err(e) => {
            let bill = parse(frame).ok().map(|f| f.bill_id.to_string());
            let new = NewCommand {
                rid,
                operation: "splitOrder",
                bill_id: bill.as_deref(),
                request: std::str::from_utf8(frame).unwrap_or_default(),
                ..NewCommand::default()
            };
            return fail(ctx, rid, journaled::unrecorded(ctx, &new, &e));
        }
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

    fn line<'a>(id: &'a str, linked: Option<&'a str>, count: i64, sum: i64) -> SplitLine<'a> {
        SplitLine {
            position_id: id,
            linked_to: linked,
            count: Qty(count),
            sum: Kopecks(sum),
        }
    }

    fn pos(id: &str, q: i64) -> SplitPosition {
        SplitPosition {
            id: id.try_into().unwrap(),
            quantity: Qty(q),
        }
    }

    /// Two dumpling portions (190.00) with sour cream (15.00 for both) hanging from them, and
    /// a sauce hanging from the sour cream; a drink on its own.
    const LINES: [(&str, Option<&str>, i64, i64); 4] = [
        ("p-2", None, 2000, 19000),
        ("p-3", Some("p-2"), 2000, 1500),
        ("p-5", Some("p-3"), 1000, 301),
        ("p-4", None, 1000, 6000),
    ];

    fn lines() -> Vec<SplitLine<'static>> {
        LINES
            .iter()
            .map(|(i, l, c, s)| line(i, *l, *c, *s))
            .collect()
    }

    fn moved(m: &[Move]) -> Vec<(&str, i64, i64, bool)> {
        m.iter()
            .map(|m| (m.position_id.as_str(), m.count.0, m.sum.0, m.whole))
            .collect()
    }

    #[test]
    fn modifiers_follow_their_dish_whole_or_in_part() {
        let all = plan("b", &lines(), &[pos("p-2", 2000)]).unwrap();
        assert_eq!(
            moved(&all),
            [
                ("p-2", 2000, 19000, true),
                ("p-3", 2000, 1500, true),
                ("p-5", 1000, 301, true)
            ]
        );
        // One portion of two: half of each line below it, sums rounded half up per line.
        let half = plan("b", &lines(), &[pos("p-2", 1000)]).unwrap();
        assert_eq!(
            moved(&half),
            [
                ("p-2", 1000, 9500, false),
                ("p-3", 1000, 750, false),
                ("p-5", 500, 151, false)
            ]
        );
    }

    #[test]
    fn a_listed_modifier_of_a_listed_dish_moves_once_with_its_dish() {
        let m = plan("b", &lines(), &[pos("p-2", 1000), pos("p-3", 2000)]).unwrap();
        assert_eq!(m.iter().filter(|m| m.position_id == "p-3").count(), 1);
        assert_eq!(moved(&m)[1], ("p-3", 1000, 750, false), "the dish's share");
        // Listed without its dish, a modifier moves on its own.
        let m = plan("b", &lines(), &[pos("p-3", 2000), pos("p-4", 1000)]).unwrap();
        assert_eq!(
            moved(&m),
            [
                ("p-3", 2000, 1500, true),
                ("p-5", 1000, 301, true),
                ("p-4", 1000, 6000, true)
            ]
        );
    }

    #[test]
    fn a_part_that_rounds_to_nothing_stays_and_a_cycle_of_links_ends() {
        let tiny = [line("d", None, 3000, 900), line("m", Some("d"), 1, 7)];
        assert_eq!(
            moved(&plan("b", &tiny, &[pos("d", 1000)]).unwrap()),
            [("d", 1000, 300, false)],
            "a third of 0.001 rounds to none: the modifier stays whole"
        );
        let cycle = [
            line("a", Some("b"), 1000, 100),
            line("b", Some("a"), 1000, 200),
        ];
        let m = plan("b", &cycle, &[pos("a", 1000)]).unwrap();
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn positions_are_checked_before_anything_moves() {
        for (ps, needle) in [
            (vec![], "no positions"),
            (vec![pos("p-9", 1000)], "not on bill"),
            (vec![pos("p-2", 1000), pos("p-2", 1000)], "twice"),
            (vec![pos("p-2", 2001)], "not within"),
            (vec![pos("p-2", 0)], "not within"),
        ] {
            let e = plan("b", &lines(), &ps).expect_err("refused");
            assert_eq!(e.substate, substate::WRONG_POSITIONS);
            assert!(e.message.contains(needle), "{}", e.message);
        }
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
