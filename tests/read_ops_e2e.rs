//! The read operations end to end: the real agent against the fake cloud (real WebSocket and
//! HTTP on loopback, every callback signature verified). One success and one failure per
//! operation; the body shapes in detail are in read_ops.rs.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};
use testkit::harness::Harness;
use testkit::Callback;

fn body(cb: &Callback, path: &str) -> Value {
    assert_eq!(cb.path, path);
    assert!(cb.signature_ok, "signature must verify: {}", cb.body_str());
    assert!(cb.resto_id_ok && cb.content_type_ok);
    serde_json::from_slice(&cb.body)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", cb.body_str()))
}

/// The agent reads the mirror read-only; the test plays the POS and changes it underneath.
fn pos_exec(h: &Harness, sql: &str) {
    rusqlite::Connection::open(&h.mirror)
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

fn assert_fail_naming(v: &Value, needle: &str) {
    assert_eq!(v["state"], "FAIL", "{v}");
    assert_eq!(v["substate"], "POS_UNAVAILABLE", "{v}");
    assert!(v["errorMessage"].as_str().unwrap().contains(needle), "{v}");
    // A FAIL must not look like an empty restaurant: no list at all.
    for list in ["tables", "hallPlans", "users", "categories", "items"] {
        assert!(v.get(list).is_none(), "a FAIL carries no {list}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_info_end_to_end() {
    let h = Harness::start().await;
    let v = body(
        &h.call("usersInfo", "r-u1", "").await.expect("callback"),
        "/callback/usersInfo",
    );
    assert_eq!(v["rID"], "r-u1");
    let users = v["users"].as_array().unwrap();
    assert_eq!(users.len(), 4);
    assert!(users.contains(
        &json!({"id":"u-021","name":"Ігор Бондар","cellPhone":"+380931112233","roles":"Кур'єр"})
    ));
    pos_exec(&h, "DROP TABLE staff;");
    let v = body(
        &h.call("usersInfo", "r-u2", "").await.expect("callback"),
        "/callback/usersInfo",
    );
    assert_fail_naming(&v, "staff");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_info_end_to_end() {
    let h = Harness::start().await;
    let v = body(
        &h.call("categoriesInfo", "r-c1", "")
            .await
            .expect("callback"),
        "/callback/categoriesInfo",
    );
    assert_eq!(
        v["categories"],
        json!([{"id":"cat-bar","name":"Бар","type":"drink"},{"id":"cat-kitchen","name":"Кухня","type":"dish"}])
    );
    pos_exec(&h, "DROP TABLE categories;");
    let v = body(
        &h.call("categoriesInfo", "r-c2", "")
            .await
            .expect("callback"),
        "/callback/categoriesInfo",
    );
    assert_fail_naming(&v, "categories");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_list_end_to_end() {
    let h = Harness::start().await;
    let v = body(
        &h.call("stopList", "r-s1", "").await.expect("callback"),
        "/callback/stopList",
    );
    assert_eq!(
        v["items"],
        json!([{"id":"m-330","quantity":3,"productId":"m-330","balance":3},
               {"id":"m-512","quantity":0,"productId":"m-512","balance":0},
               {"id":"mod-14","quantity":0,"productId":"mod-14","balance":0}])
    );
    let ver = body(
        &h.call("versionInfo", "r-v1", "").await.expect("callback"),
        "/callback/versionInfo",
    );
    assert!(ver["implementedFeatures"]
        .as_array()
        .unwrap()
        .contains(&json!({"feature":"STOP_LIST","available":true,"implemented":true})));
    pos_exec(&h, "DROP TABLE stop_list;");
    let v = body(
        &h.call("stopList", "r-s2", "").await.expect("callback"),
        "/callback/stopList",
    );
    assert_fail_naming(&v, "stop_list");
    let ver = body(
        &h.call("versionInfo", "r-v2", "").await.expect("callback"),
        "/callback/versionInfo",
    );
    assert!(ver["implementedFeatures"]
        .as_array()
        .unwrap()
        .contains(&json!({"feature":"STOP_LIST","available":false,"implemented":true})));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_products_restrictions_end_to_end() {
    let h = Harness::start().await;
    let cb = h
        .call(
            "checkProductsRestrictions",
            "r-p1",
            r#""items":[{"id":"m-205","quantity":2,"modifier":[{"id":"mod-12","groupId":"gm-sauce","quantity":1}]},{"id":"m-512","quantity":1}]"#,
        )
        .await
        .expect("callback");
    let v = body(&cb, "/callback/checkProductsRestrictions");
    assert_eq!(
        v,
        json!({"rID":"r-p1","result":{"itemResults":[
            {"id":"m-205","name":"Вареники з картоплею","available":true,"exceedQuantity":0},
            {"id":"mod-12","name":"Сметана","available":true,"exceedQuantity":0},
            {"id":"m-512","name":"Котлета по-київськи","available":false,"exceedQuantity":1}],
            "checkResult":"NOT_AVAILABLE"}})
    );
    let too_many = format!("\"items\":[{}]", vec![r#"{"id":"m-101"}"#; 51].join(","));
    let v = body(
        &h.call("checkProductsRestrictions", "r-p2", &too_many)
            .await
            .expect("callback"),
        "/callback/checkProductsRestrictions",
    );
    assert_eq!(v["state"], "FAIL");
    assert_eq!(v["substate"], "BAD_REQUEST");
    assert_eq!(v["result"]["checkResult"], "NOT_AVAILABLE");
    // The connection and other work go on.
    let v = body(
        &h.call("stopList", "r-p3", "").await.expect("callback"),
        "/callback/stopList",
    );
    assert_eq!(v["rID"], "r-p3");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menu_info_end_to_end() {
    let h = Harness::start().await;
    let cb = h.call("menuInfo", "r-m1", "").await.expect("callback");
    let v = body(&cb, "/callback/menuInfo");
    assert_eq!(v["dishes"].as_array().unwrap().len(), 13);
    assert_eq!(v["groups"].as_array().unwrap().len(), 6);
    assert!(cb.body_str().contains(
        r#""id":"m-205","name":"Вареники з картоплею","description":"Домашні, 8 шт.","price":95.00"#
    ));
    assert_eq!(
        v["hostTerminalsGroup"],
        json!({"id":"tg-1","name":"Основна каса"})
    );
    pos_exec(&h, "DROP TABLE group_modifier_children;");
    let v = body(
        &h.call("menuInfo", "r-m2", "").await.expect("callback"),
        "/callback/menuInfo",
    );
    assert_fail_naming(&v, "group_modifier_children");
    h.stop().await;
}

/// Past max_menu_bytes the menu is refused: never a truncated menu, but one FAIL
/// `ANSWER_TOO_LARGE` (without it the cloud would wait out its 80 s), the
/// request counts as failed, and the agent goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menu_info_over_the_cap_is_refused_end_to_end() {
    let h = Harness::start_with(true, |c| {
        c.limits.max_body_bytes = 2048;
        c.limits.max_menu_bytes = 2048;
        c.limits.max_in_flight = 1;
    })
    .await;
    let v = body(
        &h.call("menuInfo", "r-big", "")
            .await
            .expect("a FAIL callback"),
        "/callback/menuInfo",
    );
    assert_eq!(
        (v["state"].as_str(), v["substate"].as_str()),
        (Some("FAIL"), Some("ANSWER_TOO_LARGE"))
    );
    assert!(v.get("dishes").is_none(), "never a truncated menu: {v}");
    let v = body(
        &h.call("stopList", "r-after", "").await.expect("callback"),
        "/callback/stopList",
    );
    assert_eq!(v["rID"], "r-after");
    assert_eq!(
        h.cloud
            .all_callbacks()
            .iter()
            .filter(|c| c.rid.as_deref() == Some("r-big"))
            .count(),
        1
    );
    // An operation is counted once its delivery has finished, which can be after the cloud
    // has the callback: stopping waits for every delivery, then the count is final.
    let counters = h.running().counters.clone();
    h.stop().await;
    assert_eq!(counters.failed.load(Ordering::Relaxed), 1);
    assert_eq!(counters.answered.load(Ordering::Relaxed), 1, "stopList");
}

/// Past max_body_bytes (but within max_menu_bytes) the menu is streamed: one
/// callback whose bytes carry the signature of the first pass, with Content-Length, the whole
/// menu, and the agent goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn menu_info_over_max_body_bytes_is_streamed_end_to_end() {
    let h = Harness::start_with(true, |c| {
        c.limits.max_body_bytes = 2048;
        c.limits.max_in_flight = 1;
    })
    .await;
    let cb = h
        .call("menuInfo", "r-stream", "")
        .await
        .expect("a callback");
    assert!(cb.signature_ok, "the streamed bytes are the signed bytes");
    assert!(cb.body.len() > 2048, "{} bytes", cb.body.len());
    let v = body(&cb, "/callback/menuInfo");
    assert_eq!(v["rID"], "r-stream");
    assert!(!v["dishes"].as_array().expect("dishes").is_empty(), "{v}");
    let v = body(
        &h.call("stopList", "r-after", "").await.expect("callback"),
        "/callback/stopList",
    );
    assert_eq!(v["rID"], "r-after");
    h.stop().await;
}
