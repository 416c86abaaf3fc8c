//! `usersInfo`: the staff list (protocol reference §5.6), streamed from the mirror's `staff`.
//!
//! `roles` is a comma-separated text column in the mirror. The documentation shows it once as
//! a string (`"Офіціант, Кур'єр"`) and once as an array; the string form (roles joined with
//! `", "`) is the default, the array form is `[compat] users_roles = "array"`. A staff member
//! without roles or phone has the field omitted (the protocol omits empty fields, §3).

use super::{fail_body, Answer, Ctx, OpError, SUBSTATE_POS_UNAVAILABLE};
use crate::config::RolesForm;
use crate::json::JsonBuf;
use crate::mirror::MirrorError;
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
    let rid = env.rid.as_str();
    let form = ctx.cfg.compat.users_roles;
    let mut j = ctx.body();
    j.begin_obj().f_str("rID", rid).key("users").begin_arr();
    let max_rows = ctx.max_rows();
    let res = ctx.mirror.with(|c| {
        let mut st = c.prepare_cached(
            "SELECT CAST(id AS TEXT), name, CAST(cell_phone AS TEXT), roles FROM staff ORDER BY name, id",
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
            let phone: Option<String> = r.get(2)?;
            let roles: Option<String> = r.get(3)?;
            j.begin_obj()
                .f_str("id", &id)
                .f_str("name", name.as_deref().unwrap_or(""))
                .f_opt_str("cellPhone", phone.as_deref().filter(|p| !p.is_empty()));
            write_roles(&mut j, roles.as_deref(), form);
            j.end_obj();
            if j.overflowed() {
                break;
            }
        }
        Ok(n)
    });
    match res {
        Ok(n) => {
            j.end_arr().end_obj();
            Answer::callback(j, format!("SUCCESS users={n}"))
        }
        Err(e) => fail_body(ctx, rid, SUBSTATE_POS_UNAVAILABLE, &e.to_string(), |j| {
            j.key("users").begin_arr().end_arr();
        }),
    }
}
