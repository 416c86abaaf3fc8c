//! Configuration: a TOML file, environment overrides, a systemd credential, and `validate()`.
//!
//! Every key but `resto_id` and the secret is optional and has a documented default here
//! (mirrored in README.md). Unknown keys are refused (`deny_unknown_fields`) so a typo never
//! silently falls back to a default. After loading, [`Config::validate`] checks the things
//! serde cannot: TLS for non-loopback endpoints (the secret travels in the handshake), limits
//! that contradict each other, and the secret's presence.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/expirenza-agent/config.toml";
pub const DEFAULT_WS_URL: &str = "wss://api.shaketopay.com.ua/restaurantEntryPoint";
pub const DEFAULT_CALLBACK_URL: &str = "https://api.shaketopay.com.ua/callback";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/expirenza-agent";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot read the secret from {path}: {source}")]
    SecretFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The file as written by the integrator (before environment overrides and the secret).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    resto_id: Option<String>,
    secret_key: Option<String>,
    secret_key_file: Option<PathBuf>,
    #[serde(default = "default_pos_system")]
    pos_system: String,
    ws_url: Option<String>,
    callback_url: Option<String>,
    mirror_path: Option<PathBuf>,
    state_dir: Option<PathBuf>,
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
}

fn default_pos_system() -> String {
    "expirenza-agent".into()
}

/// WebSocket keep-alive and reconnect policy (`[link]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// Our WebSocket ping cadence. Default 15 s (protocol §2.1).
    pub ping_interval_secs: u64,
    /// The link is dead when nothing (pong or any frame) arrived for this long. Default 90 s.
    pub dead_after_secs: u64,
    /// Also send the text frame `Resto <RESTO_ID> ping`, as the reference clients do. Default true.
    pub app_ping: bool,
    /// Cadence of the text ping. Default 15 s.
    pub app_ping_interval_secs: u64,
    /// TCP + TLS + WebSocket handshake timeout. Default 10 s.
    pub connect_timeout_secs: u64,
    /// No two connection attempts closer than this (protocol asks for 15 s). Default 15 000 ms.
    pub backoff_floor_ms: u64,
    /// Upper bound of the exponential backoff. Default 300 000 ms (5 min).
    pub backoff_cap_ms: u64,
    /// A link that stayed up this long resets the backoff. Default 60 s.
    pub backoff_reset_after_secs: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            ping_interval_secs: 15,
            dead_after_secs: 90,
            app_ping: true,
            app_ping_interval_secs: 15,
            connect_timeout_secs: 10,
            backoff_floor_ms: 15_000,
            backoff_cap_ms: 300_000,
            backoff_reset_after_secs: 60,
        }
    }
}

/// Caps on everything that could grow (`[limits]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket message accepted. Default 256 KiB.
    pub max_message_bytes: usize,
    /// Largest WebSocket frame accepted. Default 256 KiB.
    pub max_frame_bytes: usize,
    /// Cap of the WebSocket write buffer. Default 64 KiB.
    pub max_write_buffer_bytes: usize,
    /// Largest callback body; bigger answers are refused with a logged error. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Operations processed at once. Default 8.
    pub max_in_flight: usize,
    /// Operations waiting for a slot; past this, requests are dropped with a log line. Default 256.
    pub max_queue: usize,
    /// Graceful-shutdown bound for in-flight work. Default 10 s.
    pub shutdown_grace_secs: u64,
    /// Most mirror rows read for one answer (bills, positions, ...). Default 50 000.
    pub max_rows: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 256 * 1024,
            max_frame_bytes: 256 * 1024,
            max_write_buffer_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            max_in_flight: 8,
            max_queue: 256,
            shutdown_grace_secs: 10,
            max_rows: 50_000,
        }
    }
}

/// Callback delivery (`[callback]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbackConfig {
    /// Per-attempt timeout (connect + send + response). Default 10 s.
    pub attempt_timeout_secs: u64,
    /// Give up this long after the request arrived (protocol: 80 s). Default 80 s.
    pub deadline_secs: u64,
    /// First retry delay after a network error or 5xx; doubles up to `retry_max_ms`. Default 500 ms.
    pub retry_initial_ms: u64,
    /// Largest retry delay. Default 8 000 ms.
    pub retry_max_ms: u64,
    /// Largest error body read back from the cloud for the log. Default 4 KiB.
    pub max_response_bytes: usize,
}

