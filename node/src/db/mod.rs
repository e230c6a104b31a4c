//! PostgreSQL: the connection pool, embedded migrations and the task queries.

pub mod connect;
pub mod control;
pub mod external;
pub mod firing;
pub mod fleet;
pub mod listed;
pub mod listing;
pub mod lock;
pub mod models;
pub mod outbox;
pub mod outcomes;
pub mod rescue;
pub mod retention;
pub mod schedules;
pub mod schema;
pub mod sql;
pub mod store;
pub mod tasks;
pub mod uploads;

use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::bb8::{Pool as Bb8Pool, RunError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::AsyncPgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

pub use connect::Database;
pub use store::Store;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

pub type DbPool = Bb8Pool<AsyncPgConnection>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Pool(#[from] RunError),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection failed: {0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("database write failed: {0}")]
    Write(String),
}

/// A pool of `size` connections to `db`. Connections are made lazily and re-made after a
/// failure, so a database restart heals by itself.
pub async fn connect_pool(db: &Database, size: u32) -> Result<DbPool, DbError> {
    let mut config = ManagerConfig::default();
    config.custom_setup = db.setup();
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(db.url(), config);
    Bb8Pool::builder()
        .max_size(size)
        .connection_timeout(Duration::from_secs(5))
        .test_on_check_out(false)
        .build(manager)
        .await
        .map_err(|e| DbError::Connect(e.to_string()))
}

/// Apply pending migrations. They run on their own thread (diesel's migration harness is
/// synchronous, and actix's runtime is single-threaded) over a connection made here, which
/// this runtime drives.
pub async fn run_migrations(db: &Database) -> Result<Vec<String>, DbError> {
    let conn = db
        .establish()
        .await
        .map_err(|e| DbError::Connect(e.to_string()))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("migrations".into())
        .spawn(move || {
            let result = (|| {
                let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
                let applied = conn
                    .run_pending_migrations(MIGRATIONS)
                    .map_err(|e| DbError::Migration(e.to_string()))?;
                Ok(applied.iter().map(|v| v.to_string()).collect())
            })();
            let _ = tx.send(result);
        })
        .map_err(|e| DbError::Migration(e.to_string()))?;
    rx.await
        .map_err(|_| DbError::Migration("migration thread died".into()))?
}
