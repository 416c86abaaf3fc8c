//! One struct per `[section]` of the config file, each with its documented defaults
//! (mirrored in README.md and systemd/config.example.toml).

use std::path::PathBuf;

use serde::Deserialize;

/// WebSocket keep-alive and reconnect policy (`[link]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// Our WebSocket ping cadence. Default 15 s (docs/protocol.md §2.1).
    pub ping_interval_secs: u64,
    /// The link is dead when nothing (pong or any frame) arrived for this long. Default 90 s.
    pub dead_after_secs: u64,
    /// Also send the text frame `Resto <RESTO_ID> ping`, as the reference clients do. Default true.
    pub app_ping: bool,
    /// Cadence of the text ping. Default 15 s.
    pub app_ping_interval_secs: u64,
    /// TCP + TLS + WebSocket handshake timeout. Default 10 s.
    pub connect_timeout_secs: u64,
    /// No two connection attempts closer than this (protocol asks for 15 s). Default 15 000 ms.
    pub backoff_floor_ms: u64,
    /// Upper bound of the exponential backoff. Default 300 000 ms (5 min).
    pub backoff_cap_ms: u64,
    /// A link that stayed up this long resets the backoff. Default 60 s.
    pub backoff_reset_after_secs: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            ping_interval_secs: 15,
            dead_after_secs: 90,
            app_ping: true,
            app_ping_interval_secs: 15,
            connect_timeout_secs: 10,
            backoff_floor_ms: 15_000,
            backoff_cap_ms: 300_000,
            backoff_reset_after_secs: 60,
        }
    }
}

/// Caps on everything that could grow (`[limits]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket message accepted. Default 256 KiB.
    pub max_message_bytes: usize,
    /// Largest WebSocket frame accepted. Default 256 KiB.
    pub max_frame_bytes: usize,
    /// Cap of the WebSocket write buffer. Default 64 KiB.
    pub max_write_buffer_bytes: usize,
    /// Largest callback body; a bigger answer is replaced by FAIL `ANSWER_TOO_LARGE`. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Operations computed at once (parse, mirror read, journal write) on the blocking pool.
    /// Default: the number of CPUs.
    pub max_in_flight: usize,
    /// Compute short mirror reads (checkWork, getBill, tablesInfo, ...) on the event-loop
    /// thread instead of handing each to the blocking pool: no thread wake-ups per request.
    /// A read that meets a locked mirror goes to the pool, where it may wait
    /// `[mirror] busy_timeout_ms`. Journal writes and menuInfo always run on the pool.
    /// Default true; false computes every operation on the pool.
    pub inline_reads: bool,
    /// Ignored: admission is bounded by `max_pending_bytes`. Accepted so that configuration
    /// files that set it still load.
    pub max_queue: usize,
    /// Bytes of requests admitted and not yet finished (frames, plus answers waiting for or in
    /// delivery). Past it a request is answered FAIL `AGENT_BUSY` at once. Default 4 MiB.
    pub max_pending_bytes: usize,
    /// Commands waiting for the POS's acknowledgement at once (each polls the journal on a
    /// timer, holding no thread). Default 64.
    pub max_waiting: usize,
    /// Callbacks being delivered at once (sending, or sleeping before a retry). Default 64.
    pub max_delivering: usize,
    /// Streamed answers (menuInfo over `max_body_bytes`) being delivered at once. Each one's
    /// second pass holds a blocking-pool thread for as long as the network takes to carry it;
    /// the pool has one thread per place, so a slow cloud holds these and no other. Default 1.
    pub max_streaming: usize,
    /// Graceful-shutdown bound for in-flight work. Default 10 s.
    pub shutdown_grace_secs: u64,
    /// Most mirror rows read for one answer (bills, positions, ...). Default 50 000.
    pub max_rows: usize,
    /// Largest menuInfo body. A menu larger than `max_body_bytes` is not held: it is generated
    /// twice from one snapshot (signed, then streamed). Default 64 MiB.
    pub max_menu_bytes: usize,
    /// Page cache of each SQLite connection (mirror, journal), KiB. Default 256.
    pub sqlite_cache_kib: u32,
    /// SQLite's soft heap limit for the whole process, KiB: past it SQLite frees cached pages
    /// before it allocates more. Default 4096.
    pub sqlite_heap_limit_kib: u32,
    /// Answers kept per mirror version (getBill, tablesInfo), KiB: a request asked again
    /// while the mirror has not changed is answered from them (`src/answers.rs`). 0 turns
    /// this off. Default 512.
    pub answer_cache_kib: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 256 * 1024,
            max_frame_bytes: 256 * 1024,
            max_write_buffer_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            max_in_flight: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            inline_reads: true,
            max_queue: 256,
            max_pending_bytes: 4 << 20,
            max_waiting: 64,
            max_delivering: 64,
            max_streaming: 1,
            shutdown_grace_secs: 10,
            max_rows: 50_000,
            max_menu_bytes: 64 << 20,
            sqlite_cache_kib: crate::sqlite_mem::CACHE_KIB,
            sqlite_heap_limit_kib: crate::sqlite_mem::SOFT_HEAP_LIMIT_KIB,
            answer_cache_kib: 512,
        }
    }
}

