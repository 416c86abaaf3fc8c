//! A redacting wrapper for the restaurant's `SECRET_KEY`.
//!
//! The secret is needed in exactly two places: the WebSocket handshake (Basic auth) and the
//! HMAC of every callback. Everywhere else it must be invisible: `Debug` and `Display` print
//! `<redacted>`, and the only way to the bytes is [`Secret::expose`], which is easy to grep for.

use std::fmt;

use zeroize::Zeroize;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The raw secret. Call sites: `sign.rs` (HMAC key) and `link/handshake.rs` (Basic auth).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite the bytes (volatile writes the optimiser cannot remove) so a core dump is
        // less likely to carry the key.
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("my-secret-key-123");
        assert!(!format!("{s:?}").contains("my-secret"));
        assert!(!format!("{s}").contains("my-secret"));
        assert_eq!(s.expose(), "my-secret-key-123");
    }
}
