//! The subcommands, one file each. `main.rs` reads the global options and the command's name,
//! then hands the rest of the arguments to the command's `main`, which parses its own options
//! (so `expirenza-agent COMMAND --help` prints that command's usage) and does the work.
//!
//! This is the binary's edge: errors are `anyhow` with context, printed once by `main.rs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::config::{Config, SecretNeed, DEFAULT_CONFIG_PATH};
use crate::log;

pub mod check;
pub mod check_online;
pub mod init_mirror;
pub mod journal;
pub mod preview;
pub mod run;
pub mod sign;
pub mod simulate;
pub mod status;

/// One subcommand: its name, a line for the global usage, its own usage, and its entry point.
pub struct Command {
    pub name: &'static str,
    pub summary: &'static str,
    pub usage: &'static str,
    pub main: fn(&mut lexopt::Parser, Common) -> Result<ExitCode>,
}

/// Every subcommand, in the order the global usage lists them.
pub const COMMANDS: &[Command] = &[
    run::COMMAND,
    check::COMMAND,
    preview::COMMAND,
    simulate::COMMAND,
    init_mirror::COMMAND,
    sign::COMMAND,
    journal::COMMAND,
    status::COMMAND,
];

pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// The global usage: every command with its summary.
pub fn usage() -> String {
    let mut s = String::from(
        "expirenza-agent: the POS side of the Expirenza (Shake To Pay) pay-at-table integration\n\n\
         USAGE:\n    expirenza-agent COMMAND [OPTIONS]\n    expirenza-agent COMMAND --help\n    \
         expirenza-agent --version | --help\n\nCOMMANDS:\n",
    );
    for c in COMMANDS {
        s.push_str(&format!("    {:<12} {}\n", c.name, c.summary));
    }
    s.push_str(COMMON_HELP);
    s
}

/// The options every command takes, and the environment overrides.
pub const COMMON_HELP: &str = "
COMMON OPTIONS:
    -c, --config PATH   the config file (default /etc/expirenza-agent/config.toml)
    -v, --verbose       more log lines on stderr (informational lines of one-shot commands)
    -q, --quiet         fewer log lines on stderr
    -h, --help          this command's usage

Environment overrides: EXPIRENZA_RESTO_ID, EXPIRENZA_SECRET_KEY, EXPIRENZA_WS_URL,
EXPIRENZA_CALLBACK_URL, EXPIRENZA_MIRROR. See README.md for every config key and its default.
";

/// Options every command takes, wherever they stand on the command line.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub config: Option<PathBuf>,
    /// `-v` (+1) or `-q` (-1); the command picks its default level.
    pub verbosity: i8,
}

/// `--help` was asked for: `main.rs` prints this usage and exits 0.
#[derive(Debug, thiserror::Error)]
#[error("help requested")]
pub struct HelpRequested(pub String);

/// A command line that cannot be run: `main.rs` prints the message, then the usage, on stderr
/// and exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    pub message: String,
    pub usage: String,
}

/// A [`UsageError`] as an `anyhow` error, for `return Err(usage_error(…))`.
pub fn usage_error(message: impl Into<String>, usage: &str) -> anyhow::Error {
    UsageError {
        message: message.into(),
        usage: usage.into(),
    }
    .into()
}

/// An argument a command does not take itself, detached from the parser (so the parser can
/// still read an option's value): a common option, `--help`, or a mistake.
pub enum OtherArg {
    Config,
    Verbose,
    Quiet,
    Help,
    Unexpected(lexopt::Error),
}

impl From<lexopt::Arg<'_>> for OtherArg {
    fn from(arg: lexopt::Arg<'_>) -> Self {
        use lexopt::prelude::*;
        match arg {
            Short('c') | Long("config") => OtherArg::Config,
            Short('v') | Long("verbose") => OtherArg::Verbose,
            Short('q') | Long("quiet") => OtherArg::Quiet,
            Short('h') | Long("help") => OtherArg::Help,
            other => OtherArg::Unexpected(other.unexpected()),
        }
    }
}

impl Common {
    /// Take an argument the command does not know itself: a common option, `--help`, or a
    /// mistake (named, with the command's usage).
    pub fn other(&mut self, arg: OtherArg, parser: &mut lexopt::Parser, usage: &str) -> Result<()> {
        match arg {
            OtherArg::Config => self.config = Some(parser.value()?.into()),
            OtherArg::Verbose => self.verbosity = self.verbosity.saturating_add(1),
            OtherArg::Quiet => self.verbosity = self.verbosity.saturating_sub(1),
            OtherArg::Help => return Err(HelpRequested(usage.to_string()).into()),
            OtherArg::Unexpected(e) => return Err(usage_error(e.to_string(), usage)),
        }
        Ok(())
    }

    pub fn config_path(&self) -> &Path {
        self.config
            .as_deref()
            .unwrap_or(Path::new(DEFAULT_CONFIG_PATH))
    }

    /// Set the log level: a service logs at info by default; a one-shot command prints its
    /// result on stdout and keeps stderr to warnings unless `-v`.
    pub fn set_log_level(&self, service: bool) {
        log::set_plain(!service);
        let base: i8 = if service { 1 } else { 0 };
        log::set_level(match base + self.verbosity {
            i8::MIN..=-1 => log::Level::Error,
            0 => log::Level::Warn,
            1 => log::Level::Info,
            _ => log::Level::Debug,
        });
    }

    /// The config, with the secret as the command needs it.
    pub fn load_config(&self, need: SecretNeed) -> Result<Config> {
        let path = self.config_path();
        Config::load_with(path, need)
            .with_context(|| format!("loading configuration {}", path.display()))
    }
}
