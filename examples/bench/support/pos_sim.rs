//! The simulated POS for payBill: a loop in the harness process that claims the agent's
//! journaled commands and acknowledges them, as a real POS integration would.
//!
//! HOOK(journal): the durable command journal (and payBill with it) was built on the `journal`
//! branch and reached `main` at the end of this work, after this harness was measured; it is not
//! on this branch. Until it is wired, [`start`] returns `None` ("not wired") and the harness
//! reports payBill as not measured instead of inventing an acknowledgement. To wire it, after
//! merging main: call `expirenza_agent::journal::sim_pos::spawn(journal_path, mirror, poll)`
//! here (it claims, applies and acknowledges exactly as docs/journal.md tells a real POS to) and
//! set `WIRED`. Two things follow, because that POS applies each payment to the mirror: each run
//! needs its own copy of the generated mirror, and each payBill needs an open bill of its own
//! (a paid bill is no longer open), so the generator must add one payable bill per payBill
//! request (or the payBill phases must send at most as many requests as there are open bills).

use std::path::Path;
use std::time::Duration;

use tokio::task::JoinHandle;

/// A running POS simulator; stops when dropped.
pub struct PosSim {
    task: JoinHandle<()>,
    pub acked: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Drop for PosSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether this build of the harness can acknowledge journal commands.
pub const WIRED: bool = false;

/// Start acknowledging the agent's journal commands, or `None` while not wired (see above).
pub fn start(_journal_path: &Path, _poll: Duration) -> Option<PosSim> {
    if !WIRED {
        return None;
    }
    // Unreachable until wired; kept so the shape of the loop is fixed here.
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let task = tokio::spawn(async {});
    Some(PosSim { task, acked })
}
