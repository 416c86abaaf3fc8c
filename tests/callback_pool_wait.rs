//! The wait for a free callback connection (`[callback] max_connections`) is visible: counted
//! by the client (`Deliver::pool_stats`), in the metrics and on the status board, and bounded
//! by the callback's own deadline (a callback whose deadline passes while it waits fails
//! without being posted).

#[path = "support/scripted.rs"]
mod scripted;
#[path = "support/tls.rs"]
mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use expirenza_agent::callback::{CallbackClient, CallbackError, Deliver, Payload};
use expirenza_agent::ctx::Ctx;
use expirenza_agent::metrics::registry::Gauges;
use expirenza_agent::secret::Secret;
use expirenza_agent::sign::SignedBody;
use expirenza_agent::status::{render, StatusBoard};
use expirenza_agent::Config;
use scripted::{Reply, Server, Transport};
use tls::TestPki;

const SECRET: &str = "pool-secret";

fn body(rid: &str) -> SignedBody {
    let text = format!(r#"{{"rID":"{rid}","state":"SUCCESS"}}"#);
    SignedBody::new(&Secret::new(SECRET), text.into_bytes())
}

/// `name value` of a metric line in the registry's text.
fn metric(name: &str) -> f64 {
    let text = expirenza_agent::metrics::global().render(&Gauges::default());
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_are_counted_shown_and_bounded_by_the_deadline() {
    let pki = TestPki::new();
    // Each answer takes 1.5 s; one connection.
    let s = Server::start(Transport::Tcp, &pki, vec![], |_| Reply {
        delay: Duration::from_millis(1_500),
        ..Reply::ok()
    });
    let dir = std::env::temp_dir().join(format!("expirenza-poolwait-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = Config::for_loopback(
        "resto-pool",
        SECRET,
        "ws://127.0.0.1:9/x",
        &s.url("/callback"),
        &dir.join("mirror.sqlite"),
        &dir,
    );
    cfg.callback.max_connections = 1;
    cfg.callback.attempt_timeout_secs = 10;
    let client = CallbackClient::new(&cfg).unwrap();
    let (waits0, timeouts0) = (
        metric("expirenza_callback_pool_waits_total"),
        metric("expirenza_callback_pool_wait_timeouts_total"),
    );

    // Two callbacks, one connection: the second waits for the first (about 1.5 s).
    let far = Instant::now() + Duration::from_secs(30);
    let (a, b) = (body("first"), body("second"));
    let (ra, rb) = tokio::join!(
        client.post("getBill", Payload::Bytes(&a), far),
        client.post("getBill", Payload::Bytes(&b), far)
    );
    assert_eq!((ra.unwrap().attempts, rb.unwrap().attempts), (1, 1));
    let st = client.pool_stats().unwrap();
    assert_eq!(
        (st.max_connections, st.waited, st.gave_up, st.waiting),
        (1, 1, 0, 0)
    );
    assert!(st.longest_wait_ms >= 1_000, "{st:?}");

    // A callback whose deadline comes while it waits: failed, never posted.
    let (hog, late) = (body("hog"), body("late"));
    let (rh, rl) = tokio::join!(client.post("getBill", Payload::Bytes(&hog), far), async {
        // Queued behind "hog" (its POST is on the wire by then).
        assert!(s.wait_seen(3, Duration::from_secs(30)).await);
        let soon = Instant::now() + Duration::from_millis(300);
        client.post("getBill", Payload::Bytes(&late), soon).await
    });
    assert!(rh.is_ok());
    match rl {
        Err(CallbackError::DeadlinePassed { attempts: 0, last }) => {
            assert!(last.contains("no free connection"), "{last}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.posts("late").len(), 0);
    let st = client.pool_stats().unwrap();
    assert_eq!((st.waited, st.gave_up, st.waiting), (2, 1, 0));

    // The metrics count both waits and the one that gave up.
    assert!(metric("expirenza_callback_pool_waits_total") >= waits0 + 2.0);
    assert!(metric("expirenza_callback_pool_wait_timeouts_total") >= timeouts0 + 1.0);
    assert!(metric("expirenza_callback_pool_wait_seconds_total") >= 1.0);

    // And `status` shows them.
    let board = StatusBoard::new("resto-pool");
    let ctx = Ctx::new(Arc::new(cfg), client.clone() as Arc<dyn Deliver>);
    expirenza_agent::status::backlog::callback_pool(&board, &ctx);
    let snap = board.snapshot();
    assert_eq!(
        (snap.callback_pool.waited, snap.callback_pool.gave_up),
        (2, 1)
    );
    let text = render(
        &snap,
        snap.written_at,
        &expirenza_agent::status::Process::Running,
    );
    assert!(
        text.contains("2 callback(s) waited for a free connection") && text.contains("1 gave up"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
