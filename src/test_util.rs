//! Helpers for the unit tests inside `src/` (compiled only under `cfg(test)`).
//!
//! Integration tests, examples and the fuzz crate use the `testkit` crate instead; unit tests
//! cannot (a dev-dependency on a crate that depends on this one links a second copy of it).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "expirenza-unit-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config whose mirror and state live in `dir`, with unreachable loopback URLs: for unit
/// tests that open the journal or the mirror and never connect.
pub(crate) fn offline_config(dir: &Path) -> crate::config::Config {
    crate::config::Config::for_loopback(
        "r",
        "s",
        "ws://127.0.0.1:9/",
        "http://127.0.0.1:9/cb",
        &dir.join("mirror.sqlite"),
        dir,
    )
}
