//! `GET /v1/tasks/{id}/result`: a finished task's result as raw bytes: inline, streamed from
//! the bucket, one byte range of it (206), or a redirect to its presigned URL.

use super::caller::Caller;
use super::error::task_id;
use super::error::ApiError;
use crate::service::results::{PayloadBody, ResultBody};
use crate::service::Services;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use protocol::{ErrorCode, ErrorLine, ResultEncoding, TaskView};
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResultQuery {
    /// `presigned`: a redirect to the bucket's presigned URL (large results).
    #[serde(default)]
    redirect: Option<String>,
}

/// A single byte range of a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`), resolved
/// against `size` as (first, last) inclusive; `Err` when it cannot be satisfied. Anything else
/// (several ranges, other units) is ignored: the whole result is sent.
fn byte_range(header: Option<&str>, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = match (first.trim(), last.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.saturating_sub(n), size.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, size.saturating_sub(1)),
        (a, b) => (
            a.parse().ok()?,
            b.parse::<u64>().ok()?.min(size.saturating_sub(1)),
        ),
    };
    Some(match first <= last && last < size {
        true => Ok((first, last)),
        false => Err(()),
    })
}

/// `GET /v1/tasks/{id}/result`: the result's bytes (inline, or streamed from the bucket),
/// or one range of them (206).
#[utoipa::path(get, path = "/v1/tasks/{id}/result", tag = "tasks",
    params(("id" = String, Path, description = "The task id"),
           ("redirect" = Option<String>, Query, description = "`presigned`: a redirect to the bucket")),
    responses(
        (status = 200, description = "The result's bytes (text results as text)",
            content((Vec<u8> = "application/octet-stream"), (String = "text/plain"))),
        (status = 206, description = "A range of the result's bytes",
            content((Vec<u8> = "application/octet-stream"), (String = "text/plain"))),
        (status = 307, description = "To the presigned URL"),
        (status = 400, description = "Bad request (`malformed`, `unknown_kind`)", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 404, description = "No such task (or not yours)", body = ErrorLine),
        (status = 409, description = "Not finished, or it failed", body = ErrorLine),
        (status = 416, description = "The range is past the end"),
        (status = 503, description = "A dependency is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
pub(super) async fn result(
    svc: web::Data<Services>,
    who: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<ResultQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&id)?;
    let asked = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // A range of a result in the bucket is fetched as a range: its size comes first.
    let mut range = None;
    if asked.is_some() {
        let view = svc.task(id, &who.0, Duration::ZERO).await?;
        let size = view.result_size.unwrap_or(0);
        match byte_range(asked.as_deref(), size) {
            Some(Ok(r)) => range = Some((r, size)),
            Some(Err(())) if view.error.is_none() && view.status.is_final() => {
                return Ok(unsatisfiable(size))
            }
            _ => {}
        }
    }
    let body = svc.result(id, &who.0, range.map(|(r, _)| r)).await?;
    let view = match &body {
        ResultBody::Inline(view) | ResultBody::Stream { header: view, .. } => view.clone(),
    };
    if let (Some(error), Some(message)) = (view.error, view.message.clone()) {
        // It failed: there is no result, only why.
        let line = protocol::ErrorLine::new(error, message).with_id(Some(id));
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            line,
        });
    }
    match body {
        ResultBody::Inline(view) => {
            let bytes = view
                .result_bytes()
                .unwrap_or(Ok(Vec::new()))
                .map_err(|e| ApiError::new(ErrorCode::Internal, e))?;
            // The range is resolved against the bytes read here, not the size read before:
            // a RETRY between the two reads may have changed the result.
            let size = bytes.len() as u64;
            let range = match byte_range(asked.as_deref(), size) {
                Some(Ok(r)) => Some(r),
                Some(Err(())) => return Ok(unsatisfiable(size)),
                None => None,
            };
            let body = match range {
                Some((first, last)) => bytes[first as usize..=last as usize].to_vec(),
                None => bytes,
            };
            Ok(ranged(range, size)
                .content_type(content_type(&view))
                .body(body))
        }
        ResultBody::Stream {
            header,
            size,
            chunks,
        } => {
            if query.redirect.as_deref() == Some("presigned") {
                if let Some(url) = header.result_url {
                    return Ok(HttpResponse::TemporaryRedirect()
                        .insert_header((header::LOCATION, url))
                        .finish());
                }
            }
            let stream = tokio_stream::wrappers::ReceiverStream::new(chunks);
            let mut response = ranged(range.map(|(r, _)| r), range.map_or(0, |(_, size)| size));
            Ok(response
                .content_type("application/octet-stream")
                .no_chunking(size)
                .streaming(stream))
        }
    }
}

