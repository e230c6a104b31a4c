//! The one way a task is accepted. Every submission (a line, `PUT`, HTTP, a schedule's is
//! the scheduler's own) becomes a [`Submission`] and goes through [`Services::accept`], which
//! picks its [`Route`], counts it `accepted` once, and has the one wait
//! ([`Services::wait`]) for a client that waits.
//!
//! Either way the client hears of the task only once it is safe: a queued task's row exists
//! and will be published; a result was written before it was sent; `not_accepted` is said
//! only of a task whose message surely reached no queue.

use super::waiting::Waiting;
use super::{Answer, ServiceError, Services};
use crate::actors::publisher::PublishTask;
use crate::actors::watcher::Watch;
use crate::actors::Settle;
use crate::auth::Identity;
use crate::db::control::{Accepted, KeyClaim};
use crate::db::store::control::AcceptWith;
use crate::db::store::Accept;
use crate::messages::{PayloadRef, TaskMessage};
use crate::publishing::{lease_end, LEASE, UNSURE_WAIT};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use protocol::SubmitOptions;
use protocol::{TaskStatus, TaskView};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// A task to accept, and how its client asked for it.
pub(super) struct Submission {
    pub task: TaskMessage,
    /// How long the client waits for the task's outcome, if it does.
    pub wait: Option<Duration>,
    /// Run no sooner than this.
    pub run_at: Option<DateTime<Utc>>,
    /// An idempotency key, claimed with the task.
    pub key: Option<KeyClaim>,
}

/// How a submission is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Its `queued` row and outbox entry in one write, then published: answered at once.
    Outbox,
    /// Published with confirm and waited for; its row is first written by the node that runs
    /// it (with the outcome, in one write), or before the client hears its id on a timeout.
    PublishAndWait,
    /// With a key or for later: one transaction that may answer an earlier task instead.
    Controlled,
}

impl Submission {
    fn route(&self) -> Route {
        match (
            self.key.is_some() || self.run_at.is_some(),
            self.wait.is_some(),
        ) {
            (true, _) => Route::Controlled,
            (false, true) => Route::PublishAndWait,
            (false, false) => Route::Outbox,
        }
    }
}

/// What accepting did.
pub(super) struct Acceptance {
    /// The task the client is answered about (an earlier one, when a key names it).
    pub id: Uuid,
    /// A new task (counted `accepted`), not one a key named.
    pub new: bool,
    /// A task published without a row: the row to write before its id is told on a timeout.
    pub unwritten: Option<TaskMessage>,
}

/// What a key's task asked for: its kind and payload (a payload in the bucket by its size).
fn fingerprint(task: &TaskMessage) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(task.kind.as_bytes());
    match &task.payload {
        PayloadRef::Inline { data } => {
            hash.update([0]);
            hash.update(data);
        }
        PayloadRef::Object { size, .. } => {
            hash.update([1]);
            hash.update(size.to_be_bytes());
        }
    }
    hash.finalize().to_vec()
}

impl Services {
    /// Accept a task from a request line: its payload takes the same way as a `PUT`'s
    /// ([`super::Intake`]), then [`Services::submit`].
    pub async fn submit_bytes(
        &self,
        kind: String,
        payload: Vec<u8>,
        wait: Option<Duration>,
        options: &SubmitOptions,
        who: &Identity,
    ) -> Result<Answer, ServiceError> {
        self.admit(who, payload.len() as u64)?;
        let id = Uuid::now_v7();
        let payload = self
            .intake(id, &kind, payload.len() as u64)
            .whole(payload)
            .await?;
        self.submit(id, kind, payload, wait, options, who).await
    }

    /// Accept a task whose payload is where `payload` says (see [`Services::accept`]).
    ///
    /// A payload already in the bucket of a task surely not accepted (refused before its row
    /// was written) is deleted; one whose fate is unsure (the database failed mid-write) is
    /// left to retention's sweep of objects no row names.
    pub async fn submit(
        &self,
        id: Uuid,
        kind: String,
        payload: PayloadRef,
        wait: Option<Duration>,
        options: &SubmitOptions,
        who: &Identity,
    ) -> Result<Answer, ServiceError> {
        let key = match &payload {
            PayloadRef::Object { key, .. } => Some(key.clone()),
            PayloadRef::Inline { .. } => None,
        };
        let answer = async {
            Services::may_submit(who)?;
            self.find_kind(&kind).await?;
            self.check_inflight(who).await?;
            let task = TaskMessage {
                id,
                kind,
                payload,
                submitted_by: self.handles.node.clone(),
                reply_to: wait.map(|_| self.handles.reply_queue.clone()),
                accepted_at: Some(chrono::Utc::now()),
                owner: who.owner().map(str::to_string),
                priority: options.priority(),
                key: options.key.clone(),
            };
            let now = chrono::Utc::now();
            let key = options.key.as_ref().map(|key| KeyClaim {
                owner: who.owner().unwrap_or_default().to_string(),
                key: key.clone(),
                fingerprint: fingerprint(&task),
                expired_before: now
                    - chrono::Duration::from_std(self.keys_retention).unwrap_or_default(),
            });
            let submission = Submission {
                task,
                wait,
                run_at: options.due(now),
                key,
            };
            self.accept(submission, who).await
        }
        .await;
        if let (Err(e), Some(key)) = (&answer, key) {
            if e.surely_not_accepted() {
                let storage = self.handles.storage.clone();
                actix::spawn(async move {
                    if let Err(e) = storage.delete(&key).await {
                        tracing::warn!(%key, error = %e, "payload of a refused task not deleted; retention sweeps it later");
                    }
                });
            }
        }
        answer
    }

