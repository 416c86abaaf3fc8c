//! Bad input through the real socket and the real binary (a separate process, so its log lines
//! and its memory are its own): a representative subset of the corpus, a binary frame, a text
//! frame that is not UTF-8 and frames above the size cap. Every frame gets its log line (or its
//! answer), the link stays up except where the protocol demands a close (invalid UTF-8: 1007;
//! too big: 1009), after which the agent reconnects; peak memory stays bounded; the mirror file
//! is unchanged; a normal request is answered at the end.

#[path = "support/bad_frames.rs"]
mod bad_frames;
#[path = "support/binary.rs"]
mod binary;

use std::time::Duration;

use bad_frames::{corpus, Expect};
use binary::{spawn_run, temp_dir};
use sha2::{Digest, Sha256};
use testkit::{FakeCloud, FakeCloudConfig};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const RESTO: &str = "resto-socket";
const SECRET: &str = "socket-secret";
const T: Duration = Duration::from_secs(10);
const CAP: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_subset_binary_invalid_utf8_and_oversize_through_the_socket() {
    let dir = temp_dir("bad-socket");
    let mirror = dir.join("mirror.sqlite");
    {
        let mut conn = expirenza_agent::mirror::create_schema(&mirror).unwrap();
        expirenza_agent::mirror::demo::fill(&mut conn).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;")
            .unwrap();
    }
    let hash = || Sha256::digest(std::fs::read(&mirror).unwrap()).to_vec();
    let before = hash();
    let cloud = FakeCloud::start(FakeCloudConfig {
        resto_id: RESTO.into(),
        secret: SECRET.into(),
        pos_system: None,
    })
    .await
    .unwrap();
    let agent = spawn_run(
        &dir,
        RESTO,
        SECRET,
        &cloud.ws_url(),
        &cloud.callback_url(),
        &mirror,
        &format!("[limits]\nmax_frame_bytes = {CAP}\nmax_message_bytes = {CAP}\n"),
    );
    cloud.wait_connected(T).await.expect("connect");
    let (hwm_start, _) = agent.memory_kib();

    // 1. The corpus subset: every hand-written case and every 40th generated one, as long as
    //    it is UTF-8 text under the cap (the others are protocol-level cases, below).
    let cases: Vec<_> = corpus()
        .into_iter()
        .enumerate()
        .filter(|(i, c)| {
            c.expect != Expect::Either
                && c.frame.len() < CAP
                && std::str::from_utf8(&c.frame).is_ok()
                && (*i < 60 || i % 40 == 0)
        })
        .map(|(_, c)| c)
        .collect();
    let (mut rejected, mut unknown, mut handled) = (0, 0, 0);
    for c in &cases {
        assert!(
            cloud
                .send_text(std::str::from_utf8(&c.frame).unwrap())
                .await,
            "{}",
            c.name
        );
        match c.expect {
            Expect::Rejected => rejected += 1,
            Expect::Unknown => unknown += 1,
            _ => handled += 1,
        }
    }
    // A rejected frame is dropped when no rID can be read, else answered FAIL BAD_REQUEST.
    let counts = agent.wait_counts(
        &["dispatch: dropped a frame", "dispatch: rejected a frame"],
        |c| c[0] + c[1] >= rejected,
        T,
    );
    assert_eq!(counts[0] + counts[1], rejected, "{}", agent.stderr_so_far());
    assert!(agent.wait_count("dispatch: unknown operation", unknown, T));
    // Every frame with a readable rID ends in exactly one 'op=' line: answered, FAIL, or not
    // implemented; that includes unknown operations and rejected frames with an rID.
    let with_rid = handled + unknown + counts[1];
    assert!(
        agent.wait_count("op=", with_rid, T),
        "expected {with_rid} op lines:\n{}",
        agent.stderr_so_far()
    );
    assert_eq!(agent.count_lines("op="), with_rid);
    assert_eq!(agent.count_lines("panicked"), 0);
    assert_eq!(cloud.connection_count(), 1, "bad JSON never drops the link");
    let answered = cloud.all_callbacks().len();
    let errors = agent.count_lines("outcome=ERROR");
    // Operations with no callback by design (showMessage, setSettings): an `op=` line without
    // `bytes=` (dispatch logs `bytes=` only for delivered callbacks).
    let silent = agent
        .stderr_so_far()
        .lines()
        .filter(|l| {
            l.contains("op=")
                && !l.contains("bytes=")
                && !l.contains("outcome=ERROR")
                && !l.contains("callback-failed")
        })
        .count();
    assert_eq!(agent.count_lines("callback-failed"), 0);
    assert_eq!(
        answered + errors + silent,
        with_rid,
        "each frame with an rID: one callback, one error line, or one no-callback op line"
    );

    // 2. A binary frame: dropped with a log line, link up.
    assert!(cloud.send_binary(b"\x00\x01binary").await);
    assert!(agent.wait_line("dropped a binary frame", T).is_some());
    assert_eq!(cloud.connection_count(), 1);

    // 3. Text frame that is not UTF-8: the protocol requires closing; the agent reconnects.
    let bad = Frame::message(
        b"{\"rID\":\"\xff\xfe\"}".to_vec(),
        OpCode::Data(Data::Text),
        true,
    );
    cloud.send_raw_frame(Message::Frame(bad)).await;
    assert!(
        agent.wait_line("not valid UTF-8", T).is_some(),
        "{}",
        agent.stderr_so_far()
    );
    cloud
        .wait_connected(T)
        .await
        .expect("reconnect after invalid UTF-8");

    // 4. Frames above the cap, five times: closed each time (1009), reconnected, memory flat.
    let big = format!(
        "{{\"rID\":\"big\",\"operation\":\"getBill\",\"x\":\"{}\"}}",
        "x".repeat(4 * CAP)
    );
    for i in 0..5 {
        cloud.send_text(&big).await;
        assert!(
            agent.wait_count("over the size cap", i + 1, T),
            "oversize #{i}: {}",
            agent.stderr_so_far()
        );
        cloud
            .wait_connected(T)
            .await
            .expect("reconnect after oversize");
    }
    let (hwm_end, rss_end) = agent.memory_kib();

    // 5. Still answering, mirror untouched.
    let cb = cloud
        .request(
            r#"{"rID":"final","operation":"getBill","tableNumber":"12"}"#,
            "final",
            T,
        )
        .await
        .expect("answered after all that");
    assert!(cb.body_str().contains("\"SUCCESS\""));
    let out = agent.stop(Duration::from_secs(15));
    assert_eq!(out.code, Some(0), "clean exit: {}", out.stderr);
    assert_eq!(hash(), before, "the mirror file changed");
    println!(
        "socket bad input: {} frames ({rejected} rejected, {unknown} unknown, {handled} handled), \
         1 binary, 1 invalid UTF-8, 5 oversize ({} KiB each); VmHWM {hwm_start} -> {hwm_end} KiB, VmRSS {rss_end} KiB",
        cases.len(),
        big.len() / 1024
    );
    assert!(
        hwm_end < hwm_start + 16 * 1024,
        "peak memory grew by {} KiB",
        hwm_end - hwm_start
    );
    let _ = std::fs::remove_dir_all(&dir);
}
