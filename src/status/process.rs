//! Whether the process a status file names still runs: the file keeps saying what the agent
//! last wrote after the agent is gone (a SIGTERM outside systemd, a crash), so `status` asks
//! the kernel (`/proc/<pid>/stat`) whether that pid is alive, and whether it is still the
//! same process: the file also holds the process's start time (clock ticks since boot, field
//! 22 of `/proc/<pid>/stat`), which a later process given the same pid does not share. Clock
//! ticks since boot do not move when the wall clock is set (a board without a real-time
//! clock sets it after boot).

/// What the kernel says about the status file's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Process {
    Running,
    /// Not running; why, in words.
    Gone(String),
    /// `/proc` cannot tell (not mounted, another pid namespace).
    Unknown,
}

/// `(state, start time)` of `pid` from `/proc/<pid>/stat`; `Err` with the I/O error kind.
fn stat(pid: u32) -> Result<(char, u64), std::io::ErrorKind> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.kind())?;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses; the fields after the
    // last ')' are plain.
    let rest = text
        .rfind(')')
        .and_then(|i| text.get(i + 1..))
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields
        .first()
        .and_then(|s| s.chars().next())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    // Field 3 is `state`, so field 22 (`starttime`) is the 20th after the parenthesis.
    let start = fields
        .get(19)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    Ok((state, start))
}

/// This process's start time, for the status file.
pub fn own_start() -> Option<u64> {
    stat(std::process::id()).ok().map(|(_, start)| start)
}

/// Whether `pid`, started at `start` (when the file says), still runs.
pub fn of(pid: u32, start: Option<u64>) -> Process {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return Process::Unknown;
    }
    match stat(pid) {
        Ok(('Z' | 'X', _)) => Process::Gone(format!("process {pid} has exited")),
        Ok((_, now)) if start.is_some_and(|s| s != now) => Process::Gone(format!(
            "process {pid} has exited (that pid now belongs to another process)"
        )),
        Ok(_) => Process::Running,
        Err(std::io::ErrorKind::NotFound) => Process::Gone(format!("process {pid} is gone")),
        Err(_) => Process::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_an_exited_one_is_gone() {
        let me = std::process::id();
        let start = own_start();
        assert!(start.is_some());
        assert_eq!(of(me, start), Process::Running);
        assert_eq!(
            of(me, None),
            Process::Running,
            "an older file without the start"
        );
        assert!(
            matches!(of(me, start.map(|s| s + 1)), Process::Gone(ref why) if why.contains("another process")),
            "same pid, another start: a reused pid"
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(
            matches!(of(pid, None), Process::Gone(_)),
            "{:?}",
            of(pid, None)
        );
    }
}
