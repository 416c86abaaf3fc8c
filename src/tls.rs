//! TLS in one place: the roots the agent trusts and the client configurations built from them.
//!
//! Trust = Mozilla's root certificates (the `webpki-root-certs` crate, in DER) plus every
//! certificate in `ca_file` (PEM), if set. Both clients use the same roots and the same crypto
//! provider (rustls on ring, never aws-lc-rs):
//! - the WebSocket link gets a `rustls::ClientConfig` ([`link_client_config`]);
//! - the callback client (tokio-rustls) gets the same kind, offering ALPN `http/1.1`
//!   ([`callback_client_config`]).
//!
//! A failed handshake is described in one place ([`describe_handshake_error`]) for the
//! callback client and `check --online`; the `ca_file` hint goes only with an unknown issuer.
//!
//! A `ca_file` that cannot be read, holds no certificate or holds one rustls cannot parse is
//! an error at start, never a silent fallback to the public roots alone.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("cannot set up TLS: {0}")]
    Setup(String),
}

/// The crypto provider of every TLS connection the agent makes.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates in the PEM file `p` (at least one, or an error).
pub fn load_ca_file(p: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |m: String| TlsError::CaFile {
        path: p.display().to_string(),
        message: m,
    };
    let pem = std::fs::read(p).map_err(|e| err(e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block found".into()));
    }
    Ok(certs)
}

/// Mozilla's roots as a rustls store, parsed once per process.
fn mozilla_store() -> &'static RootCertStore {
    static STORE: OnceLock<RootCertStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        roots
    })
}

/// The certificates of `ca_file` (none if unset), each checked to be a usable trust anchor.
fn ca_certs(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let Some(p) = ca_file else {
        return Ok(Vec::new());
    };
    let certs = load_ca_file(p)?;
    let mut probe = RootCertStore::empty();
    for c in &certs {
        probe.add(c.clone()).map_err(|e| TlsError::CaFile {
            path: p.display().to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(certs)
}

/// Mozilla's roots plus the certificates of `ca_file`, as a rustls store.
pub fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let extra = ca_certs(ca_file)?;
    let mut roots = mozilla_store().clone();
    roots.add_parsable_certificates(extra);
    Ok(roots)
}

/// The time certificates are checked against: the agent's wall clock (`clock::unix_now`). The
/// default, `SystemTime::now`, panics past 2038 on the 32-bit ARM builds (see `clock.rs`).
#[derive(Debug)]
struct WallClock;

impl rustls::time_provider::TimeProvider for WallClock {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        let secs = u64::try_from(crate::clock::unix_now().0).ok()?;
        Some(rustls::pki_types::UnixTime::since_unix_epoch(
            std::time::Duration::from_secs(secs),
        ))
    }
}

/// The rustls client configuration of the WebSocket link.
pub fn link_client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let roots = root_store(ca_file)?;
    let config = rustls::ClientConfig::builder_with_details(provider(), Arc::new(WallClock))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The ALPN protocols the callback client offers: HTTP/1.1 only.
pub const CALLBACK_ALPN: &[u8] = b"http/1.1";

/// The rustls client configuration of the callback client (tokio-rustls): the same roots and
/// provider as the link, offering ALPN `http/1.1`, so a server that speaks only HTTP/2 says so
/// in the handshake ([`refused_http11`]) instead of answering a request it cannot read.
pub fn callback_client_config(
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut config = Arc::unwrap_or_clone(link_client_config(ca_file)?);
    config.alpn_protocols = vec![CALLBACK_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The rustls error inside an I/O error of a handshake, if it is one.
pub fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// The server refused every protocol we offered in ALPN (`no_application_protocol`), or chose
/// one we did not offer (`h2`): it does not speak HTTP/1.1.
pub fn refused_http11(e: &std::io::Error) -> bool {
    use rustls::{AlertDescription, Error, PeerMisbehaved};
    matches!(
        rustls_error(e),
        Some(Error::AlertReceived(
            AlertDescription::NoApplicationProtocol
        )) | Some(Error::PeerMisbehaved(
            PeerMisbehaved::SelectedUnofferedApplicationProtocol
        ))
    )
}

/// `" (for a private CA, set ca_file)"` when the certificate's issuer is unknown (the one
/// problem `ca_file` fixes), else nothing.
pub fn ca_hint(e: &std::io::Error) -> &'static str {
    match rustls_error(e) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            " (for a private CA, set ca_file)"
        }
        _ => "",
    }
}

/// A failed TLS handshake with `host` in words a technician can act on: the certificate
/// problem and its remedy where there is an obvious one, or a server that speaks only HTTP/2.
pub fn describe_handshake_error(e: &std::io::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    if refused_http11(e) {
        return format!(
            "TLS handshake failed: {host} does not speak HTTP/1.1 (it refused ALPN http/1.1: \
             an HTTP/2-only server); the agent speaks HTTP/1.1"
        );
    }
    let Some(tls) = rustls_error(e) else {
        return format!("TLS handshake failed: {e}");
    };
    match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "certificate not trusted: it is not signed by a known CA (unknown issuer); for a private CA set ca_file".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("certificate does not name {host} (wrong host in the URL, or an intercepting proxy)")
            }
            C::Expired | C::ExpiredContext { .. } => {
                "certificate has expired (or this board's clock is wrong: check timedatectl)".into()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "certificate is not valid yet (this board's clock is probably wrong: check timedatectl)".into()
            }
            C::Revoked => "certificate has been revoked".into(),
            C::BadSignature => "certificate has a bad signature".into(),
            C::BadEncoding => "certificate is malformed".into(),
            other => format!("certificate rejected: {other:?}"),
        },
        other => format!("TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mozilla_roots_are_present_and_ca_file_is_checked() {
        let n = root_store(None).unwrap().len();
        assert!(n > 100, "only {n} Mozilla roots");
        let dir = std::env::temp_dir().join(format!("expirenza-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        for p in [garbage.as_path(), &dir.join("absent.pem")] {
            let e = root_store(Some(p)).unwrap_err();
            assert!(e.to_string().contains("ca_file"), "{e}");
            assert!(callback_client_config(Some(p)).is_err());
            assert!(link_client_config(Some(p)).is_err());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tls_io(e: rustls::CertificateError) -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(e),
        )
    }

    #[test]
    fn the_ca_file_hint_goes_only_with_an_unknown_issuer() {
        use rustls::CertificateError as C;
        let unknown = tls_io(C::UnknownIssuer);
        assert_eq!(ca_hint(&unknown), " (for a private CA, set ca_file)");
        assert!(describe_handshake_error(&unknown, "h").contains("set ca_file"));
        for other in [
            C::Expired,
            C::NotValidForName,
            C::NotValidYet,
            C::BadSignature,
        ] {
            let e = tls_io(other);
            assert_eq!(ca_hint(&e), "", "{e}");
            let m = describe_handshake_error(&e, "cloud.example");
            assert!(!m.contains("ca_file"), "{m}");
        }
        let m = describe_handshake_error(&tls_io(C::NotValidForName), "cloud.example");
        assert!(m.contains("does not name cloud.example"), "{m}");
        let m = describe_handshake_error(&tls_io(C::Expired), "h");
        assert!(m.contains("expired") && m.contains("clock"), "{m}");
    }
}
