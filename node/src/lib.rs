//! tasknode: one node of a distributed task-processing system.
//!
//! A node accepts tasks over a TCP line protocol (the `tasknode-protocol` crate, shared with
//! `taskctl`), publishes them to a durable RabbitMQ queue, runs tasks taken from that queue
//! (from any node) on a pool of worker threads, and records every task in PostgreSQL. Large
//! payloads and results live in an S3 bucket. The node that accepted a task answers its
//! client, whichever node ran it.
//!
//! # Layout, in the order a task travels
//!
//! - [`startup`]: [`startup::Node::build`] checks every dependency and starts the actors,
//!   in named steps;
//!   [`config`] holds the layered, typed settings.
//! - [`front::line::listener`] accepts a connection (over [`tls`] when configured), and
//!   [`auth`] says who it is after `AUTH`; [`front::line::session`] reads its requests (the
//!   protocol's codec), dispatches them and writes the answers in order.
//! - [`front::http`]: the HTTP API beside the line protocol, on the same services.
//! - [`service`]: what a node does for a client: [`service::intake`] puts a payload inline
//!   or in the bucket, [`service::Services::submit`] accepts a task (`service/accept.rs`,
//!   the one way in: its row and outbox entry, or a publish with confirm and one wait),
//!   [`service::results`] finds a result to send back.
//! - [`publishing`] publishes accepted tasks, and [`actors::relay`] what the outbox holds
//!   past its lease;
//!   [`actors::publisher`] puts tasks on their [`lanes`]' queues as [`messages`] (version 1),
//!   confirmed.
//! - [`actors::consumer`] (one per lane) takes deliveries off the queue; [`delivery`] runs each one through
//!   start, run ([`actors::worker_pool`], [`kinds`]) and complete (the one way an outcome
//!   is recorded), with [`retry`] deciding delays and burial.
//! - [`db::Store`] writes every row (group commit) and reads them; [`actors::uploader`] moves bytes to
//!   and from the bucket ([`storage`]).
//! - [`actors::replies`] hands a reply to the session waiting for it; [`view`] makes the
//!   task view a client gets from a row.
//! - [`amqp`]: connecting (plain or TLS), topology and the lifecycle the AMQP actors share;
//!   [`supervision`]: their restart budget; [`mailbox`]: asking an actor; [`metrics`]: what a
//!   node counts, for Prometheus; [`actors::every`]: the periodic actors' one loop.
//! - [`control`] and [`actors::controller`]: paused lanes and kinds, cancelled runs, keys;
//!   [`actors::scheduler`]: periodic tasks.
//! - [`fleet`] and [`actors::heartbeat`]: every node's state and recent seconds, in
//!   PostgreSQL, so that any node (and its web console) shows the whole fleet.

pub mod actors;
pub mod amqp;
pub mod auth;
pub mod config;
pub mod control;
pub mod db;
pub mod delivery;
pub mod fleet;
pub mod front;
pub mod health;
pub mod kinds;
pub mod lanes;
pub mod mailbox;
pub mod messages;
pub mod metrics;
pub mod periodic;
pub mod publishing;
pub mod retry;
pub mod service;
pub mod startup;
pub mod storage;
pub mod supervision;
pub mod telemetry;
pub mod tls;
pub mod view;
pub mod work;
