//! Running the real `expirenza-agent` binary from a test: one-shot commands with captured
//! output, and a long-running `run` whose stderr is streamed so a test can wait for a log line
//! (an event, not a sleep) and then stop it with SIGTERM.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_expirenza-agent");

static N: AtomicUsize = AtomicUsize::new(0);

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "expirenza-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A command with a clean environment as far as the agent is concerned.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    for k in [
        "EXPIRENZA_RESTO_ID",
        "EXPIRENZA_SECRET_KEY",
        "EXPIRENZA_WS_URL",
        "EXPIRENZA_CALLBACK_URL",
        "EXPIRENZA_MIRROR",
        "CREDENTIALS_DIRECTORY",
    ] {
        c.env_remove(k);
    }
    c
}

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Run to completion (bounded by `limit`), feeding `stdin`.
pub fn run_once(mut c: Command, stdin: &[u8], limit: Duration) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn the agent binary");
    let mut input = child.stdin.take().unwrap();
    // The command may exit before reading its input (an early error): ignore EPIPE.
    let _ = input.write_all(stdin);
    drop(input);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(limit)
        .expect("the command did not finish in time")
        .unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `expirenza-agent run`.
pub struct Agent {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    rx: mpsc::Receiver<String>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Agent {
    pub fn spawn(mut c: Command) -> Agent {
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("spawn the agent binary");
        let err = child.stderr.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                l2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        });
        Agent {
            child: Some(child),
            lines,
            rx,
            stdout: Some(stdout),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Wait for a stderr line containing `needle` (lines already seen count).
    pub fn wait_line(&self, needle: &str, limit: Duration) -> Option<String> {
        if let Some(l) = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
        {
            return Some(l.clone());
        }
        let end = Instant::now() + limit;
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Wait until at least `n` stderr lines contain `needle`.
    pub fn wait_count(&self, needle: &str, n: usize, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            if self.count_lines(needle) >= n {
                return true;
            }
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return false;
            };
            // Woken by the next stderr line (or the deadline).
            if let Err(mpsc::RecvTimeoutError::Disconnected) = self.rx.recv_timeout(left) {
                return self.count_lines(needle) >= n;
            }
        }
    }

    /// Wait until `pred(counts of each needle)` holds; woken by each stderr line.
    pub fn wait_counts(
        &self,
        needles: &[&str],
        pred: impl Fn(&[usize]) -> bool,
        limit: Duration,
    ) -> Vec<usize> {
        let end = Instant::now() + limit;
        loop {
            let counts: Vec<usize> = needles.iter().map(|n| self.count_lines(n)).collect();
            if pred(&counts) {
                return counts;
            }
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return counts;
            };
            if let Err(mpsc::RecvTimeoutError::Disconnected) = self.rx.recv_timeout(left) {
                return needles.iter().map(|n| self.count_lines(n)).collect();
            }
        }
    }

    /// Count stderr lines containing `needle` so far.
    pub fn count_lines(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    pub fn stderr_so_far(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Peak resident set (VmHWM) and current (VmRSS), in KiB.
    /// Threads of the agent process now (`/proc/<pid>/status`).
    pub fn threads(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Threads:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn memory_kib(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let get = |k: &str| {
            s.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (get("VmHWM:"), get("VmRSS:"))
    }

    /// Wait (bounded) for the process to end by itself: its exit code, `None` when a signal
    /// ended it.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = rx
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("the process did not end within {limit:?}"))
            .unwrap();
        status.code()
    }

    /// SIGTERM, then wait (bounded); returns the exit code and all output.
    pub fn stop(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().unwrap();
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let (tx, rx) = mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(limit) {
            Ok(s) => s.unwrap(),
            Err(_) => {
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
                panic!("the agent did not stop within {limit:?} of SIGTERM");
            }
        };
        let stdout = self.stdout.take().unwrap().join().unwrap_or_default();
        // The stderr thread ends at EOF; collect what it saw.
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
            }
        }
        Output {
            code: status.code(),
            stdout,
            stderr: self.stderr_so_far(),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A minimal config file; `extra` is appended verbatim (sections, overrides).
pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(&p, body).unwrap();
    p
}

/// Create a demo mirror with the binary itself.
pub fn demo_mirror(dir: &Path) -> PathBuf {
    let p = dir.join("mirror.sqlite");
    let out = run_once(
        command(&["init-mirror", p.to_str().unwrap(), "--demo"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(0), "init-mirror: {}", out.all());
    p
}

/// Fast timings for a binary run against the fake cloud (appended to the config file).
pub const FAST_TOML: &str = "[link]\nping_interval_secs = 1\ndead_after_secs = 3\n\
connect_timeout_secs = 2\nbackoff_floor_ms = 200\nbackoff_cap_ms = 1000\n\
[callback]\nattempt_timeout_secs = 2\ndeadline_secs = 10\nretry_initial_ms = 100\nretry_max_ms = 400\n\
[journal]\npos_ack_timeout_secs = 4\n";

/// `expirenza-agent run` with the endpoints, identity and mirror given by the environment
/// overrides, and a minimal config file (state_dir, fast timings, `extra` sections).
pub fn spawn_run(
    dir: &Path,
    resto: &str,
    secret: &str,
    ws_url: &str,
    callback_url: &str,
    mirror: &Path,
    extra: &str,
) -> Agent {
    spawn_run_timed(
        dir,
        resto,
        secret,
        ws_url,
        callback_url,
        mirror,
        FAST_TOML,
        extra,
    )
}

/// [`spawn_run`] with `timings` in place of [`FAST_TOML`].
#[allow(clippy::too_many_arguments)]
pub fn spawn_run_timed(
    dir: &Path,
    resto: &str,
    secret: &str,
    ws_url: &str,
    callback_url: &str,
    mirror: &Path,
    timings: &str,
    extra: &str,
) -> Agent {
    let cfg = write_config(
        dir,
        &format!(
            "state_dir = \"{0}\"\nruntime_dir = \"{0}\"\n{timings}{extra}",
            dir.display()
        ),
    );
    let mut c = command(&["run", "--config", cfg.to_str().unwrap()]);
    c.env("EXPIRENZA_RESTO_ID", resto)
        .env("EXPIRENZA_SECRET_KEY", secret)
        .env("EXPIRENZA_WS_URL", ws_url)
        .env("EXPIRENZA_CALLBACK_URL", callback_url)
        .env("EXPIRENZA_MIRROR", mirror);
    Agent::spawn(c)
}
