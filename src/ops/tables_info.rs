//! `tablesInfo`: every table (protocol reference §5.4), streamed row by row into the capped body.

use super::{fail_body, Answer, Ctx, OpError, SUBSTATE_POS_UNAVAILABLE};
use crate::mirror::MirrorError;
use crate::request::Envelope;

pub const NEEDS: &[(&str, &[&str])] = &[("tables", &["id", "number", "name", "hall_id"])];

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    let mut j = ctx.body();
    j.begin_obj().f_str("rID", rid).key("tables").begin_arr();
    let max_rows = ctx.max_rows();
    let res = ctx.mirror.with(|c| {
        let mut st =
            c.prepare_cached("SELECT id, number, name, hall_id FROM tables ORDER BY number")?;
        let mut rows = st.query([])?;
        let mut n = 0usize;
        while let Some(r) = rows.next()? {
            n += 1;
            if n > max_rows {
                return Err(MirrorError::TooManyRows(max_rows));
            }
            let id: String = r.get(0)?;
            let name: Option<String> = r.get(2)?;
            let hall: Option<String> = r.get(3)?;
            j.begin_obj()
                .f_str("id", &id)
                .f_str("name", name.as_deref().unwrap_or(""))
                .f_int("number", r.get(1)?);
            j.f_opt_str("hallPlanId", hall.as_deref()).end_obj();
            if j.overflowed() {
                break;
            }
        }
        Ok(n)
    });
    match res {
        Ok(n) => {
            j.end_arr().end_obj();
            Answer::callback(j, format!("SUCCESS tables={n}"))
        }
        // tablesInfo has no documented FAIL shape; send state/substate so the cloud sees why.
        Err(e) => fail_body(ctx, rid, SUBSTATE_POS_UNAVAILABLE, &e.to_string(), |j| {
            j.key("tables").begin_arr().end_arr();
        }),
    }
}
