//! The persister's messages for control over work (see [`crate::db::control`] and
//! [`crate::db::schedules`]): reads and small transactions that go straight to the pool, not
//! through the batch.

use super::{read, Persister};
use crate::db::control::{self, Accepted, KeyClaim};
use crate::db::models::{NewTask, TaskRow};
use crate::db::schedules::{self, ScheduleRow};
use crate::db::tasks::Lease;
use crate::db::DbError;
use crate::messages::TaskMessage;
use crate::periodic::RowTicks;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use protocol::TaskStatus;
use uuid::Uuid;

/// Accept a task with a key or for later (see [`control::accept`]).
#[derive(Message)]
#[rtype(result = "Result<Accepted, DbError>")]
pub struct AcceptWith {
    pub task: TaskMessage,
    pub run_at: Option<DateTime<Utc>>,
    pub key: Option<KeyClaim>,
    /// The node that publishes it now (a task due at once), and until when.
    pub owner: String,
    pub due: DateTime<Utc>,
}

impl Handler<AcceptWith> for Persister {
    type Result = ResponseFuture<Result<Accepted, DbError>>;

    fn handle(&mut self, msg: AcceptWith, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            let lease = Lease {
                owner: &msg.owner,
                due: msg.due,
            };
            control::accept(
                c,
                NewTask::of(&msg.task),
                msg.run_at,
                msg.key.as_ref(),
                lease,
            )
            .await
        })
    }
}

/// Cancel a task (see [`control::cancel`]): its status before, and its row now.
#[derive(Message)]
#[rtype(result = "Result<Option<(TaskStatus, TaskRow)>, DbError>")]
pub struct CancelTask {
    pub id: Uuid,
    pub why: String,
}

impl Handler<CancelTask> for Persister {
    type Result = ResponseFuture<Result<Option<(TaskStatus, TaskRow)>, DbError>>;

    fn handle(&mut self, msg: CancelTask, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            control::cancel(c, msg.id, &msg.why).await
        })
    }
}

/// Those of these tasks that are cancelled.
#[derive(Message)]
#[rtype(result = "Result<Vec<Uuid>, DbError>")]
pub struct CancelledAmong(pub Vec<Uuid>);

impl Handler<CancelledAmong> for Persister {
    type Result = ResponseFuture<Result<Vec<Uuid>, DbError>>;

    fn handle(&mut self, msg: CancelledAmong, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            control::cancelled_among(c, &msg.0).await
        })
    }
}

/// Park tasks of paused lanes or kinds in the outbox (see [`control::park`]).
#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct ParkTasks(pub Vec<TaskMessage>);

impl Handler<ParkTasks> for Persister {
    type Result = ResponseFuture<Result<usize, DbError>>;

    fn handle(&mut self, msg: ParkTasks, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            let rows: Vec<NewTask<'_>> = msg.0.iter().map(NewTask::of).collect();
            control::park(c, &rows).await
        })
    }
}

/// Release parked tasks but those of these kinds (see [`control::release_parked`]).
#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct ReleaseParked(pub Vec<&'static str>);

impl Handler<ReleaseParked> for Persister {
    type Result = ResponseFuture<Result<usize, DbError>>;

    fn handle(&mut self, msg: ReleaseParked, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            control::release_parked(c, &msg.0).await
        })
    }
}

/// Every paused target.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, DbError>")]
pub struct ListPaused;

impl Handler<ListPaused> for Persister {
    type Result = ResponseFuture<Result<Vec<String>, DbError>>;

    fn handle(&mut self, _: ListPaused, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async |c| control::list_paused(c).await)
    }
}

/// Pause (`paused`) or resume a target; answers whether anything changed for a resume.
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct SetPaused {
    pub target: String,
    pub paused: bool,
    pub by: Option<String>,
}

impl Handler<SetPaused> for Persister {
    type Result = ResponseFuture<Result<bool, DbError>>;

    fn handle(&mut self, msg: SetPaused, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| match msg.paused {
            true => control::pause(c, &msg.target, msg.by.as_deref())
                .await
                .map(|_| true),
            false => control::resume(c, &msg.target).await,
        })
    }
}

/// Forget idempotency keys claimed before this.
#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct PruneKeys(pub DateTime<Utc>);

impl Handler<PruneKeys> for Persister {
    type Result = ResponseFuture<Result<usize, DbError>>;

    fn handle(&mut self, msg: PruneKeys, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            control::prune_keys(c, msg.0).await
        })
    }
}

/// Add or replace a schedule of its owner, who may have `max` (see [`schedules::put`]).
#[derive(Message)]
#[rtype(result = "Result<schedules::Put, DbError>")]
pub struct PutSchedule {
    pub row: ScheduleRow,
    pub max: u32,
}

impl Handler<PutSchedule> for Persister {
    type Result = ResponseFuture<Result<schedules::Put, DbError>>;

    fn handle(&mut self, msg: PutSchedule, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            schedules::put(c, &msg.row, msg.max).await
        })
    }
}

/// Every schedule (of this owner, if given).
#[derive(Message)]
#[rtype(result = "Result<Vec<ScheduleRow>, DbError>")]
pub struct ListSchedules(pub Option<String>);

impl Handler<ListSchedules> for Persister {
    type Result = ResponseFuture<Result<Vec<ScheduleRow>, DbError>>;

    fn handle(&mut self, msg: ListSchedules, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            schedules::list(c, msg.0.as_deref()).await
        })
    }
}

/// Remove a schedule (of this owner, if given).
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct RemoveSchedule {
    pub name: String,
    pub owner: Option<String>,
}

impl Handler<RemoveSchedule> for Persister {
    type Result = ResponseFuture<Result<bool, DbError>>;

    fn handle(&mut self, msg: RemoveSchedule, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            schedules::remove(c, &msg.name, msg.owner.as_deref()).await
        })
    }
}

/// Accept the tasks of due schedules (see [`crate::db::firing::fire_due`]); answers how many.
#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct FireSchedules {
    pub node: String,
    pub limit: i64,
}

impl Handler<FireSchedules> for Persister {
    type Result = ResponseFuture<Result<usize, DbError>>;

    fn handle(&mut self, msg: FireSchedules, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            crate::db::firing::fire_due(c, &msg.node, &RowTicks, msg.limit).await
        })
    }
}
