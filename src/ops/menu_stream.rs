//! menuInfo of any size in constant memory (issue 14).
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

use rusqlite::Connection;

use super::menu_info::{write_menu, Counts};
use super::Ctx;
use crate::body_stream::{self, BodySource, Prepared, StreamError};
use crate::json::JsonBuf;
use crate::mirror::MirrorError;

#[derive(Debug, thiserror::Error)]
pub enum MenuError {
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error(transparent)]
    Stream(#[from] StreamError),
}

/// The menu from one snapshot; every call to `generate` writes the same bytes.
struct MenuSource {
    conn: Connection,
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

/// First pass of the menu for request `rid`: whole if it fits in `max_body_bytes`, else signed
/// and measured, ready to stream (at most `[limits] max_menu_bytes`). Also returns the counts of
/// groups, dishes and modifiers.
pub fn prepare(ctx: &Ctx, rid: &str) -> Result<(Prepared, Counts), MenuError> {
    let counts = Arc::new(Mutex::new((0, 0, 0)));
    let source = MenuSource {
        conn: ctx.mirror.snapshot()?,
        rid: rid.to_string(),
        max_rows: ctx.max_rows(),
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
