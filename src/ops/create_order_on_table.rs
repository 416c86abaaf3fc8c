//! `createOrderOnTable`: an order placed (and paid) from the menu (docs/protocol.md).
//!
//! Steps, as the protocol asks of the POS:
//! 1. Idempotency: a repeated rID, or a live order with the same `externalId`, answers the
//!    existing order's outcome; nothing new is journaled.
//! 2. Availability: the table exists, and every item (and modifier) is an active `menu_items`
//!    row not exhausted on the `stop_list` (a `stop_list` row limits the quantity to
//!    `remaining_milli`; no row means no limit). Otherwise FAIL `PRODUCT_UNAVAILABLE` /
//!    `TABLE_NOT_FOUND`; nothing is journaled. A mirror without `menu_items`/`stop_list`
//!    answers FAIL `POS_UNAVAILABLE` naming the missing table.
//! 3. The create-and-pay command is journaled with `sum_kop`, the order's price from the
//!    mirror's menu now (what the POS charges, docs/journal.md), and the agent waits for the
//!    POS, which creates the order, prints tickets, pays it, updates the mirror, then
//!    acknowledges with `result = {"orderId": …}`.
//! 4. The answer is `{"rID", "result": {"success", "stage", "rootOrder", "ordersSummary",
//!    "guests"}}` read from the mirror. `stage` and `orderStatus` carry the order's state
//!    (`PAYED` once paid) [inferred]. A FAIL also carries `state`/`substate`/`errorMessage` and
//!    `result.success = false` with `stage` set to the sub-state [inferred].
//!    createOrderOnTable always waits for the POS, whatever `ack_mode`.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;

use super::journaled::{self, Failed};
use super::{fail_body, substate, Answer, Ctx, OpError};
use crate::journal::store::{Dedup, NewCommand};
use crate::journal::Command;
use crate::json::JsonBuf;
use crate::json_in::Scalar;
use crate::mirror::orders::{self, Order};
use crate::mirror::{Conn, MirrorError};
use crate::money::{Kopecks, Qty};
use crate::request::{parse_fields, Envelope};
use crate::wire::order;

pub const NEEDS: &[(&str, &[&str])] = &[
    ("tables", &["id", "number"]),
    ("menu_items", &["id", "name", "price_kop", "is_active"]),
    ("modifiers", &["id", "name", "price_kop", "is_active"]),
    ("stop_list", &["item_id", "remaining_milli"]),
];

fn one() -> Qty {
    Qty::ONE
}

/// One modifier of an item: `{id, groupId?, quantity?}` (a missing `quantity` is 1).
#[derive(Debug, Deserialize)]
pub struct Modifier {
    pub id: String,
    /// Not needed by the check; read leniently (string or number).
    #[serde(rename = "groupId")]
    pub group_id: Option<Scalar>,
    #[serde(default = "one")]
    pub quantity: Qty,
}

/// One ordered item: `{id, quantity?, modifier?|modifiers?}` (a missing `quantity` is 1).
#[derive(Debug, Deserialize)]
pub struct Item {
    pub id: String,
    #[serde(default = "one")]
    pub quantity: Qty,
    #[serde(alias = "modifiers")]
    pub modifier: Option<Vec<Modifier>>,
}

/// The request's fields. `items` is read one element at a time onto the heap, so the only
/// bound on the order's size is the frame's (`[limits] max_message_bytes`): an order of 30
/// items × 5 modifiers is a few KiB. `fiscalData` is not read (it is in the journaled frame).
#[derive(Debug, Deserialize)]
pub struct Fields {
    #[serde(rename = "externalId")]
    pub external_id: String,
    #[serde(rename = "originName")]
    pub origin_name: Option<String>,
    #[serde(rename = "tableId")]
    pub table_id: String,
    pub items: Vec<Item>,
}

pub fn parse(frame: &[u8]) -> Result<Fields, String> {
    parse_fields::<Fields>(frame).map_err(|e| e.to_string())
}

/// A menu item as the mirror has it.
#[derive(Debug, Clone)]
pub struct MenuItem {
    pub id: String,
    pub name: String,
    pub price: Kopecks,
    pub active: bool,
    /// `None`: not on the stop list.
    pub remaining: Option<Qty>,
}

fn item_row(c: &Connection, table: &str, id: &str) -> Result<Option<MenuItem>, MirrorError> {
    // The id is cast as the menu casts it (the contract takes any storage class there).
    let sql =
        format!("SELECT CAST(id AS TEXT), name, price_kop, is_active FROM {table} WHERE id = ?1");
    let mut st = c.prepare_cached(&sql)?;
    st.query_row(params![id], |r| {
        Ok(MenuItem {
            id: r.get(0)?,
            name: r.get(1)?,
            price: Kopecks(r.get::<_, Option<i64>>(2)?.unwrap_or(0)),
            active: r.get::<_, Option<bool>>(3)?.unwrap_or(true),
            remaining: None,
        })
    })
    .optional()
    .map_err(|e| MirrorError::in_query(&sql, e))
}

