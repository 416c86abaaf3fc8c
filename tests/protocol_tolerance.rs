//! Tolerant in (docs/protocol.md §2.2, §3, §5.2, §5.3, §5.10): each tolerance through the real
//! binary and the real socket, table-driven. For every case: the request as the cloud may send
//! it, the answer the agent POSTs, and what the journal holds (the frame as it came, the amounts
//! as read). The simulated POS applies the journal in this process, as a real POS would.

#[path = "support/binary.rs"]
mod binary;

use std::time::Duration;

use binary::{spawn_run, temp_dir};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use testkit::sim_pos;
use testkit::{FakeCloud, FakeCloudConfig};

const RESTO: &str = "resto-tolerance";
const SECRET: &str = "tolerance-secret";
const T: Duration = Duration::from_secs(20);

/// One payBill case: the frame's fields after `billId` (the bill is fresh and owes 90.00), the
/// expected answer, and the journal's `sum_kop`/`tips_kop`.
struct PayCase {
    name: &'static str,
    fields: String,
    state: &'static str,
    substate: Option<&'static str>,
    /// A piece of the answer's errorMessage (FAIL) that names the reason.
    reason: Option<&'static str>,
    sum_kop: Option<i64>,
    tips_kop: Option<i64>,
}

fn pay(
    name: &'static str,
    fields: &str,
    ok: bool,
    reason: Option<&'static str>,
    sum: Option<i64>,
    tips: Option<i64>,
) -> PayCase {
    PayCase {
        name,
        fields: fields.to_string(),
        state: if ok { "SUCCESS" } else { "FAIL" },
        substate: (!ok).then_some("BAD_REQUEST"),
        reason,
        sum_kop: sum,
        tips_kop: tips,
    }
}

