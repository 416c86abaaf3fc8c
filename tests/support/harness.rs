//! In-process harness for the fault tests: a demo mirror, a fast config (1 s pings, 3 s dead
//! link, 200 ms backoff floor, 2 s callback attempts, 6 s deadline), the agent spawned on the
//! current runtime, and a `LinkEvents` hook that records connection attempts and link-down
//! reasons (for faults where no fake cloud sees the attempts: DNS, TLS).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use expirenza_agent::agent::{self, Hooks, Running};
use expirenza_agent::dispatch::OpEvents;
use expirenza_agent::link::LinkEvents;
use expirenza_agent::shutdown::{self, Trigger};
use expirenza_agent::{mirror, Config};
use testkit::{FakeCloud, FakeCloudConfig};

pub const RESTO: &str = "resto-faults";
pub const SECRET: &str = "faults-secret-key";
pub const FLOOR: Duration = Duration::from_millis(200);

static N: AtomicUsize = AtomicUsize::new(0);

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "expirenza-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A demo mirror at `dir/mirror.sqlite` (rollback journal, so a POS writer's exclusive lock
/// really blocks readers, as with many POS databases).
pub fn demo_mirror(dir: &Path) -> PathBuf {
    let p = dir.join("mirror.sqlite");
    write_demo(&p);
    p
}

pub fn write_demo(p: &Path) {
    let mut conn = mirror::create_schema(p).unwrap();
    mirror::demo::fill(&mut conn).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
        .unwrap();
}

pub fn fast_config(ws_url: &str, callback_url: &str, mirror: &Path, state: &Path) -> Config {
    let mut cfg = Config::for_loopback(RESTO, SECRET, ws_url, callback_url, mirror, state);
    cfg.link.ping_interval_secs = 1;
    cfg.link.dead_after_secs = 3;
    cfg.link.app_ping_interval_secs = 1;
    cfg.link.connect_timeout_secs = 2;
    cfg.link.backoff_floor_ms = FLOOR.as_millis() as u64;
    cfg.link.backoff_cap_ms = 1_000;
    cfg.callback.attempt_timeout_secs = 2;
    cfg.callback.deadline_secs = 6;
    cfg.callback.retry_initial_ms = 100;
    cfg.callback.retry_max_ms = 400;
    cfg.journal.pos_ack_timeout_secs = 1;
    cfg.mirror.busy_timeout_ms = 300;
    cfg
}

/// Records what the link reports.
#[derive(Default)]
pub struct LinkLog {
    pub attempts: Mutex<Vec<Instant>>,
    pub downs: Mutex<Vec<String>>,
    pub ups: AtomicUsize,
    notify: tokio::sync::Notify,
}

impl LinkEvents for LinkLog {
    fn link_up(&self) {
        self.ups.fetch_add(1, Ordering::Relaxed);
        self.notify.notify_waiters();
    }
    fn link_down(&self, reason: &str) {
        self.downs.lock().unwrap().push(reason.to_string());
        self.notify.notify_waiters();
    }
    fn connecting(&self) {
        self.attempts.lock().unwrap().push(Instant::now());
        self.notify.notify_waiters();
    }
}

impl LinkLog {
    /// Wait (event-driven) until `n` link-down reports arrived.
    pub async fn wait_downs(&self, n: usize, limit: Duration) -> bool {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            if self.downs.lock().unwrap().len() >= n {
                return true;
            }
            if tokio::time::timeout_at(end, notified).await.is_err() {
                return self.downs.lock().unwrap().len() >= n;
            }
        }
    }
    pub fn attempts(&self) -> Vec<Instant> {
        self.attempts.lock().unwrap().clone()
    }
    pub fn downs(&self) -> Vec<String> {
        self.downs.lock().unwrap().clone()
    }
}

/// Records finished operations: (operation, ok), in order.
#[derive(Default)]
pub struct OpLog {
    pub done: Mutex<Vec<(String, bool)>>,
    notify: tokio::sync::Notify,
}

impl OpEvents for OpLog {
    fn op_done(&self, operation: &str, ok: bool) {
        self.done.lock().unwrap().push((operation.to_string(), ok));
        self.notify.notify_waiters();
    }
}

impl OpLog {
    /// Wait (event-driven) until `n` operations finished; returns them.
    pub async fn wait(&self, n: usize, limit: Duration) -> Vec<(String, bool)> {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.notify.notified();
            let v = self.done.lock().unwrap().clone();
            if v.len() >= n {
                return v;
            }
            if tokio::time::timeout_at(end, notified).await.is_err() {
                return self.done.lock().unwrap().clone();
            }
        }
    }
}

pub struct Started {
    pub running: Running,
    pub trigger: Trigger,
    pub link: Arc<LinkLog>,
    pub ops: Arc<OpLog>,
}

impl Started {
    pub async fn stop(self) {
        self.trigger.fire();
        tokio::time::timeout(Duration::from_secs(15), self.running.finished())
            .await
            .expect("the agent stops within its grace period");
    }
}

pub fn start(cfg: Config) -> Started {
    cfg.validate().expect("test config is valid");
    let link = Arc::new(LinkLog::default());
    let ops = Arc::new(OpLog::default());
    let hooks = Hooks {
        link: link.clone(),
        ops: ops.clone(),
    };
    let (trigger, sd) = shutdown::channel();
    let running = agent::spawn(cfg, hooks, sd).expect("agent starts");
    Started {
        running,
        trigger,
        link,
        ops,
    }
}

/// Gaps between consecutive instants.
pub fn gaps(v: &[Instant]) -> Vec<Duration> {
    v.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Every gap is at least the backoff floor (a few ms of timer slack allowed).
pub fn assert_spacing(v: &[Instant], what: &str) {
    for g in gaps(v) {
        assert!(
            g + Duration::from_millis(5) >= FLOOR,
            "{what}: two connection attempts {g:?} apart (floor {FLOOR:?}): {:?}",
            gaps(v)
        );
    }
}

pub fn get_bill(rid: &str, table: &str) -> String {
    format!(r#"{{"rID":"{rid}","operation":"getBill","tableNumber":"{table}"}}"#)
}

pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("callback body is JSON")
}

/// A fake cloud for [`RESTO`] / [`SECRET`] on loopback.
pub async fn fake_cloud() -> FakeCloud {
    FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO.into(),
        secret: SECRET.into(),
        pos_system: None,
    })
    .await
    .expect("start fake cloud")
}

/// A connected agent: demo mirror, fast config, fake cloud.
pub struct Setup {
    pub cloud: FakeCloud,
    pub agent: Started,
    pub mirror: PathBuf,
}

pub async fn setup(tag: &str, connect_within: Duration) -> Setup {
    let dir = temp_dir(tag);
    let mirror = demo_mirror(&dir);
    let cloud = fake_cloud().await;
    let agent = start(fast_config(
        &cloud.ws_url(),
        &cloud.callback_url(),
        &mirror,
        &dir,
    ));
    cloud.wait_connected(connect_within).await.expect("connect");
    Setup {
        cloud,
        agent,
        mirror,
    }
}
