//! `expirenza-agent check [--online]`: the config and the POS mirror, what works and what is
//! missing; with `--online`, the network path to the cloud too.

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::{Command, Common};
use crate::config::{Config, SecretNeed};

pub const COMMAND: Command = Command {
    name: "check",
    summary: "Validate the config and the POS mirror; --online: the path to the cloud too.",
    usage: USAGE,
    main,
};

const USAGE: &str = "\
expirenza-agent check [--config PATH] [--online] [--strict] [--json] [--sample N]

Validate the config and prove the POS mirror, operation by operation: each operation's
tables and columns, then the operation itself run read-only against the mirror (getBill for
every table and every open bill), whether its answers can be kept, and every row checked
for what would fail or answer wrong (storage classes, states, dates, negative sums,
duplicate table numbers, bills and lines that point at nothing), each with its fix; and
what looks wrong (totals that do not add up, quantities that look like units), with why.

Exit 0 when nothing is wrong (warnings allowed), 1 on any error (or, with --strict, any
warning), 2 when the config cannot be loaded.

The secret is not needed for the offline checks. On a board it is a credential of the service
(LoadCredential=secret_key:/etc/expirenza-agent/secret_key), out of reach of other processes;
to check it too, run as root with
    sudo CREDENTIALS_DIRECTORY=/etc/expirenza-agent expirenza-agent check --config …

OPTIONS:
    --online    then connect to ws_url with the configured credentials (DNS, TCP, TLS, HTTP
                upgrade, each timed) and reach callback_url's host (DNS, TCP, TLS, and one
                HEAD without credentials to report a redirect; nothing is posted).
                Needs the secret. Exit 0 only when everything passed, the upgrade included.
    --strict    warnings fail too (exit 1)
    --json      print one JSON object (the same findings) instead of the text report
    --sample N  read at most N rows of each table and make at most N requests of each kind
                (default 100000; the report says where it did not read everything)
";

fn main(parser: &mut lexopt::Parser, mut common: Common) -> Result<ExitCode> {
    use lexopt::prelude::*;
    let (mut online, mut strict, mut json) = (false, false, false);
    let mut sample = crate::check::report::DEFAULT_SAMPLE;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("online") => online = true,
            Long("strict") => strict = true,
            Long("json") => json = true,
            Long("sample") => {
                let v = parser.value()?.string()?;
                sample = match v.parse::<u64>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        return Err(super::usage_error(
                            format!("--sample wants a number of rows above 0, got {v:?}"),
                            USAGE,
                        ))
                    }
                };
            }
            other => common.other(other.into(), parser, USAGE)?,
        }
    }
    common.set_log_level(false);
    let need = if online {
        SecretNeed::Required
    } else {
        SecretNeed::IfAvailable
    };
    let cfg = common.load_config(need)?;
    let config_path = common.config_path();
    let mut config_warnings: Vec<String> = crate::check::config_permissions_warning(config_path)
        .into_iter()
        .collect();
    config_warnings.extend(crate::check::config_warnings(&cfg));
    let secret = if cfg.secret.is_empty() {
        cfg.secret_source.to_string()
    } else {
        format!(
            "loaded from {} ({} bytes, not shown)",
            cfg.secret_source,
            cfg.secret.expose().len()
        )
    };
    let mirror = crate::check::report::build(&cfg, sample);
    if json {
        let steps = if online {
            Some(online_steps(&cfg, &mut std::io::sink())?)
        } else {
            None
        };
        let online_failed = steps
            .as_ref()
            .is_some_and(|s| !super::check_online::passed(s));
        let errors = mirror.errors() + online_failed as usize;
        let warnings = mirror.warnings() + config_warnings.len();
        let code = exit_code(errors, warnings, strict);
        let report = serde_json::json!({
            "config": {
                "path": config_path.display().to_string(),
                "resto_id": cfg.resto_id,
                "secret": secret,
                "pos_system": cfg.pos_system,
                "ws_url": cfg.ws_url,
                "callback_url": cfg.callback_url,
                "warnings": config_warnings,
            },
            "mirror": mirror,
            "online": steps.map(|s| s.iter().map(|s| serde_json::json!({
                "step": s.name,
                "ok": s.ok,
                "ms": s.took.as_millis() as u64,
                "detail": s.detail,
            })).collect::<Vec<_>>()),
            "errors": errors,
            "warnings": warnings,
            "strict": strict,
            "result": result_word(errors, warnings),
            "exit": code,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::from(code));
    }
    println!("config       {}", config_path.display());
    println!("resto_id     {}", cfg.resto_id);
    println!("secret       {secret}");
    if cfg.secret.is_empty() {
        println!(
            "             (a credential of the service is readable only by it: to check it, run as root with\n             \
             CREDENTIALS_DIRECTORY=/etc/expirenza-agent expirenza-agent check --config {})",
            config_path.display()
        );
    }
    println!("pos_system   {}", cfg.pos_system);
    println!("ws_url       {}", cfg.ws_url);
    println!("callback_url {}", cfg.callback_url);
    println!("mirror       {}", cfg.mirror_path.display());
    for w in &config_warnings {
        println!("WARN         {w}");
    }
    crate::check::report::write_text(&mirror, &mut std::io::stdout())?;
    let mut errors = mirror.errors();
    if online && !super::check_online::passed(&online_steps(&cfg, &mut std::io::stdout())?) {
        errors += 1;
    }
    let warnings = mirror.warnings() + config_warnings.len();
    let code = exit_code(errors, warnings, strict);
    match (errors, warnings) {
        (0, 0) => println!("OK"),
        (0, w) if strict => println!("FAIL         {w} warning(s) found (--strict)"),
        (0, w) => println!("OK           with {w} warning(s)"),
        (e, 0) => println!("FAIL         {e} problem(s) found"),
        (e, w) => println!("FAIL         {e} problem(s) and {w} warning(s) found"),
    }
    Ok(ExitCode::from(code))
}

/// 1 on any error, or any warning with `--strict`; else 0.
fn exit_code(errors: usize, warnings: usize, strict: bool) -> u8 {
    u8::from(errors > 0 || (strict && warnings > 0))
}

fn result_word(errors: usize, warnings: usize) -> &'static str {
    match (errors, warnings) {
        (0, 0) => "ok",
        (0, _) => "warnings",
        _ => "fail",
    }
}

/// `check --online`: the network steps, printed to `out` as they end.
fn online_steps<W: std::io::Write>(
    cfg: &Config,
    out: &mut W,
) -> Result<Vec<super::check_online::Step>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(rt.block_on(super::check_online::run(cfg, out)))
}
