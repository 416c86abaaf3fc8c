//! How long `expirenza-agent check` takes to prove a mirror of realistic size: 300 tables,
//! 40 open bills of 40 lines each, 2,000 paid bills of history and a 2,000-dish menu (the
//! benchmark's generator, `bench/support/mirror_gen.rs`).
//!
//! ```text
//! cargo run --release --example check_cost -- [runs]
//! ```
//!
//! Prints, per run, the wall time and this thread's CPU time of the whole mirror report
//! (`check::report::build`: row counts, each operation's tables, every operation run against
//! the mirror, getBill for every table and every open bill, and every row checked), then the
//! minimum, median and maximum; and, if `target/release/expirenza-agent` exists, the wall time
//! of `expirenza-agent check` as a process (start-up and config included). The mirror must
//! prove clean (no error, no warning): the figure is for a full pass.

#[path = "common/cpu.rs"]
mod cpu;
#[path = "bench/support/mirror_gen.rs"]
#[allow(dead_code)]
mod mirror_gen;

use std::time::{Duration, Instant};

use expirenza_agent::check::report;
use expirenza_agent::config::Config;
use mirror_gen::MirrorSize;

const SIZE: MirrorSize = MirrorSize {
    tables: 300,
    open_bills: 40,
    positions: (40, 40),
    closed_bills: 2_000,
    menu_items: 2_000,
};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() -> Result<(), String> {
    let runs: usize = match std::env::args().nth(1) {
        Some(s) => s.parse().map_err(|e| format!("runs: {e}"))?,
        None => 5,
    };
    let dir = std::env::temp_dir().join(format!("check-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mirror = dir.join("mirror.sqlite");
    let g = mirror_gen::generate(&mirror, SIZE, 0)?;
    println!(
        "mirror: {} tables, {} open bills, {} open lines, {} paid bills, {} dishes, {} KiB",
        SIZE.tables,
        g.open.len(),
        g.open_positions,
        SIZE.closed_bills,
        SIZE.menu_items,
        g.file_bytes / 1024
    );
    let cfg = Config::for_loopback(
        "check-cost",
        "",
        "ws://127.0.0.1:9/",
        "http://127.0.0.1:9",
        &mirror,
        &dir,
    );
    let mut walls = Vec::new();
    for run in 1..=runs.max(1) {
        let (t0, c0) = (Instant::now(), cpu::thread_cpu());
        let r = report::build(&cfg, report::DEFAULT_SAMPLE);
        let (wall, cpu) = (t0.elapsed(), cpu::thread_cpu() - c0);
        if r.errors() + r.warnings() > 0 || r.unreadable.is_some() {
            return Err(format!(
                "the generated mirror does not prove clean: {:?} {:#?} {:#?}",
                r.unreadable, r.findings, r.operations
            ));
        }
        let get_bill = r
            .operations
            .iter()
            .find(|o| o.operation == "getBill")
            .and_then(|o| o.ran.clone())
            .unwrap_or_default();
        println!(
            "run {run}: {} wall, {} CPU (getBill: {get_bill})",
            ms(wall),
            ms(cpu)
        );
        walls.push(wall);
    }
    walls.sort();
    println!(
        "check, in process: min {}, median {}, max {} over {} run(s)",
        ms(walls[0]),
        ms(walls[walls.len() / 2]),
        ms(walls[walls.len() - 1]),
        walls.len()
    );
    let bin = std::path::Path::new("target/release/expirenza-agent");
    if bin.exists() {
        let toml = dir.join("agent.toml");
        std::fs::write(
            &toml,
            format!(
                "resto_id = \"check-cost\"\npartner_id = \"p\"\nmirror_path = \"{}\"\n\
                 state_dir = \"{}\"\nruntime_dir = \"{}\"\n",
                mirror.display(),
                dir.display(),
                dir.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let out = std::process::Command::new(bin)
            .args(["check", "--config"])
            .arg(&toml)
            .output()
            .map_err(|e| e.to_string())?;
        println!(
            "expirenza-agent check as a process: {} wall, exit {:?}",
            ms(t0.elapsed()),
            out.status.code()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