    /// Accept a task: the one place a submission becomes a task of the node's.
    #[tracing::instrument(level = "debug", skip_all, fields(task = %sub.task.id, kind = %sub.task.kind))]
    pub(super) async fn accept(
        &self,
        sub: Submission,
        who: &Identity,
    ) -> Result<Answer, ServiceError> {
        let route = sub.route();
        let (id, kind, priority) = (sub.task.id, sub.task.kind.clone(), sub.task.priority);
        let (run_at, key) = (sub.run_at, sub.task.key.clone());
        // Registered before the task can run, so its reply finds this wait.
        let registered = sub
            .wait
            .map(|_| Waiting::register(&self.handles.replies, id));
        // A waiting submission has no row yet: it counts towards its token's unfinished tasks.
        let _counted = match route {
            Route::PublishAndWait => who.name.as_deref().map(|n| self.access.waiting.enter(n)),
            _ => None,
        };
        let accepting = self.write(route, sub.task, sub.run_at, sub.key);
        if let (Some(wait), Some(registered)) = (sub.wait, registered) {
            return self.wait(id, &kind, accepting, registered, wait).await;
        }
        let accepted = accepting.await?;
        self.counted(&kind, &accepted);
        // A new task is answered as it was accepted (it may have run already: a row read now
        // could say `succeeded` to a client that did not wait); a key's earlier task as it is.
        if !accepted.new || route == Route::PublishAndWait {
            return Ok(Answer::View(Box::new(self.status(accepted.id, who).await?)));
        }
        let status = match run_at {
            Some(_) => TaskStatus::Scheduled,
            None => TaskStatus::Queued,
        };
        let mut view = TaskView::new(id, kind, status);
        view.priority = Some(priority).filter(|p| *p > 0);
        view.run_at = run_at;
        view.key = key;
        Ok(Answer::View(Box::new(self.flag_paused(view))))
    }

    /// Count a new task `accepted` (once: here, or by the wait when its outcome comes first).
    pub(super) fn counted(&self, kind: &str, accepted: &Acceptance) {
        if accepted.new {
            self.handles.metrics.accepted(kind);
        }
    }

    /// Write (or publish) the task as its route says. The outbox and controlled writes run
    /// detached: once a task's row is being written, it is the node's to finish, even if this
    /// request is dropped (its client gone).
    async fn write(
        &self,
        route: Route,
        task: TaskMessage,
        run_at: Option<DateTime<Utc>>,
        key: Option<KeyClaim>,
    ) -> Result<Acceptance, ServiceError> {
        let id = task.id;
        let detached = match route {
            Route::PublishAndWait => return self.publish_confirmed(task).await,
            Route::Outbox => {
                let outbox = self.handles.outbox.clone();
                actix::spawn(async move {
                    let accept = Accept {
                        task: task.clone(),
                        owner: outbox.node.clone(),
                        due: lease_end(LEASE),
                    };
                    outbox.store.accept(accept).await?;
                    outbox.publish_soon(task).await;
                    Ok(Acceptance {
                        id,
                        new: true,
                        unwritten: None,
                    })
                })
            }
            Route::Controlled => {
                let svc = self.clone();
                actix::spawn(async move { svc.write_controlled(task, run_at, key).await })
            }
        };
        detached
            .await
            .map_err(|source| ServiceError::Interrupted { id, source })?
    }

