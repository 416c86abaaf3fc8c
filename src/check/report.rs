//! The mirror part of `check`: what it holds, operation by operation what it serves (its
//! tables and columns, then the operation run against it), whether the answers are kept, and
//! what its rows say ([`audit`]). Rendered as text for a person or as JSON for a script.

use std::io::Write;

use serde::Serialize;

use super::proof;
use crate::config::Config;
use crate::mirror::audit::{self, Finding, Scan, Severity};
use crate::mirror::{check, Mirror, MirrorError};
use crate::ops::Op;

/// Rows of one table read by `check` at most, and requests of one kind made at most
/// (`check --sample N` changes it).
pub const DEFAULT_SAMPLE: u64 = 100_000;

/// Tables whose row counts `check` prints.
const COUNTED: &[&str] = &[
    "halls",
    "tables",
    "orders",
    "order_positions",
    "order_discounts",
    "staff",
    "categories",
    "menu_groups",
    "menu_items",
    "modifiers",
    "group_modifiers",
    "group_modifier_children",
    "menu_item_group_modifiers",
    "menu_item_modifiers",
    "stop_list",
    "terminal_groups",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Served {
    /// Everything it reads is there, and running it met no error.
    Ok,
    /// A core operation lacks tables or columns, or failed when run.
    Fail,
    /// An optional operation lacks tables or columns: the cloud gets FAIL for it.
    NotServed,
}

/// One operation of the report.
#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    pub operation: &'static str,
    pub core: bool,
    pub served: Served,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// What was run against the mirror.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ran: Option<String>,
    /// Errors met running it: `(message, requests that met it)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Failure>,
    /// For an operation that keeps its answers per mirror version: whether it can here, why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub message: String,
    /// Requests that met it.
    pub requests: u64,
    /// The first of them (`table 12`, `open bill …`).
    pub example: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub kept: bool,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableRows {
    pub table: &'static str,
    /// `None`: the mirror has no such table or view.
    pub rows: Option<u64>,
}

/// The whole mirror report.
#[derive(Debug, Clone, Serialize)]
pub struct MirrorReport {
    pub path: String,
    /// The mirror cannot be read at all (missing, locked, not SQLite): nothing else is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    pub sample: u64,
    pub tables: Vec<TableRows>,
    pub operations: Vec<OpReport>,
    pub findings: Vec<Finding>,
    pub scans: Vec<Scan>,
}

impl MirrorReport {
    /// Errors: operations that fail (a core one missing what it reads, or any that failed
    /// when run), the mirror unreadable, and error findings.
    pub fn errors(&self) -> usize {
        self.unreadable.is_some() as usize
            + self
                .operations
                .iter()
                .filter(|o| o.served == Served::Fail)
                .count()
            + self
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count()
    }

    pub fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }
}

/// Reads, runs and checks the mirror of `cfg`; at most `sample` rows per table and requests
/// per kind.
pub fn build(cfg: &Config, sample: u64) -> MirrorReport {
    let mut r = MirrorReport {
        path: cfg.mirror_path.display().to_string(),
        unreadable: None,
        sample,
        tables: Vec::new(),
        operations: Vec::new(),
        findings: Vec::new(),
        scans: Vec::new(),
    };
    let mirror = Mirror::new(&cfg.mirror_path, cfg.mirror.busy_timeout_ms, 1);
    let counts = mirror.with(|c| {
        let mut v = Vec::new();
        for t in COUNTED {
            v.push((*t, check::count(c, t).ok().map(|n| n.max(0) as u64)));
        }
        Ok(v)
    });
    match counts {
        Ok(v) => {
            r.tables = v
                .into_iter()
                .map(|(table, rows)| TableRows { table, rows })
                .collect()
        }
        Err(e @ MirrorError::Missing(_)) => {
            r.unreadable = Some(format!(
                "{e}: create it with `expirenza-agent init-mirror PATH` or point mirror_path at \
                 the POS's mirror"
            ));
            return r;
        }
        Err(e) => {
            r.unreadable = Some(e.to_string());
            return r;
        }
    }
    let mut runnable = Vec::new();
    for &op in Op::ALL {
        let needs = op.mirror_needs();
        if needs.is_empty() {
            continue;
        }
        let missing = match mirror.with(|c| check::missing(c, needs)) {
            Ok(m) => m,
            Err(e) => vec![e.to_string()],
        };
        let served = match (missing.is_empty(), op.is_core()) {
            (true, _) => Served::Ok,
            (false, true) => Served::Fail,
            (false, false) => Served::NotServed,
        };
        let kept = (op.keeps_answers() && missing.is_empty()).then(|| kept(cfg, &mirror, op));
        if missing.is_empty() {
            runnable.push(op);
        }
        r.operations.push(OpReport {
            operation: op.name(),
            core: op.is_core(),
            served,
            missing,
            ran: None,
            errors: Vec::new(),
            kept,
        });
    }
    match proof::prove(cfg, &runnable, sample) {
        Ok(proofs) => {
            for (op, p) in proofs {
                if let Some(o) = r.operations.iter_mut().find(|o| o.operation == op.name()) {
                    o.ran = Some(p.ran);
                    if !p.errors.is_empty() {
                        o.served = Served::Fail;
                    }
                    o.errors = p
                        .errors
                        .into_iter()
                        .map(|(message, requests, example)| Failure {
                            message,
                            requests,
                            example,
                        })
                        .collect();
                }
            }
        }
        Err(e) => r.unreadable = Some(format!("the operations could not be run: {e}")),
    }
    match mirror.with(|c| audit::audit(c, sample)) {
        Ok(a) => {
            r.findings = a.findings;
            r.scans = a.scans;
        }
        Err(e) => r.unreadable = Some(format!("the rows could not be checked: {e}")),
    }
    r
}