/// Callback delivery (`[callback]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbackConfig {
    /// Per-attempt timeout (connect + send + response). Default 10 s.
    pub attempt_timeout_secs: u64,
    /// Give up this long after the request arrived (protocol: 80 s). Default 80 s.
    pub deadline_secs: u64,
    /// First retry delay after a network error or 5xx; doubles up to `retry_max_ms`. Default 500 ms.
    pub retry_initial_ms: u64,
    /// Largest retry delay. Default 8 000 ms.
    pub retry_max_ms: u64,
    /// Largest error body read back from the cloud for the log. Default 4 KiB.
    pub max_response_bytes: usize,
    /// Connections to the callback host open at once (idle ones are kept for reuse). Default 4.
    pub max_connections: usize,
    /// The callback host is resolved again after this long (or after a failed connect).
    /// Default 300 s.
    pub dns_ttl_secs: u64,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            attempt_timeout_secs: 10,
            deadline_secs: 80,
            retry_initial_ms: 500,
            retry_max_ms: 8_000,
            max_response_bytes: 4096,
            max_connections: 4,
            dns_ttl_secs: 300,
        }
    }
}

/// The read-only POS mirror (`[mirror]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MirrorConfig {
    /// SQLite busy timeout of a mirror read while a POS writer holds the mirror's lock. The
    /// mirror only: the journal has its own, `[journal] busy_timeout_ms`. Default 2 000 ms.
    pub busy_timeout_ms: u64,
    /// Open read connections kept (one per in-flight operation at most). Default 4.
    pub max_connections: usize,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            busy_timeout_ms: 2_000,
            max_connections: 4,
        }
    }
}

/// How the POS acknowledges journaled commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// Wait for the POS to mark the command applied or rejected (default).
    Wait,
    /// The journal row itself is the record: answer SUCCESS once it is durable. Applies to
    /// payBill only; splitOrder and createOrderOnTable always wait, because their answer is
    /// built from what the POS did.
    None,
}

/// The durable command journal (`[journal]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Journal database. Default `<state_dir>/journal.sqlite`.
    pub path: Option<PathBuf>,
    /// How long to wait for the POS to apply a command. Default 60 s; must be below the callback deadline.
    pub pos_ack_timeout_secs: u64,
    /// Poll interval while waiting for the POS. Default 200 ms.
    pub poll_interval_ms: u64,
    /// `wait` (default) or `none`.
    pub ack_mode: AckMode,
    /// How long a command may wait for the journal's write lock (a POS transaction holding
    /// it), counted from the request's arrival, before it is spooled instead. Default
    /// [`DEFAULT_JOURNAL_BUSY_MS`] (15 s), or less (at least 1 s) when `pos_ack_timeout_secs`
    /// leaves less room in the callback deadline ([`JournalConfig::busy_timeout_ms`]).
    pub busy_timeout_ms: Option<u64>,
    /// Cap of the spool file (`<state_dir>/journal.spool`), where a request the journal could
    /// not take is kept until it can be moved into the journal. Default 1 MiB.
    pub max_spool_bytes: u64,
}

/// `[journal] busy_timeout_ms` when the file does not set it (and the deadline has the room).
pub const DEFAULT_JOURNAL_BUSY_MS: u64 = 15_000;
/// Seconds of the callback deadline kept for delivering the answer after the waits.
pub const ANSWER_MARGIN_SECS: u64 = 5;

