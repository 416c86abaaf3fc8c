//! The benchmark harness runs end to end on a tiny workload and produces sane figures.
//!
//! This is not a performance test (no figure is compared with a target here; the benchmark
//! prints those): it checks that the harness in examples/bench/support measures something real
//! — the agent process answered, latencies are ordered, memory and CPU were read from /proc,
//! and the JSON result file parses with the same figures.

#[allow(dead_code)]
#[path = "../examples/bench/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::mirror_gen::MirrorSize;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_runs_on_a_tiny_workload() {
    let work_dir = std::env::temp_dir().join(format!("bench-harness-test-{}", std::process::id()));
    let plan = support::Plan {
        agent_bin: PathBuf::from(env!("CARGO_BIN_EXE_expirenza-agent")),
        work_dir: work_dir.clone(),
        runs: 1,
        idle: Duration::from_secs(1),
        quick: true,
        sequential: 10,
        concurrent: 16,
        concurrency: 8,
        saturation: 16,
        saturation_concurrency: 16,
        size: MirrorSize::TINY,
    };
    let outcome = support::run_all(&plan, |_| {}).await.expect("harness run");
    assert_eq!(outcome.runs.len(), 1);
    assert_eq!(outcome.mirror.open.len(), MirrorSize::TINY.open_bills);
    let f = &outcome.median;
    let get = |k: &str| {
        *f.get(k)
            .unwrap_or_else(|| panic!("figure {k} missing: {f:?}"))
    };

    for op in ["tablesInfo", "getBill"] {
        for mode in ["seq", "c8", "sat"] {
            let k = |x: &str| get(&format!("{op}.{mode}.{x}"));
            let sent = match mode {
                "seq" => 10.0,
                _ => 16.0,
            };
            assert_eq!(k("n"), sent, "{op}.{mode}: every request answered");
            assert_eq!(k("bad"), 0.0, "{op}.{mode}: {:?}", outcome.runs[0].notes);
            assert_eq!(k("lost"), 0.0, "{op}.{mode}");
            let (p50, p99, max) = (k("p50_us"), k("p99_us"), k("max_us"));
            assert!(
                p50 > 0.0 && p50 <= p99 && p99 <= max,
                "{op}.{mode}: {p50} {p99} {max}"
            );
            assert!(k("ops_per_sec") > 0.0);
        }
    }
    // payBill is measured: the simulated POS applied and acknowledged every payment (probe,
    // sequential, concurrent), each a bill of its own paid with its exact total (SUCCESS).
    assert_eq!(
        outcome.runs[0].pay_bill,
        support::PayBill::Measured,
        "{}",
        outcome.runs[0].pay_bill.describe()
    );
    assert_eq!(outcome.mirror.payable.len(), 1 + 10 + 16);
    for (mode, sent) in [("seq", 10.0), ("c8", 16.0)] {
        let k = |x: &str| get(&format!("payBill.{mode}.{x}"));
        assert_eq!(k("n"), sent, "payBill.{mode}: every payment answered");
        assert_eq!(k("bad"), 0.0, "payBill.{mode}: {:?}", outcome.runs[0].notes);
        assert_eq!(k("lost"), 0.0, "payBill.{mode}");
        let (p50, p99, max) = (k("p50_us"), k("p99_us"), k("max_us"));
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "payBill.{mode}");
    }
    assert!(!f.contains_key("payBill.sat.n"), "no payBill saturation");
    assert_eq!(
        get("payBill.pos_processed"),
        27.0,
        "POS applied each payment once"
    );
    // The run's own mirror copy holds the payments; the generated mirror is untouched.
    let paid = |path: PathBuf| -> i64 {
        let c = rusqlite::Connection::open(path).unwrap();
        c.query_row(
            "SELECT count(*) FROM orders WHERE bill_id LIKE 'pay-%' AND state = 'PAYED'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(paid(work_dir.join("run-1/mirror.sqlite")), 27);
    assert_eq!(paid(work_dir.join("mirror.sqlite")), 0);

    let (start, idle, peak, after) = (
        get("mem.start_rss_kib"),
        get("mem.idle_rss_kib"),
        get("mem.peak_hwm_kib"),
        get("mem.after_rss_kib"),
    );
    assert!(start > 0.0 && idle > 0.0 && after > 0.0);
    assert!(
        peak >= start && peak >= idle && peak >= after,
        "VmHWM is the peak"
    );
    // Not compared with the final VmHWM: the kernel's RSS counters are per-CPU approximations,
    // and a full run once read 16 520 KiB before payBill and 16 460 KiB at the end.
    assert!(get("mem.hwm_before_pay_bill_kib") >= start);
    // Idle CPU: a real figure, in the right unit, and the percentage derived from it. No
    // process uses more CPU than the window times the machine's CPUs (a figure in ns, or in
    // ticks read as ms, would be far off); slack: one 10 ms tick per thread at each end.
    let cpus = online_cpus();
    let (window, idle_ms, idle_pct, threads) = (
        get("idle.secs"),
        get("idle.cpu_ms"),
        get("idle.cpu_pct"),
        get("idle.threads"),
    );
    assert!(
        window >= 1.0,
        "the idle window is at least --idle: {window}"
    );
    assert!(threads >= 1.0, "threads read from /proc: {threads}");
    assert!(
        idle_ms.is_finite() && idle_ms <= window * 1e3 * cpus + 20.0 * threads,
        "idle CPU {idle_ms} ms in {window} s on {cpus} CPUs"
    );
    assert!(
        (idle_pct - idle_ms / 1e3 / window * 100.0).abs() < 1e-6,
        "idle.cpu_pct {idle_pct} is not idle.cpu_ms {idle_ms} over {window} s"
    );
    // Under load the agent did work, and no more than the load's wall time on every CPU.
    let (load_secs, load_ms) = (get("load.secs"), get("load.agent_cpu_ms"));
    assert!(load_secs > 0.0);
    assert!(
        load_ms <= load_secs * 1e3 * cpus + 20.0 * get("load.threads_after").max(threads),
        "load CPU {load_ms} ms in {load_secs} s on {cpus} CPUs"
    );
    assert!(get("start.first_answer_ms") >= get("start.connect_ms"));
    assert!(
        get("load.agent_cpu_ms") > 0.0,
        "the agent used CPU for the load"
    );

    // The report and the JSON file.
    let machine = support::report::machine();
    let text = support::report::human(&outcome, &machine, &[]);
    assert!(text.contains("| getBill | sequential | 10 |"), "{text}");
    let json = support::report::to_json(&outcome, &machine, &[]);
    let path = work_dir.join("result.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back["median"]["getBill.seq.n"], 10.0);
    assert_eq!(back["runs"].as_array().unwrap().len(), 1);
    assert!(back["targets"].as_array().unwrap().len() >= 4);
    std::fs::remove_dir_all(&work_dir).unwrap();
}

/// CPUs online (the `cpuN` lines of /proc/stat): a hard bound on CPU time per second of wall.
fn online_cpus() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let n = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    assert!(n >= 1, "no cpuN line in /proc/stat");
    n as f64
}
