//! `expirenza-agent simulate OPERATION …`: one money-moving operation end to end, without a
//! cloud, to exercise the POS side.
//!
//! The request frame is built as the cloud would send it, with an rID that says it is
//! simulated (`simulated-<unix ms>-<pid>`), then goes through the stages `run` uses: a
//! [`Dispatcher`] on a context built by [`Ctx::new`] admits it, computes it (journaling it),
//! waits for the POS's acknowledgement on timers (the journal row polled every
//! `poll_interval_ms`, at most `pos_ack_timeout_secs`) and delivers the answer, here to a
//! [`Deliver`] that keeps the body instead of POSTing it. It prints the request, the body the
//! cloud would receive, and the journal row. showMessage has no answer; its acknowledgement is
//! awaited the same way after the dispatcher is done.
//!
//! It writes only with `--yes`, since the POS will really apply the command. Without it, a dry
//! run: the operation alone ([`ops::handle`], the compute stage) against a copy of the journal in
//! a temporary directory (so repeats and live payments are seen as the real journal has them),
//! which shows what would be written and the answer the agent would give before the POS acts;
//! nothing is written to the real journal.
//! Exit status: 0 when the answer is SUCCESS (a dry run: when the command would go to the POS),
//! 1 when it is a FAIL or the command would be refused or kept for review, 2 on an error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{usage_error, Command, Common};
use crate::callback::{BoxFuture, CallbackError, Deliver, Delivered};
use crate::config::{Config, SecretNeed};
use crate::ctx::Ctx;
use crate::dispatch::{self, Dispatcher, OpEvents};
use crate::journal::{Command as Row, Journal, JournalError, Status};
use crate::json::JsonBuf;
use crate::mirror::orders;
use crate::money::{Kopecks, Qty};
use crate::ops::split_order::{self, SplitLine, SplitPosition};
use crate::ops::{self, Answer, Op};
use crate::request::parse_envelope;
use crate::sign::SignedBody;

pub const COMMAND: Command = Command {
    name: "simulate",
    summary: "Run payBill, splitOrder, createOrderOnTable or showMessage end to end, no cloud.",
    usage: USAGE,
    main,
};

const USAGE: &str = "\
expirenza-agent simulate payBill --bill ID --sum S [--tips T] [--fiscal KEY=VALUE]... [--yes]
expirenza-agent simulate splitOrder --bill ID --position ID[:QTY]... [--yes]
expirenza-agent simulate createOrderOnTable --table N --item ID[:QTY]... [--yes]
expirenza-agent simulate showMessage --text TEXT [--warning] [--bill ID] [--yes]

Run one operation that changes the POS the way `run` does, without a cloud: the request is
built as the cloud would send it (rID simulated-<unix ms>-<pid>), journaled by the same code,
and the POS's acknowledgement awaited as `run` awaits it (at most [journal]
pos_ack_timeout_secs). Prints the request, the body the cloud would receive, and the journal
row. Needs no secret and no network.

Without --yes nothing is written: a dry run against a copy of the journal shows what would be
journaled and the agent's own answer before the POS acts. With --yes the command is journaled
for real and the POS applies it (a payment closes the bill).

Exit status: 0 SUCCESS (dry run: the command would go to the POS), 1 FAIL (dry run: it would be
refused or kept for review), 2 an error.

OPTIONS:
    --bill ID            payBill, splitOrder: the bill; showMessage: attach to this bill
    --sum S              payBill: the amount paid, e.g. 389.50
    --tips T             payBill: tips on top of the sum
    --fiscal KEY=VALUE   payBill: a fiscalData entry (repeatable)
    --position ID[:QTY]  splitOrder: a line to move (repeatable); QTY defaults to all of it
    --table N            createOrderOnTable: the table number (or a table id)
    --item ID[:QTY]      createOrderOnTable: a menu item (repeatable); QTY defaults to 1
    --text TEXT          showMessage: the message
    --warning            showMessage: highlight it
    --yes                really journal it (the POS will apply it)
";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Args {
    operation: Option<String>,
    bill: Option<String>,
    sum: Option<String>,
    tips: Option<String>,
    fiscal: Vec<(String, String)>,
    positions: Vec<(String, Option<Qty>)>,
    table: Option<String>,
    items: Vec<(String, Option<Qty>)>,
    text: Option<String>,
    warning: bool,
    yes: bool,
}

