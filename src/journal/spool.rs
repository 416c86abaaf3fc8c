//! The spool: where a money-moving request goes when it cannot be journaled now.
//!
//! payBill, splitOrder and createOrderOnTable wait for the journal's write lock up to `[journal]
//! busy_timeout_ms`. If the journal still cannot be written (a POS transaction holding the lock
//! longer, a journal that cannot be opened), the request is appended to this file before the
//! cloud is answered FAIL `JOURNAL_UNAVAILABLE`. The dispatcher does the same for one it
//! refuses before any journal code runs: FAIL `AGENT_BUSY` (past `[limits]
//! max_pending_bytes`), `AGENT_STOPPING` (shutdown), or `BAD_REQUEST` (a frame that does not
//! parse but names a money operation and an rID). So a charged payment is never only a log line.
//! At the next chance (the first journal write that gets through, the agent's start, its
//! periodic look) every spooled request is moved into the journal as a `review` row whose
//! sub-state is the FAIL the cloud got, in the same transaction as anything else written then,
//! and the file is emptied after that commit. A crash between the commit and the emptying
//! leaves records whose rIDs are in the journal already: they are skipped, so each is moved once.
//!
//! The file (`<state_dir>/journal.spool`) is append-only and each append is fsync'd. Records:
//!
//! ```text
//! expirenza-spool 1 <payload bytes> <first 16 hex digits of the payload's SHA-256>\n
//! <payload: one JSON object, a Record>\n
//! ```
//!
//! A record cut short by a crash while it was written (it was never answered) fails its length
//! or checksum; it and anything after it are dropped, with a log line. Every reader and writer
//! takes an `flock` on the file (exclusive to append or empty it, shared to list it), so the
//! agent and `expirenza-agent simulate` can share it. Bounded: an append that would take the file
//! past `[journal] max_spool_bytes` is refused (the request is then logged in full, as the only
//! record of it).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAGIC: &str = "expirenza-spool 1 ";
/// Longest header line accepted when reading.
const MAX_HEADER: usize = 96;
/// Largest file read when listing or moving (`[journal] max_spool_bytes` is at most 1 GiB).
const MAX_READ: u64 = 1 << 30;

/// One spooled request: what the journal row will say, and the frame as it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub rid: String,
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_kop: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tips_kop: Option<i64>,
    /// When it was spooled (unix ms): the journal row's `created_at`.
    pub spooled_at: i64,
    /// Why it was not journaled when it arrived.
    pub error: String,
    /// The FAIL sub-state the cloud got, which the `review` row keeps; absent (records written
    /// before there was a choice): `JOURNAL_UNAVAILABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substate: Option<String>,
    /// The full request frame, as received.
    pub request: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the spool {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("the spool {path} is full: {size} bytes, and this request needs {need} more than [journal] max_spool_bytes ({cap}) allows")]
    Full {
        path: PathBuf,
        size: u64,
        need: u64,
        cap: u64,
    },
    #[error("the request cannot be spooled: {0}")]
    Encode(String),
}

impl Record {
    /// The sub-state of the FAIL the cloud got, and of the `review` row this becomes.
    pub fn substate(&self) -> &str {
        self.substate.as_deref().unwrap_or(super::SUBSTATE_SPOOLED)
    }
}

/// What a read of the file found.
#[derive(Debug, Default, Clone)]
pub struct Contents {
    pub records: Vec<Record>,
    /// Bytes of the well-formed records.
    pub good_len: u64,
    /// Bytes after them: a record cut short by a crash (never answered), dropped.
    pub torn: u64,
}

pub struct Spool {
    path: PathBuf,
    max_bytes: u64,
}

impl Spool {
    pub fn new(path: PathBuf, max_bytes: u64) -> Spool {
        Spool { path, max_bytes }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, err: std::io::Error) -> SpoolError {
        SpoolError::Io {
            path: self.path.clone(),
            err,
        }
    }

    /// True when the file holds anything (one `stat`; a missing file holds nothing).
    pub fn has_records(&self) -> bool {
        std::fs::metadata(&self.path).is_ok_and(|m| m.len() > 0)
    }

