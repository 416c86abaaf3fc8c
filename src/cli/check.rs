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
expirenza-agent check [--config PATH] [--online]

Validate the config and the POS mirror and print what was found: each operation and whether
the mirror has what it needs. Exit 0 when nothing is wrong, 1 when something is.

The secret is not needed for the offline checks. On a board it is a credential of the service
(LoadCredential=secret_key:/etc/expirenza-agent/secret_key), out of reach of other processes;
to check it too, run as root with
    sudo CREDENTIALS_DIRECTORY=/etc/expirenza-agent expirenza-agent check --config …

OPTIONS:
    --online    then connect to ws_url with the configured credentials (DNS, TCP, TLS, HTTP
                upgrade, each timed) and reach callback_url's host (DNS, TCP, TLS, and one
                HEAD without credentials to report a redirect; nothing is posted).
                Needs the secret. Exit 0 only when everything passed, the upgrade included.
";

fn main(parser: &mut lexopt::Parser, mut common: Common) -> Result<ExitCode> {
    use lexopt::prelude::*;
    let mut online = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Long("online") => online = true,
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
    let mut problems = 0;
    println!("config       {}", config_path.display());
    println!("resto_id     {}", cfg.resto_id);
    if cfg.secret.is_empty() {
        println!("secret       {}", cfg.secret_source);
        println!(
            "             (a credential of the service is readable only by it: to check it, run as root with\n             \
             CREDENTIALS_DIRECTORY=/etc/expirenza-agent expirenza-agent check --config {})",
            config_path.display()
        );
    } else {
        println!(
            "secret       loaded from {} ({} bytes, not shown)",
            cfg.secret_source,
            cfg.secret.expose().len()
        );
    }
    println!("pos_system   {}", cfg.pos_system);
    println!("ws_url       {}", cfg.ws_url);
    println!("callback_url {}", cfg.callback_url);
    println!("mirror       {}", cfg.mirror_path.display());
    if let Some(w) = crate::check::config_permissions_warning(config_path) {
        println!("WARN         {w}");
    }
    for w in crate::check::config_warnings(&cfg) {
        println!("WARN         {w}");
    }
    problems += crate::check::report_mirror(&cfg, &mut std::io::stdout())?;
    if online && !online_steps(&cfg)? {
        problems += 1;
    }
    if problems > 0 {
        println!("FAIL         {problems} problem(s) found");
        return Ok(ExitCode::from(1));
    }
    println!("OK");
    Ok(ExitCode::SUCCESS)
}

/// `check --online`: the network steps, printed as they end. `Ok(true)` when all passed.
fn online_steps(cfg: &Config) -> Result<bool> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let steps = rt.block_on(super::check_online::run(cfg, &mut std::io::stdout()));
    Ok(super::check_online::passed(&steps))
}
