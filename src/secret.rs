//! A redacting wrapper for the restaurant's `SECRET_KEY`.
//!
//! The secret is used for two things: the WebSocket handshake (Basic auth) and the HMAC of
//! every callback. Everywhere else it must be invisible: `Debug` and `Display` print
//! `<redacted>`, and the only way to the bytes is [`Secret::expose`], which is easy to grep for.
//! Two secrets are compared only in constant time ([`Secret::ct_eq`]); there is no `PartialEq`,
//! so `==` on secrets does not compile.

use std::fmt;

use zeroize::Zeroize;

#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The raw secret. Call sites: `sign.rs` (HMAC key), `link/handshake.rs` (Basic auth),
    /// `config/secret_source.rs` (trimming a secret read from the file) and `cli/check.rs`
    /// (its length, never its bytes).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Equal, in time that does not depend on where the two differ (only on their lengths).
    pub fn ct_eq(&self, other: &Secret) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
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

/// Read from the config file as a plain string (`secret_key = "…"`).
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
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

    #[test]
    fn compared_in_constant_time_only() {
        let a = Secret::new("k-123");
        assert!(a.ct_eq(&Secret::new("k-123")));
        assert!(!a.ct_eq(&Secret::new("k-124")));
        assert!(!a.ct_eq(&Secret::new("k-1234")));
        assert!(!a.ct_eq(&Secret::new("")));
    }
}
