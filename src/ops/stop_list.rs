//! `stopList`: items that are out or limited (protocol reference §5.8, [code] only).
//!
//! Answer: `{"rID","items":[{"id","quantity"}]}` from the mirror's `stop_list`. `quantity` is
//! the remaining balance and `0` means unavailable ([inferred]: the Go SDK also defines an
//! unused `{productId, balance}` shape). Items absent from `stop_list` are unlimited and not
//! listed.

use super::{fail_body, Answer, Ctx, OpError, SUBSTATE_POS_UNAVAILABLE};
use crate::mirror::MirrorError;
use crate::money::Qty;
use crate::request::Envelope;

pub const NEEDS: &[(&str, &[&str])] = &[("stop_list", &["item_id", "remaining_milli"])];

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    let mut j = ctx.body();
    j.begin_obj().f_str("rID", rid).key("items").begin_arr();
    let max_rows = ctx.max_rows();
    let res = ctx.mirror.with(|c| {
        let mut st = c.prepare_cached(
            "SELECT CAST(item_id AS TEXT), remaining_milli FROM stop_list ORDER BY 1",
        )?;
        let mut rows = st.query([])?;
        let mut n = 0usize;
        while let Some(r) = rows.next()? {
            n += 1;
            if n > max_rows {
                return Err(MirrorError::TooManyRows(max_rows));
            }
            let id: String = r.get(0)?;
            let left: Option<i64> = r.get(1)?;
            j.begin_obj()
                .f_str("id", &id)
                .f_qty("quantity", Qty(left.unwrap_or(0).max(0)))
                .end_obj();
            if j.overflowed() {
                break;
            }
        }
        Ok(n)
    });
    match res {
        Ok(n) => {
            j.end_arr().end_obj();
            Answer::callback(j, format!("SUCCESS items={n}"))
        }
        Err(e) => fail_body(ctx, rid, SUBSTATE_POS_UNAVAILABLE, &e.to_string(), |j| {
            j.key("items").begin_arr().end_arr();
        }),
    }
}

/// Whether the mirror can serve stopList now (versionInfo's `STOP_LIST.available`).
pub fn available(ctx: &Ctx) -> bool {
    ctx.mirror
        .with(|c| crate::mirror::check::missing(c, NEEDS))
        .is_ok_and(|m| m.is_empty())
}