    /// Append `rec` and fsync it; returns the records now in the file. A torn record left at
    /// the end by a crash is cut off first, so the new record can be read back.
    pub fn append(&self, rec: &Record) -> Result<usize, SpoolError> {
        let bytes = encode(rec)?;
        let created = !self.path.exists();
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        f.lock().map_err(|e| self.io(e))?;
        let found = read_from(&mut f).map_err(|e| self.io(e))?;
        if found.torn > 0 {
            log_warn!(
                "spool {}: dropping {} bytes of a record cut short by a crash (it was never answered)",
                self.path.display(),
                found.torn
            );
            f.set_len(found.good_len).map_err(|e| self.io(e))?;
        }
        let need = bytes.len() as u64;
        if found.good_len + need > self.max_bytes {
            return Err(SpoolError::Full {
                path: self.path.clone(),
                size: found.good_len,
                need,
                cap: self.max_bytes,
            });
        }
        f.seek(SeekFrom::Start(found.good_len))
            .map_err(|e| self.io(e))?;
        f.write_all(&bytes).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        if created {
            sync_dir(&self.path).map_err(|e| self.io(e))?;
        }
        Ok(found.records.len() + 1)
    }

    /// The records in the file, read under a shared lock (for `expirenza-agent journal`).
    pub fn read(&self) -> Result<Contents, SpoolError> {
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contents::default()),
            Err(e) => return Err(self.io(e)),
        };
        f.lock_shared().map_err(|e| self.io(e))?;
        read_from(&mut f).map_err(|e| self.io(e))
    }

    /// Lock the file for moving its records into the journal: `None` when there is nothing to
    /// move. Call it while holding the journal's write lock, and [`Held::clear`] only after
    /// the journal transaction that took the records has committed.
    pub fn hold(&self) -> Result<Option<Held>, SpoolError> {
        if !self.has_records() {
            return Ok(None);
        }
        let mut f = match OpenOptions::new().read(true).write(true).open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        f.lock().map_err(|e| self.io(e))?;
        let contents = read_from(&mut f).map_err(|e| self.io(e))?;
        if contents.records.is_empty() && contents.torn == 0 {
            return Ok(None);
        }
        Ok(Some(Held {
            file: f,
            path: self.path.clone(),
            contents,
        }))
    }
}

/// The spool, locked, with its records read.
pub struct Held {
    file: File,
    path: PathBuf,
    pub contents: Contents,
}

impl Held {
    /// Empty the file (the records are in the journal now) and fsync it; the lock ends here.
    pub fn clear(self) -> Result<(), SpoolError> {
        let io = |err| SpoolError::Io {
            path: self.path.clone(),
            err,
        };
        if self.contents.torn > 0 {
            log_warn!(
                "spool {}: dropped {} bytes of a record cut short by a crash (it was never answered)",
                self.path.display(),
                self.contents.torn
            );
        }
        self.file.set_len(0).map_err(io)?;
        self.file.sync_all().map_err(io)
    }
}

/// How often the running agent looks at the spool ([`keeper`]).
pub const KEEPER_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The running agent's look at the spool: at start and every `every`, a `stat` of the file;
/// when it holds records, they are moved into the journal on the blocking pool if the
/// journal's write lock is free at once (no wait: the next tick tries again). A journal
/// write moves them too, first thing in its own transaction.
pub async fn keeper<J>(
    owner: std::sync::Arc<J>,
    every: std::time::Duration,
    mut stop: crate::shutdown::Shutdown,
) where
    J: AsRef<super::Journal> + Send + Sync + 'static,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.recv() => return,
        }
        if !owner.as_ref().as_ref().spool.has_records() {
            continue;
        }
        let o = owner.clone();
        match tokio::task::spawn_blocking(move || o.as_ref().as_ref().move_spool_now()).await {
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(n)) => log_info!("journal: {n} spooled request(s) moved into the journal"),
            Ok(Err(e)) => log_warn!("journal: spooled requests not moved yet: {e}"),
        }
    }
}

