//! A burst: `n` getBill sent at once (as fast as the fake cloud's WebSocket takes them) to a
//! fresh agent process, then every callback collected. It shows what a busy evening's peak
//! does to the agent: how many are answered, how long the last one takes, the peak RSS
//! (VmHWM of a process that did nothing else), the threads and (under `--strace`) the clone
//! calls the burst cost.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::agent_proc::AgentProc;
use super::mirror_gen::Generated;
use super::{frames_get_bill, launch, procfs, put, start_cloud, write_config, Extra, Figures};
use super::{Plan, Sampler};

/// Tasks sending the burst's frames (each waits for the WebSocket task to take a frame).
const SENDERS: usize = 8;
/// The burst ends when every request is answered, or when no callback came for this long.
const QUIET: Duration = Duration::from_secs(10);

/// Run one burst of `n` requests on a fresh agent; figures are named `burst.<n>.*`.
pub async fn run(
    plan: &Plan,
    extra: &Extra,
    mirror_path: &Path,
    mirror: &Generated,
    run: usize,
    n: usize,
) -> Result<(Figures, Vec<String>), String> {
    let dir = plan.work_dir.join(format!("run-{run}-burst-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).map_err(|e| format!("creating {}: {e}", state.display()))?;
    let cloud = start_cloud().await?;
    let config = dir.join("config.toml");
    // getBill only reads: the generated mirror itself serves.
    write_config(&config, &cloud, mirror_path, &state, &extra.config_extra)?;
    let mut f = Figures::new();
    let mut notes = Vec::new();
    let agent =
        AgentProc::spawn(&launch(plan, extra), &config, &dir.join("agent.log"), &dir).await?;
    let res = measure(&agent, &cloud, mirror, run, n, &mut f, &mut notes).await;
    agent.stop(&mut notes).await;
    res?;
    Ok((f, notes))
}

async fn measure(
    agent: &AgentProc,
    cloud: &testkit::FakeCloud,
    mirror: &Generated,
    run: usize,
    n: usize,
    f: &mut Figures,
    notes: &mut Vec<String>,
) -> Result<(), String> {
    let pid = agent.pid;
    let key = |x: &str| format!("burst.{n}.{x}");
    let gone = |e: std::io::Error| format!("reading /proc/{pid}: {e} (did the agent exit?)");
    cloud
        .wait_connected(Duration::from_secs(30))
        .await
        .ok_or("burst: the agent did not connect within 30 s")?;
    let open = Arc::new(mirror.open.clone());
    let warm = frames_get_bill(format!("r{run}-b{n}-warm"), open.clone());
    let (rid, frame) = warm(0);
    cloud
        .request(&frame, &rid, Duration::from_secs(30))
        .await
        .ok_or("burst: no answer to the warm-up getBill")?;
    put(f, key("threads_before"), procfs::threads(pid) as f64);
    put(
        f,
        key("rss_before_kib"),
        procfs::mem(pid).map_err(gone)?.rss_kib as f64,
    );
    let (c0, k0) = (procfs::cpu_stat(pid).map_err(gone)?, agent.clones());
    let sampler = Sampler::start(pid);
    let frames = frames_get_bill(format!("r{run}-b{n}"), open);
    let t0 = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for s in 0..SENDERS {
        let (cloud, frames) = (cloud.clone(), frames.clone());
        senders.spawn(async move {
            let mut sent = 0usize;
            for i in (s..n).step_by(SENDERS) {
                let (_, frame) = frames(i as u64);
                if cloud.send_text(&frame).await {
                    sent += 1;
                }
            }
            sent
        });
    }
    let prefix = format!("r{run}-b{n}-");
    let (mut seen, mut good, mut dup) = (HashSet::new(), 0usize, 0usize);
    let mut last = t0;
    while seen.len() < n {
        let Some(cb) = cloud.next_callback(QUIET).await else {
            break;
        };
        let Some(rid) = cb.rid.as_deref().filter(|r| r.starts_with(&prefix)) else {
            continue;
        };
        last = cb.received_at;
        if !seen.insert(rid.to_string()) {
            dup += 1;
            continue;
        }
        if cb.signature_ok && cb.body_str().contains("\"state\":\"SUCCESS\"") {
            good += 1;
        }
    }
    let mut sent = 0;
    while let Some(r) = senders.join_next().await {
        sent += r.unwrap_or(0);
    }
    let (c1, k1) = (procfs::cpu_stat(pid).map_err(gone)?, agent.clones());
    let (sampled, tids) = sampler.stop();
    let m = procfs::mem(pid).map_err(gone)?;
    let answered = seen.len();
    put(f, key("sent"), sent as f64);
    put(f, key("answered"), answered as f64);
    put(f, key("good"), good as f64);
    put(
        f,
        key("secs"),
        last.saturating_duration_since(t0).as_secs_f64(),
    );
    put(f, key("peak_hwm_kib"), m.hwm_kib as f64);
    put(f, key("peak_rss_sampled_kib"), sampled as f64);
    put(f, key("threads_after"), procfs::threads(pid) as f64);
    put(f, key("threads_seen"), tids as f64);
    let cpu = c1.saturating_sub(c0).as_secs_f64();
    put(f, key("agent_cpu_ms"), cpu * 1e3);
    if answered > 0 {
        put(f, key("agent_cpu_us_per_op"), cpu * 1e6 / answered as f64);
    }
    if let (Some(a), Some(b)) = (k0, k1) {
        put(f, key("clones"), b.saturating_sub(a) as f64);
    }
    if answered < n || good < answered || dup > 0 {
        notes.push(format!(
            "burst of {n}: {answered} answered ({good} good SUCCESS), {dup} duplicate callbacks, \
             {} never answered (none came for {} s)",
            n - answered,
            QUIET.as_secs()
        ));
    }
    Ok(())
}
