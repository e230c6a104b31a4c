//! Workers over HTTP (see [`crate::work`]): `POST /v1/work` (a long poll for leased tasks)
//! and `POST /v1/work/{lease}/done|fail|progress|extend`. A report may reach any node: the
//! lease names the node holding it, and another node forwards the report there.

use super::caller::Caller;
use super::error::ApiError;
use super::tasks::{content_length, take_body, Limit};
use crate::service::polling::MAX_WAIT;
use crate::service::{Intake, Services};
use crate::work::lease::Said;
use actix_web::{web, HttpRequest, HttpResponse};
use protocol::work::{
    valid_lease, WorkExtend, WorkFail, WorkOk, WorkPoll, WorkProgress, WorkTasks, MAX_SLOTS,
};
use protocol::{ErrorCode, ErrorLine};
use std::time::Duration;

type Svc = web::Data<Services>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/work").route(web::post().to(poll)))
        .service(web::resource("/v1/work/{lease}/done").route(web::post().to(done)))
        .service(web::resource("/v1/work/{lease}/fail").route(web::post().to(fail)))
        .service(web::resource("/v1/work/{lease}/progress").route(web::post().to(progress)))
        .service(web::resource("/v1/work/{lease}/extend").route(web::post().to(extend)));
}

fn malformed(message: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::Malformed, message)
}

/// The lease in a path, checked as the line protocol checks it.
fn lease_of(path: web::Path<String>) -> Result<String, ApiError> {
    let lease = path.into_inner();
    match valid_lease(&lease) {
        true => Ok(lease),
        false => Err(malformed(format!("`{lease}` is not a lease"))),
    }
}

/// Report `said` on the lease in the path; answer what the node holding it said.
async fn report(
    svc: Svc,
    who: Caller,
    lease: web::Path<String>,
    said: Said,
) -> Result<HttpResponse, ApiError> {
    let lease = lease_of(lease)?;
    Ok(HttpResponse::Ok().json(svc.report(lease, said, &who.0).await?))
}

