//! RabbitMQ: connecting on actix's tokio runtime, the queue topology, and the message bodies.
//!
//! lapin's own recovery is not relied on: each AMQP actor owns its connection and makes a new
//! one (with backoff) when it is lost.

use async_rs::Runtime;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

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

/// The queue a failed task waits in for `delay_ms` before flowing back to `task_queue`.
pub fn retry_queue(task_queue: &str, delay_ms: u64) -> String {
    format!("{task_queue}.retry.{delay_ms}ms")
}

/// Where tasks that used up their attempts are kept.
pub fn dead_queue(task_queue: &str) -> String {
    format!("{task_queue}.dead")
}

/// Declare a delay queue: messages expire after `delay_ms` and are dead-lettered back onto
/// the task queue. One queue per delay, so no message waits behind a longer one; the delay is
/// in the name, so changing `tasks.retry_base_ms` makes new queues instead of clashing.
pub async fn declare_retry_queue(
    channel: &Channel,
    task_queue: &str,
    delay_ms: u64,
) -> Result<String, lapin::Error> {
    let name = retry_queue(task_queue, delay_ms);
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
    declare_durable(channel, &dead_queue(task_queue)).await
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

/// Where a task's payload is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "lowercase")]
pub enum PayloadRef {
    Inline {
        #[serde(with = "b64")]
        data: Vec<u8>,
    },
    Object {
        key: String,
        size: u64,
    },
}

impl PayloadRef {
    pub fn size(&self) -> u64 {
        match self {
            PayloadRef::Inline { data } => data.len() as u64,
            PayloadRef::Object { size, .. } => *size,
        }
    }
}

/// One task on the task queue. A message carries a JSON array of these (tasks accepted
/// together travel together); a single object is accepted too. The result goes to the task's
/// `reply_to` queue, when set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMessage {
    pub id: Uuid,
    pub kind: String,
    pub payload: PayloadRef,
    pub submitted_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// When the task was accepted (the row's `created_at`, also for a row first written by
    /// the node that runs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The tasks in a message body: a JSON array, or one object.
pub fn decode_tasks(body: &[u8]) -> Result<Vec<TaskMessage>, serde_json::Error> {
    match serde_json::from_slice::<Vec<TaskMessage>>(body) {
        Ok(tasks) => Ok(tasks),
        Err(_) => serde_json::from_slice::<TaskMessage>(body).map(|t| vec![t]),
    }
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_message_round_trips() {
        let m = TaskMessage {
            id: Uuid::new_v4(),
            kind: "echo".into(),
            payload: PayloadRef::Inline {
                data: vec![0, 255, 10],
            },
            submitted_by: "n1".into(),
            reply_to: Some("q".into()),
            accepted_at: Some(chrono::Utc::now()),
        };
        let one = serde_json::to_vec(&m).unwrap();
        assert_eq!(decode_tasks(&one).unwrap(), vec![m.clone()]);
        let many = serde_json::to_vec(&vec![m.clone(), m.clone()]).unwrap();
        assert_eq!(decode_tasks(&many).unwrap(), vec![m.clone(), m]);
        assert!(decode_tasks(b"{nope").is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(100));
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(30) <= Duration::from_secs(10));
    }
}