impl Default for CallbackConfig {
    fn default() -> Self {
        CallbackConfig {
            attempt_timeout_secs: 10,
            deadline_secs: 80,
            retry_initial_ms: 500,
            retry_max_ms: 8_000,
            max_response_bytes: 4096,
        }
    }
}

/// The read-only POS mirror (`[mirror]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MirrorConfig {
    /// SQLite busy timeout while a POS writer holds the lock. Default 2 000 ms.
    pub busy_timeout_ms: u64,
    /// Open read connections kept (one per in-flight operation at most). Default 4.
    pub max_connections: usize,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            busy_timeout_ms: 2_000,
            max_connections: 4,
        }
    }
}

/// How the POS acknowledges journaled commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckMode {
    /// Wait for the POS to mark the command applied or rejected (default).
    Wait,
    /// The journal row itself is the record: answer SUCCESS once it is durable. Applies to
    /// payBill only; splitOrder and createOrderOnTable always wait, because their answer is
    /// built from what the POS did.
    None,
}

/// The durable command journal (`[journal]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Journal database. Default `<state_dir>/journal.sqlite`.
    pub path: Option<PathBuf>,
    /// How long to wait for the POS to apply a command. Default 60 s; must be below the callback deadline.
    pub pos_ack_timeout_secs: u64,
    /// Poll interval while waiting for the POS. Default 200 ms.
    pub poll_interval_ms: u64,
    /// `wait` (default) or `none`.
    pub ack_mode: AckMode,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            path: None,
            pos_ack_timeout_secs: 60,
            poll_interval_ms: 200,
            ack_mode: AckMode::Wait,
        }
    }
}

/// The ORDERS_CACHE webhook (`[cache]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Push open orders every `interval_secs`. Default false.
    pub enabled: bool,
    /// Default 5 s (protocol §5.16; the cloud treats the cache as stale after 15 s).
    pub interval_secs: u64,
    /// Most open orders tracked for change detection. Default 2 000.
    pub max_tracked_orders: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            interval_secs: 5,
            max_tracked_orders: 2_000,
        }
    }
}

/// `users[].roles` shape: the protocol shows both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolesForm {
    String,
    Array,
}

/// Choices where the protocol reference is [inferred] (`[compat]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompatConfig {
    /// `"string"` (default, `"Офіціант, Кур'єр"`) or `"array"`.
    pub users_roles: RolesForm,
    /// Send versionInfo unprompted after each connect. Default false.
    pub version_info_on_connect: bool,
    /// `restaurantLicenseDateEnd` in versionInfo (`yyyy.MM.dd`). Default "2099.12.31".
    pub license_date_end: String,
}

impl Default for CompatConfig {
    fn default() -> Self {
        CompatConfig {
            users_roles: RolesForm::String,
            version_info_on_connect: false,
            license_date_end: "2099.12.31".into(),
        }
    }
}

