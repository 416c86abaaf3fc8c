//! Delivering answers: a signed HTTP POST to `<callback_url>/<operation>`.
//!
//! The body arrives here already serialised and signed ([`SignedBody`]); this module only moves
//! those exact bytes. Policy (protocol reference §2.3, [inferred] where the docs are silent):
//! - per-attempt timeout `[callback] attempt_timeout_secs` (10 s), clipped to the deadline;
//! - network errors and 5xx are retried with doubling delays until the deadline, which is
//!   `deadline_secs` (80 s) after the request arrived; nothing is sent after it;
//! - 4xx is final: the cloud's error body is logged (bounded) and not retried;
//! - a body above `max_body_bytes` is refused before any byte is sent.
//!
//! ureq is a blocking client; callers run `deliver` on the blocking pool (see `dispatch`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::sign::SignedBody;

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("body of {size} bytes exceeds max_body_bytes ({cap})")]
    TooLarge { size: usize, cap: usize },
    #[error("cloud refused the callback with HTTP {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("deadline passed after {attempts} attempt(s); last error: {last}")]
    DeadlinePassed { attempts: u32, last: String },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub attempts: u32,
    pub status: u16,
}

pub struct CallbackClient {
    agent: ureq::Agent,
    base: String,
    resto_id: String,
    cfg: crate::config::CallbackConfig,
    max_body: usize,
}

impl CallbackClient {
    pub fn new(cfg: &Config) -> Result<Arc<Self>, CallbackError> {
        let tls = crate::tls::callback_tls_config(cfg.ca_file.as_deref())?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .max_redirects(0)
            .max_idle_connections(cfg.limits.max_in_flight.max(2))
            .max_idle_connections_per_host(cfg.limits.max_in_flight.max(2))
            .timeout_global(Some(Duration::from_secs(cfg.callback.attempt_timeout_secs)))
            .user_agent(concat!("expirenza-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Arc::new(CallbackClient {
            agent,
            base: cfg.callback_url.trim_end_matches('/').to_string(),
            resto_id: cfg.resto_id.clone(),
            cfg: cfg.callback.clone(),
            max_body: cfg.limits.max_body_bytes,
        }))
    }

    pub fn url_for(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// POST `body` to `<callback_url>/<path>`, retrying until `deadline`.
    pub fn deliver(
        &self,
        path: &str,
        body: &SignedBody,
        deadline: Instant,
    ) -> Result<Delivered, CallbackError> {
        if body.len() > self.max_body {
            return Err(CallbackError::TooLarge {
                size: body.len(),
                cap: self.max_body,
            });
        }
        let url = self.url_for(path);
        let mut delay = Duration::from_millis(self.cfg.retry_initial_ms);
        let max_delay = Duration::from_millis(self.cfg.retry_max_ms);
        let per_attempt = Duration::from_secs(self.cfg.attempt_timeout_secs);
        let mut attempts = 0u32;
        let mut last = String::from("no attempt made");
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(CallbackError::DeadlinePassed { attempts, last });
            }
            let budget = per_attempt.min(deadline - now);
            attempts += 1;
            let result = self.attempt(&url, body, budget);
            crate::metrics::callback_attempt(
                matches!(&result, Ok((s, _)) if (200..300).contains(s)),
            );
            match result {
                Ok((status, _)) if (200..300).contains(&status) => {
                    return Ok(Delivered { attempts, status })
                }
                Ok((status, body)) if (400..500).contains(&status) => {
                    return Err(CallbackError::Rejected { status, body });
                }
                Ok((status, body)) => {
                    last = format!("HTTP {status} {body}");
                    log_warn!("callback {path}: attempt {attempts} got HTTP {status}, retrying");
                }
                Err(e) => {
                    last = e;
                    log_warn!("callback {path}: attempt {attempts} failed: {last}");
                }
            }
            let now = Instant::now();
            if now + delay >= deadline {
                return Err(CallbackError::DeadlinePassed { attempts, last });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(max_delay);
        }
    }

    /// One POST. `Ok((status, error_body))`; the error body (bounded, for the log) is read only
    /// for statuses >= 400.
    fn attempt(
        &self,
        url: &str,
        body: &SignedBody,
        budget: Duration,
    ) -> Result<(u16, String), String> {
        let res = self
            .agent
            .post(url)
            .config()
            .timeout_global(Some(budget))
            .build()
            .header("restoId", &self.resto_id)
            .header("signature", body.signature())
            .header("Content-Type", "application/json")
            .send(body.body());
        match res {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let mut text = String::new();
                if status >= 400 {
                    text = resp
                        .body_mut()
                        .with_config()
                        .limit(self.cfg.max_response_bytes as u64)
                        .read_to_vec()
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default();
                }
                Ok((status, text))
            }
            Err(e) => Err(describe(&e)),
        }
    }
}

/// A short, secret-free description of a transport error.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(t) => format!("timed out ({t:?})"),
        // rustls errors arrive wrapped in io::Error: say it is TLS, and why (no secret in it).
        ureq::Error::Io(io) if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => {
            format!("TLS handshake failed: {io} (for a private CA, set ca_file)")
        }
        ureq::Error::Io(io) => format!("network error: {}", io.kind()),
        ureq::Error::HostNotFound => "host not found".into(),
        ureq::Error::ConnectionFailed => "connection failed".into(),
        other => format!("{other}"),
    }
}
