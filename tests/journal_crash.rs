//! Crash test: the real agent binary is killed with SIGKILL at random points while payments
//! arrive, restarted, and the cloud re-sends every payment it got no answer for (the duplicate
//! path). The simulated POS (in this process) applies the journal throughout. At the end, from
//! the journal and the mirror: every payment journaled exactly once, none applied twice, every
//! one answered SUCCESS (or listed as pending by `expirenza-agent journal`).
//!
//! Deterministic: the seed (env `CRASH_SEED`, default below) drives payment counts, repeats
//! and kill delays; it is printed with the figures. The random kill delay is the point of the
//! test, not a synchronisation: every wait for a state uses an event (connect, disconnect,
//! callback, child exit) with a timeout.

#[path = "support/binary.rs"]
mod binary;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use serde_json::Value;
use testkit::harness::{make_mirror, TempDir, RESTO_ID, SECRET};
use testkit::sim_pos;
use testkit::{FakeCloud, FakeCloudConfig};

/// Kill/restart cycles; env `CRASH_ITERATIONS` overrides.
const ITERATIONS: usize = 30;
const DEFAULT_SEED: u64 = 0x5eed_2026_0004;
const T: Duration = Duration::from_secs(10);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn bill(i: usize) -> String {
    format!("crash-bill-{i:03}")
}
fn total(i: usize) -> i64 {
    10_000 + 137 * i as i64
}

fn add_bills(mirror: &std::path::Path, n: usize) {
    let c = Connection::open(mirror).unwrap();
    for i in 0..n {
        c.execute(
            "INSERT INTO orders (bill_id, order_number, table_id, state, created, waiter_id, waiter_name, raw_sum_kop, total_sum_kop) \
             VALUES (?1, ?2, 'table-1', 'BILL', '2024.05.14 18:21:07', 'u-017', 'Оксана Мельник', ?3, ?3)",
            params![bill(i), 5000 + i as i64, total(i)],
        )
        .unwrap();
        c.execute(
            "INSERT INTO order_positions (bill_id, position_id, line_no, name, count_milli, sum_kop) VALUES (?1, 'p-1', 1, 'Борщ', 1000, ?2)",
            params![bill(i), total(i)],
        )
        .unwrap();
    }
}

fn pay_frame(rid: &str, i: usize) -> String {
    let t = total(i);
    format!(
        r#"{{"rID":"{rid}","operation":"payBill","billId":"{}","sum":{}.{:02},"tips":5.00}}"#,
        bill(i),
        t / 100,
        t % 100
    )
}

