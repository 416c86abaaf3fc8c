//! TLS for tests: a throw-away CA and a server certificate naming `127.0.0.1` and `localhost`
//! (rcgen, ring), and a TLS-terminating proxy (tokio-rustls): `127.0.0.1:<port>` speaks TLS and
//! forwards the plaintext to `target` (the fake cloud's WebSocket or callback port).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct TestPki {
    /// PEM of the CA certificate: what goes in `ca_file`.
    pub ca_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl TestPki {
    /// A fresh CA and a leaf for 127.0.0.1 / localhost signed by it.
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("expirenza test CA {}", unique()),
        );
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        TestPki {
            ca_pem: ca_cert.pem(),
            cert_der: leaf.der().clone(),
            key_der: leaf_key.serialize_der(),
        }
    }

    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, &self.ca_pem).unwrap();
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.server_config(Vec::new()))
    }

    /// A server configuration with this PKI's leaf, offering the ALPN protocols `alpn`
    /// (none: no ALPN).
    pub fn server_config(&self, alpn: Vec<Vec<u8>>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .unwrap();
        cfg.alpn_protocols = alpn;
        Arc::new(cfg)
    }

    /// The leaf certificate and its key, PEM (for a server outside this process: nginx).
    pub fn leaf_pem(&self) -> (String, String) {
        (
            pem("CERTIFICATE", self.cert_der.as_ref()),
            pem("PRIVATE KEY", &self.key_der),
        )
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// TLS in front of a plaintext port. Counts handshakes that succeeded and failed.
pub struct TlsProxy {
    pub addr: SocketAddr,
    pub ok: Arc<AtomicUsize>,
    pub failed: Arc<AtomicUsize>,
    _stop: tokio::sync::watch::Sender<()>,
}

impl TlsProxy {
    pub async fn start(pki: &TestPki, target: SocketAddr) -> TlsProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = pki.acceptor();
        let (stop, mut stop_rx) = tokio::sync::watch::channel(());
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (ok2, failed2) = (ok.clone(), failed.clone());
        tokio::spawn(async move {
            loop {
                let sock = tokio::select! {
                    _ = stop_rx.changed() => return,
                    r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                };
                let acceptor = acceptor.clone();
                let (ok, failed) = (ok2.clone(), failed2.clone());
                tokio::spawn(async move {
                    let tls =
                        match tokio::time::timeout(Duration::from_secs(5), acceptor.accept(sock))
                            .await
                        {
                            Ok(Ok(t)) => t,
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        };
                    ok.fetch_add(1, Ordering::Relaxed);
                    let Ok(mut up) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut tls = tls;
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        TlsProxy {
            addr,
            ok,
            failed,
            _stop: stop,
        }
    }
    pub fn handshakes_ok(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }
    pub fn handshakes_failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }
}

/// A listener that accepts TCP and answers every connection with garbage (not TLS, not HTTP),
/// then closes. Counts connections.
pub async fn garbage_server() -> (SocketAddr, Arc<AtomicUsize>, tokio::sync::watch::Sender<()>) {
    use tokio::io::AsyncWriteExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let (stop, mut stop_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        loop {
            let mut sock = tokio::select! {
                _ = stop_rx.changed() => return,
                r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
            };
            n2.fetch_add(1, Ordering::Relaxed);
            let _ = sock
                .write_all(b"\x00\xffSSH-2.0-garbage\r\n\x16\x03\x09nonsense")
                .await;
            let _ = sock.shutdown().await;
        }
    });
    (addr, n, stop)
}
