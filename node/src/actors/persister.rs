//! Persister: every task row goes through here, over a bb8 pool of diesel-async connections.
//!
//! Writes are group-committed: each write joins the next batch, and a flush takes the batch
//! (up to [`MAX_BATCH`] writes) to the database: one set-based statement per kind of write
//! (all inserts in one `INSERT … SELECT FROM UNNEST`, all starts of one node in one `UPDATE`,
//! all outcomes of one node in one upsert, see [`crate::db::tasks`]). A batch of one kind of
//! write is that one statement, without `BEGIN`/`COMMIT`; a mixed batch runs in one
//! transaction. So under load many rows share one commit, and under light load a write goes
//! out at once (no timer: a batch is whatever arrived while the previous flush ran). If a
//! batch fails, its writes are retried one by one, so only a write that fails on its own
//! reports an error. Reads go straight to the pool. A lost connection is replaced on next use.

use crate::db::models::{Finish, NewTask, TaskRow};
use crate::db::outbox;
use crate::db::tasks::{self, Lease, Outcome, Start};
use crate::db::{DbError, DbPool};
use crate::messages::TaskMessage;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tokio::sync::oneshot;
use uuid::Uuid;

mod batch;
pub mod control;

pub use batch::MAX_BATCH;
use batch::{Batch, Single, Tx};

pub struct Persister {
    pool: DbPool,
    queue: Batch,
    flushing: bool,
    /// Writes per batch, observed.
    batch_sizes: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl Persister {
    pub fn new(pool: DbPool) -> Self {
        Persister {
            pool,
            queue: Batch::default(),
            flushing: false,
            batch_sizes: None,
        }
    }

    /// Observe each batch's size in `sizes`.
    pub fn observing(mut self, sizes: prometheus_client::metrics::histogram::Histogram) -> Self {
        self.batch_sizes = Some(sizes);
        self
    }

    /// Send the queued writes, unless a flush is running (its end sends what queued since).
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.queue.len() == 0 {
            return;
        }
        let batch = self.queue.take(MAX_BATCH);
        if let Some(sizes) = &self.batch_sizes {
            sizes.observe(batch.len() as f64);
        }
        self.flushing = true;
        run_batch(self.pool.clone(), batch)
            .into_actor(self)
            .map(|_, act, ctx| {
                act.flushing = false;
                act.flush(ctx);
            })
            .spawn(ctx);
    }

    /// Queue a write; flush at once unless it waits for more (`RecordOutcomes`).
    fn push<T: Send + 'static>(
        &mut self,
        queue: impl FnOnce(&mut Batch, Tx<T>),
    ) -> ResponseFuture<Result<T, DbError>> {
        let (tx, rx) = oneshot::channel();
        queue(&mut self.queue, tx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(DbError::Connect("persister stopped".into())))
        })
    }
}

impl Actor for Persister {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

/// Write `batch`; if that fails, each of its writes on its own.
async fn run_batch(pool: DbPool, batch: Batch) {
    let mut conn = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            let e = e.to_string();
            batch.fail(|| DbError::Connect(e.clone()));
            return;
        }
    };
    let together = match batch.one_statement() {
        true => batch.write(&mut conn).await,
        false => {
            conn.transaction::<_, diesel::result::Error, _>(async |c| batch.write(c).await)
                .await
        }
    };
    match together {
        Ok(written) => batch.answer(written),
        Err(e) if batch.len() == 1 => {
            let e = e.to_string();
            batch.fail(|| DbError::Write(e.clone()));
        }
        Err(_) => {
            for single in batch.into_singles() {
                let alone = conn
                    .transaction::<_, diesel::result::Error, _>(async |c| single.write(c).await)
                    .await;
                match alone {
                    Ok(written) => single.answer(written),
                    Err(e) => {
                        let e = e.to_string();
                        single.fail(|| DbError::Write(e.clone()));
                    }
                }
            }
        }
    }
}

/// Run a read on a pooled connection.
fn read<T: 'static>(
    pool: &DbPool,
    query: impl AsyncFnOnce(&mut AsyncPgConnection) -> diesel::QueryResult<T> + 'static,
) -> ResponseFuture<Result<T, DbError>> {
    let pool = pool.clone();
    Box::pin(async move {
        let mut conn = pool.get().await?;
        Ok(query(&mut conn).await?)
    })
}

/// Record a newly accepted task as `queued`. `Ok(false)`: the id exists already.
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct InsertTask {
    pub task: TaskMessage,
}

/// Mark a delivered task running here (see [`tasks::start_many`]).
#[derive(Message)]
#[rtype(result = "Result<Start, DbError>")]
pub struct StartTask {
    pub task: TaskMessage,
    pub node: String,
}

