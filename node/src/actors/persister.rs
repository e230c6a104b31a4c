//! Persister: every task row goes through here, over a diesel-async connection pool.
//!
//! Writes are group-committed: each write joins a queue, and a flush takes everything queued
//! (up to [`MAX_BATCH`]) into one transaction, so under load many rows share one commit
//! instead of paying a disk flush each, and under light load a write goes out at once (no
//! timer; a batch is whatever arrived while the previous flush ran). If a batch fails, its
//! writes are retried one by one, so only a write that fails on its own reports an error.
//! Reads go straight to the pool. A lost database connection is replaced on next use.

use crate::amqp::TaskMessage;
use crate::db::models::{Finish, NewTask, TaskRow};
use crate::db::tasks::{self, Outcome, Start};
use crate::db::{DbError, DbPool};
use actix::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Most writes in one transaction.
pub const MAX_BATCH: usize = 1024;
/// Transactions in flight at once.
const MAX_FLUSHES: usize = 1;

pub struct Persister {
    pool: DbPool,
    queue: Vec<Pending>,
    flushing: usize,
}

impl Persister {
    pub fn new(pool: DbPool) -> Self {
        Persister {
            pool,
            queue: Vec::new(),
            flushing: 0,
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        while self.flushing < MAX_FLUSHES && !self.queue.is_empty() {
            let n = self.queue.len().min(MAX_BATCH);
            let batch: Vec<Pending> = self.queue.drain(..n).collect();
            self.flushing += 1;
            run_batch(self.pool.clone(), batch)
                .into_actor(self)
                .map(|_, act, ctx| {
                    act.flushing -= 1;
                    act.flush(ctx);
                })
                .spawn(ctx);
        }
    }
}

impl Actor for Persister {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

/// A queued write.
enum Op {
    Insert {
        task: TaskMessage,
    },
    Start {
        task: TaskMessage,
        node: String,
    },
    Record {
        task: TaskMessage,
        node: String,
        outcome: Finish,
        started_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    RetryLater {
        id: Uuid,
        node: String,
        error: String,
        next_attempt_at: chrono::DateTime<chrono::Utc>,
    },
    FailUnqueued {
        id: Uuid,
        error: String,
    },
}

enum Done {
    Bool(bool),
    Start(Start),
    Row(Option<TaskRow>),
}

enum Reply {
    Bool(oneshot::Sender<Result<bool, DbError>>),
    Start(oneshot::Sender<Result<Start, DbError>>),
    Row(oneshot::Sender<Result<Option<TaskRow>, DbError>>),
}

struct Pending {
    op: Op,
    reply: Reply,
}

impl Op {
    fn outcome(&self) -> Option<(&str, Outcome<'_>)> {
        let Op::Record {
            task,
            node,
            outcome,
            started_at,
        } = self
        else {
            return None;
        };
        Some((
            node,
            Outcome {
                task: NewTask::of(task),
                finish: outcome,
                started_at: *started_at,
            },
        ))
    }