/// `GET /v1/tasks/{id}/payload`: what the task was given, whatever its state (HTTP Range
/// supported); from the bucket for a large payload.
#[utoipa::path(get, path = "/v1/tasks/{id}/payload", tag = "tasks",
    params(("id" = String, Path, description = "The task id"),
           ("Range" = Option<String>, Header, description = "bytes=FIRST-LAST, FIRST- or -SUFFIX")),
    responses(
        (status = 200, description = "The payload's bytes", content_type = "application/octet-stream"),
        (status = 206, description = "The bytes in the range", content_type = "application/octet-stream"),
        (status = 400, description = "Bad request (`malformed`)", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 404, description = "No such task (or not yours)", body = ErrorLine),
        (status = 416, description = "The range is past the end"),
        (status = 503, description = "A dependency is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
pub(super) async fn payload(
    svc: web::Data<Services>,
    who: Caller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&id)?;
    let row = svc.row(id, &who.0).await?;
    let size = row.payload_size.max(0) as u64;
    let asked = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let range = match byte_range(asked, size) {
        Some(Ok(r)) => Some(r),
        Some(Err(())) => return Ok(unsatisfiable(size)),
        None => None,
    };
    let mut response = ranged(range, size);
    response.content_type("application/octet-stream");
    let length = range.map_or(size, |(first, last)| last - first + 1);
    Ok(match svc.payload(row, range).await? {
        PayloadBody::Inline(bytes) => response.body(bytes),
        PayloadBody::Stream(chunks) => response
            .no_chunking(length)
            .streaming(tokio_stream::wrappers::ReceiverStream::new(chunks)),
    })
}

/// 416: the range asked for is past the end of `size` bytes.
fn unsatisfiable(size: u64) -> HttpResponse {
    HttpResponse::RangeNotSatisfiable()
        .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
        .finish()
}

/// 206 with `Content-Range` for a range of `size` bytes, else 200; ranges accepted either way.
fn ranged(range: Option<(u64, u64)>, size: u64) -> actix_web::HttpResponseBuilder {
    let mut response = match range {
        Some((first, last)) => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((
                header::CONTENT_RANGE,
                format!("bytes {first}-{last}/{size}"),
            ));
            r
        }
        None => HttpResponse::Ok(),
    };
    response.insert_header((header::ACCEPT_RANGES, "bytes"));
    response
}

fn content_type(view: &TaskView) -> &'static str {
    match view.result_encoding {
        Some(ResultEncoding::Base64) => "application/octet-stream",
        None => "text/plain; charset=utf-8",
    }
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn byte_ranges_resolve_against_the_size() {
        assert_eq!(byte_range(Some("bytes=0-9"), 100), Some(Ok((0, 9))));
        assert_eq!(byte_range(Some("bytes=90-"), 100), Some(Ok((90, 99))));
        assert_eq!(byte_range(Some("bytes=-10"), 100), Some(Ok((90, 99))));
        assert_eq!(byte_range(Some("bytes=50-500"), 100), Some(Ok((50, 99))));
        assert_eq!(byte_range(Some("bytes=100-"), 100), Some(Err(())));
        assert_eq!(byte_range(Some("bytes=0-1,5-6"), 100), None);
        assert_eq!(byte_range(Some("lines=1-2"), 100), None);
        assert_eq!(byte_range(None, 100), None);
    }
}
