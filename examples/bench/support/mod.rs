//! The benchmark harness, shared by `examples/bench/main.rs` and
//! `tests/bench_harness.rs` (included by `#[path]`; it is not part of the library).
//!
//! One run: generate config → start the fake cloud in this process → spawn the agent binary as
//! a separate process → measure start-up, idle, latency under load, memory → SIGTERM. The
//! figures of each run are a flat map of named numbers; [`run_all`] takes their medians.

pub mod agent_proc;
pub mod burst;
pub mod load;
pub mod mirror_gen;
pub mod pos_sim;
pub mod procfs;
pub mod report;
pub mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::{FakeCloud, FakeCloudConfig};

use agent_proc::{AgentProc, Launch};
use load::{Expect, FrameFn, Phase};
use mirror_gen::{Generated, MirrorSize, OpenBill};

const RESTO_ID: &str = "bench-resto-0001";
const SECRET: &str = "bench-secret-key-not-real-0123456789";
/// The bench config's `[journal] pos_ack_timeout_secs`: bounds a payBill probe the POS never acks.
const POS_ACK_TIMEOUT_SECS: u64 = 10;
/// The bench config's `[journal] poll_interval_ms`: how often the agent looks for the POS's
/// acknowledgement of a payment (default 200 ms; small here so payBill's figure shows the
/// agent's own work, not mostly the poll).
pub const JOURNAL_POLL_MS: u64 = 5;
/// How often the simulated POS polls the journal for new commands.
pub const POS_POLL: Duration = Duration::from_millis(5);

/// What to measure and how much.
#[derive(Debug, Clone)]
pub struct Plan {
    pub agent_bin: PathBuf,
    /// Scratch directory (mirror, configs, state dirs, agent logs); created if missing.
    pub work_dir: PathBuf,
    pub runs: usize,
    pub idle: Duration,
    pub quick: bool,
    /// Requests per operation, one at a time.
    pub sequential: usize,
    /// Requests per operation with `concurrency` outstanding.
    pub concurrent: usize,
    pub concurrency: usize,
    /// Requests per operation for the saturation throughput, `saturation_concurrency` outstanding.
    pub saturation: usize,
    pub saturation_concurrency: usize,
    pub size: MirrorSize,
}

impl Plan {
    pub fn full(agent_bin: PathBuf, work_dir: PathBuf) -> Plan {
        Plan {
            agent_bin,
            work_dir,
            runs: 3,
            idle: Duration::from_secs(60),
            quick: false,
            sequential: 1_000,
            concurrent: 2_000,
            concurrency: 8,
            saturation: 4_000,
            saturation_concurrency: 32,
            size: MirrorSize::REALISTIC,
        }
    }
    pub fn quick(agent_bin: PathBuf, work_dir: PathBuf) -> Plan {
        Plan {
            idle: Duration::from_secs(5),
            quick: true,
            sequential: 200,
            concurrent: 400,
            saturation: 1_000,
            ..Plan::full(agent_bin, work_dir)
        }
    }
}

/// Options beyond the [`Plan`] (kept apart so a `Plan` literal stays valid).
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Program and arguments put before the agent binary (e.g. `qemu-aarch64 -cpu cortex-a72`).
    pub wrapper: Vec<String>,
    /// Run the agent under `strace -f` and count its clone calls per phase.
    pub strace: bool,
    /// Burst sizes: each burst sends this many getBill at once to a fresh agent process.
    pub bursts: Vec<usize>,
    /// Skip the measured run (start-up, idle, load): bursts only.
    pub bursts_only: bool,
    /// TOML appended to every generated agent config (e.g. `[limits]` keys to compare).
    pub config_extra: String,
}

/// payBill's fate in one run.
#[derive(Debug, Clone, PartialEq)]
pub enum PayBill {
    Measured,
    /// The agent does not implement payBill yet (it logged so, and sent no callback).
    NotImplemented(String),
    /// Implemented (or unknown), but not measured here, with the reason.
    NotMeasured(String),
}

impl PayBill {
    pub fn describe(&self) -> String {
        match self {
            PayBill::Measured => "measured".into(),
            PayBill::NotImplemented(why) => format!("not yet implemented: {why}"),
            PayBill::NotMeasured(why) => format!("not measured: {why}"),
        }
    }
}

