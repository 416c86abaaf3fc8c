//! `categoriesInfo`: product categories (protocol reference §5.7, [code] only), streamed from
//! the mirror's `categories`. `type` is free text and omitted when NULL.

use super::{fail_body, Answer, Ctx, OpError, SUBSTATE_POS_UNAVAILABLE};
use crate::mirror::MirrorError;
use crate::request::Envelope;

pub const NEEDS: &[(&str, &[&str])] = &[("categories", &["id", "name", "type"])];

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let rid = env.rid.as_str();
    let mut j = ctx.body();
    j.begin_obj()
        .f_str("rID", rid)
        .key("categories")
        .begin_arr();
    let max_rows = ctx.max_rows();
    let res = ctx.mirror.with(|c| {
        let mut st = c.prepare_cached(
            "SELECT CAST(id AS TEXT), name, type FROM categories ORDER BY name, id",
        )?;
        let mut rows = st.query([])?;
        let mut n = 0usize;
        while let Some(r) = rows.next()? {
            n += 1;
            if n > max_rows {
                return Err(MirrorError::TooManyRows(max_rows));
            }
            let id: String = r.get(0)?;
            let name: Option<String> = r.get(1)?;
            let kind: Option<String> = r.get(2)?;
            j.begin_obj()
                .f_str("id", &id)
                .f_str("name", name.as_deref().unwrap_or(""))
                .f_opt_str("type", kind.as_deref())
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
            Answer::callback(j, format!("SUCCESS categories={n}"))
        }
        Err(e) => fail_body(ctx, rid, SUBSTATE_POS_UNAVAILABLE, &e.to_string(), |j| {
            j.key("categories").begin_arr().end_arr();
        }),
    }
}
