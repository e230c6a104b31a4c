//! `/v1/tasks…`: submit (JSON or a raw body of any size), look up, long-poll, list, fetch a
//! result, retry. Each handler calls the same service functions as the line protocol.

use super::caller::Caller;
use super::error::{task_id, ApiError};
use crate::service::{Answer, Intake, ServiceError, Services};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use futures_util::StreamExt;
use protocol::http::{SubmitBody, TaskPage, TaskQuery, Wait};
use protocol::ErrorLine;
use protocol::{ErrorCode, SubmitOptions, TaskView};
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

type Svc = web::Data<Services>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/tasks")
            .route(web::post().to(submit_json))
            .route(web::get().to(list)),
    )
    // `{name}`: a task id to GET, a kind to POST a raw body to.
    .service(
        web::resource("/v1/tasks/{name}")
            .route(web::get().to(get))
            .route(web::post().to(submit_raw)),
    )
    .service(web::resource("/v1/tasks/{id}/result").route(web::get().to(super::results::result)))
    .service(web::resource("/v1/tasks/{id}/payload").route(web::get().to(super::results::payload)))
    .service(web::resource("/v1/tasks/{id}/events").route(web::get().to(super::events::events)))
    .service(web::resource("/v1/tasks/{id}/retry").route(web::post().to(retry)));
}

/// A task view: 200 when final, 202 while it goes on.
fn view_response(view: &TaskView) -> HttpResponse {
    let status = match view.status.is_final() {
        true => StatusCode::OK,
        false => StatusCode::ACCEPTED,
    };
    HttpResponse::build(status)
        .insert_header((header::LOCATION, format!("/v1/tasks/{}", view.id)))
        .json(view)
}

