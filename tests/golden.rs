//! Golden bodies: the exact bytes of every answer, under each `[compat]` setting
//! (docs/protocol.md §6), against the demo mirror, as the agent's stages deliver them
//! (`testkit::stages`: admission, compute, the wait for the simulated POS on a paused clock,
//! delivery to a stub that keeps the signed bytes). Any byte change fails with the file's name.
//!
//! The files are `tests/golden/<name>.json`. After a deliberate change of shape, rewrite them with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff like code. Times that come
//! from the clock (`dateTime`, `eventTime`, `closed`, a new bill's `created`) are replaced by
//! `<time>` before the comparison; nothing else is touched (so a version bump, which changes
//! versionInfo, needs the files rewritten too).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use expirenza_agent::cache::{prepare_with, tracker::Acked, Bounds};
use expirenza_agent::config::{
    ClosedOrdersShape, Config, HallPlanKey, RolesForm, VersionInfoSchema,
};
use expirenza_agent::mirror;
use expirenza_agent::ops::{version_info, Answer};
use expirenza_agent::sign::sign;
use testkit::stages::{PosTask, Stages};

static N: AtomicUsize = AtomicUsize::new(0);
const TIME: &str = "2024-05-14T06:00:03.120000000Z";
const BILL1: &str = "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11"; // table 12, 389.50
const BILL2: &str = "4afc3774-cc50-4e07-ad81-dd65f166244a"; // table 7, splittable
const SET: &str = "8e2ad560-938b-4972-ba60-8098aac99f8b"; // on BILL2: 1 × 1080.60

