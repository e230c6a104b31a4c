//! Where and how taskctl reaches the fleet: the servers, plain TCP or TLS (`--tls`, `--ca`),
//! and the token it says `AUTH` with.

use anyhow::{Context, Result};
use protocol::{Client, ClientError, Transport};
use std::path::Path;

#[derive(Clone)]
pub struct Fleet {
    pub servers: Vec<String>,
    transport: Transport,
    token: Option<String>,
}

impl Fleet {
    /// With `tls`, nodes are checked against the CA certificates in `ca` (PEM), or against
    /// the system's roots without one.
    pub fn new(
        servers: Vec<String>,
        tls: bool,
        ca: Option<&Path>,
        token: Option<String>,
    ) -> Result<Fleet> {
        let transport = if tls || ca.is_some() {
            Transport::tls(protocol::transport::client_config(ca).context("--tls")?)
        } else {
            Transport::plain()
        };
        Ok(Fleet {
            servers,
            transport,
            token,
        })
    }

    /// The token requests carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Connect to the first server that answers (from index `start`) and `AUTH`.
    pub async fn connect(&self, start: usize) -> Result<Client, ClientError> {
        let mut conn = Client::connect_any(&self.servers, start, &self.transport).await?;
        if let Some(token) = &self.token {
            conn.auth(token).await?;
        }
        Ok(conn)
    }
}
