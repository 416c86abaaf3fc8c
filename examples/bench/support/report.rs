//! The machine description, binary sizes, the human table and the JSON result file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{Figures, Outcome, PayBill};

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub rustc: String,
    /// `/proc/loadavg` when the benchmark started: other work on the machine skews the figures.
    pub loadavg: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .or_else(|| l.strip_prefix("Model"))
        })
        .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    };
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("-V")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
    Machine {
        cpu_model,
        cores,
        kernel: read("/proc/sys/kernel/osrelease"),
        rustc,
        loadavg: read("/proc/loadavg"),
    }
}

/// `(label, path, bytes)` of every release agent binary found: the host's, then each
/// `<target_dir>/<triple>/release/` one, and those under `$BENCH_ARM_TARGET_DIR` when set (a
/// separate target dir for the ARM builds, e.g. `CARGO_TARGET_DIR` of `cross/build.sh`).
pub fn binary_sizes(target_dir: &Path) -> Vec<(String, PathBuf, u64)> {
    let mut out = Vec::new();
    let host = target_dir.join("release/expirenza-agent");
    if let Ok(m) = std::fs::metadata(&host) {
        out.push(("host".to_string(), host, m.len()));
    }
    let extra = std::env::var_os("BENCH_ARM_TARGET_DIR").map(PathBuf::from);
    for root in std::iter::once(target_dir.to_path_buf()).chain(extra) {
        let Ok(dir) = std::fs::read_dir(&root) else {
            continue;
        };
        let mut found: Vec<_> = dir
            .flatten()
            .filter_map(|e| {
                let triple = e.file_name().to_string_lossy().to_string();
                let bin = e.path().join("release/expirenza-agent");
                let len = std::fs::metadata(&bin).ok()?.len();
                triple.contains('-').then_some((triple, bin, len))
            })
            .collect();
        found.sort();
        out.extend(found);
    }
    out
}

/// A target and whether the median met it.
pub struct Target {
    pub what: &'static str,
    pub key: &'static str,
    pub limit: f64,
    pub unit: &'static str,
}

/// The budgets (x86_64 figures; the board's are measured on the board).
pub const TARGETS: &[Target] = &[
    Target {
        what: "idle RSS",
        key: "mem.idle_rss_kib",
        limit: 4.0 * 1024.0,
        unit: "KiB",
    },
    Target {
        what: "peak RSS, full run (VmHWM)",
        key: "mem.peak_hwm_kib",
        limit: 10.0 * 1024.0,
        unit: "KiB",
    },
    Target {
        what: "peak RSS, burst of 1 000 getBill",
        key: "burst.1000.peak_hwm_kib",
        limit: 10.0 * 1024.0,
        unit: "KiB",
    },
    Target {
        what: "peak RSS, burst of 10 000 getBill",
        key: "burst.10000.peak_hwm_kib",
        limit: 10.0 * 1024.0,
        unit: "KiB",
    },
    Target {
        what: "agent CPU per checkWork (8 concurrent)",
        key: "checkWork.c8.agent_cpu_us_per_op",
        limit: 80.0,
        unit: "µs",
    },
    Target {
        what: "agent CPU per getBill (8 concurrent)",
        key: "getBill.c8.agent_cpu_us_per_op",
        limit: 150.0,
        unit: "µs",
    },
    Target {
        what: "threads created during the load (strace clone calls)",
        key: "load.clones",
        limit: 0.0,
        unit: "count",
    },
    Target {
        what: "burst of 1 000 getBill: seconds to the last answer",
        key: "burst.1000.secs",
        limit: 0.5,
        unit: "s",
    },
    Target {
        what: "idle CPU, % of one core",
        key: "idle.cpu_pct",
        limit: 0.1,
        unit: "%",
    },
];

fn fmt_us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1000.0)
    } else {
        format!("{v:.0} µs")
    }
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

