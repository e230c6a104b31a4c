//! The store: every task row goes through a cloneable [`Store`] handle, over a bb8 pool of
//! diesel-async connections.
//!
//! The hot writes (accept, insert, publish-confirmed, start, record, retry) are
//! group-committed by a private batching task: each write joins the next batch, and a flush
//! takes the batch (up to [`MAX_BATCH`] writes) to the database as one set-based statement
//! per kind of write (all accepts of one node in one `INSERT … SELECT FROM UNNEST`, all
//! starts of one node in one `UPDATE`, all outcomes of one node in one upsert, see
//! [`crate::db::tasks`]). A batch of one kind of write is that one statement, without
//! `BEGIN`/`COMMIT`; a mixed batch runs in one transaction. So under load many rows share one
//! commit, and under light load a write goes out at once (no timer: a batch is whatever
//! arrived while the previous flush ran). If a batch fails, its writes are retried one by
//! one, so only a write that fails on its own reports an error. Reads and the rare writes go
//! straight to the pool. A lost connection is replaced on next use.

use crate::db::models::{Finish, NewTask, TaskRow};
use crate::db::outbox;
use crate::db::outbox::Lease;
use crate::db::outcomes::Outcome;
use crate::db::tasks::{self, Start};
use crate::db::{DbError, DbPool};
use crate::messages::TaskMessage;
use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

mod batch;
pub mod control;

pub use batch::MAX_BATCH;
use batch::{Batch, Single, Tx};

/// Writes waiting for the batching task at most; a writer past it waits its turn.
const QUEUED_WRITES: usize = 4096;

/// A write for the next batch: it puts itself (and where its answer goes) into the batch.
type Push = Box<dyn FnOnce(&mut Batch) + Send>;

/// The task rows, as typed `async fn`s. Cheap to clone: every clone shares one pool and one
/// batching task, which lives as long as any clone.
#[derive(Clone)]
pub struct Store {
    pool: DbPool,
    writes: mpsc::Sender<Push>,
}

/// A task accepted: its `queued` row and its outbox entry, leased to `owner` until `due`.
pub struct Accept {
    pub task: TaskMessage,
    pub owner: String,
    pub due: DateTime<Utc>,
}

/// A delivered task, to be marked running on `node` (see [`tasks::start_many`]).
pub struct StartTask {
    pub task: TaskMessage,
    pub node: String,
}

/// A run's outcome (see [`crate::db::outcomes::record_many`]).
pub struct RecordOutcome {
    pub task: TaskMessage,
    pub node: String,
    pub finish: Finish,
    /// When the run started, if it was not marked running first ([`Store::start`]).
    pub started_at: Option<DateTime<Utc>>,
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

/// A run failed and will be retried at `next_attempt_at` (see [`tasks::retry_later`]).
pub struct RetryLater {
    pub id: Uuid,
    pub node: String,
    pub error: String,
    pub next_attempt_at: DateTime<Utc>,
}

/// Which outbox entries are due for a relay (see [`outbox::claim_due`]).
pub struct ClaimDue {
    pub owner: String,
    pub until: DateTime<Utc>,
    pub booted: DateTime<Utc>,
    pub lease_for: chrono::Duration,
    pub limit: i64,
}

impl Store {
    /// A store over `pool`; its batching task runs on the current runtime, and observes each
    /// batch's size in `sizes`.
    pub fn new(pool: DbPool, sizes: Option<Histogram>) -> Store {
        let (writes, queued) = mpsc::channel(QUEUED_WRITES);
        tokio::spawn(group_commit(pool.clone(), queued, sizes));
        Store { pool, writes }
    }

