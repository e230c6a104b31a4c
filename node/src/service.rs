//! What a node does for a client, independent of the connection: accept a task (persist,
//! publish with confirm, optionally wait for its result), and look tasks up.

use crate::actors::persister::{
    CheckDatabase, FailUnqueued, GetTask, InsertTask, ListDead, Persister, ResetForRetry,
};
use crate::actors::publisher::{
    IsConnected, PublishError, PublishTask, Publisher, Republish, Target,
};
use crate::actors::replies::{Register, ReplyRouter, Unregister};
use crate::actors::uploader::{CheckStore, PutObject, Uploader};
use crate::amqp::{PayloadRef, TaskMessage};
use crate::db::models::TaskRow;
use crate::db::DbError;
use crate::kinds::Registry;
use crate::protocol::{error_line, TaskStatus, TaskView};
use crate::storage::{Storage, StorageError};
use actix::prelude::*;
use base64::Engine;
use bytes::Bytes;
use std::time::Duration;
use uuid::Uuid;

/// How often a waiting submission also checks the task row (covers a lost reply).
const POLL_EVERY: Duration = Duration::from_secs(2);

/// A request that could not be served. `code()` is the protocol's `error` field.
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
    #[error("task {id} is still {}; ask `RESULT {id}` later", status.as_str())]
    NotFinished { id: Uuid, status: TaskStatus },
    #[error("task {id} is {}; only dead or failed tasks can be retried", status.as_str())]
    NotRetryable { id: Uuid, status: TaskStatus },
    #[error("no result within {secs}s; task {id} goes on, ask `RESULT {id}` later")]
    Timeout { id: Uuid, secs: u64 },
    #[error("node is shutting down or overloaded ({0}); try another node")]
    Unavailable(String),
}

impl ServiceError {
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::UnknownKind { .. } => "unknown_kind",
            ServiceError::Storage(_) => "storage_unavailable",
            ServiceError::Database(_) => "database_unavailable",
            ServiceError::NotAccepted(_) => "not_accepted",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::NotFinished { .. } => "not_finished",
            ServiceError::NotRetryable { .. } => "not_retryable",
            ServiceError::Timeout { .. } => "timeout",
            ServiceError::Unavailable(_) => "unavailable",
        }
    }

    pub fn task_id(&self) -> Option<Uuid> {
        match self {
            ServiceError::NotFound(id)
            | ServiceError::NotFinished { id, .. }
            | ServiceError::NotRetryable { id, .. }
            | ServiceError::Timeout { id, .. } => Some(*id),
            _ => None,
        }
    }

    pub fn to_line(&self) -> serde_json::Value {
        let mut line = error_line(self.code(), self, self.task_id());
        if let ServiceError::NotFinished { status, .. } = self {
            line["status"] = status.as_str().into();
        }
        line
    }
}

fn mailbox<E: std::fmt::Display>(e: E) -> ServiceError {
    ServiceError::Unavailable(e.to_string())
}

/// What a submission is answered with.
pub enum Answer {
    /// A task view made here.
    View(Box<TaskView>),
    /// A task view as the node that ran the task wrote it (one JSON object).
    Json(Bytes),
}

/// The payload of a submission.
pub enum Payload {
    /// Bytes from a request line or a small `PUT`.
    Bytes(Bytes),
    /// Already stored in the bucket (a large `PUT`).
    Stored { key: String, size: u64 },
}

/// The actors a session talks to, and the node's settings it needs. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub node: String,
    pub kinds: Registry,
    pub persister: Addr<Persister>,
    pub uploader: Addr<Uploader>,
    pub publisher: Addr<Publisher>,
    pub replies: Addr<ReplyRouter>,
    pub storage: Storage,
    pub reply_queue: String,
    pub inline_limit: usize,
    pub wait_timeout: Duration,
}

impl Services {
    pub fn check_kind(&self, kind: &str) -> Result<(), ServiceError> {
        match self.kinds.get(kind) {
            Some(_) => Ok(()),
            None => Err(ServiceError::UnknownKind {
                kind: kind.to_string(),
                known: self.kinds.names(),
            }),
        }
    }

