//! `expirenza-agent journal`: the journaled commands and their status, for end-of-shift
//! reconciliation. Reads the journal only; needs no secret.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use super::{Command, Common};
use crate::config::SecretNeed;
use crate::journal::spool::{self, Spool};
use crate::journal::{report, Journal, Status};

pub const COMMAND: Command = Command {
    name: "journal",
    summary: "List journaled commands (payments, splits, orders, messages) and their status.",
    usage: USAGE,
    main,
};

const USAGE: &str = "\
expirenza-agent journal [--config PATH] [--since YYYY-MM-DD|unix-secs] [--status S]

List the journaled commands (payments, splits, orders from the menu, messages) with their
status, for end-of-shift reconciliation, then any request still in the spool (the journal
could not take it; it becomes a review row once it can). Reads the journal only; needs no
secret. Exit status 1 while commands are still pending or claimed, or requests spooled.

OPTIONS:
    --since WHEN    only commands received since WHEN (a date, or Unix seconds)
    --status S      only commands in status S: pending, claimed, applied, rejected, review
";

fn main(parser: &mut lexopt::Parser, mut common: Common) -> Result<ExitCode> {
    use lexopt::prelude::*;
    let (mut since, mut status) = (None, None);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("since") => since = Some(parser.value()?.string()?),
            Long("status") => status = Some(parser.value()?.string()?),
            other => common.other(other.into(), parser, USAGE)?,
        }
    }
    common.set_log_level(false);
    let cfg = common.load_config(SecretNeed::IfAvailable)?;
    let since_ms = match since {
        Some(s) => report::parse_since(&s)?,
        None => 0,
    };
    let status = match status {
        Some(s) => Some(Status::parse(&s).with_context(|| {
            format!("--status {s}: use pending, claimed, applied, rejected or review")
        })?),
        None => None,
    };
    let spool = Spool::new(cfg.spool_path(), cfg.journal.max_spool_bytes);
    let spooled = spool
        .read()
        .with_context(|| format!("reading the spool {}", spool.path().display()))?;
    let mut out = std::io::stdout();
    let mut open = 0;
    if cfg.journal_path().exists() {
        let journal = Journal::new(&cfg);
        open = report::print(&journal, since_ms, status, &mut out)?;
    } else if spooled.records.is_empty() {
        bail!("no journal at {} yet", cfg.journal_path().display());
    }
    open += spool::print_listing(&spooled, &mut out)? as u64;
    Ok(if open > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