/// `POST /v1/work` `{"kinds":[…],"max":N,"wait":SECONDS}`: up to `max` tasks leased to the
/// caller, after waiting up to `wait` seconds for the first.
#[utoipa::path(post, path = "/v1/work", tag = "work", request_body = WorkPoll,
    responses(
        (status = 200, description = "The tasks leased to the caller (maybe none)", body = WorkTasks),
        (status = 400, description = "A bad kind, `max` or `wait`, or a built-in kind", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "The token's role may not work (worker or admin may)", body = ErrorLine),
        (status = 413, description = "Over the JSON limit", body = ErrorLine),
        (status = 415, description = "Not JSON", body = ErrorLine),
        (status = 503, description = "Too many streams and polls open, or a dependency is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn poll(
    svc: Svc,
    limits: web::Data<crate::config::HttpSettings>,
    streams: web::Data<super::events::Streams>,
    who: Caller,
    body: web::Json<WorkPoll>,
) -> Result<HttpResponse, ApiError> {
    let WorkPoll { kinds, max, wait } = body.into_inner();
    let max = max.unwrap_or(1);
    if !(1..=MAX_SLOTS).contains(&max) {
        return Err(malformed(format!("max is from 1 to {MAX_SLOTS}")));
    }
    let wait = wait.unwrap_or(0);
    if wait > MAX_WAIT.as_secs() {
        return Err(malformed(format!(
            "wait is at most {} seconds",
            MAX_WAIT.as_secs()
        )));
    }
    if kinds.is_empty() || kinds.len() > 64 {
        return Err(malformed("kinds names 1 to 64 kinds"));
    }
    let mut asked: Vec<String> = Vec::with_capacity(kinds.len());
    for kind in kinds.iter().map(|k| k.trim().to_ascii_lowercase()) {
        if !protocol::work::valid_kind_name(&kind) {
            return Err(malformed(format!(
                "`{kind}` is not a kind name (lowercase letters, digits, `_`, `-`, `.`)"
            )));
        }
        if !asked.contains(&kind) {
            asked.push(kind);
        }
    }
    // A waiting poll is one of the node's open streams.
    let _open = streams.take()?;
    let wait = Duration::from_secs(wait.min(limits.work_wait_secs));
    let tasks = svc.poll(asked, max, wait, &who.0).await?;
    Ok(HttpResponse::Ok().json(WorkTasks { tasks }))
}

/// `POST /v1/work/{lease}/done`: the raw body is the task's result (any size: one past the
/// inline limit streams to the bucket).
#[utoipa::path(post, path = "/v1/work/{lease}/done", tag = "work",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The result's bytes"),
    params(("lease" = String, Path, description = "The lease, as the task came with it")),
    responses(
        (status = 200, description = "Done", body = WorkOk),
        (status = 400, description = "A bad lease", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "The token's role may not work", body = ErrorLine),
        (status = 409, description = "`lease_lost`: not current (deadline passed, cancelled, or given to another worker); nothing changed", body = ErrorLine),
        (status = 413, description = "Over the node's size limit", body = ErrorLine),
        (status = 503, description = "A dependency, or the node holding the lease, is not answering", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn done(
    svc: Svc,
    limits: web::Data<crate::config::HttpSettings>,
    who: Caller,
    req: HttpRequest,
    lease: web::Path<String>,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let lease = lease_of(lease)?;
    Services::may_work(&who.0)?;
    let limit = Limit {
        node: svc.max_payload,
        token: None,
    };
    let length = content_length(&req)?;
    limit.check(length.unwrap_or(0))?;
    let mut intake: Intake = svc.result_intake(&lease, length);
    let pause = Duration::from_secs(limits.request_timeout_secs);
    take_body(&mut body, &mut intake, pause, limit).await?;
    let result = intake.finish().await?;
    Ok(HttpResponse::Ok().json(svc.report_done(lease, result, &who.0).await?))
}

/// `POST /v1/work/{lease}/fail` `{"message":…,"final":false}`: retried with the usual
/// backoff unless `final`.
#[utoipa::path(post, path = "/v1/work/{lease}/fail", tag = "work", request_body = WorkFail,
    params(("lease" = String, Path, description = "The lease, as the task came with it")),
    responses(
        (status = 200, description = "Failed", body = WorkOk),
        (status = 400, description = "A bad lease or body", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "The token's role may not work", body = ErrorLine),
        (status = 409, description = "`lease_lost`: not current; nothing changed", body = ErrorLine),
        (status = 413, description = "Over the JSON limit", body = ErrorLine),
        (status = 415, description = "Not JSON", body = ErrorLine),
        (status = 503, description = "A dependency, or the node holding the lease, is not answering", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn fail(
    svc: Svc,
    who: Caller,
    lease: web::Path<String>,
    body: web::Json<WorkFail>,
) -> Result<HttpResponse, ApiError> {
    let WorkFail { message, last } = body.into_inner();
    let message = protocol::work::note(&message);
    report(svc, who, lease, Said::Fail { last, message }).await
}

/// `POST /v1/work/{lease}/progress` `{"percent":N,"note":…}`: shown by the task's view.
#[utoipa::path(post, path = "/v1/work/{lease}/progress", tag = "work", request_body = WorkProgress,
    params(("lease" = String, Path, description = "The lease, as the task came with it")),
    responses(
        (status = 200, description = "Noted", body = WorkOk),
        (status = 400, description = "A bad lease or body (percent over 100)", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "The token's role may not work", body = ErrorLine),
        (status = 409, description = "`lease_lost`: not current; nothing changed", body = ErrorLine),
        (status = 413, description = "Over the JSON limit", body = ErrorLine),
        (status = 415, description = "Not JSON", body = ErrorLine),
        (status = 503, description = "A dependency, or the node holding the lease, is not answering", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn progress(
    svc: Svc,
    who: Caller,
    lease: web::Path<String>,
    body: web::Json<WorkProgress>,
) -> Result<HttpResponse, ApiError> {
    let WorkProgress { percent, note } = body.into_inner();
    if percent > 100 {
        return Err(malformed("percent is from 0 to 100"));
    }
    let note = note.as_deref().map(protocol::work::note);
    report(svc, who, lease, Said::Progress { percent, note }).await
}

/// `POST /v1/work/{lease}/extend` `{"secs":N}`: the deadline becomes now + N seconds (never
/// past the kind's maximum); the answer says the deadline now.
#[utoipa::path(post, path = "/v1/work/{lease}/extend", tag = "work", request_body = WorkExtend,
    params(("lease" = String, Path, description = "The lease, as the task came with it")),
    responses(
        (status = 200, description = "Extended; `deadline` is the new one", body = WorkOk),
        (status = 400, description = "A bad lease or body", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "The token's role may not work", body = ErrorLine),
        (status = 409, description = "`lease_lost`: not current; nothing changed", body = ErrorLine),
        (status = 413, description = "Over the JSON limit", body = ErrorLine),
        (status = 415, description = "Not JSON", body = ErrorLine),
        (status = 503, description = "A dependency, or the node holding the lease, is not answering", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn extend(
    svc: Svc,
    who: Caller,
    lease: web::Path<String>,
    body: web::Json<WorkExtend>,
) -> Result<HttpResponse, ApiError> {
    let secs = body.into_inner().secs;
    report(svc, who, lease, Said::Extend { secs }).await
}
