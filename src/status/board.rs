//! The status board of the running agent and the status file behind `expirenza-agent status`.
//!
//! The agent's tasks record events on a shared [`StatusBoard`] (an `Arc`, one small mutex, no
//! allocation on the hot path but for reason strings). [`writer`] rewrites the status file every
//! few seconds ([`write_atomic`]: temp file, fsync, rename, mode 0644), and once more on
//! shutdown with link `down`, reason `shutdown`. `expirenza-agent status` then [`read`]s it
//! (bounded to 64 KiB) and [`render`]s it for a technician, or checks it with [`health`].
//!
//! File format: UTF-8 lines `key=value`, first line a `#` comment, unknown keys ignored (newer
//! agents may add some). Values are escaped (`\\`, `\n`, `\r`, `\t`, `\u{..}` for any other
//! control character), so a hostile disconnect reason cannot forge a second line. Optional
//! values are simply absent.
//!
//! The rolling counters keep 60 one-minute buckets: memory is constant however many operations
//! arrive, and "last hour" means the current minute plus the 59 before it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// Largest status file [`read`] accepts.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Longest reason / cache string kept (longer ones are cut at a char boundary with `…`).
pub const MAX_TEXT: usize = 256;
/// [`render`] warns when the file is older than this (the agent rewrites it every 5 s by default).
pub const DEFAULT_STALE_AFTER_SECS: u64 = 30;
/// [`health`]: a link that is not up is tolerated this long after a disconnect or the start
/// (reconnects are normal; the protocol's backoff floor is 15 s).
pub const LINK_GRACE_SECS: u64 = 120;
/// [`health`]: the POS is considered stuck when this many journal commands wait for it.
pub const JOURNAL_BACKLOG_UNHEALTHY: u64 = 100;
/// [`health`]: failures only count once there are at least this many in the last hour.
pub const MIN_FAILED_UNHEALTHY: u64 = 3;

const BUCKETS: usize = 60;
const BUCKET_SECS: u64 = 60;
const FORMAT_HEADER: &str = "# expirenza-agent status v1";

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Connecting,
    Up,
    Down,
}

impl Link {
    fn as_str(self) -> &'static str {
        match self {
            Link::Connecting => "connecting",
            Link::Up => "up",
            Link::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// `unix_secs / 60` of the minute this bucket holds; stale buckets are reset on reuse.
    minute: u64,
    answered: u64,
    failed: u64,
}

#[derive(Debug)]
struct Inner {
    link: Link,
    last_connect: Option<u64>,
    last_disconnect: Option<u64>,
    last_disconnect_reason: Option<String>,
    buckets: [Bucket; BUCKETS],
    journal_pending: u64,
    cache: String,
}

/// Live state of the agent, shared via `Arc`; every method takes `&self` and is cheap.
#[derive(Debug)]
pub struct StatusBoard {
    resto_id: String,
    started_at: u64,
    pid: u32,
    inner: Mutex<Inner>,
}

impl StatusBoard {
    pub fn new(resto_id: &str) -> Self {
        Self::new_at(resto_id, now_unix())
    }

