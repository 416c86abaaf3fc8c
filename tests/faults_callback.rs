//! Callback faults against the fake cloud's scripted callback server: slow (answered when the
//! test says, late in a long attempt), hanging, several 5xx, 4xx, connection reset. Each answer
//! is delivered (2xx) exactly once when possible, no attempt starts after the 6 s deadline, a
//! final 4xx is not retried, and a hanging callback never blocks another operation. Where an
//! answer lands against the attempt's end, to the millisecond, is shown on a paused clock by
//! `callback::http_tests::an_answer_late_in_the_attempt_counts_and_one_after_it_does_not`.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use testkit::{Callback, FakeCloud, Reply};

/// How long a test waits for an event before it gives up (a guard, not a margin: nothing the
/// agent does in these tests takes near it).
const T: Duration = Duration::from_secs(60);

/// [`setup`] with a 60 s callback deadline: a test that is not about the deadline does not
/// depend on how much of it the machine's load leaves.
async fn setup_patient(tag: &str) -> Setup {
    let dir = temp_dir(tag);
    let mirror = demo_mirror(&dir);
    let cloud = fake_cloud().await;
    let mut cfg = fast_config(&cloud.ws_url(), &cloud.callback_url(), &mirror, &dir);
    cfg.callback.deadline_secs = 60;
    let agent = start(cfg);
    cloud.wait_connected(T).await.expect("connect");
    Setup {
        cloud,
        agent,
        mirror,
    }
}

fn attempts_for(cloud: &FakeCloud, rid: &str) -> Vec<Callback> {
    cloud
        .all_callbacks()
        .into_iter()
        .filter(|c| c.rid.as_deref() == Some(rid))
        .collect()
}

/// Send getBill `rid`, wait for the operation to finish; returns (ok, attempts).
async fn run_one(s: &Setup, rid: &str, n_done: usize) -> (bool, Vec<Callback>) {
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
    (ok, attempts)
}

fn delivered(attempts: &[Callback]) -> usize {
    attempts
        .iter()
        .filter(|a| (200..300).contains(&a.answered))
        .count()
}

