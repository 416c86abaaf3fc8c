//! `Ctx`: what every operation, the ORDERS_CACHE pusher and the status feed may use. It lives
//! here, not in `ops`, so that modules below `ops` (cache, status) can take it without
//! importing `ops`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::answers::Answers;
use crate::callback::Deliver;
use crate::config::Config;
use crate::journal::Journal;
use crate::json::JsonBuf;
use crate::mirror::Mirror;

/// Everything an operation may use. Shared by all in-flight operations.
pub struct Ctx {
    pub cfg: Arc<Config>,
    pub mirror: Mirror,
    /// Delivers callbacks: the real client, or a stub in tests and the fuzz target.
    pub callback: Arc<dyn Deliver>,
    /// True while the ORDERS_CACHE pusher is enabled and its last push succeeded.
    pub cache_ok: AtomicBool,
    /// The durable command journal (opened lazily; see `journal/mod.rs`).
    pub journal: Journal,
    /// Answers kept per mirror version (`[limits] answer_cache_kib`).
    pub answers: Answers,
}

impl Ctx {
    pub fn new(cfg: Arc<Config>, callback: Arc<dyn Deliver>) -> Ctx {
        let mirror = Mirror::new(
            &cfg.mirror_path,
            cfg.mirror.busy_timeout_ms,
            cfg.mirror.max_connections,
        );
        let journal = Journal::new(&cfg);
        let answers = Answers::new(cfg.limits.answer_cache_kib as usize * 1024);
        Ctx {
            cfg,
            mirror,
            callback,
            cache_ok: AtomicBool::new(false),
            journal,
            answers,
        }
    }
    /// A body writer capped by `[limits] max_body_bytes`.
    pub fn body(&self) -> JsonBuf {
        JsonBuf::new(self.cfg.limits.max_body_bytes)
    }
    /// A body writer capped like [`Ctx::body`], with room for `room` bytes from the start.
    pub fn body_with_room(&self, room: usize) -> JsonBuf {
        JsonBuf::with_room(self.cfg.limits.max_body_bytes, room)
    }
    pub fn max_rows(&self) -> usize {
        self.cfg.limits.max_rows
    }
}

impl AsRef<Journal> for Ctx {
    fn as_ref(&self) -> &Journal {
        &self.journal
    }
}
