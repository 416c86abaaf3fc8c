//! `usersInfo`: the staff list (docs/protocol.md), streamed from the mirror's `staff`.
//!
//! `roles` is a comma-separated text column in the mirror. The documentation shows it once as
//! a string (`"Офіціант, Кур'єр"`) and once as an array; the string form (roles joined with
//! `", "`) is the default, the array form is `[compat] users_roles = "array"`. A staff member
//! without roles or phone has the field omitted (the protocol omits empty fields, §3).

use super::{list, Answer, Ctx, OpError};
use crate::config::RolesForm;
use crate::json::JsonBuf;
use crate::request::Envelope;

pub const NEEDS: &[(&str, &[&str])] = &[("staff", &["id", "name", "cell_phone", "roles"])];

/// The roles in a `roles` column value, trimmed, empties dropped.
pub fn split_roles(roles: &str) -> impl Iterator<Item = &str> {
    roles.split(',').map(str::trim).filter(|r| !r.is_empty())
}

fn write_roles(j: &mut JsonBuf, roles: Option<&str>, form: RolesForm) {
    let Some(roles) = roles else { return };
    if split_roles(roles).next().is_none() {
        return;
    }
    match form {
        RolesForm::String => {
            let joined: Vec<&str> = split_roles(roles).collect();
            j.f_str("roles", &joined.join(", "));
        }
        RolesForm::Array => {
            j.key("roles").begin_arr();
            for r in split_roles(roles) {
                j.str(r);
            }
            j.end_arr();
        }
    }
}

pub fn handle(ctx: &Ctx, env: &Envelope, _frame: &[u8]) -> Result<Answer, OpError> {
    let form = ctx.cfg.compat.users_roles;
    let sql = "SELECT CAST(id AS TEXT), name, CAST(cell_phone AS TEXT), roles FROM staff ORDER BY name, id";
    list::answer(ctx, env.rid.as_str(), "users", sql, NEEDS, |j, r| {
        let (id, name): (String, Option<String>) = (r.get(0)?, r.get(1)?);
        let (phone, roles): (Option<String>, Option<String>) = (r.get(2)?, r.get(3)?);
        j.begin_obj()
            .f_str("id", &id)
            .f_str("name", name.as_deref().unwrap_or(""))
            .f_opt_str("cellPhone", phone.as_deref().filter(|p| !p.is_empty()));
        write_roles(j, roles.as_deref(), form);
        j.end_obj();
        Ok(())
    })
}