    /// Accept a task: store a large payload, then
    /// - without `wait`: write its `queued` row, publish it with confirm, answer its id;
    /// - with `wait`: publish it with confirm and answer its result. Its row is first written
    ///   by the node that runs it (with the outcome, in one write), so a waiting task costs
    ///   one row write; if the wait times out, the `queued` row is written before the client
    ///   hears the task id.
    ///
    /// Either way the client hears of the task only once it is safe: a queued task's row
    /// exists and the broker confirmed its message; a result was written before it was sent.
    pub async fn submit(
        &self,
        id: Uuid,
        kind: String,
        payload: Payload,
        wait: bool,
    ) -> Result<Answer, ServiceError> {
        self.check_kind(&kind)?;
        let payload = match payload {
            Payload::Bytes(data) if data.len() > self.inline_limit => {
                let key = self.storage.key(&format!("payloads/{id}"));
                let size = data.len() as u64;
                self.uploader
                    .send(PutObject {
                        key: key.clone(),
                        data,
                    })
                    .await
                    .map_err(mailbox)??;
                PayloadRef::Object { key, size }
            }
            Payload::Bytes(data) => PayloadRef::Inline {
                data: data.to_vec(),
            },
            Payload::Stored { key, size } => PayloadRef::Object { key, size },
        };
        let task = TaskMessage {
            id,
            kind,
            payload,
            submitted_by: self.node.clone(),
            reply_to: wait.then(|| self.reply_queue.clone()),
            accepted_at: Some(chrono::Utc::now()),
        };
        if wait {
            return self.wait_for(task).await;
        }
        self.persister
            .send(InsertTask { task: task.clone() })
            .await
            .map_err(mailbox)??;
        let kind = task.kind.clone();
        if let Err(e) = self.publish(task).await {
            tracing::warn!(task = %id, error = %e, "task not accepted");
            let _ = self
                .persister
                .send(FailUnqueued {
                    id,
                    error: format!("not accepted: {e}"),
                })
                .await;
            return Err(ServiceError::NotAccepted(e));
        }
        Ok(Answer::View(Box::new(TaskView {
            id: Some(id),
            kind: Some(kind),
            status: Some(TaskStatus::Queued),
            ..Default::default()
        })))
    }

    async fn publish(&self, task: TaskMessage) -> Result<(), PublishError> {
        self.publisher
            .send(PublishTask { task })
            .await
            .unwrap_or_else(|e| Err(PublishError::Amqp(e.to_string())))
    }

    /// Publish `task` and wait for its reply (checking its row now and then, which also
    /// covers a lost reply) up to the wait timeout. A reply can come before the broker's
    /// confirm: it carries a result already written, so it is answered at once.
    async fn wait_for(&self, task: TaskMessage) -> Result<Answer, ServiceError> {
        let id = task.id;
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.replies.do_send(Register(id, tx));
        // However this ends (also when the client goes away and this future is dropped),
        // the reply router stops waiting for the task, unless its reply came.
        let mut waiting = Waiting {
            replies: &self.replies,
            id,
            armed: true,
        };
        let deadline = tokio::time::Instant::now() + self.wait_timeout;
        let publish = self.publish(task.clone());
        tokio::pin!(publish);
        let mut confirmed = false;
        let mut reply_open = true;
        loop {
            let tick = tokio::time::sleep(
                POLL_EVERY.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
            );
            tokio::select! {
                reply = &mut rx, if reply_open => match reply {
                    Ok(json) => {
                        waiting.armed = false;
                        return Ok(Answer::Json(json));
                    }
                    Err(_) => reply_open = false,
                },
                published = &mut publish, if !confirmed => match published {
                    Ok(()) => confirmed = true,
                    Err(e) => {
                        tracing::warn!(task = %id, error = %e, "task not accepted");
                        return Err(ServiceError::NotAccepted(e));
                    }
                },
                _ = tick, if confirmed => {
                    if let Ok(Ok(Some(row))) = self.persister.send(GetTask(id)).await {
                        if row.status().is_final() {
                            return Ok(Answer::View(Box::new(view_of(&row, &self.storage))));
                        }
                    }
                    if tokio::time::Instant::now() >= deadline {
                        // The client now hears the id: make sure the row exists to ask about.
                        self.persister
                            .send(InsertTask { task })
                            .await
                            .map_err(mailbox)??;
                        return Err(ServiceError::Timeout { id, secs: self.wait_timeout.as_secs() });
                    }
                }
            }
        }
    }

    pub async fn row(&self, id: Uuid) -> Result<TaskRow, ServiceError> {
        self.persister
            .send(GetTask(id))
            .await
            .map_err(mailbox)??
            .ok_or(ServiceError::NotFound(id))
    }

    /// `PING`: the node's name and whether each dependency answers (within 2 s). A load
    /// balancer's health check expects `"healthy":true`.
    pub async fn health(&self) -> serde_json::Value {
        let limit = Duration::from_secs(2);
        let ok = |r: Result<Result<bool, MailboxError>, tokio::time::error::Elapsed>| {
            matches!(r, Ok(Ok(true)))
        };
        let (amqp, pg, s3) = tokio::join!(
            tokio::time::timeout(limit, self.publisher.send(IsConnected)),
            tokio::time::timeout(limit, self.persister.send(CheckDatabase)),
            tokio::time::timeout(limit, self.uploader.send(CheckStore)),
        );
        let (amqp, pg, s3) = (ok(amqp), ok(pg), ok(s3));
        let word = |up: bool| if up { "ok" } else { "down" };
        serde_json::json!({
            "pong": true,
            "node": self.node,
            "healthy": amqp && pg && s3,
            "amqp": word(amqp),
            "postgres": word(pg),
            "s3": word(s3),
        })
    }