/// A submission's answer: the task (200 final, 202 queued), or, for a wait that ran out, the
/// task as it is now (202: it goes on).
async fn answer(svc: &Services, res: Result<Answer, ServiceError>, who: &Caller) -> HttpResponse {
    match res {
        Ok(Answer::View(view)) => view_response(&view),
        Ok(Answer::Json(json)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(json),
        Err(ServiceError::Timeout { id, .. }) => match svc.status(id, &who.0).await {
            Ok(view) => view_response(&view),
            Err(e) => actix_web::ResponseError::error_response(&ApiError::from(e)),
        },
        Err(e) => actix_web::ResponseError::error_response(&ApiError::from(e)),
    }
}

fn wait_of(svc: &Services, wait: Wait) -> Option<Duration> {
    wait.seconds(svc.wait_timeout.as_secs())
        .map(Duration::from_secs)
}

/// `POST /v1/tasks` `{"kind","payload"|"payload_base64","wait","key","delay_ms"|"run_at","priority"}`
/// (the key also as the `Idempotency-Key` header).
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", request_body = SubmitBody,
    responses(
        (status = 200, description = "The finished task (it was waited for)", body = TaskView),
        (status = 202, description = "Accepted; the task goes on", body = TaskView),
        (status = 400, description = "Bad request (`malformed`, `unknown_kind`)", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "The token's role may not submit", body = ErrorLine),
        (status = 409, description = "The key names a task with another kind or payload (`key_conflict`)", body = ErrorLine),
        (status = 413, description = "Over the JSON limit or the token's max_payload", body = ErrorLine),
        (status = 415, description = "Not JSON", body = ErrorLine),
        (status = 429, description = "Over the token's rate or max_inflight", body = ErrorLine),
        (status = 503, description = "A dependency is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn submit_json(
    svc: Svc,
    who: Caller,
    req: HttpRequest,
    body: web::Json<SubmitBody>,
) -> HttpResponse {
    let body = body.into_inner();
    let options = match super::control::options_of(&req, body.options()) {
        Ok(options) => options,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let payload = match (body.payload, body.payload_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            Ok(bytes) => bytes,
            Err(e) => {
                let e = ApiError::new(
                    ErrorCode::Malformed,
                    format!("payload_base64 is not base64: {e}"),
                );
                return actix_web::ResponseError::error_response(&e);
            }
        },
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => {
            let e = ApiError::new(
                ErrorCode::Malformed,
                "give either payload or payload_base64, not both",
            );
            return actix_web::ResponseError::error_response(&e);
        }
    };
    let kind = body.kind.trim().to_ascii_lowercase();
    let wait = wait_of(&svc, body.wait);
    let res = svc
        .submit_bytes(kind, payload, wait, &options, &who.0)
        .await;
    answer(&svc, res, &who).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    #[serde(default)]
    wait: Option<String>,
}

/// A raw submission's query: its wait and options (as the JSON body's fields).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitQuery {
    #[serde(default)]
    wait: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    run_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    priority: Option<u8>,
}

impl WaitQuery {
    fn parse(&self) -> Result<Wait, ApiError> {
        match self.wait.as_deref() {
            None | Some("false") | Some("0") => Ok(Wait::No),
            Some("true") => Ok(Wait::Flag(true)),
            Some(n) => n.parse().map(Wait::Seconds).map_err(|_| {
                ApiError::new(
                    ErrorCode::Malformed,
                    format!("wait is true, false or a number of seconds, not `{n}`"),
                )
            }),
        }
    }
}

/// `POST /v1/tasks/{kind}?wait=…&key=…&delay_ms=…&run_at=…&priority=…` with the payload as the raw body, of any size (with a
/// length or chunked): streamed to the bucket as it arrives when large. A body that pauses
/// for longer than `http.request_timeout_secs` is cut off (408).
#[utoipa::path(post, path = "/v1/tasks/{name}", tag = "tasks",
    params(("name" = String, Path, description = "The task kind"),
           ("wait" = Option<String>, Query, description = "true, false or seconds"),
           ("key" = Option<String>, Query, description = "Idempotency key (or the Idempotency-Key header)"),
           ("delay_ms" = Option<u64>, Query, description = "Run no sooner than this many ms from now"),
           ("run_at" = Option<String>, Query, description = "Run no sooner than this time (RFC 3339)"),
           ("priority" = Option<u8>, Query, description = "0 to 9, higher first")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
                 description = "The payload, of any size (streamed)"),
    responses(
        (status = 200, description = "The finished task", body = TaskView),
        (status = 202, description = "Accepted; the task goes on", body = TaskView),
        (status = 400, description = "Bad request (`malformed`, `unknown_kind`)", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "The token's role may not submit", body = ErrorLine),
        (status = 408, description = "The body paused too long", body = ErrorLine),
        (status = 409, description = "The key names a task with another kind or payload (`key_conflict`)", body = ErrorLine),
        (status = 413, description = "Over the node's or the token's payload limit", body = ErrorLine),
        (status = 429, description = "Over the token's rate or max_inflight", body = ErrorLine),
        (status = 503, description = "A dependency is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn submit_raw(
    svc: Svc,
    limits: web::Data<crate::config::HttpSettings>,
    who: Caller,
    req: HttpRequest,
    kind: web::Path<String>,
    query: web::Query<SubmitQuery>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let wait = WaitQuery {
        wait: query.wait.clone(),
    };
    let wait = wait_of(&svc, wait.parse()?);
    let options = super::control::options_of(
        &req,
        SubmitOptions {
            key: query.key.clone(),
            delay_ms: query.delay_ms,
            run_at: query.run_at,
            priority: query.priority,
        },
    )?;
    let kind = kind.into_inner().to_ascii_lowercase();
    let length = content_length(&req)?;
    let limit = Limit {
        node: svc.max_payload,
        token: who.0.limits.max_payload,
    };
    limit.check(length.unwrap_or(0))?;
    // Role, max_payload (when the length is known) and rate, before a byte is read.
    svc.admit(&who.0, length.unwrap_or(0))?;
    let id = Uuid::now_v7();
    let mut intake = match length {
        Some(size) => svc.intake(id, &kind, size),
        None => svc.intake_unsized(id, &kind),
    };
    let pause = Duration::from_secs(limits.request_timeout_secs);
    take_body(&mut body, &mut intake, pause, limit).await?;
    let payload = intake.finish().await?;
    Ok(answer(
        &svc,
        svc.submit(id, kind, payload, wait, &options, &who.0).await,
        &who,
    )
    .await)
}

/// A request's `Content-Length`, if it has one.
pub(super) fn content_length(req: &HttpRequest) -> Result<Option<u64>, ApiError> {
    let Some(v) = req.headers().get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    let n = v.to_str().ok().and_then(|v| v.parse::<u64>().ok());
    n.map(Some)
        .ok_or_else(|| ApiError::new(ErrorCode::Malformed, "a bad Content-Length"))
}

/// The most bytes a raw body may have: the node's bound, and the token's own.
#[derive(Clone, Copy)]
pub(super) struct Limit {
    pub node: u64,
    pub token: Option<u64>,
}

impl Limit {
    pub(super) fn check(self, size: u64) -> Result<(), ApiError> {
        if size > self.node {
            let node = self.node;
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("a body of {size} bytes is over this node's limit of {node} bytes"),
            ));
        }
        match self.token.filter(|max| size > *max) {
            Some(max) => Err(ServiceError::OverMaxPayload { size, max }.into()),
            None => Ok(()),
        }
    }
}

