//! What a node does for a client, whatever the connection: accept a task (store its
//! payload, persist, publish with confirm, optionally wait for its result), look tasks up,
//! and find a result to send back.
//!
//! - [`intake`]: where a payload goes as it arrives: kept for the message or streamed to the
//!   bucket (the inline-or-bucket decision, made once for lines and `PUT`s alike).
//! - [`results`]: `RESULT`: an inline result, or a bucket object to stream.
//! - `accept`: the one way a task is accepted (a [`Services::submit`]'s route and wait);
//!   `waiting`: a waiting submission's one wait and its registration for the reply.
//! - [`access`]: who may do what (tokens, roles, limits); [`tokens`]: managing tokens.
//! - [`listing`]: a client's tasks page by page, and one task long-polled (HTTP).

mod accept;
pub mod access;
mod control;
pub mod fleet;
pub mod intake;
pub mod listing;
pub mod polling;
pub mod results;
mod schedules;
pub mod tokens;
mod waiting;
mod work;

use crate::actors::publisher::PublishError;
use crate::actors::Handles;
use crate::auth::Identity;
use crate::db::models::TaskRow;
use crate::db::DbError;
use crate::publishing::{lease_end, message_of, LEASE};
use crate::storage::StorageError;
use crate::view::FromRow;
use bytes::Bytes;
use protocol::{Check, DeadList, DeadTask, ErrorCode, ErrorLine, KindInfo, KindList, Pong};
use protocol::{TaskStatus, TaskView};
use std::time::Duration;
use uuid::Uuid;

pub use intake::Intake;
pub use work::Enlisted;

/// A request that could not be served. [`ServiceError::to_line`] is what the client gets.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("unknown kind `{kind}`; known kinds: {}", known.join(", "))]
    UnknownKind {
        kind: String,
        known: Vec<&'static str>,
    },
    #[error("the object store is unavailable ({0}); the task was not accepted, try again")]
    Storage(#[from] StorageError),
    #[error("the database is unavailable ({0}); try again")]
    Database(#[from] DbError),
    #[error("the task could not be queued ({0}); it was not accepted, try again")]
    NotAccepted(PublishError),
    #[error("no task with id {0}")]
    NotFound(Uuid),
    #[error("task {id} is still {status}; ask `RESULT {id}` later")]
    NotFinished { id: Uuid, status: TaskStatus },
    #[error("task {id} is {status}; only dead, failed or queued tasks can be retried")]
    NotRetryable { id: Uuid, status: TaskStatus },
    #[error("task {id} is {status} already; only a task that has not ended can be cancelled")]
    NotCancellable { id: Uuid, status: TaskStatus },
    #[error("key `{key}` names task {id}, submitted with another kind or payload; use a new key")]
    KeyConflict { key: String, id: Uuid },
    #[error("no result within {secs}s; task {id} goes on, ask `RESULT {id}` later")]
    Timeout { id: Uuid, secs: u64 },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("this token may submit {rate} tasks a second; try again in {retry_after_ms} ms")]
    RateLimited { rate: f64, retry_after_ms: u64 },
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("a payload of {size} bytes is over this token's max_payload of {max} bytes")]
    OverMaxPayload { size: u64, max: u64 },
    /// A request that names something badly (a token's name, role or limits).
    #[error("{0}")]
    Invalid(String),
    /// A bound of the node is reached (uploads in progress); try again.
    #[error("{0}")]
    Busy(String),
    #[error("a token named `{0}` exists already; pick another name")]
    TokenExists(String),
    #[error("no live token named `{0}`")]
    NoSuchToken(String),
    #[error("no schedule named `{0}`")]
    NoSuchSchedule(String),
    #[error("lease `{0}` is not current (its deadline passed, the task was cancelled, or it went to another worker); this answer changes nothing")]
    LeaseLost(String),
    #[error("task {id} may or may not run: its publish was not confirmed ({publish}) and the database is unavailable ({db}); ask `STATUS {id}` later")]
    Unsure {
        id: Uuid,
        publish: Box<PublishError>,
        db: DbError,
    },
    #[error(
        "the node was interrupted while accepting task {id} ({source}); ask `STATUS {id}` later"
    )]
    Interrupted {
        id: Uuid,
        source: tokio::task::JoinError,
    },
}

