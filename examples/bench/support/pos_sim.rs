//! The simulated POS for payBill: a loop in the harness process that claims the agent's
//! journaled commands and acknowledges them, as a real POS integration would.
//!
//! HOOK(journal): the durable command journal (and payBill with it) is being built on the
//! `journal` branch; its table layout / claim-and-ack API is not on this branch yet. Until it
//! lands, [`start`] returns `None` ("not wired") and the harness reports payBill as not
//! measured instead of inventing an acknowledgement. To wire it: open the journal at
//! `journal_path` (the agent's `<state_dir>/journal.sqlite`) with the journal module's POS-side
//! API (or its documented SQL), and in the loop below claim every pending command and mark it
//! applied, waking at most every `poll` (the POS side has no event to wait on but the file).

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
