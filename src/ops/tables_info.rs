//! `tablesInfo`: every table (protocol reference §5.4), streamed row by row into the capped body.

use super::{list, Answer, Ctx, OpError};
use crate::request::Envelope;

pub const NEEDS: &[(&str, &[&str])] = &[("tables", &["id", "number", "name", "hall_id"])];

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let sql = "SELECT id, number, name, hall_id FROM tables ORDER BY number";
    list::answer(ctx, env.rid.as_str(), "tables", sql, |j, r| {
        let (id, number): (String, i64) = (r.get(0)?, r.get(1)?);
        let (name, hall): (Option<String>, Option<String>) = (r.get(2)?, r.get(3)?);
        j.begin_obj()
            .f_str("id", &id)
            .f_str("name", name.as_deref().unwrap_or(""))
            .f_int("number", number)
            .f_opt_str("hallPlanId", hall.as_deref())
            .end_obj();
        Ok(())
    })
}
