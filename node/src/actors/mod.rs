//! The node's actors, one per file.
//!
//! | actor | context | talks to | on failure |
//! |---|---|---|---|
//! | [`listener::SocketListener`] | async | starts a session per connection | logs a failed accept, keeps listening |
//! | [`session::Session`] | async, one per TCP peer | [`crate::service::Services`] | answers an error line, keeps the connection |
//! | [`publisher::Publisher`] | async | RabbitMQ (confirm channel) | reconnects with backoff; publishes fail fast meanwhile |
//! | [`replies::ReplyRouter`] | async | RabbitMQ (this node's reply queue) | reconnects with backoff; waiters fall back to polling rows |
//! | [`consumer::TaskConsumer`] | async | RabbitMQ (task queue), workers, persister, uploader, publisher | reconnects; unacked deliveries are redelivered by the broker |
//! | [`worker_pool::Worker`] | `SyncArbiter`, `workers.count` threads | uploader (payload streams) | a panicking handler is caught and fails only its task |
//! | [`persister::Persister`] | async | PostgreSQL (bb8 pool) | the pool replaces broken connections; callers get `DbError` |
//! | [`uploader::Uploader`] | async | S3 store | callers get `StorageError`; multipart uploads are aborted |

pub mod consumer;
pub mod listener;
pub mod persister;
pub mod publisher;
pub mod replies;
pub mod session;
pub mod uploader;
pub mod worker_pool;
