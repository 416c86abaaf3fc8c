//! The shape shared by the list operations (tablesInfo, hallplansInfo, usersInfo,
//! categoriesInfo, stopList): `{"rID":…,"<key>":[…]}`, one element per mirror row, streamed
//! straight from SQLite into the capped body. Each operation keeps its SQL and its element's
//! fields; this file keeps the loop, the `max_rows` cap, the FAIL answer, and the answers kept
//! per mirror version (`kept.rs`): a list asked again while the mirror has not changed is
//! served from them.

use rusqlite::Row;

use super::{fail_body, kept, substate, Answer, Ctx, OpError};
use crate::json::JsonBuf;
use crate::mirror::check::Needs;
use crate::mirror::MirrorError;

/// Answer `{"rID":rid,"<key>":[…]}` with one element per row of `sql`, written by `element`.
/// A mirror error answers FAIL `POS_UNAVAILABLE` with the cause and **no list**: an empty list
/// would read as "this restaurant has no tables/users/…", which is not what happened.
/// `needs` is what `sql` reads: an answer is kept only when all of it is real tables.
pub fn answer(
    ctx: &Ctx,
    rid: &str,
    key: &str,
    sql: &str,
    needs: Needs,
    mut element: impl FnMut(&mut JsonBuf, &Row<'_>) -> rusqlite::Result<()>,
) -> Result<Answer, OpError> {
    let max_rows = ctx.max_rows();
    let kept_as = [b"list:".as_slice(), key.as_bytes(), b"\0", sql.as_bytes()].concat();
    let res = ctx.mirror.with(|c| {
        let version = kept::version(ctx, c, needs)?;
        if let Some(found) = kept::serve(ctx, version, &kept_as, rid) {
            return Ok(found);
        }
        let (mut j, rest) = kept::begin(ctx, rid);
        j.key(key).begin_arr();
        let mut st = c.prepare_cached(sql)?;
        let mut rows = st.query([])?;
        let mut n = 0usize;
        while let Some(r) = rows.next()? {
            n += 1;
            if n > max_rows {
                return Err(MirrorError::TooManyRows(max_rows));
            }
            element(&mut j, r).map_err(|e| MirrorError::in_query(sql, e))?;
            if j.overflowed() {
                break; // finish() reports it; no point reading further rows
            }
        }
        j.end_arr().end_obj();
        kept::keep(ctx, version, &kept_as, &j, rest, n);
        Ok((j, n))
    });
    match res {
        Ok((j, n)) => Answer::callback(j, format!("SUCCESS {key}={n}")),
        Err(e) => fail_body(ctx, rid, substate::POS_UNAVAILABLE, &e.to_string(), |_| {}),
    }
}
