//! Memory of menuInfo does not grow with the number of menu rows beyond the body cap.
//!
//! A counting global allocator (this test binary only, one test, so nothing else allocates
//! concurrently) records the peak Rust heap during one menuInfo request through the agent's
//! stages (`testkit::stages`, delivery kept by a stub) on 5 000-, 20 000- and 40 000-dish
//! mirrors, at the default cap (refused) and at a 32 MiB cap (they fit). A `realloc` counts
//! its size change (what an in-place or mremap'ed growth costs). SQLite's own
//! allocations go through libc, not this allocator; the process's peak RSS (VmHWM, reset with
//! /proc/self/clear_refs after malloc_trim, where the kernel allows) covers them and is printed.
//! Run: `cargo test --release --test menu_memory -- --nocapture`.
//!
//! The second test covers the streamed menu: the first pass signs and measures,
//! the second hands out chunks; the heap peak of both passes together must be the same for
//! 5 000, 20 000 and 40 000 dishes (a constant, not the body), and the bytes handed out must be
//! the signed ones.

mod mirror_fixture;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use mirror_fixture::*;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                grew(new - l.size());
            } else {
                CURRENT.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

fn status_kb(field: &str) -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct Run {
    ok_bytes: Option<usize>,
    heap_peak: usize,
    rss_peak_kb: Option<usize>,
    ms: f64,
}

fn measure(m: &TempMirror, cap: usize) -> Run {
    let mut cfg = m.config();
    cfg.limits.max_body_bytes = cap;
    // The held path: no streaming past the cap (the streamed path is measured below).
    cfg.limits.max_menu_bytes = cap;
    // `[limits] max_rows` stays at its default: menuInfo's rows are bounded by its bytes.
    let ctx = ctx_for(cfg);
    let frame = r#"{"rID":"r-1","operation":"menuInfo"}"#;
    drop(call_raw(&ctx, frame)); // warm: connection pool, statement cache
                                 // Give memory freed by earlier calls (and their JSON parsing) back to the OS, then reset
                                 // the high-water mark, so VmHWM is this call's peak.
                                 // SAFETY: malloc_trim only releases free heap pages.
    unsafe { libc::malloc_trim(0) };
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let t = Instant::now();
    let r = call_raw(&ctx, frame);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let heap_peak = PEAK.load(Relaxed) - base;
    let rss_peak_kb = if reset { status_kb("VmHWM:") } else { None };
    let v: serde_json::Value = serde_json::from_slice(&r).expect("valid JSON");
    let ok_bytes = if v["state"] == "FAIL" {
        assert_too_large(&r, cap);
        None
    } else {
        assert!(!v["dishes"].as_array().unwrap().is_empty());
        Some(r.len())
    };
    Run {
        ok_bytes,
        heap_peak,
        rss_peak_kb,
        ms,
    }
}

#[test]
fn menu_info_memory_is_bounded() {
    menu_info_memory_is_bounded_by_the_cap_not_the_rows();
    streamed_menu_info_heap_is_flat_and_the_sent_bytes_are_the_signed_ones();
}

fn menu_info_memory_is_bounded_by_the_cap_not_the_rows() {
    let sizes = [5_000usize, 20_000, 40_000];
    let mirrors: Vec<TempMirror> = sizes
        .iter()
        .map(|&n| {
            let m = TempMirror::empty("mem");
            fill_large(&m, n, 10, 10);
            m
        })
        .collect();
    const SLACK: usize = 256 * 1024;
    for cap in [1usize << 20, 32 << 20] {
        let runs: Vec<Run> = mirrors.iter().map(|m| measure(m, cap)).collect();
        for (n, r) in sizes.iter().zip(&runs) {
            println!(
                "menuInfo cap={cap} dishes={n}: {} heap_peak={} B rss_peak={} ms={:.1}",
                r.ok_bytes
                    .map_or("refused".into(), |b| format!("body={b} B")),
                r.heap_peak,
                r.rss_peak_kb.map_or("n/a".into(), |k| format!("{k} kB")),
                r.ms
            );
            // The body buffer is the only thing that grows; everything else is a constant. The
            // stub standing for the network keeps a copy of a delivered body (exactly its
            // length): the agent's own peak is the rest.
            let copy = r.ok_bytes.unwrap_or(0);
            assert!(
                r.heap_peak <= cap + copy + SLACK,
                "heap peak {} > cap {cap} + the stub's copy {copy} + {SLACK}",
                r.heap_peak
            );
            if let Some(body) = r.ok_bytes {
                assert!(
                    r.heap_peak <= body.next_power_of_two() + body + SLACK,
                    "heap peak {} beyond the body's buffer ({body} B), the stub's copy + {SLACK}",
                    r.heap_peak
                );
            }
        }
        // Every refused call costs the same, whatever the rows: 8x the rows, no more memory.
        let refused: Vec<&Run> = runs.iter().filter(|r| r.ok_bytes.is_none()).collect();
        for r in &refused {
            assert!(
                r.heap_peak <= refused[0].heap_peak + SLACK,
                "refused calls peaked at {} B and {} B",
                r.heap_peak,
                refused[0].heap_peak
            );
        }
    }
}

/// Heap peak of preparing and streaming the menu once (chunks hashed, never kept), with the
/// body's length and whether the streamed bytes carry the first pass's signature.
fn measure_streamed(m: &TempMirror) -> (usize, usize, bool) {
    use expirenza_agent::body_stream::Prepared;
    use expirenza_agent::ops::menu_info::stream;
    use expirenza_agent::sign::StreamSigner;
    let cfg = m.config(); // the defaults: a 20 000-dish menu needs no raised cap
    let secret = cfg.secret.clone();
    let ctx = ctx_for(cfg);
    // Warm: the first open of the mirror file, SQLite's global state.
    drop(stream::prepare(&ctx, "warm").expect("menu"));
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let (prepared, (_, dishes, _)) = stream::prepare(&ctx, "r-1").expect("menu");
    assert!(dishes > 0);
    let Prepared::Large(body) = prepared else {
        panic!("a menu of {dishes} dishes fits in max_body_bytes: not streamed")
    };
    let check = std::sync::Arc::new(std::sync::Mutex::new(StreamSigner::new(&secret)));
    let c = check.clone();
    body.stream_blocking(move |chunk| {
        c.lock().unwrap().update(&chunk);
        Ok(())
    })
    .expect("second pass");
    let peak = PEAK.load(Relaxed) - base;
    let (len, sig) = std::sync::Arc::try_unwrap(check)
        .unwrap()
        .into_inner()
        .unwrap()
        .finish();
    assert_eq!(len, body.len(), "Content-Length is the streamed length");
    (peak, len, sig == body.signature())
}

/// Called from the one test of this binary (the allocator counts every thread's allocations,
/// so no two measurements may run at once).
fn streamed_menu_info_heap_is_flat_and_the_sent_bytes_are_the_signed_ones() {
    let sizes = [5_000usize, 20_000, 40_000];
    let mut peaks = Vec::new();
    for &n in &sizes {
        let m = TempMirror::empty("stream");
        fill_large(&m, n, 10, 10);
        let (peak, len, signed) = measure_streamed(&m);
        println!("streamed menuInfo dishes={n}: body={len} B heap_peak={peak} B");
        assert!(
            signed,
            "{n} dishes: the streamed bytes are the signed bytes"
        );
        // The default max_body_bytes (1 MiB) is the first pass's buffer before it switches to
        // hashing; everything else is a constant (chunks, SQLite rows, statement cache).
        assert!(len > 4 << 20, "{n} dishes make a body of {len} B");
        peaks.push(peak);
    }
    // Flat: 8x the dishes (and the body) cost no more heap than the smallest, within 128 KiB.
    for (n, p) in sizes.iter().zip(&peaks) {
        assert!(
            *p <= peaks[0] + 128 * 1024,
            "{n} dishes peaked at {p} B against {} B for {}",
            peaks[0],
            sizes[0]
        );
        assert!(*p <= (1 << 20) + 512 * 1024, "{n} dishes: {p} B");
    }
}
