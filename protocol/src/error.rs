//! Error lines: `{"error":"<code>","message":"<what to do>"}`, with the task id (and its status)
//! when the error is about one task.

use crate::view::TaskStatus;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The machine-readable `error` field of an answer.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // The request line itself.
    EmptyLine,
    InvalidUtf8,
    NulByte,
    LineTooLong,
    Malformed,
    PayloadTooLarge,
    UnknownKind,
    // About one task.
    NotFound,
    /// A name that is taken (a token's).
    AlreadyExists,
    NotFinished,
    NotRetryable,
    /// `CANCEL` of a task that has ended.
    NotCancellable,
    /// An idempotency key used before with another kind or payload.
    KeyConflict,
    Timeout,
    // The node or a dependency.
    NotAccepted,
    DatabaseUnavailable,
    StorageUnavailable,
    Unavailable,
    Internal,
    // The connection.
    IdleTimeout,
    Busy,
    /// Plain text sent to a port that speaks TLS only.
    TlsRequired,
    // Who may do what.
    Unauthenticated,
    Forbidden,
    RateLimited,
    QuotaExceeded,
    /// A worker's answer naming a lease that is no longer current.
    LeaseLost,
    // A task's own outcome, carried in its view (`"status":"failed"`), not a refusal.
    TaskFailed,
    TaskDead,
    /// A code this version does not know (a newer node).
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            EmptyLine => "empty_line",
            InvalidUtf8 => "invalid_utf8",
            NulByte => "nul_byte",
            LineTooLong => "line_too_long",
            Malformed => "malformed",
            PayloadTooLarge => "payload_too_large",
            UnknownKind => "unknown_kind",
            NotFound => "not_found",
            AlreadyExists => "already_exists",
            NotFinished => "not_finished",
            NotRetryable => "not_retryable",
            NotCancellable => "not_cancellable",
            KeyConflict => "key_conflict",
            Timeout => "timeout",
            NotAccepted => "not_accepted",
            DatabaseUnavailable => "database_unavailable",
            StorageUnavailable => "storage_unavailable",
            Unavailable => "unavailable",
            Internal => "internal",
            IdleTimeout => "idle_timeout",
            Busy => "busy",
            TlsRequired => "tls_required",
            Unauthenticated => "unauthenticated",
            Forbidden => "forbidden",
            RateLimited => "rate_limited",
            QuotaExceeded => "quota_exceeded",
            LeaseLost => "lease_lost",
            TaskFailed => "task_failed",
            TaskDead => "task_dead",
            Other => "other",
        }
    }

    /// Whether this code describes how a task ended (an answer), rather than a refusal.
    pub fn is_task_outcome(self) -> bool {
        matches!(self, ErrorCode::TaskFailed | ErrorCode::TaskDead)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: the request was refused, or could not be served.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({error})")]
pub struct ErrorLine {
    pub error: ErrorCode,
    pub message: String,
    /// The task the error is about, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// Its state, for `not_finished`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
    /// For `rate_limited`: when a submission will be taken again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorLine {
    pub fn new(error: ErrorCode, message: impl std::fmt::Display) -> Self {
        ErrorLine {
            error,
            message: message.to_string(),
            id: None,
            status: None,
            retry_after_ms: None,
        }
    }

    pub fn with_id(mut self, id: Option<Uuid>) -> Self {
        self.id = id;
        self
    }
}

/// Why a request line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("empty line: send a command, HELP lists them")]
    Empty,
    #[error("request line is not valid UTF-8 (use PUT for binary payloads)")]
    InvalidUtf8,
    #[error(
        "request line is longer than {limit} bytes; use PUT <kind> <nbytes> for large payloads"
    )]
    LineTooLong { limit: usize },
    #[error("line contains a NUL byte; use PUT <kind> <nbytes> for binary payloads")]
    NulByte,
    #[error("{0}")]
    Malformed(String),
    #[error("declared upload of {size} bytes is over this node's limit of {limit} bytes")]
    PayloadTooLarge { size: u64, limit: u64 },
}

impl ProtocolError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::Empty => ErrorCode::EmptyLine,
            ProtocolError::InvalidUtf8 => ErrorCode::InvalidUtf8,
            ProtocolError::LineTooLong { .. } => ErrorCode::LineTooLong,
            ProtocolError::NulByte => ErrorCode::NulByte,
            ProtocolError::Malformed(_) => ErrorCode::Malformed,
            ProtocolError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
        }
    }

    /// Whether the connection must close after this error (an oversized `PUT`'s body cannot
    /// be told apart from requests).
    pub fn is_fatal(&self) -> bool {
        matches!(self, ProtocolError::PayloadTooLarge { .. })
    }

    pub fn to_line(&self) -> ErrorLine {
        ErrorLine::new(self.code(), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_on_the_wire_and_unknown_ones_still_read() {
        for code in [
            ErrorCode::LineTooLong,
            ErrorCode::TaskDead,
            ErrorCode::QuotaExceeded,
            ErrorCode::TlsRequired,
        ] {
            let wire = serde_json::to_string(&code).unwrap();
            assert_eq!(wire, format!("\"{}\"", code.as_str()));
        }
        let later: ErrorCode = serde_json::from_str("\"a_code_from_a_newer_node\"").unwrap();
        assert_eq!(later, ErrorCode::Other);
    }

    #[test]
    fn an_error_line_names_its_task_only_when_there_is_one() {
        let line = ErrorLine::new(ErrorCode::Busy, "full");
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            r#"{"error":"busy","message":"full"}"#
        );
    }
}
