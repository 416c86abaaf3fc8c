//! `expirenza-agent status`, end to end: the binary reads the file the agent's board writes
//! (JSON through serde), renders it, and exits 0 when healthy, 1 when not; a file from a newer
//! agent with keys this one does not know is still read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use expirenza_agent::status::{self, StatusBoard};

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let d =
            std::env::temp_dir().join(format!("expirenza-statuscmd-{tag}-{}", std::process::id()));
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

fn config(dir: &Path) -> PathBuf {
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "resto_id = \"resto-7\"\nsecret_key = \"s3cr3t-not-shown\"\nstate_dir = \"{0}\"\n\
             runtime_dir = \"{0}\"\n",
            dir.display()
        ),
    )
    .unwrap();
    cfg
}

/// Runs `expirenza-agent status`; (exit code, stdout, stderr). Bounded: a hang fails the test.
async fn run_status(cfg: &Path) -> (i32, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_expirenza-agent"))
            .arg("status")
            .arg("--config")
            .arg(cfg)
            .output(),
    )
    .await
    .expect("`status` returns")
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn status_reads_what_the_board_writes() {
    let dir = Dir::new("ok");
    let cfg = config(&dir.0);
    let path = dir.0.join("status");

    // No file yet: a clear error, not a panic.
    let (code, _, err) = run_status(&cfg).await;
    assert_ne!(code, 0);
    assert!(err.contains("is the agent running"), "{err}");

    // A healthy agent's snapshot.
    let board = StatusBoard::new("resto-7");
    board.link_up();
    board.op_done("getBill", true);
    board.set_journal_pending(2);
    status::snapshot::write(&path, &board.snapshot()).unwrap();
    let (code, out, err) = run_status(&cfg).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restaurant resto-7"), "{out}");
    assert!(out.contains("link              up"), "{out}");
    assert!(out.contains("1 operations answered, 0 failed"), "{out}");
    assert!(out.contains("journal pending   2"), "{out}");
    assert!(out.contains("health            OK"), "{out}");
    assert!(!out.contains("s3cr3t") && !err.contains("s3cr3t"));

    // A newer agent may add keys: they are ignored.
    let text = std::fs::read_to_string(&path).unwrap();
    let newer = text.replacen('{', "{\n  \"future_key\": {\"a\": [1, 2]},", 1);
    std::fs::write(&path, newer).unwrap();
    let (code, out, _) = run_status(&cfg).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("health            OK"), "{out}");

    // The link went down long ago: unhealthy, exit 1, and the reason is shown.
    let mut s = board.snapshot();
    s.link = "down".into();
    s.last_disconnect = Some(s.written_at - 3600);
    s.last_disconnect_reason = Some("pong timeout".into());
    status::snapshot::write(&path, &s).unwrap();
    let (code, out, _) = run_status(&cfg).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("UNHEALTHY: link down"), "{out}");
    assert!(out.contains("pong timeout"), "{out}");

    // Not a status file at all.
    std::fs::write(&path, "link=up\n").unwrap();
    let (code, _, err) = run_status(&cfg).await;
    assert_ne!(code, 0);
    assert!(err.contains("malformed"), "{err}");
}

#[tokio::test]
async fn without_a_loadable_config_status_says_so_and_reads_the_default_runtime_path() {
    let dir = Dir::new("noconfig");
    let (code, _, err) = run_status(&dir.0.join("absent.toml")).await;
    assert!(
        err.contains("reading the default status file /run/expirenza-agent/status"),
        "{err}"
    );
    // Whatever that file holds on this machine, the answer is an exit code, not a crash.
    assert!(code == 0 || code == 1 || code == 2, "{code}");
}

/// The agent run outside systemd and stopped by SIGTERM: its last write says link down with
/// reason `shutdown`, which is within the reconnect grace, so the file alone reads healthy.
/// `status` asks whether the process still runs and says "stopped".
#[tokio::test]
async fn after_sigterm_status_says_stopped() {
    let dir = Dir::new("sigterm");
    let mirror = dir.0.join("mirror.sqlite");
    let mut c = expirenza_agent::mirror::create_schema(&mirror).unwrap();
    expirenza_agent::mirror::demo::fill(&mut c).unwrap();
    drop(c);
    let cfg = dir.0.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "resto_id = \"resto-7\"\nsecret_key = \"s3cr3t-not-shown\"\nstate_dir = \"{0}\"\n\
             runtime_dir = \"{0}\"\nws_url = \"ws://127.0.0.1:9/ws\"\n\
             callback_url = \"http://127.0.0.1:9\"\n\n[status]\nwrite_interval_secs = 1\n",
            dir.0.display()
        ),
    )
    .unwrap();
    let mut agent = tokio::process::Command::new(env!("CARGO_BIN_EXE_expirenza-agent"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = agent.id().unwrap();
    // The agent writes the file as it starts; wait for it (bounded).
    let path = dir.0.join("status");
    let written = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(s) = status::read(&path) {
                if s.pid == pid {
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the agent writes its status file");
    assert!(
        written.pid_start.is_some(),
        "the agent writes its start time"
    );
    let (code, out, _) = run_status(&cfg).await;
    assert!(!out.contains("stopped"), "running: {out}");
    assert!(code == 0 || out.contains("UNHEALTHY"), "{out}");

    // SAFETY: sends SIGTERM to the child this test started (its pid, still unreaped).
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let exit = tokio::time::timeout(Duration::from_secs(60), agent.wait())
        .await
        .expect("the agent stops on SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let last = status::read(&path).unwrap();
    assert_eq!(last.last_disconnect_reason.as_deref(), Some("shutdown"));
    assert_eq!(
        status::health(&last, status::now_unix(), 30),
        Ok(()),
        "the file alone reads healthy"
    );
    let (code, out, err) = run_status(&cfg).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains(": stopped"), "{out}");
    assert!(
        out.contains(&format!("STOPPED: process {pid} is gone")),
        "{out}"
    );
    assert!(!out.contains("health            OK"), "{out}");
}
