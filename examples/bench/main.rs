//! `cargo run --release --example bench -- [--quick] [--runs N] [--out FILE] [--strace]
//! [--burst N]... [--variant LABEL=CMD]...`
//!
//! Measures the release agent binary as a separate process against an in-process fake cloud
//! and a generated mirror of realistic size; prints a Markdown table and writes a JSON result
//! file. See docs/performance.md for what each figure means. The harness lives in `support/`
//! (shared with tests/bench_harness.rs).

#[allow(dead_code)] // shared with tests/bench_harness.rs; each uses a different part
mod support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
cargo run --release --example bench -- [OPTIONS]

OPTIONS:
    --quick          Short run: 5 s idle window, fewer requests (says so in the output)
    --runs N         Repeat N times and report medians (default 3)
    --out FILE       JSON result file (default bench-results/result.json)
    --idle SECS      Idle window in seconds (default 60, --quick 5)
    --agent PATH     Measure this agent binary instead of building target/release/expirenza-agent
    --work-dir DIR   Scratch directory, kept afterwards (agent logs: DIR/run-N/agent.log);
                     default: a new directory under the system temp dir, removed afterwards
    --burst N        A burst of N getBill sent at once to a fresh agent, after each run;
                     repeatable (default 1000 and 10000; --quick: 1000)
    --no-bursts      No bursts
    --bursts-only    Only the bursts (no start-up, idle and load measurements)
    --strace         Run the agent under `strace -f` and count its clone calls (threads
                     created) per phase and per burst
    --config-extra TOML
                     Append TOML to every generated agent config, e.g.
                     $'[limits]\nanswer_cache_kib = 0' to measure every getBill computed afresh
    --variant L=CMD  Measure CMD (an agent binary, optionally behind a wrapper such as
                     `qemu-aarch64 -cpu cortex-a72 path/to/agent`) under the label L;
                     repeatable: the figures are printed side by side at the end
";

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// `cargo build --release --bin expirenza-agent`: a no-op when it is up to date.
fn build_agent() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("bench: cargo build --release --bin expirenza-agent");
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "--bin", "expirenza-agent"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the release agent failed: {status}"));
    }
    Ok(target_dir().join("release/expirenza-agent"))
}

fn real_main() -> Result<(), String> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_env();
    let (mut quick, mut runs, mut idle) = (false, None, None);
    let mut out = PathBuf::from("bench-results/result.json");
    let (mut agent, mut work_dir): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let (mut strace, mut bursts, mut no_bursts) = (false, Vec::new(), false);
    let mut bursts_only = false;
    let mut config_extra = String::new();
    let mut variants: Vec<(String, Vec<String>)> = Vec::new();
    let num = |p: &mut lexopt::Parser| -> Result<u64, String> {
        p.value()
            .map_err(|e| e.to_string())?
            .string()
            .map_err(|e| e.to_string())?
            .parse::<u64>()
            .map_err(|e| e.to_string())
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Long("quick") => quick = true,
            Long("runs") => runs = Some(num(&mut p)?.max(1) as usize),
            Long("idle") => idle = Some(Duration::from_secs(num(&mut p)?)),
            Long("out") => out = p.value().map_err(|e| e.to_string())?.into(),
            Long("agent") => agent = Some(p.value().map_err(|e| e.to_string())?.into()),
            Long("work-dir") => work_dir = Some(p.value().map_err(|e| e.to_string())?.into()),
            Long("strace") => strace = true,
            Long("burst") => bursts.push(num(&mut p)? as usize),
            Long("no-bursts") => no_bursts = true,
            Long("bursts-only") => bursts_only = true,
            Long("config-extra") => {
                let v = p.value().map_err(|e| e.to_string())?;
                config_extra = v.into_string().map_err(|_| "--config-extra: not UTF-8")?;
            }
            Long("variant") => {
                let v = p.value().map_err(|e| e.to_string())?;
                let v = v.to_str().ok_or("--variant: not UTF-8")?;
                let (label, cmd) = v.split_once('=').ok_or("--variant takes LABEL=COMMAND")?;
                let argv: Vec<String> = cmd.split_whitespace().map(String::from).collect();
                if argv.is_empty() {
                    return Err(format!("--variant {label}: empty command"));
                }
                variants.push((label.to_string(), argv));
            }
            Short('h') | Long("help") => {
                print!("{USAGE}");
                return Ok(());
            }
            _ => return Err(format!("{}\n\n{USAGE}", arg.unexpected())),
        }
    }
    if variants.is_empty() {
        let agent = match agent {
            Some(a) => a,
            None => build_agent()?,
        };
        variants.push(("host".into(), vec![agent.display().to_string()]));
    }
    if bursts.is_empty() && !no_bursts {
        bursts = if quick {
            vec![1_000]
        } else {
            vec![1_000, 10_000]
        };
    }
    if no_bursts {
        bursts.clear();
    }
    let keep_work_dir = work_dir.is_some();
    let work_dir = work_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("expirenza-bench-{}", std::process::id()))
    });
    let machine = support::report::machine();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let bins = support::report::binary_sizes(&target_dir());
    let several = variants.len() > 1;
    let mut outcomes = Vec::new();
    for (label, mut argv) in variants {
        let bin = PathBuf::from(argv.pop().expect("non-empty"));
        let mut plan = if quick {
            support::Plan::quick(bin, work_dir.join(&label))
        } else {
            support::Plan::full(bin, work_dir.join(&label))
        };
        if let Some(r) = runs {
            plan.runs = r;
        }
        if let Some(i) = idle {
            plan.idle = i;
        }
        let extra = support::Extra {
            wrapper: argv,
            strace,
            bursts: bursts.clone(),
            bursts_only,
            config_extra: config_extra.clone(),
        };
        eprintln!("bench: variant {label}");
        let outcome = rt.block_on(support::run_all_with(&plan, &extra, |m| {
            eprintln!("bench: [{label}] {m}")
        }))?;
        let mut text = support::report::human(&outcome, &machine, &bins);
        if several {
            text = format!(
                "# variant {label}: {}\n\n{text}",
                support::report::command(&outcome)
            );
        }
        print!("{text}");
        println!();
        let json = support::report::to_json(&outcome, &machine, &bins);
        let path = if several {
            let stem = out
                .file_stem()
                .map_or("result".into(), |s| s.to_string_lossy());
            out.with_file_name(format!("{stem}-{label}.json"))
        } else {
            out.clone()
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let body = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        std::fs::write(&path, body).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
        outcomes.push((label, outcome));
    }
    if several {
        print!("{}", support::report::compare(&outcomes));
    }
    if !keep_work_dir {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    Ok(())
}
