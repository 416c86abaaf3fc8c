//! This thread's CPU time, for the examples that measure compute (`cache_cost`, `op_cost`);
//! included by path (`#[path = "common/cpu.rs"] mod cpu;`).

use std::time::Duration;

/// User + system CPU time of the calling thread (`getrusage(RUSAGE_THREAD)`).
#[allow(unsafe_code)]
pub fn thread_cpu() -> Duration {
    // SAFETY: rusage is plain old data and getrusage only writes into the value we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
