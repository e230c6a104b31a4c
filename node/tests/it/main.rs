//! Integration tests: real nodes against the real RabbitMQ, PostgreSQL and S3 store, each test
//! in its own database, queues and key prefix (see the `tasknode-testkit` crate).

#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion

mod accepting;
mod access;
mod api;
mod chaos;
mod cluster;
mod console;
mod control;
mod database;
mod ends;
mod faults;
mod fleet;
mod flood;
mod http;
mod http_bodies;
mod http_control;
mod http_fleet;
mod http_limits;
mod lanes;
mod metrics;
mod priorities;
mod protocol;
mod python_sdk;
mod rescue;
mod retention;
mod schedules;
mod settings;
mod tasks;
mod tls;
mod torture;
mod workers;
mod workers_http;
