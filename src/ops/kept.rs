//! Answers kept per mirror version ([`crate::answers`]), as the read operations use them:
//! serve a kept answer under a new rID, or keep the one just written.
//!
//! A kept answer is the body's bytes after `{"rID":"…"`: serving it writes the request's own
//! `{"rID":"…"` and then those bytes, so the body is exactly the one a fresh read would write.

use super::Ctx;
use crate::json::JsonBuf;
use crate::mirror::{Conn, MirrorError, Version};

/// The version of the mirror `c` reads, when answers are kept (`None` when they are off: the
/// query is not even made).
pub fn version(ctx: &Ctx, c: &Conn<'_>) -> Result<Option<Version>, MirrorError> {
    if ctx.answers.is_on() {
        c.version()
    } else {
        Ok(None)
    }
}

/// The answer kept for `key` at `version`, as a body for `rid`, with its count.
pub fn serve(
    ctx: &Ctx,
    version: Option<Version>,
    key: &[u8],
    rid: &str,
) -> Option<(JsonBuf, usize)> {
    ctx.answers.get(version, key, |rest, n| {
        let mut j = ctx.body_with_room(rid.len() + rest.len() + 16);
        j.begin_obj().f_str("rID", rid).json_written_before(rest);
        (j, n)
    })
}

/// Starts a body for `rid`; the offset where its kept part begins ([`keep`]).
pub fn begin(ctx: &Ctx, rid: &str) -> (JsonBuf, usize) {
    let mut j = ctx.body();
    j.begin_obj().f_str("rID", rid);
    let rest = j.len();
    (j, rest)
}

/// Keeps the body `j` (begun with [`begin`], whole and SUCCESS) for `key` at `version`.
pub fn keep(ctx: &Ctx, version: Option<Version>, key: &[u8], j: &JsonBuf, rest: usize, n: usize) {
    if let Some(bytes) = j.since(rest) {
        ctx.answers.put(version, key, bytes, n);
    }
}