/// The answer comes when the test releases it, after the request arrived and while the agent
/// still waits: the order of events, not a duration, makes it slow. (The attempt lasts 30 s
/// here, so nothing but the release ends it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_callback_answered_within_its_attempt_is_delivered_once() {
    let dir = temp_dir("cb-slow");
    let mirror = demo_mirror(&dir);
    let cloud = fake_cloud().await;
    let mut cfg = fast_config(&cloud.ws_url(), &cloud.callback_url(), &mirror, &dir);
    cfg.callback.attempt_timeout_secs = 30;
    cfg.callback.deadline_secs = 60;
    let agent = start(cfg);
    cloud.wait_connected(T).await.expect("connect");
    cloud.push_responses(&[Reply::Hold(200)]);
    assert!(cloud.send_text(&get_bill("slow", "12")).await);
    let first = cloud
        .callback_for("slow", T)
        .await
        .expect("the request arrives");
    assert!(first.signature_ok);
    // The request is in and unanswered: the operation is still delivering.
    assert!(
        agent.ops.done.lock().unwrap().is_empty(),
        "finished unanswered"
    );
    cloud.release_hangs();
    let done = agent.ops.wait(1, T).await;
    assert_eq!(done, vec![("getBill".to_string(), true)]);
    let attempts = attempts_for(&cloud, "slow");
    assert_eq!(attempts.len(), 1, "a slow but timely answer is not retried");
    assert_eq!(delivered(&attempts), 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_callback_times_out_and_is_retried_once_delivered() {
    let s = setup_patient("cb-hang").await;
    s.cloud.push_responses(&[Reply::Hang, Reply::Status(200)]);
    let (ok, attempts) = run_one(&s, "hang", 1).await;
    assert!(ok);
    assert_eq!(attempts.len(), 2);
    assert_eq!(delivered(&attempts), 1);
    // The retry came after the 2 s attempt timeout, not before (a lower bound: a loaded
    // machine can only make the gap longer).
    let gap = attempts[1].received_at - attempts[0].received_at;
    assert!(
        gap >= Duration::from_secs(2),
        "retry before the 2 s attempt timeout: {gap:?}"
    );
    s.agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_5xx_then_success_and_reset_then_success() {
    let s = setup_patient("cb-5xx").await;
    s.cloud.push_responses(&[
        Reply::Status(500),
        Reply::Status(502),
        Reply::Status(503),
        Reply::Status(200),
    ]);
    let (ok, attempts) = run_one(&s, "five", 1).await;
    assert!(ok);
    assert_eq!(attempts.len(), 4);
    assert_eq!(delivered(&attempts), 1);
    // Doubling retry delays (100, 200, 400 ms): spaced, not a tight loop.
    for w in attempts.windows(2) {
        assert!(w[1].received_at - w[0].received_at >= Duration::from_millis(90));
    }

    s.cloud.push_responses(&[Reply::Reset, Reply::Status(200)]);
    let (ok, attempts) = run_one(&s, "reset", 2).await;
    assert!(ok);
    assert_eq!(attempts.len(), 2);
    assert_eq!(delivered(&attempts), 1);
    s.agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_final_and_not_retried() {
    let s = setup_patient("cb-4xx").await;
    s.cloud.push_responses(&[Reply::Status(400)]);
    let (ok, attempts) = run_one(&s, "four", 1).await;
    assert!(!ok, "a refused answer is a failed operation");
    assert_eq!(attempts.len(), 1, "4xx is not retried");
    // The link and the next operation are unaffected.
    let (ok, attempts) = run_one(&s, "next", 2).await;
    assert!(ok);
    assert_eq!(attempts.len(), 1);
    s.agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_after_the_deadline() {
    let s = setup("cb-deadline", T).await;
    // Far more replies than fit in the 6 s deadline: what stops the agent is its deadline. A
    // 503 first, so the second attempt comes 100 ms in, not after a 2 s hang.
    let script: Vec<Reply> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                Reply::Status(503)
            } else {
                Reply::Hang
            }
        })
        .collect();
    s.cloud.push_responses(&script);
    let (ok, attempts) = run_one(&s, "late", 1).await;
    assert!(!ok);
    assert!(attempts.len() >= 2, "{} attempts", attempts.len());
    assert_eq!(delivered(&attempts), 0);
    // A hang costs a 2 s attempt (clipped to the deadline) and the delays double from 100 ms to
    // 400 ms: 503 at 0, hang 0.1-2.1 s, 503 at 2.3, hang 2.7-4.7, 503 at 5.1, hang from 5.5 to
    // the deadline: at most 6 attempts, whatever the machine's load (load only makes them
    // fewer). Without the deadline the agent would work through the script.
    assert!(
        attempts.len() <= 6,
        "{} attempts: the deadline did not stop the retries",
        attempts.len()
    );
    // The agent reported the operation failed; after that nothing more is sent for it. A later
    // request is the barrier: once it is answered, any stray retry of "late" would have come.
    s.cloud.clear_responses();
    let barrier = s
        .cloud
        .request(&get_bill("after", "12"), "after", T)
        .await
        .expect("the next request is answered");
    assert!(barrier.signature_ok);
    assert_eq!(
        attempts_for(&s.cloud, "late").len(),
        attempts.len(),
        "an attempt after the operation gave up"
    );
    println!("deadline: {} attempts", attempts.len());
    s.agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_callback_does_not_block_other_operations() {
    // Attempts time out only after 30 s here, so "stuck" hangs until the test releases it:
    // the order of events, not a duration, shows that "other" did not wait for it.
    let dir = temp_dir("cb-block");
    let mirror = demo_mirror(&dir);
    let cloud = fake_cloud().await;
    let mut cfg = fast_config(&cloud.ws_url(), &cloud.callback_url(), &mirror, &dir);
    cfg.callback.attempt_timeout_secs = 30;
    cfg.callback.deadline_secs = 60;
    let agent = start(cfg);
    cloud.wait_connected(T).await.expect("connect");

    cloud.push_responses(&[Reply::Hang]);
    assert!(cloud.send_text(&get_bill("stuck", "12")).await);
    let hung = cloud.callback_for("stuck", T).await.expect("first attempt");
    assert_eq!(hung.answered, 0);
    // While "stuck" hangs, another getBill is answered and finished.
    let other = cloud
        .request(&get_bill("other", "1"), "other", T)
        .await
        .expect("other answered while stuck hangs");
    assert_eq!(other.answered, 200);
    let done = agent.ops.wait(1, T).await;
    assert_eq!(
        done,
        vec![("getBill".to_string(), true)],
        "only other finished"
    );
    assert_eq!(
        attempts_for(&cloud, "stuck").len(),
        1,
        "stuck is still in its first attempt"
    );
    // Released (its connection reset), "stuck" is retried and delivered once.
    cloud.release_hangs();
    let done = agent.ops.wait(2, T).await;
    assert_eq!(done.len(), 2, "{done:?}");
    assert!(done.iter().all(|(_, ok)| *ok), "{done:?}");
    assert_eq!(delivered(&attempts_for(&cloud, "stuck")), 1);
    agent.stop().await;
}
