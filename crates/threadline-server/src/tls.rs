//! TLS for the listeners: one certificate (PEM chain and key) for every listener. HTTP
//! listeners accept through [`TlsListener`] (ALPN `h2` and `http/1.1`); gRPC through tonic's
//! own TLS with the same files.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// A client gets this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("tls: {0}")]
    Config(String),
}

/// The loaded certificate: for HTTP listeners and, as PEM, for gRPC.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path)
        .map_err(|e| TlsError::Read { path: path.display().to_string(), message: e.to_string() })
}

pub fn load(cert_file: &Path, key_file: &Path) -> Result<Tls, TlsError> {
    // Libraries that take the process-wide provider (the gRPC server's TLS) get aws-lc too;
    // with more than one provider compiled in, rustls would not pick one itself.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cert_pem = read(cert_file)?;
    let key_pem = read(key_file)?;
    let bad = |path: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert_file, &e))?;
    if certs.is_empty() {
        return Err(bad(cert_file, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| bad(key_file, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError::Config(format!("the certificate and key do not go together: {e}"))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), cert_pem, key_pem })
}

/// A TCP listener that hands out TLS streams; failed handshakes are dropped.
pub struct TlsListener {
    pub inner: TcpListener,
    pub acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