/// An item (`menu_items`) or, for a modifier, `modifiers` then `menu_items`; with its
/// `stop_list` balance.
pub fn menu_item(
    c: &Connection,
    id: &str,
    modifier: bool,
) -> Result<Option<MenuItem>, MirrorError> {
    let found = if modifier {
        match item_row(c, "modifiers", id)? {
            Some(m) => Some(m),
            None => item_row(c, "menu_items", id)?,
        }
    } else {
        item_row(c, "menu_items", id)?
    };
    let Some(mut m) = found else {
        return Ok(None);
    };
    const STOP: &str = "SELECT remaining_milli FROM stop_list WHERE item_id = ?1";
    let mut st = c.prepare_cached(STOP)?;
    m.remaining = st
        .query_row(params![id], |r| r.get::<_, Option<i64>>(0))
        .optional()
        .map_err(|e| MirrorError::in_query(STOP, e))?
        .map(|v| Qty(v.unwrap_or(0)));
    Ok(Some(m))
}

/// `price × quantity`, rounded half up to the kopeck.
pub fn line_sum(price: Kopecks, qty: Qty) -> Kopecks {
    Kopecks(((price.0 as i128 * qty.0 as i128 * 2 + 1000) / 2000) as i64)
}

/// Check table and items; returns the order's price from the menu.
fn check(c: &Conn<'_>, f: &Fields) -> Result<Result<Kopecks, Failed>, MirrorError> {
    let bad = |s: &'static str, m: String| {
        Ok(Err(Failed {
            substate: s,
            message: m,
        }))
    };
    if orders::table_by_id(c, &f.table_id)?.is_none() {
        return bad(
            substate::TABLE_NOT_FOUND,
            format!("table {} does not exist", f.table_id),
        );
    }
    if f.items.is_empty() {
        return bad(substate::BAD_REQUEST, "the order has no items".into());
    }
    // (id, quantity, is a modifier) of every item and modifier, quantities of one id added up
    // (`index` finds an id's entry in constant time: the item count is bounded by the frame only).
    let mut wanted: Vec<(&str, Qty, bool)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for it in &f.items {
        let mods = it
            .modifier
            .iter()
            .flatten()
            .map(|m| (m.id.as_str(), m.quantity, true));
        for (id, q, is_mod) in std::iter::once((it.id.as_str(), it.quantity, false)).chain(mods) {
            if q.0 <= 0 {
                return bad(
                    substate::BAD_REQUEST,
                    format!("item {id}: quantity {q} must be > 0"),
                );
            }
            match index.get(id).and_then(|&i| wanted.get_mut(i)) {
                Some((_, t, _)) => t.0 = t.0.saturating_add(q.0),
                None => {
                    index.insert(id, wanted.len());
                    wanted.push((id, q, is_mod));
                }
            }
        }
    }
    let mut total = Kopecks::ZERO;
    for (id, q, is_mod) in wanted {
        let Some(m) = menu_item(c, id, is_mod)? else {
            return bad(
                substate::PRODUCT_UNAVAILABLE,
                format!("item {id} is not on the menu"),
            );
        };
        if !m.active {
            return bad(
                substate::PRODUCT_UNAVAILABLE,
                format!("{} ({id}) is not available", m.name),
            );
        }
        if let Some(left) = m.remaining.filter(|left| *left < q) {
            return bad(
                substate::PRODUCT_UNAVAILABLE,
                format!(
                    "{} ({id}) is on the stop list: {left} left, {q} wanted",
                    m.name
                ),
            );
        }
        total = total + line_sum(m.price, q);
    }
    Ok(Ok(total))
}

