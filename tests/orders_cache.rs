//! ORDERS_CACHE webhook end to end: the real agent, a demo mirror file, and the fake cloud.
//!
//! The tests change the mirror between pushes through their own read-write connection, as the
//! POS would, and read the pushes the fake cloud recorded (`/callback/webhook`).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;
use testkit::harness::Harness;
use testkit::{Callback, FakeCloud, Reply};

const WAIT: Duration = Duration::from_secs(10);

/// With closed orders inline (`[compat] closed_orders = "inline"`), so one push shows all; the
/// default, a separate webhook, is `closed_orders_go_in_their_own_webhook_by_default`.
async fn start(interval_secs: u64, tweak: impl FnOnce(&mut expirenza_agent::Config)) -> Harness {
    Harness::start_with(true, |c| {
        c.cache.enabled = true;
        c.cache.interval_secs = interval_secs;
        c.compat.closed_orders = expirenza_agent::config::ClosedOrdersShape::Inline;
        tweak(c);
    })
    .await
}

/// The next webhook post (other callbacks are skipped), within `timeout`.
async fn next_webhook(cloud: &FakeCloud, timeout: Duration) -> Option<Callback> {
    let end = Instant::now() + timeout;
    loop {
        let left = end.checked_duration_since(Instant::now())?;
        let cb = cloud.next_callback(left).await?;
        if cb.path == "/callback/webhook" {
            assert!(
                cb.signature_ok && cb.resto_id_ok && cb.content_type_ok,
                "{cb:?}"
            );
            assert_eq!(cb.rid, None);
            return Some(cb);
        }
    }
}

struct Push {
    v: Value,
    answered: u16,
}