fn kept(cfg: &Config, mirror: &Mirror, op: Op) -> Kept {
    if cfg.limits.answer_cache_kib == 0 {
        return Kept {
            kept: false,
            why: "answers are not kept ([limits] answer_cache_kib = 0)".into(),
        };
    }
    match mirror.with(|c| check::not_kept(c, op.mirror_needs())) {
        Ok(None) => Kept {
            kept: true,
            why: "kept per mirror version: every object it reads is a table".into(),
        },
        Ok(Some(why)) => Kept {
            kept: false,
            why: format!("answered fresh every time: {why} (a view may change without a commit)"),
        },
        Err(e) => Kept {
            kept: false,
            why: e.to_string(),
        },
    }
}

/// The report as text, one item per line (details indented below it).
pub fn write_text(r: &MirrorReport, out: &mut dyn Write) -> std::io::Result<()> {
    if let Some(u) = &r.unreadable {
        writeln!(out, "FAIL         {u}")?;
    }
    for t in &r.tables {
        match t.rows {
            Some(n) => writeln!(out, "  table      {:<26} {n} rows", t.table)?,
            None => writeln!(out, "  table      {:<26} missing", t.table)?,
        }
    }
    for o in &r.operations {
        let status = match o.served {
            Served::Ok => "OK".to_string(),
            Served::Fail if o.missing.is_empty() => "FAIL".to_string(),
            Served::Fail => format!("FAIL missing {}", o.missing.join(", ")),
            Served::NotServed => {
                format!("not served (optional): missing {}", o.missing.join(", "))
            }
        };
        writeln!(out, "  op         {:<26} {status}", o.operation)?;
        if let Some(ran) = &o.ran {
            writeln!(out, "               ran: {ran}")?;
        }
        for e in &o.errors {
            writeln!(
                out,
                "               error ({} request(s), e.g. {}): {}",
                e.requests, e.example, e.message
            )?;
        }
        if let Some(k) = &o.kept {
            writeln!(out, "               answers: {}", k.why)?;
        }
    }
    let partial: Vec<String> = r
        .scans
        .iter()
        .filter(|s| !s.all)
        .map(|s| format!("{} (first {} rows)", s.table, s.rows))
        .collect();
    if partial.is_empty() {
        writeln!(out, "  rows       every row checked")?;
    } else {
        writeln!(
            out,
            "  rows       every row checked but in {} (check --sample N reads more)",
            partial.join(", ")
        )?;
    }
    for f in &r.findings {
        let (tag, label) = match f.severity {
            Severity::Error => ("ERROR", "fix"),
            Severity::Warning => ("WARN ", "why"),
        };
        let at = match &f.column {
            Some(c) => format!("{}.{c}", f.table),
            None => f.table.clone(),
        };
        writeln!(out, "{tag}        {at}: {}", f.problem)?;
        writeln!(out, "               {label}: {}", f.fix)?;
    }
    Ok(())
}
