//! `GET /metrics`: the node's [`crate::metrics`] in the Prometheus (OpenMetrics) text format.
//! Asks for an admin token unless `http.public_metrics` is set (Prometheus sends one with
//! `authorization: { credentials_file: … }`).

use super::caller::Caller;
use super::error::ApiError;
use crate::actors::depths::GetDepths;
use crate::config::HttpSettings;
use crate::metrics::{DependencyLabel, LaneLabel};
use crate::service::Services;
use actix_web::{web, HttpResponse};
use protocol::{Check, ErrorCode};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(metrics));
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses(
        (status = 200, description = "Prometheus (OpenMetrics) text", content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "No token (unless http.public_metrics)", body = protocol::ErrorLine),
        (status = 403, description = "Not an admin token", body = protocol::ErrorLine),
    ),
    security(("bearer" = [])))]
async fn metrics(
    svc: web::Data<Services>,
    settings: web::Data<HttpSettings>,
    who: Result<Caller, ApiError>,
) -> Result<HttpResponse, ApiError> {
    if !settings.public_metrics {
        let who = who?;
        if !who.0.is_admin() {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "metrics are for admin tokens (or set http.public_metrics)",
            ));
        }
    }
    let m = &svc.handles.metrics;
    let (pong, depths) = tokio::join!(svc.health(), svc.handles.depths.send(GetDepths));
    for (dependency, check) in [
        ("rabbitmq", pong.amqp),
        ("postgresql", pong.postgres),
        ("object_store", pong.s3),
    ] {
        let labels = DependencyLabel {
            dependency: dependency.into(),
        };
        m.dependency_up
            .get_or_create(&labels)
            .set(i64::from(check == Some(Check::Ok)));
    }
    for (lane, depth) in depths.unwrap_or_default() {
        m.queue_depth
            .get_or_create(&LaneLabel { lane })
            .set(depth.into());
    }
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(m.encode()))
}
