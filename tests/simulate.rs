//! `expirenza-agent simulate` through the real binary, with the simulated POS (in this process)
//! applying what it journals: the answer the cloud would get, the journal row, the POS's
//! ledger; and a dry run (no `--yes`) that writes nothing.

#[path = "support/binary.rs"]
mod binary;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection};
use serde_json::Value;
use testkit::sim_pos;

const BILL1: &str = "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11"; // table 12, total 389.50
const BILL2: &str = "4afc3774-cc50-4e07-ad81-dd65f166244a"; // table 7, splittable
const DERUNY: &str = "c53e1948-7ffe-4dea-8e25-9e6773fa8768"; // on BILL2: 2 × (240.00 total)
const T: Duration = Duration::from_secs(60);

struct Site {
    dir: PathBuf,
    config: PathBuf,
    mirror: PathBuf,
    journal: PathBuf,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn site(tag: &str) -> Site {
    let dir = binary::temp_dir(tag);
    let mirror = binary::demo_mirror(&dir);
    let config = binary::write_config(
        &dir,
        &format!(
            "resto_id = \"r-sim\"\nstate_dir = \"{0}\"\nruntime_dir = \"{0}\"\n\
             [journal]\npos_ack_timeout_secs = 20\npoll_interval_ms = 20\n",
            dir.display()
        ),
    );
    let journal = dir.join("journal.sqlite");
    Site {
        dir,
        config,
        mirror,
        journal,
    }
}

impl Site {
    fn simulate(&self, args: &[&str]) -> binary::Output {
        let mut all = vec!["simulate"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--config", self.config.to_str().unwrap()]);
        binary::run_once(binary::command(&all), b"", T)
    }
    fn pos(&self) -> sim_pos::Running {
        sim_pos::spawn(&self.journal, &self.mirror, Duration::from_millis(10)).unwrap()
    }
    fn rows(&self) -> i64 {
        if !self.journal.exists() {
            return 0;
        }
        Connection::open(&self.journal)
            .unwrap()
            .query_row("SELECT count(*) FROM commands", [], |r| r.get(0))
            .unwrap()
    }
}

/// The JSON after `prefix` on its line of stdout.
fn json_after(out: &str, prefix: &str) -> Value {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{out}"));
    serde_json::from_str(line).unwrap()
}

const ANSWER: &str = "answer (the body the cloud would receive): ";

fn mirror_q(m: &Path, sql: &str) -> i64 {
    Connection::open(m)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn pay_bill_with_yes_is_journaled_applied_by_the_pos_and_answered_success() {
    let s = site("sim-pay");
    let _pos = s.pos();
    let out = s.simulate(&[
        "payBill",
        "--bill",
        BILL1,
        "--sum",
        "389.50",
        "--tips",
        "19.24",
        "--fiscal",
        "ЕКВАЙЕР=Universal Bank",
        "--yes",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let req = json_after(&out.stdout, "request: ");
    let rid = req["rID"].as_str().unwrap();
    assert!(rid.starts_with("simulated-"), "{rid}");
    assert_eq!(req["fiscalData"][0]["value"], "Universal Bank");
    let a = json_after(&out.stdout, ANSWER);
    assert_eq!(a["state"], "SUCCESS", "{a}");
    assert_eq!(a["rID"], rid);
    assert_eq!(a["orderNumber"], 1842);
    assert!(out.stdout.contains("status     applied"), "{}", out.stdout);
    let (status, tips, request): (String, i64, String) = Connection::open(&s.journal)
        .unwrap()
        .query_row(
            "SELECT status, tips_kop, request FROM commands WHERE rid = ?1",
            params![rid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), tips), ("applied", 1924));
    assert!(request.contains("Universal Bank"));
    assert_eq!(
        mirror_q(
            &s.mirror,
            &format!("SELECT count(*) FROM pos_payments WHERE bill_id = '{BILL1}'")
        ),
        1
    );
}

#[test]
fn a_dry_run_writes_nothing_and_says_what_would_happen() {
    let s = site("sim-dry");
    // Right sum: it would go to the POS (exit 0), nothing journaled.
    let out = s.simulate(&["payBill", "--bill", BILL1, "--sum", "389.50"]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("status     pending"), "{}", out.stdout);
    assert!(out.stdout.contains("dry run: nothing was written"));
    assert_eq!(s.rows(), 0, "nothing written");
    // Wrong sum: the agent's answer and the review row it would keep (exit 1).
    let out = s.simulate(&["payBill", "--bill", BILL1, "--sum", "410.00"]);
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert_eq!(
        json_after(&out.stdout, ANSWER)["substate"],
        "WRONG_REQUEST_SUM"
    );
    assert!(out.stdout.contains("status     review"), "{}", out.stdout);
    assert_eq!(s.rows(), 0, "nothing written");
    // A dry run sees the real journal: once paid, a new rID for the bill is a repeat.
    {
        let _pos = s.pos();
        let out = s.simulate(&["payBill", "--bill", BILL1, "--sum", "389.50", "--yes"]);
        assert_eq!(out.code, Some(0), "{}", out.all());
    }
    let out = s.simulate(&["payBill", "--bill", BILL1, "--sum", "389.50"]);
    assert!(
        out.stdout.contains("substate   DUPLICATE_PAYMENT"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("dup_of     #1"), "{}", out.stdout);
    assert_eq!(s.rows(), 1, "still only the real payment");
}

#[test]
fn split_order_and_create_order_and_show_message_with_yes() {
    let s = site("sim-ops");
    let _pos = s.pos();
    let out = s.simulate(&[
        "splitOrder",
        "--bill",
        BILL2,
        "--position",
        &format!("{DERUNY}:1"),
        "--yes",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let req = json_after(&out.stdout, "request: ");
    assert_eq!(
        req["controlSum"].as_f64(),
        Some(120.0),
        "half of 240.00: {req}"
    );
    let a = json_after(&out.stdout, ANSWER);
    assert_eq!(a["state"], "SUCCESS", "{a}");
    assert_eq!(a["orders"].as_array().unwrap().len(), 2);
    assert_eq!(a["orders"][1]["rootBillId"], BILL2);
    assert_eq!(a["orders"][1]["totalSum"].as_f64(), Some(120.0));

    let out = s.simulate(&[
        "createOrderOnTable",
        "--table",
        "12",
        "--item",
        "m-101:2",
        "--item",
        "m-330",
        "--yes",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    let req = json_after(&out.stdout, "request: ");
    assert_eq!(req["tableId"], "table-12", "the number is looked up: {req}");
    let a = json_after(&out.stdout, ANSWER);
    assert_eq!(a["result"]["success"], true, "{a}");
    assert_eq!(a["result"]["rootOrder"]["resultSum"].as_f64(), Some(350.0));

    let out = s.simulate(&[
        "showMessage",
        "--text",
        "Гість просить рахунок",
        "--warning",
        "--yes",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(out.stdout.contains("status     applied"), "{}", out.stdout);
    assert_eq!(
        mirror_q(
            &s.mirror,
            "SELECT count(*) FROM pos_messages WHERE request LIKE '%рахунок%'"
        ),
        1
    );
}

#[test]
fn usage_mistakes_name_the_missing_option() {
    let s = site("sim-usage");
    let out = s.simulate(&["payBill", "--bill", BILL1]);
    assert_eq!(out.code, Some(2), "{}", out.all());
    assert!(out.stderr.contains("--sum"), "{}", out.stderr);
    let out = s.simulate(&["getBill"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("payBill, splitOrder"), "{}", out.stderr);
    assert_eq!(s.rows(), 0);
}