pub fn handle(ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    let f = match parse(frame) {
        Ok(f) => f,
        Err(e) => {
            log_warn!("createOrderOnTable rID={rid}: malformed request: {e}");
            return fail(
                ctx,
                rid,
                Failed {
                    substate: substate::BAD_REQUEST,
                    message: format!("malformed createOrderOnTable: {e}"),
                },
            );
        }
    };
    let request = std::str::from_utf8(frame).unwrap_or_default();
    let mut new = NewCommand {
        rid,
        operation: "createOrderOnTable",
        bill_id: None,
        external_id: Some(&f.external_id),
        request,
        sum_kop: None,
        tips_kop: None,
        review: None,
        dedup: Dedup::ExternalId,
    };
    // Repeats first: once created, the items may be on the stop list and the order must still
    // be found, not refused.
    let earlier = match ctx.journal.find_existing(&new) {
        Ok(c) => c,
        Err(e) => return fail(ctx, rid, journaled::unrecorded(ctx, &new, &e)),
    };
    let cmd = match earlier {
        Some(c) => {
            log_info!(
                "createOrderOnTable rID={rid} externalId={} is a repeat of #{} ({})",
                f.external_id,
                c.id,
                c.status.as_str()
            );
            c
        }
        None => {
            match ctx.mirror.with(|c| check(c, &f)) {
                Ok(Ok(sum)) => new.sum_kop = Some(sum.0),
                Ok(Err(failed)) => return fail(ctx, rid, failed),
                Err(e) => {
                    let message = match &e {
                        MirrorError::Schema(_) => format!(
                            "{e}: the menu and stop list are not mirrored, orders cannot be checked"
                        ),
                        _ => e.to_string(),
                    };
                    return fail(
                        ctx,
                        rid,
                        Failed {
                            substate: substate::POS_UNAVAILABLE,
                            message,
                        },
                    );
                }
            }
            match journaled::journal(ctx, &new) {
                Ok(j) => j.command().clone(),
                Err(failed) => return fail(ctx, rid, failed),
            }
        }
    };
    let rid = rid.to_string();
    journaled::settle(ctx, cmd, false, move |ctx, cmd| {
        let rid = rid.as_str();
        let cmd = match cmd {
            Ok(c) => c,
            Err(failed) => return fail(ctx, rid, failed),
        };
        if let Some(failed) = journaled::not_applied(ctx, &cmd) {
            return fail(ctx, rid, failed);
        }
        success(ctx, rid, &cmd).or_else(|failed| {
            log_error!(
                "createOrderOnTable rID={rid}: #{} applied, but {}",
                cmd.id,
                failed.message
            );
            fail(ctx, rid, failed)
        })
    })
}

fn success(ctx: &Ctx, rid: &str, cmd: &Command) -> Result<Answer, Failed> {
    let r = cmd.pos_result();
    let Some(order_id) = r.order_id.or(r.bill_id) else {
        return Err(Failed {
            substate: substate::POS_UNAVAILABLE,
            message: format!(
                "the POS applied order #{} without naming it (result.orderId)",
                cmd.id
            ),
        });
    };
    let found = ctx.mirror.with(|c| {
        let Some(o) = orders::order_by_id(c, &order_id, ctx.max_rows())? else {
            return Ok(None);
        };
        let table = match &o.table_id {
            Some(t) => orders::table_by_id(c, t)?.map(|t| t.number),
            None => None,
        };
        Ok(Some((o, table)))
    });
    let (o, table) = match found {
        Ok(Some(x)) => x,
        Ok(None) => {
            return Err(Failed {
                substate: substate::POS_UNAVAILABLE,
                message: format!(
                    "the POS created order {order_id} but the mirror does not show it"
                ),
            })
        }
        Err(e) => {
            return Err(Failed {
                substate: substate::POS_UNAVAILABLE,
                message: format!("order {order_id} created; the mirror cannot be read: {e}"),
            })
        }
    };
    let closed = cmd.applied_at.map(|ms| {
        let s = ms.div_euclid(1000);
        crate::clock::pos_datetime(s, crate::clock::local_offset(s))
    });
    let mut j = ctx.body();
    j.begin_obj().f_str("rID", rid).key("result").begin_obj();
    j.f_bool("success", true).f_str("stage", &o.state);
    j.key("rootOrder");
    write_summary(&mut j, &o, table, None);
    j.key("ordersSummary").begin_arr();
    write_summary(&mut j, &o, table, closed.as_deref());
    j.end_arr();
    j.key("guests");
    order::write_guests(&mut j, &o.positions, o.order_number);
    j.end_obj().end_obj();
    Answer::callback(j, format!("SUCCESS #{} order {order_id}", cmd.id)).map_err(|e| Failed {
        substate: substate::POS_UNAVAILABLE,
        message: e.to_string(),
    })
}

fn write_summary(j: &mut JsonBuf, o: &Order, table: Option<i64>, closed: Option<&str>) {
    j.begin_obj()
        .f_str("orderId", &o.bill_id)
        .f_int("orderNumber", o.order_number)
        .f_money("resultSum", o.total_sum)
        .f_str("orderStatus", &o.state)
        .f_opt_str("closed", closed);
    if let Some(n) = table {
        j.f_int("tableNumber", n);
    }
    j.f_opt_str("waiterId", o.waiter_id.as_deref())
        .f_opt_str("waiter", o.waiter_name.as_deref())
        .end_obj();
}

fn fail(ctx: &Ctx, rid: &str, f: Failed) -> Result<Answer, OpError> {
    fail_body(ctx, rid, f.substate, &f.message, |j| {
        j.key("result")
            .begin_obj()
            .f_bool("success", false)
            .f_str("stage", f.substate)
            .end_obj();
    })
}