pub type Figures = BTreeMap<String, f64>;

#[derive(Debug, Clone)]
pub struct RunResult {
    pub figures: Figures,
    pub pay_bill: PayBill,
    /// Bad or lost answers and other things the reader must know.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub plan: Plan,
    pub extra: Extra,
    pub mirror: Generated,
    pub runs: Vec<RunResult>,
    pub median: Figures,
}

/// Generate the mirror once and do `plan.runs` runs.
pub async fn run_all(plan: &Plan, progress: impl FnMut(&str)) -> Result<Outcome, String> {
    run_all_with(plan, &Extra::default(), progress).await
}

/// [`run_all`] with the [`Extra`] options: each run also does the bursts (each on a fresh
/// agent process), and their figures join the run's.
pub async fn run_all_with(
    plan: &Plan,
    extra: &Extra,
    mut progress: impl FnMut(&str),
) -> Result<Outcome, String> {
    std::fs::create_dir_all(&plan.work_dir)
        .map_err(|e| format!("creating {}: {e}", plan.work_dir.display()))?;
    let mirror_path = plan.work_dir.join("mirror.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", mirror_path.display()));
    }
    progress("generating the mirror");
    // One payable bill for the probe and one per payBill request (sequential, concurrent).
    let payable = 1 + plan.sequential + plan.concurrent;
    let mirror = mirror_gen::generate(&mirror_path, plan.size, payable)?;
    let mut runs = Vec::new();
    for run in 1..=plan.runs {
        progress(&format!("run {run}/{}", plan.runs));
        let mut r = if extra.bursts_only {
            RunResult {
                figures: Figures::new(),
                pay_bill: PayBill::NotMeasured("--bursts-only".into()),
                notes: Vec::new(),
            }
        } else {
            run_once(plan, extra, &mirror_path, &mirror, run, &mut progress).await?
        };
        for &n in &extra.bursts {
            progress(&format!("  burst of {n} getBill"));
            let (f, notes) = burst::run(plan, extra, &mirror_path, &mirror, run, n).await?;
            r.figures.extend(f);
            r.notes.extend(notes);
        }
        runs.push(r);
    }
    let mut keys: Vec<&String> = runs.iter().flat_map(|r| r.figures.keys()).collect();
    keys.sort();
    keys.dedup();
    let median = keys
        .into_iter()
        .filter_map(|k| {
            let vals: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.figures.get(k))
                .copied()
                .collect();
            stats::median(&vals).map(|m| (k.clone(), m))
        })
        .collect();
    Ok(Outcome {
        plan: plan.clone(),
        extra: extra.clone(),
        mirror,
        runs,
        median,
    })
}

