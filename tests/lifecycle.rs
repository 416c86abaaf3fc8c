//! Exactly one answer for every request, whatever the input, the load or the POS's speed. The
//! real binary against the fake cloud; every test is sequenced by events (log lines,
//! callbacks, the POS acting when the test says), never by sleeps or wall-clock bounds: the
//! agent's own timeouts here ([`TIMINGS`]: the POS's acknowledgement 60 s, the link's silence
//! 30 s) are far past any step of a test, and no step waits for one to pass.
//!
//! Each of four defects once found has a test here that fails on the code before its fix:
//! `multibyte_rid_frames_never_kill_the_agent` (the agent aborted in `sniff_rid`),
//! `a_read_never_waits_behind_payments_waiting_for_the_pos` (the getBill waited for the
//! payBills' permits), `load_burst.rs` (requests past `max_queue` were dropped without a
//! callback), and `failures_get_one_fail_callback_never_silence` (an answer over
//! `max_body_bytes` got no callback). `no_thread_is_created_after_start_up` counts the threads
//! the agent creates while it answers 2,000 requests (none).

#[path = "support/binary.rs"]
mod binary;
#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use rusqlite::{params, Connection};
use serde_json::Value;
use testkit::sim_pos::SimPos;
use testkit::{Callback, FakeCloud, FakeCloudConfig};

const T: Duration = Duration::from_secs(20);

/// The agent's timings here: fast retries, and waits (the POS's acknowledgement, the link's
/// silence) that only the test's events end.
const TIMINGS: &str = "[link]\nping_interval_secs = 1\ndead_after_secs = 30\n\
connect_timeout_secs = 2\nbackoff_floor_ms = 200\nbackoff_cap_ms = 1000\n\
[callback]\nattempt_timeout_secs = 10\ndeadline_secs = 80\nretry_initial_ms = 100\nretry_max_ms = 400\n\
[journal]\npos_ack_timeout_secs = 60\npoll_interval_ms = 20\n";

async fn cloud() -> FakeCloud {
    FakeCloud::start(FakeCloudConfig {
        resto_id: harness::RESTO.into(),
        secret: harness::SECRET.into(),
        pos_system: None,
    })
    .await
    .unwrap()
}

fn json(cb: &Callback) -> Value {
    serde_json::from_slice(&cb.body).unwrap()
}

/// Start the binary against `cloud` with `extra` config, wait for the link.
async fn agent(tag: &str, cloud: &FakeCloud, extra: &str) -> (binary::Agent, std::path::PathBuf) {
    let dir = harness::temp_dir(tag);
    let mirror = harness::demo_mirror(&dir);
    add_bills(&mirror, 8);
    let a = binary::spawn_run_timed(
        &dir,
        harness::RESTO,
        harness::SECRET,
        &cloud.ws_url(),
        &cloud.callback_url(),
        &mirror,
        TIMINGS,
        extra,
    );
    cloud.wait_connected(T).await.expect("the agent connects");
    (a, dir)
}

fn bill(i: usize) -> String {
    format!("life-bill-{i:03}")
}

/// Open bills `life-bill-000..n` of 100.00 each.
fn add_bills(mirror: &std::path::Path, n: usize) {
    let c = Connection::open(mirror).unwrap();
    for i in 0..n {
        c.execute(
            "INSERT INTO orders (bill_id, order_number, table_id, state, created, waiter_id, waiter_name, raw_sum_kop, total_sum_kop) \
             VALUES (?1, ?2, 'table-1', 'BILL', '2024.05.14 18:21:07', 'u-017', 'Оксана', 10000, 10000)",
            params![bill(i), 7000 + i as i64],
        )
        .unwrap();
        c.execute(
            "INSERT INTO order_positions (bill_id, position_id, line_no, name, count_milli, sum_kop) VALUES (?1, 'p-1', 1, 'Борщ', 1000, 10000)",
            params![bill(i)],
        )
        .unwrap();
    }
}

fn pay(rid: &str, i: usize, pad: usize) -> String {
    // `pad` short strings in a field the agent ignores, to make the frame large.
    let pad: Vec<String> = (0..pad)
        .map(|_| format!("\"{}\"", "x".repeat(1000)))
        .collect();
    format!(
        r#"{{"rID":"{rid}","operation":"payBill","billId":"{}","sum":100.00,"pad":[{}]}}"#,
        bill(i),
        pad.join(",")
    )
}

/// The simulated POS on the agent's journal and mirror in `dir`, stepped by the test.
fn pos(dir: &std::path::Path) -> SimPos {
    SimPos::open(&dir.join("journal.sqlite"), &dir.join("mirror.sqlite")).unwrap()
}

