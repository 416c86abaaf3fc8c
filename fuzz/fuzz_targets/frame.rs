//! Fuzz one incoming text frame through everything the agent does with it, as the link hands
//! it over: `Dispatcher::submit` (envelope, admission), then `run_job` (compute against the
//! demo mirror and a journal, the POS wait, building and signing the answer), with delivery
//! stubbed by a [`Deliver`] that records what would be sent. Any panic, overflow or
//! out-of-bounds is a finding, and so is a broken invariant:
//! - every frame ends in exactly one of the `answered`, `failed`, `unanswered` counters;
//! - at most one callback is delivered per frame, with a valid signature over its body;
//! - a frame whose rID can be read gets exactly one callback, unless its operation has no
//!   answer (showMessage, setSettings).
//!
//! Run (cargo-fuzz): `RUSTC_BOOTSTRAP=1 cargo fuzz run frame fuzz/corpus/frame` from the
//! repository root (see docs/testing.md).

#![no_main]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use expirenza_agent::callback::{BoxFuture, CallbackError, Deliver, Delivered};
use expirenza_agent::dispatch::{self, Dispatcher, OpEvents};
use expirenza_agent::ops::{Ctx, Op};
use expirenza_agent::request::{parse_envelope, sniff_rid};
use expirenza_agent::sign::{verify, SignedBody};
use expirenza_agent::{mirror, Config};
use libfuzzer_sys::fuzz_target;

/// Records every delivery instead of sending it.
#[derive(Default)]
struct Stub {
    sent: Mutex<Vec<(String, Vec<u8>, String)>>,
}

impl Deliver for Stub {
    fn deliver<'a>(
        &'a self,
        path: &'a str,
        body: &'a SignedBody,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        let rec = (path.to_string(), body.body().to_vec(), body.signature().to_string());
        self.sent.lock().unwrap().push(rec);
        Box::pin(async {
            Ok(Delivered {
                attempts: 1,
                status: 200,
            })
        })
    }
}

struct Quiet;
impl OpEvents for Quiet {
    fn op_done(&self, _operation: &str, _ok: bool) {}
}

struct Rig {
    rt: tokio::runtime::Runtime,
    stub: Arc<Stub>,
    dispatcher: Dispatcher,
    cfg: Arc<Config>,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        // Errors only: a log line per frame would slow the fuzzer tenfold.
        expirenza_agent::log::set_level(expirenza_agent::log::Level::Error);
        let dir = std::env::temp_dir().join(format!("expirenza-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mirror.sqlite");
        let mut conn = mirror::create_schema(&path).unwrap();
        mirror::demo::fill(&mut conn).unwrap();
        drop(conn);
        let mut cfg = Config::for_loopback(
            "resto-fuzz",
            "fuzz-secret",
            "ws://127.0.0.1:9/ws",
            "http://127.0.0.1:9/callback",
            &path,
            &dir,
        );
        cfg.limits.max_in_flight = 2;
        let cfg = Arc::new(cfg);
        let stub = Arc::new(Stub::default());
        let mut ctx = Ctx::new(cfg.clone(), stub.clone());
        // No POS runs here: a journaled command is checked once and answered POS_TIMEOUT.
        ctx.journal.ack_timeout = Duration::ZERO;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(4)
            .build()
            .unwrap();
        let (dispatcher, _worker) = dispatch::channel(Arc::new(ctx), Arc::new(Quiet));
        Rig {
            rt,
            stub,
            dispatcher,
            cfg,
        }
    })
}

fuzz_target!(|frame: &[u8]| {
    let rig = rig();
    let c = rig.dispatcher.counters();
    let ended = || {
        c.answered.load(Ordering::Relaxed)
            + c.failed.load(Ordering::Relaxed)
            + c.unanswered.load(Ordering::Relaxed)
    };
    let before = ended();
    rig.stub.sent.lock().unwrap().clear();
    rig.rt.block_on(async {
        rig.dispatcher.submit(frame, Instant::now());
        rig.dispatcher.drained().await;
    });
    assert_eq!(ended(), before + 1, "every frame ends exactly once");
    let sent = std::mem::take(&mut *rig.stub.sent.lock().unwrap());
    assert!(sent.len() <= 1, "at most one callback per frame");
    for (_, body, sig) in &sent {
        assert!(verify(&rig.cfg.secret, body, sig), "signed bytes are sent bytes");
    }
    let no_answer = parse_envelope(frame)
        .ok()
        .and_then(|e| Op::from_name(&e.operation))
        .is_some_and(|op| op.callback_path().is_none());
    let readable = parse_envelope(frame).is_ok() || sniff_rid(frame).is_some();
    if readable && !no_answer {
        assert_eq!(sent.len(), 1, "a readable rID gets exactly one callback");
    }
});
