//! Who is asking: `Authorization: Bearer <token>`, checked like a line protocol `AUTH` (an open
//! node needs none). Every request carries its token; the node's copy of the live tokens
//! answers without a database round trip. A wrong token is answered after a pause that
//! grows with each failure from the same address ([`crate::auth::backoff`]).

use super::error::ApiError;
use crate::auth::tokens::Secret;
use crate::auth::Identity;
use crate::service::Services;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use protocol::ErrorCode;

/// The authenticated caller of a request.
pub struct Caller(pub Identity);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Caller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let svc = req.app_data::<web::Data<Services>>().cloned();
        let peer = req.peer_addr().map(|a| a.ip());
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default().trim().to_string());
        Box::pin(async move {
            let svc = svc.ok_or_else(|| ApiError::new(ErrorCode::Internal, "no services"))?;
            let secret = match token.as_deref().map(|t| t.split_once(' ')) {
                Some(Some((scheme, secret))) if scheme.eq_ignore_ascii_case("bearer") => {
                    Secret::new(secret.trim())
                }
                Some(_) => {
                    return Err(ApiError::new(
                        ErrorCode::Unauthenticated,
                        "use Authorization: Bearer <token>",
                    ))
                }
                None if svc.access.mode == crate::auth::Mode::Open => {
                    return Ok(Caller(Identity::open()))
                }
                None => {
                    return Err(ApiError::new(
                        ErrorCode::Unauthenticated,
                        "this node needs a token: send Authorization: Bearer <token>",
                    ))
                }
            };
            match svc.authenticate(&secret).await {
                Ok(who) => Ok(Caller(who)),
                Err(e) => {
                    svc.handles.metrics.auth_failed("http");
                    // Failed guesses from one address are slow, and slower each time.
                    if let Some(peer) = peer {
                        let pause = svc.access.failures.failed(peer, std::time::Instant::now());
                        tokio::time::sleep(pause).await;
                    }
                    Err(e.into())
                }
            }
        })
    }
}
