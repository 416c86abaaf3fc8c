//! What the journal-backed operations (payBill, splitOrder, createOrderOnTable) share:
//! journaling with clear log lines, waiting for the POS, and the FAIL answers for an
//! unavailable journal, a POS that did not answer in time, and a POS that refused; and the
//! spool record of one the dispatcher refused before it started.

use super::{substate, Answer, Ctx, Op, OpError};
use crate::config::AckMode;
use crate::journal::spool::Record;
use crate::journal::store::NewCommand;
use crate::journal::{Command, JournalError, Journaled, Status};

/// Why a journal-backed operation cannot go on.
#[derive(Debug)]
pub struct Failed {
    pub substate: &'static str,
    pub message: String,
}

/// The journal could not take `new` (`e`): append it to the spool (fsync'd) so it is moved
/// into the journal as a `review` row at the next chance, and give the FAIL to answer. This
/// runs before the answer is sent: a charged payment is never only a log line.
pub fn unrecorded(ctx: &Ctx, new: &NewCommand<'_>, e: &JournalError) -> Failed {
    let rec = Record {
        rid: new.rid.to_string(),
        operation: new.operation.to_string(),
        bill_id: new.bill_id.map(str::to_string),
        external_id: new.external_id.map(str::to_string),
        sum_kop: new.sum_kop,
        tips_kop: new.tips_kop,
        spooled_at: crate::journal::now_ms(),
        error: e.to_string(),
        substate: None,
        request: new.request.to_string(),
    };
    let message = match ctx.journal.spool.append(&rec) {
        Ok(n) => {
            log_error!(
                "journal: {} rID={} could NOT be journaled: {e}; kept in the spool {} ({n} \
                 waiting), to be moved into the journal for review",
                new.operation,
                new.rid,
                ctx.journal.spool.path().display()
            );
            format!(
                "the agent could not journal this request ({e}); it is kept in the agent's spool \
                 and will be listed for staff to settle: check the POS"
            )
        }
        Err(s) => {
            log_error!(
                "journal: {} rID={} could NOT be recorded anywhere: {e}; and {s}. The frame: {}",
                new.operation,
                new.rid,
                new.request
            );
            format!("the agent could not record this request: {e}; {s}")
        }
    };
    Failed {
        substate: substate::JOURNAL_UNAVAILABLE,
        message,
    }
}

/// Longest part of an unreadable frame the dispatcher keeps for the spool (a `BAD_REQUEST`: it
/// may be anything up to `[limits] max_message_bytes`). A readable one is kept whole; the
/// spool's own cap (`[journal] max_spool_bytes`) bounds it.
pub const MAX_KEPT_UNREADABLE: usize = 64 * 1024;

/// The journal row's columns read from a money operation's frame (`ops::money_fields`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RowFields {
    pub bill_id: Option<String>,
    pub external_id: Option<String>,
    pub sum_kop: Option<i64>,
    pub tips_kop: Option<i64>,
}

/// A money operation the dispatcher answers FAIL `substate` before any journal code runs
/// (`AGENT_BUSY`, `AGENT_STOPPING`, `BAD_REQUEST`): append its frame to the spool (fsync'd), so
/// it is moved into the journal as a `review` row with that sub-state at the next chance. `kept`
/// is the frame, or its first bytes when it was cut ([`MAX_KEPT_UNREADABLE`]) from `whole`
/// bytes. Runs on the blocking pool before the FAIL is sent. `Ok` when it is recorded; else the
/// error line says that it is the request's only record.
pub fn keep_refused(
    ctx: &Ctx,
    rid: &str,
    op: Op,
    kept: &[u8],
    whole: usize,
    substate: &str,
    message: &str,
) -> Result<(), crate::journal::spool::SpoolError> {
    let f = super::money_fields(op, kept);
    let cut = if kept.len() < whole {
        format!(" (the first {} of its {whole} bytes)", kept.len())
    } else {
        String::new()
    };
    let rec = Record {
        rid: rid.to_string(),
        operation: op.name().to_string(),
        bill_id: f.bill_id,
        external_id: f.external_id,
        sum_kop: f.sum_kop,
        tips_kop: f.tips_kop,
        spooled_at: crate::journal::now_ms(),
        error: format!("refused before it started: {message}{cut}"),
        substate: Some(substate.to_string()),
        request: String::from_utf8_lossy(kept).into_owned(),
    };
    match ctx.journal.spool.append(&rec) {
        Ok(n) => {
            log_warn!(
                "journal: {} rID={rid} answered FAIL {substate} before it started; kept in the \
                 spool {} ({n} waiting), to be moved into the journal for review",
                op.name(),
                ctx.journal.spool.path().display()
            );
            Ok(())
        }
        Err(e) => {
            log_error!(
                "journal: {} rID={rid} answered FAIL {substate} and could NOT be recorded ({e}): \
                 this log line is its only record. The frame{cut}: {}",
                op.name(),
                rec.request
            );
            Err(e)
        }
    }
}

