//! Callback faults against the fake cloud's scripted callback server: slow (near the 2 s
//! per-attempt timeout), hanging, several 5xx, 4xx, connection reset. Each answer is delivered
//! (2xx) exactly once when possible, no attempt starts after the 6 s deadline, a final 4xx is
//! not retried, and a hanging callback never blocks another operation.

#[path = "support/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::*;
use testkit::{Callback, FakeCloud, Reply};

const T: Duration = Duration::from_secs(10);

fn attempts_for(cloud: &FakeCloud, rid: &str) -> Vec<Callback> {
    cloud
        .all_callbacks()
        .into_iter()
        .filter(|c| c.rid.as_deref() == Some(rid))
        .collect()
}

/// Send getBill `rid`, wait for the operation to finish; returns (ok, attempts, sent-at).
async fn run_one(s: &Setup, rid: &str, n_done: usize) -> (bool, Vec<Callback>, Instant) {
    let sent = Instant::now();
    assert!(s.cloud.send_text(&get_bill(rid, "12")).await);
    let done = s.agent.ops.wait(n_done, T).await;
    assert_eq!(done.len(), n_done, "{rid}: the operation did not finish");
    let ok = done[n_done - 1].1;
    let attempts = attempts_for(&s.cloud, rid);
    for a in &attempts {
        assert!(a.signature_ok && a.resto_id_ok, "{rid}: bad attempt {a:?}");
        assert_eq!(
            a.body, attempts[0].body,
            "{rid}: every retry sends the same bytes"
        );
    }
    (ok, attempts, sent)
}

fn delivered(attempts: &[Callback]) -> usize {
    attempts
        .iter()
        .filter(|a| (200..300).contains(&a.answered))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_callback_near_the_attempt_timeout_is_delivered_once() {
    let s = setup("cb-slow", T).await;
    s.cloud
        .push_responses(&[Reply::Delay(Duration::from_millis(1_300), 200)]);
    let (ok, attempts, _) = run_one(&s, "slow", 1).await;
    assert!(ok);
    assert_eq!(attempts.len(), 1, "a slow but timely answer is not retried");
    assert_eq!(delivered(&attempts), 1);
    s.agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_callback_times_out_and_is_retried_once_delivered() {
    let s = setup("cb-hang", T).await;
    s.cloud.push_responses(&[Reply::Hang, Reply::Status(200)]);
    let (ok, attempts, _) = run_one(&s, "hang", 1).await;
    assert!(ok);
    assert_eq!(attempts.len(), 2);
    assert_eq!(delivered(&attempts), 1);
    let gap = attempts[1].received_at - attempts[0].received_at;
    assert!(
        gap >= Duration::from_secs(2) && gap < Duration::from_secs(4),
        "retry after the 2 s attempt timeout, got {gap:?}"
    );
    s.agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_5xx_then_success_and_reset_then_success() {
    let s = setup("cb-5xx", T).await;
    s.cloud.push_responses(&[
        Reply::Status(500),
        Reply::Status(502),
        Reply::Status(503),
        Reply::Status(200),
    ]);
    let (ok, attempts, _) = run_one(&s, "five", 1).await;
    assert!(ok);
    assert_eq!(attempts.len(), 4);
    assert_eq!(delivered(&attempts), 1);
    // Doubling retry delays (100, 200, 400 ms): spaced, not a tight loop.
    for w in attempts.windows(2) {
        assert!(w[1].received_at - w[0].received_at >= Duration::from_millis(90));
    }

    s.cloud.push_responses(&[Reply::Reset, Reply::Status(200)]);
    let (ok, attempts, _) = run_one(&s, "reset", 2).await;
    assert!(ok);
    assert_eq!(attempts.len(), 2);
    assert_eq!(delivered(&attempts), 1);
    s.agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_final_and_not_retried() {
    let s = setup("cb-4xx", T).await;
    s.cloud.push_responses(&[Reply::Status(400)]);
    let (ok, attempts, _) = run_one(&s, "four", 1).await;
    assert!(!ok, "a refused answer is a failed operation");
    assert_eq!(attempts.len(), 1, "4xx is not retried");
    // The link and the next operation are unaffected.
    let (ok, attempts, _) = run_one(&s, "next", 2).await;
    assert!(ok);
    assert_eq!(attempts.len(), 1);
    s.agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_after_the_deadline() {
    let s = setup("cb-deadline", T).await;
    let script: Vec<Reply> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                Reply::Hang
            } else {
                Reply::Status(503)
            }
        })
        .collect();
    s.cloud.push_responses(&script);
    let (ok, attempts, sent) = run_one(&s, "late", 1).await;
    let finished = sent.elapsed();
    assert!(!ok);
    assert!(attempts.len() >= 2, "{} attempts", attempts.len());
    assert_eq!(delivered(&attempts), 0);
    let deadline = sent + Duration::from_secs(6);
    for a in &attempts {
        assert!(a.received_at <= deadline, "an attempt after the deadline");
    }
    assert!(
        finished <= Duration::from_secs(7),
        "gave up {finished:?} after the request (deadline 6 s)"
    );
    println!(
        "deadline: {} attempts, gave up after {finished:?}",
        attempts.len()
    );
    s.agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_callback_does_not_block_other_operations() {
    let s = setup("cb-block", T).await;
    s.cloud.push_responses(&[Reply::Hang]);
    assert!(s.cloud.send_text(&get_bill("stuck", "12")).await);
    let hung = s
        .cloud
        .callback_for("stuck", T)
        .await
        .expect("first attempt");
    assert_eq!(hung.answered, 0);
    // While "stuck" waits for its 2 s attempt timeout, another getBill is answered at once.
    let other = s
        .cloud
        .request(&get_bill("other", "1"), "other", T)
        .await
        .expect("other answered");
    let waited = other.received_at - hung.received_at;
    assert!(
        waited < Duration::from_millis(1_500),
        "blocked for {waited:?}"
    );
    // And "stuck" is still delivered by its retry.
    let done = s.agent.ops.wait(2, T).await;
    assert!(done.iter().all(|(_, ok)| *ok), "{done:?}");
    assert_eq!(delivered(&attempts_for(&s.cloud, "stuck")), 1);
    s.agent.stop().await;
}
