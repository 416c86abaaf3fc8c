//! `expirenza-agent status`: the running agent's state, from the file it rewrites in
//! `runtime_dir`. Needs no secret.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::{Command, Common};
use crate::config::{SecretNeed, StatusConfig, DEFAULT_RUNTIME_DIR};
use crate::status;

pub const COMMAND: Command = Command {
    name: "status",
    summary: "Print the running agent's state; exit 0 when healthy, 1 when not.",
    usage: USAGE,
    main,
};

const USAGE: &str = "\
expirenza-agent status [--config PATH]

Print the running agent's state from the file it rewrites every few seconds
(<runtime_dir>/status): link, last connect and disconnect, operations in the last hour,
journal backlog. \"stopped\" when the process the file names has exited (the file keeps what
it last wrote). Exit 0 when healthy, 1 when not (stopped included). Needs no secret.
";

fn main(parser: &mut lexopt::Parser, mut common: Common) -> Result<ExitCode> {
    while let Some(arg) = parser.next()? {
        common.other(arg.into(), parser, USAGE)?;
    }
    common.set_log_level(false);
    // The file the running agent writes, from its config; without a loadable config (a user
    // who may not read it), the default runtime path, said so on stderr.
    let (path, interval) = match common.load_config(SecretNeed::IfAvailable) {
        Ok(cfg) => (cfg.status_path(), cfg.status.write_interval_secs),
        Err(e) => {
            let p = Path::new(DEFAULT_RUNTIME_DIR).join("status");
            eprintln!(
                "note: {e:#}; reading the default status file {}",
                p.display()
            );
            (p, StatusConfig::default().write_interval_secs)
        }
    };
    let st = status::read(&path)?;
    let now = status::now_unix();
    let process = status::process::of(st.pid, st.pid_start);
    print!("{}", status::render(&st, now, &process));
    if matches!(process, status::Process::Gone(_)) {
        return Ok(ExitCode::from(1));
    }
    // The same rule `render` printed; stale means the agent is gone or its event loop is stuck.
    let stale_after = status::DEFAULT_STALE_AFTER_SECS.max(interval * 3);
    Ok(match status::health(&st, now, stale_after) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    })
}
