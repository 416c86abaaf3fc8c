//! Reading a process's memory and CPU use from `/proc/<pid>` (Linux only).

use std::time::Duration;

/// Resident memory of a process, KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the highest `VmRSS` since the process started.
    pub hwm_kib: u64,
}

pub fn mem(pid: u32) -> std::io::Result<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Mem {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    })
}

/// Threads of the process (`Threads:` in status).
pub fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time used so far, as `utime + stime` from `/proc/<pid>/stat` (clock-tick resolution).
pub fn cpu_stat(pid: u32) -> std::io::Result<Duration> {
    cpu_split(pid).map(|c| c.user + c.kernel)
}

/// CPU time used so far, split into user and kernel time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub user: Duration,
    pub kernel: Duration,
}
impl Cpu {
    pub fn total(self) -> Duration {
        self.user + self.kernel
    }
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            kernel: self.kernel.saturating_sub(earlier.kernel),
        }
    }
}

/// `utime` and `stime` from `/proc/<pid>/stat` (clock-tick resolution; the kernel splits each
/// tick's time by sampling, so the split is an estimate over a long window).
pub fn cpu_split(pid: u32) -> std::io::Result<Cpu> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Field 2 (comm) may hold spaces; everything after the last ')' is fixed.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let ticks = |t: u64| Duration::from_nanos(t * 1_000_000_000 / clk_tck());
    Ok(Cpu {
        user: ticks(num(11)),
        kernel: ticks(num(12)),
    })
}

/// CPU time on all threads from `/proc/<pid>/task/*/schedstat` (nanoseconds; finer than
/// `cpu_stat`). `None` where the kernel has no schedstat. Threads that already exited are not
/// counted, so use it only for windows in which the thread set is stable (idle).
pub fn cpu_schedstat(pid: u32) -> Option<Duration> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = entry.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Thread ids of the process now (`/proc/<pid>/task`).
pub fn tids(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The children of a process (`/proc/<pid>/task/<pid>/children`), e.g. the agent under strace.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
