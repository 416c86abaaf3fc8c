//! Soak: run the real agent binary against the fake cloud for a while with a realistic mix, and
//! print its memory over time. Not part of `cargo test` (examples are only compiled there).
//!
//! ```text
//! scripts/soak.sh 600                      # 10 minutes, release build
//! cargo run --example soak -- --agent target/release/expirenza-agent --secs 600 --rate 50
//! ```
//! Mix per second of `--rate` requests: ~70 % getBill on random tables (1–12), 10 % tablesInfo,
//! 5 % hallplansInfo, 5 % checkWork, 5 % malformed frames, 5 % unknown operations. Every 30 s one
//! callback answer is a 503 (retried), every 60 s the cloud drops the WebSocket (reconnect).
//! Every 5 s a line: elapsed, requests sent, callbacks received, link reconnects, agent error
//! lines, VmRSS and VmHWM of the agent process. At the end every valid request must have been
//! answered (exit 1 otherwise, or if the agent died or its RSS kept growing).

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::harness::{make_mirror, TempDir, RESTO_ID, SECRET};
use testkit::{FakeCloud, FakeCloudConfig, Reply};

fn arg(name: &str) -> Option<String> {
    let mut it = std::env::args();
    while let Some(a) = it.next() {
        if a == name {
            return it.next();
        }
    }
    None
}

fn mem_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn main() -> ExitCode {
    let agent_bin = arg("--agent").unwrap_or_else(|| "target/release/expirenza-agent".into());
    let secs: u64 = arg("--secs").and_then(|s| s.parse().ok()).unwrap_or(60);
    let rate: u64 = arg("--rate")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(soak(agent_bin, secs, rate))
}

async fn soak(agent_bin: String, secs: u64, rate: u64) -> ExitCode {
    let dir = TempDir::new("soak");
    let mirror = dir.path().join("mirror.sqlite");
    make_mirror(&mirror, true);
    let cloud = FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO_ID.into(),
        secret: SECRET.into(),
        pos_system: None,
    })
    .await
    .expect("fake cloud");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\n[link]\nbackoff_floor_ms = 1000\nbackoff_cap_ms = 5000\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new(&agent_bin)
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("EXPIRENZA_RESTO_ID", RESTO_ID)
        .env("EXPIRENZA_SECRET_KEY", SECRET)
        .env("EXPIRENZA_WS_URL", cloud.ws_url())
        .env("EXPIRENZA_CALLBACK_URL", cloud.callback_url())
        .env("EXPIRENZA_MIRROR", &mirror)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {agent_bin}: {e} (build it: cargo build --release)")
        });
    let pid = child.id();
    let errors = Arc::new(AtomicUsize::new(0));
    let e2 = errors.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("<3>") {
                e2.fetch_add(1, Ordering::Relaxed);
                eprintln!("agent error: {line}");
            }
        }
    });
    if cloud
        .wait_connected(Duration::from_secs(15))
        .await
        .is_none()
    {
        eprintln!("the agent never connected");
        let _ = child.kill();
        let _ = child.wait();
        return ExitCode::FAILURE;
    }
    println!("soak: {secs} s at {rate} req/s against {agent_bin} (pid {pid})");
    println!(
        "{:>6} {:>8} {:>9} {:>5} {:>6} {:>9} {:>9}",
        "t(s)", "sent", "answered", "links", "errors", "RSS KiB", "HWM KiB"
    );
    let start = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut sent_valid, mut sent_total) = (0usize, 0usize);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let (mut next_print, mut next_503, mut next_drop) = (5u64, 30u64, 60u64);
    let mut rss_samples = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let i = sent_total;
        let r = rng.next() % 100;
        let rid = format!("soak-{i}");
        let frame = match r {
            0..=69 => format!(
                r#"{{"rID":"{rid}","operation":"getBill","tableNumber":"{}"}}"#,
                rng.next() % 12 + 1
            ),
            70..=79 => format!(r#"{{"rID":"{rid}","operation":"tablesInfo"}}"#),
            80..=84 => format!(r#"{{"rID":"{rid}","operation":"hallplansInfo"}}"#),
            85..=89 => format!(r#"{{"rID":"{rid}","operation":"checkWork"}}"#),
            90..=94 => format!(r#"{{"rID":"{rid}","operation":"getBill","tableNumber":"#),
            _ => format!(r#"{{"rID":"{rid}","operation":"noSuchOp"}}"#),
        };
        if cloud.send_text(&frame).await {
            sent_total += 1;
            if r < 90 {
                sent_valid += 1;
            }
        }
        let t = start.elapsed().as_secs();
        if t >= next_503 {
            cloud.push_responses(&[Reply::Status(503)]);
            next_503 += 30;
        }
        if t >= next_drop {
            cloud.drop_connection().await;
            let _ = cloud.wait_connected(Duration::from_secs(15)).await;
            next_drop += 60;
        }
        if t >= next_print {
            let (rss, hwm) = mem_kib(pid);
            rss_samples.push(rss);
            let answered = cloud
                .all_callbacks()
                .iter()
                .filter(|c| c.answered == 200)
                .count();
            println!(
                "{t:>6} {sent_total:>8} {answered:>9} {:>5} {:>6} {rss:>9} {hwm:>9}",
                cloud.connection_count(),
                errors.load(Ordering::Relaxed)
            );
            next_print += 5;
        }
    }
    // Let the last answers land (event: each callback; bounded).
    let end = Instant::now() + Duration::from_secs(20);
    let answered = loop {
        let a = cloud
            .all_callbacks()
            .iter()
            .filter(|c| c.answered == 200)
            .count();
        if a >= sent_valid || Instant::now() > end {
            break a;
        }
        let _ = cloud.next_callback(Duration::from_millis(500)).await;
    };
    let (rss, hwm) = mem_kib(pid);
    let alive = child.try_wait().ok().flatten().is_none();
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let status = child.wait().ok();
    // Growth check: the last quarter's mean RSS vs the second quarter's.
    let q = rss_samples.len() / 4;
    let growth = if q >= 1 {
        let mean = |s: &[u64]| s.iter().sum::<u64>() / s.len() as u64;
        mean(&rss_samples[3 * q..]) as i64 - mean(&rss_samples[q..2 * q]) as i64
    } else {
        0
    };
    println!(
        "soak done: {sent_total} frames sent ({sent_valid} valid), {answered} answered, {} agent error lines, \
         final RSS {rss} KiB, peak {hwm} KiB, RSS drift {growth} KiB, exit {status:?}",
        errors.load(Ordering::Relaxed)
    );
    if !alive || answered < sent_valid || growth > 4 * 1024 {
        eprintln!("SOAK FAILED");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
