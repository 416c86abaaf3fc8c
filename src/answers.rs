//! Answers kept per mirror version (`[limits] answer_cache_kib`).
//!
//! The cloud asks getBill for the same table again and again while guests look at their bill,
//! and the bill only changes when the POS writes the mirror. Each answer is the same bytes
//! each time but for its `rID`. So a SUCCESS answer's bytes after its `rID` (the *rest*) are
//! kept, keyed by the operation and the request's fields, and tagged with the mirror
//! [`Version`] they were read at. The next request with the same key, in a read transaction
//! that sees the same `Version`, is answered from them: its own `rID`, then the rest, signed
//! like any body. Any commit to the mirror by another connection changes the version (SQLite's
//! `PRAGMA data_version`), and so does a new connection (a replaced file, a pool refill): the
//! first request that sees a new version empties the store. An answer is therefore never older
//! than the read transaction it is sent from, exactly as if it had been computed again.
//!
//! Bounded: the rests, keys and a fixed overhead per entry together stay under the cap; the
//! least recently used go first; an answer over an eighth of the cap is not kept. A cap of 0
//! turns the store off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::mirror::Version;

/// Bytes counted for an entry besides its key and rest (its bookkeeping).
const ENTRY_OVERHEAD: usize = 64;

/// The store of answers. Shared by every operation (through `Ctx`).
pub struct Answers {
    cap: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Inner {
    /// The version every entry was read at.
    version: Option<Version>,
    entries: Vec<Entry>,
    bytes: usize,
    tick: u64,
}

struct Entry {
    key: Box<[u8]>,
    rest: Box<[u8]>,
    /// What the operation reports with the answer (e.g. how many bills it holds).
    count: usize,
    used: u64,
}

impl Entry {
    fn size(&self) -> usize {
        self.key.len() + self.rest.len() + ENTRY_OVERHEAD
    }
}

impl Inner {
    /// Empties the store when `version` is not the one its entries were read at.
    fn at(&mut self, version: Version) {
        if self.version != Some(version) {
            self.entries.clear();
            self.bytes = 0;
            self.version = Some(version);
        }
    }
}

impl Answers {
    /// A store of at most `cap_bytes` (0: off).
    pub fn new(cap_bytes: usize) -> Answers {
        Answers {
            cap: cap_bytes,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rest kept for `key` at `version`, with its count, handed to `f` (under the lock,
    /// so nothing is copied but what `f` copies). `None` (a miss) when nothing is kept for it,
    /// or when `version` is `None` (a connection that cannot tell versions apart).
    pub fn get<T>(
        &self,
        version: Option<Version>,
        key: &[u8],
        f: impl FnOnce(&[u8], usize) -> T,
    ) -> Option<T> {
        let version = version.filter(|_| self.cap > 0)?;
        let mut inner = self.lock();
        inner.at(version);
        inner.tick += 1;
        let tick = inner.tick;
        let found = inner.entries.iter_mut().find(|e| *e.key == *key);
        let Some(e) = found else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            crate::metrics::answer_served(false);
            return None;
        };
        e.used = tick;
        self.hits.fetch_add(1, Ordering::Relaxed);
        crate::metrics::answer_served(true);
        Some(f(&e.rest, e.count))
    }

    /// Keeps `rest` (with `count`) for `key`, read at `version`. Makes room by dropping the
    /// least recently used entries; an answer over an eighth of the cap is not kept.
    pub fn put(&self, version: Option<Version>, key: &[u8], rest: &[u8], count: usize) {
        let Some(version) = version.filter(|_| self.cap > 0) else {
            return;
        };
        // Measured before anything is copied: an answer too big to keep costs nothing.
        if key.len() + rest.len() + ENTRY_OVERHEAD > self.cap / 8 {
            return;
        }
        let entry = Entry {
            key: key.into(),
            rest: rest.into(),
            count,
            used: 0,
        };
        let mut inner = self.lock();
        inner.at(version);
        inner.tick += 1;
        let entry = Entry {
            used: inner.tick,
            ..entry
        };
        if let Some(at) = inner.entries.iter().position(|e| *e.key == *key) {
            let old = inner.entries.swap_remove(at);
            inner.bytes = inner.bytes.saturating_sub(old.size());
        }
        while inner.bytes + entry.size() > self.cap {
            let lru = inner.entries.iter().enumerate().min_by_key(|(_, e)| e.used);
            let Some((lru, _)) = lru else {
                break;
            };
            let old = inner.entries.swap_remove(lru);
            inner.bytes = inner.bytes.saturating_sub(old.size());
        }
        inner.bytes += entry.size();
        inner.entries.push(entry);
    }

    /// Whether the store keeps anything (its cap is not 0).
    pub fn is_on(&self) -> bool {
        self.cap > 0
    }

    /// Answers served from the store, and requests that looked and found nothing, since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Bytes the store counts now (never over its cap).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(serial: u64, data: i64) -> Option<Version> {
        Some(Version::for_test(serial, data))
    }

    fn get(a: &Answers, version: Option<Version>, key: &[u8]) -> Option<(Vec<u8>, usize)> {
        a.get(version, key, |rest, n| (rest.to_vec(), n))
    }

    #[test]
    fn an_answer_is_served_only_at_the_version_it_was_read_at() {
        let a = Answers::new(64 * 1024);
        assert_eq!(get(&a, v(1, 5), b"t12"), None, "nothing kept yet");
        a.put(v(1, 5), b"t12", b",\"orders\":[]}", 2);
        assert_eq!(
            get(&a, v(1, 5), b"t12"),
            Some((b",\"orders\":[]}".to_vec(), 2))
        );
        assert_eq!(get(&a, v(1, 5), b"t13"), None, "another key");
        assert_eq!(a.counts(), (1, 2));
        // The POS committed: the data version moved. Nothing older is served, ever again.
        assert_eq!(get(&a, v(1, 6), b"t12"), None);
        assert_eq!(get(&a, v(1, 5), b"t12"), None);
        assert_eq!(a.bytes(), 0, "emptied");
        // Another connection (a replaced file) never matches, whatever its data version.
        a.put(v(1, 7), b"t12", b"x", 1);
        assert_eq!(get(&a, v(2, 7), b"t12"), None);
        // No version, no store.
        a.put(None, b"t12", b"x", 1);
        assert_eq!(get(&a, None, b"t12"), None);
        assert_eq!(a.bytes(), 0);
    }

    #[test]
    fn the_store_stays_under_its_cap_and_drops_the_least_recently_used() {
        let cap = 8 * 1024;
        let a = Answers::new(cap);
        let rest = vec![b'x'; 900];
        for k in 0..20u8 {
            a.put(v(1, 1), &[k], &rest, 1);
            assert!(a.bytes() <= cap, "{} > {cap}", a.bytes());
            // Key 0 is used after every put: it is never the least recently used.
            assert!(get(&a, v(1, 1), &[0]).is_some(), "key 0 after put {k}");
        }
        assert!(get(&a, v(1, 1), &[19]).is_some(), "the newest is kept");
        assert!(get(&a, v(1, 1), &[1]).is_none(), "an old one went");
        let kept = (0..20u8)
            .filter(|k| get(&a, v(1, 1), &[*k]).is_some())
            .count();
        assert_eq!(kept, cap / (900 + 1 + ENTRY_OVERHEAD), "as many as fit");
        // Putting a key again replaces it, and counts it once.
        let before = a.bytes();
        a.put(v(1, 1), &[19], &rest, 3);
        assert_eq!(a.bytes(), before);
        assert_eq!(get(&a, v(1, 1), &[19]).map(|(_, n)| n), Some(3));
    }

    #[test]
    fn an_answer_over_an_eighth_of_the_cap_is_not_kept_and_a_zero_cap_keeps_nothing() {
        let a = Answers::new(8 * 1024);
        a.put(v(1, 1), b"k", &[b'x'; 1024], 1);
        assert_eq!(get(&a, v(1, 1), b"k"), None);
        assert_eq!(a.bytes(), 0);
        let off = Answers::new(0);
        off.put(v(1, 1), b"k", b"x", 1);
        assert_eq!(get(&off, v(1, 1), b"k"), None);
        assert_eq!(off.counts(), (0, 0), "off: not even counted");
    }
}
