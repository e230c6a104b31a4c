//! Open HTTP connections, bounded by `http.max_connections` across the node's HTTP threads.
//!
//! A connection opened past the bound is still accepted, so that its client hears why: each of
//! its requests is answered `503 busy` (with `Retry-After`) and the connection is closed. The
//! connections already open are served as before. A client that opens connections and sends
//! nothing loses them after `http.request_timeout_secs`, an idle keep-alive one after
//! `http.keep_alive_secs`, so a flood holds the slots only that long.

use super::error::ApiError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::ResponseError;
use prometheus_client::metrics::gauge::Gauge;
use protocol::ErrorCode;
use std::any::Any;

/// One open connection, counted while it lives (actix keeps it with the connection).
struct Slot {
    open: Gauge,
    /// Opened when `max` were already open.
    over: Option<usize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// For `HttpServer::on_connect`: count the connection in `open` and mark it if it is one too
/// many.
pub fn counter(open: Gauge, max: usize) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync {
    move |_, extensions| {
        let before = open.inc();
        let over = (before >= max as i64).then_some(max);
        extensions.insert(Slot {
            open: open.clone(),
            over,
        });
    }
}

/// `None` for a request on a counted connection within the bound; else the refusal to send.
pub fn refusal(req: &ServiceRequest) -> Option<usize> {
    req.conn_data::<Slot>().and_then(|slot| slot.over)
}

/// Answer `503 busy` and close the connection.
pub fn refuse<B: MessageBody>(req: ServiceRequest, max: usize) -> ServiceResponse<EitherBody<B>> {
    let mut response = ApiError::new(
        ErrorCode::Busy,
        format!("this node already has {max} HTTP connections open; try again shortly"),
    )
    .error_response();
    response.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from_static("1"),
    );
    response
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    req.into_response(response).map_into_right_body()
}
