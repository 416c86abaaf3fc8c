//! `tablesInfo`: every table (docs/protocol.md), streamed row by row into the capped body.
//!
//! Each table: `{"id","name","number","hallplanId","hallPlanId"}`. The hall key is spelled
//! `hallplanId` on the official Postman page and `hallPlanId` in the Go SDK; by default both are
//! sent with the same value. `[compat] tables_hall_plan_key` picks one.

use super::{list, Answer, Ctx, OpError};
use crate::config::HallPlanKey;
use crate::request::Envelope;

pub const NEEDS: &[(&str, &[&str])] = &[("tables", &["id", "number", "name", "hall_id"])];

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let sql = "SELECT id, number, name, hall_id FROM tables ORDER BY number";
    let keys: &[&str] = match ctx.cfg.compat.tables_hall_plan_key {
        HallPlanKey::Both => &["hallplanId", "hallPlanId"],
        HallPlanKey::Lower => &["hallplanId"],
        HallPlanKey::Camel => &["hallPlanId"],
    };
    list::answer(ctx, env.rid.as_str(), "tables", sql, NEEDS, |j, r| {
        let (id, number): (String, i64) = (r.get(0)?, r.get(1)?);
        let (name, hall): (Option<String>, Option<String>) = (r.get(2)?, r.get(3)?);
        j.begin_obj()
            .f_str("id", &id)
            .f_str("name", name.as_deref().unwrap_or(""))
            .f_int("number", number);
        for k in keys {
            j.f_opt_str(*k, hall.as_deref());
        }
        j.end_obj();
        Ok(())
    })
}
