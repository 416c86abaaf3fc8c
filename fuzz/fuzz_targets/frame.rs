//! Fuzz one incoming text frame through everything the agent does with it before the network:
//! `request::parse_envelope`, then (for a known operation) `ops::handle` against the demo
//! mirror, as the dispatcher's worker would. The callback client is built but never called.
//! Any panic, overflow or out-of-bounds is a finding.
//!
//! Run (nightly + cargo-fuzz): `cargo +nightly fuzz run frame -- -max_total_time=120`
//! from the repository root (see docs/testing.md).

#![no_main]

use std::sync::{Arc, OnceLock};

use expirenza_agent::callback::CallbackClient;
use expirenza_agent::ops::{self, Ctx, Op};
use expirenza_agent::request::parse_envelope;
use expirenza_agent::{mirror, Config};
use libfuzzer_sys::fuzz_target;

fn ctx() -> &'static Ctx {
    static CTX: OnceLock<Ctx> = OnceLock::new();
    CTX.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("expirenza-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mirror.sqlite");
        let mut conn = mirror::create_schema(&path).unwrap();
        mirror::demo::fill(&mut conn).unwrap();
        drop(conn);
        let cfg = Arc::new(Config::for_loopback(
            "resto-fuzz",
            "fuzz-secret",
            "ws://127.0.0.1:9/ws",
            "http://127.0.0.1:9/callback",
            &path,
            &dir,
        ));
        let cb = CallbackClient::new(&cfg).unwrap();
        Ctx::new(cfg, cb)
    })
}

fuzz_target!(|frame: &[u8]| {
    let Ok(env) = parse_envelope(frame) else {
        return;
    };
    let Some(op) = Op::from_name(&env.operation) else {
        return;
    };
    let _ = ops::handle(op, ctx(), &env, frame);
});
