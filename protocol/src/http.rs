//! The HTTP API's own bodies (`/v1/…`). Answers are the line protocol's: a [`TaskView`], an
//! [`ErrorLine`](crate::ErrorLine), a [`KindList`](crate::KindList); what only HTTP has lives
//! here.

use crate::control::SubmitOptions;
use crate::view::{TaskStatus, TaskView};
use serde::{Deserialize, Serialize};

/// `POST /v1/tasks`: a task as JSON (`payload` text, or `payload_base64` for bytes).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// `false` (the default) answers at once (202); `true` waits for the result up to the
    /// node's limit, a number waits up to that many seconds (200 with the finished task, or
    /// 202 with the task going on).
    #[serde(default)]
    pub wait: Wait,
    /// An idempotency key (also the `Idempotency-Key` header): the same token submitting it
    /// again gets the first task back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Run no sooner than this many milliseconds from now (the task is `scheduled` till then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Run no sooner than this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// 0 (the default) to 9; higher runs first within its lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 9))]
    pub priority: Option<u8>,
}

impl SubmitBody {
    /// The submission's options, unchecked.
    pub fn options(&self) -> SubmitOptions {
        SubmitOptions {
            key: self.key.clone(),
            delay_ms: self.delay_ms,
            run_at: self.run_at,
            priority: self.priority,
        }
    }
}

/// How long a submission waits for its result.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum Wait {
    Flag(bool),
    Seconds(u64),
    #[default]
    #[serde(skip)]
    No,
}

impl Wait {
    /// The wait, capped at `limit` seconds; `None` for none.
    pub fn seconds(self, limit: u64) -> Option<u64> {
        match self {
            Wait::No | Wait::Flag(false) | Wait::Seconds(0) => None,
            Wait::Flag(true) => Some(limit),
            Wait::Seconds(n) => Some(n.min(limit)),
        }
    }
}

/// `GET /v1/tasks`: one page of the caller's tasks, newest first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPage {
    pub tasks: Vec<TaskView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/tasks`'s filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// At most this many (1 to [`PAGE_MAX`], default [`PAGE_DEFAULT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only tasks accepted at or after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only tasks accepted before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

pub const PAGE_DEFAULT: u32 = 50;
pub const PAGE_MAX: u32 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_a_flag_or_seconds_and_none_by_default() {
        let body: SubmitBody = serde_json::from_str(r#"{"kind":"upper","payload":"a"}"#).unwrap();
        assert_eq!(body.wait.seconds(300), None);
        let body: SubmitBody = serde_json::from_str(r#"{"kind":"upper","wait":true}"#).unwrap();
        assert_eq!(body.wait.seconds(300), Some(300));
        let body: SubmitBody = serde_json::from_str(r#"{"kind":"upper","wait":5}"#).unwrap();
        assert_eq!(body.wait.seconds(300), Some(5));
        assert_eq!(Wait::Seconds(900).seconds(300), Some(300));
        assert!(serde_json::from_str::<SubmitBody>(r#"{"kind":"upper","wait":"soon"}"#).is_err());
        assert!(serde_json::from_str::<SubmitBody>(r#"{"kind":"upper","colour":1}"#).is_err());
    }
}
