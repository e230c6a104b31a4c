//! `GET /openapi.json`: the API described (OpenAPI 3.1), generated from the handlers and the
//! protocol crate's types (utoipa). `tasknode openapi` prints the same document; the copy
//! kept in the repository (`openapi.json`) is checked against it by a test.

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "tasknode", description = "Run tasks on a tasknode fleet over HTTP."),
    paths(
        super::tasks::submit_json,
        super::tasks::submit_raw,
        super::tasks::get,
        super::tasks::list,
        super::results::result,
        super::results::payload,
        super::tasks::retry,
        super::control::cancel,
        super::work::poll,
        super::work::done,
        super::work::fail,
        super::work::progress,
        super::work::extend,
        super::control::paused,
        super::control::pause,
        super::control::resume,
        super::control::list_schedules,
        super::control::add_schedule,
        super::control::remove_schedule,
        super::events::events,
        super::health::kinds,
        super::health::healthz,
        super::health::readyz,
        super::metrics::metrics,
        super::fleet::overview,
        super::fleet::me,
        super::fleet::list_tokens,
        super::fleet::create_token,
        super::fleet::revoke_token,
    ),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document, as served and kept in the repository.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the API document serializes")
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").get(serve));
}

async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_in_the_repository_is_current() {
        let kept = include_str!("../../../../openapi.json");
        let now = super::document();
        assert!(
            kept.trim() == now.trim(),
            "openapi.json is out of date: run `cargo run -p tasknode -- openapi > openapi.json`"
        );
    }
}
