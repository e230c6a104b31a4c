//! How a client reaches a node: plain TCP, or TLS over it (feature `tls`, rustls with the
//! *ring* provider). A TLS client checks the node's certificate against the roots it is given
//! (a CA file, or the system's) and the host name (or IP address) it dialled.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The reading half of a connection, whatever carries it.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection, whatever carries it.
pub type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Plain TCP (the default) or TLS.
#[derive(Clone, Default)]
pub struct Transport {
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Transport {
    pub fn plain() -> Self {
        Transport::default()
    }

    /// TLS with `config` (see [`client_config`]).
    #[cfg(feature = "tls")]
    pub fn tls(config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        Transport {
            tls: Some(tokio_rustls::TlsConnector::from(config)),
        }
    }

    /// Connect to `server` (`host:port`): TCP within 3 s, then the TLS handshake if any
    /// (within 3 s more).
    pub async fn open(&self, server: &str) -> std::io::Result<(BoxRead, BoxWrite)> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(server))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true).ok();
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let name = server_name(server)?;
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(name, stream))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            let (read, write) = tokio::io::split(stream);
            return Ok((Box::new(read), Box::new(write)));
        }
        let (read, write) = stream.into_split();
        Ok((Box::new(read), Box::new(write)))
    }
}

/// The name a TLS client checks the node's certificate for: the host of `host:port`
/// (`[v6]:port` too).
#[cfg(feature = "tls")]
fn server_name(server: &str) -> std::io::Result<rustls_pki_types::ServerName<'static>> {
    let host = match server.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => server.rsplit_once(':').map_or(server, |(host, _)| host),
    };
    rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{host}` is not a host name for TLS: {e}"),
        )
    })
}

/// Why a TLS client could not be set up.
#[cfg(feature = "tls")]
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read the CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("no usable CA certificate (in {0})")]
    NoRoots(String),
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A TLS client configuration trusting the certificates in the PEM file `ca`, or the
/// system's roots without one.
#[cfg(feature = "tls")]
pub fn client_config(
    ca: Option<&std::path::Path>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, TlsSetupError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let origin = match ca {
        Some(path) => {
            let bad = |reason: String| TlsSetupError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
            path.display().to_string()
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            "the system's certificate store".to_string()
        }
    };
    if roots.is_empty() {
        return Err(TlsSetupError::NoRoots(origin));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;

    #[test]
    fn the_name_checked_is_the_host_dialled() {
        let name = |s: &str| server_name(s).unwrap().to_str().into_owned();
        assert_eq!(name("node1.example:7001"), "node1.example");
        assert_eq!(name("127.0.0.1:7001"), "127.0.0.1");
        assert_eq!(name("[::1]:7001"), "::1");
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = client_config(Some(std::path::Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
