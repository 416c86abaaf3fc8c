//! Tests of the fake cloud itself, driven by a plain tokio-tungstenite client and a raw
//! `TcpStream` HTTP client (plus one test of the agent's real callback client).

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::rid::extract_rid;
use super::*;
use expirenza_agent::secret::Secret;
use expirenza_agent::sign::sign;

const T: Duration = Duration::from_secs(5);
const SHORT: Duration = Duration::from_millis(250);
const RESTO: &str = "4f9c2a10-resto-0001";
const SECRET: &str = "my-secret-key-123";

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn cfg() -> FakeCloudConfig {
    FakeCloudConfig {
        resto_id: RESTO.into(),
        secret: SECRET.into(),
        pos_system: Some("testpos".into()),
    }
}

async fn cloud() -> FakeCloud {
    FakeCloud::start(cfg()).await.expect("start fake cloud")
}

/// Open a WS client with the given Basic credentials and cookie.
async fn ws_connect(
    cloud: &FakeCloud,
    creds: Option<(&str, &str)>,
    cookie: Option<&str>,
) -> Result<Client, tungstenite::Error> {
    let mut req = cloud.ws_url().into_client_request()?;
    if let Some((user, pass)) = creds {
        let v = format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")));
        req.headers_mut()
            .insert("authorization", v.parse().unwrap());
    }
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    req.headers_mut()
        .insert("user-agent", "fake-cloud-test".parse().unwrap());
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

async fn ws_ok(cloud: &FakeCloud) -> Client {
    ws_connect(cloud, Some((RESTO, SECRET)), Some("system=testpos"))
        .await
        .expect("ws connect")
}

/// Next data/control frame the client sees (skipping nothing), with a timeout.
async fn client_next(c: &mut Client) -> Option<Message> {
    tokio::time::timeout(T, c.next()).await.ok()??.ok()
}

fn http_addr(cloud: &FakeCloud) -> String {
    cloud
        .callback_url()
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

/// A raw HTTP/1.1 POST with the given extra header lines.
fn raw_post(path: &str, extra: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A correctly signed callback for `body`.
fn signed_post(op: &str, body: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let sig = sign(&Secret::new(SECRET), body.as_bytes());
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("restoId", RESTO),
        ("signature", sig.as_str()),
    ];
    headers.extend_from_slice(extra);
    raw_post(&format!("/callback/{op}"), &headers, body.as_bytes())
}

struct Resp {
    status: u16,
    headers: String,
    body: String,
}

/// Read one response (Content-Length framed). `None` on EOF/reset before a full response.
async fn read_response(tcp: &mut TcpStream) -> Option<Resp> {
    read_response_buffered(tcp, &mut Vec::new()).await
}

/// Like [`read_response`], keeping bytes of following (pipelined) responses in `buf`.
async fn read_response_buffered(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Resp> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..p].to_vec()).ok()?;
            let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < p + 4 + len {
                match tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body = String::from_utf8(buf[p + 4..p + 4 + len].to_vec()).ok()?;
            buf.drain(..p + 4 + len);
            return Some(Resp {
                status,
                headers: head,
                body,
            });
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn exchange(tcp: &mut TcpStream, req: &[u8]) -> Option<Resp> {
    tcp.write_all(req).await.ok()?;
    tokio::time::timeout(T, read_response(tcp)).await.ok()?
}

fn body_with(rid: &str) -> String {
    format!(
        r#"{{"rID":"{rid}","tables":[{{"id":"t-12","name":"Біля \"каміна\"","number":12,"x":[1.5e3,true,null,{{}}]}}]}}"#
    )
}

// ===================== WebSocket =====================

#[tokio::test]
async fn ws_handshake_is_captured() {
    let cloud = cloud().await;
    assert!(cloud.ws_url().ends_with("/restaurantEntryPoint"));
    let _c = ws_connect(&cloud, Some((RESTO, SECRET)), Some("foo=1; system=testpos"))
        .await
        .unwrap();
    let hs = cloud.wait_connected(T).await.expect("connected");
    assert!(hs.auth_ok && hs.cookie_ok);
    assert_eq!(hs.path, "/restaurantEntryPoint");
    assert_eq!(
        hs.header("Authorization"),
        Some("Basic NGY5YzJhMTAtcmVzdG8tMDAwMTpteS1zZWNyZXQta2V5LTEyMw==")
    );
    assert_eq!(hs.header("user-agent"), Some("fake-cloud-test"));
    assert!(hs.headers.iter().all(|(k, _)| *k == k.to_ascii_lowercase()));
    assert_eq!(cloud.connection_count(), 1);
    assert_eq!(cloud.connect_attempts().len(), 1);
    assert!(cloud.is_connected());
    // Already handed out: the next call waits for a new connection.
    assert!(cloud.wait_connected(SHORT).await.is_none());
}

#[tokio::test]
async fn ws_bad_credentials_are_recorded() {
    let cloud = cloud().await;
    let _c = ws_connect(&cloud, Some((RESTO, "wrong")), None)
        .await
        .unwrap();
    let hs = cloud.wait_connected(T).await.unwrap();
    assert!(!hs.auth_ok && !hs.cookie_ok);
    let _c2 = ws_connect(&cloud, None, Some("system=otherpos"))
        .await
        .unwrap();
    let hs = cloud.wait_connected(T).await.unwrap();
    assert!(!hs.auth_ok && !hs.cookie_ok);

    // No POS configured: the cookie is not checked.
    let cloud = FakeCloud::start(FakeCloudConfig {
        pos_system: None,
        ..cfg()
    })
    .await
    .unwrap();
    let _c = ws_connect(&cloud, Some((RESTO, SECRET)), None)
        .await
        .unwrap();
    let hs = cloud.wait_connected(T).await.unwrap();
    assert!(hs.auth_ok && hs.cookie_ok);
}

#[tokio::test]
async fn ws_reject_auth_answers_with_the_status() {
    let cloud = cloud().await;
    cloud.set_reject_auth(Some(401));
    match ws_connect(&cloud, Some((RESTO, SECRET)), Some("system=testpos")).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401);
            let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["errType"], "FULLSCREEN");
        }
        other => panic!("expected HTTP 401, got {:?}", other.map(|_| ())),
    }
    assert!(cloud.wait_connected(SHORT).await.is_none());
    assert_eq!(cloud.connection_count(), 0);
    assert_eq!(cloud.connect_attempts().len(), 1);

    cloud.set_reject_auth(None);
    let _c = ws_ok(&cloud).await;
    assert!(cloud.wait_connected(T).await.is_some());
    assert_eq!(cloud.connection_count(), 1);
    assert_eq!(cloud.connect_attempts().len(), 2);
}

