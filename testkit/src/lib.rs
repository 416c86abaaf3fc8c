//! Test support for expirenza-agent (a dev-only workspace crate, never linked into the agent):
//! an in-process **fake Expirenza cloud**, the one-call [`harness`], the simulated POS
//! ([`sim_pos`]), and the agent's request stages on a paused clock with delivery captured
//! ([`stages`]), through which the tests run operations.
//!
//! Used by the agent's integration tests, the examples (sandbox, bench, soak, cache_cost).
//! The agent lists it under `[dev-dependencies]` only, so `cargo build` of the agent never
//! compiles it (`cargo tree -e normal -p expirenza-agent` does not show it).
//!
//! [`FakeCloud`] runs two servers on `127.0.0.1` (ephemeral ports) inside the current tokio
//! runtime:
//! * a WebSocket endpoint (`/restaurantEntryPoint`, see [`ws`]) that checks Basic auth and the
//!   `system=` cookie, keeps one live session, records pings and text frames, and lets a test
//!   push frames, drop the link or turn it into a black hole;
//! * an HTTP/1.1 callback server on hyper (`/callback/<operation>`, see [`http`]) that
//!   verifies `signature` (constant time) and `restoId`, records every request with its raw
//!   head bytes (header names as spelled on the wire), and answers from a script ([`Reply`]):
//!   status codes, delays, hangs and resets (the last two on the raw socket).
//!
//! Every waiting method takes a timeout; waits are woken by `tokio::sync::watch`, never by
//! sleeping.

pub mod fake_cloud;
pub mod harness;
pub mod http;
mod rid;
mod shared;
pub mod sim_pos;
pub mod stages;
mod tap;
mod wait;
pub mod ws;

#[cfg(test)]
mod tests;

pub use fake_cloud::{FakeCloud, FakeCloudConfig};
pub use http::{Callback, Reply};
pub use ws::Handshake;
