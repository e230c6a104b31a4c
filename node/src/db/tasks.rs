//! Queries on `tasks`. Every write is idempotent on the task id, so a redelivered message
//! never makes a second row or undoes a finished one.

use super::models::{Finish, NewTask, TaskRow};
use super::schema::tasks::dsl;
use crate::protocol::TaskStatus;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

pub async fn get(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<TaskRow>> {
    dsl::tasks
        .find(id)
        .select(TaskRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// What [`start_many`] found for a task.
#[derive(Debug)]
pub enum Start {
    /// The task is now `running` on this node; this is attempt `row.attempts`.
    Run(TaskRow),
    /// The task already finished (a redelivery after its row was written): do not run it again.
    AlreadyFinal(TaskRow),
    /// No row: the message was not accepted through a node.
    Missing,
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

/// Insert new tasks as `queued` in one statement; answers the ids that were new (an id
/// that exists already is left alone).
pub async fn insert_many(
    conn: &mut AsyncPgConnection,
    rows: &[NewTask<'_>],
) -> QueryResult<Vec<Uuid>> {
    diesel::insert_into(dsl::tasks)
        .values(rows)
        .on_conflict(dsl::id)
        .do_nothing()
        .returning(dsl::id)
        .get_results(conn)
        .await
}

/// Mark tasks running on `node`, unless they already finished, in one statement (plus one
/// read for those that could not start). Answers in the order of `ids`.
pub async fn start_many(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    node: &str,
) -> QueryResult<Vec<Start>> {
    let now = chrono::Utc::now();
    let started: Vec<TaskRow> = diesel::update(dsl::tasks.filter(dsl::id.eq_any(ids)))
        .filter(dsl::status.eq_any([TaskStatus::Queued.as_str(), TaskStatus::Running.as_str()]))
        .set((
            dsl::status.eq(TaskStatus::Running.as_str()),
            dsl::attempts.eq(dsl::attempts + 1),
            dsl::node.eq(node),
            dsl::started_at.eq(now),
            dsl::updated_at.eq(now),
        ))
        .returning(TaskRow::as_returning())
        .get_results(conn)
        .await?;
    let mut by_id: std::collections::HashMap<Uuid, TaskRow> =
        started.into_iter().map(|r| (r.id, r)).collect();
    let rest: Vec<Uuid> = ids
        .iter()
        .filter(|id| !by_id.contains_key(id))
        .copied()
        .collect();
    let mut final_rows: std::collections::HashMap<Uuid, TaskRow> = if rest.is_empty() {
        Default::default()
    } else {
        dsl::tasks
            .filter(dsl::id.eq_any(&rest))
            .select(TaskRow::as_select())
            .load(conn)
            .await?
            .into_iter()
            .map(|r| (r.id, r))
            .collect()
    };
    Ok(ids
        .iter()
        .map(|id| match (by_id.remove(id), final_rows.remove(id)) {
            (Some(row), _) => Start::Run(row),
            (None, Some(row)) => Start::AlreadyFinal(row),
            (None, None) => Start::Missing,
        })
        .collect())
}

/// Write the outcomes of runs on `node` in one statement. Answers each row as stored, in the
/// order of `items`: when another delivery of a task finished first, its outcome stands and
/// is returned instead.
pub async fn finish_many(
    conn: &mut AsyncPgConnection,
    node: &str,
    items: &[(Uuid, &Finish)],
) -> QueryResult<Vec<Option<TaskRow>>> {
    use diesel::sql_types::{Array, Int8, Nullable, Text, Timestamptz};
    let ids: Vec<Uuid> = items.iter().map(|(id, _)| *id).collect();
    let statuses: Vec<&str> = items.iter().map(|(_, f)| f.status.as_str()).collect();
    let results: Vec<Option<&[u8]>> = items.iter().map(|(_, f)| f.result.as_deref()).collect();
    let keys: Vec<Option<&str>> = items.iter().map(|(_, f)| f.result_key.as_deref()).collect();
    let sizes: Vec<Option<i64>> = items.iter().map(|(_, f)| f.result_size).collect();
    let errors: Vec<Option<&str>> = items.iter().map(|(_, f)| f.error.as_deref()).collect();
    let updated: Vec<TaskRow> = diesel::sql_query(
        "UPDATE tasks AS t SET status = v.status, result = v.result, result_key = v.result_key, \
         result_size = v.result_size, error = v.error, node = $7, finished_at = $8, \
         updated_at = $8, next_attempt_at = NULL \
         FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::text[], $5::int8[], $6::text[]) \
           AS v(id, status, result, result_key, result_size, error) \
         WHERE t.id = v.id AND t.status IN ('queued', 'running') \
         RETURNING t.*",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
    .bind::<Array<Text>, _>(&statuses)
    .bind::<Array<Nullable<diesel::sql_types::Bytea>>, _>(&results)
    .bind::<Array<Nullable<Text>>, _>(&keys)
    .bind::<Array<Nullable<Int8>>, _>(&sizes)
    .bind::<Array<Nullable<Text>>, _>(&errors)
    .bind::<Text, _>(node)
    .bind::<Timestamptz, _>(chrono::Utc::now())
    .load(conn)
    .await?;
    let mut by_id: std::collections::HashMap<Uuid, TaskRow> =
        updated.into_iter().map(|r| (r.id, r)).collect();
    let rest: Vec<Uuid> = ids
        .iter()
        .filter(|id| !by_id.contains_key(id))
        .copied()
        .collect();
    if !rest.is_empty() {
        // Finished by another delivery first: its outcome stands.
        let others: Vec<TaskRow> = dsl::tasks
            .filter(dsl::id.eq_any(&rest))
            .select(TaskRow::as_select())
            .load(conn)
            .await?;
        by_id.extend(others.into_iter().map(|r| (r.id, r)));
    }
    Ok(ids.iter().map(|id| by_id.get(id).cloned()).collect())
}
