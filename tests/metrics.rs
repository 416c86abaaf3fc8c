//! The Prometheus textfile: it parses as exposition format (a strict parser, tests/support/
//! prom.rs) and its counters move with the traffic.
//!
//! The registry is process-wide (one agent per process), so this binary holds exactly one
//! in-process agent test; the other test runs the real binary as a child process.
//! Sequencing is by events: an operation's metrics are recorded before the dispatcher reports
//! it finished (`OpEvents`), a session's end before `LinkEvents::link_down`, and the binary
//! writes its last file after the link went down and before it exits.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/prom.rs"]
mod prom;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use expirenza_agent::metrics::{self, textfile};
use prom::Exposition;
use testkit::Reply;

const WAIT: Duration = Duration::from_secs(20);
const BILL1: &str = "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11";

fn parse_file(path: &Path) -> Exposition {
    let text = std::fs::read_to_string(path).expect("metrics file");
    let e = prom::parse(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    prom::check_project_rules(&e).unwrap_or_else(|err| panic!("{err}\n{text}"));
    e
}

const OPS: &str = "expirenza_operations_total";
const ATTEMPTS: &str = "expirenza_callback_attempts_total";
const FAILURES: &str = "expirenza_callback_failures_total";
const LATENCY_COUNT: &str = "expirenza_operation_duration_seconds_count";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_the_traffic() {
    let s = harness::setup("metrics", WAIT).await;
    let file = s.mirror.with_file_name("agent.prom");
    let ctx = s.agent.running.ctx.clone();
    let backlog: textfile::BacklogFn =
        Arc::new(move || ctx.journal.open_by_status().map_err(|e| e.to_string()));
    let snap = || {
        let (file, backlog) = (file.clone(), backlog.clone());
        async move {
            textfile::write_once(metrics::global(), &file, &backlog, 1)
                .await
                .expect("write the metrics file");
            parse_file(&file)
        }
    };
    let mut done = 0;
    let mut call = |frame: String, rid: &'static str| {
        done += 1;
        let (cloud, ops, n) = (s.cloud.clone(), s.agent.ops.clone(), done);
        async move {
            cloud.request(&frame, rid, WAIT).await.expect("a callback");
            assert_eq!(ops.wait(n, WAIT).await.len(), n, "operation {rid} finished");
        }
    };

    // The fake cloud sees the upgrade a moment before the agent's side records it: a first
    // answered request proves the agent's session is up (frames are read only after that).
    call(r#"{"rID":"m0","operation":"checkWork"}"#.to_string(), "m0").await;
    let e0 = snap().await;
    assert_eq!(e0.get("expirenza_link_up", &[]), Some(1.0));
    assert_eq!(e0.get("expirenza_link_connects_total", &[]), Some(1.0));
    assert_eq!(e0.get("expirenza_link_disconnects_total", &[]), Some(0.0));
    assert!(
        e0.get("expirenza_process_resident_memory_bytes", &[])
            .unwrap()
            > 1e6
    );
    assert_eq!(e0.get("expirenza_start_time_seconds", &[]), Some(1.0));
    for st in ["pending", "claimed", "review"] {
        assert_eq!(
            e0.get("expirenza_journal_backlog", &[("status", st)]),
            Some(0.0)
        );
    }
    let ok_bill = [("operation", "getBill"), ("outcome", "success")];
    let fail_bill = [("operation", "getBill"), ("outcome", "fail")];

    // A bill: one success, one POST, one observation.
    call(harness::get_bill("m1", "12"), "m1").await;
    let e1 = snap().await;
    assert_eq!(e1.count(OPS, &ok_bill), e0.count(OPS, &ok_bill) + 1.0);
    assert_eq!(e1.count(ATTEMPTS, &[]), e0.count(ATTEMPTS, &[]) + 1.0);
    assert_eq!(e1.count(FAILURES, &[]), e0.count(FAILURES, &[]));
    assert_eq!(
        e1.count(LATENCY_COUNT, &[]),
        e0.count(LATENCY_COUNT, &[]) + 1.0
    );

    // No such table: a FAIL answer, delivered.
    call(harness::get_bill("m2", "999"), "m2").await;
    let e2 = snap().await;
    assert_eq!(e2.count(OPS, &fail_bill), e1.count(OPS, &fail_bill) + 1.0);
    assert_eq!(e2.count(OPS, &ok_bill), e1.count(OPS, &ok_bill));

    // The cloud answers 500 once: two POSTs, one failed, still one success.
    s.cloud.push_responses(&[Reply::Status(500)]);
    call(harness::get_bill("m3", "12"), "m3").await;
    let e3 = snap().await;
    assert_eq!(e3.count(ATTEMPTS, &[]), e2.count(ATTEMPTS, &[]) + 2.0);
    assert_eq!(e3.count(FAILURES, &[]), e2.count(FAILURES, &[]) + 1.0);
    assert_eq!(e3.count(OPS, &ok_bill), e2.count(OPS, &ok_bill) + 1.0);
    assert_eq!(
        e3.count(LATENCY_COUNT, &[]),
        e2.count(LATENCY_COUNT, &[]) + 1.0
    );

    // A payment no POS picks up: FAIL POS_TIMEOUT, and the command waits in the journal.
    let pay = format!(
        r#"{{"rID":"m4","operation":"payBill","billId":"{BILL1}","sum":389.50,"tips":0,"prepay":false}}"#
    );
    call(pay, "m4").await;
    let e4 = snap().await;
    let pay_fail = [("operation", "payBill"), ("outcome", "fail")];
    assert_eq!(e4.count(OPS, &pay_fail), e3.count(OPS, &pay_fail) + 1.0);
    assert_eq!(
        e4.get("expirenza_journal_backlog", &[("status", "pending")]),
        Some(1.0)
    );

    // The cloud drops the link: one disconnect; the agent reconnects (a request answered over
    // the new link proves the new session is up).
    s.cloud.drop_connection().await;
    assert!(s.agent.link.wait_downs(1, WAIT).await);
    let e5 = snap().await;
    assert_eq!(e5.get("expirenza_link_disconnects_total", &[]), Some(1.0));
    s.cloud.wait_connected(WAIT).await.expect("reconnect");
    call(harness::get_bill("m5", "12"), "m5").await;
    let e6 = snap().await;
    assert_eq!(e6.get("expirenza_link_connects_total", &[]), Some(2.0));
    assert_eq!(e6.get("expirenza_link_up", &[]), Some(1.0));

    // Stopped: the link is down in the registry.
    s.agent.stop().await;
    let e7 = snap().await;
    assert_eq!(e7.get("expirenza_link_up", &[]), Some(0.0));
    assert_eq!(e7.get("expirenza_link_disconnects_total", &[]), Some(2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_binary_writes_the_file_and_a_last_one_on_stop() {
    let dir = binary::temp_dir("metrics-bin");
    let mirror = binary::demo_mirror(&dir);
    let cloud = harness::fake_cloud().await;
    let prom_path = dir.join("run").join("agent.prom");
    std::fs::create_dir_all(prom_path.parent().unwrap()).unwrap();
    let extra = format!(
        "[metrics]\ntextfile_path = \"{}\"\n[status]\nwrite_interval_secs = 1\n\
         [cache]\nenabled = true\ninterval_secs = 1\n",
        prom_path.display()
    );
    let agent = binary::spawn_run(
        &dir,
        harness::RESTO,
        harness::SECRET,
        &cloud.ws_url(),
        &cloud.callback_url(),
        &mirror,
        &extra,
    );
    cloud
        .wait_connected(WAIT)
        .await
        .expect("the agent connects");
    for (rid, table) in [("b1", "12"), ("b2", "999"), ("b3", "12")] {
        cloud
            .request(&harness::get_bill(rid, table), rid, WAIT)
            .await
            .expect("a callback");
    }
    // Two webhook pushes reached the cloud: the first one's result is recorded (pushes are
    // sequential).
    let mut webhooks = 0;
    while webhooks < 2 {
        let cb = cloud.next_callback(WAIT).await.expect("webhook pushes");
        webhooks += usize::from(cb.operation() == "webhook");
    }
    assert!(
        agent.wait_count("op=getBill rID=b", 3, WAIT),
        "{}",
        agent.stderr_so_far()
    );
    let out = agent.stop(WAIT);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stderr.contains("metrics: writing"), "{}", out.stderr);

    let e = parse_file(&prom_path);
    assert_eq!(
        e.get("expirenza_link_up", &[]),
        Some(0.0),
        "last file: link down"
    );
    assert_eq!(e.get("expirenza_link_connects_total", &[]), Some(1.0));
    assert_eq!(e.get("expirenza_link_disconnects_total", &[]), Some(1.0));
    let ops = |outcome| e.count(OPS, &[("operation", "getBill"), ("outcome", outcome)]);
    assert_eq!((ops("success"), ops("fail")), (2.0, 1.0));
    assert_eq!(e.get(LATENCY_COUNT, &[]), Some(3.0));
    assert!(e.count("expirenza_cache_pushes_total", &[("result", "ok")]) >= 1.0);
    assert!(
        e.count(ATTEMPTS, &[]) >= 4.0,
        "3 answers and at least one push"
    );
    assert!(
        e.get("expirenza_process_resident_memory_bytes", &[])
            .unwrap()
            > 1e6
    );
    assert_eq!(
        e.get(
            "expirenza_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    // Atomic replacement leaves only the file (mode 0644, for node_exporter's user).
    use std::os::unix::fs::PermissionsExt;
    let names: Vec<_> = std::fs::read_dir(prom_path.parent().unwrap())
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["agent.prom".to_string()]);
    let mode = std::fs::metadata(&prom_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let _ = std::fs::remove_dir_all(&dir);
}
