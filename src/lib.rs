//! expirenza-agent: the POS side of the Expirenza (Shake To Pay) pay-at-table protocol.
//!
//! Data flow, one module per step (see `docs/design.md`):
//!
//! ```text
//!  link (WebSocket, keep-alive, backoff)
//!    └─► request (bounded parse of one text frame)
//!          └─► dispatch (queue + max_in_flight, one task per operation)
//!                └─► ops::<operation> (reads the mirror, or writes the journal and waits)
//!                      └─► callback (serialise once, sign, POST, retry until the deadline)
//! ```

#![deny(unsafe_code)]

#[macro_use]
pub mod log;

pub mod agent;
pub mod answers;
pub mod body_stream;
pub mod cache;
pub mod callback;
pub mod check;
pub mod cli;
pub mod config;
pub mod ctx;
pub mod dispatch;
pub mod journal;
pub mod json;
pub mod json_in;
pub mod link;
pub mod metrics;
pub mod mirror;
pub mod money;
pub mod ops;
pub mod request;
pub mod runtime_file;
pub mod scratch_dir;
pub mod secret;
pub mod shared_file;
pub mod shutdown;
pub mod sign;
pub mod sqlite_mem;
pub mod status;
pub mod systemd;
pub mod tls;
pub mod wire;

pub use config::Config;
pub mod clock;

#[cfg(test)]
mod test_util;
