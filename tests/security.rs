//! Security, end to end through the real binary:
//! - a known secret never appears (raw, or in its Basic-auth base64 form) in stdout, stderr,
//!   the status file or any error text, on every path: `check` (good, bad, unreadable configs),
//!   `run` (failing connect, wrong `ca_file`, bad config, success, 401 from the cloud), `sign`;
//! - plaintext to a non-loopback host is refused by `check`;
//! - `check` warns about a world-readable config file that holds the secret;
//! - a TLS server whose certificate is not trusted is refused, and accepted once its CA is in
//!   `ca_file` (WebSocket and callback).

#[path = "support/binary.rs"]
mod binary;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/tls.rs"]
mod tls;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use binary::{command, demo_mirror, run_once, temp_dir, write_config, Agent};

const SECRET: &str = "S3cr3t-Canary-9f8e7d";
const RESTO: &str = "resto-canary";

/// Every form in which the secret could leak.
fn forms() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        SECRET.to_string(),
        b64.encode(format!("{RESTO}:{SECRET}")),
        b64.encode(SECRET),
        // Middle of the secret, in case a message cuts or quotes part of it.
        SECRET[3..15].to_string(),
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for f in forms() {
        assert!(
            !text.contains(&f),
            "{what}: the secret (form {f:?}) leaked in:\n{text}"
        );
    }
}

fn assert_state_dir_clean(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let ours = p
                .file_name()
                .is_some_and(|n| n == "config.toml" || n == "secret");
            if p.is_file()
                && !ours
                && !p
                    .extension()
                    .is_some_and(|x| x == "sqlite" || x == "sqlite-wal" || x == "sqlite-shm")
            {
                let text =
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned();
                assert_no_secret(&format!("file {}", p.display()), &text);
            }
        }
    }
}

fn config_text(ws: &str, cb: &str, mirror: &Path, state: &Path, extra: &str) -> String {
    format!(
        "resto_id = \"{RESTO}\"\nsecret_key = \"{SECRET}\"\nws_url = \"{ws}\"\ncallback_url = \"{cb}\"\n\
         mirror_path = \"{}\"\nstate_dir = \"{}\"\nruntime_dir = \"{}\"\n{extra}",
        mirror.display(),
        state.display(),
        state.display()
    )
}

const FAST: &str =
    "[link]\nping_interval_secs = 1\ndead_after_secs = 3\nconnect_timeout_secs = 2\n\
                    backoff_floor_ms = 200\nbackoff_cap_ms = 1000\n\
                    [callback]\nattempt_timeout_secs = 2\ndeadline_secs = 10\n\
                    [journal]\npos_ack_timeout_secs = 4\n";