fn alive(a: &binary::Agent) -> bool {
    std::fs::read_to_string(format!("/proc/{}/status", a.pid()))
        .map(|s| !s.contains("State:\tZ"))
        .unwrap_or(false)
}

/// `{"rID":"a" + 200 × "Б", …}` aborted the agent (a str sliced inside a letter).
/// Then a battery of two-, three- and four-byte letters straddling every cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multibyte_rid_frames_never_kill_the_agent() {
    let cloud = cloud().await;
    let (a, dir) = agent("life-utf8", &cloud, "").await;
    let rid = format!("a{}", "Б".repeat(200));
    let frame = format!(r#"{{"rID":"{rid}","operation":"checkWork"}}"#);
    assert!(cloud.send_text(&frame).await);
    // Its rID can be read (401 bytes): one FAIL BAD_REQUEST carries it back whole.
    // (The fake cloud indexes rIDs up to 256 bytes: take the next callback, the only one.)
    let cb = cloud
        .next_callback(T)
        .await
        .unwrap_or_else(|| panic!("no FAIL for the long rID:\n{}", a.stderr_so_far()));
    let v = json(&cb);
    assert_eq!(v["rID"].as_str(), Some(rid.as_str()));
    assert_eq!(
        (v["state"].as_str(), v["substate"].as_str()),
        (Some("FAIL"), Some("BAD_REQUEST"))
    );
    assert_eq!(cb.path, "/callback/checkWork");

    let mut sent = 0;
    for letter in ["Б", "€", "😀"] {
        for cap in [64usize, 128, 256, 1024, 4096] {
            for shift in 1..=letter.len() {
                let s = format!("{}{}", "a".repeat(cap - shift), letter.repeat(2));
                for f in [
                    format!(r#"{{"rID":"{s}","operation":"checkWork"}}"#),
                    format!(r#"{{"rID":"u","operation":"{s}"}}"#),
                    format!(r#"{{"rID":"b","operation":"getBill","billId":"{s}"}}"#),
                    format!(
                        r#"{{"x":"{}","rID":"{}"}}"#,
                        "a".repeat(cap.saturating_sub(20 + shift)),
                        letter.repeat(300)
                    ),
                ] {
                    assert!(cloud.send_text(&f).await);
                    sent += 1;
                }
            }
        }
    }
    // The next request is answered, on the same link, by the same process.
    let cb = cloud
        .request(
            r#"{"rID":"after-utf8","operation":"checkWork"}"#,
            "after-utf8",
            T,
        )
        .await
        .expect("the next request is answered");
    assert_eq!(json(&cb)["readyToWork"], true);
    assert!(alive(&a), "the agent is alive");
    assert_eq!(cloud.connection_count(), 1, "the link never dropped");
    println!("multibyte battery: {sent} frames");
    let out = a.stop(T);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `max_in_flight = 2`, four payBills waiting for the POS once held every permit, and a
/// getBill waited for them. It is answered while all four still wait; then the POS applies
/// them and each gets its SUCCESS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_never_waits_behind_payments_waiting_for_the_pos() {
    let cloud = cloud().await;
    let (a, dir) = agent("life-slowpos", &cloud, "[limits]\nmax_in_flight = 2\n").await;
    for i in 0..4 {
        assert!(cloud.send_text(&pay(&format!("pay-{i}"), i, 0)).await);
    }
    // Event: all four are journaled and waiting for the POS.
    assert!(
        a.wait_count("journaled as #", 4, T),
        "four payBills journaled"
    );
    let cb = cloud
        .request(&harness::get_bill("read-1", "12"), "read-1", T)
        .await
        .expect("getBill answered");
    assert_eq!(json(&cb)["state"], "SUCCESS");
    // No payBill has been answered yet: they wait for the POS, which has not acted.
    let before: Vec<String> = cloud
        .all_callbacks()
        .iter()
        .filter_map(|c| c.rid.clone())
        .collect();
    assert_eq!(before, ["read-1"], "the read came first");
    // Now the POS applies the four; each is answered.
    assert_eq!(pos(&dir).drain().unwrap(), 4);
    for i in 0..4 {
        let cb = cloud
            .callback_for(&format!("pay-{i}"), T)
            .await
            .expect("payBill answered");
        assert_eq!(json(&cb)["state"], "SUCCESS", "{}", json(&cb));
    }
    assert_eq!(cloud.all_callbacks().len(), 5, "one callback each");
    let _ = a.stop(T);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The FAIL paths: an answer over `max_body_bytes`, a missing mirror and a payBill without a
/// billId each get one FAIL callback; admission past `max_pending_bytes` gets AGENT_BUSY while
/// earlier requests still wait (for the POS, until the test lets it apply them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_get_one_fail_callback_never_silence() {
    let cloud = cloud().await;
    let extra =
        "[limits]\nmax_body_bytes = 1024\nmax_menu_bytes = 1024\nmax_pending_bytes = 65536\n";
    let (a, dir) = agent("life-fail", &cloud, extra).await;
    // menuInfo of the demo menu is several KiB: over the 1 KiB caps (a menu within
    // max_menu_bytes would be streamed instead: tests/read_ops_e2e.rs).
    let cb = cloud
        .request(r#"{"rID":"big","operation":"menuInfo"}"#, "big", T)
        .await
        .expect("a FAIL for the answer too large");
    let v = json(&cb);
    assert_eq!(
        (v["state"].as_str(), v["substate"].as_str()),
        (Some("FAIL"), Some("ANSWER_TOO_LARGE"))
    );
    assert_eq!(cb.path, "/callback/menuInfo");
    // payBill without a billId.
    let cb = cloud
        .request(
            r#"{"rID":"nobill","operation":"payBill","sum":10}"#,
            "nobill",
            T,
        )
        .await
        .expect("a FAIL for a payBill without billId");
    assert_eq!(json(&cb)["substate"], "BAD_REQUEST");
    // Admission: two 22 KB payBills wait for the POS (never acknowledged here); a third does not
    // fit in 64 KiB and is answered AGENT_BUSY while they still wait.
    for i in 0..2 {
        assert!(cloud.send_text(&pay(&format!("fat-{i}"), i, 22)).await);
    }
    assert!(a.wait_count("journaled as #", 2, T));
    let cb = cloud
        .request(&pay("fat-2", 2, 22), "fat-2", T)
        .await
        .expect("AGENT_BUSY");
    assert_eq!(json(&cb)["substate"], "AGENT_BUSY");
    assert!(
        cloud.callback_for("fat-0", Duration::ZERO).await.is_none(),
        "still waiting"
    );
    assert_eq!(pos(&dir).drain().unwrap(), 2, "the two fat payments");
    for rid in ["fat-0", "fat-1"] {
        assert_eq!(
            json(&cloud.callback_for(rid, T).await.unwrap())["state"],
            "SUCCESS"
        );
    }
    let rids: Vec<String> = cloud
        .all_callbacks()
        .iter()
        .filter_map(|c| c.rid.clone())
        .collect();
    assert_eq!(rids.len(), 5, "exactly one callback each: {rids:?}");
    let _ = a.stop(T);

    // A missing mirror: every read answers FAIL (POS_UNAVAILABLE), none is silent.
    let cloud = cloud_restart(cloud).await;
    let dir2 = harness::temp_dir("life-nomirror");
    let a = binary::spawn_run_timed(
        &dir2,
        harness::RESTO,
        harness::SECRET,
        &cloud.ws_url(),
        &cloud.callback_url(),
        &dir2.join("no-such-mirror.sqlite"),
        TIMINGS,
        "",
    );
    cloud.wait_connected(T).await.expect("connect");
    for op in ["getBill", "tablesInfo", "menuInfo", "stopList", "usersInfo"] {
        let rid = format!("nm-{op}");
        let frame = format!(r#"{{"rID":"{rid}","operation":"{op}","tableNumber":"12"}}"#);
        let cb = cloud.request(&frame, &rid, T).await.expect("answered");
        let v = json(&cb);
        assert_eq!(v["state"], "FAIL", "{op}: {v}");
    }
    assert_eq!(cloud.all_callbacks().len(), 5);
    let _ = a.stop(T);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

async fn cloud_restart(old: FakeCloud) -> FakeCloud {
    drop(old);
    cloud().await
}

/// The callback's header names are on the wire exactly as the protocol's clients write them.
/// A raw TCP listener reads the request bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_header_names_keep_their_casing_on_the_wire() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cloud = cloud().await;
    let raw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callback", raw.local_addr().unwrap());
    let dir = harness::temp_dir("life-raw");
    let mirror = harness::demo_mirror(&dir);
    let a = binary::spawn_run_timed(
        &dir,
        harness::RESTO,
        harness::SECRET,
        &cloud.ws_url(),
        &url,
        &mirror,
        TIMINGS,
        "",
    );
    cloud.wait_connected(T).await.expect("connect");
    assert!(
        cloud
            .send_text(r#"{"rID":"raw-1","operation":"checkWork"}"#)
            .await
    );
    let (mut s, _) = tokio::time::timeout(T, raw.accept())
        .await
        .unwrap()
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(T, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let head = String::from_utf8_lossy(&got).into_owned();
    assert!(
        head.starts_with("POST /callback/checkWork HTTP/1.1\r\n"),
        "{head}"
    );
    for name in [
        "restoId: ",
        "signature: ",
        "Content-Type: application/json",
        "Content-Length: ",
    ] {
        assert!(
            head.contains(&format!("\r\n{name}")),
            "{name:?} not spelled exactly in {head:?}"
        );
    }
    assert!(head.contains(&format!("\r\nrestoId: {}\r\n", harness::RESTO)));
    let _ = a.stop(T);
    let _ = std::fs::remove_dir_all(&dir);
}

/// No thread is created after start-up: the agent runs under `strace -f --seccomp-bpf -e
/// trace=clone,clone3,fork,vfork` (only those calls stop it) and answers 2,000 requests
/// (checkWork, getBill and tablesInfo, computed on the event loop, and every hundredth a
/// menuInfo, computed on the blocking pool); the calls that create a thread are counted from
/// the moment the link is up. strace is needed: `.ci/run` installs it
/// and sets `EXPIRENZA_REQUIRE_STRACE=1`, so in CI the test fails without it; elsewhere it says
/// SKIPPED and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_thread_is_created_after_start_up() {
    let strace = ["/usr/bin/strace", "/bin/strace"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(strace) = strace else {
        let required = std::env::var("EXPIRENZA_REQUIRE_STRACE").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "EXPIRENZA_REQUIRE_STRACE=1 but no strace found (apt-get install strace)"
        );
        println!("SKIPPED: strace not installed");
        return;
    };
    let cloud = cloud().await;
    let dir = harness::temp_dir("life-strace");
    let mirror = harness::demo_mirror(&dir);
    let cfg = binary::write_config(
        &dir,
        &format!(
            "state_dir = \"{0}\"\nruntime_dir = \"{0}\"\n{TIMINGS}[limits]\nmax_in_flight = 2\n",
            dir.display()
        ),
    );
    let trace = dir.join("clone.trace");
    let mut c = std::process::Command::new(strace);
    c.args([
        "-f",
        "-qq",
        "--seccomp-bpf",
        "-e",
        "trace=clone,clone3,fork,vfork",
        "-o",
    ])
    .arg(&trace)
    .arg(binary::BIN)
    .args(["run", "--config", cfg.to_str().unwrap()])
    .env("EXPIRENZA_RESTO_ID", harness::RESTO)
    .env("EXPIRENZA_SECRET_KEY", harness::SECRET)
    .env("EXPIRENZA_WS_URL", cloud.ws_url())
    .env("EXPIRENZA_CALLBACK_URL", cloud.callback_url())
    .env("EXPIRENZA_MIRROR", &mirror);
    let a = binary::Agent::spawn(c);
    cloud
        .wait_connected(T)
        .await
        .unwrap_or_else(|| panic!("connect:\n{}", a.stderr_so_far()));
    // A call that created a thread; its "resumed" half (strace splits a call that another
    // thread interrupts) is not a second one.
    let count = || {
        std::fs::read_to_string(&trace)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                ["clone(", "clone3(", "fork(", "vfork("]
                    .iter()
                    .any(|c| l.contains(c))
                    && !l.contains("resumed>")
            })
            .count()
    };
    // The control: strace saw the blocking pool's threads start (so it would see a later one).
    let at_start = count();
    assert!(at_start > 0, "strace counted no thread at start-up");
    let n = 2000;
    for i in 0..n {
        let frame = match i % 4 {
            0 => format!(r#"{{"rID":"s-{i}","operation":"checkWork"}}"#),
            1 => harness::get_bill(&format!("s-{i}"), "12"),
            2 => format!(r#"{{"rID":"s-{i}","operation":"tablesInfo"}}"#),
            _ if i % 100 == 3 => format!(r#"{{"rID":"s-{i}","operation":"menuInfo"}}"#),
            _ => harness::get_bill(&format!("s-{i}"), "7"),
        };
        assert!(cloud.send_text(&frame).await);
    }
    for i in 0..n {
        let cb = cloud
            .callback_for(&format!("s-{i}"), T)
            .await
            .expect("answered");
        assert!(cb.signature_ok);
    }
    let during = count() - at_start;
    println!("threads created: {at_start} at start-up, {during} during {n} requests");
    assert_eq!(
        during, 0,
        "threads created while answering (strace log: {trace:?})"
    );
    // Stop the agent itself (strace's child), then strace ends with it.
    let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", a.pid()))
        .unwrap_or_default();
    for pid in kids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        // SAFETY: sending a signal to our own grandchild.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let _ = a.stop(T);
    let _ = std::fs::remove_dir_all(&dir);
}
