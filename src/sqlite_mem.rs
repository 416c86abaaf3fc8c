//! Memory bounds for every SQLite connection the agent opens.
//!
//! SQLite's defaults are sized for a desktop: a 2 MiB page cache per connection, memory-mapped
//! I/O where compiled in, and temporary tables (sorts too large for the cache) wherever the
//! build chose. On a board with a few MiB to spare each connection gets, explicitly:
//! - `cache_size`: [`CACHE_KIB`] KiB of page cache (the mirror's hot pages, the journal's
//!   latest rows); a query that needs more re-reads pages from the OS page cache;
//! - `mmap_size = 0`: no memory-mapped reads (they would count the mapped file in the RSS);
//! - `temp_store = FILE`: a sort or temporary table larger than the cache spills to a
//!   temporary file rather than growing the heap.
//!
//! On top of that, [`limit_process`] sets SQLite's soft heap limit for the whole process
//! ([`SOFT_HEAP_LIMIT_KIB`]): past it SQLite frees cached pages before it allocates more. And
//! SQLite is built without lookaside (`SQLITE_DEFAULT_LOOKASIDE=0,0` in `.cargo/config.toml`):
//! no connection keeps a slab of its own for small allocations.

use std::sync::atomic::{AtomicU32, Ordering};

use rusqlite::Connection;

/// Default page cache per connection, KiB (`[limits] sqlite_cache_kib`).
pub const CACHE_KIB: u32 = 256;

/// Default soft heap limit of SQLite for the process, KiB (`[limits] sqlite_heap_limit_kib`):
/// every connection's caches, statements and schemas together.
pub const SOFT_HEAP_LIMIT_KIB: u32 = 4096;

static CACHE: AtomicU32 = AtomicU32::new(CACHE_KIB);

/// Apply the per-connection bounds (call right after opening).
pub fn bound(conn: &Connection) -> rusqlite::Result<()> {
    let kib = CACHE.load(Ordering::Relaxed);
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{kib}; PRAGMA mmap_size = 0; PRAGMA temp_store = FILE;"
    ))
}

/// Whether `e` is SQLite saying another connection holds the lock (`SQLITE_BUSY` or
/// `SQLITE_LOCKED`): the mirror and the journal both tell it apart from real errors.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            )
    )
}

/// Set the configured bounds for the process (call once at start-up, before any connection
/// opens): the page cache of every connection opened from now on, and SQLite's soft heap limit.
#[allow(unsafe_code)]
pub fn limit_process(cache_kib: u32, heap_limit_kib: u32) {
    CACHE.store(cache_kib, Ordering::Relaxed);
    // SAFETY: sqlite3_soft_heap_limit64 only stores the limit; it may be called at any time
    // from any thread.
    unsafe {
        rusqlite::ffi::sqlite3_soft_heap_limit64(i64::from(heap_limit_kib) * 1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn a_bounded_connection_reports_the_bounds() {
        let path = std::env::temp_dir().join(format!("sqlite-mem-{}.db", std::process::id()));
        let c = Connection::open(&path).unwrap();
        bound(&c).unwrap();
        let get = |p: &str| -> i64 {
            c.query_row(&format!("PRAGMA {p}"), [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(get("cache_size"), -(CACHE_KIB as i64));
        assert_eq!(get("mmap_size"), 0);
        assert_eq!(get("temp_store"), 1, "FILE");
        limit_process(CACHE_KIB, SOFT_HEAP_LIMIT_KIB);
        // SAFETY: reading the limit (a negative argument leaves it unchanged).
        let now = unsafe { rusqlite::ffi::sqlite3_soft_heap_limit64(-1) };
        assert_eq!(now, i64::from(SOFT_HEAP_LIMIT_KIB) * 1024);
        drop(c);
        let _ = std::fs::remove_file(path);
    }
}
