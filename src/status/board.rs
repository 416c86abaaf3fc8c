//! The board: live state of the running agent (link, rolling counters, journal backlog, cache
//! state), recorded by the agent's tasks and turned into a [`Status`] snapshot.
//!
//! The rolling counters keep 60 one-minute buckets: memory is constant however many operations
//! arrive, and "last hour" means the current minute plus the 59 before it.

use std::sync::Mutex;

use super::snapshot::{CallbackPool, Status};
use crate::clock::now_unix;

/// Longest reason / cache string kept (longer ones are cut at a char boundary with `…`).
pub const MAX_TEXT: usize = 256;

const BUCKETS: usize = 60;
const BUCKET_SECS: u64 = 60;

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
    callback_pool: CallbackPool,
    cache: String,
}

/// Live state of the agent, shared via `Arc`; every method takes `&self` and is cheap.
#[derive(Debug)]
pub struct StatusBoard {
    resto_id: String,
    started_at: u64,
    pid: u32,
    pid_start: Option<u64>,
    inner: Mutex<Inner>,
}

impl StatusBoard {
    pub fn new(resto_id: &str) -> Self {
        Self::new_at(resto_id, now_unix())
    }

    pub(crate) fn new_at(resto_id: &str, now: u64) -> Self {
        StatusBoard {
            resto_id: clip(resto_id),
            started_at: now,
            pid: std::process::id(),
            pid_start: super::process::own_start(),
            inner: Mutex::new(Inner {
                link: Link::Connecting,
                last_connect: None,
                last_disconnect: None,
                last_disconnect_reason: None,
                buckets: [Bucket::default(); BUCKETS],
                journal_pending: 0,
                callback_pool: CallbackPool::default(),
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
    /// secret in it. It is cut to [`MAX_TEXT`] bytes; serialisation escapes it when the file is written.
    pub fn link_down(&self, reason: &str) {
        self.link_down_at(reason, now_unix())
    }

    pub(crate) fn link_down_at(&self, reason: &str, now: u64) {
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

    pub(crate) fn op_done_at(&self, _operation: &str, ok: bool, now: u64) {
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

    /// How callbacks waited for a free connection (from the callback client).
    pub fn set_callback_pool(&self, p: CallbackPool) {
        self.lock().callback_pool = p;
    }

    /// State of the ORDERS_CACHE push: `"disabled"`, `"ok"`, `"failing: <why>"`, ...
    pub fn set_cache_state(&self, s: &str) {
        self.lock().cache = clip(s);
    }

    pub fn snapshot(&self) -> Status {
        self.snapshot_at(now_unix())
    }

    pub(crate) fn snapshot_at(&self, now: u64) -> Status {
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
            pid_start: self.pid_start,
            resto_id: self.resto_id.clone(),
            link: g.link.as_str().to_string(),
            last_connect: g.last_connect,
            last_disconnect: g.last_disconnect,
            last_disconnect_reason: g.last_disconnect_reason.clone(),
            answered_last_hour: answered,
            failed_last_hour: failed,
            journal_pending: g.journal_pending,
            callback_pool: g.callback_pool,
            cache: g.cache.clone(),
            written_at: now,
            started_at: self.started_at,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_790_000_000; // 2026-09-21

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
}
