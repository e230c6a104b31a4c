//! Test support for tasknode (a dev-dependency only: none of it ships in a node).
//!
//! # Layout
//!
//! - [`env`](mod@env): [`TestEnv`], one isolated deployment: its own database, queues, bucket key
//!   prefix and run log; nodes started in it, in-process ([`TestNode`]) or as processes
//!   ([`ChildNode`]).
//! - [`lines`]: [`Lines`], raw protocol lines on the typed client, as `nc` would send them.
//! - [`wait`]: waiting for an event (a task's state, a row, a drained queue) instead of
//!   sleeping.
//! - [`proxy`]: [`Proxy`], a TCP proxy a test can cut to take a dependency away.
//! - [`tls`]: [`TestCa`], certificates made at test time.
//!
//! Service addresses default to the local ones and can be overridden with
//! `TASKNODE_TEST_PG` (an admin URL, database `postgres`), `TASKNODE_TEST_AMQP` and
//! `TASKNODE_TEST_S3` (endpoint).

#![allow(clippy::unwrap_used)] // test support: a failed setup step fails the test

pub mod env;
pub mod lines;
pub mod nodes;
pub mod proxy;
pub mod tls;
pub mod wait;

pub use env::{amqp_url, pg_admin_url, s3_endpoint, sleep_dies_fast, TestEnv, TEST_BUCKET};
pub use lines::Lines;
pub use nodes::{connect, connect_as, free_port, reconnect, ChildNode, TestNode};
pub use protocol::Client;
pub use proxy::{url_addr, Proxy, State as ProxyState};
pub use tls::TestCa;
pub use wait::{poll_until, wait_final, wait_status};

/// The task id in an answer line.
pub fn id_of(answer: &serde_json::Value) -> uuid::Uuid {
    let id = answer["id"].as_str();
    let id = id.unwrap_or_else(|| panic!("no task id in {answer}"));
    uuid::Uuid::parse_str(id).unwrap_or_else(|e| panic!("`{id}` is not a task id: {e}"))
}