/// The human-readable report (Markdown tables, so it can be pasted into docs/performance.md).
pub fn human(o: &Outcome, m: &Machine, bins: &[(String, PathBuf, u64)]) -> String {
    let f = &o.median;
    let g = |k: &str| f.get(k).copied();
    let mut s = String::new();
    let p = &o.plan;
    let _ = writeln!(
        s,
        "## expirenza-agent benchmark{}",
        if p.quick { " (--quick)" } else { "" }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Machine: {} ({} cores), Linux {}, {}; load average at start {}",
        m.cpu_model, m.cores, m.kernel, m.rustc, m.loadavg
    );
    let _ = writeln!(
        s,
        "Mirror: {} tables, {} open bills ({} positions, {} of them modifiers), {} paid bills, {} menu items, {:.1} MiB; menu tables {}",
        p.size.tables,
        o.mirror.open.len(),
        o.mirror.open_positions,
        o.mirror.modifiers,
        p.size.closed_bills,
        p.size.menu_items,
        o.mirror.file_bytes as f64 / 1048576.0,
        if o.mirror.menu_written { "written" } else { "not generated" }
    );
    let _ = writeln!(
        s,
        "payBill: {} more open bills ({} positions) on tables getBill does not use, one per payment, each paid once with its exact total; a simulated POS (journal::sim_pos, polling every {} ms) applies and acknowledges each; the agent's [journal] poll_interval_ms = {}, so a payBill latency includes up to one poll of each",
        o.mirror.payable.len(),
        o.mirror.payable_positions,
        super::POS_POLL.as_millis(),
        super::JOURNAL_POLL_MS
    );
    let _ = writeln!(
        s,
        "Medians of {} run(s); per run {} sequential, {} at {} concurrent and {} at {} concurrent (saturation) requests per operation; idle window {} s{}",
        o.runs.len(),
        p.sequential,
        p.concurrent,
        p.concurrency,
        p.saturation,
        p.saturation_concurrency,
        p.idle.as_secs(),
        if p.quick { " (--quick: 60 s in a full run)" } else { "" }
    );
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "| operation | mode | answered | p50 | p99 | max | ops/s | agent CPU/op | of which kernel |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let modes = [
        ("seq".to_string(), "sequential".to_string()),
        (
            format!("c{}", p.concurrency),
            format!("{} concurrent", p.concurrency),
        ),
        (
            "sat".to_string(),
            format!("{} concurrent (saturation)", p.saturation_concurrency),
        ),
    ];
    for op in ["checkWork", "tablesInfo", "getBill", "payBill"] {
        if g(&format!("{op}.seq.n")).is_none() {
            let why = o
                .runs
                .iter()
                .map(|r| r.pay_bill.describe())
                .next()
                .unwrap_or_default();
            let _ = writeln!(s, "| {op} | — | {why} | | | | | | |");
            continue;
        }
        for (key, label) in &modes {
            if g(&format!("{op}.{key}.n")).is_none() {
                continue; // payBill has no saturation phase
            }
            let k = |x: &str| g(&format!("{op}.{key}.{x}")).unwrap_or(f64::NAN);
            let _ = writeln!(
                s,
                "| {op} | {label} | {:.0} | {} | {} | {} | {:.0} | {} | {} |",
                k("n"),
                fmt_us(k("p50_us")),
                fmt_us(k("p99_us")),
                fmt_us(k("max_us")),
                k("ops_per_sec"),
                fmt_us(k("agent_cpu_us_per_op")),
                fmt_us(k("agent_kernel_us_per_op"))
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "| figure | value |");
    let _ = writeln!(s, "|---|---:|");
    type Row = (&'static str, &'static str, fn(f64) -> String);
    let rows: &[Row] = &[
        (
            "time from process start to connected",
            "start.connect_ms",
            |v| format!("{v:.1} ms"),
        ),
        (
            "time from process start to the first answered operation",
            "start.first_answer_ms",
            |v| format!("{v:.1} ms"),
        ),
        ("RSS after start (connected)", "mem.start_rss_kib", mib),
        (
            "RSS idle after connect (end of the idle window)",
            "mem.idle_rss_kib",
            mib,
        ),
        (
            "peak RSS before payBill (VmHWM after tablesInfo, getBill)",
            "mem.hwm_before_pay_bill_kib",
            mib,
        ),
        ("peak RSS under load (VmHWM)", "mem.peak_hwm_kib", mib),
        ("RSS after the load (+2 s)", "mem.after_rss_kib", mib),
        ("CPU time while idle", "idle.cpu_ms", |v| {
            format!("{v:.1} ms")
        }),
        ("idle CPU, % of one core", "idle.cpu_pct", |v| {
            format!("{v:.4} %")
        }),
        ("threads when idle / after load", "idle.threads", |v| {
            format!("{v:.0}")
        }),
        ("agent CPU for the whole load", "load.agent_cpu_ms", |v| {
            format!("{v:.0} ms")
        }),
        ("requests answered in the load", "load.answered", |v| {
            format!("{v:.0}")
        }),
        (
            "thread ids seen during the load (10 ms sampling: a lower bound)",
            "load.threads_seen",
            |v| format!("{v:.0}"),
        ),
        (
            "threads created during the load (strace: clone/clone3 calls)",
            "load.clones",
            |v| format!("{v:.0}"),
        ),
    ];
    for (label, key, fmt) in rows {
        if let Some(v) = g(key) {
            let extra = if *key == "idle.threads" {
                g("load.threads_after")
                    .map(|t| format!(" / {t:.0}"))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let _ = writeln!(s, "| {label} | {}{extra} |", fmt(v));
        }
    }
    for (label, path, len) in bins {
        let _ = writeln!(
            s,
            "| release binary size, {label} ({}) | {:.2} MiB ({len} B) |",
            path.display(),
            *len as f64 / 1048576.0
        );
    }
    if let (Some(c), Some(n)) = (g("load.clones"), g("load.answered")) {
        let _ = writeln!(
            s,
            "| threads created per 1 000 requests (strace) | {:.1} |",
            c * 1000.0 / n.max(1.0)
        );
    }
    let _ = writeln!(s);
    let bursts: Vec<usize> = o.extra.bursts.clone();
    if !bursts.is_empty() {
        let _ = writeln!(
            s,
            "| burst (getBill sent at once, fresh agent) | answered | good | seconds to the last | peak RSS (VmHWM) | threads before / after / seen | clones | agent CPU/op |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for n in bursts {
            let k = |x: &str| g(&format!("burst.{n}.{x}"));
            let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or("—".into());
            let _ = writeln!(
                s,
                "| {n} | {} | {} | {} | {} | {} / {} / {} | {} | {} |",
                opt(k("answered"), &|v| format!("{v:.0}")),
                opt(k("good"), &|v| format!("{v:.0}")),
                opt(k("secs"), &|v| format!("{v:.2} s")),
                opt(k("peak_hwm_kib"), &mib),
                opt(k("threads_before"), &|v| format!("{v:.0}")),
                opt(k("threads_after"), &|v| format!("{v:.0}")),
                opt(k("threads_seen"), &|v| format!("{v:.0}")),
                opt(k("clones"), &|v| format!("{v:.0}")),
                opt(k("agent_cpu_us_per_op"), &fmt_us),
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "| target (x86_64, loopback) | limit | measured | |");
    let _ = writeln!(s, "|---|---:|---:|---|");
    for t in TARGETS {
        let v = g(t.key);
        let shown = |x: f64| match t.unit {
            "KiB" => mib(x),
            "µs" => fmt_us(x),
            "s" => format!("{x:.2} s"),
            "count" => format!("{x:.0}"),
            _ => format!("{x:.4} %"),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.what,
            shown(t.limit),
            v.map(shown).unwrap_or_else(|| "—".into()),
            match v {
                Some(v) if v <= t.limit => "met",
                Some(_) => "MISSED",
                None if t.key == "load.clones" => "not measured (run with --strace)",
                None => "not measured",
            }
        );
    }
    let _ = writeln!(
        s,
        "\nUnless --config-extra turned them off, getBill and tablesInfo are answered from the \
         answers the agent keeps per mirror version ([limits] answer_cache_kib) after their first \
         request (for getBill, of each table): this mirror does not change while they run. `--config-extra $'[limits]\\nanswer_cache_kib = 0'` \
         measures every request computed afresh (docs/performance.md gives both)."
    );
    let notes: Vec<String> = o
        .runs
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.notes.iter().map(move |n| format!("run {}: {n}", i + 1)))
        .collect();
    let pay: Vec<String> = o.runs.iter().map(|r| r.pay_bill.describe()).collect();
    let _ = writeln!(s);
    let _ = writeln!(s, "payBill: {}", pay.first().cloned().unwrap_or_default());
    for n in notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

fn figures_json(f: &Figures) -> Value {
    Value::Object(f.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

pub fn to_json(o: &Outcome, m: &Machine, bins: &[(String, PathBuf, u64)]) -> Value {
    let p = &o.plan;
    json!({
        "schema": "expirenza-agent-bench/1",
        "machine": {
            "cpu_model": m.cpu_model, "cores": m.cores, "kernel": m.kernel,
            "rustc": m.rustc, "loadavg_at_start": m.loadavg,
        },
        "plan": {
            "agent_bin": p.agent_bin.display().to_string(), "runs": p.runs, "quick": p.quick,
            "idle_secs": p.idle.as_secs_f64(), "sequential": p.sequential,
            "concurrent": p.concurrent, "concurrency": p.concurrency,
            "saturation": p.saturation, "saturation_concurrency": p.saturation_concurrency,
        },
        "mirror": {
            "tables": p.size.tables, "open_bills": o.mirror.open.len(),
            "open_positions": o.mirror.open_positions, "modifiers": o.mirror.modifiers,
            "payable_bills": o.mirror.payable.len(), "payable_positions": o.mirror.payable_positions,
            "closed_bills": p.size.closed_bills, "menu_items": p.size.menu_items,
            "menu_written": o.mirror.menu_written, "file_bytes": o.mirror.file_bytes,
        },
        "binaries": bins.iter().map(|(l, p, n)| json!({"label": l, "path": p.display().to_string(), "bytes": n})).collect::<Vec<_>>(),
        "pay_bill": o.runs.first().map(|r| match &r.pay_bill {
            PayBill::Measured => json!({"status": "measured"}),
            PayBill::NotImplemented(w) => json!({"status": "not_implemented", "detail": w}),
            PayBill::NotMeasured(w) => json!({"status": "not_measured", "detail": w}),
        }),
        "median": figures_json(&o.median),
        "targets": TARGETS.iter().map(|t| {
            let v = o.median.get(t.key).copied();
            json!({"what": t.what, "key": t.key, "limit": t.limit, "value": v, "met": v.map(|v| v <= t.limit)})
        }).collect::<Vec<_>>(),
        "runs": o.runs.iter().map(|r| json!({
            "figures": figures_json(&r.figures), "pay_bill": r.pay_bill.describe(), "notes": r.notes,
        })).collect::<Vec<_>>(),
    })
}

/// How the agent was started, for a variant's heading.
pub fn command(o: &Outcome) -> String {
    let mut parts = o.extra.wrapper.clone();
    parts.push(o.plan.agent_bin.display().to_string());
    format!("`{}`", parts.join(" "))
}

/// Key figures of several variants side by side, each with its ratio to the first.
pub fn compare(outcomes: &[(String, Outcome)]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## Variants side by side");
    let _ = writeln!(s);
    let mut head = String::from("| figure |");
    let mut rule = String::from("|---|");
    for (label, _) in outcomes {
        head.push_str(&format!(" {label} |"));
        rule.push_str("---:|");
    }
    let _ = writeln!(s, "{head}");
    let _ = writeln!(s, "{rule}");
    let mut keys: Vec<(String, String)> = Vec::new();
    for op in ["checkWork", "tablesInfo", "getBill", "payBill"] {
        for mode in ["seq", "c8"] {
            keys.push((
                format!("{op}.{mode}.agent_cpu_us_per_op"),
                format!("agent CPU per {op} ({mode})"),
            ));
            keys.push((
                format!("{op}.{mode}.agent_kernel_us_per_op"),
                format!("of which kernel, {op} ({mode})"),
            ));
        }
    }
    for (k, l) in [
        ("getBill.seq.p50_us", "getBill p50, sequential"),
        ("mem.start_rss_kib", "RSS after start"),
        ("mem.idle_rss_kib", "RSS idle"),
        ("mem.peak_hwm_kib", "peak RSS, full run"),
        ("idle.threads", "threads idle"),
        ("load.threads_after", "threads after load"),
        ("load.clones", "clone calls during the load"),
        ("burst.1000.secs", "burst 1 000: seconds"),
        ("burst.1000.answered", "burst 1 000: answered"),
        ("burst.1000.peak_hwm_kib", "burst 1 000: peak RSS"),
        ("burst.10000.secs", "burst 10 000: seconds"),
        ("burst.10000.answered", "burst 10 000: answered"),
        ("burst.10000.peak_hwm_kib", "burst 10 000: peak RSS"),
    ] {
        keys.push((k.to_string(), l.to_string()));
    }
    let first = &outcomes[0].1.median;
    for (k, label) in keys {
        if outcomes.iter().all(|(_, o)| !o.median.contains_key(&k)) {
            continue;
        }
        let mut row = format!("| {label} |");
        for (_, o) in outcomes {
            let cell = match o.median.get(&k) {
                None => "—".to_string(),
                Some(&v) => {
                    let shown = if k.ends_with("_kib") {
                        mib(v)
                    } else if k.ends_with("_us") || k.ends_with("_op") {
                        fmt_us(v)
                    } else if k.ends_with("secs") {
                        format!("{v:.2} s")
                    } else {
                        format!("{v:.0}")
                    };
                    match first.get(&k) {
                        Some(&b) if b > 0.0 && !std::ptr::eq(o, &outcomes[0].1) => {
                            format!("{shown} (×{:.2})", v / b)
                        }
                        _ => shown,
                    }
                }
            };
            row.push_str(&format!(" {cell} |"));
        }
        let _ = writeln!(s, "{row}");
    }
    s
}