impl ServiceError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::UnknownKind { .. } => ErrorCode::UnknownKind,
            ServiceError::Storage(_) => ErrorCode::StorageUnavailable,
            ServiceError::Database(_) | ServiceError::Unsure { .. } => {
                ErrorCode::DatabaseUnavailable
            }
            ServiceError::NotAccepted(_) => ErrorCode::NotAccepted,
            ServiceError::Interrupted { .. } => ErrorCode::Internal,
            ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::NotFinished { .. } => ErrorCode::NotFinished,
            ServiceError::NotRetryable { .. } => ErrorCode::NotRetryable,
            ServiceError::NotCancellable { .. } => ErrorCode::NotCancellable,
            ServiceError::KeyConflict { .. } => ErrorCode::KeyConflict,
            ServiceError::Timeout { .. } => ErrorCode::Timeout,
            ServiceError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            ServiceError::Forbidden(_) => ErrorCode::Forbidden,
            ServiceError::RateLimited { .. } => ErrorCode::RateLimited,
            ServiceError::QuotaExceeded(_) | ServiceError::OverMaxPayload { .. } => {
                ErrorCode::QuotaExceeded
            }
            ServiceError::Invalid(_) => ErrorCode::Malformed,
            ServiceError::Busy(_) => ErrorCode::Busy,
            ServiceError::TokenExists(_) => ErrorCode::AlreadyExists,
            ServiceError::NoSuchToken(_) | ServiceError::NoSuchSchedule(_) => ErrorCode::NotFound,
            ServiceError::LeaseLost(_) => ErrorCode::LeaseLost,
        }
    }

    /// Whether a submission refused with this surely wrote no row (its task will never run).
    pub fn surely_not_accepted(&self) -> bool {
        matches!(
            self,
            ServiceError::UnknownKind { .. }
                | ServiceError::Storage(_)
                | ServiceError::NotAccepted(_)
                | ServiceError::Unauthenticated(_)
                | ServiceError::Forbidden(_)
                | ServiceError::RateLimited { .. }
                | ServiceError::QuotaExceeded(_)
                | ServiceError::OverMaxPayload { .. }
                | ServiceError::Invalid(_)
                | ServiceError::Busy(_)
                | ServiceError::KeyConflict { .. }
        )
    }

    fn task_id(&self) -> Option<Uuid> {
        match self {
            ServiceError::NotFound(id)
            | ServiceError::NotFinished { id, .. }
            | ServiceError::NotRetryable { id, .. }
            | ServiceError::NotCancellable { id, .. }
            | ServiceError::KeyConflict { id, .. }
            | ServiceError::Timeout { id, .. }
            | ServiceError::Unsure { id, .. }
            | ServiceError::Interrupted { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// The error line the client gets.
    pub fn to_line(&self) -> ErrorLine {
        let mut line = ErrorLine::new(self.code(), self).with_id(self.task_id());
        match self {
            ServiceError::NotFinished { status, .. }
            | ServiceError::NotCancellable { status, .. } => line.status = Some(*status),
            ServiceError::RateLimited { retry_after_ms, .. } => {
                line.retry_after_ms = Some(*retry_after_ms)
            }
            _ => {}
        }
        line
    }
}

/// What a submission is answered with.
pub enum Answer {
    /// A task view made here.
    View(Box<TaskView>),
    /// A task view as the node that ran the task wrote it (one JSON object).
    Json(Bytes),
}

/// What serving clients needs: the node's actors and its client-facing settings. Cheap to
/// clone.
#[derive(Clone)]
pub struct Services {
    pub handles: Handles,
    pub access: access::Access,
    pub inline_limit: usize,
    /// The longest a submission may wait for its result.
    pub wait_timeout: Duration,
    /// The largest payload a client may send (`listener.max_payload_bytes`).
    pub max_payload: u64,
    /// Set once the node is shutting down (readiness checks fail from then on).
    pub draining: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The fleet's views ([`fleet`]).
    pub fleet: fleet::Fleet,
    /// How long an idempotency key names its first task (`keys.retention_secs`).
    pub keys_retention: Duration,
    /// Payload uploads to the bucket in progress on this node (`storage.max_uploads`): each
    /// holds up to a part in memory.
    pub uploads: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Services {
    pub fn node(&self) -> &str {
        &self.handles.node
    }

    /// Whether `kind` is built in or known here as external (declared, or registered when
    /// last read: see [`Services::find_kind`]).
    pub fn check_kind(&self, kind: &str) -> Result<(), ServiceError> {
        match self.handles.kinds.get(kind).is_some() || self.handles.external.knows(kind) {
            true => Ok(()),
            false => Err(self.unknown_kind(kind)),
        }
    }

    /// [`Services::check_kind`], asking the database about an external kind this node has
    /// not met yet (a worker registered it on another node a moment ago).
    pub async fn find_kind(&self, kind: &str) -> Result<(), ServiceError> {
        if self.check_kind(kind).is_ok() || self.handles.external.find(kind).await? {
            return Ok(());
        }
        Err(self.unknown_kind(kind))
    }

    fn unknown_kind(&self, kind: &str) -> ServiceError {
        ServiceError::UnknownKind {
            kind: kind.to_string(),
            known: self.handles.kinds.names(),
        }
    }

    pub fn view(&self, row: &TaskRow) -> TaskView {
        self.flag_paused(TaskView::from_row(row, &self.handles.storage))
    }

    /// A task that waits because its lane or kind is paused says so.
    fn flag_paused(&self, mut view: TaskView) -> TaskView {
        let waits = matches!(view.status, TaskStatus::Queued | TaskStatus::Scheduled);
        if waits && self.handles.control.paused.holds(&view.kind) {
            view.paused = Some(true);
        }
        view
    }

    /// Task `id`'s row, if `who` may see it: another owner's task is answered exactly as an
    /// unknown id.
    pub async fn row(&self, id: Uuid, who: &Identity) -> Result<TaskRow, ServiceError> {
        self.handles
            .store
            .task(id)
            .await?
            .filter(|row| who.sees(row.owner.as_deref()))
            .ok_or(ServiceError::NotFound(id))
    }

    /// `PING`: the node's name and whether each dependency answers (within 2 s; one answer a
    /// second for the whole node, see [`crate::health`]). A load balancer's health check
    /// expects `"healthy":true`.
    pub async fn health(&self) -> Pong {
        let h = &self.handles;
        let deps = h.health.check().await;
        Pong {
            pong: true,
            node: Some(h.node.clone()),
            healthy: deps.all_up(),
            amqp: Some(Check::of(deps.amqp)),
            postgres: Some(Check::of(deps.postgres)),
            s3: Some(Check::of(deps.s3)),
            paused: h.control.paused.targets(),
        }
    }

    /// `KINDS`: the built-in kinds, then the external ones (declared or registered) with
    /// the workers connected for each across the fleet.
    pub async fn kinds(&self) -> KindList {
        let mut kinds: Vec<KindInfo> = self
            .handles
            .kinds
            .describe()
            .into_iter()
            .map(|(name, about)| KindInfo {
                name: name.into(),
                about: about.into(),
                workers: None,
            })
            .collect();
        let workers = self.fleet_workers().await;
        for name in self.handles.external.names() {
            let n = workers.iter().filter(|w| w.kinds.contains(&name)).count();
            kinds.push(KindInfo {
                about: "external: run by workers that connect (WORK)".into(),
                workers: Some(n as u32),
                name,
            });
        }
        KindList { kinds }
    }

    /// `DEAD`: the newest dead tasks.
    pub async fn dead(&self, limit: u32, who: &Identity) -> Result<DeadList, ServiceError> {
        let owner = (!who.is_admin()).then(|| who.owner().unwrap_or_default().to_string());
        let rows = self
            .handles
            .store
            .list_dead(limit, owner.as_deref())
            .await?;
        let dead = rows
            .into_iter()
            .map(|r| DeadTask {
                id: r.id,
                kind: r.kind,
                attempts: r.attempts.max(0) as u32,
                message: r.error,
                node: r.node,
                finished_at: r.finished_at,
            })
            .collect();
        Ok(DeadList { dead })
    }

    /// `RETRY <id>`: queue a dead, failed or stuck `queued` task again with a fresh attempt
    /// budget (through the outbox, like a new task).
    pub async fn retry(&self, id: Uuid, who: &Identity) -> Result<TaskView, ServiceError> {
        Services::may_submit(who)?;
        // Another owner's task: as unknown (and not touched).
        let status = self.row(id, who).await?.status;
        let reset = self
            .handles
            .store
            .reset_for_retry(id, &self.handles.node, lease_end(LEASE))
            .await?;
        let Some(row) = reset else {
            return Err(ServiceError::NotRetryable { id, status });
        };
        let kind = row.kind.clone();
        let task = message_of(row, &self.handles.node);
        let outbox = self.handles.outbox.clone();
        actix::spawn(async move { outbox.publish(vec![task]).await });
        tracing::info!(task = %id, "task queued again by RETRY");
        let mut view = TaskView::new(id, kind, TaskStatus::Queued);
        view.attempts = Some(0);
        Ok(view)
    }

    /// `STATUS`: the task without its result body.
    pub async fn status(&self, id: Uuid, who: &Identity) -> Result<TaskView, ServiceError> {
        Ok(self.view(&self.row(id, who).await?).without_result())
    }
}