/// The status file read by `expirenza-agent status` (`[status]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusConfig {
    /// Status file. Default `<state_dir>/status`.
    pub path: Option<PathBuf>,
    /// How often the running agent rewrites it. Default 5 s.
    pub write_interval_secs: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            path: None,
            write_interval_secs: 5,
        }
    }
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
    /// Where the secret came from, for `check` (never the secret itself).
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text, path, &ProcessEnv)
    }

    pub fn from_toml(text: &str, path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: parse_error_without_source(&e, text),
        })?;
        Self::from_file_config(file, env)
    }

    fn from_file_config(f: FileConfig, env: &dyn Env) -> Result<Config, ConfigError> {
        let resto_id = env
            .var("EXPIRENZA_RESTO_ID")
            .or(f.resto_id)
            .unwrap_or_default();
        let (secret, secret_source) = load_secret(&f.secret_key, &f.secret_key_file, env)?;
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
            secret_source,
        };
        cfg.validate()?;
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
            secret_source: "inline".into(),
        }
    }

    pub fn journal_path(&self) -> PathBuf {
        self.journal
            .path
            .clone()
            .unwrap_or_else(|| self.state_dir.join("journal.sqlite"))
    }
    pub fn status_path(&self) -> PathBuf {
        self.status
            .path
            .clone()
            .unwrap_or_else(|| self.state_dir.join("status"))
    }
    pub fn callback_deadline(&self) -> Duration {
        Duration::from_secs(self.callback.deadline_secs)
    }

    /// Checks that serde cannot express. Every message names the key to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.resto_id.trim().is_empty() {
            return bad("resto_id is required (or set EXPIRENZA_RESTO_ID)".into());
        }
        if self.resto_id.contains(':') || self.resto_id.chars().any(char::is_control) {
            return bad("resto_id must not contain ':' or control characters (it is the Basic-auth user name)".into());
        }
        if self.secret.is_empty() {
            return bad("the secret key is empty".into());
        }
        if self.pos_system.is_empty()
            || !self
                .pos_system
                .chars()
                .all(|c| c.is_ascii_graphic() && c != ';' && c != ',')
        {
            return bad(
                "pos_system must be a non-empty cookie value (printable ASCII without ';' or ',')"
                    .into(),
            );
        }
        check_endpoint("ws_url", &self.ws_url, "wss", "ws")?;
        check_endpoint("callback_url", &self.callback_url, "https", "http")?;
        let l = &self.link;
        if l.ping_interval_secs == 0 || l.dead_after_secs <= l.ping_interval_secs {
            return bad(
                "[link] dead_after_secs must be greater than ping_interval_secs (> 0)".into(),
            );
        }
        if l.connect_timeout_secs == 0 || l.app_ping_interval_secs == 0 {
            return bad(
                "[link] connect_timeout_secs and app_ping_interval_secs must be > 0".into(),
            );
        }
        if l.backoff_cap_ms < l.backoff_floor_ms {
            return bad("[link] backoff_cap_ms must be >= backoff_floor_ms".into());
        }
        let m = &self.limits;
        if m.max_in_flight == 0 || m.max_in_flight > 1024 {
            return bad("[limits] max_in_flight must be between 1 and 1024".into());
        }
        if m.max_queue == 0 || m.max_queue > 100_000 {
            return bad("[limits] max_queue must be between 1 and 100000".into());
        }
        if m.max_frame_bytes < 1024
            || m.max_message_bytes < m.max_frame_bytes
            || m.max_message_bytes > 64 << 20
        {
            return bad(
                "[limits] need 1 KiB <= max_frame_bytes <= max_message_bytes <= 64 MiB".into(),
            );
        }
        if m.max_rows == 0 {
            return bad("[limits] max_rows must be > 0".into());
        }
        if m.max_body_bytes < 1024 || m.max_body_bytes > 64 << 20 {
            return bad("[limits] max_body_bytes must be between 1 KiB and 64 MiB".into());
        }
        let c = &self.callback;
        if c.attempt_timeout_secs == 0
            || c.deadline_secs < c.attempt_timeout_secs
            || c.deadline_secs > 80
        {
            return bad("[callback] need 0 < attempt_timeout_secs <= deadline_secs <= 80 (the cloud's window)".into());
        }
        if c.retry_initial_ms == 0 || c.retry_max_ms < c.retry_initial_ms {
            return bad("[callback] need 0 < retry_initial_ms <= retry_max_ms".into());
        }
        if self.journal.pos_ack_timeout_secs == 0
            || self.journal.pos_ack_timeout_secs + 5 > c.deadline_secs
        {
            return bad(format!(
                "[journal] pos_ack_timeout_secs must be > 0 and at least 5 s below [callback] deadline_secs ({})",
                c.deadline_secs
            ));
        }
        if self.journal.poll_interval_ms == 0 {
            return bad("[journal] poll_interval_ms must be > 0".into());
        }
        if self.cache.interval_secs == 0 || self.cache.interval_secs > 14 {
            return bad("[cache] interval_secs must be between 1 and 14 (the cloud marks the cache stale after 15 s)".into());
        }
        if self.cache.max_tracked_orders == 0 {
            return bad("[cache] max_tracked_orders must be > 0".into());
        }
        if self.mirror.max_connections == 0 || self.mirror.max_connections > 64 {
            return bad("[mirror] max_connections must be between 1 and 64".into());
        }
        if self.status.write_interval_secs == 0 {
            return bad("[status] write_interval_secs must be > 0".into());
        }
        Ok(())
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

