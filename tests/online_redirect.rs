//! `check --online` and a callback host that redirects, through the real binary: the step
//! `redirects` (one `HEAD <callback_url>/checkWork`, nothing posted) passes with a note for a
//! 307/308 the agent follows, fails for a 301, and says "no redirect" for the fake cloud (which
//! answers 405 to a HEAD).

#[path = "support/binary.rs"]
mod binary;
#[path = "support/scripted.rs"]
mod scripted;
#[path = "support/tls.rs"]
mod tls;

use std::path::Path;
use std::time::Duration;

use binary::{command, run_once, temp_dir, Output, FAST_TOML};
use scripted::{Ask, Reply, Server, Then, Transport};
use testkit::{FakeCloud, FakeCloudConfig};
use tls::TestPki;

const RESTO: &str = "resto-online-redirect";
const SECRET: &str = "online-redirect-secret";

async fn cloud() -> FakeCloud {
    FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO.into(),
        secret: SECRET.into(),
        pos_system: None,
    })
    .await
    .unwrap()
}

async fn check_online(dir: &Path, ws_url: &str, callback_url: &str, ca: &Path) -> Output {
    binary::demo_mirror(dir);
    let cfg = binary::write_config(
        dir,
        &format!(
            "resto_id = \"{RESTO}\"\nsecret_key = \"{SECRET}\"\nws_url = \"{ws_url}\"\n\
             callback_url = \"{callback_url}\"\nmirror_path = \"{}\"\nstate_dir = \"{}\"\n\
             runtime_dir = \"{}\"\nca_file = \"{}\"\n{FAST_TOML}",
            dir.join("mirror.sqlite").display(),
            dir.display(),
            dir.display(),
            ca.display()
        ),
    );
    let args = [
        "check".to_string(),
        "--online".into(),
        "--config".into(),
        cfg.display().to_string(),
    ];
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_once(command(&args), b"", Duration::from_secs(60))
    })
    .await
    .unwrap()
}

fn line<'a>(out: &'a Output, step: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(step))
        .unwrap_or_else(|| panic!("no `{step}` line in:\n{}", out.all()))
}

/// A callback host that answers every request with `status` to `location`.
fn redirecting(pki: &TestPki, status: &'static str, location: String) -> Server {
    Server::start(Transport::Tls, pki, vec![], move |_: Ask| {
        let head =
            format!("HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
        Reply::new(head.into_bytes(), Then::Close)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_reports_a_callback_host_that_redirects() {
    let cloud = cloud().await;
    let pki = TestPki::new();

    // 308 to another https URL: the agent follows it, so the step passes, with a note.
    let dir = temp_dir("online-308");
    let ca = dir.join("ca.pem");
    pki.write_ca(&ca);
    let to = "https://127.0.0.1:9/new/callback/checkWork";
    let s = redirecting(&pki, "308 Permanent Redirect", to.into());
    let out = check_online(&dir, &cloud.ws_url(), &s.url("/callback"), &ca).await;
    let l = line(&out, "redirects");
    assert!(
        l.contains(" ok ") && l.contains("HTTP 308") && l.contains(to),
        "{}",
        out.all()
    );
    assert!(l.contains("set callback_url"), "{l}");
    assert_eq!(out.code, Some(0), "{}", out.all());
    let seen = s.seen();
    assert_eq!(seen.len(), 1, "one HEAD");
    assert_eq!(seen[0].path, "/callback/checkWork");
    assert!(
        seen[0].rid.is_none() && seen[0].signature.is_empty(),
        "nothing posted"
    );

    // 301: callbacks would fail.
    let dir = temp_dir("online-301");
    let ca = dir.join("ca.pem");
    pki.write_ca(&ca);
    let s = redirecting(
        &pki,
        "301 Moved Permanently",
        "https://elsewhere.example/cb".into(),
    );
    let out = check_online(&dir, &cloud.ws_url(), &s.url("/callback"), &ca).await;
    let l = line(&out, "redirects");
    assert!(
        l.contains("FAIL") && l.contains("HTTP 301"),
        "{}",
        out.all()
    );
    assert!(l.contains("https://elsewhere.example/cb"), "{l}");
    assert_eq!(out.code, Some(1), "{}", out.all());

    // The fake cloud answers 405 to a HEAD: no redirect, and still nothing posted.
    let dir = temp_dir("online-none");
    let ca = dir.join("ca.pem");
    pki.write_ca(&ca);
    let out = check_online(&dir, &cloud.ws_url(), &cloud.callback_url(), &ca).await;
    let l = line(&out, "redirects");
    assert!(
        l.contains(" ok ") && l.contains("HTTP 405") && l.contains("no redirect"),
        "{}",
        out.all()
    );
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(cloud.callback_attempts(), 0);
    assert_eq!(cloud.other_http_requests(), 1);
}
