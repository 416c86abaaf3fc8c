//! Memory bounds for every SQLite connection the agent opens (issue 14).
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
//! ([`SOFT_HEAP_LIMIT`]): past it SQLite frees cached pages before it allocates more.

use rusqlite::Connection;

/// Page cache per connection, KiB.
pub const CACHE_KIB: u32 = 256;

/// SQLite's soft heap limit for the process, bytes: every connection's caches, statements and
/// schemas together.
pub const SOFT_HEAP_LIMIT: i64 = 4 << 20;

/// Apply the per-connection bounds (call right after opening).
pub fn bound(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{CACHE_KIB}; PRAGMA mmap_size = 0; PRAGMA temp_store = FILE;"
    ))
}

/// Set the process-wide soft heap limit (idempotent; call once at start-up).
#[allow(unsafe_code)]
pub fn limit_process() {
    // SAFETY: sqlite3_soft_heap_limit64 only stores the limit; it may be called at any time
    // from any thread.
    unsafe {
        rusqlite::ffi::sqlite3_soft_heap_limit64(SOFT_HEAP_LIMIT);
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
        limit_process();
        // SAFETY: reading the limit (a negative argument leaves it unchanged).
        let now = unsafe { rusqlite::ffi::sqlite3_soft_heap_limit64(-1) };
        assert_eq!(now, SOFT_HEAP_LIMIT);
        drop(c);
        let _ = std::fs::remove_file(path);
    }
}
