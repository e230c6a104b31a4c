//! The store's control over work (see [`crate::db::control`] and [`crate::db::schedules`]):
//! reads and small transactions that go straight to the pool, not through the batch.

use super::Store;
use crate::db::control::{self, Accepted, KeyClaim};
use crate::db::models::{NewTask, TaskRow};
use crate::db::outbox::Lease;
use crate::db::schedules::{self, ScheduleRow};
use crate::db::DbError;
use crate::messages::TaskMessage;
use crate::periodic::RowTicks;
use chrono::{DateTime, Utc};
use protocol::TaskStatus;
use uuid::Uuid;

/// A task with a key or for later (see [`control::accept`]).
pub struct AcceptWith {
    pub task: TaskMessage,
    pub run_at: Option<DateTime<Utc>>,
    pub key: Option<KeyClaim>,
    /// The node that publishes it now (a task due at once), and until when.
    pub owner: String,
    pub due: DateTime<Utc>,
}

impl Store {
    /// Accept a task with a key or for later (see [`control::accept`]).
    #[tracing::instrument(level = "debug", skip_all, fields(task = %accept.task.id))]
    pub async fn accept_with(&self, accept: AcceptWith) -> Result<Accepted, DbError> {
        let lease = Lease {
            owner: &accept.owner,
            due: accept.due,
        };
        let task = NewTask::of(&accept.task);
        self.run(async |c| {
            control::accept(c, task, accept.run_at, accept.key.as_ref(), lease).await
        })
        .await
    }

    /// Cancel a task (see [`control::cancel`]): its status before, and its row now.
    #[tracing::instrument(level = "debug", skip_all, fields(task = %id))]
    pub async fn cancel(
        &self,
        id: Uuid,
        why: &str,
    ) -> Result<Option<(TaskStatus, TaskRow)>, DbError> {
        self.run(async |c| control::cancel(c, id, why).await).await
    }

    /// Those of these tasks that are cancelled.
    pub async fn cancelled_among(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, DbError> {
        self.run(async |c| control::cancelled_among(c, ids).await)
            .await
    }

    /// Park tasks of paused lanes or kinds in the outbox (see [`control::park`]).
    pub async fn park(&self, tasks: &[TaskMessage]) -> Result<usize, DbError> {
        let rows: Vec<NewTask<'_>> = tasks.iter().map(NewTask::of).collect();
        self.run(async |c| control::park(c, &rows).await).await
    }

    /// Release parked tasks but those of these kinds (see [`control::release_parked`]).
    pub async fn release_parked(&self, held: &[String]) -> Result<usize, DbError> {
        self.run(async |c| control::release_parked(c, held).await)
            .await
    }

    /// Every paused target.
    pub async fn list_paused(&self) -> Result<Vec<String>, DbError> {
        self.run(async |c| control::list_paused(c).await).await
    }

    /// Pause `target` (by `by`).
    pub async fn pause(&self, target: &str, by: Option<&str>) -> Result<(), DbError> {
        self.run(async |c| control::pause(c, target, by).await)
            .await
    }

    /// Resume `target`; answers whether it was paused.
    pub async fn resume(&self, target: &str) -> Result<bool, DbError> {
        self.run(async |c| control::resume(c, target).await).await
    }

    /// Forget idempotency keys claimed before `before`.
    pub async fn prune_keys(&self, before: DateTime<Utc>) -> Result<usize, DbError> {
        self.run(async |c| control::prune_keys(c, before).await)
            .await
    }

    /// Add or replace a schedule of its owner, who may have `max` (see [`schedules::put`]).
    pub async fn put_schedule(
        &self,
        row: &ScheduleRow,
        max: u32,
    ) -> Result<schedules::Put, DbError> {
        self.run(async |c| schedules::put(c, row, max).await).await
    }

    /// Every schedule (of this owner, if given).
    pub async fn schedules(&self, owner: Option<&str>) -> Result<Vec<ScheduleRow>, DbError> {
        self.run(async |c| schedules::list(c, owner).await).await
    }

    /// Remove a schedule (of this owner, if given).
    pub async fn remove_schedule(&self, name: &str, owner: Option<&str>) -> Result<bool, DbError> {
        self.run(async |c| schedules::remove(c, name, owner).await)
            .await
    }

    /// Accept the tasks of due schedules (see [`crate::db::firing::fire_due`]); answers how
    /// many.
    pub async fn fire_schedules(&self, node: &str, limit: i64) -> Result<usize, DbError> {
        self.run(async |c| crate::db::firing::fire_due(c, node, &RowTicks, limit).await)
            .await
    }
}
