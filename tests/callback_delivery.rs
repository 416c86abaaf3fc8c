//! The callback client against scripted servers that send exact bytes, each behaviour on plain
//! TCP and on TLS (docs/protocol.md §2.3, "Delivery"). Every test counts the POSTs the server
//! saw per rID: a delivered answer is posted once, a request is resent only when the server
//! cannot have seen it.
//!
//! - a 2xx without a length whose end never comes cleanly (TLS: the TCP connection closes
//!   without close_notify; TCP: the server never closes): delivered, one POST;
//! - a 408 sent on an idle keep-alive connection before the server closes it: the next callback
//!   goes on a new connection, one POST, delivered (it is not read as the 408);
//! - a kept connection the server closes as the next request arrives, before a byte of answer:
//!   the request is sent again at once on a new connection, within the same attempt;
//! - a kept connection that answers the next request with an interim 100 and then closes:
//!   the server has seen the request, so it is not resent silently but by a counted retry;
//! - Content-Length and Transfer-Encoding together: Transfer-Encoding wins;
//! - an early 413, sent while the 8 MiB body is still being written: final, one POST;
//! - 150 response headers: read;
//! - 307 and 308 followed with the same body and signature (same host, another host), 301,
//!   302 and 303 final with their Location named, a redirect loop stopped after 3 hops;
//! - an HTTP/2-only server (TLS: ALPN h2 only; TCP: HTTP/2 frames in answer): named, final;
//! - a slow server (2.5 s per answer) and 4 callbacks on 2 connections with a 4 s attempt
//!   timeout: the wait for a connection is not part of the attempt, so no POST is repeated.

#[path = "support/scripted.rs"]
mod scripted;
#[path = "support/tls.rs"]
mod tls;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use expirenza_agent::callback::{CallbackClient, CallbackError, Delivered, Payload};
use expirenza_agent::secret::Secret;
use expirenza_agent::sign::SignedBody;
use expirenza_agent::Config;
use scripted::{Ask, Reply, Server, Then, Transport};
use tls::TestPki;

const RESTO: &str = "resto-delivery";
const SECRET: &str = "delivery-secret-key";
const T: Duration = Duration::from_secs(30);

fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "expirenza-delivery-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A client of `url` trusting `pki`: 2 s attempts, 100 ms first retry delay.
fn client(url: &str, pki: &TestPki, tweak: impl FnOnce(&mut Config)) -> Arc<CallbackClient> {
    let dir = temp_dir("client");
    let ca = dir.join("ca.pem");
    pki.write_ca(&ca);
    let mut cfg = Config::for_loopback(
        RESTO,
        SECRET,
        "ws://127.0.0.1:9/x",
        url,
        &dir.join("mirror.sqlite"),
        &dir,
    );
    cfg.ca_file = Some(ca);
    cfg.callback.attempt_timeout_secs = 2;
    cfg.callback.deadline_secs = 10;
    cfg.callback.retry_initial_ms = 100;
    cfg.callback.retry_max_ms = 400;
    cfg.journal.pos_ack_timeout_secs = 1;
    tweak(&mut cfg);
    cfg.validate().expect("test config is valid");
    CallbackClient::new(&cfg).unwrap()
}

