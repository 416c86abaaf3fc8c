//! The FAILs the dispatcher answers itself (busy, stopping, a frame that does not parse, an
//! operation's error), and the frame a refused money operation keeps for the spool.

use super::admission;
use crate::ops::{substate, Op, OpError};

/// A FAIL the dispatcher answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub substate: &'static str,
    pub message: String,
    /// Callback path; `None` for operations that have no answer (showMessage, setSettings).
    pub path: Option<String>,
    /// A money operation refused before it started: its frame, spooled before this FAIL is
    /// sent ([`Failure::keeping`]).
    pub keep: Option<Box<Kept>>,
}

/// The frame of a money operation the dispatcher refused before any journal code ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kept {
    pub op: Op,
    /// The frame, or its first [`crate::ops::journaled::MAX_KEPT_UNREADABLE`] bytes when it
    /// cannot be read.
    pub frame: Box<[u8]>,
    /// The frame's length as received.
    pub whole: usize,
}

impl Failure {
    pub fn new(substate: &'static str, message: String, path: String) -> Failure {
        Failure {
            substate,
            message,
            path: Some(path),
            keep: None,
        }
    }
    /// For a money operation (`Op::moves_money`), spool `frame` before this FAIL is sent.
    pub fn keeping(mut self, op: Op, frame: Vec<u8>) -> Failure {
        if op.moves_money() {
            let whole = frame.len();
            self.keep = Some(Box::new(Kept {
                op,
                frame: frame.into(),
                whole,
            }));
        }
        self
    }
    /// [`Failure::keeping`] for a frame that cannot be read: its first bytes only.
    pub fn keeping_unreadable(self, op: Op, frame: &[u8]) -> Failure {
        if !op.moves_money() {
            return self;
        }
        let cut = frame
            .get(..crate::ops::journaled::MAX_KEPT_UNREADABLE)
            .unwrap_or(frame);
        let mut f = self.keeping(op, cut.to_vec());
        if let Some(k) = &mut f.keep {
            k.whole = frame.len();
        }
        f
    }

    pub fn for_op(
        substate: &'static str,
        message: String,
        op_name: &str,
        op: Option<Op>,
    ) -> Failure {
        let path = match op {
            Some(op) => op.callback_path().map(str::to_string),
            None => Some(admission::fail_path(Some(op_name))),
        };
        Failure {
            substate,
            message,
            path,
            keep: None,
        }
    }
    pub fn busy(op_name: &str, op: Option<Op>) -> Failure {
        Failure::for_op(
            substate::AGENT_BUSY,
            "the agent has too many requests in hand; not started, send it again".into(),
            op_name,
            op,
        )
    }
    pub fn stopping(op_name: &str, op: Option<Op>) -> Failure {
        Failure::for_op(
            substate::AGENT_STOPPING,
            "the agent is stopping; not started, send it again".into(),
            op_name,
            op,
        )
    }
    pub(super) fn from_op_error(e: &OpError, op: Op) -> Failure {
        let sub = match e {
            OpError::TooLarge(_) => substate::ANSWER_TOO_LARGE,
            OpError::Mirror(_) => substate::POS_UNAVAILABLE,
            OpError::Other(_) => substate::AGENT_ERROR,
        };
        Failure::for_op(sub, e.to_string(), op.name(), Some(op))
    }
}
