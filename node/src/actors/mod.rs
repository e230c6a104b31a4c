//! The node's actors, one per file (the line protocol's listener and sessions, being front
//! ends, live in [`crate::front::line`]).
//!
//! | actor | context | talks to | on failure |
//! |---|---|---|---|
//! | [`publisher::Publisher`] | async, `Supervisor` | RabbitMQ (confirm channel) | restarts with backoff; publishes fail fast meanwhile |
//! | [`replies::ReplyRouter`] | async, `Supervisor` | RabbitMQ (this node's reply queue) | restarts with backoff; waiters survive, and the watcher reads their rows |
//! | [`consumer::TaskConsumer`] | async, `Supervisor` | RabbitMQ (task queue); each delivery goes to [`crate::delivery`] | restarts with backoff; unacked deliveries are redelivered by the broker |
//! | [`worker_pool::Worker`] | `SyncArbiter`, `workers.count` threads | uploader (payload streams) | a panicking handler fails only its task; a timed-out one gets its executor thread replaced |
//! | [`relay::Relay`] | async, periodic | store (outbox claims), publisher | a failed claim or publish is tried again on the next round |
//! | [`watcher::Watcher`] | async, periodic | store (one read a second for every task waited on) | a failed read is tried on the next round |
//! | [`heartbeat::Heartbeat`] | async, periodic | PostgreSQL (this node's state from [`crate::fleet::local`] and its seconds, each second) | a failed beat is skipped |
//! | [`controller::Controller`] | async, periodic | store (paused lanes and kinds, cancellations, old keys) | tried again next round |
//! | [`scheduler::Scheduler`] | async, periodic | store (due schedules' tasks) | tried again next round |
//! | [`retention::Retention`] | async, periodic | PostgreSQL (day partitions, one node at a time), S3 store | tried again after 10 s |
//! | [`janitor::Janitor`] | async, periodic | RabbitMQ (`.dead` queues, its own connection), PostgreSQL (stuck rows, one node at a time) | tried again next round |
//! | [`uploader::Uploader`] | async | S3 store | callers get `StorageError`; multipart uploads are aborted |
//! | [`depths::QueueDepths`] | async | RabbitMQ (passive declares of each lane's queues) | a failed look answers what it knew |
//!
//! The periodic actors run their rounds through [`every`]. The supervised actors share
//! [`crate::amqp::link`]'s lifecycle and [`crate::supervision`]'s restart budget: past it the
//! node exits non-zero for its process supervisor to restart.

pub mod consumer;
pub mod controller;
pub mod depths;
pub mod every;
pub mod heartbeat;
pub mod janitor;
pub mod publisher;
pub mod relay;
pub mod replies;
pub mod retention;
pub mod scheduler;
pub mod uploader;
pub mod watcher;
pub mod worker_pool;

use crate::kinds::Registry;
use crate::storage::Storage;
use actix::prelude::*;

pub use crate::mailbox::Settle;

/// The node's long-lived actors and what both sides of a node (serving clients, running
/// deliveries) need with them. Cheap to clone.
#[derive(Clone)]
pub struct Handles {
    pub node: String,
    pub kinds: Registry,
    /// The task rows.
    pub store: crate::db::Store,
    pub uploader: Addr<uploader::Uploader>,
    pub publisher: Addr<publisher::Publisher>,
    pub replies: Addr<replies::ReplyRouter>,
    /// Wakes waiting clients from task rows when a reply does not come.
    pub watcher: Addr<watcher::Watcher>,
    pub storage: Storage,
    /// RabbitMQ, PostgreSQL and the bucket, asked at most once a second.
    pub health: crate::health::Health,
    /// This node's reply queue: replies for tasks it accepted come here.
    pub reply_queue: String,
    /// Publishes accepted tasks (see [`crate::publishing`]).
    pub outbox: crate::publishing::Outbox,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// Paused lanes and kinds; runs in progress here.
    pub control: crate::control::Control,
    /// Asks the broker how deep each lane's queue is (for `/metrics`).
    pub depths: Addr<depths::QueueDepths>,
    /// The workers connected here and the tasks leased to them (external kinds).
    pub work: Addr<crate::work::WorkHub>,
    /// The external kinds the fleet accepts.
    pub external: crate::work::ExternalKinds,
}