#[test]
fn check_paths_never_show_the_secret_and_warn_on_readable_config() {
    let dir = temp_dir("sec-check");
    let mirror = demo_mirror(&dir);
    let cfg = write_config(
        &dir,
        &config_text(
            "wss://api.example.com/x",
            "https://api.example.com/cb",
            &mirror,
            &dir,
            "",
        ),
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_once(
        command(&["check", "--config", cfg.to_str().unwrap()]),
        b"",
        Duration::from_secs(20),
    );
    assert_no_secret("check (0644)", &out.all());
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert!(
        out.stdout.contains("readable by every user"),
        "no permission warning:\n{}",
        out.all()
    );
    assert!(out.stdout.contains("not shown"), "{}", out.stdout);

    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_once(
        command(&["check", "--config", cfg.to_str().unwrap()]),
        b"",
        Duration::from_secs(20),
    );
    assert_no_secret("check (0600)", &out.all());
    assert!(
        !out.stdout.contains("readable by every user"),
        "{}",
        out.stdout
    );
    assert_eq!(out.code, Some(0));

    // Environment override of the secret: same story.
    let mut c = command(&["check", "--config", cfg.to_str().unwrap()]);
    c.env("EXPIRENZA_SECRET_KEY", SECRET);
    let out = run_once(c, b"", Duration::from_secs(20));
    assert_no_secret("check (env secret)", &out.all());
    assert!(
        out.stdout.contains("EXPIRENZA_SECRET_KEY"),
        "{}",
        out.stdout
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configs_are_refused_without_showing_the_secret() {
    let dir = temp_dir("sec-badcfg");
    let mirror = dir.join("mirror.sqlite");
    let good = config_text(
        "ws://127.0.0.1:9/x",
        "http://127.0.0.1:9/cb",
        &mirror,
        &dir,
        "",
    );
    let cases: Vec<(&str, String, &str)> = vec![
        // Parse errors whose location is the secret's own line: toml's default error display
        // quotes the offending line, which would print the secret.
        (
            "unterminated secret",
            format!("resto_id = \"{RESTO}\"\nsecret_key = \"{SECRET}\n"),
            "not valid",
        ),
        (
            "misspelt secret key",
            format!("resto_id = \"{RESTO}\"\nsecret_kee = \"{SECRET}\"\n"),
            "secret_kee",
        ),
        (
            "secret as a number-ish",
            format!("resto_id = \"{RESTO}\"\nsecret_key = {SECRET}\n"),
            "not valid",
        ),
        (
            "secret wrong type",
            format!("resto_id = \"{RESTO}\"\nsecret_key = [\"{SECRET}\"]\n"),
            "not valid",
        ),
        (
            "both secret sources",
            format!("{good}secret_key_file = \"/nonexistent\"\n"),
            "not both",
        ),
        (
            "plain ws to a remote host",
            good.replace("ws://127.0.0.1:9/x", "ws://api.example.com/x"),
            "ws_url uses plain ws://",
        ),
        (
            "plain http to a remote host",
            good.replace("http://127.0.0.1:9/cb", "http://api.example.com/cb"),
            "callback_url uses plain http://",
        ),
        (
            "url with the secret as password",
            good.replace(
                "ws://127.0.0.1:9/x",
                &format!("ws://{RESTO}:{SECRET}@api.example.com/x"),
            ),
            "ws_url",
        ),
    ];
    for (name, text, expect) in cases {
        let cfg = write_config(&dir, &text);
        for cmd in ["check", "run"] {
            let out = run_once(
                command(&[cmd, "--config", cfg.to_str().unwrap()]),
                b"",
                Duration::from_secs(20),
            );
            assert_no_secret(&format!("{cmd} with {name}"), &out.all());
            assert_eq!(
                out.code,
                Some(2),
                "{cmd} with {name} must fail: {}",
                out.all()
            );
            assert!(
                out.stderr.contains(expect),
                "{cmd} with {name}: expected {expect:?} in:\n{}",
                out.stderr
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sign_prints_the_signature_not_the_secret() {
    let dir = temp_dir("sec-sign");
    let body = br#"{"rID":"x","state":"SUCCESS"}"#;
    let expected = expirenza_agent::sign::sign(&expirenza_agent::secret::Secret::new(SECRET), body);
    let mut c = command(&["sign"]);
    c.env("EXPIRENZA_SECRET_KEY", SECRET);
    let out = run_once(c, body, Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "{}", out.all());
    assert_eq!(out.stdout.trim(), expected);
    assert_no_secret("sign (env)", &out.all());

    let sf = dir.join("secret");
    std::fs::write(&sf, format!("{SECRET}\n")).unwrap();
    let out = run_once(
        command(&["sign", "--secret-file", sf.to_str().unwrap()]),
        body,
        Duration::from_secs(20),
    );
    assert_eq!(
        out.stdout.trim(),
        expected,
        "a trailing newline in the file is not part of the secret"
    );
    assert_no_secret("sign (file)", &out.all());

    // No secret at all, and an unreadable input file: errors, still no secret.
    let out = run_once(
        command(&[
            "sign",
            "--secret-file",
            dir.join("missing").to_str().unwrap(),
        ]),
        body,
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(2));
    assert_no_secret("sign (missing file)", &out.all());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_with_failing_connects_and_a_wrong_ca_file() {
    let dir = temp_dir("sec-run");
    let mirror = demo_mirror(&dir);
    // A port with nothing listening: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ws = format!("ws://127.0.0.1:{port}/restaurantEntryPoint");
    let cb = format!("http://127.0.0.1:{port}/callback");
    let cfg = write_config(&dir, &config_text(&ws, &cb, &mirror, &dir, FAST));
    let agent = Agent::spawn(command(&["run", "--config", cfg.to_str().unwrap()]));
    let first = agent.wait_line("failed", Duration::from_secs(10));
    assert!(
        first.is_some(),
        "no connect failure logged:\n{}",
        agent.stderr_so_far()
    );
    // A second attempt (the backoff floor is 200 ms): retried, still logged without the secret.
    assert!(
        agent.wait_count("connect to", 2, Duration::from_secs(10)),
        "{}",
        agent.stderr_so_far()
    );
    let out = agent.stop(Duration::from_secs(15));
    assert_no_secret("run (failing connect)", &out.all());
    assert_state_dir_clean(&dir);

    // ca_file that does not exist, and one that holds no certificate: refused at start.
    for (name, ca) in [
        ("missing ca_file", dir.join("nope.pem")),
        ("garbage ca_file", {
            let p = dir.join("garbage.pem");
            std::fs::write(&p, format!("not a cert {SECRET}? no, just text\n")).unwrap();
            p
        }),
    ] {
        // ca_file is a top-level key: it goes before the first section.
        let text = format!(
            "ca_file = \"{}\"\n{}",
            ca.display(),
            config_text(&ws, &cb, &mirror, &dir, FAST)
        );
        let cfg = write_config(&dir, &text);
        let out = run_once(
            command(&["run", "--config", cfg.to_str().unwrap()]),
            b"",
            Duration::from_secs(20),
        );
        assert_eq!(out.code, Some(2), "{name}: {}", out.all());
        assert!(out.stderr.contains("ca_file"), "{name}: {}", out.stderr);
        // The garbage file itself contains the canary: its content must not be echoed.
        assert_no_secret(&format!("run ({name})"), &out.all());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

mod with_cloud {
    //! The paths that need a cloud: 401 then success through the binary, and TLS trust.

    use super::*;
    use testkit::{FakeCloud, FakeCloudConfig};

    use super::{harness, tls};

    const T: Duration = Duration::from_secs(10);

    async fn cloud(resto: &str, secret: &str) -> FakeCloud {
        FakeCloud::start(FakeCloudConfig {
            resto_id: resto.into(),
            secret: secret.into(),
            pos_system: None,
        })
        .await
        .unwrap()
    }

    fn addr_of(url: &str) -> std::net::SocketAddr {
        let hostport = url.split("://").nth(1).unwrap().split('/').next().unwrap();
        hostport.parse().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_with_401_then_success_never_shows_the_secret() {
        let dir = temp_dir("sec-cloud");
        let mirror = demo_mirror(&dir);
        let cloud = cloud(RESTO, SECRET).await;
        cloud.set_reject_auth(Some(401));
        let agent = binary::spawn_run(
            &dir,
            RESTO,
            SECRET,
            &cloud.ws_url(),
            &cloud.callback_url(),
            &mirror,
            "",
        );
        assert!(
            agent.wait_line("credentials rejected", T).is_some(),
            "{}",
            agent.stderr_so_far()
        );
        cloud.set_reject_auth(None);
        let hs = cloud
            .wait_connected(T)
            .await
            .expect("connect once accepted");
        assert!(hs.auth_ok);
        let cb = cloud
            .request(
                r#"{"rID":"s","operation":"getBill","tableNumber":"12"}"#,
                "s",
                T,
            )
            .await
            .expect("answered");
        assert!(cb.signature_ok);
        // A callback refused by the cloud (its error body logged) must not echo the secret.
        cloud.push_responses(&[testkit::Reply::Status(401)]);
        cloud
            .request(r#"{"rID":"r","operation":"checkWork"}"#, "r", T)
            .await
            .expect("attempted");
        assert!(agent.wait_line("refused the callback", T).is_some());
        // The link drops and comes back: more log lines with URLs and reasons.
        cloud.kill_connection().await;
        cloud.wait_connected(T).await.expect("reconnect");
        let out = agent.stop(Duration::from_secs(15));
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        assert!(!status.is_empty(), "the status file was written");
        assert_no_secret("run (401, success, reconnect)", &out.all());
        assert_no_secret("status file", &status);
        assert_state_dir_clean(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// wss:// and https:// to servers with a private CA: refused without `ca_file`, accepted
    /// with it; an https server whose certificate the CA did not sign is refused even then.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_trust_comes_only_from_ca_file() {
        use harness::*;
        let dir = harness::temp_dir("sec-tls");
        let mirror = harness::demo_mirror(&dir);
        let cloud = cloud(harness::RESTO, harness::SECRET).await;
        let pki = tls::TestPki::new();
        let other = tls::TestPki::new();
        let wss = tls::TlsProxy::start(&pki, addr_of(&cloud.ws_url())).await;
        let https = tls::TlsProxy::start(&pki, addr_of(&cloud.callback_url())).await;
        let https_other = tls::TlsProxy::start(&other, addr_of(&cloud.callback_url())).await;
        let ws_url = format!("wss://127.0.0.1:{}/restaurantEntryPoint", wss.addr.port());
        let cb_url = format!("https://localhost:{}/callback", https.addr.port());

        // 1. No ca_file: the handshake is refused by the agent.
        let agent = start(fast_config(&ws_url, &cb_url, &mirror, &dir));
        assert!(agent.link.wait_downs(2, T).await);
        assert_eq!(wss.handshakes_ok(), 0, "a self-signed chain was trusted");
        assert!(wss.handshakes_failed() >= 1);
        assert_eq!(cloud.connection_count(), 0);
        assert!(
            agent.link.downs()[0].contains("UnknownIssuer"),
            "{:?}",
            agent.link.downs()
        );
        agent.stop().await;

        // 2. ca_file names the CA: wss and https both work.
        let ca = dir.join("ca.pem");
        pki.write_ca(&ca);
        let mut cfg = fast_config(&ws_url, &cb_url, &mirror, &dir);
        cfg.ca_file = Some(ca.clone());
        let agent = start(cfg);
        cloud.wait_connected(T).await.expect("wss with ca_file");
        let cb = cloud
            .request(&get_bill("tls-ok", "12"), "tls-ok", T)
            .await
            .expect("callback over https");
        assert!(cb.signature_ok);
        assert!(https.handshakes_ok() >= 1);
        agent.stop().await;

        // 3. Same ca_file, but the callback server's certificate comes from another CA.
        let mut cfg = fast_config(
            &ws_url,
            &format!("https://localhost:{}/callback", https_other.addr.port()),
            &mirror,
            &dir,
        );
        cfg.ca_file = Some(ca);
        let agent = start(cfg);
        cloud.wait_connected(T).await.expect("wss with ca_file");
        let before = cloud.all_callbacks().len();
        assert!(cloud.send_text(&get_bill("tls-bad", "12")).await);
        let done = agent.ops.wait(1, T).await;
        assert_eq!(done.len(), 1);
        assert!(!done[0].1, "a callback to an untrusted server must fail");
        assert!(https_other.handshakes_failed() >= 1);
        assert_eq!(https_other.handshakes_ok(), 0);
        assert_eq!(
            cloud.all_callbacks().len(),
            before,
            "nothing reached the cloud"
        );
        agent.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