impl JournalConfig {
    /// The effective wait for the journal's lock: the configured value, else
    /// [`DEFAULT_JOURNAL_BUSY_MS`] capped by what `deadline_secs` leaves after the
    /// acknowledgement wait and [`ANSWER_MARGIN_SECS`], and at least 1 s (a file that set a
    /// long acknowledgement wait keeps loading; the dispatcher still ends that wait
    /// [`ANSWER_MARGIN_SECS`] before the callback deadline).
    pub fn busy_timeout_ms(&self, callback: &CallbackConfig) -> u64 {
        self.busy_timeout_ms.unwrap_or_else(|| {
            let room = callback
                .deadline_secs
                .saturating_sub(self.pos_ack_timeout_secs + ANSWER_MARGIN_SECS)
                .saturating_mul(1000);
            room.clamp(1000, DEFAULT_JOURNAL_BUSY_MS)
        })
    }
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            path: None,
            pos_ack_timeout_secs: 60,
            poll_interval_ms: 200,
            ack_mode: AckMode::Wait,
            busy_timeout_ms: None,
            max_spool_bytes: 1 << 20,
        }
    }
}

/// The ORDERS_CACHE webhook (`[cache]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Push open orders every `interval_secs`. Default false.
    pub enabled: bool,
    /// Default 5 s (docs/protocol.md §5.16; the cloud treats the cache as stale after 15 s).
    pub interval_secs: u64,
    /// Most open orders tracked for change detection. Default 2 000.
    pub max_tracked_orders: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            interval_secs: 5,
            max_tracked_orders: 2_000,
        }
    }
}

/// `users[].roles` shape: the protocol shows both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolesForm {
    String,
    Array,
}

/// Which key(s) tablesInfo writes a table's hall under: the official Postman page spells it
/// `hallplanId`, the Go SDK `hallPlanId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HallPlanKey {
    /// Both keys, with the same value (default).
    #[serde(rename = "both")]
    Both,
    #[serde(rename = "hallplanId")]
    Lower,
    #[serde(rename = "hallPlanId")]
    Camel,
}

/// Which versionInfo schema to write: the newer one (`partnerId`, `pluginVersion`, …), the
/// older one with dotted keys (`partner.id`, `plugin.version`, …), or both key sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionInfoSchema {
    New,
    Old,
    Both,
}

/// Where ORDERS_CACHE reports closed orders: in their own webhook (what the docs describe,
/// default) or as `closedOrders` inside the ORDERS_CACHE body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedOrdersShape {
    Separate,
    Inline,
}

/// Choices where the protocol is unclear (`[compat]`, docs/protocol.md §6).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompatConfig {
    /// `"string"` (default, `"Офіціант, Кур'єр"`) or `"array"`.
    pub users_roles: RolesForm,
    /// Send versionInfo unprompted after each connect. Default false.
    pub version_info_on_connect: bool,
    /// `restaurantLicenseDateEnd` in versionInfo (`yyyy.MM.dd`). Default "2099.12.31".
    pub license_date_end: String,
    /// splitOrder: refuse a `controlSum` that differs from the chosen lines (FAIL
    /// `WRONG_CONTROL_SUM`). Default false: log the mismatch and split.
    pub strict_control_sum: bool,
    /// tablesInfo hall key(s): `"both"` (default), `"hallplanId"` or `"hallPlanId"`.
    pub tables_hall_plan_key: HallPlanKey,
    /// versionInfo schema: `"new"` (default), `"old"` or `"both"`.
    pub version_info_schema: VersionInfoSchema,
    /// ORDERS_CACHE closed orders: `"separate"` (default) or `"inline"`.
    pub closed_orders: ClosedOrdersShape,
}

impl Default for CompatConfig {
    fn default() -> Self {
        CompatConfig {
            users_roles: RolesForm::String,
            version_info_on_connect: false,
            license_date_end: "2099.12.31".into(),
            strict_control_sum: false,
            tables_hall_plan_key: HallPlanKey::Both,
            version_info_schema: VersionInfoSchema::New,
            closed_orders: ClosedOrdersShape::Separate,
        }
    }
}

/// The status file read by `expirenza-agent status` (`[status]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusConfig {
    /// Status file. Default `<runtime_dir>/status` (`/run/expirenza-agent/status`).
    pub path: Option<PathBuf>,
    /// How often the running agent rewrites it. Default 5 s.
    pub write_interval_secs: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            path: None,
            write_interval_secs: 5,
        }
    }
}
