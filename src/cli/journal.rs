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
expirenza-agent journal [--config PATH] [--since YYYY-MM-DD|unix-secs] [--status S] [--json]
expirenza-agent journal --print-schema

List the journaled commands (payments, splits, orders from the menu, messages) with their
status, for end-of-shift reconciliation, then any request still in the spool (the journal
could not take it; it becomes a review row once it can). Reads the journal only; needs no
secret. Exit status 1 while commands are still pending or claimed, or requests spooled.

OPTIONS:
    --since WHEN    only commands received since WHEN (a date, or Unix seconds)
    --status S      only commands in status S: pending, claimed, applied, rejected, review
    --json          one JSON object (every column of each command, counts per status, and
                    the spooled requests)
    --print-schema  print the journal's SQL schema (docs/journal.md) and exit
";

fn main(parser: &mut lexopt::Parser, mut common: Common) -> Result<ExitCode> {
    use lexopt::prelude::*;
    let (mut since, mut status) = (None, None);
    let (mut json, mut schema) = (false, false);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("since") => since = Some(parser.value()?.string()?),
            Long("status") => status = Some(parser.value()?.string()?),
            Long("json") => json = true,
            Long("print-schema") => schema = true,
            other => common.other(other.into(), parser, USAGE)?,
        }
    }
    common.set_log_level(false);
    if schema {
        print!("{}", crate::journal::SCHEMA_SQL);
        return Ok(ExitCode::SUCCESS);
    }
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
    let journal = cfg.journal_path().exists().then(|| Journal::new(&cfg));
    if journal.is_none() && spooled.records.is_empty() {
        bail!("no journal at {} yet", cfg.journal_path().display());
    }
    let open = if json {
        report::print_json(journal.as_ref(), since_ms, status, &spooled, &mut out)?
    } else {
        let mut open = 0;
        if let Some(journal) = &journal {
            open = report::print(journal, since_ms, status, &mut out)?;
        }
        open + spool::print_listing(&spooled, &mut out)? as u64
    };
    Ok(if open > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
