//! Control over work over HTTP: a submission's options (body fields, the `Idempotency-Key`
//! header, query parameters of a raw body), `POST /v1/tasks/{id}/cancel`, and (admins)
//! `GET /v1/paused`, `PUT|DELETE /v1/paused/{lane|kind}/{name}`; periodic tasks:
//! `GET|POST /v1/schedules`, `DELETE /v1/schedules/{name}`.

use super::caller::Caller;
use super::error::ApiError;
use crate::service::Services;
use actix_web::{web, HttpRequest, HttpResponse};
use protocol::{
    ErrorCode, ErrorLine, NewSchedule, PauseTarget, Paused, ScheduleInfo, ScheduleList,
    ScheduleRemoved, SubmitOptions, TaskView,
};

type Svc = web::Data<Services>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/tasks/{id}/cancel").route(web::post().to(cancel)))
        .service(web::resource("/v1/paused").route(web::get().to(paused)))
        .service(
            web::resource("/v1/paused/{what}/{name}")
                .route(web::put().to(pause))
                .route(web::delete().to(resume)),
        )
        .service(
            web::resource("/v1/schedules")
                .route(web::get().to(list_schedules))
                .route(web::post().to(add_schedule)),
        )
        .service(web::resource("/v1/schedules/{name}").route(web::delete().to(remove_schedule)));
}

/// `GET /v1/schedules`: the caller's periodic tasks (every one for an admin).
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses(
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 200, description = "Schedules", body = ScheduleList)),
    security(("bearer" = [])))]
async fn list_schedules(svc: Svc, who: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(svc.list_schedules(&who.0).await?))
}

/// `POST /v1/schedules`: add a periodic task (or replace the caller's schedule of that name).
#[utoipa::path(post, path = "/v1/schedules", tag = "schedules", request_body = NewSchedule,
    responses(
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 200, description = "Added; `next_at` is its first tick", body = ScheduleInfo),
        (status = 400, description = "A bad name, cron expression, time zone or kind", body = ErrorLine),
        (status = 403, description = "The name is another token's, or the role may not submit", body = ErrorLine),
        (status = 413, description = "Over the JSON limit", body = ErrorLine),
        (status = 415, description = "Not JSON", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn add_schedule(
    svc: Svc,
    who: Caller,
    body: web::Json<NewSchedule>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(svc.add_schedule(body.into_inner(), &who.0).await?))
}

/// `DELETE /v1/schedules/{name}`: no more ticks.
#[utoipa::path(delete, path = "/v1/schedules/{name}", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 200, description = "Removed", body = ScheduleRemoved),
              (status = 404, description = "No such schedule (of the caller's)", body = ErrorLine)),
    security(("bearer" = [])))]
async fn remove_schedule(
    svc: Svc,
    who: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(svc.remove_schedule(name.into_inner(), &who.0).await?))
}

/// A submission's options: `body` (checked), with the `Idempotency-Key` header as its key
/// (a body key that differs from the header is refused).
pub fn options_of(req: &HttpRequest, body: SubmitOptions) -> Result<SubmitOptions, ApiError> {
    let mut options = body;
    if let Some(header) = req.headers().get("idempotency-key") {
        let header = header.to_str().map_err(|_| {
            ApiError::new(
                ErrorCode::Malformed,
                "Idempotency-Key must be visible ASCII",
            )
        })?;
        match &options.key {
            Some(key) if key != header => {
                return Err(ApiError::new(
                    ErrorCode::Malformed,
                    "the Idempotency-Key header and the body's key differ",
                ))
            }
            _ => options.key = Some(header.to_string()),
        }
    }
    options
        .checked()
        .map_err(|e| ApiError::new(e.code(), e.to_string()))
}

/// `POST /v1/tasks/{id}/cancel`: a task not yet ended is cancelled (a running one is told to
/// stop); 409 `not_cancellable` for one that has ended.
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "The task's id")),
    responses(
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 200, description = "Cancelled", body = TaskView),
        (status = 403, description = "The token's role may not cancel", body = ErrorLine),
        (status = 404, description = "No such task (or another token's)", body = ErrorLine),
        (status = 409, description = "It has ended (`not_cancellable`)", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn cancel(svc: Svc, who: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = super::error::task_id(&id)?;
    Ok(HttpResponse::Ok().json(svc.cancel(id, &who.0).await?))
}

/// `GET /v1/paused`: the lanes and kinds paused now (admin).
#[utoipa::path(get, path = "/v1/paused", tag = "control",
    responses(
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 200, description = "Paused lanes and kinds", body = Paused),
              (status = 403, description = "Not an admin token", body = ErrorLine)),
    security(("bearer" = [])))]
async fn paused(svc: Svc, who: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(svc.pause(None, &who.0).await?))
}

fn target(path: &(String, String)) -> Result<PauseTarget, ApiError> {
    PauseTarget::parse(&format!("{} {}", path.0, path.1))
        .map_err(|e| ApiError::new(ErrorCode::Malformed, e.to_string()))
}

/// `PUT /v1/paused/{lane|kind}/{name}`: pause a lane or a kind (admin). Its tasks are still
/// accepted; they wait until resumed.
#[utoipa::path(put, path = "/v1/paused/{what}/{name}", tag = "control",
    params(("what" = String, Path, description = "`lane` or `kind`"),
           ("name" = String, Path, description = "The lane's or kind's name")),
    responses(
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 200, description = "Paused now", body = Paused),
              (status = 400, description = "No such lane or kind", body = ErrorLine),
              (status = 403, description = "Not an admin token", body = ErrorLine)),
    security(("bearer" = [])))]
async fn pause(
    svc: Svc,
    who: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let target = target(&path)?;
    Ok(HttpResponse::Ok().json(svc.pause(Some(target), &who.0).await?))
}

/// `DELETE /v1/paused/{lane|kind}/{name}`: resume (admin).
#[utoipa::path(delete, path = "/v1/paused/{what}/{name}", tag = "control",
    params(("what" = String, Path, description = "`lane` or `kind`"),
           ("name" = String, Path, description = "The lane's or kind's name")),
    responses(
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 200, description = "Paused now", body = Paused),
              (status = 400, description = "No such lane or kind", body = ErrorLine),
              (status = 403, description = "Not an admin token", body = ErrorLine)),
    security(("bearer" = [])))]
async fn resume(
    svc: Svc,
    who: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let target = target(&path)?;
    Ok(HttpResponse::Ok().json(svc.resume(target, &who.0).await?))
}
