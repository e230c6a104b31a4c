//! Queries on `tasks`. Every write is idempotent on the task id, so a redelivered message
//! never makes a second row or undoes a finished one.

use super::models::{Finish, NewTask, TaskRow};
use super::schema::tasks::dsl;
use crate::protocol::TaskStatus;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Insert a new task; `false` when a row with that id already exists.
pub async fn insert(conn: &mut AsyncPgConnection, task: &NewTask<'_>) -> QueryResult<bool> {
    let n = diesel::insert_into(dsl::tasks)
        .values(task)
        .on_conflict(dsl::id)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

pub async fn get(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<TaskRow>> {
    dsl::tasks
        .find(id)
        .select(TaskRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// What [`start`] found.
#[derive(Debug)]
pub enum Start {
    /// The task is now `running` on this node; this is attempt `row.attempts`.
    Run(TaskRow),
    /// The task already finished (a redelivery after its row was written): do not run it again.
    AlreadyFinal(TaskRow),
    /// No row: the message was not accepted through a node.
    Missing,
}

/// Mark a task running on `node`, unless it already finished.
pub async fn start(conn: &mut AsyncPgConnection, id: Uuid, node: &str) -> QueryResult<Start> {
    let now = chrono::Utc::now();
    let updated = diesel::update(dsl::tasks.find(id))
        .filter(dsl::status.eq_any([TaskStatus::Queued.as_str(), TaskStatus::Running.as_str()]))
        .set((
            dsl::status.eq(TaskStatus::Running.as_str()),
            dsl::attempts.eq(dsl::attempts + 1),
            dsl::node.eq(node),
            dsl::started_at.eq(now),
            dsl::updated_at.eq(now),
        ))
        .returning(TaskRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(row) = updated {
        return Ok(Start::Run(row));
    }
    Ok(match get(conn, id).await? {
        Some(row) => Start::AlreadyFinal(row),
        None => Start::Missing,
    })
}

/// Write the outcome of a run. Returns the row as stored: when another delivery of the same
/// task finished first, its outcome stands and is returned instead.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    node: &str,
    outcome: &Finish,
) -> QueryResult<Option<TaskRow>> {
    let now = chrono::Utc::now();
    let updated = diesel::update(dsl::tasks.find(id))
        .filter(dsl::status.eq_any([TaskStatus::Queued.as_str(), TaskStatus::Running.as_str()]))
        .set((
            outcome,
            dsl::node.eq(node),
            dsl::finished_at.eq(now),
            dsl::updated_at.eq(now),
            dsl::next_attempt_at.eq(None::<chrono::DateTime<chrono::Utc>>),
        ))
        .returning(TaskRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    match updated {
        Some(row) => Ok(Some(row)),
        None => get(conn, id).await,
    }
}

/// Fail a task that never reached the broker (its publish was not confirmed).
pub async fn fail_unqueued(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    error: &str,
) -> QueryResult<bool> {
    let now = chrono::Utc::now();
    let n = diesel::update(dsl::tasks.find(id))
        .filter(dsl::status.eq(TaskStatus::Queued.as_str()))
        .set((
            dsl::status.eq(TaskStatus::Failed.as_str()),
            dsl::error.eq(error),
            dsl::finished_at.eq(now),
            dsl::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// A run failed and the task will run again after a delay: back to `queued`, with the error
/// and when the next attempt is due.
pub async fn retry_later(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    node: &str,
    error: &str,
    next_attempt_at: chrono::DateTime<chrono::Utc>,
) -> QueryResult<bool> {
    let now = chrono::Utc::now();
    let n = diesel::update(dsl::tasks.find(id))
        .filter(dsl::status.eq(TaskStatus::Running.as_str()))
        .set((
            dsl::status.eq(TaskStatus::Queued.as_str()),
            dsl::error.eq(error),
            dsl::node.eq(node),
            dsl::next_attempt_at.eq(next_attempt_at),
            dsl::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// The most recently dead tasks, newest first.
pub async fn list_dead(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<TaskRow>> {
    dsl::tasks
        .filter(dsl::status.eq(TaskStatus::Dead.as_str()))
        .order(dsl::finished_at.desc())
        .limit(limit)
        .select(TaskRow::as_select())
        .load(conn)
        .await
}

/// Make a dead or failed task runnable again with a fresh attempt budget.
pub async fn reset_for_retry(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<TaskRow>> {
    let now = chrono::Utc::now();
    diesel::update(dsl::tasks.find(id))
        .filter(dsl::status.eq_any([TaskStatus::Dead.as_str(), TaskStatus::Failed.as_str()]))
        .set((
            dsl::status.eq(TaskStatus::Queued.as_str()),
            dsl::attempts.eq(0),
            dsl::error.eq(None::<String>),
            dsl::result.eq(None::<Vec<u8>>),
            dsl::result_key.eq(None::<String>),
            dsl::result_size.eq(None::<i64>),
            dsl::finished_at.eq(None::<chrono::DateTime<chrono::Utc>>),
            dsl::next_attempt_at.eq(None::<chrono::DateTime<chrono::Utc>>),
            dsl::updated_at.eq(now),
        ))
        .returning(TaskRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}
