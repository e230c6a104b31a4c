//! `GET /v1/overview` (the whole fleet, for admins), `GET /v1/me` (who a token is) and the
//! tokens (`/v1/tokens`, for admins): what the web console shows beside the tasks.

use super::caller::Caller;
use super::error::ApiError;
use crate::service::Services;
use actix_web::{web, HttpResponse};
use protocol::fleet::{Me, Overview};
use protocol::{ErrorLine, NewToken, TokenCreated, TokenList, TokenRevoked};

type Svc = web::Data<Services>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/overview").get(overview))
        .service(web::resource("/v1/me").get(me))
        .service(
            web::resource("/v1/tokens")
                .get(list_tokens)
                .post(create_token),
        )
        .service(web::resource("/v1/tokens/{name}").delete(revoke_token));
}

/// Every node's health and load (a node silent for 5 s is down), the fleet's finished tasks
/// and their latency second by second over the last 5 minutes, and each lane's queue.
#[utoipa::path(get, path = "/v1/overview", tag = "fleet",
    responses(
        (status = 200, description = "The fleet now", body = Overview),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "Not an admin token", body = ErrorLine),
        (status = 503, description = "The database is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn overview(svc: Svc, who: Caller) -> Result<HttpResponse, ApiError> {
    let overview = svc.overview(&who.0).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-store"))
        .json(overview))
}

/// The token's name and role.
#[utoipa::path(get, path = "/v1/me", tag = "fleet",
    responses(
        (status = 200, description = "Who the token is", body = Me),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn me(svc: Svc, who: Caller) -> HttpResponse {
    HttpResponse::Ok().json(svc.me(&who.0))
}

/// Every token (never a secret), revoked ones too.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses(
        (status = 200, description = "The tokens", body = TokenList),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "Not an admin token", body = ErrorLine),
        (status = 503, description = "The database is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn list_tokens(svc: Svc, who: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(svc.list_tokens(&who.0).await?))
}

/// Make a token; its secret is in this answer and nowhere else.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = NewToken,
    responses(
        (status = 201, description = "Made; keep the secret", body = TokenCreated),
        (status = 400, description = "A bad name, role or limit", body = ErrorLine),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "Not an admin token", body = ErrorLine),
        (status = 409, description = "A token has that name", body = ErrorLine),
        (status = 413, description = "Over the JSON limit", body = ErrorLine),
        (status = 415, description = "Not JSON", body = ErrorLine),
        (status = 503, description = "The database is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn create_token(
    svc: Svc,
    who: Caller,
    body: web::Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let created = svc.create_token(body.into_inner(), &who.0).await?;
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(created))
}

/// Revoke a token: every node refuses it within 2 s, on open connections too. A token cannot
/// revoke itself.
#[utoipa::path(delete, path = "/v1/tokens/{name}", tag = "tokens",
    params(("name" = String, Path, description = "The token's name")),
    responses(
        (status = 200, description = "Revoked", body = TokenRevoked),
        (status = 401, description = "No token, or a wrong or revoked one", body = ErrorLine),
        (status = 403, description = "Not an admin token, or the token itself", body = ErrorLine),
        (status = 404, description = "No live token has that name", body = ErrorLine),
        (status = 503, description = "The database is down", body = ErrorLine),
    ),
    security(("bearer" = [])))]
async fn revoke_token(
    svc: Svc,
    who: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(svc.revoke_token(name.into_inner(), &who.0).await?))
}
