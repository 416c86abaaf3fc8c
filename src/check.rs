//! `expirenza-agent check`: what the mirror can serve, operation by operation (each
//! operation's mirror needs and whether it is core come from the `operations!` table).

use std::io::Write;
use std::path::Path;

use crate::config::Config;
use crate::mirror::{check, Mirror, MirrorError};
use crate::ops::Op;

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

/// Print the mirror report; returns the number of problems.
pub fn report_mirror(cfg: &Config, out: &mut dyn Write) -> std::io::Result<usize> {
    let mirror = Mirror::new(&cfg.mirror_path, cfg.mirror.busy_timeout_ms, 1);
    let counts = mirror.with(|c| {
        let mut v = Vec::new();
        for t in COUNTED {
            v.push((*t, check::count(c, t).ok()));
        }
        Ok(v)
    });
    let counts = match counts {
        Ok(v) => v,
        Err(e @ MirrorError::Missing(_)) => {
            writeln!(out, "FAIL         {e}: create it with `expirenza-agent init-mirror PATH` or point mirror_path at the POS's mirror")?;
            return Ok(1);
        }
        Err(e) => {
            writeln!(out, "FAIL         {e}")?;
            return Ok(1);
        }
    };
    for (t, n) in counts {
        match n {
            Some(n) => writeln!(out, "  table      {t:<26} {n} rows")?,
            None => writeln!(out, "  table      {t:<26} missing")?,
        }
    }
    let mut problems = 0;
    for op in Op::ALL {
        let needs = op.mirror_needs();
        if needs.is_empty() {
            continue;
        }
        match mirror.with(|c| check::missing(c, needs)) {
            Ok(m) if m.is_empty() => writeln!(out, "  op         {:<26} OK", op.name())?,
            Ok(m) if op.is_core() => {
                problems += 1;
                writeln!(
                    out,
                    "  op         {:<26} FAIL missing {}",
                    op.name(),
                    m.join(", ")
                )?;
            }
            Ok(m) => {
                writeln!(
                    out,
                    "  op         {:<26} not served (optional): missing {}",
                    op.name(),
                    m.join(", ")
                )?;
            }
            Err(e) => {
                problems += 1;
                writeln!(out, "  op         {:<26} FAIL {e}", op.name())?;
            }
        }
    }
    Ok(problems)
}

/// A warning when the config file (which may hold the secret) is readable by group or others
/// in a way that exposes it: world-readable is always flagged.
pub fn config_permissions_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    if mode & 0o004 != 0 {
        Some(format!(
            "{} is readable by every user (mode {:o}); it may hold the secret: chmod 0640 (or 0600)",
            path.display(),
            mode & 0o777
        ))
    } else {
        None
    }
}

/// Warnings about the configuration that do not stop the agent (`check` prints them as `WARN`).
pub fn config_warnings(cfg: &Config) -> Vec<String> {
    let mut w = Vec::new();
    if cfg.partner_id.trim().is_empty() {
        w.push(
            "partner_id is empty: versionInfo sends an empty partnerId, which the protocol marks \
             required; set partner_id to the integrator id Expirenza issued"
                .to_string(),
        );
    }
    w
}

/// One line on what is wrong with the mirror for the core operations, or `None` if it serves them.
pub fn mirror_problem(cfg: &Config) -> Option<String> {
    let mirror = Mirror::new(&cfg.mirror_path, cfg.mirror.busy_timeout_ms, 1);
    match mirror.with(|c| check::missing(c, crate::mirror::orders::NEEDS)) {
        Ok(m) if m.is_empty() => None,
        Ok(m) => Some(format!(
            "{} lacks {}",
            cfg.mirror_path.display(),
            m.join(", ")
        )),
        Err(e) => Some(e.to_string()),
    }
}
