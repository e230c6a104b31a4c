//! The line protocol: [`listener::SocketListener`] accepts connections (over TLS when
//! configured) and starts a [`session::Session`] actor for each.

pub mod listener;
pub mod session;
