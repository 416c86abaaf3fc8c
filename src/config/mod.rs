//! Configuration: a TOML file, environment overrides, a systemd credential, and `validate()`.
//!
//! Every key but `resto_id` and the secret is optional and has a documented default here
//! (mirrored in README.md). Unknown keys are refused (`deny_unknown_fields`) so a typo never
//! silently falls back to a default. After loading, [`Config::validate`] checks the things
//! serde cannot: TLS for non-loopback endpoints (the secret travels in the handshake), limits
//! that contradict each other, and the secret's presence.
//!
//! - `mod.rs`: the file as written, the effective [`Config`], loading and environment overrides;
//! - `sections.rs`: one struct per `[section]`, each with its documented defaults;
//! - `validate.rs`: [`Config::validate`] and the endpoint (TLS / loopback) rule;
//! - `endpoint.rs`: [`Endpoint`], the one URL parser (`ws_url`, `callback_url`, a redirect's
//!   `Location`);
//! - `secret_source.rs`: the secret's four sources.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

mod endpoint;
mod secret_source;
mod sections;
mod validate;

pub use endpoint::{is_loopback_host, Endpoint, Scheme, UrlError};
use secret_source::{load_secret, SecretError};
pub use sections::*;
pub use validate::MIN_JOURNAL_BUSY_MS;

/// Whether a command needs the secret. Only what connects or signs does (`run`, `preview`,
/// `check --online`); read-only commands (`check`, `status`, `journal`) run where the secret is
/// out of reach, as it is for a technician when it is a systemd credential of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretNeed {
    Required,
    /// Loaded when it can be read; otherwise the config carries an empty secret and
    /// [`Config::secret_source`] says why (never the value).
    IfAvailable,
}

pub const DEFAULT_CONFIG_PATH: &str = "/etc/expirenza-agent/config.toml";
pub const DEFAULT_WS_URL: &str = "wss://api.shaketopay.com.ua/restaurantEntryPoint";
pub const DEFAULT_CALLBACK_URL: &str = "https://api.shaketopay.com.ua/callback";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/expirenza-agent";
/// Runtime files (the status snapshot): tmpfs, gone after a reboot, never on the SD card. The
/// unit's `RuntimeDirectory=expirenza-agent` creates it.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/expirenza-agent";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The io error is in the message, not a `source`: `{:#}` would print it twice.
    #[error("cannot read config file {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot read the secret from {path}: {err}")]
    SecretFile { path: PathBuf, err: std::io::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The file as written by the integrator (before environment overrides and the secret).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    resto_id: Option<String>,
    secret_key: Option<Secret>,
    secret_key_file: Option<PathBuf>,
    #[serde(default = "default_pos_system")]
    pos_system: String,
    ws_url: Option<String>,
    callback_url: Option<String>,
    mirror_path: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    runtime_dir: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    partner_id: String,
    #[serde(default)]
    link: LinkConfig,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    callback: CallbackConfig,
    #[serde(default)]
    mirror: MirrorConfig,
    #[serde(default)]
    journal: JournalConfig,
    #[serde(default)]
    cache: CacheConfig,
    #[serde(default)]
    compat: CompatConfig,
    #[serde(default)]
    status: StatusConfig,
    #[serde(default)]
    metrics: crate::metrics::MetricsConfig,
}

fn default_pos_system() -> String {
    "expirenza-agent".into()
}

/// The effective configuration, with overrides applied and the secret loaded.
#[derive(Debug, Clone)]
pub struct Config {
    pub resto_id: String,
    pub secret: Secret,
    pub pos_system: String,
    pub ws_url: String,
    pub callback_url: String,
    pub mirror_path: PathBuf,
    pub state_dir: PathBuf,
    /// Runtime files: the status snapshot (default `/run/expirenza-agent`).
    pub runtime_dir: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub partner_id: String,
    pub link: LinkConfig,
    pub limits: Limits,
    pub callback: CallbackConfig,
    pub mirror: MirrorConfig,
    pub journal: JournalConfig,
    pub cache: CacheConfig,
    pub compat: CompatConfig,
    pub status: StatusConfig,
    pub metrics: crate::metrics::MetricsConfig,
    /// Where the secret came from, for `check` (never the secret itself); when it was not
    /// loaded ([`SecretNeed::IfAvailable`]), why not.
    pub secret_source: String,
}

/// Environment as seen by the loader; a trait object so tests need not touch the process env.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

