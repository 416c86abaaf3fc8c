//! `payBill`: record the guest's payment and close the bill (docs/protocol.md).
//!
//! The guest has already been charged when this arrives, so every payBill is journaled:
//!
//! - the bill is open and `sum` equals its `total_sum`: journaled `pending`; the agent waits for
//!   the POS to apply it and answers with the POS's real outcome (SUCCESS carries billId,
//!   orderNumber, waiter, waiterId and the closed bill's guests);
//! - unknown bill (`ORDER_NOT_FOUND`), bill already paid/closed (`ORDER_CLOSED`), a different
//!   sum (`WRONG_REQUEST_SUM`) or a malformed request (`BAD_REQUEST`): journaled with status
//!   `review` — kept for staff to reconcile, never applied automatically — and answered FAIL
//!   with that sub-state;
//! - an unreadable mirror: journaled `pending` anyway; the POS re-checks bill and sum when it
//!   applies (its duty per docs/journal.md) and rejects a mismatch;
//! - the same rID again: the stored outcome (waiting for it if still pending);
//! - another payment for a bill with a live (pending/claimed/applied) payment: the first
//!   payment's outcome; the repeat is kept as a `review` row pointing at it (`dup_of`, sub-state
//!   `DUPLICATE_PAYMENT`);
//! - the journal cannot be written within `[journal] busy_timeout_ms` of arrival (a POS holding
//!   its lock) or opened: the frame is spooled (fsync'd) and FAIL `JOURNAL_UNAVAILABLE`
//!   answered; the spool becomes a `review` row later (`journal/spool.rs`);
//! - the POS does not acknowledge within `[journal] pos_ack_timeout_secs`: FAIL `POS_TIMEOUT`;
//!   the command stays pending and is applied once when the POS gets to it;
//! - `[journal] ack_mode = "none"`: SUCCESS as soon as the row is committed, with the bill as
//!   the mirror shows it.
//!
//! The request is read leniently (the guest has paid; docs/protocol.md): only `billId`, `sum`
//! and `tips` are read, as numbers or decimal strings; `fiscalData`, `prepay` and any other
//! field are never parsed, whatever their shape, and the whole frame is journaled as it came.
//! A `tips` that is not a readable amount is logged and left out of `tips_kop`; the payment
//! goes on.

use serde::Deserialize;

use super::journaled::{self, Failed};
use super::{fail_body, substate, Answer, Ctx, OpError};
use crate::journal::store::{Dedup, NewCommand};
use crate::journal::{Command, Status};
use crate::json::JsonBuf;
use crate::json_in::Scalar;
use crate::mirror::orders::{self, Order};
use crate::money::Kopecks;
use crate::request::{parse_fields, Envelope};
use crate::wire::order;

pub const NEEDS: &[(&str, &[&str])] = orders::NEEDS;

/// The fields of the request the POS needs. Everything else (`fiscalData`, `prepay`, fields not
/// known yet) is not read at all: it is in the journaled frame, as it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub bill_id: String,
    pub sum: Kopecks,
    pub tips: Option<Kopecks>,
    /// Why `tips` was set aside (not a readable amount); the payment goes on without it.
    pub tips_note: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "billId")]
    bill_id: Option<Scalar>,
    sum: Option<Scalar>,
    tips: Option<Scalar>,
}

/// The frame's fields, leniently: `billId` a string (or a number), `sum` and `tips` a number or
/// a decimal string (`money::parse_wire`). Only a missing/unreadable `billId` or `sum` is an
/// error; an unreadable `tips` is set aside with a note.
pub fn parse(frame: &[u8]) -> Result<Fields, String> {
    let raw: Raw = parse_fields(frame).map_err(|e| e.to_string())?;
    let bill_id = match &raw.bill_id {
        None => return Err("billId is missing".into()),
        Some(v) => match v.text().map(str::trim) {
            Some(t) if !t.is_empty() => t.to_string(),
            Some(_) => return Err("billId is empty".into()),
            None => return Err(format!("billId is {}, not a string", v.kind())),
        },
    };
    let sum = match &raw.sum {
        None => return Err("sum is missing".into()),
        Some(v) => match v.text() {
            Some(t) => Kopecks::from_text(t).map_err(|e| format!("sum {}: {e}", shown(t)))?,
            None => return Err(format!("sum is {}, not an amount", v.kind())),
        },
    };
    let (tips, tips_note) = match &raw.tips {
        None | Some(Scalar::Null) => (None, None),
        Some(Scalar::Str(t)) if t.trim().is_empty() => (None, None),
        Some(v) => match v.text().map(|t| (t, Kopecks::from_text(t))) {
            Some((_, Ok(k))) => (Some(k), None),
            Some((t, Err(e))) => (None, Some(format!("tips {}: {e}", shown(t)))),
            None => (None, Some(format!("tips is {}, not an amount", v.kind()))),
        },
    };
    Ok(Fields {
        bill_id,
        sum,
        tips,
        tips_note,
    })
}

/// `billId` alone, when the other fields cannot be read (for the FAIL answer and the journal).
fn bill_id_only(frame: &[u8]) -> Option<String> {
    let raw: Raw = parse_fields(frame).ok()?;
    let t = raw.bill_id?.text()?.trim().to_string();
    (!t.is_empty()).then_some(t)
}