#[tokio::test]
async fn ws_connect_attempts_count_bare_tcp() {
    let cloud = cloud().await;
    let addr = cloud
        .ws_url()
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    drop(TcpStream::connect(&addr).await.unwrap());
    drop(TcpStream::connect(&addr).await.unwrap());
    assert!(cloud.wait_connect_attempts(2, T).await);
    assert_eq!(cloud.connection_count(), 0);
}

#[tokio::test]
async fn ws_frames_both_ways() {
    let cloud = cloud().await;
    let mut c = ws_ok(&cloud).await;
    cloud.wait_connected(T).await.unwrap();

    assert!(
        cloud
            .send_text(r#"{"rID":"1","operation":"getBill"}"#)
            .await
    );
    assert_eq!(
        client_next(&mut c).await,
        Some(Message::text(r#"{"rID":"1","operation":"getBill"}"#))
    );
    assert!(cloud.send_binary(&[1, 2, 3]).await);
    assert_eq!(
        client_next(&mut c).await,
        Some(Message::binary(vec![1, 2, 3]))
    );
    assert!(
        cloud
            .send_raw_frame(Message::Ping(b"p".to_vec().into()))
            .await
    );
    assert_eq!(
        client_next(&mut c).await,
        Some(Message::Ping(b"p".to_vec().into()))
    );

    c.send(Message::text(format!("Resto {RESTO} ping")))
        .await
        .unwrap();
    assert_eq!(
        cloud.wait_text_containing("ping", T).await,
        Some(format!("Resto {RESTO} ping"))
    );
    c.send(Message::Ping(b"x".to_vec().into())).await.unwrap();
    assert!(cloud.wait_pings(1, T).await);
    // The pong to our ping (the ping we got earlier was auto-ponged by the client).
    assert_eq!(
        client_next(&mut c).await,
        Some(Message::Pong(b"x".to_vec().into()))
    );
    assert!(cloud.wait_pongs(1, T).await);
    c.send(Message::binary(vec![9])).await.unwrap();
    c.send(Message::text("after")).await.unwrap();
    assert!(cloud.wait_text_containing("after", T).await.is_some());
    assert_eq!(cloud.binary_frames_received(), 1);
    assert_eq!(
        cloud.text_frames_received(),
        vec![format!("Resto {RESTO} ping"), "after".to_owned()]
    );
    assert_eq!(cloud.pings_received(), 1);
}

#[tokio::test]
async fn ws_black_hole_stops_pongs_until_lifted() {
    let cloud = cloud().await;
    let mut c = ws_ok(&cloud).await;
    cloud.wait_connected(T).await.unwrap();
    cloud.set_black_hole(true);
    c.send(Message::Ping(b"1".to_vec().into())).await.unwrap();
    assert!(
        tokio::time::timeout(SHORT, c.next()).await.is_err(),
        "no pong while black-holed"
    );
    assert_eq!(cloud.pings_received(), 0);
    assert!(cloud.is_connected());
    cloud.set_black_hole(false);
    assert_eq!(
        client_next(&mut c).await,
        Some(Message::Pong(b"1".to_vec().into()))
    );
    assert_eq!(cloud.pings_received(), 1);
}

#[tokio::test]
async fn ws_server_pings_get_ponged() {
    let cloud = cloud().await;
    let mut c = ws_ok(&cloud).await;
    cloud.wait_connected(T).await.unwrap();
    cloud.set_server_ping_interval(Some(Duration::from_millis(20)));
    assert!(matches!(client_next(&mut c).await, Some(Message::Ping(_))));
    assert!(matches!(client_next(&mut c).await, Some(Message::Ping(_)))); // reading flushed the first pong
    assert!(cloud.wait_pongs(1, T).await);
    cloud.set_server_ping_interval(None);
}

#[tokio::test]
async fn ws_drop_connection_sends_close_then_eof() {
    let cloud = cloud().await;
    let mut c = ws_ok(&cloud).await;
    cloud.wait_connected(T).await.unwrap();
    cloud.drop_connection().await;
    assert!(!cloud.is_connected());
    assert!(matches!(
        client_next(&mut c).await,
        Some(Message::Close(Some(_)))
    ));
    assert!(client_next(&mut c).await.is_none());
    assert!(!cloud.send_text("x").await);
    assert!(cloud.wait_disconnected(T).await);

    // Abrupt variant: no close frame.
    let mut c = ws_ok(&cloud).await;
    cloud.wait_connected(T).await.unwrap();
    cloud.kill_connection().await;
    assert!(client_next(&mut c).await.is_none());
}

#[tokio::test]
async fn ws_new_connection_replaces_old() {
    let cloud = cloud().await;
    let mut c1 = ws_ok(&cloud).await;
    let first = cloud.wait_connected(T).await.unwrap();
    assert!(cloud.wait_connection_count(1, T).await);
    assert!(!cloud.wait_connection_count(2, SHORT).await, "one so far");
    let mut c2 = ws_ok(&cloud).await;
    assert!(cloud.wait_connection_count(2, T).await);
    let second = cloud.wait_connected(T).await.unwrap();
    assert!(second.at >= first.at);
    assert!(matches!(
        client_next(&mut c1).await,
        Some(Message::Close(_))
    ));
    assert!(cloud.send_text("to-second").await);
    assert_eq!(client_next(&mut c2).await, Some(Message::text("to-second")));
    assert_eq!(cloud.connection_count(), 2);
    assert_eq!(cloud.handshakes().len(), 2);
}

#[tokio::test]
async fn wait_connected_returns_a_live_unreturned_connection() {
    let cloud = cloud().await;
    let _c = ws_ok(&cloud).await;
    // Connected before anyone waited: still returned.
    assert!(cloud.wait_connected(T).await.is_some());
    assert!(cloud.wait_connected(SHORT).await.is_none());
}

// ===================== HTTP callbacks =====================

#[tokio::test]
async fn http_signed_post_is_verified() {
    let cloud = cloud().await;
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    let body = body_with("2024-05-14 12:30:01.123456789#AbC12dE");
    let r = exchange(&mut tcp, &signed_post("getBill", &body, &[]))
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let cb = cloud.next_callback(T).await.unwrap();
    assert_eq!(cb.method, "POST");
    assert_eq!(cb.path, "/callback/getBill");
    assert_eq!(cb.operation(), "getBill");
    assert_eq!(cb.body_str(), body);
    assert_eq!(
        cb.rid.as_deref(),
        Some("2024-05-14 12:30:01.123456789#AbC12dE")
    );
    assert!(cb.signature_ok && cb.resto_id_ok && cb.content_type_ok);
    assert_eq!(cb.answered, 200);
    assert_eq!(cb.header("RESTOID"), Some(RESTO));

    // Signature of other bytes (one extra space), wrong restoId, wrong content type.
    let sig = sign(&Secret::new(SECRET), body.as_bytes());
    let spaced = body.replacen(':', ": ", 1);
    let req = raw_post(
        "/callback/getBill",
        &[
            ("Content-Type", "text/plain"),
            ("restoId", "other"),
            ("signature", &sig),
        ],
        spaced.as_bytes(),
    );
    assert_eq!(exchange(&mut tcp, &req).await.unwrap().status, 200);
    let cb = cloud.next_callback(T).await.unwrap();
    assert!(!cb.signature_ok && !cb.resto_id_ok && !cb.content_type_ok);
    // Missing headers entirely; charset parameter is fine.
    let req = raw_post(
        "/callback/x",
        &[("Content-Type", "application/json; charset=utf-8")],
        b"{}",
    );
    assert_eq!(exchange(&mut tcp, &req).await.unwrap().status, 200);
    let cb = cloud.next_callback(T).await.unwrap();
    assert!(!cb.signature_ok && !cb.resto_id_ok && cb.content_type_ok && cb.rid.is_none());
    assert_eq!(cloud.callback_attempts(), 3);
    assert_eq!(cloud.all_callbacks().len(), 3);
}

#[tokio::test]
async fn http_script_500_then_200_on_one_connection() {
    let cloud = cloud().await;
    cloud.push_responses(&[Reply::Status(500)]);
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    let r = exchange(&mut tcp, &signed_post("payBill", &body_with("a"), &[]))
        .await
        .unwrap();
    assert_eq!(r.status, 500);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(v["errText"].is_string() && v["fieldErrors"].is_array() && v["errCode"].is_object());
    let r = exchange(&mut tcp, &signed_post("payBill", &body_with("a"), &[]))
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let all = cloud.all_callbacks();
    assert_eq!(
        all.iter().map(|c| c.answered).collect::<Vec<_>>(),
        vec![500, 200]
    );
    assert_eq!(all[0].connection, all[1].connection);
    assert_eq!(cloud.callback_connections(), 1);
    assert_eq!(cloud.callback_for("a", T).await.unwrap().answered, 500);
    assert_eq!(cloud.callback_for("a", T).await.unwrap().answered, 200);
}

#[tokio::test]
async fn http_delay_then_status() {
    let cloud = cloud().await;
    cloud.push_responses(&[Reply::Delay(Duration::from_millis(150), 202)]);
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    let t0 = Instant::now();
    let r = exchange(&mut tcp, &signed_post("getBill", &body_with("d"), &[]))
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    assert!(t0.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn http_hang_never_answers() {
    let cloud = cloud().await;
    cloud.push_responses(&[Reply::Hang]);
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    tcp.write_all(&signed_post("getBill", &body_with("h"), &[]))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(SHORT, read_response(&mut tcp))
            .await
            .is_err(),
        "client-side timeout"
    );
    let cb = cloud.callback_for("h", T).await.unwrap();
    assert_eq!(cb.answered, 0);
    // Released: the connection ends (reset) without an answer.
    cloud.release_hangs();
    assert!(
        tokio::time::timeout(T, read_response(&mut tcp))
            .await
            .expect("the released hang ends the connection")
            .is_none(),
        "no answer"
    );
    drop(tcp);
    // The script is used up: a retry on a new connection gets 200.
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    assert_eq!(
        exchange(&mut tcp, &signed_post("getBill", &body_with("h"), &[]))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn http_reset_closes_without_answer() {
    let cloud = cloud().await;
    cloud.push_responses(&[Reply::Reset, Reply::Status(503)]);
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    assert!(
        exchange(&mut tcp, &signed_post("getBill", &body_with("r"), &[]))
            .await
            .is_none()
    );
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    assert_eq!(
        exchange(&mut tcp, &signed_post("getBill", &body_with("r"), &[]))
            .await
            .unwrap()
            .status,
        503
    );
    assert_eq!(
        exchange(&mut tcp, &signed_post("getBill", &body_with("r"), &[]))
            .await
            .unwrap()
            .status,
        200
    );
    let answered: Vec<u16> = cloud.all_callbacks().iter().map(|c| c.answered).collect();
    assert_eq!(answered, vec![0, 503, 200]);
}

#[tokio::test]
async fn http_keep_alive_and_connection_close() {
    let cloud = cloud().await;
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    // Two requests written back to back (pipelined) are both answered, in order.
    let mut both = signed_post("a", &body_with("1"), &[]);
    both.extend(signed_post("b", &body_with("2"), &[]));
    tcp.write_all(&both).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..2 {
        let r = tokio::time::timeout(T, read_response_buffered(&mut tcp, &mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 200);
    }
    assert!(buf.is_empty());
    let r = exchange(
        &mut tcp,
        &signed_post("c", &body_with("3"), &[("Connection", "close")]),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.headers.contains("Connection: close"));
    let mut rest = Vec::new();
    assert_eq!(
        tokio::time::timeout(T, tcp.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap(),
        0,
        "EOF after close"
    );
    let all = cloud.all_callbacks();
    assert_eq!(
        all.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
        vec!["/callback/a", "/callback/b", "/callback/c"]
    );
    assert!(all.iter().all(|c| c.connection == all[0].connection));
}

#[tokio::test]
async fn http_expect_100_continue() {
    let cloud = cloud().await;
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    let req = signed_post("getBill", &body_with("e"), &[("Expect", "100-continue")]);
    let split = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    tcp.write_all(&req[..split]).await.unwrap();
    let r = tokio::time::timeout(T, read_response(&mut tcp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 100);
    tcp.write_all(&req[split..]).await.unwrap();
    assert_eq!(
        tokio::time::timeout(T, read_response(&mut tcp))
            .await
            .unwrap()
            .unwrap()
            .status,
        200
    );
    assert!(cloud.callback_for("e", T).await.unwrap().signature_ok);
}

#[tokio::test]
async fn http_limits_and_malformed_requests() {
    let cloud = cloud().await;
    let addr = http_addr(&cloud);

    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let big = "x".repeat(super::http::MAX_HEAD);
    let req = raw_post("/callback/a", &[("X-Big", &big)], b"{}");
    assert_eq!(exchange(&mut tcp, &req).await.unwrap().status, 431);

    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let req = format!(
        "POST /callback/a HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        super::http::MAX_BODY + 1
    );
    assert_eq!(
        exchange(&mut tcp, req.as_bytes()).await.unwrap().status,
        413
    );

    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(
        exchange(&mut tcp, b"HELLO\r\n\r\n").await.unwrap().status,
        400
    );

    // A chunked body is read (hyper does the framing); its raw head is captured, and capture
    // then stops for that connection (the body length is not known from the head).
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    let req =
        b"POST /callback/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    assert_eq!(exchange(&mut tcp, req).await.unwrap().status, 200);
    assert_eq!(
        exchange(&mut tcp, &raw_post("/callback/b", &[], b"{}"))
            .await
            .unwrap()
            .status,
        200
    );

    // 431 and 400 never reach the handler but count as attempts.
    assert_eq!(cloud.callback_attempts(), 5);
    // 413 and the chunked request had a parsable head, so they are recorded.
    let all = cloud.all_callbacks();
    let answered: Vec<u16> = all.iter().map(|c| c.answered).collect();
    assert_eq!(answered, vec![413, 200, 200]);
    assert_eq!(all[1].body, b"{}");
    assert!(all[1].raw_head.is_some());
    assert!(
        all[2].raw_head.is_none(),
        "capture stopped after the chunked body"
    );
}

#[tokio::test]
async fn http_raw_head_keeps_the_header_spelling() {
    let cloud = cloud().await;
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    // Two requests pipelined, then one more after a 100-continue pause: each raw head is the
    // request's own, body bytes are never mistaken for a head.
    let mut both = signed_post("getBill", &body_with("r1"), &[("X-Mixed-Case", "1")]);
    both.extend(signed_post("payBill", &body_with("r2"), &[]));
    tcp.write_all(&both).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..2 {
        let r = tokio::time::timeout(T, read_response_buffered(&mut tcp, &mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let req = signed_post(
        "splitOrder",
        &body_with("r3"),
        &[("Expect", "100-continue")],
    );
    let split = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    tcp.write_all(&req[..split]).await.unwrap();
    let r = tokio::time::timeout(T, read_response(&mut tcp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 100);
    tcp.write_all(&req[split..]).await.unwrap();
    let r = tokio::time::timeout(T, read_response(&mut tcp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, 200);

    let all = cloud.all_callbacks();
    assert_eq!(all.len(), 3);
    for (cb, (op, sent)) in all.iter().zip([
        ("getBill", &both[..]),
        ("payBill", &both[both.len() / 2..]),
        ("splitOrder", &req[..]),
    ]) {
        let raw = cb.raw_head.as_deref().expect("raw head captured");
        let line = format!("POST /callback/{op} HTTP/1.1\r\n");
        assert!(
            raw.starts_with(line.as_bytes()),
            "{}",
            String::from_utf8_lossy(raw)
        );
        assert!(raw.ends_with(b"\r\n\r\n"));
        assert!(
            sent.windows(raw.len()).any(|w| w == raw),
            "{op}: the exact bytes sent"
        );
        let names = cb.raw_header_names();
        assert!(names.iter().any(|n| n == "restoId"), "{names:?}");
        assert!(!names.iter().any(|n| n == "restoid"), "{names:?}");
        assert!(names.iter().any(|n| n == "Content-Type"), "{names:?}");
        // The parsed headers are lowercased; the raw ones are not.
        assert!(cb.headers.iter().any(|(k, _)| k == "restoid"));
    }
    assert!(all[0]
        .raw_header_names()
        .iter()
        .any(|n| n == "X-Mixed-Case"));
}

#[tokio::test]
async fn callback_for_picks_the_rid_out_of_order() {
    let cloud = cloud().await;
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    for rid in ["A", "B", "C"] {
        assert_eq!(
            exchange(&mut tcp, &signed_post("getBill", &body_with(rid), &[]))
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(
        cloud.callback_for("C", T).await.unwrap().rid.as_deref(),
        Some("C")
    );
    assert_eq!(
        cloud.next_callback(T).await.unwrap().rid.as_deref(),
        Some("A")
    );
    assert_eq!(
        cloud.callback_for("B", T).await.unwrap().rid.as_deref(),
        Some("B")
    );
    assert!(cloud.next_callback(SHORT).await.is_none());
    assert!(cloud.callback_for("A", SHORT).await.is_none());
    assert_eq!(cloud.all_callbacks().len(), 3);
}

#[tokio::test]
async fn callback_waits_wake_on_arrival() {
    let cloud = cloud().await;
    let addr = http_addr(&cloud);
    let poster = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        exchange(&mut tcp, &signed_post("getBill", &body_with("late"), &[]))
            .await
            .unwrap()
            .status
    });
    assert!(
        cloud.wait_callback_count(1, T).await,
        "woken by the arrival"
    );
    let cb = cloud
        .callback_for("late", T)
        .await
        .expect("woken by the arrival");
    // Consumed callbacks still count; the count only grows.
    assert!(cloud.wait_callback_count(1, SHORT).await);
    assert!(!cloud.wait_callback_count(2, SHORT).await);
    assert!(cb.signature_ok);
    assert_eq!(poster.await.unwrap(), 200);
}

#[tokio::test]
async fn request_round_trip_through_a_minimal_agent() {
    let cloud = cloud().await;
    let mut c = ws_ok(&cloud).await;
    cloud.wait_connected(T).await.unwrap();
    let addr = http_addr(&cloud);
    // A toy agent: read one frame, answer via a signed callback to /callback/<operation>.
    let agent = tokio::spawn(async move {
        let Some(Ok(Message::Text(t))) = c.next().await else {
            panic!("no frame")
        };
        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
        let body = format!(r#"{{"rID":{},"tables":[]}}"#, v["rID"]);
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        exchange(
            &mut tcp,
            &signed_post(v["operation"].as_str().unwrap(), &body, &[]),
        )
        .await
        .unwrap()
        .status
    });
    let rid = "2022-11-18 13:18:51.694125371#Lm4R2EQ";
    let frame = format!(r#"{{"rID":"{rid}","operation":"tablesInfo"}}"#);
    let cb = cloud.request(&frame, rid, T).await.expect("callback");
    assert_eq!(cb.path, "/callback/tablesInfo");
    assert!(cb.signature_ok);
    assert_eq!(agent.await.unwrap(), 200);
    // No connection: request fails fast.
    cloud.drop_connection().await;
    assert!(cloud.request(&frame, rid, T).await.is_none());
}

#[tokio::test]
async fn the_agents_client_reuses_the_connection() {
    use expirenza_agent::callback::{CallbackClient, Payload};
    use expirenza_agent::sign::SignedBody;
    let cloud = cloud().await;
    cloud.push_responses(&[Reply::Status(200), Reply::Status(500)]);
    let dir = std::path::Path::new("/nonexistent");
    let mut cfg = expirenza_agent::Config::for_loopback(
        RESTO,
        SECRET,
        &cloud.ws_url(),
        &cloud.callback_url(),
        dir,
        dir,
    );
    cfg.callback.retry_initial_ms = 1;
    let client = CallbackClient::new(&cfg).unwrap();
    let deadline = Instant::now() + T;
    for rid in ["u1", "u2", "u3"] {
        let body = SignedBody::new(&Secret::new(SECRET), body_with(rid).into_bytes());
        let d = client
            .post("getBill", Payload::Bytes(&body), deadline)
            .await
            .unwrap();
        assert_eq!(
            d.attempts,
            if rid == "u2" { 2 } else { 1 },
            "{rid}: a 500 is retried"
        );
    }
    let all = cloud.all_callbacks();
    assert!(all.iter().all(|c| c.signature_ok
        && c.resto_id_ok
        && c.content_type_ok
        && c.path == "/callback/getBill"));
    assert_eq!(
        all.iter().filter_map(|c| c.rid.clone()).collect::<Vec<_>>(),
        vec!["u1", "u2", "u2", "u3"]
    );
    // The error body is read (bounded), so even after the 500 the connection is reused.
    assert!(
        all.iter().all(|c| c.connection == all[0].connection),
        "keep-alive reuse"
    );
    assert_eq!(cloud.callback_connections(), 1);
}

#[tokio::test]
async fn another_method_than_post_is_refused_and_not_a_callback() {
    let cloud = cloud().await;
    let mut tcp = TcpStream::connect(http_addr(&cloud)).await.unwrap();
    tcp.write_all(b"HEAD /callback/checkWork HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(T, tcp.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 405"), "{text}");
    assert!(text.contains("\r\nallow: post\r\n"), "{text}");
    assert_eq!(cloud.other_http_requests(), 1);
    assert_eq!(cloud.callback_attempts(), 0);
    assert!(cloud.all_callbacks().is_empty());
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_servers() {
    let cloud = cloud().await;
    let clone = cloud.clone();
    let mut c = ws_ok(&cloud).await;
    clone.wait_connected(T).await.unwrap();
    let ws_addr = cloud
        .ws_url()
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let http = http_addr(&cloud);
    drop(cloud);
    assert!(clone.is_connected(), "a clone keeps it running");
    drop(clone);
    // The live WS connection ends (no sleep: the client read itself waits for it).
    assert!(
        tokio::time::timeout(T, async { while let Some(Ok(_)) = c.next().await {} })
            .await
            .is_ok()
    );
    // The listeners close once their tasks observe the stop; yield until they have.
    let mut closed = false;
    for _ in 0..1000 {
        if TcpStream::connect(&ws_addr).await.is_err() && TcpStream::connect(&http).await.is_err() {
            closed = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(closed);
}

// ===================== rID extraction =====================

#[test]
fn rid_extraction() {
    assert_eq!(
        extract_rid(body_with("x#1").as_bytes()).as_deref(),
        Some("x#1")
    );
    assert_eq!(
        extract_rid(br#" {"a":{"rID":"nested"},"rID":"top"} "#).as_deref(),
        Some("top")
    );
    assert_eq!(
        extract_rid(br#"{"tables":[],"rID":"late"}"#).as_deref(),
        Some("late")
    );
    assert_eq!(
        extract_rid(br#"{"rID":"a\"b"}"#).as_deref(),
        Some(r#"a\"b"#),
        "escapes are left as written"
    );
    assert_eq!(extract_rid(br#"{"tables":[]}"#), None);
    assert_eq!(extract_rid(br#"{"rID":12}"#), None);
    assert_eq!(extract_rid(b"not json"), None);
    assert_eq!(
        extract_rid(format!(r#"{{"rID":"{}"}}"#, "x".repeat(300)).as_bytes()),
        None
    );
}