/// `expirenza-agent journal`'s section for the spool: one line per record (local time, rID,
/// operation, bill or externalId, sum, tips, the FAIL the cloud got and why), or nothing when
/// it is empty.
/// Returns how many records are listed.
pub fn print_listing(c: &Contents, out: &mut dyn Write) -> std::io::Result<usize> {
    if c.records.is_empty() && c.torn == 0 {
        return Ok(0);
    }
    writeln!(
        out,
        "\nspooled, not yet in the journal ({}): answered FAIL (the sub-state on each line); \
         moved in as review rows when the journal can be written (the running agent does this)",
        c.records.len()
    )?;
    let money = |v: Option<i64>| {
        v.map(|k| crate::money::Kopecks(k).to_string())
            .unwrap_or_else(|| "-".into())
    };
    for r in &c.records {
        let s = r.spooled_at.div_euclid(1000);
        writeln!(
            out,
            "  {}  {}  {}  {}  sum {}  tips {}  FAIL {}: {}",
            crate::clock::pos_datetime(s, crate::clock::local_offset(s)),
            r.rid,
            r.operation,
            r.bill_id
                .as_deref()
                .or(r.external_id.as_deref())
                .unwrap_or("-"),
            money(r.sum_kop),
            money(r.tips_kop),
            r.substate(),
            r.error
        )?;
    }
    if c.torn > 0 {
        writeln!(
            out,
            "  ({} bytes of a record cut short by a crash: it was never answered)",
            c.torn
        )?;
    }
    Ok(c.records.len())
}

fn checksum(payload: &[u8]) -> String {
    let d = Sha256::digest(payload);
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// One record's bytes: header line, payload, newline.
pub fn encode(rec: &Record) -> Result<Vec<u8>, SpoolError> {
    let payload = serde_json::to_vec(rec).map_err(|e| SpoolError::Encode(e.to_string()))?;
    let mut out = format!("{MAGIC}{} {}\n", payload.len(), checksum(&payload)).into_bytes();
    out.extend_from_slice(&payload);
    out.push(b'\n');
    Ok(out)
}

/// Parse `buf`: the well-formed records from the start, and how many bytes follow them.
pub fn decode(buf: &[u8]) -> Contents {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        match decode_one(buf.get(at..).unwrap_or_default()) {
            Some((rec, used)) => {
                records.push(rec);
                at += used;
            }
            None => break,
        }
    }
    Contents {
        records,
        good_len: at as u64,
        torn: (buf.len() - at) as u64,
    }
}

fn decode_one(buf: &[u8]) -> Option<(Record, usize)> {
    let head = buf.get(..buf.len().min(MAX_HEADER))?;
    let nl = head.iter().position(|b| *b == b'\n')?;
    let line = std::str::from_utf8(head.get(..nl)?).ok()?;
    let rest = line.strip_prefix(MAGIC)?;
    let (len, sum) = rest.split_once(' ')?;
    let len: usize = len.parse().ok()?;
    let start = nl + 1;
    let end = start.checked_add(len)?;
    let payload = buf.get(start..end)?;
    if buf.get(end) != Some(&b'\n') || checksum(payload) != sum {
        return None;
    }
    let rec: Record = serde_json::from_slice(payload).ok()?;
    Some((rec, end + 1))
}

fn read_from(f: &mut File) -> std::io::Result<Contents> {
    f.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::new();
    f.take(MAX_READ).read_to_end(&mut buf)?;
    Ok(decode(&buf))
}

