//! The fake Expirenza cloud and the simulated POS as a standalone program, for an agent that
//! something else runs: systemd inside the VM of `cross/vm-test.sh` (built static, copied in,
//! so the image needs no Python), or a service on a developer's machine.
//!
//! ```text
//! fake_cloud serve    --ws-port P --http-port Q --control C --resto-id ID --secret-file F
//! fake_cloud pos      --journal J --mirror M [--poll-ms 100]
//! fake_cloud wait     --control C [--connections N] [--timeout SECS]
//! fake_cloud call     --control C --op OP --rid RID [--fields JSON] [--expect TEXT] [--timeout SECS]
//! fake_cloud send     --control C --op OP --rid RID [--fields JSON]
//! fake_cloud payments --mirror M --bill BILL
//! fake_cloud applied  --mirror M --rid RID
//! fake_cloud settings --journal J
//! ```
//! * `serve`: the testkit's `FakeCloud` on `127.0.0.1` at fixed ports (WebSocket and callback
//!   server; Basic auth and every callback signature checked with the secret read from F),
//!   driven over a line protocol on the loopback control port C. Sends `READY=1` when
//!   `$NOTIFY_SOCKET` is set (`systemd-run -p Type=notify`), runs until SIGTERM.
//! * `pos`: the testkit's simulated POS: claims the journal's commands, applies them to the
//!   mirror and acknowledges them as docs/journal.md says. `READY=1`, runs until SIGTERM.
//! * `wait`: waits until the agent has made N WebSocket connections in total (default 1) with
//!   the right credentials. Exit 0 when it has.
//! * `call`: sends `{"rID":RID,"operation":OP,FIELDS}` and waits for its callback. Prints one
//!   line (operation, rID, outcome, signature, latency) and the body; exit 0 only when the
//!   callback arrived, its signature verified and its body contains TEXT.
//! * `send`: sends the same frame and waits for no callback, for the operations that have none
//!   (showMessage, setSettings). Exit 0 when the frame went out on a live connection.
//! * `payments`: what the POS recorded for a bill (its state, the payments applied to it).
//! * `applied`: what the POS did with one journaled command, by rID (applied or rejected, its
//!   result; for showMessage the request it showed). Exit 1 while the POS has not got to it.
//! * `settings`: the settings frame the agent stored in the journal (setSettings). Exit 1 when
//!   none is stored.
//!
//! Control protocol (one request line, one answer line, per connection):
//! `WAIT <connections> <timeout_ms>` → `CONNECTED <count> <auth ok|BAD>` | `TIMEOUT <count>`;
//! `CALL <timeout_ms> <rid> <frame>` → `CALLBACK <verified|BAD> <ms> <body>` | `NONE`;
//! `SEND <frame>` → `SENT` | `NOT_CONNECTED`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

use testkit::{FakeCloud, FakeCloudConfig};

/// Longest control request (a frame with its fields) and answer (a callback body).
const MAX_REQUEST: u64 = 64 * 1024;
const MAX_ANSWER: u64 = 1024 * 1024;
/// How long a control client may take to send its request line.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Beyond the operation's own timeout, how long a client waits for the answer line.
const ANSWER_SLACK: Duration = Duration::from_secs(10);

const USAGE: &str = "usage:
  fake_cloud serve    --ws-port P --http-port Q --control C --resto-id ID --secret-file F
  fake_cloud pos      --journal J --mirror M [--poll-ms 100]
  fake_cloud wait     --control C [--connections N] [--timeout SECS]
  fake_cloud call     --control C --op OP --rid RID [--fields JSON] [--expect TEXT] [--timeout SECS]
  fake_cloud send     --control C --op OP --rid RID [--fields JSON]
  fake_cloud payments --mirror M --bill BILL
  fake_cloud applied  --mirror M --rid RID
  fake_cloud settings --journal J";

/// `--name value` pairs after the subcommand.
struct Args(Vec<(String, String)>);

