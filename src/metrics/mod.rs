//! Fleet metrics in Prometheus's text exposition format, for node_exporter's textfile collector.
//!
//! The agent's tasks record events through the narrow functions below (one line at each call
//! site: link up/down, connect failures, an operation finished, a callback attempt, a cache
//! push). They land in one process-wide [`Registry`] of atomics and a small map bounded by the
//! operation table, so recording never allocates more than that and never blocks on I/O.
//!
//! When `[metrics] textfile_path` is set, [`textfile::writer`] renders the registry every
//! `[status] write_interval_secs` and replaces the file atomically (temp file + rename in the
//! same directory, no fsync: it is runtime state, rewritten seconds later, and belongs in /run,
//! not on the SD card). docs/deploy.md shows the node_exporter setup and alert rules.
//!
//! Every metric is `expirenza_`-prefixed and has HELP and TYPE lines:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `expirenza_build_info` | gauge (1) | `version` |
//! | `expirenza_start_time_seconds` | gauge | |
//! | `expirenza_link_up` | gauge (0/1) | |
//! | `expirenza_link_connects_total` | counter | |
//! | `expirenza_link_disconnects_total` | counter | |
//! | `expirenza_link_connect_failures_total` | counter | `reason` (`credentials`, `other`) |
//! | `expirenza_operations_total` | counter | `operation`, `outcome` |
//! | `expirenza_operation_duration_seconds` | histogram | |
//! | `expirenza_callback_attempts_total` | counter | |
//! | `expirenza_callback_failures_total` | counter | |
//! | `expirenza_callback_pool_waits_total` | counter | |
//! | `expirenza_callback_pool_wait_seconds_total` | counter | |
//! | `expirenza_callback_pool_wait_timeouts_total` | counter | |
//! | `expirenza_callback_pool_waiting` | gauge | |
//! | `expirenza_journal_backlog` | gauge | `status` (`pending`, `claimed`, `review`) |
//! | `expirenza_cache_pushes_total` | counter | `result` (`ok`, `failed`) |
//! | `expirenza_answers_total` | counter | `source` (`kept`, `read`) |
//! | `expirenza_process_resident_memory_bytes` | gauge | |
//!
//! The process-wide registry matches the process model (one agent per process). Tests that
//! look at it run the agent in their own test binary and compare before/after values.

pub mod registry;
pub mod textfile;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use registry::{Outcome, Registry};

/// `[metrics]`: the Prometheus textfile. Off unless `textfile_path` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where to write the metrics, e.g. `/run/expirenza-agent/metrics.prom`. The file name must
    /// end in `.prom` (node_exporter reads only those). Default: none (no metrics file).
    pub textfile_path: Option<PathBuf>,
}

impl MetricsConfig {
    /// Checks serde cannot express; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.textfile_path {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with(".prom") || name.len() <= ".prom".len() {
                return Err(format!(
                    "[metrics] textfile_path {} must name a file ending in .prom (node_exporter's textfile collector reads only those)",
                    p.display()
                ));
            }
        }
        Ok(())
    }
}

static GLOBAL: Registry = Registry::new();

/// The process-wide registry.
pub fn global() -> &'static Registry {
    &GLOBAL
}

/// The WebSocket handshake succeeded.
pub fn link_up() {
    GLOBAL.link_up();
}

/// A session that was up ended (for any reason, shutdown included).
pub fn link_down() {
    GLOBAL.link_down();
}

/// A connection attempt failed; `credentials` when the cloud answered 401/403.
pub fn connect_failed(credentials: bool) {
    GLOBAL.connect_failed(credentials);
}

/// One operation reached its end: `latency` from the frame's arrival to the end (callback
/// delivered or given up).
pub fn op_finished(operation: &'static str, outcome: Outcome, latency: Duration) {
    GLOBAL.op_finished(operation, outcome, latency);
}

/// One callback POST finished; `ok` when the cloud answered 2xx.
pub fn callback_attempt(ok: bool) {
    GLOBAL.callback_attempt(ok);
}

/// A callback waited `waited` for a free connection; `gave_up` when its deadline passed first.
pub fn callback_pool_waited(waited: Duration, gave_up: bool) {
    GLOBAL.callback_pool_waited(waited, gave_up);
}

/// A callback started (+1) or stopped (-1) waiting for a free connection.
pub fn callback_pool_waiting(delta: i64) {
    GLOBAL.callback_pool_waiting(delta);
}

/// One ORDERS_CACHE push finished.
pub fn cache_push(ok: bool) {
    GLOBAL.cache_push(ok);
}

/// A request that may be answered from the answers kept per mirror version: `kept` when it
/// was, else read afresh.
pub fn answer_served(kept: bool) {
    GLOBAL.answer_served(kept);
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Env};
    use std::path::Path;

    struct NoEnv;
    impl Env for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn load(metrics: &str) -> Result<Config, String> {
        let text = format!("resto_id = \"r\"\nsecret_key = \"s\"\n[metrics]\n{metrics}\n");
        Config::from_toml(&text, Path::new("t.toml"), &NoEnv).map_err(|e| e.to_string())
    }

    #[test]
    fn textfile_path_is_off_by_default_and_must_end_in_prom() {
        assert_eq!(load("").unwrap().metrics.textfile_path, None);
        let cfg = load("textfile_path = \"/run/x/agent.prom\"").unwrap();
        assert_eq!(
            cfg.metrics.textfile_path.as_deref(),
            Some(Path::new("/run/x/agent.prom"))
        );
        let e = load("textfile_path = \"/run/x/agent.txt\"").unwrap_err();
        assert!(e.contains("[metrics] textfile_path"), "{e}");
        assert!(load("textfile_path = \"/run/x/.prom\"").is_err());
        assert!(
            load("path = \"/run/x/a.prom\"").is_err(),
            "unknown keys refused"
        );
    }
}
