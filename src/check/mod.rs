//! `expirenza-agent check`: what the mirror can serve, operation by operation.
//!
//! - `report.rs`: the mirror report: row counts; each operation's tables and columns (its
//!   needs and whether it is core come from the `operations!` table), then the operation run
//!   against the mirror (`proof.rs`) and whether its answers can be kept; the rows checked
//!   table by table and column by column (`mirror::audit`); as text or JSON;
//! - `proof.rs`: running the operations read-only;
//! - here: the config warnings, and the one-line mirror problem `status`-like callers print.

pub mod proof;
pub mod report;

use std::io::Write;
use std::path::Path;

use crate::config::Config;
use crate::mirror::{check, Mirror};

/// Print the mirror report as text; returns the number of errors (warnings are not counted).
pub fn report_mirror(cfg: &Config, out: &mut dyn Write) -> std::io::Result<usize> {
    let r = report::build(cfg, report::DEFAULT_SAMPLE);
    report::write_text(&r, out)?;
    Ok(r.errors())
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
