//! What the fleet knows of itself, for the web console and `GET /v1/overview`.
//!
//! - [`recent`]: this node's finished tasks of the current second (counts and a latency
//!   histogram), taken each second by the heartbeat;
//! - [`crate::actors::heartbeat`] writes them and the node's state to PostgreSQL every second;
//! - [`crate::db::fleet`] reads every node's back and sums them into an [`Overview`].
//!
//! [`Overview`]: protocol::fleet::Overview

pub mod local;
pub mod recent;

/// A node silent this long is shown down.
pub const SILENT: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
/// The seconds an overview shows.
pub const WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// Seconds are kept this long (then any node prunes them).
pub const KEEP_SECONDS: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// A node not seen this long is forgotten.
pub const FORGET_NODE: chrono::TimeDelta = chrono::TimeDelta::hours(1);
