//! Callback signatures: `base64(HMAC-SHA256(key = SECRET_KEY, message = exact body bytes))`.
//!
//! The rule of the protocol (docs/protocol.md §2.4) is *serialise once, sign those bytes, send those
//! bytes*. [`SignedBody`] enforces it in the type system: the only way to get a body to the HTTP
//! client is through `SignedBody::new`, which computes the signature over the very `Vec<u8>` it
//! then owns and hands out read-only.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Standard base64 (with `+`, `/` and `=` padding) of HMAC-SHA256 over `body`.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    STANDARD.encode(mac(secret.expose().as_bytes(), body))
}

fn mac(key: &[u8], body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for Hmac<Sha256>.
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// HMAC-SHA256 and length over bytes that arrive in pieces: the signature of a body that is
/// generated (and streamed) rather than held. Same result as [`sign`] over the concatenation.
#[derive(Clone)]
pub struct StreamSigner {
    mac: HmacSha256,
    len: usize,
}

impl StreamSigner {
    pub fn new(secret: &Secret) -> Self {
        StreamSigner {
            mac: HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("any key length"),
            len: 0,
        }
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.mac.update(bytes);
        self.len += bytes.len();
    }
    /// Bytes seen so far.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// `(length, base64 signature)` of everything seen.
    pub fn finish(self) -> (usize, String) {
        (self.len, STANDARD.encode(self.mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for StreamSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The MAC state is derived from the secret: never printed.
        f.debug_struct("StreamSigner")
            .field("len", &self.len)
            .finish()
    }
}

/// Constant-time check of a received signature (used by the fake cloud and by `sign --verify`).
pub fn verify(secret: &Secret, body: &[u8], signature_b64: &str) -> bool {
    let Ok(given) = STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    let mut m = HmacSha256::new_from_slice(secret.expose().as_bytes()).expect("any key length");
    m.update(body);
    m.verify_slice(&given).is_ok()
}

/// A serialised body and the signature of exactly those bytes.
#[derive(Debug, Clone)]
pub struct SignedBody {
    body: Vec<u8>,
    signature: String,
}

impl SignedBody {
    pub fn new(secret: &Secret, body: Vec<u8>) -> Self {
        let signature = sign(secret, &body);
        SignedBody { body, signature }
    }
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    pub fn signature(&self) -> &str {
        &self.signature
    }
    pub fn len(&self) -> usize {
        self.body.len()
    }
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "{\"rID\":\"2024-05-14 12:30:01.123456789#AbC12dE\",\"tables\":[{\"id\":\"t-12\",\"name\":\"Біля каміна\",\"number\":12,\"hallPlanId\":\"hall-1\"}]}";

    #[test]
    fn stream_signer_matches_sign_over_the_whole() {
        let k = Secret::new("my-secret-key-123");
        let mut s = StreamSigner::new(&k);
        for piece in BODY.as_bytes().chunks(7) {
            s.update(piece);
        }
        assert_eq!(s.finish(), (BODY.len(), sign(&k, BODY.as_bytes())));
        assert!(!format!("{:?}", StreamSigner::new(&k)).contains("my-secret"));
    }

    #[test]
    fn reference_vector_utf8() {
        assert_eq!(BODY.len(), 137);
        let k = Secret::new("my-secret-key-123");
        assert_eq!(
            sign(&k, BODY.as_bytes()),
            "HhWDe7E6efUEpDjUcgn/RVcoW4f/+m/gmoBKSll/hco="
        );
        assert!(verify(
            &k,
            BODY.as_bytes(),
            "HhWDe7E6efUEpDjUcgn/RVcoW4f/+m/gmoBKSll/hco="
        ));
    }

    #[test]
    fn reference_vector_extra_space() {
        let k = Secret::new("my-secret-key-123");
        let body = BODY.replacen("\"tables\":", "\"tables\": ", 1);
        assert_eq!(
            sign(&k, body.as_bytes()),
            "iZ02yQ0TUuaQAUgSv7EkvAXpliroq/cyMflNOTGASp4="
        );
        assert!(!verify(
            &k,
            body.as_bytes(),
            "HhWDe7E6efUEpDjUcgn/RVcoW4f/+m/gmoBKSll/hco="
        ));
    }

    #[test]
    fn reference_vector_escaped_cyrillic() {
        let k = Secret::new("my-secret-key-123");
        let escaped: String = BODY
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    format!("\\u{:04x}", c as u32)
                }
            })
            .collect();
        assert_eq!(
            sign(&k, escaped.as_bytes()),
            "Dv5Hl7Nyvsw0+//+nnGFVyl14g1sLDxCew2KWseu8UY="
        );
    }

    #[test]
    fn reference_vector_minimal_ascii() {
        let k = Secret::new("secret");
        assert_eq!(
            sign(&k, br#"{"rID":"abc","tables":[]}"#),
            "CABVoPnlCjR5jwtJdrm0A2O9f1dwWNYeF7wGMuSLO74="
        );
    }

    #[test]
    fn signed_body_signs_what_it_carries() {
        let k = Secret::new("secret");
        let sb = SignedBody::new(&k, br#"{"rID":"abc","tables":[]}"#.to_vec());
        assert!(verify(&k, sb.body(), sb.signature()));
        assert!(!verify(&k, b"{}", sb.signature()));
        assert!(!verify(&k, sb.body(), "not base64!"));
    }
}