pub fn write_config(
    path: &Path,
    cloud: &FakeCloud,
    mirror: &Path,
    state: &Path,
    extra: &str,
) -> Result<(), String> {
    let text = format!(
        "# generated by the benchmark harness\n\
         resto_id = \"{RESTO_ID}\"\n\
         secret_key = \"{SECRET}\"\n\
         ws_url = \"{}\"\n\
         callback_url = \"{}\"\n\
         mirror_path = \"{}\"\n\
         state_dir = \"{}\"\n\
         \n[journal]\npos_ack_timeout_secs = {POS_ACK_TIMEOUT_SECS}\npoll_interval_ms = {JOURNAL_POLL_MS}\n\
         \n# [status] path, not runtime_dir: older agents (a \"before\" binary) know this key too\n\
         [status]\npath = \"{}\"\n\
         {extra}\n",
        cloud.ws_url(),
        cloud.callback_url(),
        mirror.display(),
        state.display(),
        state.join("status").display()
    );
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn frames_tables(tag: String) -> FrameFn {
    Arc::new(move |i| {
        let rid = format!("{tag}-{i}");
        let f = format!("{{\"rID\":\"{rid}\",\"operation\":\"tablesInfo\"}}");
        (rid, f)
    })
}

fn frames_check_work(tag: String) -> FrameFn {
    Arc::new(move |i| {
        let rid = format!("{tag}-{i}");
        let f = format!("{{\"rID\":\"{rid}\",\"operation\":\"checkWork\"}}");
        (rid, f)
    })
}

pub fn frames_get_bill(tag: String, open: Arc<Vec<OpenBill>>) -> FrameFn {
    Arc::new(move |i| {
        let rid = format!("{tag}-{i}");
        let t = open[i as usize % open.len()].table_number;
        let f = format!("{{\"rID\":\"{rid}\",\"operation\":\"getBill\",\"tableNumber\":\"{t}\"}}");
        (rid, f)
    })
}

/// Request `i` pays `payable[offset + i]` with its exact total, so each bill is paid once. Past
/// the end of `payable` (a plan bug) it names a bill that does not exist: a bad answer, counted.
fn frames_pay_bill(tag: String, payable: Arc<Vec<OpenBill>>, offset: usize) -> FrameFn {
    Arc::new(move |i| {
        let rid = format!("{tag}-{i}");
        let (bill, total) = payable
            .get(offset + i as usize)
            .map_or(("no-such-bill", 0), |b| (b.bill_id.as_str(), b.total_kop));
        let f = format!(
            "{{\"rID\":\"{rid}\",\"operation\":\"payBill\",\"billId\":\"{bill}\",\"sum\":{}.{:02},\"tips\":0.00}}",
            total / 100,
            total % 100
        );
        (rid, f)
    })
}

/// Samples the agent's VmRSS and thread ids every 10 ms while alive, keeping the maximum RSS
/// and every thread id seen (a lower bound of the threads that existed: one that lives less
/// than 10 ms may be missed; `--strace` counts them exactly).
pub struct Sampler {
    max_rss: Arc<AtomicU64>,
    tids: Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
    task: tokio::task::JoinHandle<()>,
}
impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let max_rss = Arc::new(AtomicU64::new(0));
        let tids = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let (m, t) = (max_rss.clone(), tids.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                match procfs::mem(pid) {
                    Ok(mem) => {
                        m.fetch_max(mem.rss_kib, Ordering::Relaxed);
                    }
                    Err(_) => break,
                }
                let now = procfs::tids(pid);
                t.lock().unwrap_or_else(|p| p.into_inner()).extend(now);
            }
        });
        Sampler {
            max_rss,
            tids,
            task,
        }
    }
    /// `(max VmRSS KiB, distinct thread ids seen)`.
    pub fn stop(self) -> (u64, usize) {
        self.task.abort();
        let n = self.tids.lock().unwrap_or_else(|p| p.into_inner()).len();
        (self.max_rss.load(Ordering::Relaxed), n)
    }
}

fn put(f: &mut Figures, key: impl Into<String>, v: f64) {
    f.insert(key.into(), v);
}

fn put_phase(f: &mut Figures, notes: &mut Vec<String>, key: &str, p: &Phase, cpu: procfs::Cpu) {
    put(f, format!("{key}.n"), p.answered as f64);
    put(f, format!("{key}.bad"), p.bad as f64);
    put(f, format!("{key}.lost"), p.lost as f64);
    put(f, format!("{key}.p50_us"), p.lat.p50_us);
    put(f, format!("{key}.p99_us"), p.lat.p99_us);
    put(f, format!("{key}.max_us"), p.lat.max_us);
    put(f, format!("{key}.ops_per_sec"), p.ops_per_sec);
    if p.answered > 0 {
        let per_op = |d: Duration| d.as_secs_f64() * 1e6 / p.answered as f64;
        put(f, format!("{key}.agent_cpu_us_per_op"), per_op(cpu.total()));
        put(
            f,
            format!("{key}.agent_kernel_us_per_op"),
            per_op(cpu.kernel),
        );
    }
    if p.bad > 0 || p.lost > 0 {
        notes.push(format!(
            "{key}: {} bad and {} lost of {} sent{}",
            p.bad,
            p.lost,
            p.sent,
            p.first_bad
                .as_deref()
                .map(|b| format!("; first bad answer: {b}"))
                .unwrap_or_default()
        ));
    }
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    f: &mut Figures,
    notes: &mut Vec<String>,
    key: &str,
    agent: &AgentProc,
    cloud: &FakeCloud,
    frames: FrameFn,
    n: usize,
    conc: usize,
    expect: Expect,
) -> Result<(), String> {
    let pid = agent.pid;
    let (c0, k0) = (
        procfs::cpu_split(pid).map_err(|e| format!("agent gone: {e}"))?,
        agent.clones(),
    );
    let p = load::run(cloud, frames, n, conc, expect).await;
    let (c1, k1) = (
        procfs::cpu_split(pid).map_err(|e| format!("agent gone: {e}"))?,
        agent.clones(),
    );
    put_phase(f, notes, key, &p, c1.since(c0));
    if let (Some(a), Some(b)) = (k0, k1) {
        put(f, format!("{key}.clones"), b.saturating_sub(a) as f64);
    }
    Ok(())
}

