//! `hallplansInfo`: the halls (protocol reference §5.5, [code] only).

use super::{fail_body, Answer, Ctx, OpError, SUBSTATE_POS_UNAVAILABLE};
use crate::mirror::MirrorError;
use crate::request::Envelope;

pub const NEEDS: &[(&str, &[&str])] = &[("halls", &["id", "name"])];

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    let mut j = ctx.body();
    j.begin_obj().f_str("rID", rid).key("hallPlans").begin_arr();
    let max_rows = ctx.max_rows();
    let res = ctx.mirror.with(|c| {
        let mut st = c.prepare_cached("SELECT id, name FROM halls ORDER BY id")?;
        let mut rows = st.query([])?;
        let mut n = 0usize;
        while let Some(r) = rows.next()? {
            n += 1;
            if n > max_rows {
                return Err(MirrorError::TooManyRows(max_rows));
            }
            let id: String = r.get(0)?;
            let name: String = r.get(1)?;
            j.begin_obj()
                .f_str("id", &id)
                .f_str("name", &name)
                .end_obj();
        }
        Ok(n)
    });
    match res {
        Ok(n) => {
            j.end_arr().end_obj();
            Answer::callback(j, format!("SUCCESS halls={n}"))
        }
        Err(e) => fail_body(ctx, rid, SUBSTATE_POS_UNAVAILABLE, &e.to_string(), |j| {
            j.key("hallPlans").begin_arr().end_arr();
        }),
    }
}
