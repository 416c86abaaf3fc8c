//! `check --online` and `preview`, end to end: the real binary against the fake cloud.
//!
//! - check --online with good credentials (plain and TLS with ca_file), refused ones (401), an
//!   untrusted certificate and an unreachable host: exit code and the message of each;
//! - no output of any of them contains the secret (nor its base64 Authorization form);
//! - `preview` prints, byte for byte, the body `run` sends for the same request, and the same
//!   signature.

#[path = "support/binary.rs"]
mod binary;
#[path = "support/tls.rs"]
mod tls;

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use binary::{command, run_once, temp_dir, Output, FAST_TOML};
use testkit::{FakeCloud, FakeCloudConfig};

const RESTO: &str = "resto-online-0001";
const SECRET: &str = "online-secret-key-Zq81";
const LIMIT: Duration = Duration::from_secs(60);

async fn cloud() -> FakeCloud {
    FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO.into(),
        secret: SECRET.into(),
        pos_system: Some("expirenza-agent".into()),
    })
    .await
    .unwrap()
}

fn config(dir: &Path, ws_url: &str, callback_url: &str, extra: &str) -> std::path::PathBuf {
    let mirror = dir.join("mirror.sqlite");
    if !mirror.exists() {
        binary::demo_mirror(dir);
    }
    binary::write_config(
        dir,
        &format!(
            "resto_id = \"{RESTO}\"\nsecret_key = \"{SECRET}\"\nws_url = \"{ws_url}\"\n\
             callback_url = \"{callback_url}\"\nmirror_path = \"{}\"\nstate_dir = \"{}\"\n\
             runtime_dir = \"{}\"\n{extra}\n{FAST_TOML}",
            mirror.display(),
            dir.display(),
            dir.display()
        ),
    )
}

/// Run the binary off the runtime's threads, so the fake cloud keeps serving meanwhile.
async fn agent(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_once(command(&args), b"", LIMIT)
    })
    .await
    .unwrap()
}

async fn check_online(cfg: &Path) -> Output {
    agent(vec![
        "check".into(),
        "--online".into(),
        "--config".into(),
        cfg.display().to_string(),
    ])
    .await
}

/// The secret never shows, in clear or as the Basic-auth value.
fn assert_no_secret(out: &Output) {
    let all = out.all();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{RESTO}:{SECRET}"));
    assert!(!all.contains(SECRET), "the secret leaked:\n{all}");
    assert!(
        !all.contains(&basic),
        "the Authorization value leaked:\n{all}"
    );
}