    /// The pool, for queries of their own (retention, tokens, the fleet).
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// Queue a write for the next batch and wait for its answer.
    async fn write<T: Send + 'static>(
        &self,
        queue: impl FnOnce(&mut Batch, Tx<T>) + Send + 'static,
    ) -> Result<T, DbError> {
        let (tx, rx) = oneshot::channel();
        let push: Push = Box::new(move |batch| queue(batch, tx));
        self.writes.send(push).await.map_err(|_| stopped())?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Run a query on a pooled connection.
    pub(crate) async fn run<T>(
        &self,
        query: impl AsyncFnOnce(&mut AsyncPgConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, DbError> {
        let mut conn = self.pool.get().await?;
        Ok(query(&mut conn).await?)
    }

    /// Record a newly accepted task as `queued`. `Ok(false)`: the id exists already.
    #[tracing::instrument(level = "debug", skip_all, fields(task = %task.id))]
    pub async fn insert(&self, task: TaskMessage) -> Result<bool, DbError> {
        self.write(|b, tx| b.inserts.push((task, tx))).await
    }

    /// Accept a task: its `queued` row and its outbox entry in one statement. `Ok(false)`:
    /// the id exists already.
    #[tracing::instrument(level = "debug", skip_all, fields(task = %accept.task.id))]
    pub async fn accept(&self, accept: Accept) -> Result<bool, DbError> {
        self.write(|b, tx| b.accepts.push((accept, tx))).await
    }

    /// The broker confirmed these tasks' messages (see [`outbox::settle`]).
    #[tracing::instrument(level = "debug", skip_all, fields(tasks = ids.len()))]
    pub async fn published(&self, ids: Vec<Uuid>) -> Result<(), DbError> {
        self.write(|b, tx| b.settled.push((ids, tx))).await
    }

    /// Mark a delivered task running here (see [`tasks::start_many`]).
    #[tracing::instrument(level = "debug", skip_all, fields(task = %start.task.id))]
    pub async fn start(&self, start: StartTask) -> Result<Start, DbError> {
        self.write(|b, tx| b.starts.push((start, tx))).await
    }

    /// Write a run's outcome; answers the row as stored.
    #[tracing::instrument(level = "debug", skip_all, fields(task = %outcome.task.id))]
    pub async fn record(&self, outcome: RecordOutcome) -> Result<Option<TaskRow>, DbError> {
        self.write(|b, tx| b.records.push((outcome, tx))).await
    }

    /// Note a failed run that will be retried.
    #[tracing::instrument(level = "debug", skip_all, fields(task = %retry.id))]
    pub async fn retry_later(&self, retry: RetryLater) -> Result<bool, DbError> {
        self.write(|b, tx| b.singles.push((Single::RetryLater(retry), tx)))
            .await
    }

    /// These tasks could not be published: due for any node's relay at `due`.
    pub async fn unpublished(&self, ids: &[Uuid], due: DateTime<Utc>) -> Result<usize, DbError> {
        self.run(async |c| outbox::release(c, ids, due).await).await
    }

    /// Rows of these tasks `running` here back to `queued` (see [`tasks::hand_back`]).
    pub async fn hand_back(&self, ids: &[Uuid], node: &str) -> Result<usize, DbError> {
        self.run(async |c| tasks::hand_back(c, ids, node).await)
            .await
    }

    /// Attempt `attempt` of task `id`, started here, was given to no worker: uncounted,
    /// `queued` again (see [`tasks::untake`]).
    pub async fn untake(&self, id: Uuid, node: &str, attempt: u32) -> Result<usize, DbError> {
        self.run(async |c| tasks::untake(c, id, node, attempt).await)
            .await
    }

    /// Lease up to `limit` outbox entries that are due (see [`outbox::claim_due`]).
    pub async fn claim_due(&self, claim: ClaimDue) -> Result<Vec<TaskRow>, DbError> {
        self.run(async |c| {
            let lease = Lease {
                owner: &claim.owner,
                due: claim.until,
            };
            outbox::claim_due(c, lease, claim.booted, claim.lease_for, claim.limit).await
        })
        .await
    }

    /// One task's row.
    #[tracing::instrument(level = "debug", skip_all, fields(task = %id))]
    pub async fn task(&self, id: Uuid) -> Result<Option<TaskRow>, DbError> {
        self.run(async |c| tasks::get(c, id).await).await
    }

    /// How many tasks of this owner are unfinished (see [`tasks::count_unfinished`]).
    pub async fn count_unfinished(&self, owner: &str) -> Result<i64, DbError> {
        self.run(async |c| tasks::count_unfinished(c, owner).await)
            .await
    }

    /// The rows of those of these tasks that are final (see [`tasks::final_many`]).
    pub async fn final_rows(&self, ids: &[Uuid]) -> Result<Vec<TaskRow>, DbError> {
        self.run(async |c| tasks::final_many(c, ids).await).await
    }

    /// The newest `limit` dead tasks (of `owner`, if given).
    pub async fn list_dead(
        &self,
        limit: u32,
        owner: Option<&str>,
    ) -> Result<Vec<TaskRow>, DbError> {
        self.run(async |c| tasks::list_dead(c, limit.into(), owner).await)
            .await
    }

    /// Make a task runnable again and put it in the outbox (see [`tasks::reset_for_retry`]).
    pub async fn reset_for_retry(
        &self,
        id: Uuid,
        owner: &str,
        due: DateTime<Utc>,
    ) -> Result<Option<TaskRow>, DbError> {
        let lease = Lease { owner, due };
        self.run(async |c| tasks::reset_for_retry(c, id, lease).await)
            .await
    }

    /// A page of tasks (see [`crate::db::listing`]).
    pub async fn list(
        &self,
        filter: &crate::db::listing::Filter,
        limit: u32,
    ) -> Result<Vec<TaskRow>, DbError> {
        self.run(async |c| crate::db::listing::list(c, filter, limit.into()).await)
            .await
    }

    /// Whether PostgreSQL answers `SELECT 1` (for health checks).
    pub async fn ping(&self) -> bool {
        use diesel_async::RunQueryDsl;
        self.run(async |c| diesel::sql_query("SELECT 1").execute(c).await)
            .await
            .is_ok()
    }
}

/// The writer's end is gone: the node is stopping.
fn stopped() -> DbError {
    DbError::Write("the store's writer has stopped".into())
}

/// The batching task: takes whatever writes queued while the previous flush ran (up to
/// [`MAX_BATCH`]) and writes them together; ends when every [`Store`] is dropped.
async fn group_commit(pool: DbPool, mut queued: mpsc::Receiver<Push>, sizes: Option<Histogram>) {
    while let Some(first) = queued.recv().await {
        let mut batch = Batch::default();
        first(&mut batch);
        while batch.len() < MAX_BATCH {
            match queued.try_recv() {
                Ok(push) => push(&mut batch),
                Err(_) => break,
            }
        }
        if let Some(sizes) = &sizes {
            sizes.observe(batch.len() as f64);
        }
        run_batch(&pool, batch).await;
    }
}

/// Write `batch`; if that fails, each of its writes on its own.
async fn run_batch(pool: &DbPool, batch: Batch) {
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
