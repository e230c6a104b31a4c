//! Rows of the `tasks` table.

use super::schema::tasks;
use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::sql_types::Text;
use protocol::TaskStatus;
use uuid::Uuid;

/// The `status` column as read: a known [`TaskStatus`], or an error naming the value (a row
/// written by a newer node is refused, not misread).
#[derive(Debug, Clone, Copy, diesel::deserialize::FromSqlRow)]
pub struct StatusColumn(TaskStatus);

impl FromSql<Text, Pg> for StatusColumn {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(value)?;
        TaskStatus::parse(&text)
            .map(StatusColumn)
            .ok_or_else(|| format!("unknown task status `{text}` in the tasks table").into())
    }
}

impl From<StatusColumn> for TaskStatus {
    fn from(c: StatusColumn) -> Self {
        c.0
    }
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = tasks, check_for_backend(diesel::pg::Pg))]
pub struct TaskRow {
    pub id: Uuid,
    pub kind: String,
    #[diesel(deserialize_as = StatusColumn)]
    pub status: TaskStatus,
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
    /// The token (by name) that submitted the task.
    pub owner: Option<String>,
    /// 0 to 9, higher first.
    pub priority: i16,
    /// When a `scheduled` task is due.
    pub run_at: Option<DateTime<Utc>>,
    /// The idempotency key it was submitted with.
    pub key: Option<String>,
    /// 0 to 100, as its worker last reported it (external kinds).
    pub progress: Option<i16>,
    pub progress_note: Option<String>,
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
    pub owner: Option<&'a str>,
    pub priority: i16,
}

impl<'a> NewTask<'a> {
    /// The row of a task message.
    pub fn of(task: &'a crate::messages::TaskMessage) -> Self {
        let (payload, payload_key) = match &task.payload {
            crate::messages::PayloadRef::Inline { data } => (Some(data.as_slice()), None),
            crate::messages::PayloadRef::Object { key, .. } => (None, Some(key.as_str())),
        };
        NewTask {
            id: task.id,
            kind: &task.kind,
            payload,
            payload_key,
            payload_size: task.payload.size() as i64,
            submitted_by: &task.submitted_by,
            created_at: task.accepted_at.unwrap_or_else(Utc::now),
            owner: task.owner.as_deref(),
            priority: task.priority.into(),
        }
    }
}

/// The longest error text a row keeps, in characters.
pub const MAX_ERROR_CHARS: usize = 2000;

/// `text` as a row can hold it: PostgreSQL's `text` refuses NUL, so each is written `\0`,
/// and text past [`MAX_ERROR_CHARS`] is cut (ending with `…`). Error messages quote what a
/// client sent, so they may carry either.
pub fn row_text(text: &str) -> String {
    let text = text.replace('\0', "\\0");
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        None => text,
        Some(_) => {
            let (end, _) = text
                .char_indices()
                .nth(MAX_ERROR_CHARS - 1)
                .expect("longer than the bound");
            format!("{}…", &text[..end])
        }
    }
}

/// The outcome of a run, as written to the row.
#[derive(Debug, Clone)]
pub struct Finish {
    pub status: TaskStatus,
    pub result: Option<Vec<u8>>,
    pub result_key: Option<String>,
    pub result_size: Option<i64>,
    pub error: Option<String>,
}

impl Finish {
    /// Succeeded with a result kept in the row.
    pub fn succeeded(data: Vec<u8>) -> Self {
        Finish {
            status: TaskStatus::Succeeded,
            result_size: Some(data.len() as i64),
            result: Some(data),
            result_key: None,
            error: None,
        }
    }

    /// Succeeded with a result of `size` bytes kept in the bucket under `key`.
    pub fn stored(key: String, size: u64) -> Self {
        Finish {
            status: TaskStatus::Succeeded,
            result: None,
            result_key: Some(key),
            result_size: Some(size as i64),
            error: None,
        }
    }

    /// Ended as `status` (failed or dead) because of `message` (made [`row_text`]).
    pub fn failed(status: TaskStatus, message: String) -> Self {
        Finish {
            status,
            result: None,
            result_key: None,
            result_size: None,
            error: Some(row_text(&message)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_text_has_no_nul_and_a_bounded_length() {
        assert_eq!(row_text("got `1\0`"), "got `1\\0`");
        assert_eq!(row_text("fine"), "fine");
        let long = "é".repeat(MAX_ERROR_CHARS + 10);
        let cut = row_text(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(MAX_ERROR_CHARS);
        assert_eq!(row_text(&exact), exact, "text at the bound is kept whole");
    }
}
