//! The one waiting primitive of the fake cloud: re-check a condition whenever a `watch`
//! "something changed" counter moves, until it holds or the deadline passes.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

/// A change counter. Writers call [`Events::bump`] after each state change; waiters use
/// [`Events::wait_for`].
#[derive(Debug)]
pub(crate) struct Events(watch::Sender<u64>);

impl Events {
    pub(crate) fn new() -> Self {
        Events(watch::Sender::new(0))
    }

    /// Wake every waiter (works with or without live receivers).
    pub(crate) fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Evaluate `check` now and after every [`bump`](Self::bump) until it returns `Some`, or
    /// until `timeout` elapses (then `check` runs one last time).
    pub(crate) async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        // Subscribe *before* checking so a change between the check and the await is not lost.
        let mut rx = self.0.subscribe();
        loop {
            if let Some(v) = check() {
                return Some(v);
            }
            match timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return check(),
            }
        }
    }
}

/// Lock a std mutex, ignoring poisoning (a panicking test thread must not cascade).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