/// Write a run's outcome (see [`tasks::record_many`]); answers the row as stored.
#[derive(Message)]
#[rtype(result = "Result<Option<TaskRow>, DbError>")]
pub struct RecordOutcome {
    pub task: TaskMessage,
    pub node: String,
    pub finish: Finish,
    /// When the run started, if it was not marked running first ([`StartTask`]).
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl RecordOutcome {
    pub(super) fn outcome(&self) -> Outcome<'_> {
        Outcome {
            task: NewTask::of(&self.task),
            finish: &self.finish,
            started_at: self.started_at,
        }
    }
}

/// Several [`RecordOutcome`]s in one message (the tasks of one delivery); answers in order.
#[derive(Message)]
#[rtype(result = "Vec<Result<Option<TaskRow>, DbError>>")]
pub struct RecordOutcomes(pub Vec<RecordOutcome>);

/// A run failed and will be retried at `next_attempt_at` (see [`tasks::retry_later`]).
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct RetryLater {
    pub id: Uuid,
    pub node: String,
    pub error: String,
    pub next_attempt_at: chrono::DateTime<chrono::Utc>,
}

/// Accept a task: its `queued` row and its outbox entry, leased to `owner` until `due`, in
/// one statement. `Ok(false)`: the id exists already.
#[derive(Message)]
#[rtype(result = "Result<bool, DbError>")]
pub struct Accept {
    pub task: TaskMessage,
    pub owner: String,
    pub due: DateTime<Utc>,
}

/// The broker confirmed these tasks' messages (see [`outbox::settle`]).
#[derive(Message)]
#[rtype(result = "Result<(), DbError>")]
pub struct Published(pub Vec<Uuid>);

/// These tasks could not be published: due for any node's relay at `due`.
#[derive(Message)]
#[rtype(result = "Result<usize, DbError>")]
pub struct Unpublished {
    pub ids: Vec<Uuid>,
    pub due: DateTime<Utc>,
}

/// Lease up to `limit` outbox entries that are due (see [`outbox::claim_due`]).
#[derive(Message)]
#[rtype(result = "Result<Vec<TaskRow>, DbError>")]
pub struct ClaimDue {
    pub owner: String,
    pub until: DateTime<Utc>,
    pub booted: DateTime<Utc>,
    pub lease_for: chrono::Duration,
    pub limit: i64,
}

impl Handler<InsertTask> for Persister {
    type Result = ResponseFuture<Result<bool, DbError>>;

    fn handle(&mut self, msg: InsertTask, ctx: &mut Context<Self>) -> Self::Result {
        let answer = self.push(|b, tx| b.inserts.push((msg.task, tx)));
        self.flush(ctx);
        answer
    }
}

impl Handler<StartTask> for Persister {
    type Result = ResponseFuture<Result<Start, DbError>>;

    fn handle(&mut self, msg: StartTask, ctx: &mut Context<Self>) -> Self::Result {
        let answer = self.push(|b, tx| b.starts.push((msg, tx)));
        self.flush(ctx);
        answer
    }
}

impl Handler<RecordOutcome> for Persister {
    type Result = ResponseFuture<Result<Option<TaskRow>, DbError>>;

    fn handle(&mut self, msg: RecordOutcome, ctx: &mut Context<Self>) -> Self::Result {
        let answer = self.push(|b, tx| b.records.push((msg, tx)));
        self.flush(ctx);
        answer
    }
}

impl Handler<RecordOutcomes> for Persister {
    type Result = ResponseFuture<Vec<Result<Option<TaskRow>, DbError>>>;

    fn handle(&mut self, msg: RecordOutcomes, ctx: &mut Context<Self>) -> Self::Result {
        let answers: Vec<_> = msg
            .0
            .into_iter()
            .map(|r| self.push(|b, tx| b.records.push((r, tx))))
            .collect();
        self.flush(ctx);
        Box::pin(futures_util::future::join_all(answers))
    }
}

impl Handler<RetryLater> for Persister {
    type Result = ResponseFuture<Result<bool, DbError>>;

    fn handle(&mut self, msg: RetryLater, ctx: &mut Context<Self>) -> Self::Result {
        let answer = self.push(|b, tx| b.singles.push((Single::RetryLater(msg), tx)));
        self.flush(ctx);
        answer
    }
}

impl Handler<Accept> for Persister {
    type Result = ResponseFuture<Result<bool, DbError>>;

    fn handle(&mut self, msg: Accept, ctx: &mut Context<Self>) -> Self::Result {
        let answer = self.push(|b, tx| b.accepts.push((msg, tx)));
        self.flush(ctx);
        answer
    }
}