fn spawn_agent(
    config: &std::path::Path,
    cloud: &FakeCloud,
    mirror: &std::path::Path,
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_expirenza-agent"))
        .args(["run", "-q", "--config"])
        .arg(config)
        .env("EXPIRENZA_SECRET_KEY", SECRET)
        .env("EXPIRENZA_WS_URL", cloud.ws_url())
        .env("EXPIRENZA_CALLBACK_URL", cloud.callback_url())
        .env("EXPIRENZA_MIRROR", mirror)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the agent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_survive_sigkill_at_random_points() {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    println!("journal_crash: seed {seed} (rerun with CRASH_SEED={seed})");

    let iterations: usize = std::env::var("CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ITERATIONS);
    let mut rng = Rng(seed.max(1));
    let started = Instant::now();

    let dir = TempDir::new("journal-crash");
    let mirror = dir.path().join("mirror.sqlite");
    let journal = dir.path().join("journal.sqlite");
    make_mirror(&mirror, true);
    let n_bills = iterations * 3;
    add_bills(&mirror, n_bills);
    let cloud = FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO_ID.into(),
        secret: SECRET.into(),
        pos_system: None,
    })
    .await
    .unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "resto_id = \"{RESTO_ID}\"\nstate_dir = \"{0}\"\nruntime_dir = \"{0}\"\n\
             [link]\nbackoff_floor_ms = 50\nbackoff_cap_ms = 200\n\
             [callback]\nretry_initial_ms = 20\nretry_max_ms = 200\n\
             [journal]\npos_ack_timeout_secs = 10\npoll_interval_ms = 5\n",
            dir.path().display()
        ),
    )
    .unwrap();
    // The POS, applying the journal the whole time (it is not the process being killed).
    let pos = sim_pos::spawn(&journal, &mirror, Duration::from_millis(10)).unwrap();

    let mut sent: BTreeMap<String, (usize, String)> = BTreeMap::new(); // rid -> (bill, frame)
    let mut unanswered: BTreeSet<String> = BTreeSet::new();
    let mut next_bill = 0usize;
    let (mut kills, mut resends, mut repeat_bill_rids) = (0usize, 0usize, 0usize);
    let (mut journaled_unanswered_at_kill, mut lost_before_journal_at_kill) = (0usize, 0usize);

    let answered = |cloud: &FakeCloud| -> BTreeSet<String> {
        cloud
            .all_callbacks()
            .into_iter()
            .filter_map(|c| c.rid)
            .collect()
    };

    for it in 0..iterations {
        let mut child = spawn_agent(&config, &cloud, &mirror);
        assert!(
            cloud.wait_connected(T).await.is_some(),
            "iteration {it}: agent connects"
        );
        // The cloud re-sends what it got no answer for: same rID, same frame.
        for rid in &unanswered {
            assert!(cloud.send_text(&sent[rid].1).await);
            resends += 1;
        }
        // New payments, sometimes a second rID for a bill already paid.
        for k in 0..1 + rng.below(3) as usize {
            let rid = format!("crash-{it:02}-{k}");
            let b = next_bill;
            next_bill += 1;
            let frame = pay_frame(&rid, b);
            assert!(cloud.send_text(&frame).await);
            sent.insert(rid.clone(), (b, frame));
            unanswered.insert(rid);
        }
        if next_bill > 1 && rng.below(3) == 0 {
            let b = rng.below(next_bill as u64) as usize;
            let rid = format!("crash-{it:02}-again-{b}");
            let frame = pay_frame(&rid, b);
            assert!(cloud.send_text(&frame).await);
            sent.insert(rid.clone(), (b, frame));
            unanswered.insert(rid);
            repeat_bill_rids += 1;
        }
        // Kill -9 at a random point: before, during or after journaling / answering.
        tokio::time::sleep(Duration::from_millis(rng.below(150))).await;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGKILL) };
        let st = tokio::time::timeout(T, child.wait())
            .await
            .expect("child exits")
            .unwrap();
        assert!(!st.success());
        kills += 1;
        assert!(
            cloud.wait_disconnected(T).await,
            "iteration {it}: link drops"
        );
        let got = answered(&cloud);
        unanswered.retain(|r| !got.contains(r));
        let j = Connection::open(&journal).unwrap();
        for rid in &unanswered {
            let n: i64 = j
                .query_row(
                    "SELECT count(*) FROM commands WHERE rid = ?1",
                    params![rid],
                    |r| r.get(0),
                )
                .unwrap();
            if n == 1 {
                journaled_unanswered_at_kill += 1;
            } else {
                lost_before_journal_at_kill += 1;
            }
        }
        // Invariant at every step: no bill paid twice in the POS.
        let m = Connection::open(&mirror).unwrap();
        let worst: i64 = m
            .query_row(
                "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM pos_payments GROUP BY bill_id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(worst <= 1, "iteration {it}: a bill was paid {worst} times");
    }

    // Final run: no kill; the cloud re-sends what is still unanswered and waits for answers.
    let mut child = spawn_agent(&config, &cloud, &mirror);
    assert!(cloud.wait_connected(T).await.is_some());
    let final_resends = unanswered.len();
    for rid in &unanswered {
        assert!(cloud.send_text(&sent[rid].1).await);
        resends += 1;
    }
    for rid in unanswered.clone() {
        assert!(
            cloud.callback_for(&rid, T).await.is_some(),
            "{rid} is answered after restart"
        );
    }
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGTERM) };
    let _ = tokio::time::timeout(T, child.wait()).await;
    drop(pos);

    // ---- Verification from the journal file and the POS's ledger.
    let j = Connection::open(&journal).unwrap();
    let m = Connection::open(&mirror).unwrap();
    let callbacks = cloud.all_callbacks();
    for (rid, (b, _)) in &sent {
        let n: i64 = j
            .query_row(
                "SELECT count(*) FROM commands WHERE rid = ?1",
                params![rid],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{rid} journaled exactly once");
        let answers: Vec<Value> = callbacks
            .iter()
            .filter(|c| c.rid.as_deref() == Some(rid.as_str()))
            .map(|c| {
                assert!(c.signature_ok);
                serde_json::from_slice(&c.body).unwrap()
            })
            .collect();
        assert!(!answers.is_empty(), "{rid} answered");
        for a in &answers {
            assert_eq!(a["state"], "SUCCESS", "{rid}: {a}");
            assert_eq!(a["billId"], bill(*b).as_str(), "{rid}: {a}");
        }
    }
    let paid_bills: BTreeSet<usize> = sent.values().map(|(b, _)| *b).collect();
    for b in &paid_bills {
        let ledger: i64 = m
            .query_row(
                "SELECT count(*) FROM pos_payments WHERE bill_id = ?1",
                params![bill(*b)],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ledger, 1, "{} applied exactly once", bill(*b));
        let applied: i64 = j
            .query_row(
                "SELECT count(*) FROM commands WHERE bill_id = ?1 AND status = 'applied'",
                params![bill(*b)],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(applied, 1, "{} has one applied payment", bill(*b));
    }
    let (pending, review): (i64, i64) = j
        .query_row(
            "SELECT sum(status IN ('pending','claimed')), sum(status = 'review') FROM commands",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(pending, 0, "nothing left for the POS");
    assert_eq!(
        review as usize, repeat_bill_rids,
        "each repeat payment kept for review"
    );

    // The reconciliation listing names every payment and reports nothing pending (exit 0).
    let mut listing_cmd = std::process::Command::new(env!("CARGO_BIN_EXE_expirenza-agent"));
    listing_cmd
        .args(["journal", "--config"])
        .arg(&config)
        .env("EXPIRENZA_SECRET_KEY", SECRET)
        .env("EXPIRENZA_MIRROR", &mirror);
    let out = binary::run_once(listing_cmd, b"", Duration::from_secs(30));
    let listing = out.stdout.as_str();
    assert_eq!(out.code, Some(0), "{listing}\n{}", out.stderr);
    for rid in sent.keys() {
        assert!(listing.contains(rid.as_str()), "{rid} listed");
    }
    assert!(
        listing.contains(&format!("applied {}", paid_bills.len())),
        "{listing}"
    );

    println!(
        "journal_crash: seed {seed}: {iterations} iterations + final run, {} payments ({} bills, {} repeat-bill rIDs), \
         {kills} SIGKILLs, {resends} same-rID re-sends ({final_resends} in the final run), \
         at kill time {journaled_unanswered_at_kill} journaled-but-unanswered and {lost_before_journal_at_kill} not-yet-journaled, \
         {} callbacks, 0 double applications, {:.1} s",
        sent.len(),
        paid_bills.len(),
        repeat_bill_rids,
        callbacks.len(),
        started.elapsed().as_secs_f64()
    );
}
