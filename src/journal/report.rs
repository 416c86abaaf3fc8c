//! `expirenza-agent journal`: the command list for end-of-shift reconciliation.
//!
//! One line per command, oldest first: id, local time, status, operation, rID, bill or
//! externalId, sum, tips, sub-state and reason, each column as wide as its widest value;
//! then a count per status. `--json` gives the same as one JSON object. `pending` and
//! `claimed` rows are commands the POS has not finished; `review` rows are payments kept for
//! staff to reconcile by hand (they were never applied automatically).

use std::io::Write;

use super::{store, Journal, JournalError, Status};
use crate::clock;
use crate::money::Kopecks;

/// At most this many rows are printed; a longer listing says it was cut.
pub const MAX_LIST: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum SinceError {
    #[error("--since wants YYYY-MM-DD (local midnight) or unix seconds, got {0:?}")]
    Bad(String),
}

/// `--since`: `YYYY-MM-DD` (midnight, local time) or unix seconds; returns unix milliseconds.
pub fn parse_since(s: &str) -> Result<i64, SinceError> {
    let bad = || SinceError::Bad(s.to_string());
    let t = s.trim();
    if let Ok(secs) = t.parse::<i64>() {
        return secs.checked_mul(1000).ok_or_else(bad);
    }
    let mut parts = t.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (y, m, d) = (
        y.parse::<i64>().map_err(|_| bad())?,
        m.parse::<u32>().map_err(|_| bad())?,
        d.parse::<u32>().map_err(|_| bad())?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(clock::local_midnight(y, m, d) * 1000)
}

fn money(v: Option<i64>) -> String {
    v.map(|k| Kopecks(k).to_string())
        .unwrap_or_else(|| "-".into())
}

fn when(ms: i64) -> String {
    let s = ms.div_euclid(1000);
    clock::pos_datetime(s, clock::local_offset(s))
}

/// The text of a listing's columns for one command.
struct Row {
    id: String,
    created: String,
    status: &'static str,
    operation: String,
    rid: String,
    key: String,
    sum: String,
    tips: String,
    why: String,
}

impl Row {
    fn of(c: &super::Command) -> Row {
        let key = c
            .bill_id
            .as_deref()
            .or(c.external_id.as_deref())
            .unwrap_or("-");
        let why = match (&c.substate, &c.reason) {
            (Some(s), Some(r)) => format!("{s}: {r}"),
            (Some(s), None) => s.clone(),
            (None, Some(r)) => r.clone(),
            (None, None) => String::new(),
        };
        Row {
            id: c.id.to_string(),
            created: when(c.created_at),
            status: c.status.as_str(),
            operation: shown(&c.operation),
            rid: shown(&c.rid),
            key: shown(key),
            sum: money(c.sum_kop),
            tips: money(c.tips_kop),
            why: shown(&why),
        }
    }
}

/// `s` on one line: control characters (a hostile rID, a POS's reason) shown escaped.
fn shown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Width of `s` in characters (what a terminal shows for the text the journal holds).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// `s` padded with spaces to `w` characters, on the left (`right`) or the right.
fn pad(s: &str, w: usize, right: bool) -> String {
    let fill = " ".repeat(w.saturating_sub(width(s)));
    if right {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

/// The commands since `since_ms` (in `status`, if given), oldest first, at most
/// [`MAX_LIST`]; and whether there were more.
fn rows(
    journal: &Journal,
    since_ms: i64,
    status: Option<Status>,
) -> Result<(Vec<super::Command>, bool), ReportError> {
    let mut rows = journal.with(|c| store::list(c, since_ms, status, MAX_LIST + 1))?;
    let cut = rows.len() > MAX_LIST;
    rows.truncate(MAX_LIST);
    Ok((rows, cut))
}

const STATUSES: [Status; 5] = [
    Status::Pending,
    Status::Claimed,
    Status::Applied,
    Status::Rejected,
    Status::Review,
];

/// Commands per status, in [`STATUSES`] order.
fn counts(rows: &[super::Command]) -> [u64; 5] {
    let mut counts = [0u64; 5];
    for c in rows {
        counts[c.status as usize] += 1;
    }
    counts
}

/// Print the listing; returns the number of rows the POS has not finished (pending, claimed).
/// Each column is as wide as its widest value (rIDs and bill ids are whatever the cloud and
/// the POS use: UUIDs, longer ids), so every line stays aligned.
pub fn print(
    journal: &Journal,
    since_ms: i64,
    status: Option<Status>,
    out: &mut dyn Write,
) -> Result<u64, ReportError> {
    let (commands, cut) = rows(journal, since_ms, status)?;
    let head = Row {
        id: "id".into(),
        created: "created".into(),
        status: "status",
        operation: "operation".into(),
        rid: "rID".into(),
        key: "bill / externalId".into(),
        sum: "sum".into(),
        tips: "tips".into(),
        why: "substate / reason".into(),
    };
    let lines: Vec<Row> = commands.iter().map(Row::of).collect();
    let w = |f: fn(&Row) -> &str| {
        lines
            .iter()
            .chain(std::iter::once(&head))
            .map(|r| width(f(r)))
            .max()
            .unwrap_or(0)
    };
    let widths = [
        w(|r| &r.id),
        w(|r| &r.created),
        w(|r| r.status),
        w(|r| &r.operation),
        w(|r| &r.rid),
        w(|r| &r.key),
        w(|r| &r.sum),
        w(|r| &r.tips),
    ];
    for r in std::iter::once(&head).chain(lines.iter()) {
        let cells = [
            pad(&r.id, widths[0], true),
            pad(&r.created, widths[1], false),
            pad(r.status, widths[2], false),
            pad(&r.operation, widths[3], false),
            pad(&r.rid, widths[4], false),
            pad(&r.key, widths[5], false),
            pad(&r.sum, widths[6], true),
            pad(&r.tips, widths[7], true),
        ];
        let line = format!("{}  {}", cells.join("  "), r.why);
        writeln!(out, "{}", line.trim_end())?;
    }
    if cut {
        writeln!(
            out,
            "… listing cut at {MAX_LIST} rows; narrow it with --since or --status"
        )?;
    }
    let counts = counts(&commands);
    let summary: Vec<String> = STATUSES
        .iter()
        .map(|s| format!("{} {}", s.as_str(), counts[*s as usize]))
        .collect();
    writeln!(out, "total {}: {}", commands.len(), summary.join(", "))?;
    Ok(counts[Status::Pending as usize] + counts[Status::Claimed as usize])
}

/// The listing as one JSON object, for scripts: `{"commands":[…],"counts":{…},"total":n,
/// "cut":bool}`. Each command has its journal columns as they are (times as Unix
/// milliseconds and as local `yyyy.MM.dd HH:mm:ss`, sums in kopecks), absent ones `null`.
/// Returns the number of rows the POS has not finished, as [`print`] does.
/// The listing as one JSON object: the journal's commands (none when there is no journal yet),
/// the counts, and the requests still in the spool. Returns what [`print`] returns, plus the
/// spooled requests.
pub fn print_json(
    journal: Option<&Journal>,
    since_ms: i64,
    status: Option<Status>,
    spooled: &super::spool::Contents,
    out: &mut dyn Write,
) -> Result<u64, ReportError> {
    let (commands, cut) = match journal {
        Some(j) => rows(j, since_ms, status)?,
        None => (Vec::new(), false),
    };
    let list: Vec<serde_json::Value> = commands
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "rid": c.rid,
                "operation": c.operation,
                "status": c.status.as_str(),
                "bill_id": c.bill_id,
                "external_id": c.external_id,
                "sum_kop": c.sum_kop,
                "tips_kop": c.tips_kop,
                "substate": c.substate,
                "reason": c.reason,
                "result": c.result,
                "dup_of": c.dup_of,
                "created_at_ms": c.created_at,
                "created": when(c.created_at),
                "claimed_at_ms": c.claimed_at,
                "applied_at_ms": c.applied_at,
            })
        })
        .collect();
    let counts = counts(&commands);
    let by_status: serde_json::Map<String, serde_json::Value> = STATUSES
        .iter()
        .map(|s| (s.as_str().to_string(), counts[*s as usize].into()))
        .collect();
    let spool: Vec<serde_json::Value> = spooled
        .records
        .iter()
        .map(|r| {
            serde_json::json!({
                "rid": r.rid,
                "operation": r.operation,
                "bill_id": r.bill_id,
                "external_id": r.external_id,
                "sum_kop": r.sum_kop,
                "tips_kop": r.tips_kop,
                "spooled_at_ms": r.spooled_at,
                "substate": r.substate(),
                "error": r.error,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "commands": list,
        "counts": by_status,
        "total": commands.len(),
        "cut": cut,
        "spooled": spool,
        "spool_torn_bytes": spooled.torn,
    });
    let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")?;
    Ok(counts[Status::Pending as usize]
        + counts[Status::Claimed as usize]
        + spooled.records.len() as u64)
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("writing the listing: {0}")]
    Io(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        assert_eq!(parse_since("1715710867").unwrap(), 1_715_710_867_000);
        let d = parse_since("2024-05-14").unwrap();
        let midnight_utc = 1_715_644_800;
        assert_eq!(d, (midnight_utc - clock::local_offset(midnight_utc)) * 1000);
        assert!(parse_since("2024-13-01").is_err());
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("2024-05").is_err());
    }
}
