//! `/healthz` (the process answers), `/readyz` (its dependencies answer and it is not
//! draining: what a balancer checks) and `/v1/kinds`.

use crate::service::Services;
use actix_web::{web, HttpResponse};
use protocol::{ErrorLine, KindList};
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

/// 200 when every dependency answers and the node is not shutting down, 503 otherwise. The
/// body says only `ready` to anyone; with a token it is `PING`'s answer (node, each
/// dependency, paused targets) and `draining`. The dependencies are asked at most once a
/// second for the whole node ([`crate::health`]), however many ask.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "Ready (with a token: PING's answer and `draining`)", body = Ready),
              (status = 503, description = "A dependency is down, or the node is draining", body = Ready)))]
async fn readyz(svc: web::Data<Services>, who: Option<super::caller::Caller>) -> HttpResponse {
    let pong = svc.health().await;
    let draining = svc.draining.load(Ordering::Relaxed);
    let ready = pong.healthy && !draining;
    let body = match who {
        Some(_) => {
            let mut body = serde_json::to_value(&pong).unwrap_or_default();
            body["draining"] = draining.into();
            body["ready"] = ready.into();
            body
        }
        None => serde_json::json!({ "ready": ready }),
    };
    match ready {
        true => HttpResponse::Ok().json(body),
        false => HttpResponse::ServiceUnavailable().json(body),
    }
}

/// `/readyz`'s answer: `ready`, and with a token the fields of `PING`'s answer and `draining`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ready {
    pub ready: bool,
    /// With a token: the node is shutting down.
    pub draining: Option<bool>,
    /// With a token: as `PING`'s answer.
    pub node: Option<String>,
    pub healthy: Option<bool>,
}

/// Open to anyone, as `KINDS` is to any token: what a client may submit.
#[utoipa::path(get, path = "/v1/kinds", tag = "tasks",
    responses((status = 200, description = "The task kinds", body = KindList),
              (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine)),
    security(("bearer" = [])))]
async fn kinds(svc: web::Data<Services>, _who: super::caller::Caller) -> HttpResponse {
    HttpResponse::Ok().json(svc.kinds().await)
}
