//! menuInfo, tablesInfo and usersInfo on a large mirror: 5 000 dishes with modifiers, 500
//! tables, 200 staff. Shows the menu either fits under `max_body_bytes` as valid JSON or is
//! refused cleanly, and prints the figures (body bytes, time). Run with `--nocapture`.

mod mirror_fixture;

use std::time::Instant;

use mirror_fixture::*;

const MENU: &str = r#"{"rID":"r-1","operation":"menuInfo"}"#;

#[test]
fn large_mirror_menu_fits_or_is_refused_cleanly() {
    let m = TempMirror::empty("large");
    let t = Instant::now();
    fill_large(&m, 5_000, 500, 200);
    println!(
        "large mirror: 5000 dishes, 500 tables, 200 staff built in {:?}",
        t.elapsed()
    );

    // The default max_body_bytes (1 MiB): this menu is ~4 MB, so it is streamed.
    let cfg = m.config();
    let default_cap = cfg.limits.max_body_bytes;
    let ctx = ctx_for(cfg);
    let t = Instant::now();
    let r = ctx.answer(MENU).expect("menuInfo answers");
    let ms = t.elapsed().as_secs_f64() * 1e3;
    // Over max_body_bytes it is streamed: whole, valid, signed (the stub checks the signature).
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["dishes"].as_array().unwrap().len(), 5_000);
    assert_eq!(r.streamed, r.body.len() > default_cap);
    println!(
        "menuInfo default cap {default_cap}: {}, {} bytes, {ms:.1} ms",
        if r.streamed { "streamed" } else { "fits" },
        r.body.len()
    );

    // A cap big enough: valid JSON with every dish and its modifiers.
    let mut cfg = m.config();
    cfg.limits.max_body_bytes = 16 << 20;
    let ctx = ctx_for(cfg);
    let _ = call_raw(&ctx, MENU); // warm the pool and statement cache
    let t = Instant::now();
    let body = call_raw(&ctx, MENU);
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let dishes = v["dishes"].as_array().unwrap();
    assert_eq!(dishes.len(), 5_000);
    assert!(dishes
        .iter()
        .all(|d| d["groupModifiers"][0]["childModifiers"]
            .as_array()
            .unwrap()
            .len()
            == 3
            && d["modifiers"].as_array().unwrap().len() == 1));
    assert_eq!(v["modifiers"].as_array().unwrap().len(), 300);
    assert_eq!(v["groupModifiers"].as_array().unwrap().len(), 100);
    assert_eq!(v["groups"].as_array().unwrap().len(), 50);
    println!(
        "menuInfo cap {}: fits, {} bytes, {ms:.1} ms",
        16 << 20,
        body.len()
    );
    assert!(
        body.len() > default_cap,
        "the test menu must exceed the default cap to test refusal"
    );

    // A small menu cap: refused, never truncated.
    let mut cfg = m.config();
    cfg.limits.max_body_bytes = 64 * 1024;
    cfg.limits.max_menu_bytes = 64 * 1024;
    let r = call_raw(&ctx_for(cfg), MENU);
    assert_too_large(&r, 64 * 1024);

    let ctx = m.ctx();
    let t = Instant::now();
    let (v, text) = call(&ctx, "tablesInfo", "");
    assert_eq!(v["tables"].as_array().unwrap().len(), 500);
    println!(
        "tablesInfo: 500 tables, {} bytes, {:.1} ms",
        text.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let (v, text) = call(&ctx, "usersInfo", "");
    assert_eq!(v["users"].as_array().unwrap().len(), 200);
    println!(
        "usersInfo: 200 staff, {} bytes, {:.1} ms",
        text.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let (v, _) = call(&ctx, "stopList", "");
    assert_eq!(v["items"].as_array().unwrap().len(), 250);
}