/// Read a raw `body` into `intake` (at the store's pace), within `limit`, each chunk
/// within `pause` of the last.
pub(super) async fn take_body(
    body: &mut web::Payload,
    intake: &mut Intake,
    pause: Duration,
    limit: Limit,
) -> Result<(), ApiError> {
    let mut got = 0u64;
    loop {
        let next = tokio::time::timeout(pause, body.next())
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::IdleTimeout,
                    format!("the body paused for over {} s", pause.as_secs()),
                )
            })?;
        let Some(chunk) = next else {
            return Ok(());
        };
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                ErrorCode::Malformed,
                format!("the body could not be read: {e}"),
            )
        })?;
        got += chunk.len() as u64;
        limit.check(got)?;
        if let Some(sending) = intake.push(chunk) {
            sending.await;
        }
    }
}

/// `GET /v1/tasks/{id}?wait=SECONDS`: the task (with an inline result), after waiting up to
/// SECONDS for it to end.
#[utoipa::path(get, path = "/v1/tasks/{name}", tag = "tasks",
    params(("name" = String, Path, description = "The task id"),
           ("wait" = Option<String>, Query, description = "Seconds to wait for the task to be final")),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 400, description = "Bad request (`malformed`, `unknown_kind`)", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 404, description = "No such task (or not yours)", body = ErrorLine),
        (status = 503, description = "Too many streams, or a dependency is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn get(
    svc: Svc,
    streams: web::Data<super::events::Streams>,
    who: Caller,
    id: web::Path<String>,
    query: web::Query<WaitQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = task_id(&id)?;
    let wait = wait_of(&svc, query.parse()?).unwrap_or_default();
    let _permit = match wait.is_zero() {
        true => None,
        false => Some(streams.take()?),
    };
    let view = svc.task(id, &who.0, wait).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /v1/tasks?status=&kind=&limit=&cursor=`.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(TaskQuery),
    responses(
        (status = 200, description = "A page of tasks, newest first", body = TaskPage),
        (status = 400, description = "Bad request (`malformed`, `unknown_kind`)", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 503, description = "A dependency is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn list(
    svc: Svc,
    who: Caller,
    query: web::Query<TaskQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(svc.list(query.into_inner(), &who.0).await?))
}

/// `POST /v1/tasks/{id}/retry`.
#[utoipa::path(post, path = "/v1/tasks/{id}/retry", tag = "tasks",
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 202, description = "Queued again", body = TaskView),
        (status = 400, description = "Bad request (`malformed`, `unknown_kind`)", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "The token's role may not submit", body = ErrorLine),
        (status = 404, description = "No such task (or not yours)", body = ErrorLine),
        (status = 409, description = "Not dead, failed or queued", body = ErrorLine),
        (status = 503, description = "A dependency is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn retry(svc: Svc, who: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = task_id(&id)?;
    let view = svc.retry(id, &who.0).await?;
    Ok(view_response(&view))
}
