//! The brokers a node may use (`amqp.urls`, the members of one RabbitMQ cluster, or a single
//! `amqp.url`) and how it picks one.
//!
//! A node starts at the broker its name points to (see [`first_choice`]), so nodes named
//! `node1`, `node2`, `node3` land on three different brokers of a 3-broker list. Every AMQP
//! actor of a node shares one [`Broker`]: a connection goes to the broker the node last
//! reached, and when that one cannot be reached (refused, or no answer within
//! [`PER_BROKER_TIMEOUT`]) to the next in the list, which then becomes the node's broker for
//! all its actors. A node does not move back when its first broker returns; connections
//! spread again as nodes restart.

use async_rs::Runtime;
use lapin::tcp::OwnedTLSConfig;
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest one broker of the list may take to accept a connection before the next is
/// tried (a broker host that drops packets would otherwise hold every reconnect).
pub const PER_BROKER_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest AMQP frame a node asks for, unless its URL names one (`?frame_max=`). lapin
/// keeps 32 frames of buffer each way on every connection, filled in: at RabbitMQ's 128 KiB
/// that was 8 MiB a connection, half of an idle node's memory. A message larger than a frame
/// is sent as several.
pub const FRAME_MAX: u32 = 16 * 1024;

/// The brokers to connect to (`amqp://` or `amqps://`) and, for TLS, CA certificates their
/// certificates may lead to beside the system's roots.
#[derive(Clone)]
pub struct Broker {
    urls: Arc<[String]>,
    ca_pem: Option<Arc<str>>,
    /// Index into `urls` of the broker this node reached last (shared by its actors).
    current: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("brokers", &self.urls.len())
            .field("current", &self.current.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// One broker.
    pub fn new(url: &str) -> Broker {
        Broker {
            urls: Arc::from([url.to_string()]),
            ca_pem: None,
            current: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The brokers `urls` (at least one) for node `node`, with the CA certificate(s) in the
    /// PEM file `ca` (read and checked now).
    pub fn with_ca(
        urls: &[String],
        node: &str,
        ca: Option<&Path>,
    ) -> Result<Broker, crate::tls::TlsError> {
        assert!(!urls.is_empty(), "amqp.urls is checked to hold a URL");
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
            urls: urls.into(),
            ca_pem,
            current: Arc::new(AtomicUsize::new(first_choice(node, urls.len()))),
        })
    }

    /// The broker connections go to first, its password hidden (for logs and the fleet view).
    pub fn current(&self) -> String {
        crate::telemetry::redact(&self.urls[self.current.load(Ordering::Relaxed)])
    }

    /// Every broker, passwords hidden, comma-separated.
    pub fn describe(&self) -> String {
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|u| crate::telemetry::redact(u))
            .collect();
        urls.join(",")
    }

    /// Connect on the current (actix) tokio runtime to the node's broker or, failing that, to
    /// the next one of the list that answers; `name` shows in the management UI.
    pub async fn connect(&self, name: &str) -> Result<Connection, lapin::Error> {
        let n = self.urls.len();
        let first = self.current.load(Ordering::Relaxed) % n;
        let mut failures = Vec::new();
        for k in (0..n).map(|i| (first + i) % n) {
            let url = &self.urls[k];
            let attempt = tokio::time::timeout(PER_BROKER_TIMEOUT, self.connect_to(url, name));
            let error = match attempt.await {
                Ok(Ok(connection)) => {
                    if k != first
                        && self
                            .current
                            .compare_exchange(first, k, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        tracing::warn!(
                            broker = %crate::telemetry::redact(url),
                            "moved to another broker"
                        );
                    }
                    return Ok(connection);
                }
                Ok(Err(e)) if n == 1 => return Err(e),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {PER_BROKER_TIMEOUT:?}"),
            };
            failures.push(format!("{}: {error}", crate::telemetry::redact(url)));
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            format!("no broker could be reached ({})", failures.join("; ")),
        )
        .into())
    }

    async fn connect_to(&self, url: &str, name: &str) -> Result<Connection, lapin::Error> {
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca_pem.as_deref().map(str::to_string),
        };
        let properties =
            ConnectionProperties::default().with_connection_name(name.to_string().into());
        match url.parse::<AMQPUri>() {
            Ok(mut uri) => {
                uri.query.frame_max.get_or_insert(FRAME_MAX);
                Connection::connect_uri_with_config(uri, properties, tls, Runtime::tokio_current())
                    .await
            }
            // lapin says what is wrong with it.
            Err(_) => {
                Connection::connect_with_config(url, properties, tls, Runtime::tokio_current())
                    .await
            }
        }
    }
}

/// The broker (of `brokers`) node `node` tries first: the sum of its name's bytes, modulo the
/// number of brokers. Names that differ in a last digit go round the list in turn.
pub fn first_choice(node: &str, brokers: usize) -> usize {
    let sum: usize = node.bytes().map(usize::from).sum();
    sum % brokers.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_nodes_spread_over_the_brokers() {
        let picks: Vec<usize> = (1..=6)
            .map(|i| first_choice(&format!("node{i}"), 3))
            .collect();
        let mut firsts = picks[..3].to_vec();
        firsts.sort();
        assert_eq!(firsts, [0, 1, 2], "{picks:?}");
        assert_eq!(picks[..3], picks[3..], "six nodes: two on each");
        assert_eq!(first_choice("anything", 1), 0);
    }

    #[actix_rt::test]
    async fn a_dead_broker_is_passed_over_and_the_next_becomes_the_nodes() {
        // Nothing listens on a port just freed; the second broker is this machine's.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_url = format!("amqp://guest:guest@{}/%2f", dead.local_addr().unwrap());
        drop(dead);
        let live = std::env::var("TASKNODE_TEST_AMQP")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let broker = Broker::with_ca(&[dead_url.clone(), live], "n", None).unwrap();
        // "n" (110) % 2 = 0: the dead one is tried first.
        assert_eq!(broker.current(), crate::telemetry::redact(&dead_url));
        let connection = broker
            .connect("test-failover")
            .await
            .expect("the live broker");
        assert_ne!(broker.current(), crate::telemetry::redact(&dead_url));
        let _ = connection.close(200, "done".into()).await;

        let none = Broker::with_ca(&[dead_url.clone(), dead_url], "n", None).unwrap();
        let err = none.connect("test-none").await.unwrap_err().to_string();
        assert!(err.contains("no broker could be reached"), "{err}");
        assert!(!err.contains("guest:guest"), "passwords hidden: {err}");
    }

    #[actix_rt::test]
    async fn frames_are_small_unless_the_url_names_their_size() {
        let live = std::env::var("TASKNODE_TEST_AMQP")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let sep = if live.contains('?') { '&' } else { '?' };
        for (url, frame_max) in [
            (live.clone(), FRAME_MAX),
            (format!("{live}{sep}frame_max=65536"), 65536),
        ] {
            let broker = Broker::with_ca(&[url], "n", None).unwrap();
            let connection = broker.connect("test-frames").await.expect("the broker");
            // What was negotiated with RabbitMQ (its own limit is 128 KiB).
            assert_eq!(connection.configuration().frame_max(), frame_max);
            let _ = connection.close(200, "done".into()).await;
        }
    }
}
