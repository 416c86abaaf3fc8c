//! One-call setup for tests, the sandbox and the benchmark: a fake cloud, a demo mirror in a
//! temporary directory, and the real agent started in-process against them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{Callback, FakeCloud, FakeCloudConfig};
use expirenza_agent::agent::{self, Hooks, Running};
use expirenza_agent::config::Config;
use expirenza_agent::shutdown::{self, Trigger};

pub const RESTO_ID: &str = "4f9c2a10-resto-0001";
pub const SECRET: &str = "my-secret-key-123";

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "expirenza-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Create a mirror at `path`: the schema, and the demo restaurant when `demo`.
pub fn make_mirror(path: &Path, demo: bool) {
    let mut conn = expirenza_agent::mirror::create_schema(path).expect("create mirror schema");
    if demo {
        expirenza_agent::mirror::demo::fill(&mut conn).expect("fill demo mirror");
    }
}

pub struct Harness {
    pub cloud: FakeCloud,
    pub cfg: Config,
    pub mirror: PathBuf,
    trigger: Trigger,
    running: Option<Running>,
    // Last: removed after the agent stopped.
    pub dir: TempDir,
}

impl Harness {
    /// Fake cloud + demo mirror + agent with fast loopback timings, connected.
    pub async fn start() -> Harness {
        Self::start_with(true, |_| {}).await
    }

    /// `demo`: fill the mirror with the demo restaurant. `tweak`: adjust the config.
    pub async fn start_with(demo: bool, tweak: impl FnOnce(&mut Config)) -> Harness {
        let dir = TempDir::new("harness");
        let mirror = dir.path().join("mirror.sqlite");
        make_mirror(&mirror, demo);
        let cloud = FakeCloud::start(FakeCloudConfig {
            resto_id: RESTO_ID.into(),
            secret: SECRET.into(),
            pos_system: Some("expirenza-agent".into()),
        })
        .await
        .expect("start fake cloud");
        let mut cfg = Config::for_loopback(
            RESTO_ID,
            SECRET,
            &cloud.ws_url(),
            &cloud.callback_url(),
            &mirror,
            dir.path(),
        );
        tweak(&mut cfg);
        let (trigger, shutdown) = shutdown::channel();
        let running = agent::spawn(cfg.clone(), Hooks::default(), shutdown).expect("start agent");
        let h = Harness {
            cloud,
            cfg,
            mirror,
            trigger,
            running: Some(running),
            dir,
        };
        h.cloud
            .wait_connected(Duration::from_secs(10))
            .await
            .expect("agent connects to the fake cloud");
        h
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("agent running")
    }

    /// Send `{"rID":rid,"operation":op,<fields>}` and wait up to 10 s for its callback.
    /// `fields` is JSON object members without braces, e.g. `"tableNumber":"12"`, or "".
    pub async fn call(&self, op: &str, rid: &str, fields: &str) -> Option<Callback> {
        let sep = if fields.is_empty() { "" } else { "," };
        let frame = format!("{{\"rID\":\"{rid}\",\"operation\":\"{op}\"{sep}{fields}}}");
        self.cloud
            .request(&frame, rid, Duration::from_secs(10))
            .await
    }

    /// Fire shutdown and wait for the agent's tasks to end.
    pub async fn stop(mut self) {
        self.trigger.fire();
        if let Some(r) = self.running.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), r.finished()).await;
        }
    }
}
