//! `expirenza-agent check` proves the mirror: the mistakes an integrator makes mapping a POS
//! (views with INTEGER ids, REAL kopecks, an unmapped state, ISO dates, a discount larger than
//! the lines, duplicate table numbers, bills and lines pointing at nothing) are each an error
//! naming the table, the column and the fix; doubtful data (totals that do not add up,
//! quantities in units) a warning with its reason. Errors exit 1, warnings 0 (1 with
//! `--strict`), `--json` gives the same as one JSON object. The same wrong storage class met
//! at run time names the table, the column and the fix too, in every column every operation
//! reads, joined ones included (a dish's category name is `categories.name`).

mod mirror_fixture;

use std::path::{Path, PathBuf};

use expirenza_agent::check::report::{self, MirrorReport, Served};
use expirenza_agent::mirror::audit::Severity;
use mirror_fixture::*;
use serde_json::Value;

const BILL_1: &str = "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11";

/// `orders` as a view over the demo's bills (renamed `pos_orders`), with `state` and
/// `created` given by the integrator's expressions, and the sums by theirs.
fn orders_view(m: &TempMirror, state: &str, created: &str, total: &str) {
    m.exec(&format!(
        "ALTER TABLE orders RENAME TO pos_orders;
         CREATE VIEW orders AS SELECT bill_id, order_number, table_id, {state} AS state,
           {created} AS created, waiter_id, waiter_name, raw_sum_kop, {total} AS total_sum_kop,
           bonus_sum_kop, is_banquet, is_delivery, split_available, root_bill_id, payment_type,
           pricing_time FROM pos_orders;"
    ));
}

fn build(m: &TempMirror) -> MirrorReport {
    report::build(&m.config(), report::DEFAULT_SAMPLE)
}

/// The finding on `table.column` of `severity`, as JSON (it must exist).
fn finding(r: &MirrorReport, severity: Severity, table: &str, column: &str) -> Value {
    let f = r
        .findings
        .iter()
        .find(|f| f.severity == severity && f.table == table && f.column.as_deref() == Some(column))
        .unwrap_or_else(|| panic!("no {severity:?} on {table}.{column} in {:#?}", r.findings));
    serde_json::to_value(f).unwrap()
}

