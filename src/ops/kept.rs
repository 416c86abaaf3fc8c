//! Answers kept per mirror version ([`crate::answers`]), as the read operations use them:
//! serve a kept answer under a new rID, or keep the one just written.
//!
//! A kept answer is the body's bytes after `{"rID":"…"`: serving it writes the request's own
//! `{"rID":"…"` and then those bytes, so the body is exactly the one a fresh read would write.
//!
//! Only an answer read from real tables is kept: a view may show other rows without any
//! commit (`Mirror::keeps`), so an operation that reads one is answered fresh every time.

use super::Ctx;
use crate::json::JsonBuf;
use crate::mirror::check::Needs;
use crate::mirror::{Conn, MirrorError, Version};

/// The version of the mirror `c` reads, when an answer read from `needs` may be kept: answers
/// are on and every object in `needs` is a real table. `None` otherwise (with answers off, the
/// query is not even made).
pub fn version(ctx: &Ctx, c: &Conn<'_>, needs: Needs) -> Result<Option<Version>, MirrorError> {
    if !ctx.answers.is_on() {
        return Ok(None);
    }
    let Some(v) = c.version()? else {
        return Ok(None);
    };
    Ok(ctx.mirror.keeps(c, v, needs)?.then_some(v))
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