/// A value for an error message: quoted, at most 40 characters.
fn shown(t: &str) -> String {
    format!("{:?}", t.chars().take(40).collect::<String>())
}

pub fn handle(ctx: &Ctx, env: &Envelope, frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    let request = std::str::from_utf8(frame).unwrap_or_default();
    let fields = parse(frame);
    let fallback_bill = fields.is_err().then(|| bill_id_only(frame)).flatten();
    let (bill_id, sum, tips) = match &fields {
        Ok(f) => (Some(f.bill_id.as_str()), Some(f.sum.0), f.tips.map(|t| t.0)),
        Err(_) => (fallback_bill.as_deref(), None, None),
    };
    if let Ok(Fields {
        tips_note: Some(note),
        ..
    }) = &fields
    {
        log_warn!(
            "payBill rID={rid}: {note}; the payment goes on without tips (the journal keeps the frame as sent)"
        );
    }
    // Check the bill (the outcome decides pending vs review; the journal decides repeats).
    let mut snapshot: Option<Order> = None;
    let review: Option<(&str, String)> = match &fields {
        Err(e) => Some((substate::BAD_REQUEST, format!("malformed payBill: {e}"))),
        Ok(f) => match ctx
            .mirror
            .with(|c| orders::order_by_id(c, &f.bill_id, ctx.max_rows()))
        {
            // The mirror cannot be read: journal the payment as pending all the same. The POS
            // checks bill state and sum itself when it applies (docs/journal.md) and rejects a
            // mismatch; parking it in review would leave a paid bill open on the floor.
            Err(e) => {
                log_warn!(
                    "payBill rID={rid}: cannot check bill {} against the mirror ({e}); \
                     journaling it for the POS to check",
                    f.bill_id
                );
                None
            }
            Ok(None) => Some((
                substate::ORDER_NOT_FOUND,
                format!("bill {} does not exist in the POS", f.bill_id),
            )),
            Ok(Some(o)) if !o.is_open() => Some((
                substate::ORDER_CLOSED,
                format!("bill {} is already {} in the POS", f.bill_id, o.state),
            )),
            Ok(Some(o)) if o.total_sum != f.sum => Some((
                substate::WRONG_REQUEST_SUM,
                format!("POS total {} != paid {}", o.total_sum, f.sum),
            )),
            Ok(Some(o)) => {
                snapshot = Some(o);
                None
            }
        },
    };
    let new = NewCommand {
        rid,
        operation: "payBill",
        bill_id,
        external_id: None,
        request,
        sum_kop: sum,
        tips_kop: tips,
        review,
        dedup: Dedup::Bill,
    };
    let journaled = match journaled::journal(ctx, &new) {
        Ok(j) => j,
        Err(f) => return fail(ctx, rid, bill_id, f),
    };
    let (rid, checked_bill) = (rid.to_string(), bill_id.map(str::to_string));
    journaled::settle(ctx, journaled.command().clone(), true, move |ctx, cmd| {
        let rid = rid.as_str();
        let cmd = match cmd {
            Ok(c) => c,
            Err(f) => return fail(ctx, rid, checked_bill.as_deref(), f),
        };
        let bill_id = cmd.bill_id.clone();
        let acked_none =
            !cmd.status.is_final() && ctx.journal.ack_mode == crate::config::AckMode::None;
        if cmd.status == Status::Applied || acked_none {
            return success(ctx, rid, &cmd, snapshot);
        }
        match journaled::not_applied(ctx, &cmd) {
            Some(f) => fail(ctx, rid, bill_id.as_deref(), f),
            None => success(ctx, rid, &cmd, snapshot),
        }
    })
}

fn fail(ctx: &Ctx, rid: &str, bill_id: Option<&str>, f: Failed) -> Result<Answer, OpError> {
    fail_body(ctx, rid, f.substate, &f.message, |j| {
        j.f_opt_str("billId", bill_id)
            .f_str("stackTraceMessage", &f.message);
    })
}

/// SUCCESS with the bill as the mirror now shows it (closed by the POS), else as it was checked.
fn success(
    ctx: &Ctx,
    rid: &str,
    cmd: &Command,
    snapshot: Option<Order>,
) -> Result<Answer, OpError> {
    let bill_id = cmd.bill_id.clone().unwrap_or_default();
    let now = ctx
        .mirror
        .with(|c| orders::order_by_id(c, &bill_id, ctx.max_rows()));
    let order = match now {
        Ok(Some(o)) => Some(o),
        Ok(None) => snapshot,
        Err(e) => {
            log_warn!("payBill rID={rid}: paid bill {bill_id} cannot be re-read: {e}");
            snapshot
        }
    };
    let mut j = ctx.body();
    j.begin_obj()
        .f_str("rID", rid)
        .f_str("state", "SUCCESS")
        .f_str("billId", &bill_id);
    if let Some(o) = &order {
        write_paid(&mut j, o);
    }
    j.end_obj();
    Answer::callback(j, format!("SUCCESS #{} {}", cmd.id, cmd.status.as_str()))
}

fn write_paid(j: &mut JsonBuf, o: &Order) {
    j.f_int("orderNumber", o.order_number)
        .f_opt_str("waiter", o.waiter_name.as_deref())
        .f_opt_str("waiterId", o.waiter_id.as_deref());
    j.key("guests");
    order::write_guests(j, &o.positions, o.order_number);
}
