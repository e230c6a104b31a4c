//! The HTTP API (actix-web), beside the line protocol: the same services, tokens, roles,
//! quotas and error codes, for browsers, phones and anything else that speaks HTTP.
//!
//! - [`tasks`]: `/v1/tasks…`; [`results`]: a result's bytes (ranges, redirects); [`events`]: a task's state as Server-Sent Events; [`health`]: `/healthz`, `/readyz`, `/v1/kinds`;
//! - [`metrics`]: `/metrics` for Prometheus; [`openapi`]: `/openapi.json`;
//! - [`console`]: the web console (`/console/`), its files compiled in; [`fleet`]: `/v1/overview`, `/v1/me`, `/v1/tokens`;
//! - [`work`]: workers over HTTP (`/v1/work…`: a long poll for leased tasks, reports on leases);
//! - [`caller`]: `Authorization: Bearer <token>`; [`error`]: error codes as statuses.
//!
//! Bad input never reaches a handler whole: JSON bodies are bounded (`http.max_json_bytes`),
//! raw bodies are streamed and counted, slow headers time out, and an unknown route answers
//! a JSON 404.

pub mod caller;
pub mod connections;
pub mod console;
pub mod control;
pub mod error;
pub mod events;
pub mod fleet;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod results;
pub mod tasks;
pub mod work;

use crate::config::HttpSettings;
use crate::service::Services;
use actix_web::dev::ServerHandle;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use error::ApiError;
use protocol::ErrorCode;
use std::time::Duration;

/// A JSON error for extractor failures, with the line protocol's codes.
fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, err.to_string())
        }
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::Malformed,
            "send JSON with Content-Type: application/json (or POST a raw body to /v1/tasks/{kind})",
        )
        .with_status(actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE),
        _ => ApiError::new(
            ErrorCode::Malformed,
            format!(
                "bad JSON ({err}); expected {{\"kind\":\"upper\",\"payload\":\"text\",\"wait\":true}}"
            ),
        ),
    };
    e.into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::Malformed, format!("bad query: {err}")).into()
}

fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::NotFound, format!("bad path: {err}")).into()
}

async fn not_found(req: HttpRequest) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no route {} {}", req.method(), req.path()),
    )
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers(["authorization", "content-type", "idempotency-key"])
        .expose_headers(["location", "retry-after"])
        .max_age(3600);
    for origin in origins {
        cors = match origin.as_str() {
            "*" => cors.allow_any_origin(),
            origin => cors.allowed_origin(origin),
        };
    }
    cors
}

/// Serve the API on `listener` (on its own worker threads) until the returned handle stops it.
pub fn start(
    listener: std::net::TcpListener,
    svc: Services,
    settings: &HttpSettings,
) -> std::io::Result<ServerHandle> {
    let (max_json, origins) = (settings.max_json_bytes, settings.cors_origins.clone());
    let open_requests = svc.handles.metrics.http_requests_open.clone();
    let open_connections = svc.handles.metrics.connections("http");
    let data = web::Data::new(svc);
    let limits = web::Data::new(settings.clone());
    let streams = web::Data::new(events::Streams {
        open: std::sync::Arc::new(tokio::sync::Semaphore::new(settings.max_streams)),
        life: std::time::Duration::from_secs(settings.max_stream_secs),
    });
    let server = HttpServer::new(move || {
        let open_requests = open_requests.clone();
        App::new()
            .wrap_fn(move |req, srv| {
                use actix_web::dev::Service;
                let open = open_requests.clone();
                let serving = match connections::refusal(&req) {
                    None => {
                        open.inc();
                        Ok(srv.call(req))
                    }
                    Some(max) => Err((req, max)),
                };
                async move {
                    match serving {
                        Ok(serving) => {
                            let served = serving.await;
                            open.dec();
                            served.map(|r| r.map_into_left_body())
                        }
                        Err((req, max)) => Ok(connections::refuse(req, max)),
                    }
                }
            })
            .app_data(data.clone())
            .app_data(limits.clone())
            .app_data(streams.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(max_json)
                    .error_handler(json_error),
            )
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .wrap(cors(&origins))
            .configure(tasks::routes)
            .configure(control::routes)
            .configure(work::routes)
            .configure(health::routes)
            .configure(fleet::routes)
            .configure(console::routes)
            .configure(metrics::routes)
            .configure(openapi::routes)
            .default_service(web::to(not_found))
    })
    .workers(settings.workers.max(1))
    .on_connect(connections::counter(
        open_connections,
        settings.max_connections,
    ))
    // Past the bound, connections are still taken (to be told `busy`), up to a hard limit per
    // thread; beyond that they wait in the kernel's backlog.
    .max_connections(settings.max_connections + 256)
    .client_request_timeout(Duration::from_secs(settings.request_timeout_secs))
    .keep_alive(Duration::from_secs(settings.keep_alive_secs))
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the HTTP API stopped");
        }
    });
    Ok(handle)
}
