//! Answers: what a node tells a client about tasks and about itself.

use crate::error::ErrorCode;
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Task states as stored and reported.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Accepted to run later (a delay, a time, or its kind or lane paused).
    Scheduled,
    Queued,
    Running,
    Succeeded,
    Failed,
    /// Failed on every allowed attempt; its message is in the dead-letter queue.
    Dead,
    /// Cancelled before it could finish (`CANCEL`).
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Scheduled,
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Dead,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Scheduled => "scheduled",
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Dead => "dead",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `s`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the task has ended (it will not run again unless retried by hand).
    /// The states a task never leaves.
    pub const FINAL: [TaskStatus; 4] = [
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Dead,
        TaskStatus::Cancelled,
    ];

    /// The states of a task that has not ended.
    pub const UNFINISHED: [TaskStatus; 3] = [
        TaskStatus::Scheduled,
        TaskStatus::Queued,
        TaskStatus::Running,
    ];

    pub fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an inline result is written in `result`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultEncoding {
    /// The result is binary; `result` is its base64.
    Base64,
}

/// A task as a client sees it: the answer to submissions, `STATUS` and `RESULT`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    pub id: Uuid,
    pub kind: String,
    pub status: TaskStatus,
    /// The result, when inline: UTF-8 text, or base64 when `result_encoding` says so.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result_encoding: Option<ResultEncoding>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result_size: Option<u64>,
    /// Where a large result is kept in the bucket, and a presigned URL to fetch it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result_url: Option<String>,
    /// `task_failed` or `task_dead` for a task that ended badly.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ErrorCode>,
    /// Why it failed (or, while queued for a retry, why its last run failed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
    /// The node that ran the task.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempts: Option<u32>,
    /// Raw bytes that follow this line (`RESULT` of a large result).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    /// The payload's length (its bytes: `GET /v1/tasks/{id}/payload`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payload_size: Option<u64>,
    /// When it was accepted, last started, and finished.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When a `scheduled` task is due.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Its priority, when above 0 (higher runs first).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub priority: Option<u8>,
    /// The idempotency key it was submitted with.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key: Option<String>,
    /// `true` while its kind or lane is paused (it waits, accepted).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub paused: Option<bool>,
    /// 0 to 100, as its worker last reported it (`PROGRESS`; external kinds).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub progress: Option<u8>,
    /// What its worker said with its last progress.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub progress_note: Option<String>,
}

impl TaskView {
    /// A task just accepted: its id, kind and state, nothing more.
    pub fn new(id: Uuid, kind: impl Into<String>, status: TaskStatus) -> Self {
        TaskView {
            id,
            kind: kind.into(),
            status,
            result: None,
            result_encoding: None,
            result_size: None,
            result_key: None,
            result_url: None,
            error: None,
            message: None,
            node: None,
            attempts: None,
            bytes: None,
            payload_size: None,
            created_at: None,
            started_at: None,
            finished_at: None,
            run_at: None,
            priority: None,
            key: None,
            paused: None,
            progress: None,
            progress_note: None,
        }
    }

    /// Set `result` (and its encoding) from the result's bytes.
    pub fn set_result(&mut self, data: &[u8]) {
        self.result_size = Some(data.len() as u64);
        match std::str::from_utf8(data) {
            Ok(text) => {
                self.result = Some(text.to_string());
                self.result_encoding = None;
            }
            Err(_) => {
                self.result = Some(base64::engine::general_purpose::STANDARD.encode(data));
                self.result_encoding = Some(ResultEncoding::Base64);
            }
        }
    }

    /// The inline result's bytes, decoded; `None` when there is none (or it is in the bucket).
    pub fn result_bytes(&self) -> Option<Result<Vec<u8>, base64::DecodeError>> {
        let text = self.result.as_ref()?;
        Some(match self.result_encoding {
            Some(ResultEncoding::Base64) => base64::engine::general_purpose::STANDARD.decode(text),
            None => Ok(text.as_bytes().to_vec()),
        })
    }

    /// The view without its result body (what `STATUS` answers).
    pub fn without_result(mut self) -> Self {
        self.result = None;
        self.result_encoding = None;
        self.result_url = None;
        self
    }
}

/// One entry of `DEAD`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadTask {
    pub id: Uuid,
    pub kind: String,
    pub attempts: u32,
    /// The last error.
    pub message: Option<String>,
    pub node: Option<String>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The answer to `DEAD`, newest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadList {
    pub dead: Vec<DeadTask>,
}

/// One entry of `KINDS`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindInfo {
    pub name: String,
    pub about: String,
    /// An external kind (run by workers that connect): how many are connected now, fleet-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
}

/// The answer to `KINDS`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindList {
    pub kinds: Vec<KindInfo>,
}

/// Whether a dependency answered a health check.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Ok,
    Down,
}

impl Check {
    pub fn of(up: bool) -> Self {
        if up {
            Check::Ok
        } else {
            Check::Down
        }
    }
}

/// The answer to `PING`. A load balancer's health check expects `"healthy":true`. Before
/// `AUTH` a node says only `pong` and `healthy`; the rest is for authenticated clients.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub pong: bool,
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amqp: Option<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<Check>,
    /// Lanes and kinds paused now (`lane:<name>`, `kind:<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paused: Vec<String>,
}

impl Pong {
    /// Only whether the node is healthy (the answer before `AUTH`).
    pub fn brief(self) -> Pong {
        Pong {
            pong: self.pong,
            healthy: self.healthy,
            node: None,
            amqp: None,
            postgres: None,
            s3: None,
            paused: Vec::new(),
        }
    }
}

/// The answer to a successful `AUTH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthOk {
    /// Always `"ok"`.
    pub auth: String,
    /// The token's name (none on an open node).
    pub name: Option<String>,
    pub role: String,
}

/// The answer to `HELP`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelpText {
    pub help: Vec<String>,
}

/// The answer to `QUIT`, before the node closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bye {
    pub bye: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_skips_absent_fields() {
        let v = TaskView::new(Uuid::nil(), "upper", TaskStatus::Queued);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"id":"00000000-0000-0000-0000-000000000000","kind":"upper","status":"queued"}"#
        );
    }

    #[test]
    fn binary_results_travel_as_base64_and_come_back_whole() {
        let mut v = TaskView::new(Uuid::nil(), "gzip", TaskStatus::Succeeded);
        v.set_result(&[0x1f, 0x8b, 0xff]);
        assert_eq!(v.result_encoding, Some(ResultEncoding::Base64));
        assert_eq!(v.result_bytes().unwrap().unwrap(), vec![0x1f, 0x8b, 0xff]);
        v.set_result(b"text");
        assert_eq!(v.result.as_deref(), Some("text"));
        assert_eq!(v.result_encoding, None);
    }

    #[test]
    fn statuses_read_back_and_nothing_else_does() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskStatus::parse("paused"), None);
    }
}