impl Args {
    fn parse(raw: &[String]) -> Result<Args, String> {
        let mut out = Vec::new();
        let mut it = raw.iter();
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else {
                return Err(format!("unexpected argument {k}"));
            };
            let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            out.push((name.to_string(), v.clone()));
        }
        Ok(Args(out))
    }
    fn opt(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn req(&self, name: &str) -> Result<&str, String> {
        self.opt(name)
            .ok_or_else(|| format!("--{name} is required"))
    }
    fn num(&self, name: &str, default: u64) -> Result<u64, String> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} {v}: not a whole number")),
        }
    }
    fn port(&self, name: &str) -> Result<u16, String> {
        let v = self.req(name)?;
        v.parse()
            .map_err(|_| format!("--{name} {v}: not a port number"))
    }
    fn check_known(&self, known: &[&str]) -> Result<(), String> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("unknown option --{k}")),
            None => Ok(()),
        }
    }
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = raw.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let args = match Args::parse(rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fake_cloud: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        match cmd.as_str() {
            "serve" => serve(&args).await,
            "pos" => pos(&args).await,
            "wait" => wait(&args).await,
            "call" => call(&args).await,
            "send" => send(&args).await,
            "payments" => payments(&args),
            "applied" => applied(&args),
            "settings" => settings(&args),
            "-h" | "--help" => {
                println!("{USAGE}");
                Ok(true)
            }
            other => Err(format!("unknown command {other}\n{USAGE}")),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("fake_cloud {cmd}: {e}");
            ExitCode::from(2)
        }
    }
}

/// Wait for SIGTERM or SIGINT.
async fn terminated() -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

async fn serve(a: &Args) -> Result<bool, String> {
    a.check_known(&["ws-port", "http-port", "control", "resto-id", "secret-file"])?;
    let secret_file = a.req("secret-file")?;
    let secret = std::fs::read_to_string(secret_file)
        .map_err(|e| format!("reading the secret from {secret_file}: {e}"))?;
    let secret = secret.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        return Err(format!("{secret_file} is empty"));
    }
    let cloud = FakeCloud::start_on(
        FakeCloudConfig {
            resto_id: a.req("resto-id")?.into(),
            secret,
            pos_system: None,
        },
        a.port("ws-port")?,
        a.port("http-port")?,
    )
    .await
    .map_err(|e| format!("starting the fake cloud: {e}"))?;
    let control = TcpListener::bind(("127.0.0.1", a.port("control")?))
        .await
        .map_err(|e| format!("control port: {e}"))?;
    println!(
        "fake cloud: {} callbacks {} control 127.0.0.1:{}",
        cloud.ws_url(),
        cloud.callback_url(),
        a.port("control")?
    );
    let _ = expirenza_agent::systemd::ready();
    let stop = terminated();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            r = &mut stop => { r?; break; }
            acc = control.accept() => match acc {
                Ok((sock, _)) => {
                    let cloud = cloud.clone();
                    tokio::spawn(async move {
                        if let Err(e) = control_conn(cloud, sock).await {
                            eprintln!("control connection: {e}");
                        }
                    });
                }
                Err(e) => eprintln!("control accept: {e}"),
            }
        }
    }
    println!(
        "fake cloud: stopping after {} WebSocket connection(s)",
        cloud.connection_count()
    );
    Ok(true)
}

/// One control request, one answer line.
async fn control_conn(cloud: FakeCloud, sock: TcpStream) -> Result<(), String> {
    let (rd, mut wr) = sock.into_split();
    let mut line = String::new();
    let mut rd = BufReader::new(rd.take(MAX_REQUEST));
    match tokio::time::timeout(REQUEST_READ_TIMEOUT, rd.read_line(&mut line)).await {
        Err(_) => return Err("no request line within 10 s".into()),
        Ok(Err(e)) => return Err(format!("reading the request: {e}")),
        Ok(Ok(_)) if !line.ends_with('\n') => {
            return Err(format!("request line over {MAX_REQUEST} bytes or cut"))
        }
        Ok(Ok(_)) => {}
    }
    let line = line.trim_end();
    let mut parts = line.splitn(4, ' ');
    let answer = if let Some(frame) = line.strip_prefix("SEND ") {
        if cloud.send_text(frame).await {
            "SENT".to_string()
        } else {
            "NOT_CONNECTED".to_string()
        }
    } else {
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("WAIT"), Some(n), Some(ms), None) => {
                let n: usize = n.parse().map_err(|_| format!("WAIT count {n}"))?;
                let ms: u64 = ms.parse().map_err(|_| format!("WAIT timeout {ms}"))?;
                let timeout = Duration::from_millis(ms);
                if cloud.wait_connection_count(n, timeout).await {
                    let auth = cloud.handshakes().last().is_some_and(|h| h.auth_ok);
                    format!(
                        "CONNECTED {} {}",
                        cloud.connection_count(),
                        if auth { "ok" } else { "BAD" }
                    )
                } else {
                    format!("TIMEOUT {}", cloud.connection_count())
                }
            }
            (Some("CALL"), Some(ms), Some(rid), Some(frame)) => {
                let ms: u64 = ms.parse().map_err(|_| format!("CALL timeout {ms}"))?;
                let sent = Instant::now();
                match cloud.request(frame, rid, Duration::from_millis(ms)).await {
                    Some(cb) => {
                        let took = cb.received_at.saturating_duration_since(sent);
                        format!(
                            "CALLBACK {} {} {}",
                            if cb.signature_ok { "verified" } else { "BAD" },
                            took.as_millis(),
                            cb.body_str().replace(['\r', '\n'], " ")
                        )
                    }
                    None => "NONE".to_string(),
                }
            }
            _ => format!(
                "ERROR unknown request: {}",
                line.chars().take(80).collect::<String>()
            ),
        }
    };
    wr.write_all(format!("{answer}\n").as_bytes())
        .await
        .map_err(|e| format!("writing the answer: {e}"))
}

