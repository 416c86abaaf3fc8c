//! Waiting for the POS to acknowledge a command.
//!
//! The POS is another process writing the same SQLite file; SQLite offers no cross-process
//! notification, so this polls the row every `[journal] poll_interval_ms` (default 200 ms),
//! blocking its thread: for offline tools (`ops::handle_to_end`, `simulate`); the running
//! agent's dispatcher waits on timers instead (`dispatch/job.rs`). The wait is bounded by
//! `[journal] pos_ack_timeout_secs` (default 60 s; with the lock wait and 5 s for the answer it
//! fits the 80 s callback deadline, `Config::validate`), and each poll is one indexed
//! primary-key read.

use std::time::{Duration, Instant};

use super::{Command, Journal, JournalError};

impl Journal {
    /// Poll command `id` until the POS finished it (applied, rejected, review) or `timeout`
    /// passed; returns the row as it then stands (possibly still pending or claimed).
    pub fn wait_final(&self, id: i64, timeout: Duration) -> Result<Command, JournalError> {
        let deadline = Instant::now() + timeout;
        loop {
            let cmd = self.get(id)?;
            let now = Instant::now();
            if cmd.status.is_final() || now >= deadline {
                return Ok(cmd);
            }
            // No cross-process event exists for "another process updated this row": poll.
            std::thread::sleep(self.poll_interval.min(deadline - now));
        }
    }

    /// [`Journal::wait_final`] with `[journal] pos_ack_timeout_secs`.
    pub fn wait_ack(&self, id: i64) -> Result<Command, JournalError> {
        self.wait_final(id, self.ack_timeout)
    }
}