fn body(rid: &str) -> SignedBody {
    let text = format!(r#"{{"rID":"{rid}","state":"SUCCESS","substate":null}}"#);
    SignedBody::new(&Secret::new(SECRET), text.into_bytes())
}

/// POST `rid`'s body to `<callback_url>/getBill` with a 10 s deadline.
async fn post(c: &CallbackClient, rid: &str) -> Result<Delivered, CallbackError> {
    let b = body(rid);
    c.post(
        "getBill",
        Payload::Bytes(&b),
        Instant::now() + Duration::from_secs(10),
    )
    .await
}

macro_rules! on_tcp_and_tls {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tcp() {
                super::$name(super::Transport::Tcp).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tls() {
                super::$name(super::Transport::Tls).await
            }
        }
    };
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

on_tcp_and_tls!(a_2xx_without_length_whose_end_never_comes_cleanly);
async fn a_2xx_without_length_whose_end_never_comes_cleanly(t: Transport) {
    let pki = TestPki::new();
    // TLS: the connection is cut without close_notify. TCP: the server never closes it.
    let then = match t {
        Transport::Tls => Then::CloseNoNotify,
        Transport::Tcp => Then::Hold,
    };
    let s = Server::start(t, &pki, vec![], move |_| {
        Reply::new(&b"HTTP/1.1 200 OK\r\n\r\n{\"ok\":true}"[..], then.clone())
    });
    let c = client(&s.url("/callback"), &pki, |_| {});
    let d = post(&c, "nolen")
        .await
        .expect("a 2xx status line is a delivery");
    assert_eq!(
        d,
        Delivered {
            attempts: 1,
            status: 200
        }
    );
    assert_eq!(s.posts("nolen").len(), 1, "posted again after a 2xx");
    // The connection is not reused: the next callback opens another.
    post(&c, "nolen-2").await.unwrap();
    assert_eq!(s.posts("nolen-2")[0].conn, 2);
}

on_tcp_and_tls!(a_408_on_an_idle_connection);
async fn a_408_on_an_idle_connection(t: Transport) {
    let pki = TestPki::new();
    let s = Server::start(t, &pki, vec![], |a: Ask| {
        if a.seen.rid.as_deref() == Some("idle-1") {
            // Answered and kept alive; later the server times the idle connection out with a
            // 408 and closes it (as some servers do).
            let timeout =
                b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
            Reply::new(OK, Then::CueThenSend(timeout.to_vec()))
        } else {
            Reply::ok()
        }
    });
    let c = client(&s.url("/callback"), &pki, |_| {});
    post(&c, "idle-1").await.unwrap();
    s.cue();
    assert!(s.wait_unsolicited(1, T).await, "the server sent its 408");
    let d = post(&c, "idle-2")
        .await
        .expect("the 408 of the idle connection is not this callback's answer");
    assert_eq!(
        d,
        Delivered {
            attempts: 1,
            status: 200
        }
    );
    let posts = s.posts("idle-2");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].conn, 2, "sent on a new connection");
    assert_eq!(s.posts("idle-1").len(), 1);
}

on_tcp_and_tls!(a_kept_connection_closed_as_the_request_goes_out);
async fn a_kept_connection_closed_as_the_request_goes_out(t: Transport) {
    let pki = TestPki::new();
    // The server closes the kept connection when the next request arrives, without a byte of
    // answer (what a server timing out an idle connection does when the request crosses its
    // close on the wire).
    let s = Server::start(t, &pki, vec![], |a: Ask| {
        if a.seen.rid.as_deref() == Some("k-2") && a.of_rid == 0 {
            Reply::new(Vec::new(), Then::Close)
        } else {
            Reply::ok()
        }
    });
    let c = client(&s.url("/callback"), &pki, |_| {});
    post(&c, "k-1").await.unwrap();
    // Sent again at once on a new connection, within the same attempt.
    let d = post(&c, "k-2").await.unwrap();
    assert_eq!(
        d,
        Delivered {
            attempts: 1,
            status: 200
        }
    );
    let conns: Vec<u64> = s.posts("k-2").iter().map(|p| p.conn).collect();
    assert_eq!(conns, [1, 2]);
}

on_tcp_and_tls!(a_kept_connection_closed_after_an_interim_response);
async fn a_kept_connection_closed_after_an_interim_response(t: Transport) {
    let pki = TestPki::new();
    // The kept connection answers the next request with "100 Continue" and closes: a byte of
    // response came, so the server had the request.
    let s = Server::start(t, &pki, vec![], |a: Ask| {
        if a.seen.rid.as_deref() == Some("i-2") && a.of_rid == 0 {
            Reply::new(&b"HTTP/1.1 100 Continue\r\n\r\n"[..], Then::Close)
        } else {
            Reply::ok()
        }
    });
    let c = client(&s.url("/callback"), &pki, |_| {});
    post(&c, "i-1").await.unwrap();
    let d = post(&c, "i-2").await.unwrap();
    assert_eq!(
        d,
        Delivered {
            attempts: 2,
            status: 200
        },
        "resent within the attempt as if the server had not seen it"
    );
    let conns: Vec<u64> = s.posts("i-2").iter().map(|p| p.conn).collect();
    assert_eq!(conns, [1, 2]);
}

on_tcp_and_tls!(content_length_and_transfer_encoding);
async fn content_length_and_transfer_encoding(t: Transport) {
    let pki = TestPki::new();
    let s = Server::start(t, &pki, vec![], |a: Ask| {
        let bytes: &[u8] = match a.seen.rid.as_deref() {
            // A Content-Length that would wait for 100 bytes: Transfer-Encoding wins.
            Some("te-200") => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            Some("te-400") => b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            Some("cl-te-400") => b"HTTP/1.1 400 Bad Request\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbye\r\n0\r\n\r\n",
            _ => OK,
        };
        Reply::new(bytes, Then::KeepAlive)
    });
    let c = client(&s.url("/callback"), &pki, |_| {});
    let d = post(&c, "te-200").await.expect("delivered");
    assert_eq!(d.attempts, 1);
    assert_eq!(s.posts("te-200").len(), 1);
    // A message with both is not trusted for the next request: a new connection.
    post(&c, "after").await.unwrap();
    assert_ne!(s.posts("after")[0].conn, s.posts("te-200")[0].conn);
    for (rid, text) in [("te-400", "hello"), ("cl-te-400", "bye")] {
        match post(&c, rid).await {
            Err(CallbackError::Rejected { status: 400, body }) => assert_eq!(body, text),
            other => panic!("{rid}: {other:?}"),
        }
        assert_eq!(s.posts(rid).len(), 1, "{rid}: a 4xx is final");
    }
}

