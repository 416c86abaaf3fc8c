//! Starting and stopping the agent process: directly, behind a wrapper (qemu-user for a
//! foreign build), and optionally under `strace -f` so every thread the agent creates
//! (`clone`/`clone3`) is counted exactly.
//!
//! `strace --seccomp-bpf -e trace=clone,clone3,fork,vfork` stops the agent only at those calls,
//! so it costs nothing on the request path while counting them; its log is read at phase
//! boundaries to count the calls in between.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::procfs;

/// How the agent is started.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub bin: PathBuf,
    /// Program and arguments put before the binary, e.g. `qemu-aarch64 -cpu cortex-a72`.
    pub wrapper: Vec<String>,
    /// Run under strace and count clone calls.
    pub strace: bool,
}

pub struct AgentProc {
    child: tokio::process::Child,
    /// The agent's own pid (strace's child when traced).
    pub pid: u32,
    clone_log: Option<PathBuf>,
}

impl AgentProc {
    pub async fn spawn(
        launch: &Launch,
        config: &Path,
        log: &Path,
        dir: &Path,
    ) -> Result<AgentProc, String> {
        let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
        let mut argv: Vec<OsString> = Vec::new();
        let clone_log = launch.strace.then(|| dir.join("clones.strace"));
        if let Some(path) = &clone_log {
            for a in ["strace", "-f", "--seccomp-bpf", "-qq", "-e"] {
                argv.push(a.into());
            }
            argv.push("trace=clone,clone3,fork,vfork".into());
            argv.push("-o".into());
            argv.push(path.into());
        }
        argv.extend(launch.wrapper.iter().map(OsString::from));
        argv.push(launch.bin.clone().into());
        argv.extend(["run".into(), "--config".into(), config.into()]);
        let mut child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawning {:?}: {e}", argv[0]))?;
        let top = child.id().ok_or("the agent exited at once")?;
        let pid = if launch.strace {
            // strace forks the agent: wait (bounded) for that child to have exec'ed the agent
            // (strace also forks short-lived children of its own, e.g. to probe seccomp).
            let t = Instant::now();
            let wanted = config.as_os_str().as_encoded_bytes().to_vec();
            loop {
                // strace's own children carry strace's command line (which names the config
                // too): the agent is the one whose first argument is not strace.
                let found = procfs::children(top).into_iter().find(|c| {
                    std::fs::read(format!("/proc/{c}/cmdline")).is_ok_and(|cmd| {
                        let mut args = cmd.split(|&b| b == 0);
                        args.next().is_some_and(|a0| !a0.ends_with(b"strace"))
                            && args.any(|a| a == wanted.as_slice())
                    })
                });
                if let Some(c) = found {
                    break c;
                }
                if t.elapsed() > Duration::from_secs(10)
                    || child.try_wait().ok().flatten().is_some()
                {
                    let _ = child.kill().await;
                    return Err("strace did not start the agent (is strace installed?)".into());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        } else {
            top
        };
        Ok(AgentProc {
            child,
            pid,
            clone_log,
        })
    }

    /// clone/clone3/fork/vfork calls the agent made so far (`None` when not traced).
    pub fn clones(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.clone_log.as_ref()?).ok()?;
        Some(count_clone_calls(&text))
    }

    /// SIGTERM, then wait for a clean exit (bounded); SIGKILL if it does not come.
    pub async fn stop(mut self, notes: &mut Vec<String>) {
        // SAFETY: kill(2) on the agent's pid, which this harness started and has not reaped
        // (under strace, strace reaps it and then exits itself).
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => notes.push(format!("agent exited with {status} after SIGTERM")),
            Ok(Err(e)) => notes.push(format!("waiting for the agent: {e}")),
            Err(_) => {
                notes.push("agent did not stop within 15 s of SIGTERM; killed".into());
                // SAFETY: as above; SIGKILL to the agent itself (killing only strace would
                // leave the agent running, detached).
                unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
                let _ = self.child.kill().await;
            }
        }
    }
}

/// Count the calls in an `strace -f -qq -e trace=clone,...` log: one line per call, plus a
/// `<... resumed>` line for a call another thread's output interrupted (not counted twice).
pub fn count_clone_calls(log: &str) -> u64 {
    log.lines()
        .filter(|l| !l.contains("resumed>"))
        .filter(|l| {
            ["clone(", "clone3(", "fork(", "vfork("]
                .iter()
                .any(|c| l.contains(c))
        })
        .count() as u64
}