/// Wait for the payBill probe's verdict: a callback, or the agent's "not implemented" log line.
/// The log file is polled (every 20 ms, bounded by `limit`): there is no event to wait on.
async fn probe_pay_bill(cloud: &FakeCloud, frames: &FrameFn, log: &Path, wired: bool) -> PayBill {
    let (rid, frame) = frames(0);
    if !cloud.send_text(&frame).await {
        return PayBill::NotMeasured("the link was down when the probe was sent".into());
    }
    let limit = Duration::from_secs(POS_ACK_TIMEOUT_SECS + 5);
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(cb) = cloud.callback_for(&rid, Duration::from_millis(20)).await {
            let body = cb.body_str();
            if body.contains("\"state\":\"SUCCESS\"") && cb.signature_ok {
                return if wired {
                    PayBill::Measured
                } else {
                    PayBill::NotMeasured(
                        "payBill answered SUCCESS without a POS acknowledgement (ack_mode?); \
                         the harness's POS simulator is not wired (examples/bench/support/pos_sim.rs)"
                            .into(),
                    )
                };
            }
            let cut: String = body.chars().take(200).collect();
            return PayBill::NotMeasured(if wired {
                format!("the probe was answered with {cut}")
            } else {
                format!(
                    "the POS simulator is not wired to the journal yet (pos_sim.rs); probe answer: {cut}"
                )
            });
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("payBill is not implemented"))
        {
            return PayBill::NotImplemented(format!("agent log: {}", line.trim()));
        }
    }
    PayBill::NotMeasured(format!(
        "no answer to the probe within {} s",
        limit.as_secs()
    ))
}

pub async fn start_cloud() -> Result<FakeCloud, String> {
    FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO_ID.into(),
        secret: SECRET.into(),
        pos_system: None,
    })
    .await
    .map_err(|e| format!("starting the fake cloud: {e}"))
}

pub fn launch(plan: &Plan, extra: &Extra) -> Launch {
    Launch {
        bin: plan.agent_bin.clone(),
        wrapper: extra.wrapper.clone(),
        strace: extra.strace,
    }
}

