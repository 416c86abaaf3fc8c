//! Read operations answered from the mirror: usersInfo, categoriesInfo, menuInfo,
//! stopList, checkProductsRestrictions, the getBill fields v1 left untested, versionInfo's
//! STOP_LIST flag and `check`. Bodies come from `ops::handle` on a temp mirror and are parsed
//! with serde_json; the end-to-end tests through the fake cloud live in read_ops_e2e.rs.

mod mirror_fixture;

use expirenza_agent::config::RolesForm;
use mirror_fixture::*;
use serde_json::{json, Value};

/// Names with quotes, backslashes, newlines, tabs and Cyrillic: must come back byte for byte.
const NASTY: &str = "Вареники \"по-бабусиному\" \\ з\nвишнею\tта м'ятою ґ є ї";

fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn find<'a>(arr: &'a Value, id: &str) -> &'a Value {
    arr.as_array()
        .unwrap_or_else(|| panic!("not an array: {arr}"))
        .iter()
        .find(|x| x["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {arr}"))
}

// ---------------------------------------------------------------------------- usersInfo

#[test]
fn users_info_demo_shape_string_roles() {
    let m = TempMirror::demo("users");
    let (v, _) = call(&m.ctx(), "usersInfo", "");
    let users = &v["users"];
    assert_eq!(users.as_array().unwrap().len(), 4);
    let oksana = find(users, "u-017");
    assert_eq!(
        oksana,
        &json!({"id":"u-017","name":"Оксана Мельник","cellPhone":"+380671234567","roles":"Офіціант"})
    );
    assert_eq!(find(users, "u-004")["name"], "Андрій Коваль");
    assert_eq!(find(users, "u-021")["roles"], "Кур'єр");
    assert_eq!(find(users, "u-001")["roles"], "Менеджер, Офіціант");
    assert!(v.get("state").is_none(), "success carries no state: {v}");
}

#[test]
fn users_info_array_roles_when_configured() {
    let m = TempMirror::demo("users-arr");
    let mut cfg = m.config();
    cfg.compat.users_roles = RolesForm::Array;
    let (v, _) = call(&ctx_for(cfg), "usersInfo", "");
    assert_eq!(
        find(&v["users"], "u-001")["roles"],
        json!(["Менеджер", "Офіціант"])
    );
    assert_eq!(find(&v["users"], "u-021")["roles"], json!(["Кур'єр"]));
}

#[test]
fn users_info_normalises_roles_and_omits_empty_fields() {
    let m = TempMirror::empty("users-norm");
    m.exec(
        "INSERT INTO staff VALUES ('a', 'Без ролей', NULL, NULL), ('b', 'Пробіли', '', ' Офіціант ,, Кур''єр ,');",
    );
    let (v, _) = call(&m.ctx(), "usersInfo", "");
    assert_eq!(
        find(&v["users"], "a"),
        &json!({"id":"a","name":"Без ролей"})
    );
    assert_eq!(
        find(&v["users"], "b"),
        &json!({"id":"b","name":"Пробіли","roles":"Офіціант, Кур'єр"})
    );
}

