//! The metric values and their rendering in Prometheus's text exposition format (version 0.0.4).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets. The callback deadline is 80 s.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 80.0,
];

/// Most (operation, outcome) series kept. The operation table has 15 names and there are
/// 5 outcomes, so this is never reached by the agent itself; past it a series is not created.
pub const MAX_OP_SERIES: usize = 128;

/// How an operation ended, as a bounded label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Answered with SUCCESS (callback delivered).
    Success,
    /// Answered with a FAIL body (callback delivered): no such table, POS rejected, ...
    Fail,
    /// Nothing to answer (showMessage, setSettings) and handled.
    NoAnswer,
    /// The operation failed before an answer was made (mirror unreadable, body too large, ...).
    Error,
    /// An answer was made but the callback could not be delivered by its deadline.
    Undelivered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Fail => "fail",
            Outcome::NoAnswer => "no_answer",
            Outcome::Error => "error",
            Outcome::Undelivered => "undelivered",
        }
    }

    /// A delivered answer, classified by the operation's outcome text (`"FAIL …"` or other).
    pub fn of_answer(outcome_text: &str) -> Outcome {
        if outcome_text.starts_with("FAIL") {
            Outcome::Fail
        } else {
            Outcome::Success
        }
    }
}

/// All metric values of one agent. Cheap to record: atomics, and one short lock per finished
/// operation.
pub struct Registry {
    link_up: AtomicBool,
    connects: AtomicU64,
    disconnects: AtomicU64,
    connect_failures_credentials: AtomicU64,
    connect_failures_other: AtomicU64,
    ops: Mutex<Vec<(&'static str, Outcome, u64)>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    callback_attempts: AtomicU64,
    callback_failures: AtomicU64,
    pool_waits: AtomicU64,
    pool_wait_micros: AtomicU64,
    pool_wait_timeouts: AtomicU64,
    pool_waiting: AtomicU64,
    cache_ok: AtomicU64,
    cache_failed: AtomicU64,
    answers_kept: AtomicU64,
    answers_read: AtomicU64,
}

/// Values gathered at write time rather than recorded on events.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// `(status, count)` of open journal commands; `None` when the journal cannot be read
    /// (then the series is left out rather than reported as 0).
    pub journal_backlog: Option<Vec<(&'static str, u64)>>,
    /// Resident set size in bytes, when known.
    pub rss_bytes: Option<u64>,
    /// Unix seconds the process started.
    pub start_time: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: AtomicU64 = AtomicU64::new(0);
        Registry {
            link_up: AtomicBool::new(false),
            connects: ZERO,
            disconnects: ZERO,
            connect_failures_credentials: ZERO,
            connect_failures_other: ZERO,
            ops: Mutex::new(Vec::new()),
            latency_buckets: [ZERO; LATENCY_BUCKETS.len()],
            latency_count: ZERO,
            latency_sum_micros: ZERO,
            callback_attempts: ZERO,
            callback_failures: ZERO,
            pool_waits: ZERO,
            pool_wait_micros: ZERO,
            pool_wait_timeouts: ZERO,
            pool_waiting: ZERO,
            cache_ok: ZERO,
            cache_failed: ZERO,
            answers_kept: ZERO,
            answers_read: ZERO,
        }
    }

    pub fn link_up(&self) {
        self.link_up.store(true, Relaxed);
        self.connects.fetch_add(1, Relaxed);
    }

    pub fn link_down(&self) {
        if self.link_up.swap(false, Relaxed) {
            self.disconnects.fetch_add(1, Relaxed);
        }
    }

    pub fn connect_failed(&self, credentials: bool) {
        let c = if credentials {
            &self.connect_failures_credentials
        } else {
            &self.connect_failures_other
        };
        c.fetch_add(1, Relaxed);
    }