/// Send one control request and read the answer line.
async fn control_request(port: u16, request: &str, op_timeout: Duration) -> Result<String, String> {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| {
        format!("control port 127.0.0.1:{port}: {e} (is `fake_cloud serve` running?)")
    })?;
    sock.write_all(format!("{request}\n").as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut answer = String::new();
    let mut rd = BufReader::new(sock.take(MAX_ANSWER));
    match tokio::time::timeout(op_timeout + ANSWER_SLACK, rd.read_line(&mut answer)).await {
        Err(_) => Err("no answer from the fake cloud".into()),
        Ok(Err(e)) => Err(format!("reading the answer: {e}")),
        Ok(Ok(_)) => Ok(answer.trim_end().to_string()),
    }
}

async fn wait(a: &Args) -> Result<bool, String> {
    a.check_known(&["control", "connections", "timeout"])?;
    let n = a.num("connections", 1)?;
    let timeout = Duration::from_secs(a.num("timeout", 30)?);
    let answer = control_request(
        a.port("control")?,
        &format!("WAIT {n} {}", timeout.as_millis()),
        timeout,
    )
    .await?;
    println!("{answer}");
    Ok(answer.starts_with("CONNECTED ") && answer.ends_with(" ok"))
}

/// `{"rID":RID,"operation":OP,FIELDS}` from `--op`, `--rid` and `--fields`, on one line.
fn frame_of(a: &Args) -> Result<(&str, &str, String), String> {
    let (op, rid) = (a.req("op")?, a.req("rid")?);
    if rid.contains(' ') || rid.contains('"') {
        return Err(format!("--rid {rid}: no spaces or quotes"));
    }
    let fields = a.opt("fields").unwrap_or("");
    if fields.contains(['\r', '\n']) {
        return Err("--fields: one line only".into());
    }
    let sep = if fields.is_empty() { "" } else { "," };
    let frame = format!("{{\"rID\":\"{rid}\",\"operation\":\"{op}\"{sep}{fields}}}");
    Ok((op, rid, frame))
}

async fn send(a: &Args) -> Result<bool, String> {
    a.check_known(&["control", "op", "rid", "fields"])?;
    let (op, rid, frame) = frame_of(a)?;
    let answer =
        control_request(a.port("control")?, &format!("SEND {frame}"), Duration::ZERO).await?;
    let sent = answer == "SENT";
    println!(
        "{op} {rid}: {}",
        if sent {
            "sent"
        } else {
            "NOT sent (no connection)"
        }
    );
    Ok(sent)
}

async fn call(a: &Args) -> Result<bool, String> {
    a.check_known(&["control", "op", "rid", "fields", "expect", "timeout"])?;
    let (op, rid, frame) = frame_of(a)?;
    let timeout = Duration::from_secs(a.num("timeout", 30)?);
    let answer = control_request(
        a.port("control")?,
        &format!("CALL {} {rid} {frame}", timeout.as_millis()),
        timeout,
    )
    .await?;
    let Some(rest) = answer.strip_prefix("CALLBACK ") else {
        println!(
            "{op} {rid}: no callback within {} s ({answer})",
            timeout.as_secs()
        );
        return Ok(false);
    };
    let mut p = rest.splitn(3, ' ');
    let (sig, ms, body) = (
        p.next().unwrap_or(""),
        p.next().unwrap_or(""),
        p.next().unwrap_or(""),
    );
    let expect = a.opt("expect").unwrap_or("");
    let found = body.contains(expect);
    println!(
        "{op} {rid}: {} signature {sig} in {ms} ms{}",
        outcome_of(body),
        if found {
            String::new()
        } else {
            format!(", does NOT contain {expect}")
        }
    );
    let shown: String = body.chars().take(400).collect();
    println!(
        "  body: {shown}{}",
        if shown.len() < body.len() { " …" } else { "" }
    );
    Ok(sig == "verified" && found)
}

