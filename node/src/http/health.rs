//! `/healthz` (the process answers), `/readyz` (its dependencies answer and it is not
//! draining: what a balancer checks) and `/v1/kinds`.

use crate::service::Services;
use actix_web::{web, HttpResponse};
use protocol::{ErrorLine, KindList, Pong};
use std::sync::atomic::Ordering;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz))
        .service(web::resource("/v1/kinds").get(kinds));
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process answers")))]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "alive": true }))
}

/// 200 with `PING`'s answer when every dependency answers and the node is not shutting down;
/// 503 with the same body otherwise.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready", body = Pong),
              (status = 503, description = "A dependency is down, or the node is draining", body = Pong)))]
async fn readyz(svc: web::Data<Services>) -> HttpResponse {
    let pong = svc.health().await;
    let draining = svc.draining.load(Ordering::Relaxed);
    let mut body = serde_json::to_value(&pong).unwrap_or_default();
    body["draining"] = draining.into();
    match pong.healthy && !draining {
        true => HttpResponse::Ok().json(body),
        false => HttpResponse::ServiceUnavailable().json(body),
    }
}

/// Open to anyone, as `KINDS` is to any token: what a client may submit.
#[utoipa::path(get, path = "/v1/kinds", tag = "tasks",
    responses((status = 200, description = "The task kinds", body = KindList),
              (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine)),
    security(("bearer" = [])))]
async fn kinds(svc: web::Data<Services>, _who: super::caller::Caller) -> HttpResponse {
    HttpResponse::Ok().json(svc.kinds())
}
