//! `check` runs the operations: each read operation through `ops::handle`, as `run` computes
//! it (answers not kept, so every request reads the mirror), and the mirror reads of the
//! operations that change the POS (payBill, splitOrder, createOrderOnTable) by the functions
//! those operations call. Nothing is journaled, sent or written.
//!
//! getBill is asked for every table (by its number) and every open bill (by its id), up to a
//! bound; the other reads once. A FAIL that is not an expected answer (a table with no open
//! bill answers ORDER_NOT_FOUND) is an error of the operation, with the agent's own message:
//! for a column of the wrong storage class, that names the table, the column and the fix.

use std::sync::Arc;

use serde_json::Value;

use crate::callback::{BoxFuture, CallbackError, Deliver, Delivered};
use crate::config::Config;
use crate::ctx::Ctx;
use crate::mirror::{orders, MirrorError};
use crate::ops::{self, create_order_on_table, Answer, Op};
use crate::request::parse_envelope;

/// The operations run here answer with a body and deliver nothing: no callback client (and
/// no TLS set-up) is needed.
struct NoDelivery;

impl Deliver for NoDelivery {
    fn deliver<'a>(
        &'a self,
        _path: &'a str,
        _body: &'a crate::sign::SignedBody,
        _deadline: std::time::Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        Box::pin(async { Err(CallbackError::Setup("check delivers nothing".into())) })
    }
}

/// What running one operation showed.
#[derive(Debug, Default, Clone)]
pub struct Proof {
    /// What was run, in words ("12 table(s) by number and 4 open bill(s) by id").
    pub ran: String,
    /// Distinct failures: the message, how many requests met it, the first of them.
    pub errors: Vec<(String, u64, String)>,
}

impl Proof {
    /// Request `what` (e.g. `table 12`) failed with `message`.
    fn fail(&mut self, what: impl Into<String>, message: String) {
        match self.errors.iter_mut().find(|(m, _, _)| *m == message) {
            Some((_, n, _)) => *n += 1,
            None => self.errors.push((message, 1, what.into())),
        }
    }
}

/// Runs the operations `ops` (those whose tables and columns the mirror has) against the
/// mirror of `cfg`, each request at most `bound` times.
pub fn prove(cfg: &Config, ops: &[Op], bound: u64) -> Result<Vec<(Op, Proof)>, String> {
    let scratch = crate::scratch_dir::ScratchDir::new("check").map_err(|e| e.to_string())?;
    let mut cfg = cfg.clone();
    cfg.journal.path = Some(scratch.path().join("journal.sqlite"));
    cfg.limits.answer_cache_kib = 0;
    let cfg = Arc::new(cfg);
    let ctx = Ctx::new(cfg, Arc::new(NoDelivery));
    let bound = bound.clamp(1, i64::MAX as u64) as i64;
    let mut out = Vec::new();
    for &op in ops {
        let mut p = Proof::default();
        let ran = match op {
            Op::GetBill => get_bill(&ctx, bound, &mut p),
            Op::PayBill | Op::SplitOrder => whole_bills(&ctx, bound, &mut p),
            Op::CreateOrderOnTable => menu_lookups(&ctx, bound, &mut p),
            Op::CheckProductsRestrictions => restrictions(&ctx, bound, &mut p),
            Op::CheckWork => once(&ctx, op, &mut p, |v| {
                (v["readyToWork"] != Value::Bool(true))
                    .then(|| format!("readyToWork is {}", v["readyToWork"]))
            }),
            op if op.callback_path().is_some() && !op.mirror_needs().is_empty() => {
                once(&ctx, op, &mut p, |_| None)
            }
            _ => Ok("nothing to run".into()),
        };
        match ran {
            Ok(ran) => p.ran = ran,
            Err(e) => p.fail("reading what to ask for", e.to_string()),
        }
        out.push((op, p));
    }
    Ok(out)
}

