//! What nodes send each other through RabbitMQ, version 1: task messages on the task queue
//! (and its delay and dead-letter queues) and reply batches on a node's reply queue.
//!
//! Every message names its version in the AMQP `type` property ([`TASKS_V1`],
//! [`REPLIES_V1`]). A message without one is read as version 1 (nodes before the property);
//! a message of an unknown version is refused, not misread. Bodies are JSON.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// Most tasks in one message.
pub const MAX_TASKS_PER_MESSAGE: usize = 256;

/// The `type` of a task message: a JSON array of [`TaskMessage`]s.
pub const TASKS_V1: &str = "tasknode.tasks.v1";
/// The `type` of a reply message: a [`ReplyBatch`].
pub const REPLIES_V1: &str = "tasknode.replies.v1";

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    #[error("message of unknown type `{0}` (a newer node?)")]
    UnknownVersion(String),
    #[error("unreadable message body: {0}")]
    Body(#[from] serde_json::Error),
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

/// About how many bytes `task` takes in a task message (its payload in base64, and room for
/// the rest of its fields), without encoding it.
pub fn encoded_size(task: &TaskMessage) -> usize {
    const FIELDS: usize = 512;
    let payload = match &task.payload {
        PayloadRef::Inline { data } => data.len().div_ceil(3) * 4,
        PayloadRef::Object { key, .. } => key.len(),
    };
    FIELDS + payload + task.kind.len() + task.submitted_by.len()
}

/// One task on the task queue. Tasks accepted together travel together in one message. The
/// result goes to the task's `reply_to` queue, when set.
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
    /// The token (by name) that submitted the task; none from an open node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// 0 (the default) to 9; higher runs first (see [`crate::lanes`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u8,
    /// The idempotency key it was submitted with (shown to the worker that runs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

fn is_zero(p: &u8) -> bool {
    *p == 0
}

fn check_version(kind: Option<&str>, want: &str) -> Result<(), MessageError> {
    match kind {
        None => Ok(()),
        Some(k) if k == want => Ok(()),
        Some(other) => Err(MessageError::UnknownVersion(other.to_string())),
    }
}

/// The tasks of a message of type `kind`: a JSON array, or (version 1 before batching) one
/// object.
pub fn decode_tasks(kind: Option<&str>, body: &[u8]) -> Result<Vec<TaskMessage>, MessageError> {
    check_version(kind, TASKS_V1)?;
    match serde_json::from_slice::<Vec<TaskMessage>>(body) {
        Ok(tasks) => Ok(tasks),
        Err(_) => Ok(vec![serde_json::from_slice::<TaskMessage>(body)?]),
    }
}

/// One finished task for the node whose client waits for it: the task view as the running
/// node wrote it, passed through to the client unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub id: Uuid,
    pub view: Box<RawValue>,
}

impl Reply {
    pub fn new(id: Uuid, view: &impl Serialize) -> Result<Reply, serde_json::Error> {
        Ok(Reply {
            id,
            view: serde_json::value::to_raw_value(view)?,
        })
    }

    /// The view's JSON, as the client gets it (no copy).
    pub fn into_json(self) -> bytes::Bytes {
        let text: Box<str> = self.view.into();
        bytes::Bytes::from(text.into_string())
    }
}

/// The largest reply message, in bytes (about: the batch's JSON framing is not counted).
pub const MAX_REPLY_MESSAGE: usize = 1024 * 1024;

/// The replies bound for one node, in one message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplyBatch(pub Vec<Reply>);

impl ReplyBatch {
    /// `replies` in batches of at most `max` bytes of views each. A reply larger than `max`
    /// on its own is left out (its waiting session finds the result in the row instead);
    /// their number is the second value.
    pub fn split(replies: Vec<Reply>, max: usize) -> (Vec<ReplyBatch>, usize) {
        let mut batches = Vec::new();
        let mut current = ReplyBatch::default();
        let (mut size, mut left_out) = (0, 0);
        for reply in replies {
            let n = reply.view.get().len();
            if n > max {
                left_out += 1;
                continue;
            }
            if size + n > max && !current.0.is_empty() {
                batches.push(std::mem::take(&mut current));
                size = 0;
            }
            size += n;
            current.0.push(reply);
        }
        if !current.0.is_empty() {
            batches.push(current);
        }
        (batches, left_out)
    }

    pub fn decode(kind: Option<&str>, body: &[u8]) -> Result<ReplyBatch, MessageError> {
        check_version(kind, REPLIES_V1)?;
        Ok(serde_json::from_slice(body)?)
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

    fn task() -> TaskMessage {
        TaskMessage {
            id: Uuid::new_v4(),
            kind: "echo".into(),
            payload: PayloadRef::Inline {
                data: vec![0, 255, 10],
            },
            submitted_by: "n1".into(),
            reply_to: Some("q".into()),
            accepted_at: Some(chrono::Utc::now()),
            owner: Some("alice".into()),
            priority: 7,
            key: None,
        }
    }

    #[test]
    fn task_messages_round_trip_one_or_many() {
        let m = task();
        let one = serde_json::to_vec(&m).unwrap();
        assert_eq!(decode_tasks(None, &one).unwrap(), vec![m.clone()]);
        let many = serde_json::to_vec(&vec![m.clone(), m.clone()]).unwrap();
        assert_eq!(
            decode_tasks(Some(TASKS_V1), &many).unwrap(),
            vec![m.clone(), m]
        );
        assert!(decode_tasks(None, b"{nope").is_err());
    }

    #[test]
    fn an_unknown_version_is_refused_not_misread() {
        let body = serde_json::to_vec(&vec![task()]).unwrap();
        assert!(matches!(
            decode_tasks(Some("tasknode.tasks.v2"), &body),
            Err(MessageError::UnknownVersion(_))
        ));
        assert!(ReplyBatch::decode(Some(TASKS_V1), b"[]").is_err());
    }

    #[test]
    fn reply_messages_stay_under_their_bound() {
        let reply = |text: &str| Reply::new(Uuid::new_v4(), &text).unwrap();
        // Views of 12 bytes each ("\"aaaaaaaaaa\"").
        let replies: Vec<Reply> = (0..10).map(|_| reply(&"a".repeat(10))).collect();
        let (batches, left_out) = ReplyBatch::split(replies, 40);
        assert_eq!(left_out, 0);
        assert_eq!(
            batches.iter().map(|b| b.0.len()).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        let (batches, left_out) = ReplyBatch::split(vec![reply(&"b".repeat(50)), reply("c")], 40);
        assert_eq!((batches.len(), batches[0].0.len(), left_out), (1, 1, 1));
    }

    #[test]
    fn replies_pass_the_view_through_unchanged() {
        let id = Uuid::new_v4();
        let view = serde_json::json!({"id": id, "status": "succeeded", "result": "A\u{e9}"});
        let batch = ReplyBatch(vec![Reply::new(id, &view).unwrap()]);
        let body = serde_json::to_vec(&batch).unwrap();
        let back = ReplyBatch::decode(Some(REPLIES_V1), &body).unwrap();
        assert_eq!(back.0[0].id, id);
        let reply = back.0.into_iter().next().unwrap();
        assert_eq!(reply.into_json(), serde_json::to_vec(&view).unwrap());
    }
}
