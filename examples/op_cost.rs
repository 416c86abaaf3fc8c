//! The agent's own compute per operation, with no network: read the envelope, run the
//! operation against a mirror, sign the body. What is left of a request's CPU after this is
//! the plumbing (WebSocket, HTTP, wake-ups), which `examples/bench` measures as a whole.
//!
//! ```text
//! cargo run --release --example op_cost -- <mirror.sqlite> [requests per operation] [operation|all] [kept|fresh|both]
//! ```
//!
//! `kept` runs with the answers kept per mirror version on (`[limits] answer_cache_kib`, as
//! shipped: the mirror does not change here, so every request after the first of its table is
//! served from them); `fresh` with them off (every request read and written afresh). Default:
//! both, one row each.
//!
//! Prints, per operation, the CPU time of this thread per request (`getrusage(RUSAGE_THREAD)`,
//! user + system) and the mean body size. Use a mirror with open bills, e.g. the one
//! `examples/bench --work-dir DIR` leaves in `DIR/host/mirror.sqlite`; getBill asks for every
//! table that has an open bill in turn (not the benchmark's `pay-…` bills), as the benchmark
//! does. For a profile, run it under `perf record -g`.

#[path = "common/cpu.rs"]
mod cpu;

use cpu::thread_cpu;
use std::sync::Arc;
use std::time::Instant;

use expirenza_agent::callback::{BoxFuture, CallbackError, Deliver, Delivered};
use expirenza_agent::config::Config;
use expirenza_agent::ctx::Ctx;
use expirenza_agent::ops::{self, Answer, Op};
use expirenza_agent::request::parse_envelope;
use expirenza_agent::sign::SignedBody;

/// Nothing is delivered here: the operations never call it.
struct NoDeliver;
impl Deliver for NoDeliver {
    fn deliver<'a>(
        &'a self,
        _path: &'a str,
        _body: &'a SignedBody,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        Box::pin(async { Err(CallbackError::Setup("op_cost delivers nothing".into())) })
    }
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mirror = args
        .next()
        .ok_or("usage: op_cost <mirror.sqlite> [requests] [operation|all] [kept|fresh|both]")?;
    let n: u32 = match args.next() {
        Some(s) => s.parse().map_err(|e| format!("requests: {e}"))?,
        None => 5_000,
    };
    let tmp = std::env::temp_dir().join(format!("op-cost-{}", std::process::id()));
    let mut cfg = Config::for_loopback(
        "bench",
        "bench-secret",
        "ws://127.0.0.1:9/",
        "http://127.0.0.1:9/callback",
        std::path::Path::new(&mirror),
        &tmp,
    );
    cfg.limits.max_rows = 1_000_000;
    let only = args.next().filter(|o| o != "all");
    // Answers kept per mirror version (as shipped) and off (every request computed afresh).
    let modes: &[&str] = match args.next().as_deref() {
        None | Some("both") => &["kept", "fresh"],
        Some("kept") => &["kept"],
        Some("fresh") => &["fresh"],
        Some(other) => return Err(format!("mode {other}: kept, fresh or both")),
    };
    let ctx_for = |mode: &str| {
        let mut cfg = cfg.clone();
        if mode == "fresh" {
            cfg.limits.answer_cache_kib = 0;
        }
        Ctx::new(Arc::new(cfg), Arc::new(NoDeliver))
    };
    let tables: Vec<String> = {
        let c = rusqlite::Connection::open(&mirror).map_err(|e| e.to_string())?;
        let mut s = c
            .prepare(
                "SELECT DISTINCT t.number FROM tables t JOIN orders o ON o.table_id = t.id \
                 WHERE o.state IN ('NEW', 'BILL') AND o.bill_id NOT LIKE 'pay-%' \
                 ORDER BY t.number",
            )
            .map_err(|e| e.to_string())?;
        let rows = s
            .query_map([], |r| r.get::<_, i64>(0).map(|n| n.to_string()))
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
    };
    let frame = |op: Op, i: u32| -> String {
        match op {
            Op::GetBill if !tables.is_empty() => format!(
                r#"{{"rID":"r-{i}","operation":"getBill","tableNumber":"{}"}}"#,
                tables[i as usize % tables.len()]
            ),
            _ => format!(r#"{{"rID":"r-{i}","operation":"{}"}}"#, op.name()),
        }
    };
    println!(
        "| operation | answers | requests | served kept | CPU per request | mean body bytes |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for (op, mode) in [Op::CheckWork, Op::GetBill, Op::TablesInfo]
        .into_iter()
        .flat_map(|op| modes.iter().map(move |m| (op, *m)))
    {
        if only.as_deref().is_some_and(|o| o != op.name()) {
            continue;
        }
        let ctx = ctx_for(mode);
        let frames: Vec<String> = (0..n).map(|i| frame(op, i)).collect();
        let (t0, mut bytes) = (thread_cpu(), 0usize);
        for f in &frames {
            let env = parse_envelope(f.as_bytes()).map_err(|e| e.to_string())?;
            match ops::handle(op, &ctx, &env, f.as_bytes()) {
                Ok(Answer::Callback { body, .. }) => {
                    let signed = SignedBody::new(&ctx.cfg.secret, body);
                    bytes += signed.len();
                }
                Ok(other) => return Err(format!("{}: unexpected {other:?}", op.name())),
                Err(e) => return Err(format!("{}: {e}", op.name())),
            }
        }
        let per = (thread_cpu() - t0) / n;
        let (kept, _) = ctx.answers.counts();
        println!(
            "| {} | {mode} | {n} | {kept} | {per:?} | {} |",
            op.name(),
            bytes / n as usize
        );
    }
    Ok(())
}