/// Secret sources, first match wins: `EXPIRENZA_SECRET_KEY`, the systemd credential
/// `$CREDENTIALS_DIRECTORY/secret_key`, `secret_key_file`, `secret_key`.
fn load_secret(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    env: &dyn Env,
) -> Result<(Secret, String), ConfigError> {
    if inline.is_some() && file.is_some() {
        return Err(ConfigError::Invalid(
            "set either secret_key or secret_key_file, not both".into(),
        ));
    }
    if let Some(s) = env.var("EXPIRENZA_SECRET_KEY") {
        return Ok((
            Secret::new(s.trim()),
            "environment EXPIRENZA_SECRET_KEY".into(),
        ));
    }
    if let Some(dir) = env.var("CREDENTIALS_DIRECTORY") {
        let p = Path::new(&dir).join("secret_key");
        if p.exists() {
            return Ok((
                read_secret_file(&p)?,
                format!("systemd credential {}", p.display()),
            ));
        }
    }
    if let Some(p) = file {
        return Ok((read_secret_file(p)?, format!("file {}", p.display())));
    }
    if let Some(s) = inline {
        return Ok((Secret::new(s.trim()), "config secret_key".into()));
    }
    Err(ConfigError::Invalid(
        "no secret: set secret_key or secret_key_file, EXPIRENZA_SECRET_KEY, or a systemd credential 'secret_key'".into(),
    ))
}

fn read_secret_file(p: &Path) -> Result<Secret, ConfigError> {
    let meta = std::fs::metadata(p).map_err(|source| ConfigError::SecretFile {
        path: p.into(),
        source,
    })?;
    if meta.len() > 4096 {
        return Err(ConfigError::Invalid(format!(
            "secret file {} is larger than 4 KiB",
            p.display()
        )));
    }
    let s = std::fs::read_to_string(p).map_err(|source| ConfigError::SecretFile {
        path: p.into(),
        source,
    })?;
    Ok(Secret::new(s.trim()))
}

/// Parsed endpoint pieces, enough for the loopback rule.
pub struct Endpoint<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
}

pub fn parse_endpoint(url: &str) -> Option<Endpoint<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None; // credentials in URLs are refused: the secret has its own place
    }
    let host = if let Some(r) = authority.strip_prefix('[') {
        r.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.is_empty() {
        return None;
    }
    Some(Endpoint { scheme, host })
}

pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// `scheme://user:pass@host/…` → `scheme://<redacted>@host/…`: a URL refused for carrying
/// credentials must not print them in the error.
fn redact_userinfo(url: &str) -> String {
    let Some(i) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[i + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => format!("{}://<redacted>{}", &url[..i], &rest[at..]),
        None => url.to_string(),
    }
}

