//! [`Config::validate`]: the checks serde cannot express, and the endpoint rule (TLS for every
//! non-loopback host: the secret travels with every connection). URLs are parsed by
//! [`Endpoint::parse`] (`endpoint.rs`), the one parser of the agent.

use super::endpoint::Endpoint;
use super::{Config, ConfigError, SecretNeed};

/// The shortest `[journal] busy_timeout_ms` accepted.
pub const MIN_JOURNAL_BUSY_MS: u64 = 100;

impl Config {
    /// Checks that serde cannot express. Every message names the key to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(SecretNeed::Required)
    }

    /// [`Config::validate`]; with [`SecretNeed::IfAvailable`] an empty secret is allowed (a
    /// config loaded for a command that neither connects nor signs).
    pub fn validate_with(&self, need: SecretNeed) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.resto_id.trim().is_empty() {
            return bad("resto_id is required (or set EXPIRENZA_RESTO_ID)".into());
        }
        if self.resto_id.contains(':') || self.resto_id.chars().any(char::is_control) {
            return bad("resto_id must not contain ':' or control characters (it is the Basic-auth user name)".into());
        }
        if self.secret.is_empty() && need == SecretNeed::Required {
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
        if m.max_pending_bytes < 64 * 1024 || m.max_pending_bytes > 1 << 30 {
            return bad("[limits] max_pending_bytes must be between 64 KiB and 1 GiB".into());
        }
        if m.max_waiting == 0 || m.max_waiting > 4096 {
            return bad("[limits] max_waiting must be between 1 and 4096".into());
        }
        if m.max_delivering == 0 || m.max_delivering > 4096 {
            return bad("[limits] max_delivering must be between 1 and 4096".into());
        }
        if m.max_streaming == 0 || m.max_streaming > 64 {
            return bad("[limits] max_streaming must be between 1 and 64".into());
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
        if m.max_menu_bytes < 1024 || m.max_menu_bytes > 1 << 30 {
            return bad("[limits] max_menu_bytes must be between 1 KiB and 1 GiB".into());
        }
        if !(16..=65_536).contains(&m.sqlite_cache_kib) {
            return bad("[limits] sqlite_cache_kib must be between 16 and 65536".into());
        }
        if !(256..=1_048_576).contains(&m.sqlite_heap_limit_kib) {
            return bad("[limits] sqlite_heap_limit_kib must be between 256 and 1048576".into());
        }
        if m.answer_cache_kib > 65_536 {
            return bad("[limits] answer_cache_kib must be between 0 (off) and 65536".into());
        }
        let c = &self.callback;
        if c.attempt_timeout_secs == 0
            || c.deadline_secs < c.attempt_timeout_secs
            || c.deadline_secs > 80
        {
            return bad("[callback] need 0 < attempt_timeout_secs <= deadline_secs <= 80 (the cloud's window)".into());
        }
        if c.max_connections == 0 || c.max_connections > 256 {
            return bad("[callback] max_connections must be between 1 and 256".into());
        }
        if c.dns_ttl_secs == 0 {
            return bad("[callback] dns_ttl_secs must be > 0".into());
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
        let j = &self.journal;
        let waits_ms = j
            .busy_timeout_ms(c)
            .saturating_add(j.pos_ack_timeout_secs.saturating_mul(1000))
            .saturating_add(super::ANSWER_MARGIN_SECS * 1000);
        match j.busy_timeout_ms {
            Some(b) if b < MIN_JOURNAL_BUSY_MS => {
                return bad(format!(
                    "[journal] busy_timeout_ms must be at least {MIN_JOURNAL_BUSY_MS} (got {b})"
                ))
            }
            Some(b) if waits_ms > c.deadline_secs.saturating_mul(1000) => {
                return bad(format!(
                "[journal] busy_timeout_ms ({b} ms) + [journal] pos_ack_timeout_secs ({} s) must \
                     leave {} s of [callback] deadline_secs ({} s) for the answer: lower \
                     busy_timeout_ms or pos_ack_timeout_secs",
                j.pos_ack_timeout_secs,
                super::ANSWER_MARGIN_SECS,
                c.deadline_secs
            ))
            }
            _ => {}
        }
        if !(64 * 1024..=1 << 30).contains(&j.max_spool_bytes) {
            return bad("[journal] max_spool_bytes must be between 64 KiB and 1 GiB".into());
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
        self.metrics.validate().map_err(ConfigError::Invalid)?;
        if self.status.write_interval_secs == 0 {
            return bad("[status] write_interval_secs must be > 0".into());
        }
        Ok(())
    }
}

/// `scheme://user:pass@host/…` → `scheme://<redacted>@host/…`: a URL refused for carrying
/// credentials must not print them in the error.
pub(super) fn redact_userinfo(url: &str) -> String {
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

pub(super) fn check_endpoint(
    key: &str,
    url: &str,
    tls: &str,
    plain: &str,
) -> Result<(), ConfigError> {
    let ep = Endpoint::parse(url).map_err(|e| {
        ConfigError::Invalid(format!(
            "{key} is not a valid URL: {}: {e}",
            redact_userinfo(url)
        ))
    })?;
    let scheme = ep.scheme.as_str();
    if scheme == tls {
        return Ok(());
    }
    if scheme == plain {
        if ep.is_loopback() {
            return Ok(());
        }
        return Err(ConfigError::Invalid(format!(
            "{key} uses plain {plain}:// to the non-loopback host '{}': the secret travels with every connection, \
             so only {tls}:// is allowed there ({plain}:// is for 127.0.0.1, ::1 and localhost only)",
            ep.host
        )));
    }
    Err(ConfigError::Invalid(format!(
        "{key} must start with {tls}:// (got '{scheme}://')"
    )))
}
