//! RabbitMQ: connecting on actix's tokio runtime and the queue topology. (What travels in the
//! messages is [`crate::messages`]; retry queue names are [`crate::retry`]'s.)
//!
//! lapin's own recovery is not relied on: each AMQP actor owns its connection and makes a new
//! one (with backoff) when it is lost; [`link`] is the lifecycle they share.

pub mod link;

use crate::retry;
use async_rs::Runtime;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::Duration;

/// Connect to `url` on the current (actix) tokio runtime.
pub async fn connect(url: &str, name: &str) -> Result<Connection, lapin::Error> {
    Connection::connect_with_runtime(
        url,
        ConnectionProperties::default().with_connection_name(name.to_string().into()),
        Runtime::tokio_current(),
    )
    .await
}

/// Declare the durable task queue every node consumes.
pub async fn declare_task_queue(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    declare_durable(channel, name).await
}

async fn declare_durable(channel: &Channel, name: &str) -> Result<(), lapin::Error> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map(|_| ())
}

/// Declare a delay queue: messages expire after `delay_ms` and are dead-lettered back onto
/// the task queue. One queue per delay, so no message waits behind a longer one; the delay is
/// in the name, so changing `tasks.retry_base_ms` makes new queues instead of clashing.
pub async fn declare_retry_queue(
    channel: &Channel,
    task_queue: &str,
    delay_ms: u64,
) -> Result<String, lapin::Error> {
    let name = retry::retry_queue(task_queue, delay_ms);
    let mut args = FieldTable::default();
    args.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(delay_ms as i64),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(task_queue.into()),
    );
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;
    Ok(name)
}

/// Declare the durable dead-letter queue.
pub async fn declare_dead_queue(channel: &Channel, task_queue: &str) -> Result<(), lapin::Error> {
    declare_durable(channel, &retry::dead_queue(task_queue)).await
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
