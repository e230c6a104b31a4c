//! The node's actors, one per file.
//!
//! | actor | context | talks to | on failure |
//! |---|---|---|---|
//! | [`listener::SocketListener`] | async | starts a session per connection | logs a failed accept, keeps listening |
//! | [`session::Session`] | async, one per TCP peer | [`crate::service::Services`] | answers an error line, keeps the connection |
//! | [`publisher::Publisher`] | async, `Supervisor` | RabbitMQ (confirm channel) | restarts with backoff; publishes fail fast meanwhile |
//! | [`replies::ReplyRouter`] | async, `Supervisor` | RabbitMQ (this node's reply queue) | restarts with backoff; waiters survive and also poll rows |
//! | [`consumer::TaskConsumer`] | async, `Supervisor` | RabbitMQ (task queue), workers, persister, uploader, publisher | restarts with backoff; unacked deliveries are redelivered by the broker |
//! | [`worker_pool::Worker`] | `SyncArbiter`, `workers.count` threads | uploader (payload streams) | a panicking handler fails only its task; a timed-out one gets its executor thread replaced |
//!
//! The supervised actors share [`crate::supervision`]'s restart budget: past it the node
//! exits non-zero for its process supervisor to restart.
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
