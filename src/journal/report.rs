//! `expirenza-agent journal`: the command list for end-of-shift reconciliation.
//!
//! One line per command, oldest first: id, local time, status, operation, rID, bill or
//! externalId, sum, tips, sub-state and reason; then a count per status. `pending` and
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

/// Print the listing; returns the number of rows the POS has not finished (pending, claimed).
pub fn print(
    journal: &Journal,
    since_ms: i64,
    status: Option<Status>,
    out: &mut dyn Write,
) -> Result<u64, ReportError> {
    let rows = journal.with(|c| store::list(c, since_ms, status, MAX_LIST + 1))?;
    writeln!(
        out,
        "{:>6}  {:<19}  {:<8}  {:<18}  {:<40}  {:<38}  {:>10}  {:>8}  substate / reason",
        "id", "created", "status", "operation", "rID", "bill / externalId", "sum", "tips"
    )?;
    let mut counts = [0u64; 5];
    for c in rows.iter().take(MAX_LIST) {
        counts[c.status as usize] += 1;
        let key = c
            .bill_id
            .as_deref()
            .or(c.external_id.as_deref())
            .unwrap_or("-");
        let why = match (&c.substate, &c.reason, c.dup_of) {
            (Some(s), Some(r), _) => format!("{s}: {r}"),
            (Some(s), None, _) => s.clone(),
            (None, Some(r), _) => r.clone(),
            (None, None, _) => String::new(),
        };
        writeln!(
            out,
            "{:>6}  {:<19}  {:<8}  {:<18}  {:<40}  {:<38}  {:>10}  {:>8}  {}",
            c.id,
            when(c.created_at),
            c.status.as_str(),
            c.operation,
            c.rid,
            key,
            money(c.sum_kop),
            money(c.tips_kop),
            why
        )?;
    }
    if rows.len() > MAX_LIST {
        writeln!(
            out,
            "… listing cut at {MAX_LIST} rows; narrow it with --since or --status"
        )?;
    }
    let all = [
        Status::Pending,
        Status::Claimed,
        Status::Applied,
        Status::Rejected,
        Status::Review,
    ];
    let summary: Vec<String> = all
        .iter()
        .map(|s| format!("{} {}", s.as_str(), counts[*s as usize]))
        .collect();
    writeln!(
        out,
        "total {}: {}",
        rows.len().min(MAX_LIST),
        summary.join(", ")
    )?;
    Ok(counts[Status::Pending as usize] + counts[Status::Claimed as usize])
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
