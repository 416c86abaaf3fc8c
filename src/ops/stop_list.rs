//! `stopList`: items that are out or limited (docs/protocol.md, [code] only).
//!
//! Answer: `{"rID","items":[{"id","quantity","productId","balance"}]}` from the mirror's
//! `stop_list`. `quantity` is the remaining balance (fractional for weighed goods) and `0` means
//! unavailable [inferred]. The Go SDK also defines a `{productId, balance}` shape, so both are
//! sent: `productId` = `id`, `balance` = the balance rounded down to a whole unit (an integer).
//! Items absent from `stop_list` are unlimited and not listed.

use super::{list, Answer, Ctx, OpError};
use crate::money::Qty;
use crate::request::Envelope;

pub const NEEDS: &[(&str, &[&str])] = &[("stop_list", &["item_id", "remaining_milli"])];

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let sql = "SELECT CAST(item_id AS TEXT), remaining_milli FROM stop_list ORDER BY 1";
    list::answer(ctx, env.rid.as_str(), "items", sql, NEEDS, |j, r| {
        let (id, left): (String, Option<i64>) = (r.get(0)?, r.get(1)?);
        let left = Qty(left.unwrap_or(0).max(0));
        j.begin_obj()
            .f_str("id", &id)
            .f_qty("quantity", left)
            .f_str("productId", &id)
            .f_int("balance", left.0 / 1000)
            .end_obj();
        Ok(())
    })
}

/// Whether the mirror can serve stopList now (versionInfo's `STOP_LIST.available`).
pub fn available(ctx: &Ctx) -> bool {
    ctx.mirror
        .with(|c| crate::mirror::check::missing(c, NEEDS))
        .is_ok_and(|m| m.is_empty())
}
