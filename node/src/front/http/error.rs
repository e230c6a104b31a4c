//! Errors over HTTP: the line protocol's error object (`{"error","message",…}`) with a status
//! that fits its code.

use crate::service::ServiceError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use protocol::{ErrorCode, ErrorLine};
use uuid::Uuid;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub line: ErrorLine,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: status_of(code),
            line: ErrorLine::new(code, message),
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }
}

/// The status for an error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        EmptyLine | InvalidUtf8 | NulByte | Malformed | UnknownKind | TlsRequired => {
            StatusCode::BAD_REQUEST
        }
        LineTooLong | PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Unauthenticated => StatusCode::UNAUTHORIZED,
        Forbidden => StatusCode::FORBIDDEN,
        NotFound => StatusCode::NOT_FOUND,
        NotFinished | NotRetryable | NotCancellable | KeyConflict | AlreadyExists | TaskFailed
        | TaskDead | LeaseLost => StatusCode::CONFLICT,
        RateLimited | QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
        IdleTimeout => StatusCode::REQUEST_TIMEOUT,
        Timeout => StatusCode::GATEWAY_TIMEOUT,
        NotAccepted | DatabaseUnavailable | StorageUnavailable | Unavailable | Busy => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Internal | Other => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        let status = match e {
            // Over the token's max_payload: sending it again will not help.
            ServiceError::OverMaxPayload { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => status_of(e.code()),
        };
        ApiError {
            status,
            line: e.to_line(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.line.message, self.line.error)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(ms) = self.line.retry_after_ms {
            response.insert_header((header::RETRY_AFTER, ms.div_ceil(1000).max(1).to_string()));
        }
        response.json(&self.line)
    }
}

/// A task id from a path: one that is not a UUID names no task.
pub(super) fn task_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("`{text}` is not a task id (a UUID)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_client_or_server_status() {
        for code in [
            ErrorCode::Malformed,
            ErrorCode::Unauthenticated,
            ErrorCode::NotFound,
            ErrorCode::QuotaExceeded,
            ErrorCode::PayloadTooLarge,
        ] {
            assert!(status_of(code).is_client_error(), "{code}");
        }
        assert!(status_of(ErrorCode::DatabaseUnavailable).is_server_error());
        let over = ApiError::from(ServiceError::OverMaxPayload { size: 9, max: 8 });
        assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(over.line.error, ErrorCode::QuotaExceeded);
    }
}