    /// `DEAD`: the newest dead tasks.
    pub async fn dead(&self, limit: i64) -> Result<serde_json::Value, ServiceError> {
        let rows = self
            .persister
            .send(ListDead(limit))
            .await
            .map_err(mailbox)??;
        let dead: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "kind": r.kind,
                    "attempts": r.attempts,
                    "message": r.error,
                    "node": r.node,
                    "finished_at": r.finished_at,
                })
            })
            .collect();
        Ok(serde_json::json!({ "dead": dead }))
    }

    /// `RETRY <id>`: queue a dead or failed task again with a fresh attempt budget.
    pub async fn retry(&self, id: Uuid) -> Result<TaskView, ServiceError> {
        let row = match self
            .persister
            .send(ResetForRetry(id))
            .await
            .map_err(mailbox)??
        {
            Some(row) => row,
            None => {
                let row = self.row(id).await?;
                return Err(ServiceError::NotRetryable {
                    id,
                    status: row.status(),
                });
            }
        };
        let payload = match (&row.payload, &row.payload_key) {
            (_, Some(key)) => PayloadRef::Object {
                key: key.clone(),
                size: row.payload_size as u64,
            },
            (data, None) => PayloadRef::Inline {
                data: data.clone().unwrap_or_default(),
            },
        };
        let message = TaskMessage {
            id,
            kind: row.kind.clone(),
            payload,
            submitted_by: self.node.clone(),
            reply_to: None,
            accepted_at: Some(row.created_at),
        };
        let body = serde_json::to_vec(&message).map_err(mailbox)?;
        let sent = self
            .publisher
            .send(Republish {
                target: Target::Tasks,
                id,
                body,
            })
            .await
            .unwrap_or_else(|e| Err(PublishError::Amqp(e.to_string())));
        if let Err(e) = sent {
            let _ = self
                .persister
                .send(FailUnqueued {
                    id,
                    error: format!("retry not accepted: {e}"),
                })
                .await;
            return Err(ServiceError::NotAccepted(e));
        }
        tracing::info!(task = %id, "task queued again by RETRY");
        Ok(TaskView {
            id: Some(id),
            kind: Some(row.kind),
            status: Some(TaskStatus::Queued),
            attempts: Some(0),
            ..Default::default()
        })
    }

    /// `STATUS`: the task without its result body.
    pub async fn status(&self, id: Uuid) -> Result<TaskView, ServiceError> {
        let row = self.row(id).await?;
        let mut view = view_of(&row, &self.storage);
        view.result = None;
        view.result_encoding = None;
        view.result_url = None;
        Ok(view)
    }
}

/// A waiting submission's registration with the reply router, withdrawn when dropped.
struct Waiting<'a> {
    replies: &'a Addr<ReplyRouter>,
    id: Uuid,
    armed: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.replies.do_send(Unregister(self.id));
        }
    }
}

/// What a client is told about a task row.
pub fn view_of(row: &TaskRow, storage: &Storage) -> TaskView {
    let status = row.status();
    let mut view = TaskView {
        id: Some(row.id),
        kind: Some(row.kind.clone()),
        status: Some(status),
        node: row.node.clone(),
        attempts: Some(row.attempts),
        ..Default::default()
    };
    match status {
        TaskStatus::Failed => {
            view.error = Some("task_failed".into());
            view.message = row.error.clone();
        }
        TaskStatus::Dead => {
            view.error = Some("task_dead".into());
            view.message = row.error.clone();
        }
        // A task waiting for a retry shows why its last run failed.
        TaskStatus::Queued | TaskStatus::Running => view.message = row.error.clone(),
        TaskStatus::Succeeded => {}
    }
    if let Some(data) = &row.result {
        view.result_size = Some(data.len() as u64);
        match std::str::from_utf8(data) {
            Ok(text) => view.result = Some(text.to_string()),
            Err(_) => {
                view.result = Some(base64::engine::general_purpose::STANDARD.encode(data));
                view.result_encoding = Some("base64".into());
            }
        }
    }
    if let Some(key) = &row.result_key {
        view.result_size = row.result_size.map(|n| n as u64);
        view.result_key = Some(key.clone());
        view.result_url = Some(storage.presign_get(key));
    }
    view
}