on_tcp_and_tls!(an_early_413);
async fn an_early_413(t: Transport) {
    let pki = TestPki::new();
    let s = Server::start(t, &pki, vec![], |_| {
        Reply {
        bytes: b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n{\"errText\":\"body too big\"}".to_vec(),
        delay: Duration::ZERO,
        // Answer after the head and the first bytes, then read nothing more.
        read_body: false,
        then: Then::Hold,
    }
    });
    let c = client(&s.url("/callback"), &pki, |cfg| {
        cfg.limits.max_body_bytes = 16 << 20;
    });
    let mut text = br#"{"rID":"big","pad":""#.to_vec();
    text.resize(8 << 20, b'x');
    text.extend_from_slice(b"\"}");
    let b = SignedBody::new(&Secret::new(SECRET), text);
    let r = c
        .post(
            "menuInfo",
            Payload::Bytes(&b),
            Instant::now() + Duration::from_secs(10),
        )
        .await;
    match r {
        Err(CallbackError::Rejected { status: 413, body }) => {
            assert!(body.contains("body too big"), "{body}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.posts("big").len(), 1, "an early 4xx is final");
}

on_tcp_and_tls!(an_answer_with_150_headers);
async fn an_answer_with_150_headers(t: Transport) {
    let pki = TestPki::new();
    let s = Server::start(t, &pki, vec![], |a: Ask| {
        let status = if a.seen.rid.as_deref() == Some("h-400") {
            "400 Bad Request"
        } else {
            "200 OK"
        };
        let mut text = format!("HTTP/1.1 {status}\r\n");
        for i in 0..150 {
            text.push_str(&format!("X-Header-{i}: value {i}\r\n"));
        }
        text.push_str("Content-Length: 7\r\n\r\nrefused");
        Reply::new(text.into_bytes(), Then::KeepAlive)
    });
    let c = client(&s.url("/callback"), &pki, |_| {});
    assert_eq!(
        post(&c, "h-200").await.unwrap(),
        Delivered {
            attempts: 1,
            status: 200
        }
    );
    assert_eq!(s.posts("h-200").len(), 1);
    match post(&c, "h-400").await {
        Err(CallbackError::Rejected { status: 400, body }) => assert_eq!(body, "refused"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.posts("h-400").len(), 1);
    // Read whole: the connection carried all three.
    post(&c, "h-200b").await.unwrap();
    assert_eq!(s.connections(), 1);
}

on_tcp_and_tls!(redirects);
async fn redirects(t: Transport) {
    let pki = TestPki::new();
    let b = Server::start(t, &pki, vec![], |_| Reply::ok());
    let elsewhere = b.url("/elsewhere/getBill");
    let moved_301 = b.url("/moved-for-good");
    let a = Server::start(t, &pki, vec![], move |a: Ask| {
        let head = |status: &str, location: &str| {
            format!("HTTP/1.1 {status}\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
                .into_bytes()
        };
        let bytes = match (a.seen.rid.as_deref(), a.seen.path.as_str()) {
            (_, "/moved/getBill") => OK.to_vec(),
            (Some("r307"), _) => head("307 Temporary Redirect", "/moved/getBill"),
            (Some("r308"), _) => head("308 Permanent Redirect", &elsewhere),
            (Some("r301"), _) => head("301 Moved Permanently", &moved_301),
            (Some("r302"), _) => head("302 Found", &moved_301),
            (Some("r303"), _) => head("303 See Other", &moved_301),
            (Some("loop"), _) => head("307 Temporary Redirect", "/callback/getBill"),
            _ => OK.to_vec(),
        };
        Reply::new(bytes, Then::KeepAlive)
    });
    let c = client(&a.url("/callback"), &pki, |_| {});
    let same = |posts: &[scripted::Seen]| {
        let want = body(posts[0].rid.as_deref().unwrap());
        for p in posts {
            assert_eq!(p.body, want.body(), "the same body on every hop");
            assert_eq!(
                p.signature,
                want.signature(),
                "the same signature on every hop"
            );
        }
    };

    // 307 on the same host: followed once, on the kept connection.
    assert_eq!(post(&c, "r307").await.unwrap().status, 200);
    let p = a.posts("r307");
    let paths: Vec<&str> = p.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/callback/getBill", "/moved/getBill"]);
    same(&p);

    // 308 to another host (port): followed there.
    assert_eq!(post(&c, "r308").await.unwrap().status, 200);
    let (pa, pb) = (a.posts("r308"), b.posts("r308"));
    assert_eq!((pa.len(), pb.len()), (1, 1));
    assert_eq!(pb[0].path, "/elsewhere/getBill");
    same(&[pa[0].clone(), pb[0].clone()]);

    // 301: final, and the error names where it pointed.
    let e = post(&c, "r301").await.expect_err("a 301 is not followed");
    let m = e.to_string();
    assert!(
        m.contains("301") && m.contains(&b.url("/moved-for-good")),
        "{m}"
    );
    assert!(
        !matches!(e, CallbackError::DeadlinePassed { .. }),
        "final: {m}"
    );
    assert_eq!((a.posts("r301").len(), b.posts("r301").len()), (1, 0));

    // 302 and 303 (after which a client may turn the POST into a GET): final as well.
    for (rid, code) in [("r302", "302"), ("r303", "303")] {
        let e = post(&c, rid).await.expect_err("not followed");
        let m = e.to_string();
        assert!(
            m.contains(code) && m.contains(&b.url("/moved-for-good")),
            "{m}"
        );
        assert!(
            !matches!(e, CallbackError::DeadlinePassed { .. }),
            "final: {m}"
        );
        assert_eq!((a.posts(rid).len(), b.posts(rid).len()), (1, 0), "{rid}");
    }

    // A loop: the first request and 3 hops, then final.
    let e = post(&c, "loop").await.expect_err("a redirect loop");
    assert!(e.to_string().contains("more than 3 redirects"), "{e}");
    assert_eq!(a.posts("loop").len(), 4);
}

/// An empty SETTINGS frame and a GOAWAY (PROTOCOL_ERROR): what an HTTP/2 server says to a
/// client that did not open with the HTTP/2 preface.
const H2_FRAMES: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01";

on_tcp_and_tls!(an_http2_only_server);
async fn an_http2_only_server(t: Transport) {
    let pki = TestPki::new();
    // TLS: the server offers only h2 in ALPN (a client offering no ALPN still gets a
    // handshake, then HTTP/2 frames). TCP: HTTP/2 frames in answer to anything.
    let s = Server::start(t, &pki, vec![b"h2".to_vec()], |_| {
        Reply::new(H2_FRAMES, Then::Close)
    });
    let c = client(&s.url("/callback"), &pki, |_| {});
    let e = post(&c, "h2").await.expect_err("an HTTP/2-only server");
    let m = e.to_string();
    assert!(m.contains("HTTP/2"), "named as such: {m}");
    assert!(
        !matches!(e, CallbackError::DeadlinePassed { .. }),
        "final: {m}"
    );
    let want = match t {
        Transport::Tls => 0, // refused in the TLS handshake (ALPN http/1.1)
        Transport::Tcp => 1,
    };
    assert_eq!(s.posts("h2").len(), want);
}

on_tcp_and_tls!(a_slow_cloud_and_more_callbacks_than_connections);
async fn a_slow_cloud_and_more_callbacks_than_connections(t: Transport) {
    let pki = TestPki::new();
    // Every answer takes 2.5 s; 2 connections, 4 callbacks, 4 s per attempt: the last two
    // wait 2.5 s for a connection and then need 2.5 s more.
    let s = Server::start(t, &pki, vec![], |_| Reply {
        delay: Duration::from_millis(2_500),
        ..Reply::ok()
    });
    let c = client(&s.url("/callback"), &pki, |cfg| {
        cfg.callback.max_connections = 2;
        cfg.callback.attempt_timeout_secs = 4;
        cfg.callback.deadline_secs = 20;
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let bodies: Vec<SignedBody> = (0..4).map(|i| body(&format!("slow-{i}"))).collect();
    let posts = bodies
        .iter()
        .map(|b| c.post("getBill", Payload::Bytes(b), deadline));
    let results = futures_util::future::join_all(posts).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(
            s.posts(&format!("slow-{i}")).len(),
            1,
            "slow-{i} posted twice"
        );
        assert_eq!(
            r.unwrap_or_else(|e| panic!("slow-{i}: {e}")),
            Delivered {
                attempts: 1,
                status: 200
            },
            "slow-{i}"
        );
    }
    assert_eq!(s.seen().len(), 4);
}