fn main(parser: &mut lexopt::Parser, mut common: Common) -> Result<ExitCode> {
    use lexopt::prelude::*;
    let mut a = Args::default();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("bill") => a.bill = Some(parser.value()?.string()?),
            Long("sum") => a.sum = Some(parser.value()?.string()?),
            Long("tips") => a.tips = Some(parser.value()?.string()?),
            Long("fiscal") => {
                let v = parser.value()?.string()?;
                let Some((k, v)) = v.split_once('=') else {
                    return Err(usage_error(format!("--fiscal {v}: use KEY=VALUE"), USAGE));
                };
                a.fiscal.push((k.to_string(), v.to_string()));
            }
            Long("position") => a
                .positions
                .push(id_qty("--position", &parser.value()?.string()?)?),
            Long("table") => a.table = Some(parser.value()?.string()?),
            Long("item") => a.items.push(id_qty("--item", &parser.value()?.string()?)?),
            Long("text") => a.text = Some(parser.value()?.string()?),
            Long("warning") => a.warning = true,
            Long("yes") => a.yes = true,
            Value(v) if a.operation.is_none() => a.operation = Some(v.string()?),
            other => common.other(other.into(), parser, USAGE)?,
        }
    }
    common.set_log_level(false);
    let Some(name) = a.operation.clone() else {
        return Err(usage_error("simulate needs an OPERATION", USAGE));
    };
    let op = match Op::from_name(&name) {
        Some(op @ (Op::PayBill | Op::SplitOrder | Op::CreateOrderOnTable | Op::ShowMessage)) => op,
        _ => {
            return Err(usage_error(
                format!("simulate runs payBill, splitOrder, createOrderOnTable or showMessage, not {name:?}"),
                USAGE,
            ))
        }
    };
    let cfg = common.load_config(SecretNeed::IfAvailable)?;
    let rid = format!(
        "simulated-{}-{}",
        crate::journal::now_ms(),
        std::process::id()
    );
    if a.yes {
        run(&cfg, op, &a, &rid)
    } else {
        dry_run(&cfg, op, &a, &rid)
    }
}

/// `ID` or `ID:QTY`.
fn id_qty(flag: &str, v: &str) -> Result<(String, Option<Qty>)> {
    let (id, q) = match v.rsplit_once(':') {
        Some((id, q)) => (id, Some(q)),
        None => (v, None),
    };
    if id.is_empty() {
        return Err(usage_error(format!("{flag} {v}: the id is empty"), USAGE));
    }
    let q = q
        .map(|q| {
            Qty::from_text(q).map_err(|e| usage_error(format!("{flag} {v}: quantity {e}"), USAGE))
        })
        .transpose()?;
    Ok((id.to_string(), q))
}

/// A context whose callbacks are kept, not sent: simulate needs no network.
fn context(cfg: &Config, capture: Arc<Capture>) -> Ctx {
    Ctx::new(Arc::new(cfg.clone()), capture)
}

/// The frame the cloud would send.
fn frame(ctx: &Ctx, op: Op, a: &Args, rid: &str) -> Result<Vec<u8>> {
    let need = |v: &Option<String>, flag: &str| -> Result<String> {
        v.clone()
            .ok_or_else(|| usage_error(format!("{} needs {flag}", op.name()), USAGE))
    };
    let mut j = JsonBuf::new(ctx.cfg.limits.max_message_bytes);
    j.begin_obj()
        .f_str("rID", rid)
        .f_str("operation", op.name());
    match op {
        Op::PayBill => {
            let sum = amount("--sum", &need(&a.sum, "--sum S")?)?;
            j.f_str("billId", &need(&a.bill, "--bill ID")?)
                .f_money("sum", sum);
            if let Some(t) = &a.tips {
                j.f_money("tips", amount("--tips", t)?);
            }
            j.key("fiscalData").begin_arr();
            for (k, v) in &a.fiscal {
                j.begin_obj().f_str("key", k).f_str("value", v).end_obj();
            }
            j.end_arr();
        }
        Op::SplitOrder => {
            let bill = need(&a.bill, "--bill ID")?;
            if a.positions.is_empty() {
                bail!("splitOrder needs at least one --position ID[:QTY]");
            }
            let lines = ctx
                .mirror
                .with(|c| orders::order_by_id(c, &bill, ctx.max_rows()))
                .with_context(|| format!("reading bill {bill} from the mirror"))?
                .map(|o| o.positions)
                .unwrap_or_default();
            // The whole line unless a quantity is given; controlSum as the cloud computes it:
            // the total of what moves.
            let positions: Vec<SplitPosition> = a
                .positions
                .iter()
                .map(|(id, q)| {
                    let count = lines.iter().find(|l| &l.position_id == id).map(|l| l.count);
                    Ok(SplitPosition {
                        id: id
                            .as_str()
                            .try_into()
                            .map_err(|_| anyhow::anyhow!("--position {id}: too long"))?,
                        quantity: q.or(count).unwrap_or(Qty::ONE),
                    })
                })
                .collect::<Result<_>>()?;
            let split_lines: Vec<SplitLine<'_>> = lines.iter().map(SplitLine::from).collect();
            let control = split_order::plan(&bill, &split_lines, &positions)
                .map(|m| m.iter().fold(Kopecks::ZERO, |t, m| t + m.sum))
                .unwrap_or(Kopecks::ZERO);
            j.f_str("billId", &bill).f_money("controlSum", control);
            j.key("positions").begin_arr();
            for p in &positions {
                j.begin_obj()
                    .f_str("id", &p.id)
                    .f_qty("quantity", p.quantity)
                    .end_obj();
            }
            j.end_arr();
        }
        Op::CreateOrderOnTable => {
            let table = need(&a.table, "--table N")?;
            if a.items.is_empty() {
                bail!("createOrderOnTable needs at least one --item ID[:QTY]");
            }
            let table_id = ctx
                .mirror
                .with(|c| orders::table_by_number(c, &table))
                .ok()
                .flatten()
                .map_or(table.clone(), |t| t.id);
            j.f_str("externalId", rid)
                .f_str("originName", "expirenza-agent simulate")
                .f_str("tableId", &table_id);
            j.key("items").begin_arr();
            for (id, q) in &a.items {
                j.begin_obj()
                    .f_str("id", id)
                    .f_qty("quantity", q.unwrap_or(Qty::ONE))
                    .end_obj();
            }
            j.end_arr();
        }
        Op::ShowMessage => {
            j.f_str("message", &need(&a.text, "--text TEXT")?)
                .f_bool("warning", a.warning)
                .f_opt_str("billId", a.bill.as_deref());
        }
        _ => unreachable!("checked in main"),
    }
    j.end_obj();
    Ok(j.finish()?)
}

