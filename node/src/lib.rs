//! tasknode: one node of a distributed task-processing system.
//!
//! A node accepts tasks over a TCP line protocol, records each in PostgreSQL, publishes it to
//! a durable RabbitMQ queue, and runs tasks taken from that queue (from any node) on a pool of
//! worker threads. Large payloads and results live in an S3 bucket. The node that accepted a
//! task answers its client, whichever node ran it.
//!
//! # Layout
//!
//! - [`config`]: layered, typed settings (defaults ← node file ← `TASKNODE__*` environment).
//! - [`startup`]: [`startup::Node::build`] checks dependencies and starts the actors.
//! - [`actors`]: one actor per file (listener, session, publisher, reply router, consumer,
//!   worker pool, persister, uploader); its module docs hold the supervision table.
//! - [`service`]: what a node does for a client (submit, wait, status, result).
//! - [`protocol`]: request parsing, response shapes and the line codec.
//! - [`kinds`]: the task kinds, one file each behind [`kinds::TaskKind`].
//! - [`db`]: pool, embedded migrations and queries on `tasks`.
//! - [`storage`]: the S3 bucket (rusoto stays in this one module).
//! - [`amqp`]: connection helper, topology and message bodies.
//! - [`testing`]: helpers that start real nodes against isolated databases, queues and prefixes.

pub mod actors;
pub mod amqp;
pub mod config;
pub mod db;
pub mod kinds;
pub mod protocol;
pub mod service;
pub mod startup;
pub mod storage;
pub mod supervision;
pub mod telemetry;
pub mod testing;
