//! Deliver: exactly one callback per request, on its own bound (see `mod.rs`), and the one
//! log line per request: operation, rID, outcome, bytes, attempts, milliseconds.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use super::admission::Ticket;
use super::compute::Computed;
use super::{Failure, Inner};
use crate::body_stream::{StreamBody, CHUNK, CHUNKS_IN_FLIGHT};
use crate::callback::{CallbackError, Delivered};
use crate::metrics::Outcome;
use crate::ops::{substate, Ctx};
use crate::sign::SignedBody;

/// Who the callback is for, and since when.
pub(super) struct Request {
    pub rid: String,
    pub op_name: String,
    /// When the frame arrived: the callback's deadline and the latency metric run from here.
    pub received: Instant,
    /// When the request started (its log line's milliseconds).
    pub start: Instant,
}

/// An answer ready to send.
enum Body {
    Bytes(SignedBody),
    Stream(StreamBody),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Bytes(b) => b.len(),
            Body::Stream(s) => s.len(),
        }
    }
}

/// Deliver what the compute stage produced: the answer, or the dispatcher's FAIL, or (for an
/// operation with no callback) only the log line. `delivery` is the slot an inline read took
/// before it computed.
pub(super) async fn deliver(
    inner: &Arc<Inner>,
    req: Request,
    computed: Computed,
    delivery: Option<OwnedSemaphorePermit>,
    mut ticket: Ticket,
) {
    let ctx = &inner.ctx;
    let (body, path, outcome, own) = match computed {
        Computed::Send {
            body,
            path,
            outcome,
        } => (Body::Bytes(body), path, outcome, true),
        Computed::Stream {
            body,
            path,
            outcome,
        } => (
            Body::Stream(body),
            path,
            format!("{outcome} streamed"),
            true,
        ),
        Computed::Nothing { outcome } => {
            log_info!(
                "op={} rID={} outcome={outcome} ms={:.1}",
                req.op_name,
                req.rid,
                ms(req.start)
            );
            return finish(inner, &req, true, Outcome::NoAnswer);
        }
        // compute_and_wait loops until the answer is final; an Await cannot reach here.
        Computed::Await { .. } => match fail(inner, &req, agent_error()) {
            Some((b, p, o)) => (Body::Bytes(b), p, o, false),
            None => return,
        },
        Computed::Fail(f) => match fail(inner, &req, f) {
            Some((b, p, o)) => (Body::Bytes(b), p, o, false),
            None => return,
        },
    };
    // The answer's bytes count against admission until it is delivered; a streamed one holds
    // the chunks in flight and the one being filled.
    ticket.grow(match &body {
        Body::Bytes(b) => b.len(),
        Body::Stream(_) => CHUNK * (CHUNKS_IN_FLIGHT + 1),
    });
    // A streamed answer's second pass holds a pool thread for as long as the network takes:
    // at most `max_streaming` at once, waited for holding nothing else.
    let streaming = match &body {
        Body::Stream(_) => inner.streaming.clone().acquire_owned().await.ok(),
        Body::Bytes(_) => None,
    };
    let slot = match delivery {
        Some(p) => Some(p),
        None => inner.delivering.clone().acquire_owned().await.ok(),
    };
    let deadline = req.received + ctx.cfg.callback_deadline();
    let mut r = match &body {
        Body::Bytes(b) => ctx.callback.deliver(&path, b, deadline).await,
        Body::Stream(s) => ctx.callback.deliver_stream(&path, s, deadline).await,
    };
    let (mut outcome, mut bytes, mut own) = (outcome, body.len(), own);
    if let Err(CallbackError::TooLarge { size, cap }) = &r {
        // A body the transport refuses (over max_body_bytes, or a stream it cannot send):
        // answer a FAIL instead.
        let message = match &body {
            Body::Bytes(_) => format!("the answer of {size} bytes exceeds max_body_bytes ({cap})"),
            Body::Stream(_) => {
                format!("the answer of {size} bytes cannot be streamed by this transport")
            }
        };
        let f = Failure::new(substate::ANSWER_TOO_LARGE, message, path.clone());
        if let Some((fail, _)) = fail_signed(ctx, &req.rid, &f) {
            log_error!(
                "op={} rID={}: {}; answering FAIL",
                req.op_name,
                req.rid,
                f.message
            );
            (outcome, bytes, own) = ("FAIL ANSWER_TOO_LARGE".into(), fail.len(), false);
            r = ctx.callback.deliver(&path, &fail, deadline).await;
        }
    }
    drop((slot, streaming));
    done(inner, &req, &outcome, bytes, r, own);
}

fn agent_error() -> Failure {
    Failure {
        substate: substate::AGENT_ERROR,
        message: "the operation did not finish".into(),
        path: None,
        keep: None,
    }
}

/// A dispatcher FAIL ready to deliver (body, path, outcome), or, for an operation with no
/// callback, `None` after its log line.
fn fail(inner: &Inner, req: &Request, f: Failure) -> Option<(SignedBody, String, String)> {
    match fail_signed(&inner.ctx, &req.rid, &f) {
        Some((body, path)) => Some((body, path, format!("FAIL {}", f.substate))),
        None => {
            log_error!(
                "op={} rID={} outcome=FAIL {} (no callback for this operation): {} ms={:.1}",
                req.op_name,
                req.rid,
                f.substate,
                f.message,
                ms(req.start)
            );
            finish(inner, req, false, Outcome::Error);
            None
        }
    }
}

/// `{"rID":…,"state":"FAIL","substate":…,"errorMessage":…}`, signed, and its path.
fn fail_signed(ctx: &Ctx, rid: &str, f: &Failure) -> Option<(SignedBody, String)> {
    let path = f.path.clone()?;
    let mut j = ctx.body();
    j.begin_obj()
        .f_str("rID", rid)
        .f_str("state", "FAIL")
        .f_str("substate", f.substate)
        .f_str("errorMessage", &f.message)
        .end_obj();
    let body = j.finish().ok()?;
    Some((SignedBody::new(&ctx.cfg.secret, body), path))
}

fn done(
    inner: &Inner,
    req: &Request,
    outcome: &str,
    bytes: usize,
    r: Result<Delivered, CallbackError>,
    own: bool,
) {
    let (op_name, rid) = (&req.op_name, &req.rid);
    match r {
        Ok(d) => {
            log_info!(
                "op={op_name} rID={rid} outcome={outcome} bytes={bytes} attempts={} ms={:.1}",
                d.attempts,
                ms(req.start)
            );
            finish(inner, req, own, Outcome::of_answer(outcome));
        }
        Err(e) => {
            log_error!(
                "op={op_name} rID={rid} outcome={outcome} callback-failed: {e} ms={:.1}",
                ms(req.start)
            );
            finish(inner, req, false, Outcome::Undelivered);
        }
    }
}

fn finish(inner: &Inner, req: &Request, ok: bool, metric: Outcome) {
    use std::sync::atomic::Ordering::Relaxed;
    crate::metrics::op_finished(
        super::metric_name(&req.op_name),
        metric,
        req.received.elapsed(),
    );
    let c = &inner.counters;
    (if ok { &c.answered } else { &c.failed }).fetch_add(1, Relaxed);
    inner.events.op_done(&req.op_name, ok);
}

fn ms(s: Instant) -> f64 {
    s.elapsed().as_secs_f64() * 1000.0
}