fn op<'r>(r: &'r MirrorReport, name: &str) -> &'r report::OpReport {
    r.operations
        .iter()
        .find(|o| o.operation == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn the_demo_restaurant_is_proved_without_a_finding() {
    let m = TempMirror::demo("check-demo");
    let r = build(&m);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!((r.errors(), r.warnings()), (0, 0));
    let get_bill = op(&r, "getBill");
    assert_eq!(get_bill.served, Served::Ok);
    assert_eq!(
        get_bill.ran.as_deref(),
        Some("12 table(s) by number and 4 open bill(s) by id")
    );
    assert!(get_bill.kept.as_ref().unwrap().kept, "real tables: kept");
    assert!(r.scans.iter().all(|s| s.all), "every row read");
}

#[test]
fn integer_ids_in_a_view_are_an_error_with_the_cast() {
    let m = TempMirror::demo("check-int-ids");
    m.exec(
        "ALTER TABLE tables RENAME TO pos_tables;
         CREATE VIEW tables AS SELECT rowid AS id, number, name, hall_id FROM pos_tables;",
    );
    let r = build(&m);
    let f = finding(&r, Severity::Error, "tables", "id");
    assert!(
        f["problem"]
            .as_str()
            .unwrap()
            .contains("INTEGER where the agent reads TEXT"),
        "{f}"
    );
    assert_eq!(
        f["fix"],
        "write CAST(id AS TEXT) in the view or the sync job"
    );
    // Running getBill met the same thing, explained the same way.
    let get_bill = op(&r, "getBill");
    assert_eq!(get_bill.served, Served::Fail);
    let msg = &get_bill.errors[0].message;
    assert!(
        msg.contains("tables.id holds INTEGER where the agent reads TEXT")
            && msg.contains("CAST(id AS TEXT)"),
        "{msg}"
    );
    assert_eq!(get_bill.errors[0].requests, 12, "every table was asked");
    let kept = op(&r, "tablesInfo").kept.as_ref().unwrap();
    assert!(
        !kept.kept && kept.why.contains("'tables' is a view"),
        "{kept:?}"
    );
    assert!(r.errors() > 0);
}

#[test]
fn a_wrong_storage_class_at_run_time_names_the_view_column_and_fix() {
    let m = TempMirror::demo("check-run-time");
    m.exec(
        "ALTER TABLE tables RENAME TO pos_tables;
         CREATE VIEW tables AS SELECT rowid AS id, number, name, hall_id FROM pos_tables;",
    );
    let ctx = m.ctx();
    for (op, extra) in [("getBill", r#""tableNumber":"12""#), ("tablesInfo", "")] {
        let (v, _) = call(&ctx, op, extra);
        assert_fail(&v, "POS_UNAVAILABLE", "tables.id holds INTEGER");
        let msg = v["errorMessage"].as_str().unwrap();
        assert!(msg.contains("CAST(id AS TEXT)"), "{op}: {msg}");
        assert!(!msg.contains("Invalid column type"), "{op}: {msg}");
    }
    // The menu too: REAL hryvnia where kopecks are read.
    m.exec(
        "ALTER TABLE menu_items RENAME TO pos_items;
         CREATE VIEW menu_items AS SELECT id, name, description, price_kop / 100.0 AS price_kop,
           category_id, group_id, is_active, type, unit, vendor_code, tax_category,
           tax_category_id, scale_id, scale_name, scale_size_id, scale_size_name,
           scale_size_kitchen_name, scale_size_menu_index FROM pos_items;",
    );
    let (v, _) = call(&ctx, "menuInfo", "");
    assert_fail(&v, "POS_UNAVAILABLE", "menu_items.price_kop holds REAL");
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(
        msg.contains("CAST(ROUND(price_kop * 100) AS INTEGER)"),
        "{msg}"
    );
}

/// `table` replaced by a view over it (renamed `pos_<table>`) with every column as stored but
/// `column`, which is `expr`.
fn column_view(m: &TempMirror, table: &str, column: &str, expr: &str) {
    let cols: Vec<String> = m
        .conn()
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .unwrap()
        .query_map([table], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let select: Vec<String> = cols
        .iter()
        .map(|c| match c == column {
            true => format!("{expr} AS {c}"),
            false => c.clone(),
        })
        .collect();
    m.exec(&format!(
        "ALTER TABLE {table} RENAME TO pos_{table};
         CREATE VIEW {table} AS SELECT {} FROM pos_{table};",
        select.join(", ")
    ));
}

#[test]
fn a_joined_column_of_the_menu_is_named_with_its_own_table() {
    // A dish's category name comes from `categories`, read in the dishes' query.
    let m = TempMirror::demo("check-joined-category");
    column_view(&m, "categories", "name", "length(name)");
    let (v, _) = call(&m.ctx(), "menuInfo", "");
    assert_fail(&v, "POS_UNAVAILABLE", "categories.name holds INTEGER");
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(
        msg.contains("write CAST(name AS TEXT) in the view"),
        "{msg}"
    );
    assert!(!msg.contains("menu_items"), "{msg}");

    // A dish's own modifier: the link table's flag, read beside the dishes.
    let m = TempMirror::demo("check-joined-required");
    column_view(&m, "menu_item_modifiers", "required", "required + 0.0");
    let (v, _) = call(&m.ctx(), "menuInfo", "");
    assert_fail(
        &v,
        "POS_UNAVAILABLE",
        "menu_item_modifiers.required holds REAL",
    );
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(msg.contains("CAST(ROUND(required) AS INTEGER)"), "{msg}");

    // A child of a group modifier, read joined to its group.
    let m = TempMirror::demo("check-joined-child");
    column_view(
        &m,
        "group_modifier_children",
        "max_amount",
        "max_amount / 2.0",
    );
    let (v, _) = call(&m.ctx(), "menuInfo", "");
    assert_fail(
        &v,
        "POS_UNAVAILABLE",
        "group_modifier_children.max_amount holds REAL",
    );
    let msg = v["errorMessage"].as_str().unwrap();
    assert!(msg.contains("CAST(ROUND(max_amount) AS INTEGER)"), "{msg}");
}

#[test]
fn integer_dish_ids_are_read_as_text_by_every_operation() {
    // The contract takes a dish's id in any storage class (the agent casts it): a POS whose
    // menu is keyed by integers serves every operation as it is.
    let m = TempMirror::demo("check-int-dish-ids");
    column_view(&m, "menu_items", "id", "rowid");
    column_view(&m, "modifiers", "id", "rowid");
    let r = build(&m);
    for o in &r.operations {
        assert!(o.errors.is_empty(), "{}: {:#?}", o.operation, o.errors);
    }
    assert_eq!(
        op(&r, "createOrderOnTable").ran.as_deref(),
        Some("12 table(s) and 18 menu item(s) and modifier(s) looked up by id")
    );
}

/// Columns that choose the rows `check` reads (the open bills, a bill's lines and discounts):
/// a wrong storage class there chooses none instead of failing (its row audit names them).
const ONLY_COMPARED: &[&str] = &[
    "orders.state",
    "order_positions.bill_id",
    "order_discounts.bill_id",
];

/// What running every operation (as `check` does) over the demo says when `table.column` holds
/// storage class `found` (as `expr` gives it): each problem with the messages, in words.
fn problems_with(
    demo: &TempMirror,
    table: &str,
    col: &expirenza_agent::mirror::contract::Column,
    expr: &str,
    found: &str,
) -> Vec<String> {
    let name = format!("{table}.{}", col.name);
    let m = TempMirror::empty("check-every-column");
    std::fs::copy(&demo.path, &m.path).unwrap();
    column_view(&m, table, col.name, expr);
    let r = build(&m);
    let named = format!("{name} holds {}", found.to_uppercase());
    let fix = format!(
        "write {} in the view or the sync job",
        expirenza_agent::mirror::contract::fix(col.kind, col.name, found)
    );
    let mut problems = Vec::new();
    let mut met = false;
    for o in &r.operations {
        for e in &o.errors {
            let (op, msg) = (o.operation, &e.message);
            met |= msg.contains(&named);
            if msg.contains("Invalid column type") || msg.contains("column '") {
                problems.push(format!("{name}: {op} names no table: {msg}"));
            } else if msg.contains(" holds ") && !(msg.contains(&named) && msg.contains(&fix)) {
                problems.push(format!("{name}: {op} should say {named:?}, {fix:?}: {msg}"));
            }
        }
    }
    if met == ONLY_COMPARED.contains(&name.as_str()) {
        problems.push(format!("{name}: an operation met it: {met}"));
    }
    problems
}

#[test]
fn every_column_of_the_wrong_storage_class_is_named_at_run_time() {
    use expirenza_agent::mirror::contract::{self, Kind};
    let demo = TempMirror::demo("check-every-column");
    // What a POS would wrongly give: a number where text is read, a REAL where an integer is.
    let cases: Vec<_> = contract::TABLES
        .iter()
        .flat_map(|t| t.columns.iter().map(move |c| (t.name, c)))
        .filter_map(|(t, c)| match c.kind {
            Kind::Text | Kind::Date => Some((t, c, "7", "integer")),
            Kind::Int | Kind::Flag | Kind::Kop | Kind::Milli => Some((t, c, "1.5", "real")),
            Kind::AnyText | Kind::SortOnly => None,
        })
        .collect();
    assert!(cases.len() > 60, "{} columns", cases.len());
    // Each case is a mirror file of its own; four at a time (they mostly wait on the disk).
    let chunk = cases.len().div_ceil(4);
    let problems: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = cases
            .chunks(chunk)
            .map(|part| {
                let demo = &demo;
                s.spawn(move || {
                    part.iter()
                        .flat_map(|(t, c, expr, found)| problems_with(demo, t, c, expr, found))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn real_kopecks_are_an_error_with_the_rounding_cast() {
    let m = TempMirror::demo("check-real-kop");
    orders_view(&m, "state", "created", "total_sum_kop / 100.0");
    let r = build(&m);
    let f = finding(&r, Severity::Error, "orders", "total_sum_kop");
    assert!(f["problem"]
        .as_str()
        .unwrap()
        .contains("REAL where the agent reads INTEGER kopecks"));
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("CAST(ROUND(total_sum_kop * 100) AS INTEGER)"),
        "{f}"
    );
    let msg = &op(&r, "getBill").errors[0].message;
    assert!(msg.contains("orders.total_sum_kop holds REAL"), "{msg}");
    assert_eq!(
        op(&r, "payBill").served,
        Served::Fail,
        "payBill reads the bill whole too"
    );
}

#[test]
fn an_unmapped_state_and_iso_dates_are_errors() {
    let m = TempMirror::demo("check-state-dates");
    orders_view(
        &m,
        "CASE state WHEN 'NEW' THEN 'open' ELSE state END",
        "replace(replace(created, '.', '-'), ' ', 'T')",
        "total_sum_kop",
    );
    let r = build(&m);
    let state = finding(&r, Severity::Error, "orders", "state");
    assert!(
        state["problem"].as_str().unwrap().contains("'open'"),
        "{state}"
    );
    assert!(
        state["fix"].as_str().unwrap().contains("CASE status"),
        "{state}"
    );
    let created = finding(&r, Severity::Error, "orders", "created");
    assert!(
        created["problem"]
            .as_str()
            .unwrap()
            .contains("2024-05-14T18:21:07"),
        "{created}"
    );
    assert!(created["fix"]
        .as_str()
        .unwrap()
        .contains("strftime('%Y.%m.%d %H:%M:%S'"));
}

#[test]
fn dates_that_are_not_on_the_calendar_are_errors() {
    for (bad, why) in [
        ("2024.19.05 18:21:07", "month 19"),
        ("2024.05.14 29:21:07", "hour 29"),
        ("2025.02.29 12:00:00", "29 February of a common year"),
        ("2024.04.31 12:00:00", "31 April"),
    ] {
        let m = TempMirror::demo("check-calendar");
        orders_view(
            &m,
            "state",
            &format!("CASE WHEN rowid = 1 THEN '{bad}' ELSE created END"),
            "total_sum_kop",
        );
        let r = build(&m);
        let created = finding(&r, Severity::Error, "orders", "created");
        assert!(
            created["problem"].as_str().unwrap().contains(bad),
            "{why}: {created}"
        );
    }
    // 29 February of a leap year is a date.
    let m = TempMirror::demo("check-calendar-leap");
    orders_view(
        &m,
        "state",
        "CASE WHEN rowid = 1 THEN '2024.02.29 23:59:59' ELSE created END",
        "total_sum_kop",
    );
    let r = build(&m);
    assert!(
        !r.findings
            .iter()
            .any(|f| f.column.as_deref() == Some("created")),
        "{:#?}",
        r.findings
    );
}

#[test]
fn negative_sums_duplicate_numbers_and_orphans_are_errors() {
    let m = TempMirror::demo("check-semantics");
    m.exec(&format!(
        "PRAGMA foreign_keys = OFF;
         UPDATE orders SET total_sum_kop = -2050 WHERE bill_id = '{BILL_1}';
         INSERT INTO orders (bill_id, order_number, table_id, state, created)
           VALUES ('b-lost', 77, 'table-404', 'NEW', '2024.05.14 19:00:00');
         INSERT INTO order_positions (bill_id, position_id, line_no, name, count_milli, sum_kop)
           VALUES ('b-ghost', 'p-1', 1, 'Борщ', 1000, 14500);
         ALTER TABLE tables RENAME TO pos_tables;
         CREATE VIEW tables AS SELECT id, number, name, hall_id FROM pos_tables
           UNION ALL SELECT 'table-12b', 12, 'Дубль', NULL;"
    ));
    let r = build(&m);
    let neg = finding(&r, Severity::Error, "orders", "total_sum_kop");
    assert!(
        neg["problem"].as_str().unwrap().contains("negative"),
        "{neg}"
    );
    let dup = finding(&r, Severity::Error, "tables", "number");
    assert!(dup["problem"].as_str().unwrap().contains("12 ×2"), "{dup}");
    let lost = finding(&r, Severity::Error, "orders", "table_id");
    assert!(
        lost["problem"].as_str().unwrap().contains("table-404"),
        "{lost}"
    );
    let ghost = finding(&r, Severity::Error, "order_positions", "bill_id");
    assert!(
        ghost["problem"].as_str().unwrap().contains("b-ghost"),
        "{ghost}"
    );
    // The negative total also does not add up: a warning, with its arithmetic.
    let sum = finding(&r, Severity::Warning, "orders", "total_sum_kop");
    assert!(
        sum["problem"].as_str().unwrap().contains("totalSum -20.50"),
        "{sum}"
    );
}

#[test]
fn doubtful_totals_and_quantities_in_units_are_warnings() {
    let m = TempMirror::demo("check-warnings");
    m.exec(&format!(
        "UPDATE orders SET total_sum_kop = total_sum_kop + 100 WHERE bill_id = '{BILL_1}';
         UPDATE order_positions SET count_milli = count_milli / 1000;
         UPDATE order_positions SET count_milli = 0 WHERE position_id = 'p-3';"
    ));
    let r = build(&m);
    assert_eq!(r.errors(), 0, "{:#?}", r.findings);
    let sum = finding(&r, Severity::Warning, "orders", "total_sum_kop");
    assert!(
        sum["problem"]
            .as_str()
            .unwrap()
            .contains("totalSum 390.50 but rawSum 410.00 − discounts 20.50 − bonus 0.00 = 389.50"),
        "{sum}"
    );
    let units: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.column.as_deref() == Some("count_milli"))
        .map(|f| f.problem.as_str())
        .collect();
    assert!(
        units.iter().any(|p| p.contains("look like units")),
        "{units:?}"
    );
    assert!(units.iter().any(|p| p.contains("quantity 0")), "{units:?}");
}

// ------------------------------------------------------------------ the command's exit and JSON

fn config(m: &TempMirror) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = m.dir.join("agent.toml");
    std::fs::write(
        &p,
        format!(
            "resto_id = \"r\"\npartner_id = \"p\"\nmirror_path = \"{}\"\nstate_dir = \"{}\"\n\
             runtime_dir = \"{}\"\n",
            m.path.display(),
            m.dir.join("state").display(),
            m.dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn check(cfg: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_expirenza-agent"))
        .arg("check")
        .arg("--config")
        .arg(cfg)
        .args(extra)
        .env_remove("EXPIRENZA_SECRET_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn errors_exit_1_warnings_0_or_1_with_strict_and_json_says_the_same() {
    let m = TempMirror::demo("check-exit");
    let cfg = config(&m);
    let (code, out) = check(&cfg, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.trim_end().ends_with("OK"), "{out}");

    m.exec(&format!(
        "UPDATE orders SET total_sum_kop = total_sum_kop + 100 WHERE bill_id = '{BILL_1}';"
    ));
    let (code, out) = check(&cfg, &[]);
    assert_eq!(code, Some(0), "warnings only: {out}");
    assert!(out.contains("WARN         orders.total_sum_kop:"), "{out}");
    assert!(out.contains("OK           with 1 warning(s)"), "{out}");
    let (code, out) = check(&cfg, &["--strict"]);
    assert_eq!(code, Some(1), "{out}");

    m.exec("UPDATE order_positions SET sum_kop = sum_kop / 100.0 WHERE position_id = 'p-1';");
    let (code, out) = check(&cfg, &["--json"]);
    assert_eq!(code, Some(1), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["result"], "fail");
    assert_eq!(v["exit"], 1);
    let errors: Vec<&Value> = v["mirror"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["table"], "order_positions");
    assert_eq!(errors[0]["column"], "sum_kop");
    assert!(errors[0]["fix"]
        .as_str()
        .unwrap()
        .contains("CAST(ROUND(sum_kop * 100) AS INTEGER)"));
    let get_bill = v["mirror"]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == "getBill")
        .unwrap();
    assert_eq!(get_bill["served"], "fail", "{get_bill}");
    assert!(
        v["errors"].as_u64().unwrap() >= 2,
        "the finding and the failing operations"
    );
    assert_eq!(v["warnings"], 1);
}

#[test]
fn a_sample_bounds_the_rows_and_requests_and_the_report_says_so() {
    let m = TempMirror::demo("check-sample");
    // A paid bill past the first rows, with a negative total: only a whole read sees it (no
    // operation reads a paid bill).
    m.exec(
        "INSERT INTO orders (bill_id, order_number, table_id, state, created, total_sum_kop)
           VALUES ('b-late', 9001, 'table-1', 'PAYED', '2024.05.14 23:00:00', -100);",
    );
    let cfg = config(&m);

    let (code, whole) = check(&cfg, &["--json"]);
    assert_eq!(code, Some(1), "{whole}");
    let whole: Value = serde_json::from_str::<Value>(&whole).unwrap()["mirror"].clone();
    assert_eq!(whole["sample"], 100_000);
    assert!(
        whole["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["table"] == "orders" && f["column"] == "total_sum_kop"),
        "{whole:#}"
    );

    let (code, sampled) = check(&cfg, &["--json", "--sample", "2"]);
    assert_eq!(code, Some(0), "the bad row is past the sample: {sampled}");
    let sampled: Value = serde_json::from_str::<Value>(&sampled).unwrap()["mirror"].clone();
    assert_eq!(sampled["sample"], 2);
    assert_eq!(sampled["findings"], Value::Array(vec![]), "{sampled:#}");
    // Every table is read to 2 rows; those that have more say they were not read whole.
    for s in sampled["scans"].as_array().unwrap() {
        let rows = s["rows"].as_u64().unwrap();
        assert!(rows <= 2, "{s}");
        let more = ["tables", "orders", "order_positions", "menu_items"];
        if more.contains(&s["table"].as_str().unwrap()) {
            assert_eq!((rows, &s["all"]), (2, &Value::Bool(false)), "{s}");
        }
    }
    // And at most 2 requests of each kind.
    let ran = |name: &str| {
        sampled["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["operation"] == name)
            .unwrap()["ran"]
            .clone()
    };
    assert_eq!(
        ran("getBill"),
        "2 table(s) by number and 2 open bill(s) by id"
    );
    assert_eq!(ran("payBill"), "2 open bill(s) read whole by id");

    // The text says which tables were read in part and how to read more.
    let (_, text) = check(&cfg, &["--sample", "2"]);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("rows"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("every row checked but in tables (first 2 rows)")
            && line.contains("orders (first 2 rows)")
            && line.contains("(check --sample N reads more)"),
        "{line}"
    );
    let (_, text) = check(&cfg, &[]);
    assert!(text.contains("  rows       every row checked\n"), "{text}");
}

#[test]
fn a_missing_or_corrupt_mirror_is_named_not_panicked() {
    let m = TempMirror::demo("check-bad-file");
    let cfg = config(&m);
    std::fs::write(
        &m.path,
        b"this is not an SQLite file, it is a text file of 64 bytes......",
    )
    .unwrap();
    let (code, out) = check(&cfg, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL         the POS mirror cannot be read"),
        "{out}"
    );
    std::fs::remove_file(&m.path).unwrap();
    let (code, out) = check(&cfg, &["--json"]);
    assert_eq!(code, Some(1), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["mirror"]["unreadable"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{v}"
    );
}

/// The worked example of docs/mirror.md is the reference POS's (contrib/pos/kasapro/: integer
/// ids, hryvnia as REAL, ISO dates and its own status codes, mapped by views; tests/read_ops.rs
/// checks that the page quotes those files). With its demo restaurant, `check` proves it clean,
/// as the page says it should; its operations read views, so their answers are not kept.
#[test]
fn the_worked_example_of_the_mirror_doc_proves_clean() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read =
        |p: &str| std::fs::read_to_string(format!("{root}/contrib/pos/kasapro/{p}")).unwrap();
    let m = TempMirror::empty("check-worked-example");
    std::fs::remove_file(&m.path).unwrap();
    let c = rusqlite::Connection::open(&m.path).unwrap();
    c.execute_batch(&read("schema.sql")).unwrap();
    c.execute_batch(&read("mirror_views.sql")).unwrap();
    c.execute_batch(&read("demo.sql")).unwrap();
    drop(c);
    let r = build(&m);
    assert!(r.unreadable.is_none(), "{:?}", r.unreadable);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    for o in &r.operations {
        assert_eq!(o.served, Served::Ok, "{o:#?}");
    }
    let ran = op(&r, "getBill")
        .ran
        .as_deref()
        .unwrap_or_default()
        .to_string();
    assert!(ran.starts_with("12 table(s) by number and "), "{ran}");
    let kept = op(&r, "getBill").kept.as_ref().unwrap();
    assert!(!kept.kept && kept.why.contains("is a view"), "{kept:?}");
    let (v, _) = call(&m.ctx(), "getBill", r#""tableNumber":"12""#);
    assert_eq!(v["orders"][0]["totalSum"], 389.5, "{v}");
}

/// A view over a POS table that is gone cannot be read at all: that table is an error of its
/// own (with SQLite's message), its operations fail, and every other table is still checked.
#[test]
fn a_broken_view_is_named_and_the_rest_still_checked() {
    let m = TempMirror::demo("check-broken-view");
    m.exec(
        "PRAGMA foreign_keys = OFF;
         ALTER TABLE halls RENAME TO pos_halls;
         CREATE VIEW halls AS SELECT id, name FROM pos_halls;
         DROP TABLE pos_halls;",
    );
    let r = build(&m);
    let broken = r
        .findings
        .iter()
        .find(|f| f.table == "halls" && f.column.is_none())
        .unwrap_or_else(|| panic!("{:#?}", r.findings));
    assert!(
        broken.problem.contains("main.pos_halls"),
        "SQLite names what is gone: {broken:?}"
    );
    assert_eq!(
        op(&r, "hallplansInfo").served,
        Served::Fail,
        "{:#?}",
        op(&r, "hallplansInfo")
    );
    assert_eq!(op(&r, "getBill").served, Served::Ok);
    assert!(
        r.scans.iter().any(|s| s.table == "orders"),
        "orders still checked"
    );
}

/// A mirror a writer keeps locked is said to be busy, with the wait it gave; no panic.
#[test]
fn a_locked_mirror_is_named_busy() {
    let m = TempMirror::demo("check-locked");
    m.exec("PRAGMA journal_mode = DELETE;");
    let writer = m.conn();
    writer.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let mut cfg = m.config();
    cfg.mirror.busy_timeout_ms = 100;
    let r = report::build(&cfg, report::DEFAULT_SAMPLE);
    let why = r.unreadable.as_deref().unwrap_or_default();
    assert!(why.contains("busy") && why.contains("100 ms"), "{why}");
    assert!(r.errors() > 0);
    writer.execute_batch("COMMIT;").unwrap();
}