    pub fn op_finished(&self, operation: &'static str, outcome: Outcome, latency: Duration) {
        {
            let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            let len = ops.len();
            match ops
                .iter_mut()
                .find(|(o, out, _)| *o == operation && *out == outcome)
            {
                Some(series) => series.2 = series.2.saturating_add(1),
                None if len < MAX_OP_SERIES => ops.push((operation, outcome, 1)),
                None => {}
            }
        }
        let secs = latency.as_secs_f64();
        // Buckets are stored non-cumulative; rendering sums them.
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| secs <= le) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Relaxed);
    }

    /// The sum of the operation latencies recorded so far.
    #[cfg(test)]
    pub(crate) fn latency_sum(&self) -> Duration {
        Duration::from_micros(self.latency_sum_micros.load(Relaxed))
    }

    pub fn callback_attempt(&self, ok: bool) {
        self.callback_attempts.fetch_add(1, Relaxed);
        if !ok {
            self.callback_failures.fetch_add(1, Relaxed);
        }
    }

    /// A callback found every connection busy and waited `waited`; `gave_up` when its deadline
    /// passed first.
    pub fn callback_pool_waited(&self, waited: Duration, gave_up: bool) {
        self.pool_waits.fetch_add(1, Relaxed);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.pool_wait_micros.fetch_add(micros, Relaxed);
        if gave_up {
            self.pool_wait_timeouts.fetch_add(1, Relaxed);
        }
    }

    /// Callbacks waiting for a free connection: +1 when one starts waiting, -1 when it stops.
    pub fn callback_pool_waiting(&self, delta: i64) {
        if delta >= 0 {
            self.pool_waiting.fetch_add(delta.unsigned_abs(), Relaxed);
        } else {
            let d = delta.unsigned_abs();
            let _ = self
                .pool_waiting
                .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(d)));
        }
    }

    pub fn cache_push(&self, ok: bool) {
        let c = if ok {
            &self.cache_ok
        } else {
            &self.cache_failed
        };
        c.fetch_add(1, Relaxed);
    }

    /// A request that may be answered from the answers kept per mirror version was: `kept`
    /// when it was, else it was read afresh (and kept for next time).
    pub fn answer_served(&self, kept: bool) {
        let c = if kept {
            &self.answers_kept
        } else {
            &self.answers_read
        };
        c.fetch_add(1, Relaxed);
    }

    /// The whole registry in the text exposition format, one metric family after another.
    pub fn render(&self, g: &Gauges) -> String {
        let mut o = String::with_capacity(4096);
        let v = |a: &AtomicU64| a.load(Relaxed);
        family(
            &mut o,
            "build_info",
            "gauge",
            "Always 1; the agent's version as a label.",
        );
        let _ = writeln!(
            o,
            "expirenza_build_info{{version=\"{}\"}} 1",
            escape_label(env!("CARGO_PKG_VERSION"))
        );
        family(
            &mut o,
            "start_time_seconds",
            "gauge",
            "Unix time the agent process started.",
        );
        let _ = writeln!(o, "expirenza_start_time_seconds {}", g.start_time);
        family(
            &mut o,
            "link_up",
            "gauge",
            "1 while the WebSocket to the cloud is connected, else 0.",
        );
        let _ = writeln!(
            o,
            "expirenza_link_up {}",
            u8::from(self.link_up.load(Relaxed))
        );
        family(
            &mut o,
            "link_connects_total",
            "counter",
            "WebSocket connections established.",
        );
        let _ = writeln!(o, "expirenza_link_connects_total {}", v(&self.connects));
        family(
            &mut o,
            "link_disconnects_total",
            "counter",
            "Established WebSocket connections that ended.",
        );
        let _ = writeln!(
            o,
            "expirenza_link_disconnects_total {}",
            v(&self.disconnects)
        );
        family(
            &mut o,
            "link_connect_failures_total",
            "counter",
            "Connection attempts that failed; reason=credentials when the cloud answered 401/403.",
        );
        for (reason, c) in [
            ("credentials", &self.connect_failures_credentials),
            ("other", &self.connect_failures_other),
        ] {
            let _ = writeln!(
                o,
                "expirenza_link_connect_failures_total{{reason=\"{reason}\"}} {}",
                v(c)
            );
        }
        family(
            &mut o,
            "operations_total",
            "counter",
            "Operations finished, by operation and outcome (success, fail, no_answer, error, undelivered).",
        );
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone();
        ops.sort();
        for (op, outcome, n) in ops {
            let _ = writeln!(
                o,
                "expirenza_operations_total{{operation=\"{}\",outcome=\"{}\"}} {n}",
                escape_label(op),
                outcome.as_str()
            );
        }
        family(
            &mut o,
            "operation_duration_seconds",
            "histogram",
            "Time from a request's arrival to its end (callback delivered or given up).",
        );
        let mut cumulative = 0u64;
        for (le, b) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += v(b);
            let _ = writeln!(
                o,
                "expirenza_operation_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = v(&self.latency_count).max(cumulative);
        let _ = writeln!(
            o,
            "expirenza_operation_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = v(&self.latency_sum_micros) as f64 / 1e6;
        let _ = writeln!(o, "expirenza_operation_duration_seconds_sum {sum}");
        let _ = writeln!(o, "expirenza_operation_duration_seconds_count {count}");
        family(
            &mut o,
            "callback_attempts_total",
            "counter",
            "Callback POSTs made (answers and ORDERS_CACHE pushes, retries included).",
        );
        let _ = writeln!(
            o,
            "expirenza_callback_attempts_total {}",
            v(&self.callback_attempts)
        );
        family(
            &mut o,
            "callback_failures_total",
            "counter",
            "Callback POSTs that did not get a 2xx answer (network error, timeout, 4xx, 5xx).",
        );
        let _ = writeln!(
            o,
            "expirenza_callback_failures_total {}",
            v(&self.callback_failures)
        );
        family(
            &mut o,
            "callback_pool_waits_total",
            "counter",
            "Callbacks that found every callback connection busy ([callback] max_connections) and waited for one.",
        );
        let _ = writeln!(
            o,
            "expirenza_callback_pool_waits_total {}",
            v(&self.pool_waits)
        );
        family(
            &mut o,
            "callback_pool_wait_seconds_total",
            "counter",
            "Time callbacks spent waiting for a free callback connection.",
        );
        let _ = writeln!(
            o,
            "expirenza_callback_pool_wait_seconds_total {}",
            v(&self.pool_wait_micros) as f64 / 1e6
        );
        family(
            &mut o,
            "callback_pool_wait_timeouts_total",
            "counter",
            "Callbacks whose deadline passed while they waited for a free connection.",
        );
        let _ = writeln!(
            o,
            "expirenza_callback_pool_wait_timeouts_total {}",
            v(&self.pool_wait_timeouts)
        );
        family(
            &mut o,
            "callback_pool_waiting",
            "gauge",
            "Callbacks waiting for a free callback connection now.",
        );
        let _ = writeln!(
            o,
            "expirenza_callback_pool_waiting {}",
            v(&self.pool_waiting)
        );
        if let Some(backlog) = &g.journal_backlog {
            family(
                &mut o,
                "journal_backlog",
                "gauge",
                "Journaled commands the POS has not finished, by status.",
            );
            for (status, n) in backlog {
                let _ = writeln!(
                    o,
                    "expirenza_journal_backlog{{status=\"{}\"}} {n}",
                    escape_label(status)
                );
            }
        }
        family(
            &mut o,
            "cache_pushes_total",
            "counter",
            "ORDERS_CACHE pushes, by result.",
        );
        let _ = writeln!(
            o,
            "expirenza_cache_pushes_total{{result=\"ok\"}} {}",
            v(&self.cache_ok)
        );
        let _ = writeln!(
            o,
            "expirenza_cache_pushes_total{{result=\"failed\"}} {}",
            v(&self.cache_failed)
        );
        family(
            &mut o,
            "answers_total",
            "counter",
            "getBill and list answers, by source: kept (the mirror had not changed since the same request) or read.",
        );
        let _ = writeln!(
            o,
            "expirenza_answers_total{{source=\"kept\"}} {}",
            v(&self.answers_kept)
        );
        let _ = writeln!(
            o,
            "expirenza_answers_total{{source=\"read\"}} {}",
            v(&self.answers_read)
        );
        if let Some(rss) = g.rss_bytes {
            family(
                &mut o,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory of the agent process.",
            );
            let _ = writeln!(o, "expirenza_process_resident_memory_bytes {rss}");
        }
        o
    }
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP expirenza_{name} {help}");
    let _ = writeln!(o, "# TYPE expirenza_{name} {kind}");
}

/// A label value: `\`, `"` and newline escaped, as the exposition format requires.
pub fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_every_observation() {
        let r = Registry::new();
        r.op_finished("getBill", Outcome::Success, Duration::from_millis(3));
        r.op_finished("getBill", Outcome::Fail, Duration::from_millis(40));
        r.op_finished("payBill", Outcome::Undelivered, Duration::from_secs(200));
        let text = r.render(&Gauges::default());
        assert!(text.contains("expirenza_operation_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("expirenza_operation_duration_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("expirenza_operation_duration_seconds_bucket{le=\"80\"} 2\n"));
        assert!(text.contains("expirenza_operation_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("expirenza_operation_duration_seconds_count 3\n"));
        assert!(text.contains("expirenza_operation_duration_seconds_sum 200.043\n"));
        assert!(
            text.contains("expirenza_operations_total{operation=\"getBill\",outcome=\"fail\"} 1\n")
        );
        assert!(text.contains(
            "expirenza_operations_total{operation=\"payBill\",outcome=\"undelivered\"} 1\n"
        ));
    }

    #[test]
    fn disconnects_count_only_sessions_that_were_up() {
        let r = Registry::new();
        r.link_down();
        r.link_up();
        r.link_down();
        r.link_down();
        let text = r.render(&Gauges::default());
        assert!(text.contains("expirenza_link_connects_total 1\n"));
        assert!(text.contains("expirenza_link_disconnects_total 1\n"));
        assert!(text.contains("expirenza_link_up 0\n"));
    }

    #[test]
    fn answers_are_counted_by_source() {
        let r = Registry::new();
        r.answer_served(true);
        r.answer_served(true);
        r.answer_served(false);
        let text = r.render(&Gauges::default());
        assert!(text.contains("# TYPE expirenza_answers_total counter\n"));
        assert!(text.contains("expirenza_answers_total{source=\"kept\"} 2\n"));
        assert!(text.contains("expirenza_answers_total{source=\"read\"} 1\n"));
    }

    #[test]
    fn waits_for_a_callback_connection_are_counted() {
        let r = Registry::new();
        r.callback_pool_waiting(1);
        r.callback_pool_waiting(1);
        r.callback_pool_waiting(-1);
        r.callback_pool_waited(Duration::from_millis(1500), false);
        r.callback_pool_waited(Duration::from_millis(500), true);
        let text = r.render(&Gauges::default());
        assert!(text.contains("# TYPE expirenza_callback_pool_waiting gauge\n"));
        assert!(text.contains("expirenza_callback_pool_waiting 1\n"));
        assert!(text.contains("expirenza_callback_pool_waits_total 2\n"));
        assert!(text.contains("expirenza_callback_pool_wait_seconds_total 2\n"));
        assert!(text.contains("expirenza_callback_pool_wait_timeouts_total 1\n"));
        r.callback_pool_waiting(-5);
        assert!(r
            .render(&Gauges::default())
            .contains("expirenza_callback_pool_waiting 0\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn outcome_of_an_answer_follows_its_state() {
        assert_eq!(Outcome::of_answer("FAIL TABLE_NOT_FOUND"), Outcome::Fail);
        assert_eq!(Outcome::of_answer("SUCCESS orders=2"), Outcome::Success);
    }
}
