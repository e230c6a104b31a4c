//! Persister: every task row goes through here, over a diesel-async connection pool.
//!
//! Handlers return futures that own a clone of the pool, so many queries run at once and
//! the actor never blocks. A lost database connection is replaced by the pool on next use.

use crate::amqp::PayloadRef;
use crate::db::models::{Finish, NewTask, TaskRow};
use crate::db::tasks::{self, Start};
use crate::db::{DbError, DbPool};
use actix::prelude::*;
use uuid::Uuid;

pub struct Persister {
    pool: DbPool,
}

impl Persister {
    pub fn new(pool: DbPool) -> Self {
        Persister { pool }
    }
}

impl Actor for Persister {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

/// Record a newly accepted task as `queued`. `Ok(false)`: the id exists already.
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct InsertTask {
    pub id: Uuid,
    pub kind: String,
    pub payload: PayloadRef,
    pub submitted_by: String,
}

/// Mark a delivered task running here (see [`tasks::start`]).
#[derive(Message)]
#[rtype(result = "Result<Start, DbError>")]
pub struct StartTask {
    pub id: Uuid,
    pub node: String,
}

/// Write a run's outcome; answers the row as stored.
#[derive(Message)]
#[rtype(result = "Result<Option<TaskRow>, DbError>")]
pub struct FinishTask {
    pub id: Uuid,
    pub node: String,
    pub outcome: Finish,
}

#[derive(Message)]
#[rtype(result = "Result<Option<TaskRow>, DbError>")]
pub struct GetTask(pub Uuid);

/// Fail a task whose publish the broker did not confirm.
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct FailUnqueued {
    pub id: Uuid,
    pub error: String,
}

impl Handler<InsertTask> for Persister {
    type Result = ResponseFuture<Result<bool, DbError>>;

    fn handle(&mut self, msg: InsertTask, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            let (payload, payload_key) = match &msg.payload {
                PayloadRef::Inline { data } => (Some(data.as_slice()), None),
                PayloadRef::Object { key, .. } => (None, Some(key.as_str())),
            };
            let row = NewTask {
                id: msg.id,
                kind: &msg.kind,
                status: "queued",
                payload,
                payload_key,
                payload_size: msg.payload.size() as i64,
                submitted_by: &msg.submitted_by,
            };
            Ok(tasks::insert(&mut conn, &row).await?)
        })
    }
}

impl Handler<StartTask> for Persister {
    type Result = ResponseFuture<Result<Start, DbError>>;

    fn handle(&mut self, msg: StartTask, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            Ok(tasks::start(&mut conn, msg.id, &msg.node).await?)
        })
    }
}

impl Handler<FinishTask> for Persister {
    type Result = ResponseFuture<Result<Option<TaskRow>, DbError>>;

    fn handle(&mut self, msg: FinishTask, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            Ok(tasks::finish(&mut conn, msg.id, &msg.node, &msg.outcome).await?)
        })
    }
}

impl Handler<GetTask> for Persister {
    type Result = ResponseFuture<Result<Option<TaskRow>, DbError>>;

    fn handle(&mut self, msg: GetTask, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            Ok(tasks::get(&mut conn, msg.0).await?)
        })
    }
}

impl Handler<FailUnqueued> for Persister {
    type Result = ResponseFuture<Result<bool, DbError>>;

    fn handle(&mut self, msg: FailUnqueued, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            Ok(tasks::fail_unqueued(&mut conn, msg.id, &msg.error).await?)
        })
    }
}

/// A run failed and will be retried at `next_attempt_at` (see [`tasks::retry_later`]).
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct RetryLater {
    pub id: Uuid,
    pub node: String,
    pub error: String,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
}

/// The newest `limit` dead tasks.
#[derive(Message)]
#[rtype(result = "Result<Vec<TaskRow>, DbError>")]
pub struct ListDead(pub i64);

/// Make a dead or failed task runnable again (see [`tasks::reset_for_retry`]).
#[derive(Message)]
#[rtype(result = "Result<Option<TaskRow>, DbError>")]
pub struct ResetForRetry(pub Uuid);

impl Handler<RetryLater> for Persister {
    type Result = ResponseFuture<Result<bool, DbError>>;

    fn handle(&mut self, msg: RetryLater, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            Ok(tasks::retry_later(
                &mut conn,
                msg.id,
                &msg.node,
                &msg.error,
                msg.next_attempt_at,
            )
            .await?)
        })
    }
}

impl Handler<ListDead> for Persister {
    type Result = ResponseFuture<Result<Vec<TaskRow>, DbError>>;

    fn handle(&mut self, msg: ListDead, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            Ok(tasks::list_dead(&mut conn, msg.0).await?)
        })
    }
}

impl Handler<ResetForRetry> for Persister {
    type Result = ResponseFuture<Result<Option<TaskRow>, DbError>>;

    fn handle(&mut self, msg: ResetForRetry, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut conn = pool.get().await?;
            Ok(tasks::reset_for_retry(&mut conn, msg.0).await?)
        })
    }
}

/// Whether PostgreSQL answers `SELECT 1` (for health checks).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CheckDatabase;

impl Handler<CheckDatabase> for Persister {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: CheckDatabase, _: &mut Context<Self>) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            use diesel_async::RunQueryDsl;
            let Ok(mut conn) = pool.get().await else {
                return false;
            };
            diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .is_ok()
        })
    }
}
