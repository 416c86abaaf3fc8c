//! The `expirenza-agent` command: reads the global options and the command's name, and hands
//! the rest to the command (`src/cli/`, one file each).

#![deny(unsafe_code)]

use std::process::ExitCode;

use expirenza_agent::cli::{self, Common, HelpRequested, UsageError};

/// The static builds' allocator (see Cargo.toml): dlmalloc returns freed memory to the system
/// (trimmed segments, unmapped large blocks), where the libc they link keeps it.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            if let Some(HelpRequested(usage)) = e.downcast_ref() {
                print!("{usage}");
                return ExitCode::SUCCESS;
            }
            if let Some(UsageError { message, usage }) = e.downcast_ref() {
                eprint!("error: {message}\n\n{usage}");
            } else {
                // `{:#}` prints the context chain on one line; no error here carries the secret.
                expirenza_agent::log_error!("{e:#}");
            }
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut common = Common::default();
    // Plain error lines until a command says otherwise (`run` logs for journald).
    expirenza_agent::log::set_plain(true);
    // Options before the command's name: the common ones, --help and --version.
    let name = loop {
        match parser.next()? {
            None => {
                eprint!("{}", cli::usage());
                return Ok(ExitCode::from(2));
            }
            Some(Short('h') | Long("help")) => {
                print!("{}", cli::usage());
                return Ok(ExitCode::SUCCESS);
            }
            Some(Short('V') | Long("version")) => {
                println!("expirenza-agent {}", env!("CARGO_PKG_VERSION"));
                return Ok(ExitCode::SUCCESS);
            }
            Some(Value(v)) => break v.string()?,
            Some(other) => common.other(other.into(), &mut parser, &cli::usage())?,
        }
    };
    match cli::find(&name) {
        Some(cmd) => (cmd.main)(&mut parser, common),
        None => Err(cli::usage_error(
            format!("unknown command '{name}'"),
            &cli::usage(),
        )),
    }
}