pub struct ProcessEnv;
impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Config {
    /// Load `path`, apply environment overrides, load the secret, validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, SecretNeed::Required)
    }

    /// [`Config::load`], with the secret required or only loaded when it can be read.
    pub fn load_with(path: &Path, need: SecretNeed) -> Result<Config, ConfigError> {
        // The text may hold `secret_key = "…"`: wiped once parsed.
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|err| {
            ConfigError::Read {
                path: path.into(),
                err,
            }
        })?);
        Self::from_toml_with(&text, path, &ProcessEnv, need)
    }

    pub fn from_toml(text: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        Self::from_toml_with(text, path, env, SecretNeed::Required)
    }

    pub fn from_toml_with(
        text: &str,
        path: &Path,
        env: &dyn Env,
        need: SecretNeed,
    ) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: parse_error_without_source(&e, text),
        })?;
        Self::from_file_config(file, env, need)
    }

    fn from_file_config(
        f: FileConfig,
        env: &dyn Env,
        need: SecretNeed,
    ) -> Result<Config, ConfigError> {
        let resto_id = env
            .var("EXPIRENZA_RESTO_ID")
            .or(f.resto_id)
            .unwrap_or_default();
        let (secret, secret_source) = match load_secret(&f.secret_key, &f.secret_key_file, env) {
            Ok(found) => found,
            Err(SecretError::Unavailable(why)) if need == SecretNeed::IfAvailable => {
                let why = match why {
                    ConfigError::Invalid(m) => m,
                    other => other.to_string(),
                };
                (Secret::new(""), format!("not loaded here: {why}"))
            }
            Err(e) => return Err(e.into()),
        };
        let state_dir = f
            .state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let mirror_path = env
            .var("EXPIRENZA_MIRROR")
            .map(PathBuf::from)
            .or(f.mirror_path)
            .unwrap_or_else(|| state_dir.join("mirror.sqlite"));
        let cfg = Config {
            resto_id,
            secret,
            pos_system: f.pos_system,
            ws_url: env
                .var("EXPIRENZA_WS_URL")
                .or(f.ws_url)
                .unwrap_or_else(|| DEFAULT_WS_URL.into()),
            callback_url: env
                .var("EXPIRENZA_CALLBACK_URL")
                .or(f.callback_url)
                .unwrap_or_else(|| DEFAULT_CALLBACK_URL.into()),
            mirror_path,
            state_dir,
            runtime_dir: f
                .runtime_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR)),
            ca_file: f.ca_file,
            partner_id: f.partner_id,
            link: f.link,
            limits: f.limits,
            callback: f.callback,
            mirror: f.mirror,
            journal: f.journal,
            cache: f.cache,
            compat: f.compat,
            status: f.status,
            metrics: f.metrics,
            secret_source,
        };
        cfg.validate_with(need)?;
        Ok(cfg)
    }

    /// A config for tests and the sandbox: loopback endpoints, fast timings.
    pub fn for_loopback(
        resto_id: &str,
        secret: &str,
        ws_url: &str,
        callback_url: &str,
        mirror: &Path,
        state_dir: &Path,
    ) -> Config {
        Config {
            resto_id: resto_id.into(),
            secret: Secret::new(secret),
            pos_system: default_pos_system(),
            ws_url: ws_url.into(),
            callback_url: callback_url.into(),
            mirror_path: mirror.into(),
            state_dir: state_dir.into(),
            runtime_dir: state_dir.into(),
            ca_file: None,
            partner_id: String::new(),
            link: LinkConfig {
                backoff_floor_ms: 200,
                backoff_cap_ms: 2_000,
                ..LinkConfig::default()
            },
            limits: Limits::default(),
            callback: CallbackConfig {
                retry_initial_ms: 50,
                retry_max_ms: 500,
                ..CallbackConfig::default()
            },
            mirror: MirrorConfig::default(),
            journal: JournalConfig {
                poll_interval_ms: 20,
                ..JournalConfig::default()
            },
            cache: CacheConfig::default(),
            compat: CompatConfig::default(),
            status: StatusConfig::default(),
            metrics: Default::default(),
            secret_source: "inline".into(),
        }
    }

    pub fn journal_path(&self) -> PathBuf {
        self.journal
            .path
            .clone()
            .unwrap_or_else(|| self.state_dir.join("journal.sqlite"))
    }
    /// The spool: requests the journal could not take, kept until they can be moved into it.
    pub fn spool_path(&self) -> PathBuf {
        self.state_dir.join("journal.spool")
    }
    /// How long a command may wait for the journal's write lock ([`JournalConfig::busy_timeout_ms`]).
    pub fn journal_busy_timeout(&self) -> Duration {
        Duration::from_millis(self.journal.busy_timeout_ms(&self.callback))
    }
    pub fn status_path(&self) -> PathBuf {
        self.status
            .path
            .clone()
            .unwrap_or_else(|| self.runtime_dir.join("status"))
    }
    pub fn callback_deadline(&self) -> Duration {
        Duration::from_secs(self.callback.deadline_secs)
    }
}

/// A TOML error as `line L, column C: <message>`, without the source excerpt that toml's
/// `Display` adds: that excerpt is the offending line, which may be `secret_key = "…"`.
fn parse_error_without_source(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {col}: {msg}")
        }
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests;
