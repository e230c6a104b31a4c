//! `GET /v1/tasks/{id}/events`: Server-Sent Events of a task's state until it is final (one
//! `task` event per change of status, attempt or progress, the task view as its data; a comment every
//! 15 s keeps proxies from closing a quiet stream). At most `http.max_streams` streams and
//! long polls are open on a node at once; a stream ends after `http.max_stream_secs`, and as
//! soon as its token is revoked.

use super::caller::Caller;
use super::error::ApiError;
use crate::auth::Identity;
use crate::service::Services;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use protocol::{ErrorCode, TaskStatus, TaskView};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// What a stream's events differ in.
type Seen = (TaskStatus, Option<u32>, Option<u8>, Option<String>);

/// How often a streamed task's row is read.
const EVERY: Duration = Duration::from_millis(500);
/// A comment line after this long without an event.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Open streams and long polls on this node, and how long a stream may stay open.
#[derive(Clone)]
pub struct Streams {
    pub open: Arc<Semaphore>,
    pub life: Duration,
}

impl Streams {
    pub fn take(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.open.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                ErrorCode::Busy,
                "this node has as many streams open as it serves; try again or use another node",
            )
        })
    }
}

struct Watching {
    svc: web::Data<Services>,
    who: Identity,
    id: Uuid,
    next: Option<TaskView>,
    /// What the last event said: status, attempts, progress and its note.
    last: Option<Seen>,
    quiet_since: Instant,
    done: bool,
    /// When the stream ends whatever the task does.
    ends: Instant,
    _permit: OwnedSemaphorePermit,
}

/// One event as a reader sees it (for the API document): `event: task`, and as its data a
/// task view (JSON, one line).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TaskEvent {
    /// Always `task`.
    event: String,
    /// The task view, JSON.
    data: String,
}

/// One `task` event. Characters some readers split lines at (NEL, LS, PS), which JSON leaves
/// as they are, are escaped, so the data is one line for every reader.
fn event(view: &TaskView) -> Bytes {
    let json = serde_json::to_string(view)
        .unwrap_or_default()
        .replace('\u{85}', "\\u0085")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    Bytes::from(format!("event: task\ndata: {json}\n\n"))
}

#[utoipa::path(get, path = "/v1/tasks/{id}/events", tag = "tasks",
    params(("id" = String, Path, description = "The task id")),
    responses(
        (status = 200, description = "`task` events (the task view as data) until it is final", content_type = "text/event-stream", body = TaskEvent),
        (status = 401, description = "No token, or a wrong or revoked one", body = protocol::ErrorLine),
        (status = 404, description = "No such task (or not yours)", body = protocol::ErrorLine),
        (status = 503, description = "Too many streams, or a dependency is down", body = protocol::ErrorLine),
    ),
    security(("bearer" = [])))]
pub async fn events(
    svc: web::Data<Services>,
    streams: web::Data<Streams>,
    who: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::error::task_id(&id)?;
    let first = svc.task(id, &who.0, Duration::ZERO).await?;
    let watching = Watching {
        svc,
        who: who.0,
        id,
        next: Some(first),
        last: None,
        quiet_since: Instant::now(),
        done: false,
        ends: Instant::now() + streams.life,
        _permit: streams.take()?,
    };
    let stream = futures_util::stream::unfold(watching, |mut w| async move {
        loop {
            // Past its life, or its token revoked: the stream ends.
            let revoked = w
                .who
                .name
                .as_ref()
                .is_some_and(|name| !w.svc.access.tokens.is_live(name));
            if w.done || revoked || Instant::now() >= w.ends {
                return None;
            }
            let view = match w.next.take() {
                Some(view) => view,
                None => {
                    tokio::time::sleep(EVERY).await;
                    match w.svc.task(w.id, &w.who, Duration::ZERO).await {
                        Ok(view) => view,
                        // The database is away for now (or the token was revoked: the row
                        // is no longer ours to see): go on trying, then end.
                        Err(_) if w.quiet_since.elapsed() < KEEP_ALIVE * 4 => continue,
                        Err(_) => return None,
                    }
                }
            };
            let seen = (
                view.status,
                view.attempts,
                view.progress,
                view.progress_note.clone(),
            );
            if w.last.as_ref() != Some(&seen) {
                w.last = Some(seen);
                w.quiet_since = Instant::now();
                w.done = view.status.is_final();
                return Some((Ok::<_, std::convert::Infallible>(event(&view)), w));
            }
            if w.quiet_since.elapsed() >= KEEP_ALIVE {
                w.quiet_since = Instant::now();
                return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), w));
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_line_of_json_whatever_the_result() {
        let mut view = TaskView::new(Uuid::nil(), "echo", TaskStatus::Succeeded);
        view.set_result("a\u{2028}b\u{85}c\nd".as_bytes());
        let text = String::from_utf8(event(&view).to_vec()).unwrap();
        let data = text.strip_prefix("event: task\ndata: ").unwrap().trim_end();
        assert_eq!(data.lines().count(), 1, "{data}");
        assert!(!data.contains(['\u{2028}', '\u{85}']));
        let back: TaskView = serde_json::from_str(data).unwrap();
        assert_eq!(back.result.as_deref(), Some("a\u{2028}b\u{85}c\nd"));
    }
}