#[test]
fn users_info_empty_table() {
    let m = TempMirror::empty("users-empty");
    let (v, text) = call(&m.ctx(), "usersInfo", "");
    assert_eq!(text, r#"{"rID":"r-1","users":[]}"#);
    assert_eq!(v["users"], json!([]));
}

#[test]
fn users_info_missing_table_fails_naming_it() {
    let m = TempMirror::empty("users-missing");
    m.exec("DROP TABLE staff;");
    let (v, _) = call(&m.ctx(), "usersInfo", "");
    assert_fail(&v, "POS_UNAVAILABLE", "staff");
    assert!(v.get("users").is_none(), "a FAIL carries no list: {v}");
}

#[test]
fn users_info_escaping_round_trips() {
    let m = TempMirror::empty("users-esc");
    m.exec(&format!(
        "INSERT INTO staff VALUES ('u-\"1\\', {}, '+380 (67) \"1\"', 'Кур''єр, \"Старший\"');",
        sql_str(NASTY)
    ));
    let (v, _) = call(&m.ctx(), "usersInfo", "");
    let u = &v["users"][0];
    assert_eq!(u["id"], "u-\"1\\");
    assert_eq!(u["name"], NASTY);
    assert_eq!(u["cellPhone"], "+380 (67) \"1\"");
    assert_eq!(u["roles"], "Кур'єр, \"Старший\"");
}

// ---------------------------------------------------------------------------- categoriesInfo

#[test]
fn categories_info_demo_shape() {
    let m = TempMirror::demo("cats");
    let (v, _) = call(&m.ctx(), "categoriesInfo", "");
    assert_eq!(
        v["categories"],
        json!([{"id":"cat-bar","name":"Бар","type":"drink"},{"id":"cat-kitchen","name":"Кухня","type":"dish"}])
    );
}

#[test]
fn categories_info_empty_null_type_and_escaping() {
    let m = TempMirror::empty("cats-esc");
    let (v, _) = call(&m.ctx(), "categoriesInfo", "");
    assert_eq!(v["categories"], json!([]));
    m.exec(&format!(
        "INSERT INTO categories VALUES ('c\\1', {}, NULL);",
        sql_str(NASTY)
    ));
    let (v, _) = call(&m.ctx(), "categoriesInfo", "");
    assert_eq!(v["categories"], json!([{"id":"c\\1","name":NASTY}]));
}

#[test]
fn categories_info_missing_table_fails_naming_it() {
    let m = TempMirror::empty("cats-missing");
    m.exec("DROP TABLE categories;");
    let (v, _) = call(&m.ctx(), "categoriesInfo", "");
    assert_fail(&v, "POS_UNAVAILABLE", "categories");
}

// ---------------------------------------------------------------------------- stopList

#[test]
fn stop_list_demo_shape() {
    let m = TempMirror::demo("stop");
    let (v, text) = call(&m.ctx(), "stopList", "");
    assert_eq!(
        v["items"],
        json!([{"id":"m-330","quantity":3,"productId":"m-330","balance":3},
               {"id":"m-512","quantity":0,"productId":"m-512","balance":0},
               {"id":"mod-14","quantity":0,"productId":"mod-14","balance":0}])
    );
    assert!(
        text.contains(r#"{"id":"m-330","quantity":3,"productId":"m-330","balance":3}"#),
        "{text}"
    );
}

#[test]
fn stop_list_fractional_quantities_and_escaping() {
    let m = TempMirror::empty("stop-frac");
    m.exec(&format!(
        "INSERT INTO stop_list VALUES ('half', 500), ('weight', 1300), ('tiny', 1), ({}, 0), ('neg', -5);",
        sql_str(NASTY)
    ));
    let (v, text) = call(&m.ctx(), "stopList", "");
    // `balance` is the quantity rounded down to a whole unit.
    assert!(
        text.contains(r#"{"id":"half","quantity":0.5,"productId":"half","balance":0}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"{"id":"weight","quantity":1.3,"productId":"weight","balance":1}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"{"id":"tiny","quantity":0.001,"productId":"tiny","balance":0}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"{"id":"neg","quantity":0,"productId":"neg","balance":0}"#),
        "a negative balance is 0: {text}"
    );
    assert_eq!(find(&v["items"], NASTY)["quantity"], 0);
}

#[test]
fn stop_list_empty_and_missing() {
    let m = TempMirror::empty("stop-empty");
    let (_, text) = call(&m.ctx(), "stopList", "");
    assert_eq!(text, r#"{"rID":"r-1","items":[]}"#);
    m.exec("DROP TABLE stop_list;");
    let (v, _) = call(&m.ctx(), "stopList", "");
    assert_fail(&v, "POS_UNAVAILABLE", "stop_list");
}

// ---------------------------------------------------------------------------- versionInfo

fn stop_feature(v: &Value) -> &Value {
    v["implementedFeatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "STOP_LIST")
        .unwrap()
}

#[test]
fn version_info_stop_list_follows_the_mirror() {
    let m = TempMirror::demo("ver");
    let (v, _) = call(&m.ctx(), "versionInfo", "");
    assert_eq!(
        stop_feature(&v),
        &json!({"feature":"STOP_LIST","available":true,"implemented":true})
    );
    m.exec("DROP TABLE stop_list; CREATE TABLE stop_list (item_id TEXT);");
    let (v, _) = call(&m.ctx(), "versionInfo", "");
    assert_eq!(
        stop_feature(&v)["available"],
        false,
        "remaining_milli is missing"
    );
    m.exec("DROP TABLE stop_list;");
    let (v, _) = call(&m.ctx(), "versionInfo", "");
    assert_eq!(stop_feature(&v)["available"], false);
    assert_eq!(stop_feature(&v)["implemented"], true);
}

// ---------------------------------------------------------------------------- check

#[test]
fn check_reports_new_tables_and_operations() {
    let m = TempMirror::demo("check");
    let mut out = Vec::new();
    let problems = expirenza_agent::check::report_mirror(&m.config(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(problems, 0, "{text}");
    for line in [
        "staff                      4 rows",
        "menu_items                 13 rows",
        "stop_list                  3 rows",
    ] {
        assert!(text.contains(line), "{line:?} missing from\n{text}");
    }
    for op in [
        "usersInfo",
        "categoriesInfo",
        "menuInfo",
        "stopList",
        "checkProductsRestrictions",
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(op) && l.trim_end().ends_with("OK")),
            "{op} not OK in\n{text}"
        );
    }
    m.exec("DROP TABLE menu_item_modifiers;");
    let mut out = Vec::new();
    let problems = expirenza_agent::check::report_mirror(&m.config(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        problems, 0,
        "menuInfo is optional: reported, not a failure\n{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("menuInfo")
            && l.contains("not served (optional): missing table or view 'menu_item_modifiers'")),
        "{text}"
    );
    // A core operation's table missing is a problem.
    m.exec("DROP TABLE order_discounts;");
    let mut out = Vec::new();
    let problems = expirenza_agent::check::report_mirror(&m.config(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        problems, 4,
        "checkWork, getBill, payBill and splitOrder (all read bills): {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("getBill")
                && l.contains("FAIL missing table or view 'order_discounts'")),
        "{text}"
    );
}

// ---------------------------------------------------------------------------- menuInfo

#[test]
fn menu_info_demo_shape() {
    let m = TempMirror::demo("menu");
    let (v, text) = call(&m.ctx(), "menuInfo", "");
    // groups: ordered by menu_index, parentId null at the top
    assert_eq!(
        v["groups"][0],
        json!({"id":"g-soups","menuIndex":1,"name":"Перші страви","parentId":null})
    );
    assert_eq!(find(&v["groups"], "g-grill")["parentId"], "g-hot");
    assert_eq!(v["groups"].as_array().unwrap().len(), 6);

    let dishes = &v["dishes"];
    assert_eq!(dishes.as_array().unwrap().len(), 13);
    assert_eq!(
        find(dishes, "m-205"),
        &json!({
            "id":"m-205","name":"Вареники з картоплею","description":"Домашні, 8 шт.","price":95.0,
            "category":"Кухня","categoryId":"cat-kitchen","groupId":"g-varenyky","isActive":true,
            "type":"dish","unit":"порція","vendorCode":"205","taxCategory":"ПДВ 20%","taxCategoryId":"tax-a",
            "groupModifiers":[{"id":"gm-sauce","required":false,"minAmount":0,"maxAmount":2,"defaultAmount":0,
                "free":false,"freeAmount":0,"childModifiersHaveMinMaxRestrictions":true,
                "childModifiers":[
                    {"id":"mod-12","defaultAmount":0,"minAmount":0,"maxAmount":2,"required":false},
                    {"id":"mod-13","defaultAmount":0,"minAmount":0,"maxAmount":2,"required":false},
                    {"id":"mod-14","defaultAmount":0,"minAmount":0,"maxAmount":1,"required":false}]}]
        })
    );
    assert!(text.contains(r#""price":95.00"#), "{text}");
    assert_eq!(
        find(dishes, "m-101")["modifiers"],
        json!([{"id":"mod-12","groupId":"gm-sauce","quantity":1,"defaultAmount":1,"minAmount":0,"maxAmount":1,"required":false}])
    );
    assert!(find(dishes, "m-101").get("groupModifiers").is_none());
    assert!(find(dishes, "m-330").get("modifiers").is_none());
    assert_eq!(find(dishes, "m-102")["isActive"], false);
    assert!(find(dishes, "m-102").get("description").is_none());
    assert_eq!(
        find(dishes, "m-332")["scale"],
        json!({"id":"sc-cup","name":"Об'єм","defaultSize":{"id":"sz-250","kitchenName":"Середня","menuIndex":1,"name":"250 мл"}})
    );
    let grill = &find(dishes, "m-905")["groupModifiers"][0];
    assert_eq!(grill["required"], true);
    assert_eq!(grill["free"], true);
    assert_eq!(grill["childModifiers"][0]["id"], "mod-31");
    assert_eq!(find(dishes, "m-777")["price"], 1080.6);
    assert!(text.contains(r#""price":1080.60"#));

    // every dish a demo bill references is on the menu
    for id in [
        "m-101", "m-205", "m-330", "m-410", "m-512", "m-777", "m-905", "m-620",
    ] {
        find(dishes, id);
    }
    assert_eq!(
        find(&v["modifiers"], "mod-12"),
        &json!({"id":"mod-12","name":"Сметана","price":15.0,"category":"Кухня","categoryId":"cat-kitchen",
                "groupId":"gm-sauce","isActive":true,"type":"modifier","unit":"порція",
                "taxCategory":"ПДВ 20%","taxCategoryId":"tax-a"})
    );
    find(&v["modifiers"], "mod-31");
    let gms = &v["groupModifiers"];
    assert_eq!(gms.as_array().unwrap().len(), 2);
    assert_eq!(find(gms, "gm-sauce")["name"], "Соуси та додатки");
    assert_eq!(
        find(gms, "gm-sauce")["childModifiers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        v["hostTerminalsGroup"],
        json!({"id":"tg-1","name":"Основна каса"})
    );
    assert_eq!(
        v["terminalsGroups"],
        json!([{"id":"tg-1","name":"Основна каса"},{"id":"tg-2","name":"Бар"}])
    );
}

#[test]
fn menu_info_empty_tables() {
    let m = TempMirror::empty("menu-empty");
    let (v, text) = call(&m.ctx(), "menuInfo", "");
    assert_eq!(
        text,
        r#"{"rID":"r-1","groups":[],"dishes":[],"modifiers":[],"groupModifiers":[],"terminalsGroups":[]}"#
    );
    assert!(v.get("hostTerminalsGroup").is_none());
}

#[test]
fn menu_info_missing_table_fails_naming_it() {
    for table in [
        "menu_items",
        "menu_item_modifiers",
        "group_modifier_children",
        "terminal_groups",
    ] {
        let m = TempMirror::demo("menu-missing");
        m.exec(&format!("DROP TABLE {table};"));
        let (v, _) = call(&m.ctx(), "menuInfo", "");
        assert_fail(&v, "POS_UNAVAILABLE", table);
        assert!(v.get("dishes").is_none(), "no partial menu in a FAIL: {v}");
    }
}

#[test]
fn menu_info_money_edges_and_escaping() {
    let m = TempMirror::empty("menu-money");
    m.exec(&format!(
        "INSERT INTO menu_items (id, name, description, price_kop) VALUES
            ('a', 'Копійка', NULL, 1), ('b', 'Десять', NULL, 10), ('c', 'Мільйон', NULL, 100000000),
            ('d', 'Нуль', NULL, 0), ('e\"\\', {nasty}, {nasty}, 12920);
         INSERT INTO menu_groups VALUES ('g\"1', {nasty}, 'p\\0', 7);
         INSERT INTO modifiers (id, name, price_kop) VALUES ('mod\n1', {nasty}, 10);",
        nasty = sql_str(NASTY)
    ));
    let (v, text) = call(&m.ctx(), "menuInfo", "");
    for (id, price) in [
        ("a", "0.01"),
        ("b", "0.10"),
        ("c", "1000000.00"),
        ("d", "0.00"),
    ] {
        let needle = format!(r#"{{"id":"{id}","name":"#);
        let at = text
            .find(&needle)
            .unwrap_or_else(|| panic!("{id} in {text}"));
        let rest = &text[at..];
        assert!(
            rest[..rest.find('}').unwrap()].contains(&format!(r#""price":{price},"#)),
            "{id} should cost {price}: {rest}"
        );
    }
    let e = find(&v["dishes"], "e\"\\");
    assert_eq!(e["name"], NASTY);
    assert_eq!(e["description"], NASTY);
    assert_eq!(e["price"], 129.2);
    assert_eq!(e["type"], "dish");
    assert_eq!(e["isActive"], true);
    assert_eq!(find(&v["groups"], "g\"1")["name"], NASTY);
    assert_eq!(find(&v["groups"], "g\"1")["parentId"], "p\\0");
    assert_eq!(find(&v["modifiers"], "mod\n1")["name"], NASTY);
    assert!(text.contains(r#""id":"mod\n1""#), "newline escaped: {text}");
}

#[test]
fn menu_info_merges_child_rows_by_key_whatever_the_id_order() {
    // Ids that sort differently as numbers, as text and by case; orphan links to missing dishes.
    let m = TempMirror::empty("menu-merge");
    m.exec(
        "INSERT INTO group_modifiers (id, name) VALUES ('G', 'Група');
         INSERT INTO group_modifier_children (group_id, modifier_id, position) VALUES ('G', 'x', 2), ('G', 'w', 1);
         INSERT INTO menu_items (id, name, price_kop) VALUES ('10', 'десять', 1), ('9', 'дев''ять', 1),
             ('B', 'бе', 1), ('a', 'а', 1), ('я', 'я', 1), ('ї', 'ї', 1);
         INSERT INTO menu_item_modifiers (item_id, modifier_id, position) VALUES
             ('9', 'm9', 1), ('10', 'm10b', 2), ('10', 'm10a', 1), ('0-orphan', 'zz', 1), ('я', 'mя', 1),
             ('zz-orphan', 'zz', 1), ('B', 'mB', 1);
         INSERT INTO menu_item_group_modifiers (item_id, group_id) VALUES
             ('a', 'G'), ('ї', 'G'), ('9', 'G'), ('5-orphan', 'G'), ('a', 'NO-SUCH-GROUP');",
    );
    let (v, _) = call(&m.ctx(), "menuInfo", "");
    let d = &v["dishes"];
    let mods = |id: &str| -> Vec<String> {
        find(d, id)["modifiers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let groups = |id: &str| -> Vec<String> {
        find(d, id)["groupModifiers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .flat_map(|g| g["childModifiers"].as_array().unwrap().iter())
                    .map(|c| c["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(mods("10"), ["m10a", "m10b"]);
    assert_eq!(mods("9"), ["m9"]);
    assert_eq!(mods("B"), ["mB"]);
    assert_eq!(mods("я"), ["mя"]);
    assert!(mods("a").is_empty());
    assert_eq!(groups("a"), ["w", "x"]);
    assert_eq!(groups("ї"), ["w", "x"]);
    assert_eq!(groups("9"), ["w", "x"]);
    assert!(groups("10").is_empty() && groups("я").is_empty());
    assert_eq!(d.as_array().unwrap().len(), 6);
}

#[test]
fn menu_info_integer_ids_from_a_view() {
    // An integrator's view over a POS with integer ids and hryvnia prices.
    let m = TempMirror::empty("menu-view");
    m.exec(
        "DROP TABLE menu_items; DROP TABLE menu_item_modifiers;
         CREATE TABLE pos_goods (code INTEGER PRIMARY KEY, title TEXT, price REAL, hidden INTEGER);
         INSERT INTO pos_goods VALUES (10, 'Борщ', 145.0, 0), (9, 'Узвар', 0.1, 1), (11, 'Сет', 1080.6, 0);
         CREATE VIEW menu_items AS SELECT code AS id, title AS name, NULL AS description,
             CAST(ROUND(price * 100) AS INTEGER) AS price_kop, NULL AS category_id, NULL AS group_id,
             CASE hidden WHEN 0 THEN 1 ELSE 0 END AS is_active, NULL AS type, NULL AS unit,
             code AS vendor_code, NULL AS tax_category, NULL AS tax_category_id, NULL AS scale_id,
             NULL AS scale_name, NULL AS scale_size_id, NULL AS scale_size_name,
             NULL AS scale_size_kitchen_name, NULL AS scale_size_menu_index FROM pos_goods;
         CREATE TABLE pos_links (good INTEGER, modifier INTEGER);
         INSERT INTO pos_links VALUES (10, 700), (9, 701), (10, 702);
         CREATE VIEW menu_item_modifiers AS SELECT good AS item_id, modifier AS modifier_id,
             0 AS position, 0 AS required, 0 AS min_amount, 1 AS max_amount, 0 AS default_amount FROM pos_links;",
    );
    let (v, text) = call(&m.ctx(), "menuInfo", "");
    let d = &v["dishes"];
    assert_eq!(find(d, "10")["price"], 145.0);
    assert_eq!(find(d, "10")["vendorCode"], "10");
    assert_eq!(find(d, "10")["modifiers"].as_array().unwrap().len(), 2);
    assert_eq!(find(d, "9")["modifiers"][0]["id"], "701");
    assert_eq!(find(d, "9")["isActive"], false);
    assert!(text.contains(r#""price":0.10"#), "{text}");
    assert!(text.contains(r#""price":1080.60"#), "{text}");
}

#[test]
fn menu_info_refused_past_the_body_cap() {
    let m = TempMirror::demo("menu-cap");
    let mut cfg = m.config();
    cfg.limits.max_body_bytes = 1024;
    cfg.limits.max_menu_bytes = 1024;
    let r = call_raw(&ctx_for(cfg), r#"{"rID":"r-1","operation":"menuInfo"}"#);
    assert_too_large(&r, 1024);
    // Over max_body_bytes but within max_menu_bytes: streamed, the same bytes as held whole.
    let mut cfg = m.config();
    cfg.limits.max_body_bytes = 1024;
    let s = ctx_for(cfg);
    let streamed = s.answer(r#"{"rID":"r-1","operation":"menuInfo"}"#).unwrap();
    assert!(streamed.streamed, "over max_body_bytes: streamed");
    let whole = ctx_for(m.config())
        .answer(r#"{"rID":"r-1","operation":"menuInfo"}"#)
        .unwrap();
    assert!(!whole.streamed);
    assert!(streamed.body.len() > 1024);
    assert_eq!(streamed.body, whole.body);
    assert_eq!(streamed.signature, whole.signature);
    // The same menu fits with room to spare.
    let mut cfg = m.config();
    cfg.limits.max_body_bytes = 16 * 1024;
    let (v, _) = call(&ctx_for(cfg), "menuInfo", "");
    assert_eq!(v["rID"], "r-1");
    assert!(v.get("state").is_none(), "an answer, not a FAIL: {v}");
}

/// menuInfo reads in constant memory, so `max_rows` (which bounds what other answers hold)
/// does not cap it: its rows are bounded through `max_menu_bytes`.
#[test]
fn menu_info_rows_are_bounded_by_max_menu_bytes_not_max_rows() {
    use expirenza_agent::ops::menu_info::stream::{menu_rows, BYTES_PER_ROW};
    let m = TempMirror::demo("menu-rows");
    let mut cfg = m.config();
    cfg.limits.max_rows = 10;
    let ctx = ctx_for(cfg);
    assert_eq!(menu_rows(&ctx), (64 << 20) / BYTES_PER_ROW);
    let (v, _) = call(&ctx, "menuInfo", "");
    assert!(v["dishes"].as_array().is_some_and(|d| d.len() > 10), "{v}");
    // Another answer still honours max_rows.
    let (v, _) = call(&ctx, "tablesInfo", "");
    assert_fail(&v, "POS_UNAVAILABLE", "max_rows");
}

// ---------------------------------------------------------------------------- checkProductsRestrictions

fn check(ctx: &testkit::stages::Stages, items: &str) -> Value {
    call(
        ctx,
        "checkProductsRestrictions",
        &format!(r#""items":{items}"#),
    )
    .0
}

#[test]
fn restrictions_all_available() {
    let m = TempMirror::demo("cpr-ok");
    let v = check(
        &m.ctx(),
        r#"[{"id":"m-101","quantity":1,"modifier":[{"id":"mod-12","groupId":"gm-sauce","quantity":1}]},{"id":"m-330","quantity":3}]"#,
    );
    assert_eq!(
        v,
        json!({"rID":"r-1","result":{"itemResults":[
            {"id":"m-101","name":"Борщ український з пампушками","available":true,"exceedQuantity":0},
            {"id":"mod-12","name":"Сметана","available":true,"exceedQuantity":0},
            {"id":"m-330","name":"Узвар 0,5 л","available":true,"exceedQuantity":0}],
            "checkResult":"OK"}})
    );
}

#[test]
fn restrictions_stop_listed_inactive_and_unknown() {
    let m = TempMirror::demo("cpr-no");
    let v = check(
        &m.ctx(),
        r#"[{"id":"m-512","quantity":1},{"id":"m-330","quantity":4},{"id":"m-102"},{"id":"nope","quantity":2},
            {"id":"m-205","quantity":2,"modifiers":[{"id":"mod-14","quantity":1},{"id":"mod-13","quantity":2}]}]"#,
    );
    let r = &v["result"];
    assert_eq!(r["checkResult"], "NOT_AVAILABLE");
    let lines = r["itemResults"].as_array().unwrap();
    let by = |i: usize| {
        (
            &lines[i]["id"],
            &lines[i]["available"],
            &lines[i]["exceedQuantity"],
        )
    };
    assert_eq!(lines.len(), 7);
    assert_eq!(by(0), (&json!("m-512"), &json!(false), &json!(1)));
    assert_eq!(lines[0]["name"], "Котлета по-київськи");
    assert_eq!(by(1), (&json!("m-330"), &json!(false), &json!(1)));
    assert_eq!(
        by(2),
        (&json!("m-102"), &json!(false), &json!(1)),
        "inactive dish"
    );
    assert_eq!(by(3), (&json!("nope"), &json!(false), &json!(2)));
    assert_eq!(lines[3]["name"], "");
    assert_eq!(by(4), (&json!("m-205"), &json!(true), &json!(0)));
    assert_eq!(by(5), (&json!("mod-14"), &json!(false), &json!(1)));
    assert_eq!(by(6), (&json!("mod-13"), &json!(true), &json!(0)));
}

#[test]
fn restrictions_fractional_quantities_add_up_per_id() {
    let m = TempMirror::demo("cpr-frac");
    m.exec("INSERT INTO stop_list VALUES ('m-905', 1300);");
    let ctx = m.ctx();
    let v = check(
        &ctx,
        r#"[{"id":"m-905","quantity":0.5},{"id":"m-905","quantity":0.5}]"#,
    );
    assert_eq!(v["result"]["checkResult"], "OK");
    let v = check(
        &ctx,
        r#"[{"id":"m-905","quantity":0.5},{"id":"m-905","quantity":1}]"#,
    );
    let (_, text) = call(
        &ctx,
        "checkProductsRestrictions",
        r#""items":[{"id":"m-905","quantity":0.5},{"id":"m-905","quantity":1}]"#,
    );
    assert_eq!(v["result"]["checkResult"], "NOT_AVAILABLE");
    assert!(
        text.contains(r#""exceedQuantity":0.2"#),
        "1.5 asked, 1.3 left: {text}"
    );
    let v = check(
        &ctx,
        r#"[{"id":"m-330","quantity":1.3},{"id":"m-330","quantity":1.7}]"#,
    );
    assert_eq!(v["result"]["checkResult"], "OK", "3 asked, 3 left");
}

#[test]
fn restrictions_escaping_round_trips() {
    let m = TempMirror::empty("cpr-esc");
    m.exec(&format!(
        "INSERT INTO menu_items (id, name, price_kop) VALUES ('м-\"1\\', {}, 100);",
        sql_str(NASTY)
    ));
    let v = check(&m.ctx(), r#"[{"id":"м-\"1\\","quantity":1}]"#);
    assert_eq!(v["result"]["itemResults"][0]["id"], "м-\"1\\");
    assert_eq!(v["result"]["itemResults"][0]["name"], NASTY);
    assert_eq!(v["result"]["checkResult"], "OK");
}

#[test]
fn restrictions_empty_mirror_means_not_available() {
    let m = TempMirror::empty("cpr-empty");
    let v = check(&m.ctx(), r#"[{"id":"m-101","quantity":1}]"#);
    assert_eq!(v["result"]["checkResult"], "NOT_AVAILABLE");
    assert_eq!(v["result"]["itemResults"][0]["available"], false);
}

#[test]
fn restrictions_missing_table_fails_naming_it() {
    let m = TempMirror::demo("cpr-missing");
    m.exec("DROP TABLE stop_list;");
    let v = check(&m.ctx(), r#"[{"id":"m-101","quantity":1}]"#);
    assert_fail(&v, "POS_UNAVAILABLE", "stop_list");
    assert_eq!(v["result"]["checkResult"], "NOT_AVAILABLE");
}

#[test]
fn restrictions_refuses_requests_over_the_caps() {
    use expirenza_agent::ops::check_products_restrictions::{MAX_ITEMS, MAX_MODIFIERS};
    let m = TempMirror::demo("cpr-cap");
    let ctx = m.ctx();
    let item = r#"{"id":"m-101","quantity":1}"#;
    let at_cap = format!("[{}]", vec![item; MAX_ITEMS].join(","));
    assert_eq!(
        check(&ctx, &at_cap)["result"]["itemResults"]
            .as_array()
            .unwrap()
            .len(),
        MAX_ITEMS
    );
    let over = format!("[{}]", vec![item; MAX_ITEMS + 1].join(","));
    assert_fail(&check(&ctx, &over), "BAD_REQUEST", "at most 50 items");
    let modifier = r#"{"id":"mod-12","quantity":1}"#;
    let many = format!(
        r#"[{{"id":"m-101","modifier":[{}]}}]"#,
        [modifier; MAX_MODIFIERS + 1].join(",")
    );
    assert_fail(&check(&ctx, &many), "BAD_REQUEST", "modifiers per item");
    let long_id = format!(r#"[{{"id":"{}"}}]"#, "x".repeat(65));
    assert_fail(&check(&ctx, &long_id), "BAD_REQUEST", "ids of 64 bytes");
    let (v, _) = call(&ctx, "checkProductsRestrictions", "");
    assert_fail(&v, "BAD_REQUEST", "needs items");
    assert_fail(
        &check(&ctx, r#"[{"id":"m-101","quantity":-1}]"#),
        "BAD_REQUEST",
        "malformed",
    );
    assert_fail(
        &check(&ctx, r#"[{"id":"m-101","quantity":0.0001}]"#),
        "BAD_REQUEST",
        "malformed",
    );
}

// ---------------------------------------------------------------------------- getBill (v1 fields)

#[test]
fn get_bill_carries_every_order_field() {
    let m = TempMirror::demo("bill");
    m.exec(
        "INSERT INTO orders (bill_id, order_number, table_id, state, created, waiter_id, waiter_name, raw_sum_kop,
                             total_sum_kop, bonus_sum_kop, is_banquet, is_delivery, split_available, root_bill_id,
                             payment_type, pricing_time)
         VALUES ('b-child', 5, 'table-9', 'BILL', '2024.05.14 18:21:07', 'u-021', 'Ігор Бондар', 100000000, 10, 1,
                 1, 1, 0, 'b-root', 'CARD', '2024.05.14 18:00:00');
         INSERT INTO order_positions (bill_id, position_id, line_no, linked_to, dish_id, name, count_milli, sum_kop)
         VALUES ('b-child', 'p-1', 1, NULL, 'm-905', 'Шашлик \"ваговий\"', 1300, 84500),
                ('b-child', 'p-2', 2, 'p-1', 'mod-31', 'Аджика', 500, 0);
         INSERT INTO order_discounts VALUES ('b-child', 'd-1', 'Знижка', 10);",
    );
    let (v, text) = call(&m.ctx(), "getBill", r#""billId":"b-child""#);
    assert_eq!(v["state"], "SUCCESS");
    assert_eq!(v["tableNumber"], "9");
    let o = &v["orders"][0];
    assert_eq!(o["rootBillId"], "b-root");
    assert_eq!(o["splitAvailable"], false);
    assert_eq!(o["waiter"], "Ігор Бондар");
    assert_eq!(o["waiterId"], "u-021");
    assert_eq!(o["isBanquetOrder"], true);
    assert_eq!(o["isDelivery"], true);
    assert_eq!(o["paymentType"], "CARD");
    assert_eq!(o["pricingTime"], "2024.05.14 18:00:00");
    assert_eq!(
        o["discounts"],
        json!({"list":[{"id":"d-1","name":"Знижка","sum":0.1}]})
    );
    for needle in [
        r#""bonusSum":0.01"#,
        r#""rawSum":1000000.00"#,
        r#""totalSum":0.10"#,
        r#""count":1.3,"sum":845.00"#,
        r#""count":0.5,"sum":0.00"#,
        r#""linkedTo":"p-1""#,
        r#""name":"Шашлик \"ваговий\"""#,
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
    let (v, _) = call(&m.ctx(), "getBill", r#""tableNumber":"7""#);
    assert_eq!(v["orders"][0]["splitAvailable"], true);
    assert_eq!(v["orders"][0]["isBanquetOrder"], false);
    assert_eq!(v["orders"][0]["bonusSum"], 0.0);
    assert!(
        v["orders"][0].get("rootBillId").is_none(),
        "omitted when NULL"
    );
}

// ---------------------------------------------------------------------------- docs/mirror.md

/// docs/mirror.md's worked example is the reference POS's (contrib/pos/kasapro/): its SQL
/// blocks are excerpts of `schema.sql` and `mirror_views.sql`, which, run on a fresh database,
/// satisfy `check` and serve every read operation with correct values.
#[test]
fn mirror_doc_worked_example_views_serve_every_operation() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap();
    let doc = read("docs/mirror.md");
    let schema = read("contrib/pos/kasapro/schema.sql");
    let views = read("contrib/pos/kasapro/mirror_views.sql");
    let example = &doc[doc
        .find("## Worked example")
        .expect("worked example section")..];
    let blocks: Vec<&str> = example
        .split("```sql")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .collect();
    assert_eq!(blocks.len(), 2, "POS tables + their views");
    assert!(doc.contains("## The command journal (written by the agent, applied by the POS)"));
    // Statements without comments or runs of blanks: the doc's must be the files'.
    let norm = |sql: &str| -> Vec<String> {
        let text: String = sql
            .lines()
            .map(|l| l.split("--").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        text.split(';')
            .map(|st| st.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|st| !st.is_empty())
            .collect()
    };
    for (block, file, name) in [
        (blocks[0], &schema, "schema.sql"),
        (blocks[1], &views, "mirror_views.sql"),
    ] {
        let in_file = norm(file);
        for st in norm(block) {
            assert!(in_file.contains(&st), "docs/mirror.md: not in {name}: {st}");
        }
    }

    let m = TempMirror::empty("doc");
    std::fs::remove_file(&m.path).unwrap();
    let c = rusqlite::Connection::open(&m.path).unwrap();
    c.execute_batch(&schema).unwrap();
    c.execute_batch(&views).unwrap();
    c.execute_batch(
        "INSERT INTO pos_halls VALUES (1, 'Головна зала');
         INSERT INTO pos_tables VALUES (5, 12, 'Біля вікна', 1);
         INSERT INTO pos_employees VALUES (17, 'Оксана', 'Мельник', '+380671234567', 0), (18, 'Звільнений', 'Х', NULL, 1);
         INSERT INTO pos_roles VALUES (1, 'Офіціант'), (2, 'Менеджер');
         INSERT INTO pos_employee_roles VALUES (17, 1), (17, 2);
         INSERT INTO pos_checks (check_id, check_no, table_id, status, opened_at, waiter_id, total, to_pay, splittable)
           VALUES (1, 1842, 5, 1, '2024-05-14 18:21:07', 17, 410.0, 389.5, 0),
                  (2, 1700, 5, 2, '2024-05-14 12:00:00', 17, 60.0, 60.0, 0);
         INSERT INTO pos_check_lines (line_id, check_id, line_pos, guest, parent_line_id, product_id, product_name, qty, amount, is_modifier)
           VALUES (1, 1, 1, 1, NULL, 205, 'Вареники з картоплею', 2.0, 190.0, 0),
                  (2, 1, 2, 1, 1, 12, 'Сметана', 1.0, 15.0, 1),
                  (3, 1, 3, 1, NULL, 905, 'Шашлик', 1.3, 845.0, 0);
         INSERT INTO pos_check_discounts VALUES (1, 5, 'Знижка 5%', 5.0, 20.5);
         INSERT INTO pos_product_groups VALUES (1, 'Вареники', NULL, 1);
         INSERT INTO pos_products VALUES (205, 'Вареники з картоплею', 'Домашні', 95.0, 1, 1, 0, 0, 'порція', 'V205'),
                                         (905, 'Шашлик', NULL, 650.0, 1, 1, 0, 0, 'кг', NULL),
                                         (330, 'Узвар', NULL, 0.1, 1, 0, 0, 1, 'шт', NULL),
                                         (12, 'Сметана', NULL, 15.0, NULL, 1, 1, 0, 'порція', NULL);
         INSERT INTO pos_modifier_sets VALUES (7, 'Соуси', 0, 2);
         INSERT INTO pos_modifier_set_items VALUES (7, 12, 1, 2);
         INSERT INTO pos_product_sets VALUES (205, 7, 1);
         INSERT INTO pos_stop VALUES (905, 1.3), (12, 0);",
    )
    .unwrap();
    drop(c);

    let mut out = Vec::new();
    let problems = expirenza_agent::check::report_mirror(&m.config(), &mut out).unwrap();
    assert_eq!(problems, 0, "{}", String::from_utf8_lossy(&out));

    let ctx = m.ctx();
    let (v, text) = call(&ctx, "getBill", r#""tableNumber":"12""#);
    assert_eq!(v["state"], "SUCCESS", "{text}");
    assert_eq!(
        v["orders"].as_array().unwrap().len(),
        1,
        "the paid check is not open"
    );
    let o = &v["orders"][0];
    assert_eq!(o["billId"], "1", "an integer id, as text");
    assert_eq!(o["created"], "2024.05.14 18:21:07");
    assert_eq!(o["waiter"], "Оксана Мельник");
    assert_eq!(o["waiterId"], "17");
    assert!(
        text.contains(r#""rawSum":410.00"#) && text.contains(r#""totalSum":389.50"#),
        "{text}"
    );
    assert!(text.contains(r#""count":1.3,"sum":845.00"#), "{text}");
    assert_eq!(o["guests"][0]["dishes"][1]["linkedTo"], "1");
    assert_eq!(o["discounts"]["list"][0]["sum"], 20.5);

    let (v, _) = call(&ctx, "usersInfo", "");
    assert_eq!(
        v["users"],
        json!([{"id":"17","name":"Оксана Мельник","cellPhone":"+380671234567","roles":"Офіціант, Менеджер"}])
    );
    let (v, text) = call(&ctx, "menuInfo", "");
    let d = find(&v["dishes"], "205");
    assert_eq!(d["price"], 95.0);
    assert_eq!(d["groupModifiers"][0]["childModifiers"][0]["id"], "12");
    assert_eq!(find(&v["dishes"], "330")["isActive"], false);
    assert!(text.contains(r#""price":0.10"#), "{text}");
    assert_eq!(find(&v["modifiers"], "12")["groupId"], "7");
    assert_eq!(v["hostTerminalsGroup"]["name"], "Основна каса");
    let (v, text) = call(&ctx, "stopList", "");
    assert!(
        text.contains(r#"{"id":"905","quantity":1.3,"productId":"905","balance":1}"#),
        "{text}"
    );
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let v = check(
        &ctx,
        r#"[{"id":"905","quantity":1.3,"modifier":[{"id":"12","quantity":1}]}]"#,
    );
    assert_eq!(v["result"]["itemResults"][0]["available"], true);
    assert_eq!(v["result"]["itemResults"][1]["available"], false);
    assert_eq!(v["result"]["checkResult"], "NOT_AVAILABLE");
    let (v, _) = call(&ctx, "categoriesInfo", "");
    assert_eq!(v["categories"].as_array().unwrap().len(), 2);
    let (v, _) = call(&ctx, "hallplansInfo", "");
    assert_eq!(v["hallPlans"], json!([{"id":"1","name":"Головна зала"}]));
    let (v, _) = call(&ctx, "tablesInfo", "");
    assert_eq!(
        v["tables"],
        json!([{"id":"5","name":"Біля вікна","number":12,"hallplanId":"1","hallPlanId":"1"}])
    );
}