/// `SUCCESS`, `FAIL TABLE_NOT_FOUND`, or `answered` for answers without a state.
fn outcome_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    match (v["state"].as_str(), v["substate"].as_str()) {
        (Some(s), Some(sub)) => format!("{s} {sub}"),
        (Some(s), None) => s.to_string(),
        _ => "answered".to_string(),
    }
}

async fn pos(a: &Args) -> Result<bool, String> {
    a.check_known(&["journal", "mirror", "poll-ms"])?;
    let journal = PathBuf::from(a.req("journal")?);
    let mirror = PathBuf::from(a.req("mirror")?);
    let poll = Duration::from_millis(a.num("poll-ms", 100)?.max(1));
    let running = testkit::sim_pos::spawn(&journal, &mirror, poll)
        .map_err(|e| format!("starting the simulated POS: {e}"))?;
    println!(
        "simulated POS: applying {} to {} every {} ms",
        journal.display(),
        mirror.display(),
        poll.as_millis()
    );
    let _ = expirenza_agent::systemd::ready();
    terminated().await?;
    println!(
        "simulated POS: stopping after {} command(s)",
        running.processed()
    );
    Ok(true)
}

fn payments(a: &Args) -> Result<bool, String> {
    use rusqlite::{params, OpenFlags, OptionalExtension};
    a.check_known(&["mirror", "bill"])?;
    let (mirror, bill) = (a.req("mirror")?, a.req("bill")?);
    let db = rusqlite::Connection::open_with_flags(mirror, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{mirror}: {e}"))?;
    db.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let state: Option<String> = db
        .query_row(
            "SELECT state FROM orders WHERE bill_id = ?1",
            params![bill],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| format!("orders: {e}"))?;
    let mut st = db
        .prepare("SELECT rid, sum_kop, coalesce(tips_kop, 0) FROM pos_payments WHERE bill_id = ?1 ORDER BY id")
        .map_err(|e| format!("pos_payments (has the simulated POS run?): {e}"))?;
    let rows: Vec<(String, i64, i64)> = st
        .query_map(params![bill], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|it| it.collect())
        .map_err(|e| format!("pos_payments: {e}"))?;
    let list: Vec<String> = rows
        .iter()
        .map(|(rid, sum, tips)| format!("{rid}:{sum}+{tips}"))
        .collect();
    println!(
        "bill={bill} state={} payments={} [{}]",
        state.as_deref().unwrap_or("MISSING"),
        rows.len(),
        list.join(" ")
    );
    Ok(true)
}

/// What the simulated POS recorded for one rID (`pos_applied`, and `pos_messages` for a
/// showMessage). `Ok(false)` while it has not applied it yet.
fn applied(a: &Args) -> Result<bool, String> {
    use rusqlite::{params, OpenFlags, OptionalExtension};
    a.check_known(&["mirror", "rid"])?;
    let (mirror, rid) = (a.req("mirror")?, a.req("rid")?);
    let db = rusqlite::Connection::open_with_flags(mirror, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{mirror}: {e}"))?;
    db.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let row: Option<(String, Option<String>, Option<String>)> = db
        .query_row(
            "SELECT status, substate, result FROM pos_applied WHERE rid = ?1",
            params![rid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|e| format!("pos_applied (has the simulated POS run?): {e}"))?;
    let Some((status, substate, result)) = row else {
        println!("rid={rid}: not applied by the POS (yet)");
        return Ok(false);
    };
    let message: Option<String> = db
        .query_row(
            "SELECT request FROM pos_messages WHERE rid = ?1",
            params![rid],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| format!("pos_messages: {e}"))?;
    println!(
        "rid={rid} status={status}{} result={}{}",
        substate
            .map(|s| format!(" substate={s}"))
            .unwrap_or_default(),
        result.unwrap_or_default(),
        message
            .map(|m| format!(" shown={}", m.chars().take(300).collect::<String>()))
            .unwrap_or_default()
    );
    Ok(true)
}

/// The settings the agent stored for the POS (setSettings). `Ok(false)` when none is stored.
fn settings(a: &Args) -> Result<bool, String> {
    use rusqlite::OpenFlags;
    a.check_known(&["journal"])?;
    let journal = a.req("journal")?;
    let db = rusqlite::Connection::open_with_flags(journal, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("{journal}: {e}"))?;
    db.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    match expirenza_agent::journal::store::settings(&db).map_err(|e| e.to_string())? {
        Some((rid, json)) => {
            let shown: String = json.chars().take(300).collect();
            println!("settings from rid={rid}: {shown}");
            Ok(true)
        }
        None => {
            println!("no settings stored");
            Ok(false)
        }
    }
}