impl Push {
    fn ids(&self) -> Vec<String> {
        self.v["actualOrders"]
            .as_array()
            .expect("actualOrders")
            .iter()
            .map(|o| o["billId"].as_str().unwrap().to_string())
            .collect()
    }
    /// Orders sent with full details (the getBill shape carries `guests`).
    fn full(&self) -> BTreeSet<String> {
        self.v["actualOrders"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o.get("guests").is_some())
            .map(|o| o["billId"].as_str().unwrap().to_string())
            .collect()
    }
    fn closed(&self) -> Vec<(String, String)> {
        self.v["closedOrders"]
            .as_array()
            .expect("closedOrders")
            .iter()
            .map(|c| {
                (
                    c["billId"].as_str().unwrap().to_string(),
                    c["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

async fn push(cloud: &FakeCloud) -> Push {
    let cb = next_webhook(cloud, WAIT).await.expect("a webhook push");
    let v: Value = serde_json::from_slice(&cb.body).expect("webhook body is JSON");
    assert_eq!(v["webhookType"], "ORDERS_CACHE");
    assert!(v["eventTime"].as_str().unwrap().ends_with('Z'));
    Push {
        v,
        answered: cb.answered,
    }
}

fn rw(mirror: &Path) -> Connection {
    let c = Connection::open(mirror).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn open_ids(c: &Connection) -> Vec<String> {
    let mut st = c
        .prepare("SELECT bill_id FROM orders WHERE state IN ('NEW','BILL') ORDER BY created, order_number")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn bump_position(c: &Connection, bill: &str) {
    let n = c
        .execute(
            "UPDATE order_positions SET count_milli = count_milli + 1000, sum_kop = sum_kop * 2 \
             WHERE rowid = (SELECT min(rowid) FROM order_positions WHERE bill_id = ?1)",
            [bill],
        )
        .unwrap();
    assert_eq!(n, 1);
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// `ORDERS_CACHE` in a versionInfo answer: (implemented, available).
async fn version_flags(h: &Harness, rid: &str) -> (bool, bool) {
    let cb = h.call("versionInfo", rid, "").await.expect("versionInfo");
    let v: Value = serde_json::from_slice(&cb.body).unwrap();
    let f = v["implementedFeatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "ORDERS_CACHE")
        .expect("ORDERS_CACHE listed")
        .clone();
    (
        f["implemented"].as_bool().unwrap(),
        f["available"].as_bool().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_push_is_full_later_pushes_carry_only_changes() {
    let h = start(1, |_| {}).await;
    let db = rw(&h.mirror);
    let ids = open_ids(&db);
    assert!(ids.len() >= 3);

    let first = push(&h.cloud).await;
    assert_eq!(first.ids(), ids, "every open order, oldest first");
    assert_eq!(first.full(), ids.iter().cloned().collect(), "all in full");
    assert!(first.closed().is_empty());
    // A full entry is the getBill order shape.
    let o = &first.v["actualOrders"][0];
    assert!(o["guests"][0]["dishes"].as_array().is_some(), "{o}");

    // Nothing changed since the acknowledged push: every order listed, none in full.
    let second = push(&h.cloud).await;
    assert_eq!(second.ids(), ids);
    assert!(second.full().is_empty(), "{:?}", second.full());
    let s = &second.v["actualOrders"][1];
    assert_eq!(s["billId"], ids[1].as_str());
    assert!(s["orderNumber"].is_i64() && s["totalSum"].is_number() && s["state"].is_string());

    // One position of one order changes: that order alone comes in full.
    bump_position(&db, &ids[1]);
    let mut changed = push(&h.cloud).await;
    if changed.full().is_empty() {
        // That tick had read the mirror before the update; the next one sees it.
        changed = push(&h.cloud).await;
    }
    assert_eq!(changed.full(), set(&[&ids[1]]));
    assert_eq!(changed.ids(), ids);
    let entry = changed.v["actualOrders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["billId"] == ids[1].as_str())
        .unwrap()
        .clone();
    let qty = &entry["guests"][0]["dishes"][0]["count"];
    assert!(
        qty.as_f64().unwrap() >= 2.0,
        "the new quantity is sent: {entry}"
    );

    assert_eq!(version_flags(&h, "vi-1").await, (true, true));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_order_is_reported() {
    let h = start(1, |_| {}).await;
    let db = rw(&h.mirror);
    let ids = open_ids(&db);
    push(&h.cloud).await;
    db.execute(
        "UPDATE orders SET state = 'PAYED' WHERE bill_id = ?1",
        [&ids[0]],
    )
    .unwrap();
    let mut p = push(&h.cloud).await;
    if p.closed().is_empty() {
        p = push(&h.cloud).await; // that tick read the mirror before the update
    }
    assert_eq!(p.closed(), vec![(ids[0].clone(), "PAYED".to_string())]);
    assert_eq!(p.ids(), ids[1..].to_vec());
    // Reported once: the next push no longer lists it.
    let p = push(&h.cloud).await;
    assert!(p.closed().is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_orders_go_in_their_own_webhook_by_default() {
    let h = Harness::start_with(true, |c| {
        c.cache.enabled = true;
        c.cache.interval_secs = 1;
    })
    .await;
    let db = rw(&h.mirror);
    let ids = open_ids(&db);
    let first = push(&h.cloud).await;
    assert!(first.v.get("closedOrders").is_none(), "{}", first.v);
    db.execute(
        "UPDATE orders SET state = 'PAYED' WHERE bill_id = ?1",
        [&ids[0]],
    )
    .unwrap();
    // Webhooks in order: ORDERS_CACHE pushes until one no longer lists the bill, and right
    // after it the CLOSED_ORDERS webhook naming it.
    let mut last_cache: Option<Value> = None;
    let closed = loop {
        let cb = next_webhook(&h.cloud, WAIT).await.expect("a webhook");
        let v: Value = serde_json::from_slice(&cb.body).unwrap();
        assert!(v.get("actualOrders").is_some() != (v["webhookType"] == "CLOSED_ORDERS"));
        if v["webhookType"] == "CLOSED_ORDERS" {
            break v;
        }
        assert_eq!(v["webhookType"], "ORDERS_CACHE");
        assert!(v.get("closedOrders").is_none(), "{v}");
        last_cache = Some(v);
    };
    assert_eq!(
        closed["closedOrders"],
        serde_json::json!([{"billId": ids[0], "state": "PAYED"}])
    );
    assert!(closed["eventTime"].as_str().unwrap().ends_with('Z'));
    let before = last_cache.expect("an ORDERS_CACHE push came first");
    assert_eq!(before["eventTime"], closed["eventTime"], "the same tick");
    assert!(!before.to_string().contains(&ids[0]), "{before}");
    // Reported once: the next two webhooks are plain ORDERS_CACHE pushes.
    for _ in 0..2 {
        let p = push(&h.cloud).await;
        assert!(p.v.get("closedOrders").is_none());
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_push_is_followed_by_one_with_everything_missed() {
    // A long first retry delay: a 5xx fails the whole push at once (no retry fits before the
    // tick's deadline), so one scripted 500 is one failed push.
    // 2 s between pushes leaves the test time to script the failure and change the mirror.
    let h = start(2, |c| c.callback.retry_initial_ms = 5_000).await;
    let db = rw(&h.mirror);
    let ids = open_ids(&db);
    let first = push(&h.cloud).await;
    assert_eq!(first.answered, 200);

    // Between this push and the next: one order changes, one closes, and the push fails.
    h.cloud.push_responses(&[Reply::Status(500)]);
    bump_position(&db, &ids[1]);
    db.execute(
        "UPDATE orders SET state = 'CLOSED' WHERE bill_id = ?1",
        [&ids[2]],
    )
    .unwrap();
    let failed = push(&h.cloud).await;
    assert_eq!(failed.answered, 500);
    assert_eq!(failed.full(), set(&[&ids[1]]));
    assert_eq!(
        failed.closed(),
        vec![(ids[2].clone(), "CLOSED".to_string())]
    );
    // Another change while the cache is behind.
    bump_position(&db, &ids[0]);

    let mut ok = push(&h.cloud).await;
    assert_eq!(ok.answered, 200);
    // The missed change and the missed close ride on the next successful push.
    assert!(ok.full().contains(&ids[1]), "{:?}", ok.full());
    assert_eq!(ok.closed(), vec![(ids[2].clone(), "CLOSED".to_string())]);
    if !ok.full().contains(&ids[0]) {
        ok = push(&h.cloud).await; // that tick read the mirror before the second change
        assert_eq!(ok.full(), set(&[&ids[0]]));
    } else {
        assert_eq!(ok.full(), set(&[&ids[0], &ids[1]]));
    }
    // Acknowledged now: nothing repeated.
    let calm = push(&h.cloud).await;
    assert!(calm.full().is_empty() && calm.closed().is_empty());
    h.stop().await;
}

/// Wait until `ctx.cache_ok` equals `want`. The fake cloud records a push when it arrives,
/// before the agent has read the answer and stored the outcome, and no event marks that
/// moment: poll the flag, with a deadline.
async fn wait_cache_ok(h: &Harness, want: bool) {
    let end = Instant::now() + WAIT;
    while h.running().ctx.cache_ok.load(Ordering::Relaxed) != want {
        assert!(Instant::now() < end, "cache_ok never became {want}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_pushes_make_the_feature_unavailable() {
    let h = start(1, |_| {}).await;
    assert_eq!(push(&h.cloud).await.answered, 200);
    wait_cache_ok(&h, true).await;
    // One push is refused with 4xx (final, not retried): the feature is unavailable...
    h.cloud.push_responses(&[Reply::Status(400)]);
    assert_eq!(push(&h.cloud).await.answered, 400);
    wait_cache_ok(&h, false).await;
    // ...until the next push succeeds.
    assert_eq!(push(&h.cloud).await.answered, 200);
    wait_cache_ok(&h, true).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_push_does_not_delay_get_bill() {
    // One operation slot only: the push must not need it.
    let h = start(3, |c| c.limits.max_in_flight = 1).await;
    push(&h.cloud).await;
    // The next push hangs (its attempt would time out only after 10 s) until released.
    h.cloud.push_responses(&[Reply::Hang]);
    let slow = next_webhook(&h.cloud, WAIT).await.expect("the held push");
    assert_eq!(slow.answered, 0);
    // While it is held, ask for a bill: it is answered, and the push is still in its first
    // attempt (had getBill waited for the push, the push would have timed out and retried).
    let bill = h
        .call("getBill", "gb-slow", "\"tableNumber\":\"12\"")
        .await
        .expect("getBill answered while the push is held");
    assert!(
        bill.body_str().contains("\"state\":\"SUCCESS\""),
        "{}",
        bill.body_str()
    );
    let webhooks = |cloud: &FakeCloud| {
        cloud
            .all_callbacks()
            .iter()
            .filter(|c| c.path == "/callback/webhook")
            .count()
    };
    let before = webhooks(&h.cloud);
    assert_eq!(
        h.cloud
            .all_callbacks()
            .iter()
            .rev()
            .find(|c| c.path == "/callback/webhook")
            .map(|c| c.answered),
        Some(0),
        "the last webhook attempt is the held one: no retry yet"
    );
    // Released (reset), the push is retried and delivered.
    h.cloud.release_hangs();
    let retried = next_webhook(&h.cloud, WAIT)
        .await
        .expect("the retried push");
    assert_eq!(retried.answered, 200);
    assert_eq!(webhooks(&h.cloud), before + 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_means_no_pushes() {
    let h = Harness::start_with(true, |c| {
        c.cache.enabled = false;
        c.cache.interval_secs = 1;
    })
    .await;
    // The agent is up and delivers callbacks...
    assert_eq!(version_flags(&h, "vi-off").await, (true, false));
    // ...but sends no webhook. Absence can only be shown by a bounded wait: three intervals
    // of 1 s, in which an enabled pusher would have posted three times.
    let extra = h.cloud.next_callback(Duration::from_secs(3)).await;
    assert!(
        extra.is_none(),
        "unexpected callback {:?}",
        extra.map(|c| c.path)
    );
    assert!(h
        .cloud
        .all_callbacks()
        .iter()
        .all(|c| c.path != "/callback/webhook"));
    h.stop().await;
}