    /// Run this write on its own (the fallback when its batch failed, and for the rare kinds).
    async fn run(&self, conn: &mut AsyncPgConnection) -> diesel::QueryResult<Done> {
        Ok(match self {
            Op::Insert { task } => Done::Bool(
                tasks::insert_many(conn, &[NewTask::of(task)])
                    .await?
                    .contains(&task.id),
            ),
            Op::Start { task, node } => {
                let mut started = tasks::start_many(conn, &[NewTask::of(task)], node).await?;
                Done::Start(started.pop().expect("one answer per task"))
            }
            Op::Record { .. } => {
                let (node, outcome) = self.outcome().expect("a record");
                let mut rows = tasks::record_many(conn, node, &[outcome]).await?;
                Done::Row(rows.pop().expect("one answer per task"))
            }
            Op::RetryLater {
                id,
                node,
                error,
                next_attempt_at,
            } => Done::Bool(tasks::retry_later(conn, *id, node, error, *next_attempt_at).await?),
            Op::FailUnqueued { id, error } => {
                Done::Bool(tasks::fail_unqueued(conn, *id, error).await?)
            }
        })
    }
}

impl Reply {
    fn send(self, result: Result<Done, DbError>) {
        match (self, result) {
            (Reply::Bool(tx), Ok(Done::Bool(v))) => drop(tx.send(Ok(v))),
            (Reply::Start(tx), Ok(Done::Start(v))) => drop(tx.send(Ok(v))),
            (Reply::Row(tx), Ok(Done::Row(v))) => drop(tx.send(Ok(v))),
            (Reply::Bool(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Start(tx), Err(e)) => drop(tx.send(Err(e))),
            (Reply::Row(tx), Err(e)) => drop(tx.send(Err(e))),
            _ => unreachable!("each op answers its own kind"),
        }
    }
}

/// Run `batch` in one transaction; if that fails, each write in a transaction of its own.
async fn run_batch(pool: DbPool, batch: Vec<Pending>) {
    let mut conn = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            for p in batch {
                p.reply.send(Err(DbError::Connect(e.to_string())));
            }
            return;
        }
    };
    let ops: Vec<&Op> = batch.iter().map(|p| &p.op).collect();
    // Inserts alone, or outcomes of this node alone, are one statement: no BEGIN/COMMIT.
    let one_statement = ops.iter().all(|op| matches!(op, Op::Insert { .. }))
        || ops.iter().all(|op| matches!(op, Op::Record { .. }));
    let together = if one_statement {
        run_set_based(&mut conn, &ops).await
    } else {
        conn.transaction::<_, diesel::result::Error, _>(async |c| run_set_based(c, &ops).await)
            .await
    };
    match together {
        Ok(done) => {
            for (p, d) in batch.into_iter().zip(done) {
                p.reply.send(Ok(d));
            }
        }
        Err(e) if batch.len() == 1 => {
            let p = batch.into_iter().next().expect("one");
            p.reply.send(Err(e.into()));
        }
        Err(_) => {
            for p in batch {
                let op = &p.op;
                let alone = conn
                    .transaction::<_, diesel::result::Error, _>(async |c| op.run(c).await)
                    .await;
                p.reply.send(alone.map_err(DbError::from));
            }
        }
    }
}

/// Run a batch with one statement per kind of write where it can: all inserts in one
/// multi-row INSERT, all starts (of one node) in one UPDATE, all outcomes (of one node) in one
/// UPDATE ... FROM UNNEST; the rare rest one by one. Answers in the order of `ops`.
async fn run_set_based(
    conn: &mut AsyncPgConnection,
    ops: &[&Op],
) -> diesel::QueryResult<Vec<Done>> {
    let mut done: Vec<Option<Done>> = (0..ops.len()).map(|_| None).collect();

    let (insert_at, rows): (Vec<usize>, Vec<NewTask<'_>>) = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Insert { task } => Some((i, NewTask::of(task))),
            _ => None,
        })
        .unzip();
    if !rows.is_empty() {
        let new: std::collections::HashSet<Uuid> =
            tasks::insert_many(conn, &rows).await?.into_iter().collect();
        for (i, row) in insert_at.iter().zip(&rows) {
            done[*i] = Some(Done::Bool(new.contains(&row.id)));
        }
    }

    type ByNode<'a, T> = std::collections::BTreeMap<&'a str, (Vec<usize>, Vec<T>)>;
    let mut starts: ByNode<'_, NewTask<'_>> = Default::default();
    let mut outcomes: ByNode<'_, Outcome<'_>> = Default::default();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Start { task, node } = op {
            let (at, items) = starts.entry(node.as_str()).or_default();
            at.push(i);
            items.push(NewTask::of(task));
        } else if let Some((node, outcome)) = op.outcome() {
            let (at, items) = outcomes.entry(node).or_default();
            at.push(i);
            items.push(outcome);
        }
    }
    for (node, (at, items)) in starts {
        for (i, start) in at.iter().zip(tasks::start_many(conn, &items, node).await?) {
            done[*i] = Some(Done::Start(start));
        }
    }
    for (node, (at, items)) in outcomes {
        for (i, row) in at.iter().zip(tasks::record_many(conn, node, &items).await?) {
            done[*i] = Some(Done::Row(row));
        }
    }
    for (i, op) in ops.iter().enumerate() {
        if done[i].is_none() {
            done[i] = Some(op.run(conn).await?);
        }
    }
    Ok(done
        .into_iter()
        .map(|d| d.expect("every op answered"))
        .collect())
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

/// Queue `op` and start a flush if none is running; the future answers when its batch
/// committed.
fn queued<T: Send + 'static>(
    act: &mut Persister,
    ctx: &mut Context<Persister>,
    op: Op,
    reply: impl FnOnce(oneshot::Sender<Result<T, DbError>>) -> Reply,
) -> ResponseFuture<Result<T, DbError>> {
    let answer = pushed(act, op, reply);
    act.flush(ctx);
    answer
}

