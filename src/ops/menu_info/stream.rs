//! menuInfo of any size in constant memory.
//!
//! [`prepare`] opens a mirror connection of its own inside a read transaction (one snapshot)
//! and generates the menu once: a menu that fits in `[limits] max_body_bytes` comes back whole,
//! as any other answer; a larger one is only signed and measured on this first pass
//! ([`body_stream::prepare`]) and keeps the snapshot, so the transport can generate the same
//! bytes again straight onto the wire after a head with their `Content-Length`
//! ([`StreamBody::chunks`]). The heap used is the same for 5 000 or 40 000 dishes: one row
//! per SQL cursor and one chunk in flight (tests/menu_memory.rs measures it).
//!
//! [`StreamBody::chunks`]: crate::body_stream::StreamBody::chunks

use std::sync::{Arc, Mutex};

use super::write::{write_menu, Counts};
use crate::body_stream::{self, BodySource, Prepared, StreamError};
use crate::json::JsonBuf;
use crate::mirror::{MirrorError, Snapshot};
use crate::ops::Ctx;

#[derive(Debug, thiserror::Error)]
pub enum MenuError {
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// The menu from one snapshot; every call to `generate` writes the same bytes.
struct MenuSource {
    conn: Snapshot,
    rid: String,
    max_rows: usize,
    counts: Arc<Mutex<Counts>>,
}

impl BodySource for MenuSource {
    fn generate(&mut self, out: &mut JsonBuf) -> Result<(), String> {
        let c = write_menu(&self.conn, out, &self.rid, self.max_rows).map_err(|e| e.to_string())?;
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()) = c;
        Ok(())
    }
}

/// Rows menuInfo may read. It reads in constant memory (cursors straight into the writer), so
/// `max_rows`, which bounds what other answers hold, would only cap the menu's size; its real
/// bound is its bytes: one row per [`BYTES_PER_ROW`] of `[limits] max_menu_bytes` (a row
/// writes more than that), or `max_rows` if that is more. With the defaults, 4 Mi rows.
pub fn menu_rows(ctx: &Ctx) -> usize {
    ctx.max_rows()
        .max(ctx.cfg.limits.max_menu_bytes / BYTES_PER_ROW)
}

/// See [`menu_rows`].
pub const BYTES_PER_ROW: usize = 16;

/// First pass of the menu for request `rid`: whole if it fits in `max_body_bytes`, else signed
/// and measured, ready to stream (at most `[limits] max_menu_bytes`). Also returns the counts of
/// groups, dishes and modifiers.
pub fn prepare(ctx: &Ctx, rid: &str) -> Result<(Prepared, Counts), MenuError> {
    let counts = Arc::new(Mutex::new((0, 0, 0)));
    let source = MenuSource {
        conn: ctx.mirror.snapshot()?,
        rid: rid.to_string(),
        max_rows: menu_rows(ctx),
        counts: counts.clone(),
    };
    let prepared = body_stream::prepare(
        &ctx.cfg.secret,
        Box::new(source),
        ctx.cfg.limits.max_body_bytes,
        ctx.cfg.limits.max_menu_bytes,
    )?;
    let c = *counts.lock().unwrap_or_else(|p| p.into_inner());
    Ok((prepared, c))
}
