//! The lines a worker reads: the answers to its requests, the tasks pushed to it, cancels.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The answer to `WORK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Working {
    pub working: Vec<String>,
    pub slots: u16,
}

/// The answer to `QUIET`: `{"quiet":true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quieted {
    pub quiet: bool,
}

/// A task pushed to a worker: `{"task":{…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leased {
    pub task: WorkTask,
}

/// One task as a worker gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkTask {
    pub id: Uuid,
    pub kind: String,
    /// The payload as text (UTF-8 payloads up to the inline limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The payload as base64 (binary payloads up to the inline limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// Where to GET a payload larger than the inline limit (presigned, time-limited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_url: Option<String>,
    /// With `WORK … stream=1`: exactly this many raw bytes (the payload) follow the line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The payload's size in bytes.
    pub payload_bytes: u64,
    /// This run's number, 1 for the first.
    pub attempt: u32,
    /// Name it in `DONE`, `FAIL`, `PROGRESS` and `EXTEND`.
    pub lease: String,
    /// When the lease ends unless extended: past it the run is a timeout.
    pub deadline: DateTime<Utc>,
    pub priority: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Pushed to a worker when a task it holds is cancelled: `{"cancel":"<lease>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelLease {
    pub cancel: String,
}

/// The answer to `DONE`, `FAIL`, `PROGRESS` and `EXTEND`: `{"ok":"done","lease":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkOk {
    /// `done`, `failed`, `progress` or `extended`.
    pub ok: String,
    pub lease: String,
    /// The lease's deadline now (after `EXTEND`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
}

/// Any line a worker connection reads: the answer to a request, a task, or a cancel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WorkerLine {
    Task(Leased),
    Cancel(CancelLease),
    Ok(WorkOk),
    Working(Working),
    Error(crate::ErrorLine),
}

/// `POST /v1/work`: up to `max` tasks of `kinds`, waiting up to `wait` seconds for the first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkPoll {
    /// External kinds (registered by asking, as `WORK` does).
    pub kinds: Vec<String>,
    /// At most this many tasks (1 to 256; 1 when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u16>,
    /// Seconds to wait for the first task (0 to 30; 0 when left out: what is there now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<u64>,
}

/// The answer to `POST /v1/work`: the tasks leased to the caller (none when none came).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkTasks {
    pub tasks: Vec<WorkTask>,
}

/// `POST /v1/work/{lease}/fail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkFail {
    /// Why (kept up to 4 KiB).
    pub message: String,
    /// Not retried: the task fails now.
    #[serde(default, rename = "final")]
    pub last: bool,
}

/// `POST /v1/work/{lease}/progress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkProgress {
    /// 0 to 100.
    pub percent: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /v1/work/{lease}/extend`: the deadline becomes now + `secs` (never past the kind's
/// maximum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkExtend {
    pub secs: u64,
}
