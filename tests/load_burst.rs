//! A burst of 10 000 requests, far more than `[limits] max_in_flight` (8) + `max_queue` (256)
//! can hold. The agent answers what fits, refuses the rest with one log line each, loses
//! nothing silently (answered + refused == sent), keeps the link, and its peak memory stays
//! under a documented bound (docs/testing.md).
//!
//! Two runs: the real binary as a separate process (honest RSS: /proc/<pid>/status VmHWM, the
//! fake cloud lives in the test process), and in-process (the dispatcher's own counters).

#[path = "support/binary.rs"]
mod binary;
#[path = "support/harness.rs"]
mod harness;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use testkit::{FakeCloud, FakeCloudConfig};

const BURST: usize = 10_000;
/// Peak RSS bound for the agent process during the burst (debug build; release is smaller).
const PEAK_BOUND_KIB: u64 = 48 * 1024;

async fn cloud() -> FakeCloud {
    FakeCloud::start(FakeCloudConfig {
        resto_id: harness::RESTO.into(),
        secret: harness::SECRET.into(),
        pos_system: None,
    })
    .await
    .unwrap()
}

fn frame(i: usize) -> String {
    match i % 10 {
        0 => format!(r#"{{"rID":"b-{i}","operation":"tablesInfo"}}"#),
        1 => format!(r#"{{"rID":"b-{i}","operation":"checkWork"}}"#),
        _ => harness::get_bill(&format!("b-{i}"), &((i % 12) + 1).to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_against_the_binary_nothing_lost_memory_bounded() {
    let dir = harness::temp_dir("burst-bin");
    let mirror = harness::demo_mirror(&dir);
    let cloud = cloud().await;
    let agent = binary::spawn_run(
        &dir,
        harness::RESTO,
        harness::SECRET,
        &cloud.ws_url(),
        &cloud.callback_url(),
        &mirror,
        "",
    );
    cloud
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("connect");
    let (hwm_idle, _) = agent.memory_kib();
    let t0 = Instant::now();
    for i in 0..BURST {
        assert!(cloud.send_text(&frame(i)).await, "send {i}");
    }
    let sent_in = t0.elapsed();
    let counts = agent.wait_counts(
        &["op=", "queue full"],
        |c| c[0] + c[1] >= BURST,
        Duration::from_secs(60),
    );
    let took = t0.elapsed();
    let (hwm, rss) = agent.memory_kib();
    let (ops, refused) = (counts[0], counts[1]);
    assert_eq!(
        ops + refused,
        BURST,
        "every request is answered or refused with a log line"
    );
    assert!(ops >= 256, "at least a queue's worth is answered: {ops}");
    assert!(
        refused > 0,
        "the burst must overflow the queue for this test to mean anything"
    );
    // Each answered op has exactly one callback, with a distinct rID.
    assert!(
        cloud
            .wait_callback_count(ops, Duration::from_secs(10))
            .await,
        "fewer callbacks than answered ops"
    );
    let rids: HashSet<String> = cloud
        .all_callbacks()
        .into_iter()
        .filter_map(|c| c.rid)
        .collect();
    assert_eq!(rids.len(), ops, "answered ops == distinct callbacks");
    assert_eq!(cloud.all_callbacks().len(), ops, "no duplicate deliveries");
    assert_eq!(cloud.connection_count(), 1, "the link survived the burst");
    // Still answering afterwards.
    let cb = cloud
        .request(
            &harness::get_bill("after", "12"),
            "after",
            Duration::from_secs(10),
        )
        .await
        .expect("answered after the burst");
    assert!(cb.signature_ok);
    let out = agent.stop(Duration::from_secs(20));
    assert_eq!(out.code, Some(0));
    println!(
        "burst (binary): {BURST} sent in {sent_in:?}; {ops} answered, {refused} refused (queue full) in {took:?}; \
         VmHWM idle {hwm_idle} KiB, peak {hwm} KiB, RSS after {rss} KiB (bound {PEAK_BOUND_KIB} KiB)"
    );
    assert!(hwm < PEAK_BOUND_KIB, "peak RSS {hwm} KiB over the bound");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_in_process_counters_add_up() {
    let dir = harness::temp_dir("burst-inproc");
    let mirror = harness::demo_mirror(&dir);
    let cloud = cloud().await;
    let agent = harness::start(harness::fast_config(
        &cloud.ws_url(),
        &cloud.callback_url(),
        &mirror,
        &dir,
    ));
    cloud
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("connect");
    for i in 0..BURST {
        assert!(cloud.send_text(&frame(i)).await);
    }
    let c = agent.running.counters.clone();
    let total = || {
        c.answered.load(Ordering::Relaxed)
            + c.failed.load(Ordering::Relaxed)
            + c.queue_full.load(Ordering::Relaxed)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    // Every finished operation fires op_done; drops fire nothing, so wait on both.
    loop {
        let done = agent.ops.done.lock().unwrap().len() as u64;
        if total() >= BURST as u64 || Instant::now() > deadline {
            break;
        }
        agent
            .ops
            .wait(done as usize + 1, Duration::from_millis(200))
            .await;
    }
    assert_eq!(c.received.load(Ordering::Relaxed), BURST as u64);
    assert_eq!(c.rejected_frames.load(Ordering::Relaxed), 0);
    assert_eq!(total(), BURST as u64, "{c:?}");
    assert_eq!(c.failed.load(Ordering::Relaxed), 0, "{c:?}");
    assert!(c.queue_full.load(Ordering::Relaxed) > 0);
    println!("burst (in-process): {c:?}");
    agent.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
