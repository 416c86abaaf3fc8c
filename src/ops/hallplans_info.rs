//! `hallplansInfo`: the halls (docs/protocol.md, [code] only).

use super::{list, Answer, Ctx, OpError};
use crate::request::Envelope;

pub const NEEDS: &[(&str, &[&str])] = &[("halls", &["id", "name"])];

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let sql = "SELECT id, name FROM halls ORDER BY id";
    list::answer(ctx, env.rid.as_str(), "hallPlans", sql, NEEDS, |j, r| {
        let (id, name): (String, String) = (r.get(0)?, r.get(1)?);
        j.begin_obj()
            .f_str("id", &id)
            .f_str("name", &name)
            .end_obj();
        Ok(())
    })
}