struct Rig {
    dir: PathBuf,
    mirror: PathBuf,
    ctx: Stages,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rig(tweak: impl FnOnce(&mut Config)) -> Rig {
    let dir = std::env::temp_dir().join(format!(
        "xa-golden-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mirror_path = dir.join("mirror.sqlite");
    let mut conn = mirror::create_schema(&mirror_path).unwrap();
    mirror::demo::fill(&mut conn).unwrap();
    // Optional menu data (docs/mirror.md): sections and a modifier scheme on one dish.
    conn.execute_batch(
        "INSERT INTO menu_item_sections (item_id, section, position) VALUES
            ('m-101', 'Обід', 1), ('m-101', 'Вечеря', 2);
         UPDATE menu_items SET modifier_scheme_id = 'scheme-soup' WHERE id = 'm-101';",
    )
    .unwrap();
    drop(conn);
    let mut cfg = Config::for_loopback(
        "resto-1",
        "secret",
        "ws://127.0.0.1:9/ws",
        "http://127.0.0.1:9/callback",
        &mirror_path,
        &dir,
    );
    cfg.partner_id = "17f71563-bcd5-4194-b973-a2183739b32c".into();
    cfg.journal.pos_ack_timeout_secs = 10;
    cfg.journal.poll_interval_ms = 5;
    tweak(&mut cfg);
    let ctx = Stages::new(cfg);
    Rig {
        dir,
        mirror: mirror_path,
        ctx,
    }
}

impl Rig {
    /// The callback's bytes, after checking they are the signed ones.
    fn answer(&self, frame: &str) -> Vec<u8> {
        let r = self
            .ctx
            .answer(frame)
            .unwrap_or_else(|| panic!("{frame}: no callback"));
        assert!(!r.streamed, "{frame}: streamed (golden bodies are small)");
        assert_eq!(sign(&self.ctx.cfg.secret, &r.body), r.signature, "{frame}");
        r.body
    }
    fn call(&self, op: &str, fields: &str) -> Vec<u8> {
        let sep = if fields.is_empty() { "" } else { "," };
        self.answer(&format!(
            r#"{{"rID":"g-{op}","operation":"{op}"{sep}{fields}}}"#
        ))
    }
    fn pos(&self) -> PosTask {
        self.ctx.pos(Duration::from_millis(5))
    }
    fn mirror_exec(&self, sql: &str) {
        rusqlite::Connection::open(&self.mirror)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
}

/// Replace the value of every `"key":"…"` for the clock-dependent keys with `<time>`.
fn normalise(body: &[u8]) -> String {
    let mut s = String::from_utf8(body.to_vec()).unwrap();
    for key in ["dateTime", "eventTime", "closed"] {
        let pat = format!("\"{key}\":\"");
        let mut from = 0;
        while let Some(i) = s[from..].find(&pat) {
            let start = from + i + pat.len();
            let end = start + s[start..].find('"').unwrap();
            s.replace_range(start..end, "<time>");
            from = start + "<time>".len();
        }
    }
    // A split's new bill is created when the POS splits it: its `created` (the order holding a
    // `rootBillId`, which comes before its `guests`).
    let pat = "\"created\":\"";
    let mut from = 0;
    while let Some(i) = s[from..].find(pat) {
        let start = from + i + pat.len();
        let end = start + s[start..].find('"').unwrap();
        let rest = &s[end..];
        let order_head = &rest[..rest.find("\"guests\"").unwrap_or(rest.len())];
        if order_head.contains("\"rootBillId\":\"") {
            s.replace_range(start..end, "<time>");
            from = start + "<time>".len();
        } else {
            from = end;
        }
    }
    s
}

struct Golden {
    dir: PathBuf,
    update: bool,
    failures: Vec<String>,
    seen: Vec<String>,
}

impl Golden {
    fn new() -> Golden {
        Golden {
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden"),
            update: std::env::var_os("UPDATE_GOLDEN").is_some(),
            failures: Vec::new(),
            seen: Vec::new(),
        }
    }
    fn check(&mut self, name: &str, body: &[u8]) {
        let got = normalise(body);
        serde_json::from_str::<serde_json::Value>(&got)
            .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {got}"));
        let path = self.dir.join(format!("{name}.json"));
        self.seen.push(format!("{name}.json"));
        if self.update {
            std::fs::create_dir_all(&self.dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            return;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == got => {}
            Ok(want) => self.failures.push(format!(
                "{name}: differs from {}\n  want: {want}\n  got:  {got}",
                path.display()
            )),
            Err(e) => self
                .failures
                .push(format!("{name}: {} ({e}); got: {got}", path.display())),
        }
    }
    fn finish(self) {
        // Every file under tests/golden/ is produced by this test: a stale one fails too.
        let mut on_disk: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        on_disk.sort();
        let mut failures = self.failures;
        for f in on_disk {
            if !self.seen.contains(&f) {
                failures.push(format!("{f}: no test produces it (stale golden file)"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} golden mismatch(es):\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// Every read operation, SUCCESS, under the default `[compat]`.
fn read_ops(g: &mut Golden, r: &Rig, suffix: &str) {
    g.check(&format!("checkWork{suffix}"), &r.call("checkWork", ""));
    g.check(&format!("tablesInfo{suffix}"), &r.call("tablesInfo", ""));
    g.check(
        &format!("hallplansInfo{suffix}"),
        &r.call("hallplansInfo", ""),
    );
    g.check(&format!("usersInfo{suffix}"), &r.call("usersInfo", ""));
    g.check(
        &format!("categoriesInfo{suffix}"),
        &r.call("categoriesInfo", ""),
    );
    g.check(&format!("stopList{suffix}"), &r.call("stopList", ""));
    g.check(&format!("menuInfo{suffix}"), &r.call("menuInfo", ""));
    g.check(
        &format!("getBill{suffix}"),
        &r.call("getBill", r#""tableNumber":"12""#),
    );
    g.check(
        &format!("getBill-fail{suffix}"),
        &r.call("getBill", r#""tableNumber":"99""#),
    );
    g.check(
        &format!("checkProductsRestrictions{suffix}"),
        &r.call(
            "checkProductsRestrictions",
            r#""items":[{"id":"m-101","quantity":"2","modifiers":[{"id":"mod-12"}]},{"id":"m-512"}]"#,
        ),
    );
    let v = version_info::body(&r.ctx, "g-versionInfo", TIME).unwrap();
    let Answer::Callback { body, .. } = v else {
        panic!("versionInfo answers")
    };
    g.check(&format!("versionInfo{suffix}"), &body);
}

#[test]
fn golden_bodies_under_each_compat_setting() {
    let mut g = Golden::new();

    // Defaults: every operation, then the journaled ones with the simulated POS.
    let r = rig(|_| {});
    read_ops(&mut g, &r, "");
    {
        let _pos = r.pos();
        g.check(
            "payBill",
            &r.call("payBill", &format!(r#""billId":"{BILL1}","sum":"389.50","tips":10,"fiscalData":[{{"key":"ЕКВАЙЕР","value":"Universal Bank"}}]"#)),
        );
        g.check(
            "payBill-fail.bad-request",
            &r.answer(
                r#"{"rID":"g-payBill-2","operation":"payBill","billId":"b-3002","sum":"abc"}"#,
            ),
        );
        g.check(
            "payBill-fail.wrong-sum",
            &r.answer(r#"{"rID":"g-payBill-3","operation":"payBill","billId":"b-3001","sum":1}"#),
        );
        // controlSum off by default: logged, split anyway.
        g.check(
            "splitOrder-lenient",
            &r.call(
                "splitOrder",
                &format!(
                    r#""billId":"{BILL2}","controlSum":1,"positions":[{{"id":"{SET}","quantity":1}}]"#
                ),
            ),
        );
        g.check(
            "createOrderOnTable",
            &r.call(
                "createOrderOnTable",
                r#""externalId":"ext-1","tableId":"table-3","items":[{"id":"m-101","modifiers":[{"id":"mod-12"}]},{"id":"m-205","quantity":2}]"#,
            ),
        );
    }
    // A FAIL of a list operation carries no list.
    r.mirror_exec(
        "PRAGMA foreign_keys = OFF; DROP TABLE tables; DROP TABLE halls; DROP TABLE staff; \
         DROP TABLE categories; DROP TABLE stop_list;",
    );
    for op in [
        "tablesInfo",
        "hallplansInfo",
        "usersInfo",
        "categoriesInfo",
        "stopList",
    ] {
        g.check(&format!("{op}-fail"), &r.call(op, ""));
    }
    drop(r);

    // Each non-default [compat] setting: the operations it changes.
    for (name, key) in [
        ("hallplanId", HallPlanKey::Lower),
        ("hallPlanId", HallPlanKey::Camel),
    ] {
        let r = rig(|c| c.compat.tables_hall_plan_key = key);
        g.check(&format!("tablesInfo.{name}"), &r.call("tablesInfo", ""));
    }
    let r = rig(|c| c.compat.users_roles = RolesForm::Array);
    g.check("usersInfo.roles-array", &r.call("usersInfo", ""));
    for (name, schema) in [
        ("old", VersionInfoSchema::Old),
        ("both", VersionInfoSchema::Both),
    ] {
        let r = rig(|c| c.compat.version_info_schema = schema);
        let Answer::Callback { body, .. } =
            version_info::body(&r.ctx, "g-versionInfo", TIME).unwrap()
        else {
            panic!()
        };
        g.check(&format!("versionInfo.{name}"), &body);
    }
    let r = rig(|c| c.compat.strict_control_sum = true);
    {
        let _pos = r.pos();
        g.check(
            "splitOrder.strict-mismatch",
            &r.call(
                "splitOrder",
                &format!(
                    r#""billId":"{BILL2}","controlSum":1,"positions":[{{"id":"{SET}","quantity":1}}]"#
                ),
            ),
        );
        g.check(
            "splitOrder.strict",
            &r.answer(&format!(
                r#"{{"rID":"g-splitOrder-2","operation":"splitOrder","billId":"{BILL2}","controlSum":"1080.60","positions":[{{"id":"{SET}","quantity":1}}]}}"#
            )),
        );
    }
    drop(r);

    // ORDERS_CACHE: a first push (all open orders in full), then one after a bill closed,
    // with closed orders separate (default) and inline.
    for (name, shape) in [
        ("separate", ClosedOrdersShape::Separate),
        ("inline", ClosedOrdersShape::Inline),
    ] {
        let r = rig(|c| c.compat.closed_orders = shape);
        let bounds = Bounds::from_config(&r.ctx.cfg);
        // Read as the pusher reads, through the agent's mirror; `conn` writes.
        let push = |acked: &Acked| {
            r.ctx
                .mirror
                .with(|c| Ok(prepare_with(c, acked, bounds, TIME, shape)))
                .unwrap()
                .unwrap()
        };
        let conn = rusqlite::Connection::open(&r.mirror).unwrap();
        let mut acked = Acked::default();
        let first = push(&acked);
        g.check(&format!("ordersCache.{name}.first"), &first.body);
        assert!(first.closed_body.is_none());
        acked.replace(first.commit);
        conn.execute(
            "UPDATE orders SET state = 'PAYED' WHERE bill_id = ?1",
            [BILL1],
        )
        .unwrap();
        let next = push(&acked);
        g.check(&format!("ordersCache.{name}.next"), &next.body);
        match (shape, next.closed_body) {
            (ClosedOrdersShape::Separate, Some(b)) => g.check("ordersCache.separate.closed", &b),
            (ClosedOrdersShape::Inline, None) => {}
            (s, b) => panic!("{s:?}: closed body {b:?}"),
        }
    }
    g.finish();
}
