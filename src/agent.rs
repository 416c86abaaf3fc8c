//! Wiring: build the shared context, start the dispatcher worker and the link, run until
//! shutdown. `main.rs` (the `run` subcommand), the sandbox and the tests all start the agent
//! through [`spawn`].

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::callback::{CallbackClient, CallbackError};
use crate::config::Config;
use crate::ctx::Ctx;
use crate::dispatch::{self, Counters, OpEvents};
use crate::link::{Link, LinkEvents};
use crate::shutdown::Shutdown;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("callback client: {0}")]
    Callback(#[from] CallbackError),
}

/// Observers of the running agent; the status board implements both.
#[derive(Clone)]
pub struct Hooks {
    pub link: Arc<dyn LinkEvents>,
    pub ops: Arc<dyn OpEvents>,
}

/// Hooks that observe nothing.
pub struct Quiet;
impl LinkEvents for Quiet {
    fn link_up(&self) {}
    fn link_down(&self, _reason: &str) {}
}
impl OpEvents for Quiet {
    fn op_done(&self, _operation: &str, _ok: bool) {}
}

impl LinkEvents for crate::status::StatusBoard {
    fn link_up(&self) {
        crate::status::StatusBoard::link_up(self)
    }
    fn link_down(&self, reason: &str) {
        crate::status::StatusBoard::link_down(self, reason)
    }
    fn connecting(&self) {
        self.link_connecting()
    }
}
impl OpEvents for crate::status::StatusBoard {
    fn op_done(&self, operation: &str, ok: bool) {
        crate::status::StatusBoard::op_done(self, operation, ok)
    }
}

impl Hooks {
    /// Both observers are the status board.
    pub fn status(board: Arc<crate::status::StatusBoard>) -> Hooks {
        Hooks {
            link: board.clone(),
            ops: board,
        }
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            link: Arc::new(Quiet),
            ops: Arc::new(Quiet),
        }
    }
}

/// A started agent: its tasks run on the current tokio runtime until `shutdown` fires.
pub struct Running {
    pub ctx: Arc<Ctx>,
    pub counters: Arc<Counters>,
    pub join: JoinHandle<()>,
}

impl Running {
    /// Wait for the agent's tasks to finish (after shutdown was fired).
    pub async fn finished(self) {
        let _ = self.join.await;
    }
}

/// How often [`watch_mirror`] looks whether the mirror file was replaced.
pub const MIRROR_WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Every [`MIRROR_WATCH_EVERY`], whether the mirror file was replaced: if it was, the
/// connections to the old file are closed and its log truncated at once (on the blocking
/// pool: it may wait for a lock), not at the next request. Until then the old file's log stays
/// beside the new one, where any other process that opens the mirror would read it.
async fn watch_mirror(ctx: Arc<Ctx>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(MIRROR_WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.recv() => break,
        }
        if !ctx.mirror.holds_replaced() {
            continue;
        }
        let c = ctx.clone();
        let _ = tokio::task::spawn_blocking(move || c.mirror.release_if_replaced()).await;
    }
}

pub fn spawn(cfg: Config, hooks: Hooks, shutdown: Shutdown) -> Result<Running, AgentError> {
    let cfg = Arc::new(cfg);
    let callback = CallbackClient::new(&cfg)?;
    let ctx = Arc::new(Ctx::new(cfg.clone(), callback));
    let (dispatcher, worker) = dispatch::channel(ctx.clone(), hooks.ops.clone());
    let counters = dispatcher.counters();
    let link = Link::new(cfg.clone(), dispatcher, hooks.link.clone());
    // The ORDERS_CACHE pusher: its own timed task, outside the dispatcher's permits.
    let cache = cfg
        .cache
        .enabled
        .then(|| crate::cache::pusher::spawn(ctx.clone(), shutdown.clone()));
    let watch = tokio::spawn(watch_mirror(ctx.clone(), shutdown.clone()));
    // Requests the journal could not take: moved into it at start and whenever it is free.
    tokio::spawn(crate::journal::spool::keeper(
        ctx.clone(),
        crate::journal::spool::KEEPER_EVERY,
        shutdown.clone(),
    ));
    let (s1, s2) = (shutdown.clone(), shutdown);
    let join = tokio::spawn(async move {
        let worker = tokio::spawn(worker.run(s1));
        link.run(s2).await;
        let _ = worker.await;
        let _ = watch.await;
        if let Some(cache) = cache {
            let _ = cache.await;
        }
    });
    Ok(Running {
        ctx,
        counters,
        join,
    })
}