fn check_endpoint(key: &str, url: &str, tls: &str, plain: &str) -> Result<(), ConfigError> {
    let Some(ep) = parse_endpoint(url) else {
        return Err(ConfigError::Invalid(format!(
            "{key} is not a valid URL: {}",
            redact_userinfo(url)
        )));
    };
    let scheme = ep.scheme.to_ascii_lowercase();
    if scheme == tls {
        return Ok(());
    }
    if scheme == plain {
        if is_loopback_host(ep.host) {
            return Ok(());
        }
        return Err(ConfigError::Invalid(format!(
            "{key} uses plain {plain}:// to the non-loopback host '{}': the secret travels with every connection, \
             so only {tls}:// is allowed there ({plain}:// is for 127.0.0.1, ::1 and localhost only)",
            ep.host
        )));
    }
    Err(ConfigError::Invalid(format!(
        "{key} must start with {tls}:// (got '{}://')",
        ep.scheme
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct MapEnv(HashMap<&'static str, String>);
    impl Env for MapEnv {
        fn var(&self, key: &str) -> Option<String> {
            self.0.get(key).cloned()
        }
    }
    fn env(pairs: &[(&'static str, &str)]) -> MapEnv {
        MapEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }
    fn load(text: &str, e: &MapEnv) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"), e)
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load("resto_id = \"r1\"\nsecret_key = \"s\"\n", &env(&[])).unwrap();
        assert_eq!(c.ws_url, DEFAULT_WS_URL);
        assert_eq!(c.callback_url, DEFAULT_CALLBACK_URL);
        assert_eq!(c.link.ping_interval_secs, 15);
        assert_eq!(c.limits.max_message_bytes, 256 * 1024);
        assert_eq!(c.limits.max_body_bytes, 1024 * 1024);
        assert_eq!(c.limits.max_in_flight, 8);
        assert_eq!(c.journal.pos_ack_timeout_secs, 60);
        assert_eq!(
            c.mirror_path,
            Path::new(DEFAULT_STATE_DIR).join("mirror.sqlite")
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = load(
            "resto_id = \"r1\"\nsecret_key = \"s\"\nws_ulr = \"x\"\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("ws_ulr"), "{e}");
        let e = load(
            "resto_id = \"r1\"\nsecret_key = \"s\"\n[link]\nping_secs = 1\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("ping_secs"), "{e}");
    }

    #[test]
    fn plaintext_only_to_loopback() {
        let base = "resto_id = \"r1\"\nsecret_key = \"s\"\n";
        for ok in [
            "ws://127.0.0.1:9/x",
            "ws://localhost:9/x",
            "ws://[::1]:9/x",
            "wss://example.com/x",
        ] {
            load(&format!("{base}ws_url = \"{ok}\"\n"), &env(&[])).unwrap();
        }
        let e = load(&format!("{base}ws_url = \"ws://10.0.0.5/x\"\n"), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("non-loopback"), "{e}");
        let e = load(
            &format!("{base}callback_url = \"http://api.example.com/cb\"\n"),
            &env(&[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
        let e = load(&format!("{base}callback_url = \"ftp://x/cb\"\n"), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("callback_url"), "{e}");
    }

    #[test]
    fn environment_overrides_and_secret_sources() {
        let e = env(&[
            ("EXPIRENZA_RESTO_ID", "env-resto"),
            ("EXPIRENZA_SECRET_KEY", "env-secret"),
            ("EXPIRENZA_WS_URL", "ws://127.0.0.1:1/ws"),
            ("EXPIRENZA_CALLBACK_URL", "http://127.0.0.1:2/callback"),
            ("EXPIRENZA_MIRROR", "/tmp/m.sqlite"),
        ]);
        let c = load("resto_id = \"file\"\nsecret_key = \"file-secret\"\n", &e).unwrap();
        assert_eq!(c.resto_id, "env-resto");
        assert_eq!(c.secret.expose(), "env-secret");
        assert_eq!(c.ws_url, "ws://127.0.0.1:1/ws");
        assert_eq!(c.callback_url, "http://127.0.0.1:2/callback");
        assert_eq!(c.mirror_path, Path::new("/tmp/m.sqlite"));

        let dir = std::env::temp_dir().join(format!("cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret_key"), "cred-secret\n").unwrap();
        let c = load(
            "resto_id = \"r\"\n",
            &env(&[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(c.secret.expose(), "cred-secret");
        assert!(c.secret_source.contains("credential"));
        std::fs::remove_dir_all(&dir).unwrap();

        let e = load("resto_id = \"r\"\n", &env(&[])).unwrap_err();
        assert!(e.to_string().contains("no secret"), "{e}");
        let e = load(
            "resto_id = \"r\"\nsecret_key = \"a\"\nsecret_key_file = \"/x\"\n",
            &env(&[]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
    }

    #[test]
    fn contradictory_limits_are_refused() {
        let base = "resto_id = \"r1\"\nsecret_key = \"s\"\n";
        for (extra, needle) in [
            (
                "[link]\nping_interval_secs = 30\ndead_after_secs = 20\n",
                "dead_after_secs",
            ),
            ("[limits]\nmax_in_flight = 0\n", "max_in_flight"),
            ("[callback]\ndeadline_secs = 120\n", "deadline_secs"),
            (
                "[journal]\npos_ack_timeout_secs = 79\n",
                "pos_ack_timeout_secs",
            ),
            ("[cache]\ninterval_secs = 15\n", "interval_secs"),
        ] {
            let e = load(&format!("{base}{extra}"), &env(&[])).unwrap_err();
            assert!(e.to_string().contains(needle), "{extra}: {e}");
        }
    }

    #[test]
    fn debug_output_never_holds_the_secret() {
        let c = load(
            "resto_id = \"r1\"\nsecret_key = \"top-secret-value\"\n",
            &env(&[]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("top-secret-value"));
    }

    #[test]
    fn parse_errors_do_not_quote_the_secret_line() {
        for text in [
            "resto_id = \"r\"\nsecret_key = \"canary-123\n",
            "resto_id = \"r\"\nsecret_kee = \"canary-123\"\n",
            "resto_id = \"r\"\nsecret_key = canary-123\n",
        ] {
            let e = toml::from_str::<FileConfig>(text).err().unwrap();
            let m = parse_error_without_source(&e, text);
            assert!(!m.contains("canary-123"), "{m}");
            assert!(m.starts_with("line 2, column "), "{m}");
        }
    }

    #[test]
    fn urls_with_credentials_are_redacted_in_errors() {
        assert_eq!(
            redact_userinfo("wss://id:pw@host:1/p?q=a@b"),
            "wss://<redacted>@host:1/p?q=a@b"
        );
        assert_eq!(redact_userinfo("wss://host/p@x"), "wss://host/p@x");
        let e = check_endpoint("ws_url", "ws://id:pw@example.com/x", "wss", "ws")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw"), "{e}");
    }
}
