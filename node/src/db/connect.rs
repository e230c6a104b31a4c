//! Reaching PostgreSQL: the URL, and TLS when it asks for it (`sslmode=require`) or when a CA
//! is configured (`database.tls_ca`, then the server's certificate is checked).

use crate::tls;
use diesel::ConnectionError;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::config::SslMode;

/// Where the database is and how to speak to it.
#[derive(Clone)]
pub struct Database {
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Plain TCP, unless `url` says `sslmode=require`.
    pub fn new(url: &str) -> Result<Database, super::DbError> {
        Database::with_ca(url, None)
    }

    /// TLS when `url` says `sslmode=require` (the server not checked, as libpq does) or when
    /// `ca` is given (the server's certificate must lead to it and name the host).
    pub fn with_ca(url: &str, ca: Option<&Path>) -> Result<Database, super::DbError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| super::DbError::Connect(format!("database.url: {e}")))?;
        let wanted = match config.get_ssl_mode() {
            SslMode::Disable => false,
            SslMode::Require => true,
            _ => ca.is_some(),
        };
        let tls = wanted
            .then(|| tls::client_config(ca))
            .transpose()
            .map_err(|e| super::DbError::Connect(e.to_string()))?;
        Ok(Database {
            url: url.to_string(),
            tls,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// One new connection.
    pub async fn establish(&self) -> Result<AsyncPgConnection, ConnectionError> {
        establish(&self.url, self.tls.clone()).await
    }

    /// How a pool makes its connections.
    pub fn setup(&self) -> diesel_async::pooled_connection::SetupCallback<AsyncPgConnection> {
        let tls = self.tls.clone();
        Box::new(move |url| Box::pin(establish_owned(url.to_string(), tls.clone())))
    }
}

async fn establish_owned(
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<AsyncPgConnection, ConnectionError> {
    establish(&url, tls).await
}

async fn establish(
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<AsyncPgConnection, ConnectionError> {
    let Some(tls) = tls else {
        return AsyncPgConnection::establish(url).await;
    };
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| ConnectionError::InvalidConnectionUrl(e.to_string()))?;
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
    let (client, connection) = config
        .connect(connector)
        .await
        .map_err(|e| ConnectionError::BadConnection(with_causes(&e)))?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

/// `e` and what caused it ("error performing TLS handshake: invalid peer certificate: …").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