/// Journal `new` and log how it went. An error is the FAIL to answer: the request was spooled
/// ([`unrecorded`]).
pub fn journal(ctx: &Ctx, new: &NewCommand<'_>) -> Result<Journaled, Failed> {
    match ctx.journal.insert(new) {
        Ok(j) => {
            match &j {
                Journaled::New(c) => log_info!(
                    "journal: {} rID={} journaled as #{} ({})",
                    c.operation,
                    c.rid,
                    c.id,
                    c.status.as_str()
                ),
                Journaled::SameRid(c) => log_info!(
                    "journal: {} rID={} is a repeat of #{} ({}); answering its outcome",
                    c.operation,
                    c.rid,
                    c.id,
                    c.status.as_str()
                ),
                Journaled::SameKey { live, recorded } => log_warn!(
                    "journal: {} rID={} repeats #{} (rID {}, {}){}; answering its outcome",
                    new.operation,
                    new.rid,
                    live.id,
                    live.rid,
                    live.status.as_str(),
                    recorded
                        .as_ref()
                        .map(|r| format!(", kept as review #{}", r.id))
                        .unwrap_or_default()
                ),
            }
            Ok(j)
        }
        Err(e) => Err(unrecorded(ctx, new, &e)),
    }
}

/// Continue with `then` once the POS has finished `cmd`: at once if it is final already (or
/// `may_skip` and `[journal] ack_mode = "none"`), else after the dispatcher's wait stage, which
/// polls the row on a timer for at most `[journal] pos_ack_timeout_secs` holding no thread.
pub fn settle(
    ctx: &Ctx,
    cmd: Command,
    may_skip: bool,
    then: impl FnOnce(&Ctx, Result<Command, Failed>) -> Result<Answer, OpError> + Send + 'static,
) -> Result<Answer, OpError> {
    if cmd.status.is_final() || (may_skip && ctx.journal.ack_mode == AckMode::None) {
        return then(ctx, Ok(cmd));
    }
    Ok(Answer::AwaitPos {
        id: cmd.id,
        resume: Box::new(move |ctx, now| then(ctx, settled(ctx, &cmd, now))),
    })
}

/// The row after the wait, with the log line for a POS that did not answer in time.
fn settled(
    ctx: &Ctx,
    cmd: &Command,
    now: Result<Command, JournalError>,
) -> Result<Command, Failed> {
    match now {
        Ok(c) => {
            if !c.status.is_final() {
                log_warn!(
                    "journal: {} rID={} #{} not acknowledged by the POS within {} s; it stays {}",
                    c.operation,
                    c.rid,
                    c.id,
                    ctx.journal.ack_timeout.as_secs(),
                    c.status.as_str()
                );
            }
            Ok(c)
        }
        Err(e) => {
            log_error!(
                "journal: {} rID={} #{} journaled, but its state cannot be read: {e}",
                cmd.operation,
                cmd.rid,
                cmd.id
            );
            Err(Failed {
                substate: substate::JOURNAL_UNAVAILABLE,
                message: format!(
                    "recorded as command #{}, but its state cannot be read: {e}; check the POS",
                    cmd.id
                ),
            })
        }
    }
}

/// The FAIL for a command the POS did not finish (pending/claimed), refused, or that was kept
/// for review. `None` for an applied command.
pub fn not_applied(ctx: &Ctx, cmd: &Command) -> Option<Failed> {
    match cmd.status {
        Status::Applied => None,
        Status::Pending | Status::Claimed => Some(Failed {
            substate: substate::POS_TIMEOUT,
            message: format!(
                "recorded as command #{} ({}), but the POS has not applied it within {} s; it \
                 will be applied once when the POS runs: check the POS",
                cmd.id,
                cmd.status.as_str(),
                ctx.journal.ack_timeout.as_secs()
            ),
        }),
        Status::Rejected => {
            let r = cmd.pos_result();
            let sub = cmd
                .substate
                .clone()
                .or(r.substate.map(|s| s.to_string()))
                .unwrap_or_else(|| substate::POS_REJECTED.to_string());
            let message = cmd
                .reason
                .clone()
                .or(r.message.map(|s| s.to_string()))
                .unwrap_or_else(|| format!("the POS refused command #{}", cmd.id));
            let known = intern(&sub);
            Some(Failed {
                substate: known,
                message: if known == sub {
                    message
                } else {
                    format!("{sub}: {message}")
                },
            })
        }
        Status::Review => Some(Failed {
            substate: cmd
                .substate
                .as_deref()
                .map(intern)
                .unwrap_or(substate::POS_REJECTED),
            message: format!(
                "kept as command #{} for reconciliation by staff, not applied: {}",
                cmd.id,
                cmd.reason.as_deref().unwrap_or("")
            ),
        }),
    }
}

/// Map a stored sub-state back to a known constant (the POS may write its own; unknown ones
/// are sent as `POS_REJECTED` with the POS's text in the message).
fn intern(s: &str) -> &'static str {
    substate::known(s).unwrap_or(substate::POS_REJECTED)
}
