//! What the mirror can serve: each operation names the tables and columns it reads, and
//! [`missing`] lists those the mirror lacks (tables and views alike, via `PRAGMA table_info`).

use rusqlite::Connection;

use super::MirrorError;

/// What an operation reads from the mirror: `(table, columns)` pairs.
pub type Needs = &'static [(&'static str, &'static [&'static str])];

/// Names of `(table, columns)` pairs that are absent, e.g. `table orders` or `column orders.created`.
pub fn missing(conn: &Connection, needs: &[(&str, &[&str])]) -> Result<Vec<String>, MirrorError> {
    let mut out = Vec::new();
    for (table, cols) in needs {
        let mut st = conn.prepare_cached("SELECT name FROM pragma_table_info(?1)")?;
        let present: Vec<String> = st
            .query_map([table], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if present.is_empty() {
            out.push(format!("table or view '{table}'"));
            continue;
        }
        for c in *cols {
            if !present.iter().any(|p| p.eq_ignore_ascii_case(c)) {
                out.push(format!("column '{table}.{c}'"));
            }
        }
    }
    Ok(out)
}

/// Row count of a table or view, for `check`'s report.
pub fn count(conn: &Connection, table: &str) -> Result<i64, MirrorError> {
    // `table` comes from our own constant lists, never from input; quote it anyway.
    let q = format!("SELECT COUNT(*) FROM \"{}\"", table.replace('"', "\"\""));
    Ok(conn.query_row(&q, [], |r| r.get(0))?)
}

/// Why answers read from `needs` may not be kept per mirror version (`crate::answers`), or
/// `None` when they may: every object named must be a real table. A view can show other rows
/// without any commit (a filter on `datetime('now')`), and a virtual table answers however
/// its module does; SQLite's data version moves only when a table's pages change.
pub fn not_kept(
    conn: &Connection,
    needs: &[(&str, &[&str])],
) -> Result<Option<String>, MirrorError> {
    let mut st = conn.prepare_cached(
        "SELECT type, COALESCE(sql, '') FROM sqlite_master WHERE name = ?1 COLLATE NOCASE \
         AND type IN ('table', 'view')",
    )?;
    for (table, _) in needs {
        let found: Option<(String, String)> = st
            .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
            .next()
            .transpose()?;
        match found {
            Some((kind, _)) if kind == "view" => {
                return Ok(Some(format!("'{table}' is a view")));
            }
            Some((_, sql))
                if sql
                    .trim_start()
                    .get(..14)
                    .is_some_and(|s| s.eq_ignore_ascii_case("create virtual")) =>
            {
                return Ok(Some(format!("'{table}' is a virtual table")));
            }
            Some(_) => {}
            None => return Ok(Some(format!("'{table}' is missing"))),
        }
    }
    Ok(None)
}
