//! Building the WebSocket handshake: URL, `Authorization: Basic`, `Cookie: system=<pos>`,
//! explicit tungstenite limits, and the connector (TLS from `tls.rs`: ring provider, Mozilla roots
//! plus `ca_file`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::Connector;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("ws_url is not a valid WebSocket URL: {0}")]
    Url(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// `base64("RESTO_ID:SECRET_KEY")` as an HTTP header value, marked sensitive (never printed by
/// `http`'s `Debug`). The intermediate strings are wiped on drop; the header value itself is
/// `http`'s immutable `Bytes`, which cannot be wiped: it lives until the handshake request is
/// dropped, once the connection is up or has failed.
pub fn basic_auth(cfg: &Config) -> HeaderValue {
    use zeroize::Zeroizing;
    let raw = Zeroizing::new(format!("{}:{}", cfg.resto_id, cfg.secret.expose()));
    // Room for all of it up front: a reallocation would leave an unwiped copy behind.
    let mut line = Zeroizing::new(String::with_capacity(6 + raw.len().div_ceil(3) * 4));
    line.push_str("Basic ");
    STANDARD.encode_string(raw.as_bytes(), &mut line);
    let mut v = HeaderValue::from_str(&line).expect("base64 is a valid header");
    v.set_sensitive(true);
    v
}

pub fn request(cfg: &Config) -> Result<Request, HandshakeError> {
    let mut req = cfg
        .ws_url
        .as_str()
        .into_client_request()
        .map_err(|e| HandshakeError::Url(e.to_string()))?;
    let h = req.headers_mut();
    h.insert("Authorization", basic_auth(cfg));
    let cookie = HeaderValue::from_str(&format!("system={}", cfg.pos_system))
        .map_err(|e| HandshakeError::Url(e.to_string()))?;
    h.insert("Cookie", cookie);
    Ok(req)
}

pub fn ws_config(cfg: &Config) -> WebSocketConfig {
    let l = &cfg.limits;
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(l.max_write_buffer_bytes.max(1024))
        .max_message_size(Some(l.max_message_bytes))
        .max_frame_size(Some(l.max_frame_bytes))
}

pub fn connector(cfg: &Config) -> Result<Connector, HandshakeError> {
    if cfg.ws_url.to_ascii_lowercase().starts_with("wss://") {
        Ok(Connector::Rustls(crate::tls::link_client_config(
            cfg.ca_file.as_deref(),
        )?))
    } else {
        Ok(Connector::Plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_matches_the_reference_example() {
        let cfg = Config::for_loopback(
            "4f9c2a10-resto-0001",
            "my-secret-key-123",
            "ws://127.0.0.1:1/x",
            "http://127.0.0.1:1/cb",
            std::path::Path::new("/nonexistent"),
            std::path::Path::new("/nonexistent"),
        );
        assert_eq!(
            basic_auth(&cfg).to_str().unwrap(),
            "Basic NGY5YzJhMTAtcmVzdG8tMDAwMTpteS1zZWNyZXQta2V5LTEyMw=="
        );
        assert!(basic_auth(&cfg).is_sensitive());
        let r = request(&cfg).unwrap();
        assert_eq!(r.headers()["cookie"], "system=expirenza-agent");
    }
}
