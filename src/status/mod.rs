//! The status board of the running agent and the status file behind `expirenza-agent status`.
//!
//! One job per file:
//! - `board.rs`: [`StatusBoard`], the live state the agent's tasks record events on (an `Arc`,
//!   one small mutex, no allocation on the hot path but for reason strings);
//! - `backlog.rs`: the task that feeds the board the journal backlog, the cache state and the
//!   callback client's waits for a free connection;
//! - `writer.rs`: the task that rewrites the status file every few seconds, and once more on
//!   shutdown with link `down`, reason `shutdown`;
//! - `snapshot.rs`: [`Status`], the file's content, written and [`read`] with serde (JSON,
//!   unknown keys ignored, bounded to 64 KiB);
//! - `render.rs`: [`render()`] for a technician and the [`health`] rules;
//! - `process.rs`: whether the process the file names still runs (`/proc/<pid>/stat`).

pub mod backlog;
pub mod board;
pub mod process;
pub mod render;
pub mod snapshot;
pub mod writer;

pub use crate::clock::now_unix;
pub use board::{StatusBoard, MAX_TEXT};
pub use process::Process;
pub use render::{
    health, render, DEFAULT_STALE_AFTER_SECS, JOURNAL_BACKLOG_UNHEALTHY, LINK_GRACE_SECS,
    MIN_FAILED_UNHEALTHY,
};
pub use snapshot::{read, CallbackPool, Status, StatusError, MAX_FILE_BYTES};
pub use writer::writer;
