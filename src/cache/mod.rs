//! ORDERS_CACHE: push the open orders to the cloud every `[cache] interval_secs` (protocol
//! docs/protocol.md §5.16; docs/cache.md).
//!
//! - [`tracker`]: cheap change detection (a per-order fingerprint, no serialisation);
//! - [`shape`]: the webhook JSON, the one place for its [inferred] shape;
//! - [`pusher`]: the timed task that runs [`prepare`] and the POST on the blocking pool.
//!
//! One tick = [`prepare`] (one read transaction: scan, load the changed orders in full, write
//! the body) + a signed POST. Changes are computed against the last *acknowledged* push
//! ([`tracker::Acked`]); the pusher commits [`Prepared::commit`] only after a 2xx, so a failed
//! push loses nothing: the next tick carries everything changed since the last success.
//!
//! The body never exceeds `[limits] max_body_bytes`: the short list of every open order is
//! always sent; full details are added oldest first while they fit, and changed orders that do
//! not fit are *deferred* (their old fingerprint is kept, so the next tick sends them).

pub mod pusher;
pub mod shape;
pub mod tracker;

use std::collections::HashMap;

use crate::callback::CallbackError;
use crate::config::ClosedOrdersShape;
use crate::json::{BodyTooLarge, JsonBuf};
use crate::mirror::orders::{self, Order};
use crate::mirror::{Conn, MirrorError};

use shape::Closed;
use tracker::{Acked, Fingerprint};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("mirror: {0}")]
    Mirror(#[from] MirrorError),
    #[error("the short list of open orders alone exceeds max_body_bytes: {0}")]
    TooLarge(#[from] BodyTooLarge),
    #[error("webhook: {0}")]
    Callback(#[from] CallbackError),
    #[error("push task failed: {0}")]
    Task(String),
}

impl From<rusqlite::Error> for CacheError {
    fn from(e: rusqlite::Error) -> Self {
        CacheError::Mirror(e.into())
    }
}

/// The bounds one tick works within.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// `[cache] max_tracked_orders`.
    pub max_tracked: usize,
    /// `[limits] max_rows`: most open orders listed, and most rows read for one order.
    pub max_rows: usize,
    /// `[limits] max_body_bytes`.
    pub max_body: usize,
}

impl Bounds {
    pub fn from_config(cfg: &crate::config::Config) -> Bounds {
        Bounds {
            max_tracked: cfg.cache.max_tracked_orders,
            max_rows: cfg.limits.max_rows,
            max_body: cfg.limits.max_body_bytes,
        }
    }
}

/// What one tick found, for the log line and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickStats {
    /// Open orders (every one is in the short list).
    pub open: usize,
    /// Open orders beyond `max_tracked_orders` (short entry only, ever).
    pub untracked: usize,
    /// Orders sent in full (changed since the last acknowledged push).
    pub full: usize,
    /// Changed orders left for the next tick because the body was full.
    pub deferred: usize,
    /// Orders reported in `closedOrders`.
    pub closed: usize,
}

/// A body ready to sign and send, and the state to commit if the cloud accepts it.
#[derive(Debug)]
pub struct Prepared {
    pub body: Vec<u8>,
    /// The separate closed-orders webhook (`[compat] closed_orders = "separate"`), when orders
    /// closed since the last acknowledged push; sent after `body`.
    pub closed_body: Option<Vec<u8>>,
    pub commit: HashMap<String, Fingerprint>,
    pub stats: TickStats,
}

/// [`prepare_with`] with closed orders inline (`closedOrders` in the ORDERS_CACHE body).
pub fn prepare(
    conn: &Conn<'_>,
    acked: &Acked,
    bounds: Bounds,
    event_time: &str,
) -> Result<Prepared, CacheError> {
    prepare_with(conn, acked, bounds, event_time, ClosedOrdersShape::Inline)
}

