//! Control over work, for a client: `CANCEL`, and (admins) `PAUSE`/`RESUME` of lanes and
//! kinds.

use super::{ServiceError, Services};
use crate::auth::{Identity, Role};
use protocol::{PauseTarget, Paused, TaskStatus, TaskView};
use uuid::Uuid;

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
    pub fn forget_object(&self, key: String) {
        let storage = self.handles.storage.clone();
        actix::spawn(async move {
            if let Err(e) = storage.delete(&key).await {
                tracing::warn!(%key, error = %e, "unneeded upload not deleted");
            }
        });
    }
}
