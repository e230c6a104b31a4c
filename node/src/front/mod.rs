//! The front ends, above [`crate::service`]: the line protocol ([`line`]: the listener and a
//! session per connection) and the HTTP API ([`http`]). Both serve the same services; nothing
//! below them imports from here.

pub mod http;
pub mod line;
