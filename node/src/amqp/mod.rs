//! RabbitMQ: connecting on actix's tokio runtime to one broker of a list ([`Broker`]), and the
//! queue [`topology`]. (What travels in the
//! messages is [`crate::messages`]; retry queue names are [`crate::retry`]'s.)
//!
//! lapin's own recovery is not relied on: each AMQP actor owns its connection and makes a new
//! one (with backoff) when it is lost; [`link`] is the lifecycle they share.

pub mod link;
pub mod topology;

pub use topology::{QueueType, Topology};

mod broker;

pub use broker::Broker;

use lapin::Connection;
use std::time::Duration;

/// Connect to `url` (system roots for `amqps://`) on the current tokio runtime.
pub async fn connect(url: &str, name: &str) -> Result<Connection, lapin::Error> {
    Broker::new(url).connect(name).await
}

/// Exponential backoff with jitter for reconnect attempt `attempt` (0-based), capped at 10 s.
pub fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(7)).min(10_000);
    let jitter = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0))
        % (base / 2 + 1);
    Duration::from_millis(base / 2 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(100));
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(30) <= Duration::from_secs(10));
    }
}
