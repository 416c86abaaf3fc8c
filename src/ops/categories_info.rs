//! `categoriesInfo`: product categories (docs/protocol.md, [code] only), streamed from
//! the mirror's `categories`. `type` is free text and omitted when NULL.

use super::{list, Answer, Ctx, OpError};
use crate::request::Envelope;

pub const NEEDS: &[(&str, &[&str])] = &[("categories", &["id", "name", "type"])];

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let sql = "SELECT CAST(id AS TEXT), name, type FROM categories ORDER BY name, id";
    list::answer(ctx, env.rid.as_str(), "categories", sql, NEEDS, |j, r| {
        let (id, name, kind): (String, Option<String>, Option<String>) =
            (r.get(0)?, r.get(1)?, r.get(2)?);
        j.begin_obj()
            .f_str("id", &id)
            .f_str("name", name.as_deref().unwrap_or(""))
            .f_opt_str("type", kind.as_deref())
            .end_obj();
        Ok(())
    })
}
