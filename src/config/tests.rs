use super::validate::{check_endpoint, redact_userinfo};
use super::*;
use std::collections::HashMap;

struct MapEnv(HashMap<&'static str, String>);
impl Env for MapEnv {
    fn var(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
}
fn env(pairs: &[(&'static str, &str)]) -> MapEnv {
    MapEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
}
fn load(text: &str, e: &MapEnv) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("test.toml"), e)
}

#[test]
fn minimal_config_gets_defaults() {
    let c = load("resto_id = \"r1\"\nsecret_key = \"s\"\n", &env(&[])).unwrap();
    assert_eq!(c.ws_url, DEFAULT_WS_URL);
    assert_eq!(c.callback_url, DEFAULT_CALLBACK_URL);
    assert_eq!(c.link.ping_interval_secs, 15);
    assert_eq!(c.limits.max_message_bytes, 256 * 1024);
    assert_eq!(c.limits.max_body_bytes, 1024 * 1024);
    assert_eq!(
        c.limits.max_in_flight,
        std::thread::available_parallelism().map_or(2, |n| n.get())
    );
    assert_eq!(c.limits.max_pending_bytes, 4 << 20);
    assert_eq!(c.limits.answer_cache_kib, 512);
    assert_eq!(c.callback.dns_ttl_secs, 300);
    assert_eq!(c.journal.pos_ack_timeout_secs, 60);
    assert_eq!(
        c.mirror_path,
        Path::new(DEFAULT_STATE_DIR).join("mirror.sqlite")
    );
}

#[test]
fn kept_answers_can_be_turned_off() {
    let c = load(
        "resto_id = \"r1\"\nsecret_key = \"s\"\n[limits]\nanswer_cache_kib = 0\n",
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.limits.answer_cache_kib, 0);
}

#[test]
fn unknown_keys_are_refused() {
    let e = load(
        "resto_id = \"r1\"\nsecret_key = \"s\"\nws_ulr = \"x\"\n",
        &env(&[]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("ws_ulr"), "{e}");
    let e = load(
        "resto_id = \"r1\"\nsecret_key = \"s\"\n[link]\nping_secs = 1\n",
        &env(&[]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("ping_secs"), "{e}");
}

#[test]
fn plaintext_only_to_loopback() {
    let base = "resto_id = \"r1\"\nsecret_key = \"s\"\n";
    for ok in [
        "ws://127.0.0.1:9/x",
        "ws://localhost:9/x",
        "ws://[::1]:9/x",
        "wss://example.com/x",
    ] {
        load(&format!("{base}ws_url = \"{ok}\"\n"), &env(&[])).unwrap();
    }
    let e = load(&format!("{base}ws_url = \"ws://10.0.0.5/x\"\n"), &env(&[])).unwrap_err();
    assert!(e.to_string().contains("non-loopback"), "{e}");
    let e = load(
        &format!("{base}callback_url = \"http://api.example.com/cb\"\n"),
        &env(&[]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("https://"), "{e}");
    let e = load(&format!("{base}callback_url = \"ftp://x/cb\"\n"), &env(&[])).unwrap_err();
    assert!(e.to_string().contains("callback_url"), "{e}");
}

#[test]
fn environment_overrides_and_secret_sources() {
    let e = env(&[
        ("EXPIRENZA_RESTO_ID", "env-resto"),
        ("EXPIRENZA_SECRET_KEY", "env-secret"),
        ("EXPIRENZA_WS_URL", "ws://127.0.0.1:1/ws"),
        ("EXPIRENZA_CALLBACK_URL", "http://127.0.0.1:2/callback"),
        ("EXPIRENZA_MIRROR", "/tmp/m.sqlite"),
    ]);
    let c = load("resto_id = \"file\"\nsecret_key = \"file-secret\"\n", &e).unwrap();
    assert_eq!(c.resto_id, "env-resto");
    assert_eq!(c.secret.expose(), "env-secret");
    assert_eq!(c.ws_url, "ws://127.0.0.1:1/ws");
    assert_eq!(c.callback_url, "http://127.0.0.1:2/callback");
    assert_eq!(c.mirror_path, Path::new("/tmp/m.sqlite"));

    let dir = std::env::temp_dir().join(format!("cred-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret_key"), "cred-secret\n").unwrap();
    let c = load(
        "resto_id = \"r\"\n",
        &env(&[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(c.secret.expose(), "cred-secret");
    assert!(c.secret_source.contains("credential"));
    std::fs::remove_dir_all(&dir).unwrap();

    let e = load("resto_id = \"r\"\n", &env(&[])).unwrap_err();
    assert!(e.to_string().contains("no secret"), "{e}");
    let e = load(
        "resto_id = \"r\"\nsecret_key = \"a\"\nsecret_key_file = \"/x\"\n",
        &env(&[]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not both"), "{e}");
}

#[test]
fn commands_that_need_no_secret_load_without_one() {
    use super::SecretNeed;
    let path = Path::new("config.toml");
    let c = Config::from_toml_with(
        "resto_id = \"r\"\n",
        path,
        &env(&[]),
        SecretNeed::IfAvailable,
    )
    .unwrap();
    assert!(c.secret.is_empty());
    assert!(
        c.secret_source.starts_with("not loaded here: no secret"),
        "{}",
        c.secret_source
    );
    // A secret file this user cannot read is "not here", not an error, for such commands...
    let text = "resto_id = \"r\"\nsecret_key_file = \"/nonexistent/secret_key\"\n";
    let c = Config::from_toml_with(text, path, &env(&[]), SecretNeed::IfAvailable).unwrap();
    assert!(
        c.secret_source.contains("/nonexistent/secret_key"),
        "{}",
        c.secret_source
    );
    // ...and an error for those that connect or sign.
    let e = Config::from_toml_with(text, path, &env(&[]), SecretNeed::Required).unwrap_err();
    assert!(e.to_string().contains("cannot read the secret"), "{e}");
    // A secret that is there is loaded either way; a mistake in the file is still one.
    let c = Config::from_toml_with(
        "resto_id = \"r\"\nsecret_key = \"s\"\n",
        path,
        &env(&[]),
        SecretNeed::IfAvailable,
    )
    .unwrap();
    assert_eq!(c.secret.expose(), "s");
    let both = "resto_id = \"r\"\nsecret_key = \"a\"\nsecret_key_file = \"/x\"\n";
    let e = Config::from_toml_with(both, path, &env(&[]), SecretNeed::IfAvailable).unwrap_err();
    assert!(e.to_string().contains("not both"), "{e}");
}

#[test]
fn contradictory_limits_are_refused() {
    let base = "resto_id = \"r1\"\nsecret_key = \"s\"\n";
    for (extra, needle) in [
        (
            "[link]\nping_interval_secs = 30\ndead_after_secs = 20\n",
            "dead_after_secs",
        ),
        ("[limits]\nmax_in_flight = 0\n", "max_in_flight"),
        ("[limits]\nsqlite_cache_kib = 8\n", "sqlite_cache_kib"),
        (
            "[limits]\nsqlite_heap_limit_kib = 0\n",
            "sqlite_heap_limit_kib",
        ),
        ("[limits]\nanswer_cache_kib = 65537\n", "answer_cache_kib"),
        ("[callback]\ndeadline_secs = 120\n", "deadline_secs"),
        (
            "[journal]\npos_ack_timeout_secs = 79\n",
            "pos_ack_timeout_secs",
        ),
        ("[cache]\ninterval_secs = 15\n", "interval_secs"),
    ] {
        let e = load(&format!("{base}{extra}"), &env(&[])).unwrap_err();
        assert!(e.to_string().contains(needle), "{extra}: {e}");
    }
}

#[test]
fn debug_output_never_holds_the_secret() {
    let c = load(
        "resto_id = \"r1\"\nsecret_key = \"top-secret-value\"\n",
        &env(&[]),
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("top-secret-value"));
}

#[test]
fn parse_errors_do_not_quote_the_secret_line() {
    for text in [
        "resto_id = \"r\"\nsecret_key = \"canary-123\n",
        "resto_id = \"r\"\nsecret_kee = \"canary-123\"\n",
        "resto_id = \"r\"\nsecret_key = canary-123\n",
    ] {
        let e = toml::from_str::<FileConfig>(text).err().unwrap();
        let m = parse_error_without_source(&e, text);
        assert!(!m.contains("canary-123"), "{m}");
        assert!(m.starts_with("line 2, column "), "{m}");
    }
}

#[test]
fn urls_with_credentials_are_redacted_in_errors() {
    assert_eq!(
        redact_userinfo("wss://id:pw@host:1/p?q=a@b"),
        "wss://<redacted>@host:1/p?q=a@b"
    );
    assert_eq!(redact_userinfo("wss://host/p@x"), "wss://host/p@x");
    let e = check_endpoint("ws_url", "ws://id:pw@example.com/x", "wss", "ws")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("pw"), "{e}");
}

#[test]
fn the_status_snapshot_lives_in_the_runtime_dir() {
    let dir = std::env::temp_dir();
    let base = "resto_id = \"r\"\nsecret_key = \"k\"\n";
    let cfg = load(base, &env(&[])).unwrap();
    assert_eq!(cfg.runtime_dir, Path::new(DEFAULT_RUNTIME_DIR));
    assert_eq!(cfg.status_path(), Path::new("/run/expirenza-agent/status"));
    let text = format!("{base}runtime_dir = \"{}\"\n", dir.display());
    let cfg = load(&text, &env(&[])).unwrap();
    assert_eq!(cfg.status_path(), dir.join("status"));
    let text = format!("{text}[status]\npath = \"/elsewhere/st\"\n");
    let cfg = load(&text, &env(&[])).unwrap();
    assert_eq!(cfg.status_path(), Path::new("/elsewhere/st"));
}

#[test]
fn the_journal_waits_for_its_lock_within_the_callback_deadline() {
    let base = "resto_id = \"r1\"\nsecret_key = \"s\"\n";
    // Default: 15 s, with the 60 s acknowledgement wait and 5 s for the answer in 80 s.
    let c = load(base, &env(&[])).unwrap();
    assert_eq!(c.journal.busy_timeout_ms, None);
    assert_eq!(c.journal_busy_timeout(), Duration::from_millis(15_000));
    assert_eq!(c.journal.max_spool_bytes, 1 << 20);
    // Not set and less room: what is left (a file that set only the ack wait still loads).
    let c = load(
        &format!("{base}[journal]\npos_ack_timeout_secs = 70\n"),
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.journal_busy_timeout(), Duration::from_millis(5_000));
    // No room left (a file valid before the key existed): 1 s, and the file still loads.
    let c = load(
        &format!("{base}[journal]\npos_ack_timeout_secs = 75\n"),
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.journal_busy_timeout(), Duration::from_millis(1_000));
    // The mirror's busy timeout is the mirror's only.
    let c = load(
        &format!("{base}[mirror]\nbusy_timeout_ms = 9000\n"),
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.journal_busy_timeout(), Duration::from_millis(15_000));
    // Set: taken as it is when it fits.
    let c = load(
        &format!("{base}[journal]\nbusy_timeout_ms = 20000\npos_ack_timeout_secs = 55\n"),
        &env(&[]),
    )
    .unwrap();
    assert_eq!(c.journal_busy_timeout(), Duration::from_millis(20_000));
    for (extra, needles) in [
        (
            "[journal]\nbusy_timeout_ms = 20000\n",
            &["busy_timeout_ms", "pos_ack_timeout_secs", "deadline_secs"][..],
        ),
        (
            "[journal]\nbusy_timeout_ms = 50\n",
            &["busy_timeout_ms", "at least 100"][..],
        ),
        (
            "[journal]\nmax_spool_bytes = 1000\n",
            &["max_spool_bytes"][..],
        ),
    ] {
        let e = load(&format!("{base}{extra}"), &env(&[]))
            .unwrap_err()
            .to_string();
        for n in needles {
            assert!(e.contains(n), "{extra}: {e}");
        }
    }
}