fn amount(flag: &str, v: &str) -> Result<Kopecks> {
    Kopecks::from_text(v).map_err(|e| usage_error(format!("{flag} {v}: {e}"), USAGE))
}

/// Keeps the callback the dispatcher would POST (simulate has no cloud to send it to).
#[derive(Default)]
struct Capture {
    body: Mutex<Option<Vec<u8>>>,
}

impl Deliver for Capture {
    fn deliver<'a>(
        &'a self,
        _path: &'a str,
        body: &'a SignedBody,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Delivered, CallbackError>> {
        *self.body.lock().unwrap_or_else(|p| p.into_inner()) = Some(body.body().to_vec());
        Box::pin(async {
            Ok(Delivered {
                attempts: 1,
                status: 200,
            })
        })
    }
}

/// Whether the request ended with its own answer (or none due), as the status board hears it.
#[derive(Default)]
struct Ended(Mutex<Option<bool>>);

impl OpEvents for Ended {
    fn op_done(&self, _operation: &str, ok: bool) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(ok);
    }
}

/// `--yes`: journal it for real through the dispatcher's stages (waiting for the POS on
/// timers, as `run` does), print what happened.
fn run(cfg: &Config, op: Op, a: &Args, rid: &str) -> Result<ExitCode> {
    let capture = Arc::new(Capture::default());
    let ended = Arc::new(Ended::default());
    let ctx = Arc::new(context(cfg, capture.clone()));
    let frame = frame(&ctx, op, a, rid)?;
    parse_envelope(&frame).context("reading the built request")?;
    print_request(&frame);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("starting the async runtime")?;
    let row = rt.block_on(async {
        let (dispatcher, _worker): (Dispatcher, _) = dispatch::channel(ctx.clone(), ended.clone());
        dispatcher.submit(&frame, Instant::now());
        dispatcher.drained().await;
        let row = ctx.journal.by_rid(rid).context("reading the journal")?;
        match row {
            // showMessage has no answer: wait for the POS's acknowledgement all the same.
            Some(r) if op == Op::ShowMessage && !r.status.is_final() => {
                acknowledged(&ctx.journal, r.id)
                    .await
                    .map(Some)
                    .context("waiting for the POS")
            }
            r => Ok(r),
        }
    })?;
    let answer = capture
        .body
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let ended_ok = *ended.0.lock().unwrap_or_else(|p| p.into_inner());
    let ok = match (answer, &row) {
        (Some(body), _) => print_body(&body),
        (None, Some(r)) if ended_ok == Some(true) => {
            let warning = if a.warning { " warning" } else { "" };
            println!(
                "answer: none (this operation has no callback): journaled #{}{warning}",
                r.id
            );
            r.status == Status::Applied
        }
        _ => bail!(
            "{} failed: the agent gave no answer (the error above says why)",
            op.name()
        ),
    };
    print_row(row.as_ref(), ctx.journal.path());
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Poll command `id` on a timer until the POS finished it or `[journal] pos_ack_timeout_secs`
/// passed, as the dispatcher's wait stage does; the row as it then stands.
async fn acknowledged(j: &Journal, id: i64) -> Result<Row, JournalError> {
    let deadline = tokio::time::Instant::now() + j.ack_timeout;
    loop {
        let row = j.get(id)?;
        let now = tokio::time::Instant::now();
        if row.status.is_final() || now >= deadline {
            return Ok(row);
        }
        tokio::time::sleep(j.poll_interval.min(deadline - now)).await;
    }
}

/// Without `--yes`: the same code against a copy of the journal; nothing real is written.
fn dry_run(cfg: &Config, op: Op, a: &Args, rid: &str) -> Result<ExitCode> {
    let scratch = Scratch::new()?;
    let copy = scratch.0.join("journal.sqlite");
    let real = cfg.journal_path();
    if real.exists() {
        let c = rusqlite::Connection::open_with_flags(
            &real,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening the journal {}", real.display()))?;
        c.busy_timeout(std::time::Duration::from_secs(5))?;
        c.execute("VACUUM INTO ?1", [copy.to_string_lossy()])
            .with_context(|| format!("copying the journal {}", real.display()))?;
    }
    let mut scratch_cfg = cfg.clone();
    scratch_cfg.journal.path = Some(copy);
    scratch_cfg.state_dir = scratch.0.clone();
    // The copy's own open-time warning ("n commands still pending") is about the real
    // journal, which the listing below and `expirenza-agent journal` show: keep it quiet.
    let quiet = crate::log::enabled(crate::log::Level::Warn)
        && !crate::log::enabled(crate::log::Level::Info);
    if quiet {
        crate::log::set_level(crate::log::Level::Error);
    }
    let ctx = context(&scratch_cfg, Arc::default());
    if quiet {
        crate::log::set_level(crate::log::Level::Warn);
    }
    let frame = frame(&ctx, op, a, rid)?;
    let env = parse_envelope(&frame).context("reading the built request")?;
    print_request(&frame);
    let answer = ops::handle(op, &ctx, &env, &frame)
        .map_err(|e| anyhow::anyhow!("{} failed: {e}", op.name()))?;
    let ok = match &answer {
        Answer::AwaitPos { .. } => {
            println!("answer: none yet: the agent would now wait for the POS to apply it");
            true
        }
        other => print_answer(other),
    };
    let row = ctx
        .journal
        .by_rid(rid)
        .context("reading the journal copy")?;
    print_row(row.as_ref(), &real);
    println!(
        "\ndry run: nothing was written. Add --yes to journal it for real: the POS will apply it."
    );
    let ok = ok && row.is_none_or(|r| matches!(r.status, Status::Pending | Status::Applied));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_request(frame: &[u8]) {
    println!("request: {}", String::from_utf8_lossy(frame));
}

/// Print the body the cloud would receive; true when it is a SUCCESS.
fn print_body(body: &[u8]) -> bool {
    println!(
        "answer (the body the cloud would receive): {}",
        String::from_utf8_lossy(body)
    );
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["state"] == "SUCCESS" || v["result"]["success"] == true
}

/// Print the answer; true when it is a SUCCESS (or no answer is due).
fn print_answer(answer: &Answer) -> bool {
    match answer {
        Answer::Callback { body, .. } => print_body(body),
        Answer::None { outcome } => {
            println!("answer: none (this operation has no callback): {outcome}");
            true
        }
        Answer::Stream { .. } | Answer::AwaitPos { .. } => {
            println!("answer: none");
            false
        }
    }
}

fn print_row(row: Option<&Row>, journal: &std::path::Path) {
    let Some(r) = row else {
        println!("journal row: none in {}", journal.display());
        return;
    };
    let money = |v: Option<i64>| v.map_or("-".to_string(), |k| Kopecks(k).to_string());
    println!("journal row #{} in {}:", r.id, journal.display());
    println!("  rid        {}", r.rid);
    println!("  operation  {}", r.operation);
    println!("  status     {}", r.status.as_str());
    if let Some(b) = r.bill_id.as_deref().or(r.external_id.as_deref()) {
        println!("  bill       {b}");
    }
    println!("  sum        {}", money(r.sum_kop));
    println!("  tips       {}", money(r.tips_kop));
    for (k, v) in [
        ("substate", &r.substate),
        ("reason", &r.reason),
        ("result", &r.result),
    ] {
        if let Some(v) = v {
            println!("  {k:<10} {v}");
        }
    }
    if let Some(d) = r.dup_of {
        println!("  dup_of     #{d} (the live payment this one repeats)");
    }
}

/// A private temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let (secs, nanos) = crate::clock::unix_now();
        let p = std::env::temp_dir().join(format!(
            "expirenza-simulate-{}-{secs}-{nanos}",
            std::process::id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&p)
            .with_context(|| format!("creating {}", p.display()))?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
