//! The sandbox: try the agent without an Expirenza account.
//!
//! ```text
//! cargo run --example sandbox                         # agent in-process
//! cargo run --example sandbox -- --agent-cmd "target/release/expirenza-agent"
//! cargo run --example sandbox -- --agent-cmd "qemu-aarch64 -cpu cortex-a53 target/aarch64-unknown-linux-musl/release/expirenza-agent"
//! ```
//! It starts a simulated Expirenza cloud (WebSocket + callback server) and a demo POS mirror on
//! loopback, runs the real agent against them, sends each implemented operation, verifies every
//! callback's signature and prints one row per round trip. Exit code 0 only if every operation
//! was answered with a verified signature (and, with `--agent-cmd`, the agent exited cleanly on
//! SIGTERM).

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use expirenza_agent::{agent, config::Config, shutdown};
use testkit::harness::{make_mirror, TempDir, RESTO_ID, SECRET};
use testkit::{FakeCloud, FakeCloudConfig};

/// (operation, rID, extra fields, what a correct answer contains)
const SCRIPT: &[(&str, &str, &str, &str)] = &[
    ("checkWork", "sbx-01", "", r#""readyToWork":true"#),
    ("versionInfo", "sbx-02", "", r#""implementedFeatures""#),
    ("tablesInfo", "sbx-03", "", r#""number":12"#),
    ("hallplansInfo", "sbx-04", "", r#""Літня тераса""#),
    (
        "getBill",
        "sbx-05",
        r#""tableNumber":"12""#,
        r#""state":"SUCCESS""#,
    ),
    (
        "getBill",
        "sbx-06",
        r#""billId":"4afc3774-cc50-4e07-ad81-dd65f166244a""#,
        r#""state":"SUCCESS""#,
    ),
    (
        "getBill",
        "sbx-07",
        r#""tableNumber":"99""#,
        r#""substate":"TABLE_NOT_FOUND""#,
    ),
    (
        "getBill",
        "sbx-08",
        r#""tableNumber":"5""#,
        r#""substate":"ORDER_NOT_FOUND""#,
    ),
    ("usersInfo", "sbx-09", "", r#""Оксана Мельник""#),
    ("categoriesInfo", "sbx-10", "", r#""categories""#),
    (
        "menuInfo",
        "sbx-11",
        "",
        r#""Борщ український з пампушками""#,
    ),
    ("stopList", "sbx-12", "", r#""m-512""#),
    (
        "checkProductsRestrictions",
        "sbx-13",
        r#""items":[{"id":"m-101","quantity":1},{"id":"m-512","quantity":1}]"#,
        r#""checkResult""#,
    ),
    // Money moves through the journal; the simulated POS applies each command.
    (
        "payBill",
        "sbx-14",
        r#""billId":"b-3002","sum":90.00,"tips":10.00,"fiscalData":[{"key":"ЕКВАЙЕР","value":"Universal Bank"}]"#,
        r#""state":"SUCCESS""#,
    ),
    (
        "payBill",
        "sbx-15",
        r#""billId":"b-3001","sum":200.00"#,
        r#""substate":"WRONG_REQUEST_SUM""#,
    ),
    (
        "splitOrder",
        "sbx-16",
        r#""billId":"4afc3774-cc50-4e07-ad81-dd65f166244a","controlSum":1080.6,"positions":[{"id":"8e2ad560-938b-4972-ba60-8098aac99f8b","quantity":1}]"#,
        r#""state":"SUCCESS""#,
    ),
    (
        "createOrderOnTable",
        "sbx-17",
        r#""externalId":"ext-1","originName":"QR menu","tableId":"table-5","items":[{"id":"m-101","quantity":1},{"id":"m-620","quantity":1}]"#,
        r#""success":true"#,
    ),
];

fn main() -> ExitCode {
    let mut agent_cmd: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--agent-cmd" => agent_cmd = args.next(),
            "-h" | "--help" => {
                println!("usage: sandbox [--agent-cmd \"PROGRAM [ARGS...]\"]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(sandbox(agent_cmd))
}

enum AgentUnderTest {
    InProcess(shutdown::Trigger, agent::Running),
    Process(Child),
}

async fn sandbox(agent_cmd: Option<String>) -> ExitCode {
    let dir = TempDir::new("sandbox");
    let mirror = dir.path().join("mirror.sqlite");
    make_mirror(&mirror, true);
    let cloud = FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO_ID.into(),
        secret: SECRET.into(),
        pos_system: None,
    })
    .await
    .expect("start the simulated cloud");
    println!(
        "simulated cloud   {}  (callbacks: {})",
        cloud.ws_url(),
        cloud.callback_url()
    );
    println!("demo mirror       {}", mirror.display());

    let started = Instant::now();
    let under_test = match &agent_cmd {
        None => {
            let cfg = Config::for_loopback(
                RESTO_ID,
                SECRET,
                &cloud.ws_url(),
                &cloud.callback_url(),
                &mirror,
                dir.path(),
            );
            let (trigger, sd) = shutdown::channel();
            // Keep the table readable: only the agent's warnings and errors.
            expirenza_agent::log::set_level(expirenza_agent::log::Level::Warn);
            let running = agent::spawn(cfg, agent::Hooks::default(), sd).expect("start the agent");
            println!("agent             in-process");
            AgentUnderTest::InProcess(trigger, running)
        }
        Some(cmd) => {
            let config = dir.path().join("config.toml");
            std::fs::write(
                &config,
                format!(
                    "resto_id = \"{RESTO_ID}\"\nsecret_key = \"{SECRET}\"\nws_url = \"{}\"\ncallback_url = \"{}\"\n\
                     mirror_path = \"{}\"\nstate_dir = \"{}\"\n[link]\nbackoff_floor_ms = 500\nbackoff_cap_ms = 2000\n",
                    cloud.ws_url(),
                    cloud.callback_url(),
                    mirror.display(),
                    dir.path().display()
                ),
            )
            .expect("write config");
            let mut parts = cmd.split_whitespace();
            let program = parts.next().expect("--agent-cmd is empty");
            let child = Command::new(program)
                .args(parts)
                .arg("-q")
                .arg("run")
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {cmd}: {e}"));
            println!("agent             {cmd} (pid {})", child.id());
            AgentUnderTest::Process(child)
        }
    };

    // The simulated POS: claims journal commands, applies them to the mirror, acknowledges.
    let journal = dir.path().join("journal.sqlite");
    let _pos = testkit::sim_pos::spawn(&journal, &mirror, Duration::from_millis(20))
        .expect("start the simulated POS");
    println!("simulated POS     applying {}", journal.display());
    let connected = cloud.wait_connected(Duration::from_secs(30)).await;
    let Some(hs) = connected else {
        eprintln!("the agent did not connect within 30 s");
        stop(under_test).await;
        return ExitCode::from(1);
    };
    println!(
        "connected after   {} ms (auth {}, cookie {})\n",
        started.elapsed().as_millis(),
        ok(hs.auth_ok),
        ok(hs.cookie_ok)
    );
    println!(
        "{:<26} {:<8} {:<34} {:<10} {:>8}",
        "operation", "rID", "outcome", "signature", "ms"
    );
    println!("{}", "-".repeat(90));
    let mut failures = 0;
    for (op, rid, fields, expect) in SCRIPT {
        let sep = if fields.is_empty() { "" } else { "," };
        let frame = format!("{{\"rID\":\"{rid}\",\"operation\":\"{op}\"{sep}{fields}}}");
        let sent = Instant::now();
        let cb = cloud.request(&frame, rid, Duration::from_secs(20)).await;
        match cb {
            Some(cb) => {
                let ms = cb.received_at.saturating_duration_since(sent).as_secs_f64() * 1000.0;
                let body = cb.body_str();
                let outcome = outcome_of(body);
                let good = cb.signature_ok && body.contains(expect);
                if !good {
                    failures += 1;
                }
                println!(
                    "{:<26} {:<8} {:<34} {:<10} {:>8.1}{}",
                    op,
                    rid,
                    outcome,
                    if cb.signature_ok { "verified" } else { "BAD" },
                    ms,
                    if good { "" } else { "   <-- unexpected" }
                );
            }
            None => {
                failures += 1;
                println!(
                    "{op:<26} {rid:<8} {:<34} {:<10} {:>8}",
                    "NO CALLBACK", "-", "-"
                );
            }
        }
    }
    println!("{}", "-".repeat(90));
    let clean = stop(under_test).await;
    if !clean {
        failures += 1;
        println!("the agent did not exit cleanly on SIGTERM");
    }
    println!("{} operations, {} failed", SCRIPT.len(), failures);
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn ok(b: bool) -> &'static str {
    if b {
        "ok"
    } else {
        "REJECTED"
    }
}

/// `SUCCESS`, `FAIL TABLE_NOT_FOUND`, or the first keys for answers without a state.
fn outcome_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    match (v["state"].as_str(), v["substate"].as_str()) {
        (Some(s), Some(sub)) => format!("{s} {sub}"),
        (Some(s), None) => s.to_string(),
        _ => match (
            v["result"]["success"].as_bool(),
            v["result"]["stage"].as_str(),
        ) {
            (Some(ok), Some(stage)) => format!("success={ok} stage={stage}"),
            _ => "answered".to_string(),
        },
    }
}

/// Stop the agent: SIGTERM for a process (true if it exited 0 within 20 s).
async fn stop(a: AgentUnderTest) -> bool {
    match a {
        AgentUnderTest::InProcess(trigger, running) => {
            trigger.fire();
            tokio::time::timeout(Duration::from_secs(20), running.finished())
                .await
                .is_ok()
        }
        AgentUnderTest::Process(mut child) => {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(st)) => return st.success(),
                    Ok(None) if Instant::now() < end => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    _ => {
                        let _ = child.kill();
                        return false;
                    }
                }
            }
        }
    }
}
