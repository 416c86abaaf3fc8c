//! Load generation against the agent through the fake cloud: send a frame over the WebSocket,
//! wait for the signed callback with its `rID`, record the time between the two.

use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::{Callback, FakeCloud};

use super::stats::{percentiles, Percentiles};

/// How long one request may take before it counts as lost.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Makes the frame for request number `i`: `(rID, frame JSON)`.
pub type FrameFn = Arc<dyn Fn(u64) -> (String, String) + Send + Sync>;

/// What a callback must look like to count as a good answer.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// `"state":"SUCCESS"` in the body.
    Success,
    /// A `"tables":[` array with at least one table (tablesInfo has no `state`).
    Tables,
    /// checkWork's `"readyToWork":true`.
    Ready,
}

/// The outcome of one measured phase.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub sent: usize,
    /// Signed callbacks received (their latencies are in `lat`).
    pub answered: usize,
    /// Answered, but not a good answer (`Expect` not met, bad signature or restoId).
    pub bad: usize,
    /// No callback within `REQUEST_TIMEOUT` (or the link was down).
    pub lost: usize,
    pub lat: Percentiles,
    pub wall: Duration,
    /// Answers per second over the phase's wall time.
    pub ops_per_sec: f64,
    /// The first bad answer's body, cut to 300 bytes, for the report.
    pub first_bad: Option<String>,
}

fn good(cb: &Callback, expect: Expect) -> bool {
    let body = cb.body_str();
    cb.signature_ok
        && cb.resto_id_ok
        && match expect {
            Expect::Success => body.contains("\"state\":\"SUCCESS\""),
            Expect::Tables => body.contains("\"tables\":[{"),
            Expect::Ready => body.contains("\"readyToWork\":true"),
        }
}

/// Send `n` requests with `concurrency` outstanding at a time (closed loop: each of the
/// `concurrency` workers sends its next request when the previous answer arrived).
pub async fn run(
    cloud: &FakeCloud,
    frames: FrameFn,
    n: usize,
    concurrency: usize,
    expect: Expect,
) -> Phase {
    let concurrency = concurrency.max(1).min(n.max(1));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (cloud, frames, next) = (cloud.clone(), frames.clone(), next.clone());
        workers.spawn(async move {
            let mut out: Vec<(Option<Duration>, bool, Option<String>)> = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n as u64 {
                    break;
                }
                let (rid, frame) = frames(i);
                let t = Instant::now();
                match cloud.request(&frame, &rid, REQUEST_TIMEOUT).await {
                    Some(cb) => {
                        let ok = good(&cb, expect);
                        let lat = cb.received_at.saturating_duration_since(t);
                        let body = (!ok).then(|| cb.body_str().chars().take(300).collect());
                        out.push((Some(lat), ok, body));
                    }
                    None => out.push((None, false, None)),
                }
            }
            out
        });
    }
    let mut lat = Vec::with_capacity(n);
    let mut phase = Phase {
        sent: n,
        ..Phase::default()
    };
    while let Some(res) = workers.join_next().await {
        for (l, ok, body) in res.unwrap_or_default() {
            match l {
                Some(l) => {
                    phase.answered += 1;
                    lat.push(l);
                    if !ok {
                        phase.bad += 1;
                        if phase.first_bad.is_none() {
                            phase.first_bad = body;
                        }
                    }
                }
                None => phase.lost += 1,
            }
        }
    }
    phase.wall = started.elapsed();
    phase.lat = percentiles(&lat);
    phase.ops_per_sec = phase.answered as f64 / phase.wall.as_secs_f64().max(1e-9);
    phase
}
