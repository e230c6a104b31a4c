//! RabbitMQ: connecting on actix's tokio runtime, and the queue [`topology`]. (What travels in the
//! messages is [`crate::messages`]; retry queue names are [`crate::retry`]'s.)
//!
//! lapin's own recovery is not relied on: each AMQP actor owns its connection and makes a new
//! one (with backoff) when it is lost; [`link`] is the lifecycle they share.

pub mod link;
pub mod topology;

pub use topology::{QueueType, Topology};

use async_rs::Runtime;
use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A broker to connect to: its URL (`amqp://` or `amqps://`) and, for TLS, CA certificates
/// its certificate may lead to beside the system's roots.
#[derive(Clone)]
pub struct Broker {
    url: String,
    ca_pem: Option<Arc<str>>,
}

impl Broker {
    pub fn new(url: &str) -> Broker {
        Broker {
            url: url.to_string(),
            ca_pem: None,
        }
    }

    /// With the CA certificate(s) in the PEM file `ca` (read and checked now).
    pub fn with_ca(url: &str, ca: Option<&Path>) -> Result<Broker, crate::tls::TlsError> {
        let ca_pem = match ca {
            Some(path) => {
                crate::tls::certificates(path)?;
                let text =
                    std::fs::read_to_string(path).map_err(|e| crate::tls::TlsError::File {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    })?;
                Some(text.into())
            }
            None => None,
        };
        Ok(Broker {
            url: url.to_string(),
            ca_pem,
        })
    }

    /// Connect on the current (actix) tokio runtime; `name` shows in the management UI.
    pub async fn connect(&self, name: &str) -> Result<Connection, lapin::Error> {
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca_pem.as_deref().map(str::to_string),
        };
        Connection::connect_with_config(
            &self.url,
            ConnectionProperties::default().with_connection_name(name.to_string().into()),
            tls,
            Runtime::tokio_current(),
        )
        .await
    }
}

/// Connect to `url` (system roots for `amqps://`) on the current tokio runtime.
pub async fn connect(url: &str, name: &str) -> Result<Connection, lapin::Error> {
    Broker::new(url).connect(name).await
}

/// Exponential backoff with jitter for reconnect attempt `attempt` (0-based), capped at 10 s.
pub fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(7)).min(10_000);
    let jitter = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0))
        % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(100));
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(30) <= Duration::from_secs(10));
    }
}