fn line<'a>(out: &'a Output, step: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(step))
        .unwrap_or_else(|| panic!("no `{step}` line in:\n{}", out.all()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_with_good_credentials_upgrades_and_closes_cleanly() {
    let dir = temp_dir("online-good");
    let cloud = cloud().await;
    let cfg = config(&dir, &cloud.ws_url(), &cloud.callback_url(), "");
    let out = check_online(&cfg).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    for step in ["DNS", "TCP", "upgrade", "close"] {
        assert!(line(&out, step).contains(" ok "), "{step}: {}", out.all());
    }
    assert!(line(&out, "upgrade").contains("HTTP 101"), "{}", out.all());
    assert!(
        line(&out, "close").contains("closed cleanly"),
        "{}",
        out.all()
    );
    assert!(out.stdout.contains("callback_url"), "{}", out.all());
    // The last line: OK (the config's warnings, a world-readable file and an empty
    // partner_id here, are counted but do not fail it without --strict).
    let last = out.stdout.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("OK"), "{}", out.all());
    // The cloud saw the configured credentials and cookie, and no answer to anything.
    let hs = cloud.handshakes();
    assert_eq!(hs.len(), 1, "one connection");
    assert!(hs[0].auth_ok && hs[0].cookie_ok, "{:?}", hs[0]);
    assert!(cloud.wait_disconnected(Duration::from_secs(10)).await);
    assert!(cloud.text_frames_received().is_empty());
    assert_eq!(cloud.callback_attempts(), 0, "nothing is posted");
    assert_no_secret(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_says_when_the_credentials_are_refused() {
    let dir = temp_dir("online-401");
    let cloud = cloud().await;
    cloud.set_reject_auth(Some(401));
    let cfg = config(&dir, &cloud.ws_url(), &cloud.callback_url(), "");
    let out = check_online(&cfg).await;
    assert_eq!(out.code, Some(1), "{}", out.all());
    let up = line(&out, "upgrade");
    assert!(up.contains("FAIL"), "{up}");
    assert!(
        up.contains("HTTP 401") && up.contains("credentials refused"),
        "{up}"
    );
    assert!(up.contains("resto_id") && up.contains("secret key"), "{up}");
    assert!(line(&out, "TCP").contains(" ok "), "{}", out.all());
    assert!(out.stdout.contains("FAIL"), "{}", out.all());
    assert_no_secret(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_names_an_untrusted_certificate_and_trusts_ca_file() {
    let dir = temp_dir("online-tls");
    let cloud = cloud().await;
    let pki = tls::TestPki::new();
    let ws_addr = cloud.ws_url().split('/').nth(2).unwrap().parse().unwrap();
    let proxy = tls::TlsProxy::start(&pki, ws_addr).await;
    let wss = format!("wss://127.0.0.1:{}/restaurantEntryPoint", proxy.addr.port());

    let cfg = config(&dir, &wss, &cloud.callback_url(), "");
    let out = check_online(&cfg).await;
    assert_eq!(out.code, Some(1), "{}", out.all());
    let tls_line = line(&out, "TLS");
    assert!(
        tls_line.contains("FAIL") && tls_line.contains("unknown issuer"),
        "{tls_line}"
    );
    assert!(
        tls_line.contains("ca_file"),
        "the remedy is named: {tls_line}"
    );
    assert!(
        out.stdout.contains("upgrade    not attempted"),
        "{}",
        out.all()
    );
    assert_eq!(cloud.connection_count(), 0, "no upgrade reached the cloud");
    assert_no_secret(&out);

    // The same endpoint with the private CA trusted: every step passes over TLS.
    let ca = dir.join("ca.pem");
    pki.write_ca(&ca);
    let cfg = config(
        &dir,
        &wss,
        &cloud.callback_url(),
        &format!("ca_file = \"{}\"", ca.display()),
    );
    let out = check_online(&cfg).await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        line(&out, "TLS").contains("certificate valid for 127.0.0.1"),
        "{}",
        out.all()
    );
    assert!(line(&out, "upgrade").contains("HTTP 101"), "{}", out.all());
    assert_no_secret(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_reports_an_unreachable_host() {
    let dir = temp_dir("online-closed");
    // A loopback port with nothing listening: bind, note the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/restaurantEntryPoint");
    let cb = format!("http://127.0.0.1:{port}/callback");
    let cfg = config(&dir, &url, &cb, "");
    let out = check_online(&cfg).await;
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(line(&out, "DNS").contains(" ok "), "{}", out.all());
    let tcp = line(&out, "TCP");
    assert!(
        tcp.contains("FAIL") && tcp.contains("connection refused"),
        "{tcp}"
    );
    assert!(
        out.stdout.contains("upgrade    not attempted"),
        "{}",
        out.all()
    );
    assert_no_secret(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_prints_exactly_the_body_run_sends() {
    let dir = temp_dir("preview");
    let cloud = cloud().await;
    let cfg = config(&dir, &cloud.ws_url(), &cloud.callback_url(), "");
    let run = binary::Agent::spawn(command(&["run", "--config", cfg.to_str().unwrap()]));
    assert!(
        cloud
            .wait_connected(Duration::from_secs(30))
            .await
            .is_some(),
        "the agent connects"
    );
    let cases: [(&str, &str, &[&str]); 4] = [
        ("getBill", r#","tableNumber":"12""#, &["--table", "12"]),
        ("tablesInfo", "", &[]),
        ("menuInfo", "", &[]),
        ("getBill", r#","tableNumber":"999""#, &["--table", "999"]), // a FAIL answer
    ];
    for (op, fields, flags) in cases {
        let frame = format!(r#"{{"rID":"preview","operation":"{op}"{fields}}}"#);
        let sent = cloud
            .request(&frame, "preview", Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("{op}: no callback"));
        let mut args = vec!["preview".to_string(), op.to_string()];
        args.extend(flags.iter().map(|s| s.to_string()));
        args.extend(["--config".to_string(), cfg.display().to_string()]);
        let out = agent(args).await;
        // A FAIL body is printed all the same, and exits 1 for a script to see.
        let fail = fields.contains("999");
        assert_eq!(
            out.code,
            Some(if fail { 1 } else { 0 }),
            "{op}: {}",
            out.all()
        );
        assert_eq!(
            out.stdout.as_bytes(),
            &sent.body[..],
            "{op}: preview differs from the body run sent"
        );
        let sig = sent.header("signature").expect("signature header");
        assert_eq!(
            out.stderr.trim(),
            format!("signature: {sig}"),
            "{op}: signature"
        );
        assert!(sent.signature_ok, "{op}: the cloud verified the signature");
        assert_no_secret(&out);
    }
    // No network: preview works with the cloud gone (and a closed port in the config).
    drop(run.stop(Duration::from_secs(30)));
    let out = agent(vec![
        "preview".into(),
        "checkWork".into(),
        "--config".into(),
        cfg.display().to_string(),
    ])
    .await;
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stdout.starts_with(r#"{"rID":"preview""#),
        "{}",
        out.all()
    );
    // Refusals are clear: a write operation, getBill without a target.
    for (args, needle) in [
        (vec!["preview", "payBill"], "only read operations"),
        (
            vec!["preview", "getBill"],
            "getBill needs --table N or --bill ID",
        ),
    ] {
        let mut a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        a.extend(["--config".to_string(), cfg.display().to_string()]);
        let out = agent(a).await;
        assert_eq!(out.code, Some(2), "{}", out.all());
        assert!(out.stderr.contains(needle), "{}", out.all());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