    /// Publish with confirm. An unconfirmed publish (the broker may have it) puts the task in
    /// the outbox instead of a false `not_accepted`: published again later unless it ran.
    async fn publish_confirmed(&self, task: TaskMessage) -> Result<Acceptance, ServiceError> {
        let id = task.id;
        let published = self
            .handles
            .publisher
            .send(PublishTask { task: task.clone() })
            .await
            .settle();
        match published {
            Ok(()) => Ok(Acceptance {
                id,
                new: true,
                unwritten: Some(task),
            }),
            Err(e) if e.is_definite() => {
                tracing::warn!(error = %e, "task not accepted");
                Err(ServiceError::NotAccepted(e))
            }
            Err(publish) => {
                tracing::warn!(error = %publish, "publish unconfirmed; the task goes to the outbox");
                let accept = Accept {
                    task,
                    owner: self.handles.node.clone(),
                    due: lease_end(UNSURE_WAIT),
                };
                match self.handles.store.accept(accept).await {
                    Ok(_) => Ok(Acceptance {
                        id,
                        new: true,
                        unwritten: None,
                    }),
                    Err(db) => Err(ServiceError::Unsure {
                        id,
                        publish: Box::new(publish),
                        db,
                    }),
                }
            }
        }
    }

    /// With a key or for later, in one transaction ([`crate::db::control`]): a key already
    /// naming a task gives that task back (`key_conflict` if it asked for something else); a
    /// task for later is `scheduled`, published by whichever relay finds it due.
    async fn write_controlled(
        &self,
        task: TaskMessage,
        run_at: Option<DateTime<Utc>>,
        key: Option<KeyClaim>,
    ) -> Result<Acceptance, ServiceError> {
        let id = task.id;
        let key_name = key.as_ref().map(|k| k.key.clone()).unwrap_or_default();
        let accept = AcceptWith {
            task: task.clone(),
            run_at,
            key,
            owner: self.handles.node.clone(),
            due: lease_end(LEASE),
        };
        match self.handles.store.accept_with(accept).await? {
            Accepted::Existing { id: first, same } => {
                if let PayloadRef::Object { key, .. } = &task.payload {
                    // This submission's upload is not needed: its key names another task.
                    self.forget_object(key.clone());
                }
                if !same {
                    return Err(ServiceError::KeyConflict {
                        key: key_name,
                        id: first,
                    });
                }
                tracing::debug!(task = %first, "idempotency key names an earlier task");
                Ok(Acceptance {
                    id: first,
                    new: false,
                    unwritten: None,
                })
            }
            Accepted::New => {
                if run_at.is_none() {
                    self.handles.outbox.publish_soon(task).await;
                }
                Ok(Acceptance {
                    id,
                    new: true,
                    unwritten: None,
                })
            }
        }
    }
}

impl Services {
    /// The one wait of a submission: for task `id` to be accepted (`accepting`), then for its
    /// reply or its final row (read by the node's [`crate::actors::watcher::Watcher`], which
    /// covers a lost reply), up to `wait`; `timeout` if it goes on. A reply can come before
    /// the broker's confirm: it carries a result already written, so it is answered at once.
    pub(super) async fn wait(
        &self,
        id: Uuid,
        kind: &str,
        accepting: impl std::future::Future<Output = Result<Acceptance, ServiceError>>,
        (mut waiting, mut reply): (Waiting<'_>, oneshot::Receiver<Bytes>),
        wait: Duration,
    ) -> Result<Answer, ServiceError> {
        let mut id = id;
        let (row_tx, mut row) = oneshot::channel();
        self.handles.watcher.do_send(Watch(id, row_tx));
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline, accepting);
        let mut accepted: Option<Acceptance> = None;
        let (mut reply_open, mut row_open) = (true, true);
        loop {
            tokio::select! {
                answer = &mut reply, if reply_open => match answer {
                    Ok(json) => {
                        waiting.armed = false;
                        if accepted.is_none() {
                            self.handles.metrics.accepted(kind);
                        }
                        return Ok(Answer::Json(json));
                    }
                    Err(_) => reply_open = false,
                },
                answer = &mut row, if row_open => match answer {
                    Ok(row) => {
                        if accepted.is_none() {
                            self.handles.metrics.accepted(kind);
                        }
                        return Ok(Answer::View(Box::new(self.view(&row))));
                    }
                    Err(_) => row_open = false,
                },
                done = &mut accepting, if accepted.is_none() => {
                    let done = done?;
                    self.counted(kind, &done);
                    if done.id != id {
                        // A key named an earlier task: the answer is that task's.
                        id = done.id;
                        reply_open = false;
                        let (row_tx, row_rx) = oneshot::channel();
                        self.handles.watcher.do_send(Watch(id, row_tx));
                        (row, row_open) = (row_rx, true);
                    }
                    accepted = Some(done);
                }
                _ = &mut deadline, if accepted.is_some() => {
                    // The client now hears the id: make sure the row exists to ask about.
                    if let Some(task) = accepted.and_then(|a| a.unwritten) {
                        self.handles.store.insert(task).await?;
                    }
                    return Err(ServiceError::Timeout { id, secs: wait.as_secs() });
                }
            }
        }
    }
}
