//! Rows of the `tasks` table.

use super::schema::tasks;
use crate::protocol::TaskStatus;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = tasks, check_for_backend(diesel::pg::Pg))]
pub struct TaskRow {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub payload: Option<Vec<u8>>,
    pub payload_key: Option<String>,
    pub payload_size: i64,
    pub result: Option<Vec<u8>>,
    pub result_key: Option<String>,
    pub result_size: Option<i64>,
    pub error: Option<String>,
    pub attempts: i32,
    pub submitted_by: String,
    pub node: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// When a failed run is retried (set while waiting in a delay queue).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl TaskRow {
    /// The row's status; an unknown string (a newer schema) reads as `queued`.
    pub fn status(&self) -> TaskStatus {
        TaskStatus::parse(&self.status).unwrap_or(TaskStatus::Queued)
    }
}

/// A task as accepted: what its row holds before it runs.
#[derive(Debug, Clone, Copy)]
pub struct NewTask<'a> {
    pub id: Uuid,
    pub kind: &'a str,
    pub payload: Option<&'a [u8]>,
    pub payload_key: Option<&'a str>,
    pub payload_size: i64,
    pub submitted_by: &'a str,
    pub created_at: DateTime<Utc>,
}

impl<'a> NewTask<'a> {
    /// The row of a task message.
    pub fn of(task: &'a crate::amqp::TaskMessage) -> Self {
        let (payload, payload_key) = match &task.payload {
            crate::amqp::PayloadRef::Inline { data } => (Some(data.as_slice()), None),
            crate::amqp::PayloadRef::Object { key, .. } => (None, Some(key.as_str())),
        };
        NewTask {
            id: task.id,
            kind: &task.kind,
            payload,
            payload_key,
            payload_size: task.payload.size() as i64,
            submitted_by: &task.submitted_by,
            created_at: task.accepted_at.unwrap_or_else(Utc::now),
        }
    }
}

/// The outcome of a run, as written to the row.
#[derive(Debug, Clone)]
pub struct Finish {
    pub status: String,
    pub result: Option<Vec<u8>>,
    pub result_key: Option<String>,
    pub result_size: Option<i64>,
    pub error: Option<String>,
}
