//! The shape shared by the list operations (tablesInfo, hallplansInfo, usersInfo,
//! categoriesInfo, stopList): `{"rID":…,"<key>":[…]}`, one element per mirror row, streamed
//! straight from SQLite into the capped body. Each operation keeps its SQL and its element's
//! fields; this file keeps the loop, the `max_rows` cap and the FAIL answer.

use rusqlite::Row;

use super::{fail_body, substate, Answer, Ctx, OpError};
use crate::json::JsonBuf;
use crate::mirror::MirrorError;

/// Answer `{"rID":rid,"<key>":[…]}` with one element per row of `sql`, written by `element`.
/// A mirror error answers FAIL `POS_UNAVAILABLE` with the cause and **no list**: an empty list
/// would read as "this restaurant has no tables/users/…", which is not what happened.
pub fn answer(
    ctx: &Ctx,
    rid: &str,
    key: &str,
    sql: &str,
    mut element: impl FnMut(&mut JsonBuf, &Row<'_>) -> rusqlite::Result<()>,
) -> Result<Answer, OpError> {
    let mut j = ctx.body();
    j.begin_obj().f_str("rID", rid).key(key).begin_arr();
    let max_rows = ctx.max_rows();
    let res = ctx.mirror.with(|c| {
        let mut st = c.prepare_cached(sql)?;
        let mut rows = st.query([])?;
        let mut n = 0usize;
        while let Some(r) = rows.next()? {
            n += 1;
            if n > max_rows {
                return Err(MirrorError::TooManyRows(max_rows));
            }
            element(&mut j, r)?;
            if j.overflowed() {
                break; // finish() reports it; no point reading further rows
            }
        }
        Ok(n)
    });
    match res {
        Ok(n) => {
            j.end_arr().end_obj();
            Answer::callback(j, format!("SUCCESS {key}={n}"))
        }
        Err(e) => fail_body(ctx, rid, substate::POS_UNAVAILABLE, &e.to_string(), |_| {}),
    }
}
