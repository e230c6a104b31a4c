//! Control over work, for a client: submissions with an idempotency key or for later,
//! `CANCEL`, and (admins) `PAUSE`/`RESUME` of lanes and kinds.

use super::waiting::Waiting;
use super::{Answer, ServiceError, Services};
use crate::auth::{Identity, Role};
use crate::db::control::{Accepted, KeyClaim};
use crate::db::store::control::AcceptWith;
use crate::messages::{PayloadRef, TaskMessage};
use crate::publishing::{lease_end, LEASE};
use protocol::{PauseTarget, Paused, SubmitOptions, TaskStatus, TaskView};
use sha2::{Digest, Sha256};
use std::time::Duration;
use uuid::Uuid;

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

/// Whether a submission needs [`Services::accept_with`]: a key, or a time ahead.
pub(super) fn needs_control(options: &SubmitOptions) -> bool {
    options.key.is_some() || options.due(chrono::Utc::now()).is_some()
}

fn may_control(who: &Identity) -> Result<(), ServiceError> {
    match who.role {
        Role::Admin => Ok(()),
        _ => Err(ServiceError::Forbidden(format!(
            "a {} token may not pause or resume work; an admin token may",
            who.role.as_str()
        ))),
    }
}

impl Services {
    /// Accept `task` with a key or for later, in one transaction ([`crate::db::control`]):
    /// a key already naming a task gives that task back (`key_conflict` if it asked for
    /// something else); a task for later is `scheduled`, published by whichever relay finds it
    /// due. With a `wait`, the answer is the task once it ends (or `timeout`).
    pub(super) async fn accept_with(
        &self,
        mut task: TaskMessage,
        options: &SubmitOptions,
        wait: Option<Duration>,
        who: &Identity,
    ) -> Result<Answer, ServiceError> {
        let now = chrono::Utc::now();
        let run_at = options.due(now);
        let id = task.id;
        let key = options.key.as_ref().map(|key| KeyClaim {
            owner: who.owner().unwrap_or_default().to_string(),
            key: key.clone(),
            fingerprint: fingerprint(&task),
            expired_before: now
                - chrono::Duration::from_std(self.keys_retention).unwrap_or_default(),
        });
        // Registered before the task can run, so its reply finds this wait.
        let registered = wait.map(|_| Waiting::register(&self.handles.replies, id));
        if registered.is_some() && run_at.is_none() {
            task.reply_to = Some(self.handles.reply_queue.clone());
        }
        let accept = AcceptWith {
            task: task.clone(),
            run_at,
            key,
            owner: self.handles.node.clone(),
            due: lease_end(LEASE),
        };
        let accepted = self.handles.store.accept_with(accept).await?;
        let id = match accepted {
            Accepted::Existing { id: first, same } => {
                if let PayloadRef::Object { key, .. } = &task.payload {
                    // This submission's upload is not needed: its key names another task.
                    self.forget_object(key.clone());
                }
                if !same {
                    return Err(ServiceError::KeyConflict {
                        key: options.key.clone().unwrap_or_default(),
                        id: first,
                    });
                }
                tracing::debug!(task = %first, "idempotency key names an earlier task");
                first
            }
            Accepted::New => {
                self.handles.metrics.accepted(&task.kind);
                if run_at.is_none() {
                    self.handles.outbox.publish_soon(task).await;
                }
                id
            }
        };
        match (wait, registered) {
            (Some(wait), Some((waiting, rx))) if id == waiting.id => {
                self.wait_final(id, wait, Some((waiting, rx))).await
            }
            (Some(wait), _) => self.wait_final(id, wait, None).await,
            _ => Ok(Answer::View(Box::new(self.status(id, who).await?))),
        }
    }

    /// `CANCEL <id>`: a task not yet ended becomes `cancelled`. Queued or scheduled, it never
    /// runs; running, it is told to stop (here at once, on another node within a second).
    pub async fn cancel(&self, id: Uuid, who: &Identity) -> Result<TaskView, ServiceError> {
        Services::may_submit(who)?;
        let status = self.row(id, who).await?.status;
        let why = match &who.name {
            Some(name) => format!("cancelled by {name}"),
            None => "cancelled".to_string(),
        };
        let cancelled = self.handles.store.cancel(id, &why).await?;
        let Some((before, row)) = cancelled else {
            return Err(ServiceError::NotCancellable { id, status });
        };
        if before == TaskStatus::Running {
            self.handles.control.running.cancel(id);
        }
        tracing::info!(task = %id, was = %before, "task cancelled");
        Ok(self.view(&row).without_result())
    }

    /// `PAUSE <target>` (or only what is paused, without one).
    pub async fn pause(
        &self,
        target: Option<PauseTarget>,
        who: &Identity,
    ) -> Result<Paused, ServiceError> {
        may_control(who)?;
        if let Some(target) = target {
            self.check_target(&target)?;
            let target = target.as_string();
            let by = who.name.as_deref();
            self.handles.store.pause(&target, by).await?;
            self.handles.control.paused.add(target.clone());
            tracing::info!(%target, "paused");
        }
        self.paused_now().await
    }

    /// `RESUME <target>`: its parked tasks are released by the controllers within a second.
    pub async fn resume(
        &self,
        target: PauseTarget,
        who: &Identity,
    ) -> Result<Paused, ServiceError> {
        may_control(who)?;
        self.check_target(&target)?;
        let target = target.as_string();
        self.handles.store.resume(&target).await?;
        self.handles.control.paused.remove(&target);
        tracing::info!(%target, "resumed");
        self.paused_now().await
    }

    async fn paused_now(&self) -> Result<Paused, ServiceError> {
        let paused = self.handles.store.list_paused().await?;
        Ok(Paused { paused })
    }

    fn check_target(&self, target: &PauseTarget) -> Result<(), ServiceError> {
        match target {
            PauseTarget::Kind(kind) => self.check_kind(kind),
            PauseTarget::Lane(lane) if self.handles.control.paused.is_lane(lane) => Ok(()),
            PauseTarget::Lane(lane) => Err(ServiceError::Invalid(format!(
                "no lane named `{lane}` on this node"
            ))),
        }
    }

    /// Delete an object no task needs, in the background (a leftover costs only space).
    fn forget_object(&self, key: String) {
        let storage = self.handles.storage.clone();
        actix::spawn(async move {
            if let Err(e) = storage.delete(&key).await {
                tracing::warn!(%key, error = %e, "unneeded upload not deleted");
            }
        });
    }
}
