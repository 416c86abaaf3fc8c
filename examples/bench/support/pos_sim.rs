//! The simulated POS for payBill: `testkit::sim_pos` on its own thread next to
//! the agent process, claiming the agent's journaled commands, applying them to the run's
//! mirror and acknowledging them, exactly as docs/journal.md tells a real POS to.
//!
//! Because it applies each payment (the bill becomes PAYED), each run works on its own copy of
//! the generated mirror and each payBill request pays a bill of its own
//! (`mirror_gen::Generated::payable`). The POS polls the journal every `poll` (it has no
//! cross-process event to wait on either), so a payBill latency includes up to one POS poll
//! interval and up to one agent `[journal] poll_interval_ms`.

use std::path::Path;
use std::time::Duration;

use testkit::sim_pos;

/// A running POS simulator; stops (and joins its thread) when dropped.
pub struct PosSim {
    inner: sim_pos::Running,
}

impl PosSim {
    /// Commands claimed, applied and acknowledged so far.
    pub fn processed(&self) -> u64 {
        self.inner.processed()
    }
}

/// Whether this build of the harness can acknowledge journal commands.
pub const WIRED: bool = true;

/// Start acknowledging the agent's journal commands (`journal_path`), applying them to
/// `mirror_path`, polling every `poll`.
pub fn start(journal_path: &Path, mirror_path: &Path, poll: Duration) -> Result<PosSim, String> {
    sim_pos::spawn(journal_path, mirror_path, poll)
        .map(|inner| PosSim { inner })
        .map_err(|e| format!("starting the simulated POS: {e}"))
}