/// The answer to `frame`, as JSON; `Ok(None)` for a body too large to hold (streamed by
/// `run`: its first pass read every row).
fn ask(ctx: &Ctx, op: Op, frame: &str) -> Result<Option<Value>, String> {
    let env = parse_envelope(frame.as_bytes()).map_err(|e| e.to_string())?;
    match ops::handle(op, ctx, &env, frame.as_bytes()) {
        Ok(Answer::Callback { body, .. }) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("the answer is not JSON: {e}")),
        Ok(Answer::Stream { .. }) => Ok(None),
        Ok(_) => Err("no answer body".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `FAIL <substate>: <message>` of a FAIL answer.
fn failure(v: &Value) -> Option<String> {
    (v["state"] == "FAIL").then(|| {
        format!(
            "FAIL {}: {}",
            v["substate"].as_str().unwrap_or("?"),
            v["errorMessage"].as_str().unwrap_or("")
        )
    })
}

/// One request of `op`; `extra` judges a SUCCESS answer.
fn once(
    ctx: &Ctx,
    op: Op,
    p: &mut Proof,
    extra: impl Fn(&Value) -> Option<String>,
) -> Result<String, MirrorError> {
    let frame = format!(r#"{{"rID":"check","operation":"{}"}}"#, op.name());
    match ask(ctx, op, &frame) {
        Ok(Some(v)) => {
            if let Some(f) = failure(&v).or_else(|| extra(&v)) {
                p.fail("the request", f);
            }
        }
        Ok(None) => {}
        Err(e) => p.fail("the request", e),
    }
    Ok("one request".into())
}

/// Up to `bound` values of the first column of `sql` (text).
fn column(ctx: &Ctx, sql: &str, bound: i64) -> Result<Vec<String>, MirrorError> {
    ctx.mirror.with(|c| {
        let mut st = c.prepare(sql)?;
        let rows = st
            .query_map([bound], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| MirrorError::in_query(sql, e))?;
        Ok(rows)
    })
}

fn open_bills(ctx: &Ctx, bound: i64) -> Result<Vec<String>, MirrorError> {
    column(
        ctx,
        "SELECT bill_id FROM orders WHERE state IN ('NEW', 'BILL') AND typeof(bill_id) = 'text' \
         ORDER BY bill_id LIMIT ?1",
        bound,
    )
}

fn get_bill(ctx: &Ctx, bound: i64, p: &mut Proof) -> Result<String, MirrorError> {
    let numbers = column(
        ctx,
        "SELECT CAST(number AS TEXT) FROM tables WHERE typeof(number) = 'integer' \
         ORDER BY number LIMIT ?1",
        bound,
    )?;
    for n in &numbers {
        let frame = format!(r#"{{"rID":"check","operation":"getBill","tableNumber":"{n}"}}"#);
        match ask(ctx, Op::GetBill, &frame) {
            Ok(Some(v)) if v["substate"] == "ORDER_NOT_FOUND" => {}
            Ok(Some(v)) => {
                if let Some(f) = failure(&v) {
                    p.fail(format!("table {n}"), f);
                }
            }
            Ok(None) => {}
            Err(e) => p.fail(format!("table {n}"), e),
        }
    }
    let bills = open_bills(ctx, bound)?;
    for b in &bills {
        let frame = serde_json::json!({"rID": "check", "operation": "getBill", "billId": b});
        match ask(ctx, Op::GetBill, &frame.to_string()) {
            Ok(Some(v)) => {
                if let Some(f) = failure(&v) {
                    p.fail(format!("open bill {b}"), f);
                }
            }
            Ok(None) => {}
            Err(e) => p.fail(format!("open bill {b}"), e),
        }
    }
    Ok(format!(
        "{} table(s) by number and {} open bill(s) by id",
        numbers.len(),
        bills.len()
    ))
}

/// payBill and splitOrder read each bill whole (head, lines, discounts) by its id.
fn whole_bills(ctx: &Ctx, bound: i64, p: &mut Proof) -> Result<String, MirrorError> {
    let bills = open_bills(ctx, bound)?;
    let max_rows = ctx.max_rows();
    // One read transaction for all of them; each bill's error is kept apart.
    let read = ctx.mirror.with(|c| {
        Ok(bills
            .iter()
            .map(|b| orders::order_by_id(c, b, max_rows))
            .collect::<Vec<_>>())
    })?;
    for (b, found) in bills.iter().zip(read) {
        match found {
            Ok(Some(o)) if o.is_open() => {}
            Ok(Some(o)) => p.fail(
                format!("open bill {b}"),
                format!("the bill reads as {} by its id", o.state),
            ),
            Ok(None) => p.fail(
                format!("open bill {b}"),
                "an open bill is not found by its id (orders.bill_id must be TEXT)".into(),
            ),
            Err(e) => p.fail(format!("open bill {b}"), e.to_string()),
        }
    }
    Ok(format!("{} open bill(s) read whole by id", bills.len()))
}

/// createOrderOnTable finds its table by id and each item by id (with its stop-list balance).
fn menu_lookups(ctx: &Ctx, bound: i64, p: &mut Proof) -> Result<String, MirrorError> {
    let tables = column(
        ctx,
        "SELECT CAST(id AS TEXT) FROM tables WHERE id IS NOT NULL ORDER BY 1 LIMIT ?1",
        bound,
    )?;
    let found = ctx.mirror.with(|c| {
        Ok(tables
            .iter()
            .map(|t| orders::table_by_id(c, t))
            .collect::<Vec<_>>())
    })?;
    for (t, found) in tables.iter().zip(found) {
        match found {
            Ok(Some(_)) => {}
            Ok(None) => p.fail(
                format!("table id '{t}'"),
                "a table is not found by `id = '<its id>'`: a view's id column must be TEXT \
                 (CAST(id AS TEXT))"
                    .into(),
            ),
            Err(e) => p.fail(format!("table id '{t}'"), e.to_string()),
        }
    }
    let mut items = 0;
    for (table, modifier) in [("menu_items", false), ("modifiers", true)] {
        let ids = column(
            ctx,
            &format!(
                "SELECT CAST(id AS TEXT) FROM {table} WHERE id IS NOT NULL ORDER BY 1 LIMIT ?1"
            ),
            bound,
        )?;
        items += ids.len();
        let found = ctx.mirror.with(|c| {
            Ok(ids
                .iter()
                .map(|id| create_order_on_table::menu_item(c, id, modifier))
                .collect::<Vec<_>>())
        })?;
        for (id, found) in ids.iter().zip(found) {
            match found {
                Ok(Some(_)) => {}
                Ok(None) => p.fail(
                    format!("{table} id '{id}'"),
                    format!(
                        "a {table} row is not found by `id = '<its id>'`: a view's id column \
                         must be TEXT (CAST(id AS TEXT))"
                    ),
                ),
                Err(e) => p.fail(format!("{table} id '{id}'"), e.to_string()),
            }
        }
    }
    Ok(format!(
        "{} table(s) and {items} menu item(s) and modifier(s) looked up by id",
        tables.len()
    ))
}

/// checkProductsRestrictions for the first dishes of the menu, as the guest's app asks.
fn restrictions(ctx: &Ctx, bound: i64, p: &mut Proof) -> Result<String, MirrorError> {
    let max = (ops::check_products_restrictions::MAX_ITEMS as i64).min(bound);
    let ids = column(
        ctx,
        "SELECT CAST(id AS TEXT) FROM menu_items WHERE id IS NOT NULL ORDER BY 1 LIMIT ?1",
        max,
    )?;
    if ids.is_empty() {
        return Ok("no dish to ask for".into());
    }
    let items: Vec<Value> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "quantity": 1}))
        .collect();
    let frame = serde_json::json!({
        "rID": "check", "operation": "checkProductsRestrictions", "items": items
    });
    match ask(ctx, Op::CheckProductsRestrictions, &frame.to_string()) {
        Ok(Some(v)) => {
            if let Some(f) = failure(&v) {
                p.fail("the request", f);
            }
        }
        Ok(None) => {}
        Err(e) => p.fail("the request", e),
    }
    Ok(format!("{} dish(es) in one request", ids.len()))
}