    fn new_at(resto_id: &str, now: u64) -> Self {
        StatusBoard {
            resto_id: clip(resto_id),
            started_at: now,
            pid: std::process::id(),
            inner: Mutex::new(Inner {
                link: Link::Connecting,
                last_connect: None,
                last_disconnect: None,
                last_disconnect_reason: None,
                buckets: [Bucket::default(); BUCKETS],
                journal_pending: 0,
                cache: "disabled".into(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the data inconsistent in a way that
        // matters for a status display: keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The link is connected (WebSocket handshake done). Records `last_connect = now`.
    pub fn link_up(&self) {
        let now = now_unix();
        let mut g = self.lock();
        g.link = Link::Up;
        g.last_connect = Some(now);
    }

    /// A (re)connection attempt is under way.
    pub fn link_connecting(&self) {
        let mut g = self.lock();
        if g.link != Link::Up {
            g.link = Link::Connecting;
        }
    }

    /// The link went down. `reason` is shown to technicians: callers must never put the
    /// secret in it. It is cut to [`MAX_TEXT`] bytes; escaping happens when the file is written.
    pub fn link_down(&self, reason: &str) {
        self.link_down_at(reason, now_unix())
    }

    fn link_down_at(&self, reason: &str, now: u64) {
        let mut g = self.lock();
        g.link = Link::Down;
        g.last_disconnect = Some(now);
        g.last_disconnect_reason = Some(clip(reason));
    }

    /// One operation finished: `ok` = answered successfully (callback delivered), otherwise
    /// failed. The operation name is accepted for future per-operation counters.
    pub fn op_done(&self, operation: &str, ok: bool) {
        self.op_done_at(operation, ok, now_unix())
    }

    fn op_done_at(&self, _operation: &str, ok: bool, now: u64) {
        let minute = now / BUCKET_SECS;
        let mut g = self.lock();
        let b = &mut g.buckets[(minute % BUCKETS as u64) as usize];
        if b.minute != minute {
            *b = Bucket {
                minute,
                answered: 0,
                failed: 0,
            };
        }
        if ok {
            b.answered = b.answered.saturating_add(1);
        } else {
            b.failed = b.failed.saturating_add(1);
        }
    }

    /// Journal commands written but not yet applied/rejected by the POS.
    pub fn set_journal_pending(&self, n: u64) {
        self.lock().journal_pending = n;
    }

    /// State of the ORDERS_CACHE push: `"disabled"`, `"ok"`, `"failing: <why>"`, ...
    pub fn set_cache_state(&self, s: &str) {
        self.lock().cache = clip(s);
    }

    pub fn snapshot(&self) -> Status {
        self.snapshot_at(now_unix())
    }

    fn snapshot_at(&self, now: u64) -> Status {
        let g = self.lock();
        let minute = now / BUCKET_SECS;
        let (mut answered, mut failed) = (0u64, 0u64);
        for b in g
            .buckets
            .iter()
            .filter(|b| b.minute <= minute && minute - b.minute < BUCKETS as u64)
        {
            answered = answered.saturating_add(b.answered);
            failed = failed.saturating_add(b.failed);
        }
        Status {
            pid: self.pid,
            resto_id: self.resto_id.clone(),
            link: g.link.as_str().to_string(),
            last_connect: g.last_connect,
            last_disconnect: g.last_disconnect,
            last_disconnect_reason: g.last_disconnect_reason.clone(),
            answered_last_hour: answered,
            failed_last_hour: failed,
            journal_pending: g.journal_pending,
            cache: g.cache.clone(),
            written_at: now,
            started_at: self.started_at,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// What the status file holds. `written_at`/`started_at`/`last_*` are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub pid: u32,
    pub resto_id: String,
    /// `"up"`, `"down"` or `"connecting"`.
    pub link: String,
    pub last_connect: Option<u64>,
    pub last_disconnect: Option<u64>,
    pub last_disconnect_reason: Option<String>,
    pub answered_last_hour: u64,
    pub failed_last_hour: u64,
    pub journal_pending: u64,
    pub cache: String,
    pub written_at: u64,
    pub started_at: u64,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(
        "cannot read the status file {path}: {source} (is the agent running? it writes this file)"
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the status file {0} is larger than 64 KiB; it is not an agent status file")]
    TooLarge(PathBuf),
    #[error("the status file is not UTF-8")]
    NotUtf8,
    #[error("the status file is malformed at line {line}: {message}")]
    Malformed { line: usize, message: String },
    #[error("the status file lacks `{0}`")]
    Missing(&'static str),
}

// ---------------------------------------------------------------- file format

fn clip(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut cut = MAX_TEXT - '…'.len_utf8();
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // other control characters, plus the Unicode line/paragraph separators
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                if it.next() != Some('{') {
                    return Err("bad \\u escape".into());
                }
                let hex: String = it.by_ref().take_while(|&c| c != '}').collect();
                let cp = u32::from_str_radix(&hex, 16).map_err(|_| "bad \\u escape".to_string())?;
                out.push(char::from_u32(cp).ok_or("bad \\u code point")?);
            }
            _ => return Err("bad escape".into()),
        }
    }
    Ok(out)
}

fn to_text(s: &Status) -> String {
    let mut t = String::with_capacity(512);
    t.push_str(FORMAT_HEADER);
    t.push('\n');
    let mut kv = |k: &str, v: &str| {
        t.push_str(k);
        t.push('=');
        t.push_str(&escape(v));
        t.push('\n');
    };
    kv("version", &s.version);
    kv("pid", &s.pid.to_string());
    kv("resto_id", &s.resto_id);
    kv("started_at", &s.started_at.to_string());
    kv("written_at", &s.written_at.to_string());
    kv("link", &s.link);
    if let Some(v) = s.last_connect {
        kv("last_connect", &v.to_string());
    }
    if let Some(v) = s.last_disconnect {
        kv("last_disconnect", &v.to_string());
    }
    if let Some(v) = &s.last_disconnect_reason {
        kv("last_disconnect_reason", v);
    }
    kv("answered_last_hour", &s.answered_last_hour.to_string());
    kv("failed_last_hour", &s.failed_last_hour.to_string());
    kv("journal_pending", &s.journal_pending.to_string());
    kv("cache", &s.cache);
    t
}

fn from_text(text: &str) -> Result<Status, StatusError> {
    use std::collections::HashMap;
    let mut map: HashMap<&str, (usize, String)> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| StatusError::Malformed {
            line: line_no,
            message: "expected key=value".into(),
        })?;
        let v = unescape(v).map_err(|message| StatusError::Malformed {
            line: line_no,
            message,
        })?;
        if map.insert(k, (line_no, v)).is_some() {
            return Err(StatusError::Malformed {
                line: line_no,
                message: format!("duplicate key `{k}`"),
            });
        }
    }
    let text_of = |k: &'static str| {
        map.get(k)
            .map(|(_, v)| v.clone())
            .ok_or(StatusError::Missing(k))
    };
    fn num<T: std::str::FromStr>(
        map: &HashMap<&str, (usize, String)>,
        k: &'static str,
    ) -> Result<Option<T>, StatusError> {
        match map.get(k) {
            None => Ok(None),
            Some((line, v)) => v.parse().map(Some).map_err(|_| StatusError::Malformed {
                line: *line,
                message: format!("`{k}` is not a number"),
            }),
        }
    }
    let req = |k: &'static str| -> Result<u64, StatusError> {
        num::<u64>(&map, k)?.ok_or(StatusError::Missing(k))
    };
    Ok(Status {
        pid: num::<u32>(&map, "pid")?.ok_or(StatusError::Missing("pid"))?,
        resto_id: text_of("resto_id")?,
        link: text_of("link")?,
        last_connect: num(&map, "last_connect")?,
        last_disconnect: num(&map, "last_disconnect")?,
        last_disconnect_reason: map.get("last_disconnect_reason").map(|(_, v)| v.clone()),
        answered_last_hour: req("answered_last_hour")?,
        failed_last_hour: req("failed_last_hour")?,
        journal_pending: req("journal_pending")?,
        cache: text_of("cache")?,
        written_at: req("written_at")?,
        started_at: req("started_at")?,
        version: text_of("version")?,
    })
}

/// Write `s` to `path` atomically: a temp file in the same directory, fsync, chmod 0644,
/// rename over `path`, then fsync the directory (best effort). Readers never see a torn file.
pub fn write_atomic(path: &Path, s: &Status) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "status path has no file name",
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        // the process umask (0007 under the unit) would otherwise strip the "other" bits
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(to_text(s).as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Read and parse a status file, refusing anything larger than 64 KiB.
pub fn read(path: &Path) -> Result<Status, StatusError> {
    let io = |source| StatusError::Io {
        path: path.into(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(StatusError::TooLarge(path.into()));
    }
    let text = String::from_utf8(buf).map_err(|_| StatusError::NotUtf8)?;
    from_text(&text)
}

// ---------------------------------------------------------------- rendering and health

/// "42 s ago", "12 min ago", "3 h 5 min ago", "4 d ago"; "in the future" on clock skew.
fn ago(then: u64, now: u64) -> String {
    if then > now {
        return format!("{} s in the future (clock changed?)", then - now);
    }
    let d = now - then;
    match d {
        0..=59 => format!("{d} s ago"),
        60..=3599 => format!("{} min ago", d / 60),
        3600..=172_799 => format!("{} h {} min ago", d / 3600, (d % 3600) / 60),
        _ => format!("{} d ago", d / 86_400),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix seconds (civil-from-days, no date crate).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn when(t: Option<u64>, now: u64) -> String {
    match t {
        Some(t) => format!("{} ({})", utc(t), ago(t, now)),
        None => "never".into(),
    }
}

/// Human-readable report for a technician. Control characters in strings are shown escaped.
pub fn render(s: &Status, now: u64) -> String {
    let mut o = String::new();
    let age = now.saturating_sub(s.written_at);
    o.push_str(&format!(
        "expirenza-agent {} (pid {}), restaurant {}\n",
        escape(&s.version),
        s.pid,
        escape(&s.resto_id)
    ));
    o.push_str(&format!(
        "  running since     {}\n",
        when(Some(s.started_at), now)
    ));
    o.push_str(&format!("  link              {}\n", escape(&s.link)));
    o.push_str(&format!(
        "  last connect      {}\n",
        when(s.last_connect, now)
    ));
    o.push_str(&format!(
        "  last disconnect   {}\n",
        when(s.last_disconnect, now)
    ));
    if let Some(r) = &s.last_disconnect_reason {
        o.push_str(&format!("    reason          {}\n", escape(r)));
    }
    o.push_str(&format!(
        "  last hour         {} operations answered, {} failed\n",
        s.answered_last_hour, s.failed_last_hour
    ));
    o.push_str(&format!(
        "  journal pending   {} command(s) waiting for the POS\n",
        s.journal_pending
    ));
    o.push_str(&format!("  orders cache      {}\n", escape(&s.cache)));
    o.push_str(&format!(
        "  status file       written {}\n",
        ago(s.written_at, now)
    ));
    if age > DEFAULT_STALE_AFTER_SECS {
        o.push_str("  WARNING: the status file is stale: the agent is not running or is stuck\n");
        o.push_str(
            "           (systemctl status expirenza-agent; journalctl -u expirenza-agent)\n",
        );
    }
    match health(s, now, DEFAULT_STALE_AFTER_SECS) {
        Ok(()) => o.push_str("  health            OK\n"),
        Err(why) => o.push_str(&format!("  health            UNHEALTHY: {why}\n")),
    }
    o
}

/// Health rules, first failing one wins:
/// 1. the file is older than `stale_after_secs`: the agent is not running (or its loop stalled);
/// 2. the link is not `up` and has not been for more than [`LINK_GRACE_SECS`] since the last
///    disconnect (or since the start, if it never connected): normal reconnects are tolerated;
/// 3. at least [`MIN_FAILED_UNHEALTHY`] operations failed in the last hour and failures exceed
///    half the successful answers;
/// 4. [`JOURNAL_BACKLOG_UNHEALTHY`] or more journal commands wait for the POS (the POS is not
///    consuming the journal). A few pending commands are normal while the POS works.
pub fn health(s: &Status, now: u64, stale_after_secs: u64) -> Result<(), String> {
    let age = now.saturating_sub(s.written_at);
    if age > stale_after_secs {
        return Err(format!(
            "status file is {age} s old (agent not running or stuck)"
        ));
    }
    if s.link != "up" {
        let since = s.last_disconnect.unwrap_or(s.started_at);
        let down_for = now.saturating_sub(since);
        if down_for > LINK_GRACE_SECS {
            let why = s
                .last_disconnect_reason
                .as_deref()
                .map(|r| format!(": {}", escape(r)))
                .unwrap_or_default();
            return Err(format!(
                "link {} for {} s{}",
                escape(&s.link),
                down_for,
                why
            ));
        }
    }
    if s.failed_last_hour >= MIN_FAILED_UNHEALTHY && s.failed_last_hour > s.answered_last_hour / 2 {
        return Err(format!(
            "{} operations failed in the last hour ({} answered)",
            s.failed_last_hour, s.answered_last_hour
        ));
    }
    if s.journal_pending >= JOURNAL_BACKLOG_UNHEALTHY {
        return Err(format!(
            "{} journal commands wait for the POS",
            s.journal_pending
        ));
    }
    Ok(())
}

/// Rewrite the status file every `every` until `stop` turns true (or its sender is dropped);
/// then mark the link down with reason `shutdown` and write once more. Write errors are logged
/// (once per distinct error, not every tick) and never stop the agent. The blocking file work
/// runs on tokio's blocking pool so a slow SD card cannot stall the event loop.
pub async fn writer(
    board: Arc<StatusBoard>,
    path: PathBuf,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_err: Option<String> = None;
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            _ = tick.tick() => write_logged(&board, &path, &mut last_err).await,
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
    board.link_down("shutdown");
    write_logged(&board, &path, &mut last_err).await;
}

async fn write_logged(board: &StatusBoard, path: &Path, last_err: &mut Option<String>) {
    let snap = board.snapshot();
    let p = path.to_path_buf();
    let res = tokio::task::spawn_blocking(move || write_atomic(&p, &snap))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    match res {
        Ok(()) => *last_err = None,
        Err(e) => {
            let msg = e.to_string();
            if last_err.as_deref() != Some(msg.as_str()) {
                crate::log_warn!("cannot write the status file {}: {msg}", path.display());
                *last_err = Some(msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkit::harness::TempDir;

    const T0: u64 = 1_790_000_000; // 2026-09-21

    fn sample() -> Status {
        Status {
            pid: 1234,
            resto_id: "resto-42".into(),
            link: "up".into(),
            last_connect: Some(T0 - 600),
            last_disconnect: Some(T0 - 700),
            last_disconnect_reason: Some("pong timeout".into()),
            answered_last_hour: 10,
            failed_last_hour: 1,
            journal_pending: 0,
            cache: "ok".into(),
            written_at: T0,
            started_at: T0 - 3600,
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = TempDir::new("rt");
        let path = dir.path().join("status");
        let mut s = sample();
        write_atomic(&path, &s).unwrap();
        assert_eq!(read(&path).unwrap(), s);
        // optional fields absent; rewrite replaces the file
        s.last_connect = None;
        s.last_disconnect = None;
        s.last_disconnect_reason = None;
        s.link = "connecting".into();
        write_atomic(&path, &s).unwrap();
        assert_eq!(read(&path).unwrap(), s);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // no temp file left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("status")]);
    }

    #[test]
    fn hostile_reason_cannot_forge_lines() {
        let dir = TempDir::new("hostile");
        let path = dir.path().join("status");
        let mut s = sample();
        let evil = "closed\nlink=up\r\nfailed_last_hour=0\\n\u{0}\u{1b}[31m\u{2028}pid=1\t\\u{41}";
        s.last_disconnect_reason = Some(evil.into());
        s.cache = "failing: 500\njournal_pending=0".into();
        s.resto_id = "r=1\n# comment".into();
        write_atomic(&path, &s).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("link=")).count(), 1);
        assert_eq!(text.lines().filter(|l| l.starts_with("pid=")).count(), 1);
        assert!(!text.contains('\u{1b}') && !text.contains('\u{0}') && !text.contains('\u{2028}'));
        let back = read(&path).unwrap();
        assert_eq!(back, s);
        // and the human rendering shows it on one line, escaped
        let r = render(&back, T0);
        assert!(r.contains("reason          closed\\nlink=up\\r\\n"), "{r}");
        assert!(!r.contains('\u{1b}'));
    }

    #[test]
    fn reader_is_bounded_and_strict() {
        let dir = TempDir::new("bad");
        let path = dir.path().join("status");
        std::fs::write(&path, vec![b'a'; (MAX_FILE_BYTES + 1) as usize]).unwrap();
        assert!(matches!(read(&path), Err(StatusError::TooLarge(_))));
        std::fs::write(&path, "pid=1\npid=2\n").unwrap();
        assert!(matches!(
            read(&path),
            Err(StatusError::Malformed { line: 2, .. })
        ));
        std::fs::write(&path, "no equals sign\n").unwrap();
        assert!(matches!(
            read(&path),
            Err(StatusError::Malformed { line: 1, .. })
        ));
        std::fs::write(&path, "pid=1\n").unwrap();
        assert!(matches!(read(&path), Err(StatusError::Missing(_))));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(read(&path), Err(StatusError::NotUtf8)));
        let mut t = to_text(&sample());
        t = t.replace("pid=1234", "pid=12x");
        std::fs::write(&path, t).unwrap();
        assert!(matches!(read(&path), Err(StatusError::Malformed { .. })));
        // unknown keys from a newer agent are ignored
        std::fs::write(&path, to_text(&sample()) + "future_key=1\n").unwrap();
        assert_eq!(read(&path).unwrap(), sample());
        assert!(matches!(
            read(&dir.path().join("absent")),
            Err(StatusError::Io { .. })
        ));
    }

    #[test]
    fn escape_round_trips() {
        for s in [
            "",
            "plain",
            "a\\b",
            "\\n literal",
            "multi\nline\r\n",
            "tab\there",
            "\u{7f}\u{85}\u{2029}",
            "ünïcödé ✓",
        ] {
            assert_eq!(unescape(&escape(s)).unwrap(), s);
            assert!(!escape(s).contains('\n'));
        }
        assert!(unescape("bad\\q").is_err());
        assert!(unescape("bad\\u{zz}").is_err());
        assert!(unescape("bad\\u{d800}").is_err());
    }

    #[test]
    fn rolling_window_is_one_hour_with_bounded_buckets() {
        let b = StatusBoard::new_at("r", T0);
        // one op per minute for 90 minutes, failing every third
        for m in 0..90u64 {
            b.op_done_at("getBill", m % 3 != 0, T0 + m * 60);
        }
        let now = T0 + 89 * 60;
        let s = b.snapshot_at(now);
        // minutes 30..=89 are in the window: 60 ops, 20 of them failed
        assert_eq!((s.answered_last_hour, s.failed_last_hour), (40, 20));
        // 30 minutes of silence later, only minutes 60..=89 remain
        let s = b.snapshot_at(now + 30 * 60);
        assert_eq!(s.answered_last_hour + s.failed_last_hour, 30);
        // two hours later everything has expired
        let s = b.snapshot_at(now + 2 * 3600);
        assert_eq!((s.answered_last_hour, s.failed_last_hour), (0, 0));
        // many ops in one minute land in one bucket
        for _ in 0..1000 {
            b.op_done_at("bill", true, now + 3 * 3600);
        }
        assert_eq!(b.snapshot_at(now + 3 * 3600 + 59).answered_last_hour, 1000);
        assert_eq!(std::mem::size_of::<[Bucket; BUCKETS]>(), BUCKETS * 24);
    }

    #[test]
    fn board_tracks_link_and_clips_text() {
        let b = StatusBoard::new_at("r", T0);
        assert_eq!(b.snapshot_at(T0).link, "connecting");
        b.link_up();
        let s = b.snapshot_at(T0);
        assert_eq!(s.link, "up");
        assert!(s.last_connect.is_some());
        b.link_connecting(); // does not hide an up link
        assert_eq!(b.snapshot_at(T0).link, "up");
        b.link_down_at(&"x".repeat(10_000), T0 + 5);
        let s = b.snapshot_at(T0 + 6);
        assert_eq!(s.link, "down");
        assert_eq!(s.last_disconnect, Some(T0 + 5));
        assert!(s.last_disconnect_reason.unwrap().len() <= MAX_TEXT);
        b.set_journal_pending(7);
        b.set_cache_state("failing: 503");
        let s = b.snapshot_at(T0 + 6);
        assert_eq!((s.journal_pending, s.cache.as_str()), (7, "failing: 503"));
        assert_eq!(s.pid, std::process::id());
        assert_eq!(s.started_at, T0);
        assert_eq!(s.written_at, T0 + 6);
    }

    #[test]
    fn health_rules() {
        let ok = sample();
        assert_eq!(health(&ok, T0 + 5, 30), Ok(()));
        // 1. stale file
        assert!(health(&ok, T0 + 31, 30)
            .unwrap_err()
            .contains("not running"));
        // 2. link down: tolerated for LINK_GRACE_SECS after the disconnect
        let mut s = sample();
        s.link = "down".into();
        s.last_disconnect = Some(T0 - 60);
        assert_eq!(health(&s, T0, 30), Ok(()));
        s.last_disconnect = Some(T0 - LINK_GRACE_SECS - 1);
        let e = health(&s, T0, 30).unwrap_err();
        assert!(e.contains("link down") && e.contains("pong timeout"), "{e}");
        //    never connected since the start
        s.link = "connecting".into();
        s.last_disconnect = None;
        s.started_at = T0 - 10;
        assert_eq!(health(&s, T0, 30), Ok(()));
        s.started_at = T0 - 1000;
        assert!(health(&s, T0, 30).is_err());
        // 3. failures
        let mut s = sample();
        (s.answered_last_hour, s.failed_last_hour) = (0, 2);
        assert_eq!(
            health(&s, T0, 30),
            Ok(()),
            "fewer than 3 failures never count"
        );
        (s.answered_last_hour, s.failed_last_hour) = (0, 3);
        assert!(health(&s, T0, 30).is_err());
        (s.answered_last_hour, s.failed_last_hour) = (6, 3);
        assert_eq!(health(&s, T0, 30), Ok(()), "3 is not more than 6/2");
        (s.answered_last_hour, s.failed_last_hour) = (6, 4);
        assert!(health(&s, T0, 30).is_err());
        // 4. journal backlog
        let mut s = sample();
        s.journal_pending = JOURNAL_BACKLOG_UNHEALTHY - 1;
        assert_eq!(health(&s, T0, 30), Ok(()));
        s.journal_pending = JOURNAL_BACKLOG_UNHEALTHY;
        assert!(health(&s, T0, 30).is_err());
    }

    #[test]
    fn render_for_a_technician() {
        let r = render(&sample(), T0 + 3);
        assert!(r.contains("restaurant resto-42"), "{r}");
        assert!(r.contains("link              up"), "{r}");
        assert!(r.contains("(10 min ago)"), "{r}");
        assert!(r.contains("(11 min ago)"), "{r}");
        assert!(r.contains("reason          pong timeout"), "{r}");
        assert!(r.contains("10 operations answered, 1 failed"), "{r}");
        assert!(r.contains("journal pending   0"), "{r}");
        assert!(r.contains("written 3 s ago"), "{r}");
        assert!(r.contains("health            OK"), "{r}");
        assert!(!r.contains("WARNING"));
        let r = render(&sample(), T0 + 3 * 3600);
        assert!(r.contains("stale") && r.contains("UNHEALTHY"), "{r}");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_790_000_000), "2026-09-21 14:13:20 UTC");
        assert_eq!(ago(T0, T0 + 7200 + 300), "2 h 5 min ago");
        assert_eq!(ago(T0 + 5, T0), "5 s in the future (clock changed?)");
    }

    #[tokio::test(start_paused = true)]
    async fn writer_rewrites_and_marks_shutdown() {
        let dir = TempDir::new("writer");
        let path = dir.path().join("status");
        let board = Arc::new(StatusBoard::new("resto-9"));
        board.link_up();
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(writer(
            board.clone(),
            path.clone(),
            Duration::from_secs(5),
            rx,
        ));
        // the first write happens at once; give the blocking pool a moment in real time
        for _ in 0..200 {
            if path.exists() {
                break;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(5));
        }
        let s = read(&path).unwrap();
        assert_eq!((s.link.as_str(), s.resto_id.as_str()), ("up", "resto-9"));
        board.op_done("getBill", true);
        tx.send(true).unwrap();
        task.await.unwrap();
        let s = read(&path).unwrap();
        assert_eq!(s.link, "down");
        assert_eq!(s.last_disconnect_reason.as_deref(), Some("shutdown"));
        assert_eq!(s.answered_last_hour, 1);
    }

    #[tokio::test]
    async fn writer_survives_an_unwritable_path() {
        let board = Arc::new(StatusBoard::new("r"));
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(writer(
            board,
            PathBuf::from("/nonexistent-dir/x/status"),
            Duration::from_millis(100),
            rx,
        ));
        tokio::time::sleep(Duration::from_millis(250)).await;
        tx.send(true).unwrap();
        task.await.unwrap();
    }
}