fn pay_cases() -> Vec<PayCase> {
    let long_value = "Банк «Універсал» ".repeat(40); // > 256 bytes
    let many: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"key":"k{i}","value":"v{i}"}}"#))
        .collect();
    let escaped = "\\u0416\\n\\\"".repeat(700); // > 4 KiB of escapes
    vec![
        pay("integer sum", r#""sum":90"#, true, None, Some(9000), None),
        pay("sum 90.0", r#""sum":90.0"#, true, None, Some(9000), None),
        pay(
            "string sum",
            r#""sum":"90.00""#,
            true,
            None,
            Some(9000),
            None,
        ),
        pay(
            "float noise",
            r#""sum":89.9999999999999"#,
            true,
            None,
            Some(9000),
            None,
        ),
        pay("exponent", r#""sum":9.0E1"#, true, None, Some(9000), None),
        pay(
            "string tips",
            r#""sum":90,"tips":"19.24""#,
            true,
            None,
            Some(9000),
            Some(1924),
        ),
        pay(
            "null tips",
            r#""sum":90,"tips":null"#,
            true,
            None,
            Some(9000),
            None,
        ),
        pay(
            "unreadable tips are set aside",
            r#""sum":90,"tips":"n/a""#,
            true,
            None,
            Some(9000),
            None,
        ),
        pay(
            "negative tips are set aside",
            r#""sum":90,"tips":-1"#,
            true,
            None,
            Some(9000),
            None,
        ),
        pay(
            "absurd tips are set aside",
            r#""sum":90,"tips":1e300"#,
            true,
            None,
            Some(9000),
            None,
        ),
        pay(
            "fiscalData of any shape",
            &format!(
                r#""sum":90,"fiscalData":[{{"key":"ЕКВАЙЕР","value":null}},{{"key":"RRN","value":123456}},{{"key":"Банк","value":"{long_value}"}},{}],"prepay":"false""#,
                many.join(",")
            ),
            true,
            None,
            Some(9000),
            None,
        ),
        pay(
            "fiscalData not an array",
            r#""sum":90,"fiscalData":{"a":[1,{"b":null}]}"#,
            true,
            None,
            Some(9000),
            None,
        ),
        pay(
            "duplicate key: the last wins",
            r#""sum":1,"sum":"90""#,
            true,
            None,
            Some(9000),
            None,
        ),
        pay(
            "long escaped string in an unknown field",
            &format!(r#""comment":"{escaped}","sum":90"#),
            true,
            None,
            Some(9000),
            None,
        ),
        pay(
            "sum not a number",
            r#""sum":"abc""#,
            false,
            Some("not a number"),
            None,
            None,
        ),
        pay(
            "negative sum",
            r#""sum":-90"#,
            false,
            Some("negative"),
            None,
            None,
        ),
        pay(
            "absurd sum",
            r#""sum":1e300"#,
            false,
            Some("out of range"),
            None,
            None,
        ),
        pay(
            "sum beyond noise",
            r#""sum":89.995"#,
            false,
            Some("decimal places"),
            None,
            None,
        ),
        pay(
            "sum missing",
            r#""tips":1"#,
            false,
            Some("sum is missing"),
            None,
            None,
        ),
    ]
}

struct Journal(Connection);

impl Journal {
    /// `(status, request, sum_kop, tips_kop)` of the row for `rid`.
    fn row(&self, rid: &str) -> Option<(String, String, Option<i64>, Option<i64>)> {
        self.0
            .query_row(
                "SELECT status, request, sum_kop, tips_kop FROM commands WHERE rid = ?1",
                params![rid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .unwrap()
    }
}

fn body(cb: &testkit::Callback) -> Value {
    assert!(cb.signature_ok, "signature: {}", cb.body_str());
    serde_json::from_slice(&cb.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_tolerances_through_the_binary() {
    let dir = temp_dir("tolerance");
    let mirror = dir.join("mirror.sqlite");
    let cases = pay_cases();
    {
        let mut conn = expirenza_agent::mirror::create_schema(&mirror).unwrap();
        expirenza_agent::mirror::demo::fill(&mut conn).unwrap();
        // One fresh bill per payBill case, each owing 90.00.
        for i in 0..cases.len() {
            conn.execute(
                "INSERT INTO orders (bill_id, order_number, table_id, state, created, total_sum_kop, raw_sum_kop) \
                 VALUES (?1, ?2, 'table-3', 'BILL', '2024.05.14 12:00:00', 9000, 9000)",
                params![format!("tol-{i}"), 5000 + i as i64],
            )
            .unwrap();
        }
    }
    let cloud = FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO.into(),
        secret: SECRET.into(),
        pos_system: None,
    })
    .await
    .unwrap();
    let agent = spawn_run(
        &dir,
        RESTO,
        SECRET,
        &cloud.ws_url(),
        &cloud.callback_url(),
        &mirror,
        "",
    );
    cloud.wait_connected(T).await.expect("connect");
    let pos = sim_pos::spawn(
        &dir.join("journal.sqlite"),
        &mirror,
        Duration::from_millis(5),
    )
    .unwrap();
    let journal = Journal(Connection::open(dir.join("journal.sqlite")).unwrap());

    // payBill: every case, one fresh bill each.
    for (i, c) in cases.iter().enumerate() {
        let rid = format!("pay-{i}");
        let frame = format!(
            r#"{{"rID":"{rid}","operation":"payBill","billId":"tol-{i}",{}}}"#,
            c.fields
        );
        let cb = cloud
            .request(&frame, &rid, T)
            .await
            .unwrap_or_else(|| panic!("{}: no answer", c.name));
        let v = body(&cb);
        assert_eq!(v["state"], c.state, "{}: {v}", c.name);
        assert_eq!(v["billId"], format!("tol-{i}"), "{}: {v}", c.name);
        if let Some(s) = c.substate {
            assert_eq!(v["substate"], s, "{}: {v}", c.name);
        }
        if let Some(r) = c.reason {
            let msg = v["errorMessage"].as_str().unwrap_or_default();
            assert!(msg.contains(r), "{}: {msg:?} should name {r:?}", c.name);
        }
        let (status, request, sum, tips) = journal.row(&rid).expect("journaled");
        assert_eq!(
            request, frame,
            "{}: the journal keeps the frame as it came",
            c.name
        );
        assert_eq!((sum, tips), (c.sum_kop, c.tips_kop), "{}", c.name);
        let want = if c.state == "SUCCESS" {
            "applied"
        } else {
            "review"
        };
        assert_eq!(status, want, "{}", c.name);
    }
    assert!(
        agent.wait_line("tips \"n/a\": not a number", T).is_some(),
        "the set-aside tips are logged"
    );

    // createOrderOnTable: 30 items × 5 modifiers, `modifiers` alias, quantities defaulted,
    // amounts as strings, fiscalData of any shape.
    let item = r#"{"id":"m-101","modifiers":[{"id":"mod-12"},{"id":"mod-12","groupId":7},{"id":"mod-13","quantity":"1"},{"id":"mod-12","quantity":1.0},{"id":"mod-13"}]}"#;
    let frame = format!(
        r#"{{"rID":"ord-1","operation":"createOrderOnTable","externalId":"ext-30x5","tableId":"table-3","items":[{}],"fiscalData":[{{"key":1,"value":null}}]}}"#,
        vec![item; 30].join(",")
    );
    let v = body(
        &cloud
            .request(&frame, "ord-1", T)
            .await
            .expect("order answer"),
    );
    assert_eq!(v["result"]["success"], true, "{v}");
    let dishes = v["result"]["guests"][0]["dishes"].as_array().unwrap();
    assert_eq!(dishes.len(), 30 * 6, "30 items and 150 modifier lines");
    // m-101 is 145.00, mod-12 15.00, mod-13 20.00: 30 × (145 + 3×15 + 2×20) = 6900.00.
    assert_eq!(v["result"]["rootOrder"]["resultSum"], 6900.0, "{v}");
    let (status, request, sum, _) = journal.row("ord-1").unwrap();
    assert_eq!(
        (status.as_str(), request.as_str()),
        ("applied", frame.as_str())
    );
    assert_eq!(sum, Some(690_000));

    // splitOrder: a controlSum that is off, or a string, is logged and the split goes on.
    for (rid, control, bill) in [(
        "split-1",
        r#""controlSum":1.00"#,
        "4afc3774-cc50-4e07-ad81-dd65f166244a",
    )] {
        let frame = format!(
            r#"{{"rID":"{rid}","operation":"splitOrder","billId":"{bill}",{control},"positions":[{{"id":"8e2ad560-938b-4972-ba60-8098aac99f8b","quantity":"1"}}]}}"#
        );
        let v = body(&cloud.request(&frame, rid, T).await.expect("split answer"));
        assert_eq!(v["state"], "SUCCESS", "{v}");
        assert_eq!(v["orders"].as_array().unwrap().len(), 2, "{v}");
        let (status, request, sum, _) = journal.row(rid).unwrap();
        assert_eq!(
            (status.as_str(), request.as_str()),
            ("applied", frame.as_str())
        );
        assert_eq!(
            sum,
            Some(108_060),
            "the journal holds the chosen lines' sum"
        );
    }
    assert!(agent
        .wait_line("controlSum 1.00 != chosen lines 1080.60", T)
        .is_some());

    // The envelope: a repeated key and a long escaped string the agent does not read.
    let frame = format!(
        r#"{{"rID":"gb-0","rID":"gb-1","note":"{}","operation":"getBill","tableNumber":"12"}}"#,
        "\\u0416".repeat(2000)
    );
    let v = body(
        &cloud
            .request(&frame, "gb-1", T)
            .await
            .expect("getBill answer"),
    );
    assert_eq!(
        (v["rID"].as_str(), v["state"].as_str()),
        (Some("gb-1"), Some("SUCCESS"))
    );
    let v = body(
        &cloud
            .request(
                r#"{"rID":"gb-2","operation":"getBill","tableNumber":12}"#,
                "gb-2",
                T,
            )
            .await
            .expect("getBill with a number"),
    );
    assert_eq!(
        (v["state"].as_str(), v["tableNumber"].as_str()),
        (Some("SUCCESS"), Some("12"))
    );

    drop(pos);
    let out = agent.stop(T);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `check` warns while `partner_id` is empty: versionInfo's `partnerId` is required by the docs.
#[test]
fn check_warns_while_partner_id_is_empty() {
    let dir = temp_dir("tolerance-check");
    let mirror = binary::demo_mirror(&dir);
    let base = format!(
        "resto_id = \"r-1\"\nsecret_key = \"check-secret\"\nws_url = \"wss://api.example.com/x\"\n\
         callback_url = \"https://api.example.com/cb\"\nmirror_path = \"{}\"\nstate_dir = \"{}\"\n",
        mirror.display(),
        dir.display()
    );
    for (extra, warns) in [("", true), ("partner_id = \"p-17\"\n", false)] {
        let cfg = binary::write_config(&dir, &format!("{base}{extra}"));
        let out = binary::run_once(
            binary::command(&["check", "--config", cfg.to_str().unwrap()]),
            b"",
            Duration::from_secs(20),
        );
        assert_eq!(out.code, Some(0), "{}", out.all());
        let warned = out
            .stdout
            .lines()
            .any(|l| l.starts_with("WARN") && l.contains("partner_id is empty"));
        assert_eq!(warned, warns, "{extra:?}:\n{}", out.stdout);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