async fn run_once(
    plan: &Plan,
    extra: &Extra,
    mirror_path: &Path,
    mirror: &Generated,
    run: usize,
    progress: &mut impl FnMut(&str),
) -> Result<RunResult, String> {
    let dir = plan.work_dir.join(format!("run-{run}"));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).map_err(|e| format!("creating {}: {e}", state.display()))?;
    let cloud = start_cloud().await?;
    // The simulated POS writes payments into the mirror: each run gets its own copy.
    let run_mirror = dir.join("mirror.sqlite");
    std::fs::copy(mirror_path, &run_mirror)
        .map_err(|e| format!("copying the mirror to {}: {e}", run_mirror.display()))?;
    let config = dir.join("config.toml");
    write_config(&config, &cloud, &run_mirror, &state, &extra.config_extra)?;
    let log_path = dir.join("agent.log");

    let mut f = Figures::new();
    let mut notes = Vec::new();
    let t_spawn = Instant::now();
    let agent = AgentProc::spawn(&launch(plan, extra), &config, &log_path, &dir).await?;
    let result = measure(
        plan, mirror, run, &agent, t_spawn, &cloud, &log_path, &mut f, &mut notes, progress,
    )
    .await;
    agent.stop(&mut notes).await;
    let pay_bill = result?;
    Ok(RunResult {
        figures: f,
        pay_bill,
        notes,
    })
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    plan: &Plan,
    mirror: &Generated,
    run: usize,
    agent: &AgentProc,
    t_spawn: Instant,
    cloud: &FakeCloud,
    log_path: &Path,
    f: &mut Figures,
    notes: &mut Vec<String>,
    progress: &mut impl FnMut(&str),
) -> Result<PayBill, String> {
    let pid = agent.pid;
    let open = Arc::new(mirror.open.clone());
    let gone =
        |e: std::io::Error| format!("reading /proc/{pid}: {e} (did the agent exit? see its log)");

    // Start-up.
    cloud
        .wait_connected(Duration::from_secs(30))
        .await
        .ok_or("the agent did not connect within 30 s (see its log)")?;
    put(f, "start.connect_ms", t_spawn.elapsed().as_secs_f64() * 1e3);
    let m = procfs::mem(pid).map_err(gone)?;
    put(f, "mem.start_rss_kib", m.rss_kib as f64);
    let first = frames_get_bill(format!("r{run}-first"), open.clone());
    let (rid, frame) = first(0);
    let cb = cloud
        .request(&frame, &rid, load::REQUEST_TIMEOUT)
        .await
        .ok_or("no answer to the first getBill")?;
    put(
        f,
        "start.first_answer_ms",
        cb.received_at
            .saturating_duration_since(t_spawn)
            .as_secs_f64()
            * 1e3,
    );
    if !cb.signature_ok || !cb.body_str().contains("\"state\":\"SUCCESS\"") {
        notes.push(format!(
            "first getBill was not a signed SUCCESS: {}",
            cb.body_str()
        ));
    }

    // Idle: keep-alive only.
    progress(&format!("  idle {} s", plan.idle.as_secs()));
    let (c0, s0, th0) = (
        procfs::cpu_stat(pid).map_err(gone)?,
        procfs::cpu_schedstat(pid),
        procfs::threads(pid),
    );
    let t0 = Instant::now();
    tokio::time::sleep(plan.idle).await; // the measurement window itself, not synchronisation
    let (c1, s1, th1) = (
        procfs::cpu_stat(pid).map_err(gone)?,
        procfs::cpu_schedstat(pid),
        procfs::threads(pid),
    );
    let window = t0.elapsed().as_secs_f64();
    let m = procfs::mem(pid).map_err(gone)?;
    put(f, "mem.idle_rss_kib", m.rss_kib as f64);
    put(f, "idle.secs", window);
    put(f, "idle.threads", th1 as f64);
    let stat_ms = c1.saturating_sub(c0).as_secs_f64() * 1e3;
    put(f, "idle.cpu_ms_stat", stat_ms);
    // schedstat (ns) only when no thread came or went, else the stat figure (10 ms ticks).
    let idle_ms = match (s0, s1) {
        (Some(a), Some(b)) if th0 == th1 => {
            let ms = b.saturating_sub(a).as_secs_f64() * 1e3;
            put(f, "idle.cpu_ms_schedstat", ms);
            ms
        }
        _ => stat_ms,
    };
    put(f, "idle.cpu_ms", idle_ms);
    put(f, "idle.cpu_pct", idle_ms / 1e3 / window * 100.0);

    // Load.
    progress("  load");
    let sampler = Sampler::start(pid);
    let (threads_load0, clones_load0) = (procfs::threads(pid), agent.clones());
    put(f, "load.threads_before", threads_load0 as f64);
    let c_load0 = procfs::cpu_stat(pid).map_err(gone)?;
    let t_load0 = Instant::now();
    type Op = (
        &'static str,
        fn(String, Arc<Vec<OpenBill>>) -> FrameFn,
        Expect,
    );
    let ops: Vec<Op> = vec![
        ("checkWork", |t, _| frames_check_work(t), Expect::Ready),
        ("tablesInfo", |t, _| frames_tables(t), Expect::Tables),
        ("getBill", frames_get_bill, Expect::Success),
    ];
    for (name, make, expect) in &ops {
        phase(
            f,
            notes,
            &format!("{name}.seq"),
            agent,
            cloud,
            make(format!("r{run}-{name}-s"), open.clone()),
            plan.sequential,
            1,
            *expect,
        )
        .await?;
        let c = plan.concurrency;
        phase(
            f,
            notes,
            &format!("{name}.c{c}"),
            agent,
            cloud,
            make(format!("r{run}-{name}-c"), open.clone()),
            plan.concurrent,
            c,
            *expect,
        )
        .await?;
        let c = plan.saturation_concurrency;
        phase(
            f,
            notes,
            &format!("{name}.sat"),
            agent,
            cloud,
            make(format!("r{run}-{name}-x"), open.clone()),
            plan.saturation,
            c,
            *expect,
        )
        .await?;
    }
    // The peak so far, to tell what payBill adds to it.
    let m = procfs::mem(pid).map_err(gone)?;
    put(f, "mem.hwm_before_pay_bill_kib", m.hwm_kib as f64);
    // payBill, last, with the simulated POS running only for it (its polling would otherwise
    // share the CPU with the phases above), on the run's mirror copy and the agent's journal
    // (`<state_dir>/journal.sqlite`: the bench config sets no `[journal] path`).
    let run_dir = log_path.parent().unwrap_or(Path::new("."));
    let pos = pos_sim::start(
        &run_dir.join("state").join("journal.sqlite"),
        &run_dir.join("mirror.sqlite"),
        POS_POLL,
    );
    let payable = Arc::new(mirror.payable.clone());
    let pay_bill = match &pos {
        Ok(_) => {
            let probe = frames_pay_bill(format!("r{run}-probe"), payable.clone(), 0);
            probe_pay_bill(cloud, &probe, log_path, pos_sim::WIRED).await
        }
        Err(e) => PayBill::NotMeasured(e.clone()),
    };
    // payBill: sequential and concurrent only (each request pays a bill of its own: no
    // saturation phase, whose 4 000 more bills would add little but mirror size).
    if pay_bill == PayBill::Measured {
        let seq = plan.sequential;
        let phases = [
            ("payBill.seq".to_string(), 1, plan.sequential, 1),
            (
                format!("payBill.c{}", plan.concurrency),
                1 + seq,
                plan.concurrent,
                plan.concurrency,
            ),
        ];
        for (key, offset, n, conc) in phases {
            let frames = frames_pay_bill(format!("r{run}-{key}"), payable.clone(), offset);
            phase(
                f,
                notes,
                &key,
                agent,
                cloud,
                frames,
                n,
                conc,
                Expect::Success,
            )
            .await?;
        }
    }
    if let Ok(pos) = &pos {
        put(f, "payBill.pos_processed", pos.processed() as f64);
    }
    drop(pos);
    put(f, "load.secs", t_load0.elapsed().as_secs_f64());
    put(
        f,
        "load.agent_cpu_ms",
        procfs::cpu_stat(pid)
            .map_err(gone)?
            .saturating_sub(c_load0)
            .as_secs_f64()
            * 1e3,
    );
    let answered: f64 = f
        .iter()
        .filter(|(k, _)| k.ends_with(".n"))
        .map(|(_, v)| *v)
        .sum();
    put(f, "load.answered", answered);
    put(f, "load.threads_after", procfs::threads(pid) as f64);
    if let (Some(a), Some(b)) = (clones_load0, agent.clones()) {
        put(f, "load.clones", b.saturating_sub(a) as f64);
    }
    put(
        f,
        "load.callback_connections",
        cloud.callback_connections() as f64,
    );
    let (sampled, tids_seen) = sampler.stop();
    put(f, "load.threads_seen", tids_seen as f64);
    let m = procfs::mem(pid).map_err(gone)?;
    put(f, "mem.peak_hwm_kib", m.hwm_kib as f64);
    put(f, "mem.peak_rss_sampled_kib", sampled as f64);
    tokio::time::sleep(Duration::from_secs(2)).await; // let the agent settle before "after load"
    let m = procfs::mem(pid).map_err(gone)?;
    put(f, "mem.after_rss_kib", m.rss_kib as f64);
    Ok(pay_bill)
}
