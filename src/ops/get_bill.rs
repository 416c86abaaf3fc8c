//! `getBill`: the open bill(s) on a table, or one bill by id (docs/protocol.md).
//!
//! - `billId` (pre-check QR): that bill if it is open; with `tableNumber` too, it must be on that table.
//! - `tableNumber` (table QR): every open bill on the table, oldest first.
//! - FAIL `TABLE_NOT_FOUND`: no such table. FAIL `ORDER_NOT_FOUND`: no open bill.
//! - `tableNumber` may arrive as a string (documented) or an integer (Go SDK); both are accepted.

use serde::Deserialize;

use super::{fail_body, kept, substate, Answer, Ctx, OpError};
use crate::json::JsonBuf;
use crate::json_in::Scalar;
use crate::mirror::orders::{self, Order};
use crate::mirror::rows::Budget;
use crate::request::{parse_fields, Envelope};
use crate::wire::order;

/// Both fields read leniently: a string, or a number taken as its text.
#[derive(Deserialize)]
struct Fields {
    #[serde(rename = "tableNumber")]
    table_number: Option<Scalar>,
    #[serde(rename = "billId")]
    bill_id: Option<Scalar>,
}

fn fields(frame: &[u8]) -> Result<(Option<String>, Option<String>), String> {
    let f = parse_fields::<Fields>(frame).map_err(|e| e.to_string())?;
    let text = |name: &str, v: Option<Scalar>| match v {
        None | Some(Scalar::Null) => Ok(None),
        Some(Scalar::Str(s) | Scalar::Num(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{name} is {}, not a string", other.kind())),
    };
    Ok((
        text("tableNumber", f.table_number)?,
        text("billId", f.bill_id)?,
    ))
}

pub fn handle(ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    let (table_number, bill_id) = match fields(frame) {
        Ok(f) => f,
        Err(e) => {
            return fail_body(
                ctx,
                rid,
                "ORDER_NOT_FOUND",
                &format!("malformed getBill request: {e}"),
                |_| {},
            )
        }
    };
    let table_number = table_number.filter(|t| !t.trim().is_empty());
    let bill_id = bill_id.filter(|b| !b.trim().is_empty());
    let echo_table = |j: &mut JsonBuf, t: &Option<String>| {
        if let Some(t) = t {
            j.f_str("tableNumber", t);
        }
    };
    if table_number.is_none() && bill_id.is_none() {
        return fail_body(
            ctx,
            rid,
            "ORDER_NOT_FOUND",
            "getBill needs tableNumber or billId",
            |_| {},
        );
    }

    let max_rows = ctx.max_rows();
    let key = answer_key(table_number.as_deref(), bill_id.as_deref());
    // The answer is written inside the read transaction, each line straight from its row, or
    // taken from the answers kept for this request at this very version of the mirror.
    let found = ctx.mirror.with(|c| {
        let version = kept::version(ctx, c, orders::NEEDS)?;
        if let Some((j, n)) = kept::serve(ctx, version, &key, rid) {
            return Ok(Lookup::Found(j, n));
        }
        let mut budget = Budget::new(max_rows);
        let table = match &table_number {
            Some(t) => match orders::table_by_number(c, t)? {
                Some(row) => Some(row),
                None => return Ok(Lookup::NoTable),
            },
            None => None,
        };
        let (list, number_from_bill) = match (&bill_id, &table) {
            (Some(b), _) => {
                let Some(o) = orders::head_by_id(c, b, &mut budget)?.filter(Order::is_open) else {
                    return Ok(Lookup::NoOrder(format!("bill {b} is not open")));
                };
                if let Some(t) = &table {
                    if o.table_id.as_deref() != Some(t.id.as_str()) {
                        return Ok(Lookup::NoOrder(format!(
                            "bill {b} is not on table {}",
                            t.number
                        )));
                    }
                }
                let number = match (&table, &o.table_id) {
                    (Some(t), _) => Some(t.number),
                    (None, Some(tid)) => orders::table_by_id(c, tid)?.map(|t| t.number),
                    (None, None) => None,
                };
                (vec![o], number.map(|n| n.to_string()))
            }
            (None, Some(t)) => {
                let list = orders::open_heads_on_table(c, &t.id, &mut budget)?;
                if list.is_empty() {
                    return Ok(Lookup::NoOrder(format!(
                        "no open bill on table {}",
                        t.number
                    )));
                }
                (list, None)
            }
            (None, None) => unreachable!("checked above"),
        };
        let echo = table_number.clone().or(number_from_bill);
        let (mut j, rest) = kept::begin(ctx, rid);
        j.f_str("state", "SUCCESS");
        echo_table(&mut j, &echo);
        j.key("orders").begin_arr();
        for o in &list {
            order::write_order_with(&mut j, o, |j, guests| {
                orders::for_each_line(c, &o.bill_id, &mut budget, |l| {
                    guests.dish(j, l, o.order_number)
                })
            })?;
        }
        j.end_arr().end_obj();
        kept::keep(ctx, version, &key, &j, rest, list.len());
        Ok(Lookup::Found(j, list.len()))
    });

    match found {
        Ok(Lookup::Found(j, n)) => Answer::callback(j, format!("SUCCESS orders={n}")),
        Ok(Lookup::NoTable) => fail_body(
            ctx,
            rid,
            "TABLE_NOT_FOUND",
            &format!(
                "table {} does not exist",
                table_number.as_deref().unwrap_or("?")
            ),
            |j| echo_table(j, &table_number),
        ),
        Ok(Lookup::NoOrder(msg)) => fail_body(ctx, rid, "ORDER_NOT_FOUND", &msg, |j| {
            echo_table(j, &table_number)
        }),
        Err(e) => fail_body(ctx, rid, substate::POS_UNAVAILABLE, &e.to_string(), |j| {
            echo_table(j, &table_number)
        }),
    }
}

/// What a getBill answer depends on besides the mirror: the fields as they arrived (the
/// table number is echoed as it came).
fn answer_key(table: Option<&str>, bill: Option<&str>) -> Vec<u8> {
    let mut key = b"getBill".to_vec();
    for field in [table, bill] {
        match field {
            None => key.push(0),
            Some(f) => {
                key.push(1);
                key.extend_from_slice(&(f.len() as u64).to_le_bytes());
                key.extend_from_slice(f.as_bytes());
            }
        }
    }
    key
}

enum Lookup {
    NoTable,
    NoOrder(String),
    /// The SUCCESS body and how many bills it holds.
    Found(JsonBuf, usize),
}
