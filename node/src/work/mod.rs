//! Workers of any language: connections that said `WORK <kind>…` (see
//! [`protocol::work`]) run the tasks of kinds no node builds in.
//!
//! - [`kinds`]: which external kinds a node accepts (declared, or registered by a worker);
//! - [`hub`]: the workers connected to this node, the tasks leased to them, the fences;
//! - [`lease`]: leases' names, what a worker says of one, reports between nodes;
//! - [`taps`]: one consumer per external kind, taking only as many deliveries as the
//!   workers here have free slots.

pub mod hub;
pub mod kinds;
pub mod lease;
pub mod taps;

pub use hub::WorkHub;
pub use kinds::ExternalKinds;