/// fsync the directory holding `path`, so a new file's name survives power loss.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(rid: &str) -> Record {
        Record {
            rid: rid.into(),
            operation: "payBill".into(),
            bill_id: Some("b-1".into()),
            external_id: None,
            sum_kop: Some(12_920),
            tips_kop: None,
            spooled_at: 1_700_000_000_000,
            error: "the journal is locked".into(),
            substate: None,
            request: r#"{"rID":"r","operation":"payBill","billId":"b-1","sum":129.20}"#.into(),
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_cut_before_the_next_append() {
        let tmp = crate::test_util::TempDir::new("spool");
        let s = Spool::new(tmp.path().join("journal.spool"), 1 << 20);
        assert!(!s.has_records());
        assert_eq!(s.append(&rec("a")).unwrap(), 1);
        assert_eq!(s.append(&rec("b")).unwrap(), 2);
        let c = s.read().unwrap();
        assert_eq!(c.records, vec![rec("a"), rec("b")]);
        assert_eq!(c.torn, 0);
        // A crash in the middle of the third append: half of its bytes reached the file.
        let third = encode(&rec("c")).unwrap();
        let mut f = OpenOptions::new().append(true).open(s.path()).unwrap();
        f.write_all(&third[..third.len() / 2]).unwrap();
        let c = s.read().unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.torn, (third.len() / 2) as u64);
        // The next append cuts the torn bytes off, so its record is readable.
        assert_eq!(s.append(&rec("d")).unwrap(), 3);
        let c = s.read().unwrap();
        let rids: Vec<_> = c.records.iter().map(|r| r.rid.as_str()).collect();
        assert_eq!(rids, ["a", "b", "d"]);
        assert_eq!(c.torn, 0);
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum() {
        let mut bytes = encode(&rec("a")).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 1;
        let c = decode(&bytes);
        assert!(c.records.is_empty());
        assert_eq!(c.torn, n as u64);
    }

    #[test]
    fn the_cap_refuses_an_append_and_keeps_what_is_there() {
        let tmp = crate::test_util::TempDir::new("spool-cap");
        let one = encode(&rec("a")).unwrap().len() as u64;
        let s = Spool::new(tmp.path().join("journal.spool"), one * 2 + one / 2);
        s.append(&rec("a")).unwrap();
        s.append(&rec("b")).unwrap();
        let e = s.append(&rec("c")).unwrap_err();
        assert!(matches!(e, SpoolError::Full { .. }), "{e}");
        assert!(e.to_string().contains("max_spool_bytes"), "{e}");
        assert_eq!(s.read().unwrap().records.len(), 2);
    }

    /// The running agent's keeper moves what the spool holds at its start (the first tick is
    /// immediate), and then at each [`KEEPER_EVERY`], not before: on a paused clock, which
    /// stands still while a move runs on the blocking pool.
    #[tokio::test(start_paused = true)]
    async fn the_keeper_moves_the_spool_at_start_and_then_every_period() {
        struct Own(crate::journal::Journal);
        impl AsRef<crate::journal::Journal> for Own {
            fn as_ref(&self) -> &crate::journal::Journal {
                &self.0
            }
        }
        let tmp = crate::test_util::TempDir::new("spool-keeper");
        let dir = tmp.path();
        let cfg = crate::test_util::offline_config(dir);
        let own = std::sync::Arc::new(Own(crate::journal::Journal::new(&cfg)));
        let (j, spool) = (&own.0, &own.0.spool);
        spool.append(&rec("at-start")).unwrap();
        let (trigger, stop) = crate::shutdown::channel();
        let t0 = tokio::time::Instant::now();
        let keeper = tokio::spawn(keeper(own.clone(), KEEPER_EVERY, stop));
        // When the spool is found empty, on the paused clock (1 ms steps; an hour at most).
        let emptied = || async {
            for _ in 0..3_600_000 {
                if !spool.has_records() {
                    return t0.elapsed();
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            panic!("the spool was never moved");
        };
        assert!(emptied().await < KEEPER_EVERY, "moved at start");
        let row = j.by_rid("at-start").unwrap().expect("a row");
        assert_eq!(row.status, crate::journal::Status::Review);
        assert_eq!(row.substate.as_deref(), Some("JOURNAL_UNAVAILABLE"));

        let mut later = rec("later");
        later.substate = Some("AGENT_BUSY".into());
        spool.append(&later).unwrap();
        let at = emptied().await;
        assert!(
            (KEEPER_EVERY..KEEPER_EVERY * 2).contains(&at),
            "moved at the next period: {at:?}"
        );
        let row = j.by_rid("later").unwrap().expect("a row");
        assert_eq!(row.substate.as_deref(), Some("AGENT_BUSY"));
        trigger.fire();
        keeper.await.unwrap();
    }

    #[test]
    fn hold_then_clear_empties_the_file() {
        let tmp = crate::test_util::TempDir::new("spool-hold");
        let s = Spool::new(tmp.path().join("journal.spool"), 1 << 20);
        assert!(s.hold().unwrap().is_none(), "no file, nothing to hold");
        s.append(&rec("a")).unwrap();
        let h = s.hold().unwrap().expect("a record");
        assert_eq!(h.contents.records, vec![rec("a")]);
        h.clear().unwrap();
        assert!(!s.has_records());
        assert!(s.hold().unwrap().is_none());
    }
}