impl Handler<Published> for Persister {
    type Result = ResponseFuture<Result<(), DbError>>;

    fn handle(&mut self, msg: Published, ctx: &mut Context<Self>) -> Self::Result {
        let answer = self.push(|b, tx| b.settled.push((msg.0, tx)));
        self.flush(ctx);
        answer
    }
}

impl Handler<Unpublished> for Persister {
    type Result = ResponseFuture<Result<usize, DbError>>;

    fn handle(&mut self, msg: Unpublished, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            outbox::release(c, &msg.ids, msg.due).await
        })
    }
}

impl Handler<ClaimDue> for Persister {
    type Result = ResponseFuture<Result<Vec<TaskRow>, DbError>>;

    fn handle(&mut self, msg: ClaimDue, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            let lease = Lease {
                owner: &msg.owner,
                due: msg.until,
            };
            outbox::claim_due(c, lease, msg.booted, msg.lease_for, msg.limit).await
        })
    }
}

/// Read one task's row.
#[derive(Message)]
#[rtype(result = "Result<Option<TaskRow>, DbError>")]
pub struct GetTask(pub Uuid);

/// How many tasks of this owner are unfinished (see [`tasks::count_unfinished`]).
#[derive(Message)]
#[rtype(result = "Result<i64, DbError>")]
pub struct CountUnfinished(pub String);

impl Handler<CountUnfinished> for Persister {
    type Result = ResponseFuture<Result<i64, DbError>>;

    fn handle(&mut self, msg: CountUnfinished, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            tasks::count_unfinished(c, &msg.0).await
        })
    }
}

/// The rows of those of these tasks that are final (see [`tasks::final_many`]).
#[derive(Message)]
#[rtype(result = "Result<Vec<TaskRow>, DbError>")]
pub struct FinalRows(pub Vec<Uuid>);

impl Handler<FinalRows> for Persister {
    type Result = ResponseFuture<Result<Vec<TaskRow>, DbError>>;

    fn handle(&mut self, msg: FinalRows, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            tasks::final_many(c, &msg.0).await
        })
    }
}

/// The newest `limit` dead tasks (of `owner`, if given).
#[derive(Message)]
#[rtype(result = "Result<Vec<TaskRow>, DbError>")]
pub struct ListDead {
    pub limit: u32,
    pub owner: Option<String>,
}

/// Make a task runnable again and put it in the outbox (see [`tasks::reset_for_retry`]).
#[derive(Message)]
#[rtype(result = "Result<Option<TaskRow>, DbError>")]
pub struct ResetForRetry {
    pub id: Uuid,
    pub owner: String,
    pub due: DateTime<Utc>,
}

/// A page of tasks (see [`crate::db::listing`]).
#[derive(Message)]
#[rtype(result = "Result<Vec<TaskRow>, DbError>")]
pub struct ListTasks {
    pub filter: crate::db::listing::Filter,
    pub limit: u32,
}

impl Handler<ListTasks> for Persister {
    type Result = ResponseFuture<Result<Vec<TaskRow>, DbError>>;

    fn handle(&mut self, msg: ListTasks, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            crate::db::listing::list(c, &msg.filter, msg.limit.into()).await
        })
    }
}

/// Whether PostgreSQL answers `SELECT 1` (for health checks).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CheckDatabase;

impl Handler<GetTask> for Persister {
    type Result = ResponseFuture<Result<Option<TaskRow>, DbError>>;

    fn handle(&mut self, msg: GetTask, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| tasks::get(c, msg.0).await)
    }
}

impl Handler<ListDead> for Persister {
    type Result = ResponseFuture<Result<Vec<TaskRow>, DbError>>;

    fn handle(&mut self, msg: ListDead, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            tasks::list_dead(c, msg.limit.into(), msg.owner.as_deref()).await
        })
    }
}

impl Handler<ResetForRetry> for Persister {
    type Result = ResponseFuture<Result<Option<TaskRow>, DbError>>;

    fn handle(&mut self, msg: ResetForRetry, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            let lease = Lease {
                owner: &msg.owner,
                due: msg.due,
            };
            tasks::reset_for_retry(c, msg.id, lease).await
        })
    }
}

impl Handler<CheckDatabase> for Persister {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: CheckDatabase, _: &mut Context<Self>) -> Self::Result {
        let check = read(&self.pool, async |c| {
            use diesel_async::RunQueryDsl;
            diesel::sql_query("SELECT 1").execute(c).await
        });
        Box::pin(async move { check.await.is_ok() })
    }
}
