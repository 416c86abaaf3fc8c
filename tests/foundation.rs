//! End-to-end tests of the foundation: the real agent against the in-process fake cloud
//! (a real WebSocket server and a real HTTP server on loopback that verify every signature).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::harness::Harness;
use testkit::{Callback, Reply};

const T: Duration = Duration::from_secs(10);

fn json(cb: &Callback) -> Value {
    assert!(cb.signature_ok, "signature must verify: {}", cb.body_str());
    assert!(cb.resto_id_ok, "restoId header must match");
    assert!(cb.content_type_ok, "Content-Type must be application/json");
    serde_json::from_slice(&cb.body)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", cb.body_str()))
}

/// Poll `cond` until it holds or `limit` passes. Used only where no event exists to wait on
/// (a counter inside the agent).
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_with_basic_auth_and_cookie() {
    let h = Harness::start().await;
    let hs = h
        .cloud
        .handshakes()
        .into_iter()
        .last()
        .expect("a handshake");
    assert!(hs.auth_ok, "Basic auth must be base64(RESTO_ID:SECRET_KEY)");
    assert!(hs.cookie_ok, "cookie must carry system=<pos_system>");
    assert_eq!(
        hs.header("authorization"),
        Some("Basic NGY5YzJhMTAtcmVzdG8tMDAwMTpteS1zZWNyZXQta2V5LTEyMw==")
    );
    assert_eq!(hs.header("cookie"), Some("system=expirenza-agent"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_bill_by_table_success_shape() {
    let h = Harness::start().await;
    let cb = h
        .call(
            "getBill",
            "2021-03-13 00:32:04.942046#UP57RxE",
            r#""tableNumber":"12""#,
        )
        .await
        .expect("callback");
    assert_eq!(cb.path, "/callback/getBill");
    let v = json(&cb);
    assert_eq!(v["rID"], "2021-03-13 00:32:04.942046#UP57RxE");
    assert_eq!(v["state"], "SUCCESS");
    assert_eq!(v["tableNumber"], "12");
    let orders = v["orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1);
    let o = &orders[0];
    assert_eq!(o["billId"], "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11");
    assert_eq!(o["orderNumber"], 1842);
    assert_eq!(o["created"], "2024.05.14 18:21:07");
    assert_eq!(o["tableId"], "table-12");
    assert_eq!(o["waiter"], "Оксана Мельник");
    assert_eq!(o["waiterId"], "u-017");
    assert_eq!(o["splitAvailable"], true);
    assert_eq!(o["isBanquetOrder"], false);
    assert_eq!(o["isDelivery"], false);
    // Money goes out as decimals with two places: check the raw text, not a float.
    let body = cb.body_str();
    assert!(body.contains(r#""rawSum":410.00"#), "{body}");
    assert!(body.contains(r#""totalSum":389.50"#), "{body}");
    assert!(body.contains(r#""sum":20.50"#), "{body}");
    assert_eq!(
        o["discounts"]["list"][0]["name"],
        "Знижка 5% постійним гостям"
    );
    let dishes = o["guests"][0]["dishes"].as_array().unwrap();
    assert_eq!(o["guests"][0]["name"], "Гість 1");
    assert_eq!(dishes.len(), 4);
    assert_eq!(dishes[0]["linkedTo"], Value::Null);
    assert_eq!(dishes[0]["name"], "Борщ український з пампушками");
    assert_eq!(dishes[2]["type"], "modifier");
    assert_eq!(dishes[2]["linkedTo"], "p-2");
    assert_eq!(dishes[1]["count"], 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_bill_by_bill_id_and_failures() {
    let h = Harness::start().await;
    // By billId only: the table number is filled from the bill's table.
    let v = json(
        &h.call("getBill", "b1", r#""billId":"b-3002""#)
            .await
            .unwrap(),
    );
    assert_eq!(v["state"], "SUCCESS");
    assert_eq!(v["tableNumber"], "3");
    assert_eq!(v["orders"][0]["orderNumber"], 2002);
    // Two open bills on one table, oldest first; fractional count 0.35 kg.
    let cb = h
        .call("getBill", "b2", r#""tableNumber":"3""#)
        .await
        .unwrap();
    let v = json(&cb);
    assert_eq!(v["orders"].as_array().unwrap().len(), 2);
    assert!(
        cb.body_str().contains(r#""count":0.35"#),
        "{}",
        cb.body_str()
    );
    // tableNumber as an integer (the Go SDK's type) is accepted.
    let v = json(
        &h.call("getBill", "b3", r#""tableNumber":12"#)
            .await
            .unwrap(),
    );
    assert_eq!(v["state"], "SUCCESS");
    // No such table.
    let v = json(
        &h.call("getBill", "f1", r#""tableNumber":"99""#)
            .await
            .unwrap(),
    );
    assert_eq!(
        (v["state"].as_str(), v["substate"].as_str()),
        (Some("FAIL"), Some("TABLE_NOT_FOUND"))
    );
    assert_eq!(v["tableNumber"], "99");
    // A table with no open bill (table 5 has only a paid one).
    let v = json(
        &h.call("getBill", "f2", r#""tableNumber":"5""#)
            .await
            .unwrap(),
    );
    assert_eq!(
        (v["state"].as_str(), v["substate"].as_str()),
        (Some("FAIL"), Some("ORDER_NOT_FOUND"))
    );
    // A paid bill by id, an unknown bill, and a bill on another table.
    for (rid, fields) in [
        ("f3", r#""billId":"b-closed-1""#),
        ("f4", r#""billId":"nope""#),
        ("f5", r#""billId":"b-3002","tableNumber":"12""#),
        ("f6", ""),
    ] {
        let v = json(&h.call("getBill", rid, fields).await.unwrap());
        assert_eq!(
            (v["state"].as_str(), v["substate"].as_str()),
            (Some("FAIL"), Some("ORDER_NOT_FOUND")),
            "{rid}"
        );
        assert!(v["errorMessage"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A table number that looks like SQL is just not a table.
    let v = json(
        &h.call("getBill", "f7", r#""tableNumber":"12; DROP TABLE orders""#)
            .await
            .unwrap(),
    );
    assert_eq!(v["substate"], "TABLE_NOT_FOUND");
    let v = json(
        &h.call("getBill", "f8", r#""tableNumber":"12""#)
            .await
            .unwrap(),
    );
    assert_eq!(v["state"], "SUCCESS", "the mirror is untouched");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_halls_checkwork_versioninfo() {
    let h = Harness::start().await;
    let v = json(&h.call("tablesInfo", "t1", "").await.unwrap());
    let tables = v["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 12);
    assert_eq!(
        tables[11],
        serde_json::json!({"id":"table-12","name":"Тераса, кут","number":12,"hallplanId":"hall-2","hallPlanId":"hall-2"})
    );

    // The odd casing of hallplansInfo, and a case-insensitive fallback.
    for (rid, op) in [("h1", "hallplansInfo"), ("h2", "hallPlansInfo")] {
        let cb = h.call(op, rid, "").await.unwrap();
        assert_eq!(cb.path, "/callback/hallplansInfo");
        let v = json(&cb);
        assert_eq!(
            v["hallPlans"],
            serde_json::json!([{"id":"hall-1","name":"Головна зала"},{"id":"hall-2","name":"Літня тераса"}])
        );
    }

    let v = json(&h.call("checkWork", "c1", "").await.unwrap());
    assert_eq!(v["readyToWork"], true);
    let dt = v["dateTime"].as_str().unwrap();
    assert_eq!(dt.len(), 19, "yyyy.MM.dd HH:mm:ss: {dt}");
    assert_eq!(&dt[4..5], ".");

    let v = json(&h.call("versionInfo", "v1", "").await.unwrap());
    assert_eq!(v["rID"], "v1");
    assert!(v["eventTime"].as_str().unwrap().ends_with('Z'));
    assert!(v["pluginVersion"].as_i64().unwrap() > 0);
    let feats = v["implementedFeatures"].as_array().unwrap();
    let bill_v2 = feats.iter().find(|f| f["feature"] == "BILL_V_2").unwrap();
    assert_eq!(
        (
            bill_v2["implemented"].as_bool(),
            bill_v2["available"].as_bool()
        ),
        (Some(true), Some(true))
    );
    let order = feats
        .iter()
        .find(|f| f["feature"] == "ORDER_ON_TABLE")
        .unwrap();
    assert_eq!(
        (order["implemented"].as_bool(), order["available"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(order["info"]["orderTypeCode"], 1);
    let cache = feats
        .iter()
        .find(|f| f["feature"] == "ORDERS_CACHE")
        .unwrap();
    assert_eq!(
        cache["available"], false,
        "caching is disabled in this config"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_mirror_fails_clearly_and_recovers() {
    let h = Harness::start().await;
    let moved = h.dir.path().join("mirror.away");
    std::fs::rename(&h.mirror, &moved).unwrap();
    let v = json(
        &h.call("getBill", "m1", r#""tableNumber":"12""#)
            .await
            .unwrap(),
    );
    assert_eq!(v["state"], "FAIL");
    assert_eq!(v["substate"], "POS_UNAVAILABLE");
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{v}"
    );
    let v = json(&h.call("checkWork", "m2", "").await.unwrap());
    assert_eq!(v["readyToWork"], false);
    let v = json(&h.call("tablesInfo", "m3", "").await.unwrap());
    assert_eq!(v["state"], "FAIL");
    // The mirror comes back: answers recover without a restart.
    std::fs::rename(&moved, &h.mirror).unwrap();
    let v = json(
        &h.call("getBill", "m4", r#""tableNumber":"12""#)
            .await
            .unwrap(),
    );
    assert_eq!(v["state"], "SUCCESS");
    assert_eq!(h.cloud.connection_count(), 1, "the link never dropped");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_frames_leave_the_link_up() {
    let h = Harness::start().await;
    for bad in [
        "hello",
        "Resto greeting",
        "{",
        "[1,2,3]",
        r#"{"operation":"getBill"}"#,
        r#"{"rID":"","operation":"getBill"}"#,
        r#"{"rID":"x1"}"#,
        r#"{"rID":"x2","operation":"launchRockets"}"#,
        r#"{"rID":5,"operation":"getBill"}"#,
    ] {
        assert!(h.cloud.send_text(bad).await, "sent {bad}");
    }
    assert!(h.cloud.send_binary(&[0, 1, 2, 255]).await);
    let counters = h.running().counters.clone();
    assert!(eventually(T, || counters.rejected_frames.load(Ordering::Relaxed) >= 8).await);
    assert_eq!(counters.unknown_ops.load(Ordering::Relaxed), 1);
    // Still the same link, still answering.
    let v = json(
        &h.call("getBill", "after", r#""tableNumber":"12""#)
            .await
            .unwrap(),
    );
    assert_eq!(v["state"], "SUCCESS");
    assert_eq!(h.cloud.connection_count(), 1);
    // Frames with a readable rID got one FAIL each; the others (no rID) got nothing.
    assert!(eventually(T, || h.cloud.all_callbacks().len() >= 3).await);
    let mut got: Vec<(String, String, String)> = h
        .cloud
        .all_callbacks()
        .iter()
        .map(|c| {
            let v = json(c);
            (
                c.path.clone(),
                v["rID"].as_str().unwrap().to_string(),
                v["substate"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("/callback/error", "x1", "BAD_REQUEST"),
            ("/callback/getBill", "after", ""),
            ("/callback/launchRockets", "x2", "UNKNOWN_OPERATION"),
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    );
    assert_eq!(counters.unanswered.load(Ordering::Relaxed), 7);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_a_drop_respecting_the_backoff_floor() {
    let floor = Duration::from_millis(400);
    let h = Harness::start_with(true, |c| {
        c.link.backoff_floor_ms = 400;
        c.link.backoff_cap_ms = 800;
    })
    .await;
    h.cloud.set_reject_auth(Some(401));
    h.cloud.drop_connection().await;
    // Three rejected attempts, then let it in.
    assert!(
        h.cloud.wait_connect_attempts(4, T).await,
        "agent keeps retrying after a 401"
    );
    h.cloud.set_reject_auth(None);
    assert!(h.cloud.wait_connected(T).await.is_some());
    let attempts = h.cloud.connect_attempts();
    for w in attempts.windows(2).skip(1) {
        let gap = w[1] - w[0];
        assert!(
            gap >= floor - Duration::from_millis(20),
            "attempts {gap:?} apart, floor {floor:?}"
        );
    }
    let v = json(
        &h.call("getBill", "r1", r#""tableNumber":"12""#)
            .await
            .unwrap(),
    );
    assert_eq!(v["state"], "SUCCESS");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_5xx_is_retried_and_delivered_once() {
    let h = Harness::start().await;
    h.cloud
        .push_responses(&[Reply::Status(500), Reply::Status(503)]);
    assert!(
        h.cloud
            .send_text(r#"{"rID":"retry-1","operation":"getBill","tableNumber":"12"}"#)
            .await
    );
    let counters = h.running().counters.clone();
    // The job counts as answered only after a 2xx; then no further attempt can follow.
    assert!(eventually(T, || counters.answered.load(Ordering::Relaxed) == 1).await);
    let tries: Vec<_> = h
        .cloud
        .all_callbacks()
        .into_iter()
        .filter(|c| c.rid.as_deref() == Some("retry-1"))
        .collect();
    assert_eq!(
        tries.iter().map(|c| c.answered).collect::<Vec<_>>(),
        vec![500, 503, 200]
    );
    assert!(
        tries
            .iter()
            .all(|c| c.signature_ok && c.body == tries[0].body),
        "the same signed bytes every time"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_4xx_is_not_retried() {
    let h = Harness::start().await;
    h.cloud.push_responses(&[Reply::Status(400)]);
    assert!(
        h.cloud
            .send_text(r#"{"rID":"rej-1","operation":"getBill","tableNumber":"12"}"#)
            .await
    );
    let counters = h.running().counters.clone();
    // The job has finished (failed) once this counter moves, so no retry can follow.
    assert!(eventually(T, || counters.failed.load(Ordering::Relaxed) == 1).await);
    let tries = h
        .cloud
        .all_callbacks()
        .into_iter()
        .filter(|c| c.rid.as_deref() == Some("rej-1"))
        .count();
    assert_eq!(tries, 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_info_on_connect_when_configured() {
    let h = Harness::start_with(true, |c| c.compat.version_info_on_connect = true).await;
    let cb = h
        .cloud
        .next_callback(T)
        .await
        .expect("an unprompted versionInfo");
    assert_eq!(cb.path, "/callback/versionInfo");
    let v = json(&cb);
    assert!(v["rID"].as_str().unwrap().starts_with("agent-connect-"));
    h.stop().await;
}

/// The real binary: SIGTERM while a callback is in flight lets it finish, closes the socket
/// with a close frame, and exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_work_finish_and_exits_zero() {
    use testkit::harness::{make_mirror, TempDir, RESTO_ID, SECRET};
    use testkit::{FakeCloud, FakeCloudConfig};
    let dir = TempDir::new("sigterm");
    let mirror = dir.path().join("mirror.sqlite");
    make_mirror(&mirror, true);
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
            "resto_id = \"{RESTO_ID}\"\nstate_dir = \"{0}\"\nruntime_dir = \"{0}\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_expirenza-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .env("EXPIRENZA_SECRET_KEY", SECRET)
        .env("EXPIRENZA_WS_URL", cloud.ws_url())
        .env("EXPIRENZA_CALLBACK_URL", cloud.callback_url())
        .env("EXPIRENZA_MIRROR", &mirror)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(cloud.wait_connected(T).await.is_some());
    // The callback server holds the answer for 1.5 s; SIGTERM arrives while it is in flight.
    cloud.push_responses(&[Reply::Delay(Duration::from_millis(1500), 200)]);
    assert!(
        cloud
            .send_text(r#"{"rID":"term-1","operation":"getBill","tableNumber":"12"}"#)
            .await
    );
    let first = cloud.next_callback(T).await.expect("the callback arrives");
    assert_eq!(first.rid.as_deref(), Some("term-1"));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id().unwrap() as libc::pid_t, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within the grace")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(cloud.wait_disconnected(T).await);
    let mut err = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(
        err.contains("op=getBill rID=term-1 outcome=SUCCESS"),
        "the in-flight answer completed:\n{err}"
    );
    assert!(err.contains("link: closed for shutdown"), "{err}");
    assert_eq!(cloud.callback_attempts(), 1);
}