/// Queue `op` without flushing (the caller flushes after queueing more).
fn pushed<T: Send + 'static>(
    act: &mut Persister,
    op: Op,
    reply: impl FnOnce(oneshot::Sender<Result<T, DbError>>) -> Reply,
) -> ResponseFuture<Result<T, DbError>> {
    let (tx, rx) = oneshot::channel();
    act.queue.push(Pending {
        op,
        reply: reply(tx),
    });
    Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| Err(DbError::Connect("persister stopped".into())))
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
    pub outcome: Finish,
    /// When the run started, if it was not marked running first ([`StartTask`]).
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Several [`RecordOutcome`]s in one message (the tasks of one delivery); answers in order.
#[derive(Message)]
#[rtype(result = "Vec<Result<Option<TaskRow>, DbError>>")]
pub struct RecordOutcomes(pub Vec<RecordOutcome>);

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

    fn handle(&mut self, msg: InsertTask, ctx: &mut Context<Self>) -> Self::Result {
        let op = Op::Insert { task: msg.task };
        queued(self, ctx, op, Reply::Bool)
    }
}

impl Handler<StartTask> for Persister {
    type Result = ResponseFuture<Result<Start, DbError>>;

    fn handle(&mut self, msg: StartTask, ctx: &mut Context<Self>) -> Self::Result {
        let op = Op::Start {
            task: msg.task,
            node: msg.node,
        };
        queued(self, ctx, op, Reply::Start)
    }
}

impl RecordOutcome {
    fn op(self) -> Op {
        Op::Record {
            task: self.task,
            node: self.node,
            outcome: self.outcome,
            started_at: self.started_at,
        }
    }
}

impl Handler<RecordOutcome> for Persister {
    type Result = ResponseFuture<Result<Option<TaskRow>, DbError>>;

    fn handle(&mut self, msg: RecordOutcome, ctx: &mut Context<Self>) -> Self::Result {
        queued(self, ctx, msg.op(), Reply::Row)
    }
}

impl Handler<RecordOutcomes> for Persister {
    type Result = ResponseFuture<Vec<Result<Option<TaskRow>, DbError>>>;

    fn handle(&mut self, msg: RecordOutcomes, ctx: &mut Context<Self>) -> Self::Result {
        let waits: Vec<_> = msg
            .0
            .into_iter()
            .map(|r| pushed(self, r.op(), Reply::Row))
            .collect();
        self.flush(ctx);
        Box::pin(futures_util::future::join_all(waits))
    }
}

impl Handler<GetTask> for Persister {
    type Result = ResponseFuture<Result<Option<TaskRow>, DbError>>;

    fn handle(&mut self, msg: GetTask, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| tasks::get(c, msg.0).await)
    }
}

impl Handler<FailUnqueued> for Persister {
    type Result = ResponseFuture<Result<bool, DbError>>;

    fn handle(&mut self, msg: FailUnqueued, ctx: &mut Context<Self>) -> Self::Result {
        let op = Op::FailUnqueued {
            id: msg.id,
            error: msg.error,
        };
        queued(self, ctx, op, Reply::Bool)
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

    fn handle(&mut self, msg: RetryLater, ctx: &mut Context<Self>) -> Self::Result {
        let op = Op::RetryLater {
            id: msg.id,
            node: msg.node,
            error: msg.error,
            next_attempt_at: msg.next_attempt_at,
        };
        queued(self, ctx, op, Reply::Bool)
    }
}

impl Handler<ListDead> for Persister {
    type Result = ResponseFuture<Result<Vec<TaskRow>, DbError>>;

    fn handle(&mut self, msg: ListDead, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| tasks::list_dead(c, msg.0).await)
    }
}

impl Handler<ResetForRetry> for Persister {
    type Result = ResponseFuture<Result<Option<TaskRow>, DbError>>;

    fn handle(&mut self, msg: ResetForRetry, _: &mut Context<Self>) -> Self::Result {
        read(&self.pool, async move |c| {
            tasks::reset_for_retry(c, msg.0).await
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
        let check = read(&self.pool, async |c| {
            use diesel_async::RunQueryDsl;
            diesel::sql_query("SELECT 1").execute(c).await
        });
        Box::pin(async move { check.await.is_ok() })
    }
}
