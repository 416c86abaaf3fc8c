//! The command line as a person or a script meets it: each command's own `--help`, mistakes
//! named with the command's usage, read-only commands that need no secret, and one-shot
//! commands that keep stderr quiet unless `-v`.

use std::path::{Path, PathBuf};
use std::process::Output;

use expirenza_agent::cli::COMMANDS;
use expirenza_agent::journal::Journal;
use expirenza_agent::Config;

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("expirenza-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn agent(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_expirenza-agent"))
        .args(args)
        .env_remove("EXPIRENZA_SECRET_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A config as the .deb documents it: the secret is a credential of the service, so the
/// technician's shell has none.
fn config_without_secret(dir: &Path) -> PathBuf {
    let mirror = dir.join("mirror.sqlite");
    let mut conn = expirenza_agent::mirror::create_schema(&mirror).unwrap();
    expirenza_agent::mirror::demo::fill(&mut conn).unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "resto_id = \"resto-cli\"\nstate_dir = \"{0}\"\nruntime_dir = \"{0}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn each_command_prints_its_own_usage() {
    for c in COMMANDS {
        for flag in ["--help", "-h"] {
            let out = agent(&[c.name, flag]);
            assert_eq!(out.status.code(), Some(0), "{} {flag}", c.name);
            let stdout = text(&out.stdout);
            assert!(
                stdout.starts_with(&format!("expirenza-agent {}", c.name)),
                "{} {flag} printed:\n{stdout}",
                c.name
            );
            // Not the global usage, which lists every command.
            assert!(!stdout.contains("COMMANDS:"), "{} {flag}", c.name);
        }
    }
    let out = agent(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    for c in COMMANDS {
        assert!(
            text(&out.stdout).contains(c.name),
            "global usage lacks {}",
            c.name
        );
    }
}

#[test]
fn mistakes_are_named_with_the_usage_of_the_command() {
    let out = agent(&["journal", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: invalid option '--bogus'"), "{err}");
    assert!(err.contains("expirenza-agent journal ["), "{err}");
    let out = agent(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: unknown command 'frobnicate'"));
    let out = agent(&["preview"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("error: preview needs an OPERATION"));
}

#[test]
fn read_only_commands_need_no_secret() {
    let dir = Dir::new("nosecret");
    let cfg_path = config_without_secret(&dir.0);
    let cfg_text = cfg_path.to_str().unwrap();

    // journal: the file exists once the agent has journaled anything.
    let mut cfg = Config::for_loopback(
        "r",
        "s",
        "ws://127.0.0.1:1",
        "http://127.0.0.1:1",
        &dir.0,
        &dir.0,
    );
    cfg.state_dir = dir.0.clone();
    Journal::new(&cfg).open_by_status().unwrap();
    assert!(dir.0.join("journal.sqlite").exists());
    let out = agent(&["journal", "--config", cfg_text]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Quiet unless -v: nothing on stderr, not even the journal's "open" line.
    assert_eq!(text(&out.stderr), "");
    let out = agent(&["journal", "--config", cfg_text, "-v"]);
    assert_eq!(out.status.code(), Some(0));

    // status: reads the file the agent writes.
    let board = expirenza_agent::status::StatusBoard::new("resto-cli");
    board.link_up();
    expirenza_agent::status::snapshot::write(&dir.0.join("status"), &board.snapshot()).unwrap();
    let out = agent(&["status", "--config", cfg_text]);
    assert!(
        text(&out.stdout).contains("resto-cli"),
        "{}",
        text(&out.stdout)
    );
    // Quiet unless -v, as `journal`: nothing on stderr, the secret's absence included.
    assert_eq!(text(&out.stderr), "");
    let verbose = agent(&["status", "--config", cfg_text, "-v"]);
    assert_eq!(text(&verbose.stdout), text(&out.stdout));

    // check: runs, and says where the secret is and how to check it.
    let out = agent(&["check", "--config", cfg_text]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("secret       not loaded here"), "{stdout}");
    assert!(stdout.contains("CREDENTIALS_DIRECTORY="), "{stdout}");

    // What connects or signs still needs it, and says so.
    for args in [
        vec!["preview", "checkWork", "--config", cfg_text],
        vec!["check", "--online", "--config", cfg_text],
        vec!["run", "--config", cfg_text],
    ] {
        let out = agent(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains("no secret"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// A config with the secret, for what signs (`preview`).
fn config_with_secret(dir: &Path) -> PathBuf {
    let cfg = config_without_secret(dir);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("secret_key = \"cli-secret\"\n");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn preview_exits_1_on_a_fail_body_and_still_prints_it() {
    let dir = Dir::new("preview-fail");
    let cfg = config_with_secret(&dir.0);
    let cfg = cfg.to_str().unwrap();
    let out = agent(&["preview", "getBill", "--table", "12", "--config", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(r#""state":"SUCCESS""#));
    // No such table: the body the cloud would get is a FAIL, and a script sees it.
    let out = agent(&["preview", "getBill", "--table", "404", "--config", cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let body = text(&out.stdout);
    assert!(
        body.starts_with(r#"{"rID":"preview","state":"FAIL","substate":"TABLE_NOT_FOUND""#),
        "{body}"
    );
    assert!(
        text(&out.stderr).contains("signature: "),
        "the header still goes to stderr"
    );
    // A table without an open bill is a FAIL too.
    let out = agent(&["preview", "getBill", "--table", "1", "--config", cfg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("ORDER_NOT_FOUND"));
}

/// rIDs as the cloud sends them (UUIDs, and longer), bill ids of any length: the listing's
/// columns line up, and `--json` has every command.
#[test]
fn journal_lines_up_with_real_rids_and_offers_json() {
    let dir = Dir::new("journal-rids");
    let cfg_path = config_without_secret(&dir.0);
    let cfg_text = cfg_path.to_str().unwrap();
    let mut cfg = Config::for_loopback(
        "r",
        "s",
        "ws://127.0.0.1:1",
        "http://127.0.0.1:1",
        &dir.0,
        &dir.0,
    );
    cfg.state_dir = dir.0.clone();
    Journal::new(&cfg).open_by_status().unwrap();
    let rows = [
        (
            "3f2b8c1e-9a4d-4e57-b1c3-7d2e6f8a9b01",
            "payBill",
            "6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11",
            "applied",
        ),
        ("r-1", "showMessage", "", "applied"),
        (
            "a-much-longer-request-id-than-a-uuid-0123456789abcdef-0123456789",
            "createOrderOnTable",
            "ext-42",
            "pending",
        ),
    ];
    let db = rusqlite::Connection::open(dir.0.join("journal.sqlite")).unwrap();
    for (i, (rid, op, key, status)) in rows.iter().enumerate() {
        let (bill, ext) = if *op == "createOrderOnTable" {
            (None, Some(*key))
        } else {
            (Some(*key).filter(|k| !k.is_empty()), None)
        };
        db.execute(
            "INSERT INTO commands (rid, operation, bill_id, external_id, request, sum_kop, status, created_at) \
             VALUES (?1, ?2, ?3, ?4, '{}', ?5, ?6, ?7)",
            rusqlite::params![rid, op, bill, ext, 12920 * i as i64, status, 1_790_000_000_000i64 + i as i64],
        )
        .unwrap();
    }
    drop(db);
    let out = agent(&["journal", "--config", cfg_text]);
    assert_eq!(out.status.code(), Some(1), "a command is still pending");
    let listing = text(&out.stdout);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 5, "{listing}");
    // Every column starts at the same character on every line: where the header's rID and
    // sum columns start, each row's rID starts and its sum ends.
    let col = |l: &str, needle: &str| l.find(needle).map(|b| l[..b].chars().count());
    let rid_at = col(lines[0], "rID").unwrap();
    let key_at = col(lines[0], "bill / externalId").unwrap();
    for (line, (rid, _, key, _)) in lines[1..4].iter().zip(rows.iter()) {
        assert_eq!(col(line, rid), Some(rid_at), "{listing}");
        let key = if key.is_empty() { "-" } else { key };
        assert_eq!(
            col(line, &format!(" {key} ")).map(|c| c + 1),
            Some(key_at),
            "{listing}"
        );
    }
    let sum_end = |l: &str, s: &str| col(l, s).map(|c| c + s.chars().count());
    assert_eq!(
        sum_end(lines[0], "sum"),
        sum_end(lines[3], "258.40"),
        "{listing}"
    );
    assert!(
        lines[4].starts_with("total 3: pending 1, claimed 0, applied 2"),
        "{listing}"
    );

    let out = agent(&["journal", "--config", cfg_text, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"], 3);
    assert_eq!(v["counts"]["pending"], 1);
    assert_eq!(v["commands"][0]["rid"], rows[0].0);
    assert_eq!(v["commands"][2]["external_id"], "ext-42");
    assert_eq!(v["commands"][2]["sum_kop"], 25840);
}

#[test]
fn the_schemas_are_printable() {
    let out = agent(&["init-mirror", "--print-schema"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), expirenza_agent::mirror::SCHEMA_SQL);
    let out = agent(&["journal", "--print-schema"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), expirenza_agent::journal::SCHEMA_SQL);
    // Neither needs a config, a mirror or a journal.
    assert!(text(&out.stdout).contains("CREATE TABLE IF NOT EXISTS commands"));
}