/// Build one push: scan, diff against `acked`, load changed orders in full, write the body (and
/// the closed-orders body when `shape` is `Separate`). Reads happen in one read transaction, so
/// the body is a consistent snapshot of the mirror.
pub fn prepare_with(
    conn: &Conn<'_>,
    acked: &Acked,
    bounds: Bounds,
    event_time: &str,
    shape: ClosedOrdersShape,
) -> Result<Prepared, CacheError> {
    let inline = shape == ClosedOrdersShape::Inline;
    // `Mirror::with` already reads in one transaction; a connection outside the pool (tests)
    // gets its own here.
    let own = if conn.is_autocommit() {
        Some(conn.unchecked_transaction()?)
    } else {
        None
    };
    let scan = tracker::scan(conn, bounds.max_tracked, bounds.max_rows)?;

    // Orders acknowledged as open that are open no more (closed, paid, or deleted).
    let mut closed = Vec::new();
    if !acked.is_empty() {
        let open_ids: std::collections::HashSet<&str> =
            scan.open.iter().map(|o| o.bill_id.as_str()).collect();
        let mut gone: Vec<&str> = acked
            .bill_ids()
            .filter(|id| !open_ids.contains(id))
            .collect();
        gone.sort_unstable();
        for id in gone {
            closed.push(Closed {
                bill_id: id.to_string(),
                state: tracker::closed_state(conn, id)?,
            });
        }
    }

    // The body without any full entry: what is always sent.
    let mut skeleton = JsonBuf::new(bounds.max_body);
    let inline_closed = inline.then_some(closed.as_slice());
    shape::write_body(
        &mut skeleton,
        event_time,
        &scan.open,
        |_| None,
        inline_closed,
    );
    let skeleton_len = skeleton.finish()?.len();

    // Changed tracked orders, oldest first, in full while they fit.
    let mut remaining = bounds.max_body - skeleton_len;
    let mut full: Vec<Option<Order>> = Vec::new();
    full.resize_with(scan.tracked, || None);
    let mut stats = TickStats {
        open: scan.open.len(),
        untracked: scan.untracked(),
        closed: closed.len(),
        ..TickStats::default()
    };
    let mut body_full = false;
    for (i, o) in scan.open[..scan.tracked].iter().enumerate() {
        if acked.get(&o.bill_id) == Some(o.fingerprint) {
            continue;
        }
        if body_full {
            stats.deferred += 1;
            continue;
        }
        let Some(order) = orders::order_by_id(conn, &o.bill_id, bounds.max_rows)? else {
            continue; // cannot happen inside the transaction; harmless if it does
        };
        let mut probe = JsonBuf::new(remaining);
        shape::write_full(&mut probe, &order);
        if probe.overflowed() {
            body_full = true;
            stats.deferred += 1;
            continue;
        }
        remaining -= probe.len();
        full[i] = Some(order);
        stats.full += 1;
    }
    drop(own);

    let mut j = JsonBuf::new(bounds.max_body);
    shape::write_body(
        &mut j,
        event_time,
        &scan.open,
        |i| full.get(i).and_then(Option::as_ref),
        inline_closed,
    );
    let body = j.finish()?;
    let closed_body = if inline || closed.is_empty() {
        None
    } else {
        let mut c = JsonBuf::new(bounds.max_body);
        shape::write_closed_body(&mut c, event_time, &closed);
        Some(c.finish()?)
    };

    let mut commit = HashMap::with_capacity(scan.tracked);
    for (i, o) in scan.open[..scan.tracked].iter().enumerate() {
        let old = acked.get(&o.bill_id);
        let fp = if full[i].is_some() || old == Some(o.fingerprint) {
            Some(o.fingerprint)
        } else {
            old // deferred: keep what the cloud has, so it counts as changed next tick
        };
        if let Some(fp) = fp {
            commit.insert(o.bill_id.clone(), fp);
        }
    }
    Ok(Prepared {
        body,
        closed_body,
        commit,
        stats,
    })
}

#[cfg(test)]
mod tests;
