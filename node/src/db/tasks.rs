//! Queries on `tasks`. Every write is idempotent on the task id, so a redelivered message
//! never makes a second row or undoes a finished one.

use super::models::{row_text, NewTask, TaskRow};
use super::outbox::Lease;
use super::schema::tasks::dsl;
use super::sql::Fixed;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use protocol::TaskStatus;
use std::collections::HashMap;
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
    /// The task is `running` on a node that is alive (it beat within
    /// [`crate::fleet::SILENT`]): a second delivery of it, not to be run at the same time.
    Busy(TaskRow),
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
            dsl::error.eq(row_text(error)),
            dsl::node.eq(node),
            dsl::next_attempt_at.eq(next_attempt_at),
            dsl::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// How many tasks of `owner` are `queued` or `running`.
pub async fn count_unfinished(conn: &mut AsyncPgConnection, owner: &str) -> QueryResult<i64> {
    dsl::tasks
        .filter(dsl::owner.eq(owner))
        .filter(dsl::status.eq_any(TaskStatus::UNFINISHED.map(|s| s.as_str())))
        .count()
        .get_result(conn)
        .await
}

/// The rows of those of `ids` that are final.
pub async fn final_many(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<TaskRow>> {
    dsl::tasks
        .filter(dsl::id.eq_any(ids))
        .filter(dsl::status.eq_any(TaskStatus::FINAL.map(|s| s.as_str())))
        .select(TaskRow::as_select())
        .load(conn)
        .await
}

/// The most recently dead tasks (of `owner`, if given), newest first.
pub async fn list_dead(
    conn: &mut AsyncPgConnection,
    limit: i64,
    owner: Option<&str>,
) -> QueryResult<Vec<TaskRow>> {
    let mut query = dsl::tasks
        .filter(dsl::status.eq(TaskStatus::Dead.as_str()))
        .into_boxed();
    if let Some(owner) = owner {
        query = query.filter(dsl::owner.eq(owner));
    }
    let rows: Vec<super::listed::ListedRow> = query
        .order(dsl::finished_at.desc())
        .limit(limit)
        .select(super::listed::columns())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(TaskRow::from).collect())
}

/// Make a dead, failed or `queued` task runnable again with a fresh attempt budget, and
/// put it in the outbox under `lease`, in one transaction. (A `queued` task may be stuck
/// without a message, say after its queue was purged; if its message was in fact waiting,
/// it may run twice.)
pub async fn reset_for_retry(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    lease: Lease<'_>,
) -> QueryResult<Option<TaskRow>> {
    conn.transaction(async |c| {
        let row = reset(c, id).await?;
        if row.is_some() {
            super::outbox::lease(c, &[id], lease).await?;
        }
        Ok(row)
    })
    .await
}

async fn reset(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<TaskRow>> {
    let now = chrono::Utc::now();
    diesel::update(dsl::tasks.find(id))
        .filter(dsl::status.eq_any([
            TaskStatus::Dead.as_str(),
            TaskStatus::Failed.as_str(),
            TaskStatus::Queued.as_str(),
        ]))
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

/// The insert of new `queued` rows (a macro so [`ACCEPT`] can wrap it).
macro_rules! insert_new {
    () => {
        "INSERT INTO tasks (id, kind, status, payload, payload_key, payload_size, submitted_by, created_at, owner, priority, updated_at) \
SELECT v.id, v.kind, 'queued', v.payload, v.payload_key, v.payload_size, v.submitted_by, v.created_at, v.owner, v.priority, $? \
FROM UNNEST($?::uuid[], $?::text[], $?::bytea[], $?::text[], $?::int8[], $?::text[], $?::timestamptz[], $?::text[], $?::int2[]) \
  AS v(id, kind, payload, payload_key, payload_size, submitted_by, created_at, owner, priority) \
ON CONFLICT (id) DO NOTHING \
RETURNING id"
    };
}

const INSERT_NEW: &str = insert_new!();

/// [`INSERT_NEW`], and each new row in the outbox, leased to a node until a time.
const ACCEPT: &str = concat!(
    "WITH new AS (",
    insert_new!(),
    ") INSERT INTO outbox (id, owner, due) SELECT id, $?, $? FROM new RETURNING id"
);

/// [`ACCEPT`] with a lease end per row.
const ACCEPT_EACH: &str = concat!(
    "WITH new AS (",
    insert_new!(),
    ") INSERT INTO outbox (id, owner, due) SELECT new.id, $?, d.due FROM new \
     JOIN UNNEST($?::uuid[], $?::timestamptz[]) AS d(id, due) ON d.id = new.id RETURNING outbox.id"
);

/// Insert new tasks as `queued` in one statement, with `lease` also into the outbox (to be
/// published); answers the ids that were new (an id that exists already is left alone).
pub async fn insert_many(
    conn: &mut AsyncPgConnection,
    rows: &[NewTask<'_>],
    lease: Option<Lease<'_>>,
) -> QueryResult<Vec<Uuid>> {
    insert_leased(conn, rows, lease.map(|l| (l.owner, Dues::One(l.due)))).await
}

/// Insert new tasks as `queued` in one statement, each into the outbox leased to `owner`
/// until its own time in `dues` (in the order of `rows`); answers the ids that were new.
pub async fn accept_many(
    conn: &mut AsyncPgConnection,
    rows: &[NewTask<'_>],
    owner: &str,
    dues: &[DateTime<Utc>],
) -> QueryResult<Vec<Uuid>> {
    insert_leased(conn, rows, Some((owner, Dues::Each(dues)))).await
}

/// When outbox entries fall due: all at one time, or each at its own.
enum Dues<'a> {
    One(DateTime<Utc>),
    Each(&'a [DateTime<Utc>]),
}

async fn insert_leased(
    conn: &mut AsyncPgConnection,
    rows: &[NewTask<'_>],
    lease: Option<(&str, Dues<'_>)>,
) -> QueryResult<Vec<Uuid>> {
    use diesel::sql_types::{Array, Bytea, Int2, Int8, Nullable, Text, Timestamptz};
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r.kind).collect();
    let payloads: Vec<Option<&[u8]>> = rows.iter().map(|r| r.payload).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|r| r.payload_key).collect();
    let sizes: Vec<i64> = rows.iter().map(|r| r.payload_size).collect();
    let by: Vec<&str> = rows.iter().map(|r| r.submitted_by).collect();
    let created: Vec<DateTime<Utc>> = rows.iter().map(|r| r.created_at).collect();
    let owners: Vec<Option<&str>> = rows.iter().map(|r| r.owner).collect();
    let priorities: Vec<i16> = rows.iter().map(|r| r.priority).collect();
    let sql = match &lease {
        None => INSERT_NEW,
        Some((_, Dues::One(_))) => ACCEPT,
        Some((_, Dues::Each(_))) => ACCEPT_EACH,
    };
    let mut query = Fixed::new(sql)
        .bind::<Timestamptz, _>(Utc::now())
        .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
        .bind::<Array<Text>, _>(&kinds)
        .bind::<Array<Nullable<Bytea>>, _>(&payloads)
        .bind::<Array<Nullable<Text>>, _>(&keys)
        .bind::<Array<Int8>, _>(&sizes)
        .bind::<Array<Text>, _>(&by)
        .bind::<Array<Timestamptz>, _>(&created)
        .bind::<Array<Nullable<Text>>, _>(&owners)
        .bind::<Array<Int2>, _>(&priorities);
    match lease {
        None => {}
        Some((owner, Dues::One(due))) => {
            query = query.bind::<Text, _>(owner).bind::<Timestamptz, _>(due);
        }
        Some((owner, Dues::Each(dues))) => {
            query = query
                .bind::<Text, _>(owner)
                .bind::<Array<diesel::sql_types::Uuid>, _>(ids.clone())
                .bind::<Array<Timestamptz>, _>(dues.to_vec());
        }
    }
    let new: Vec<Id> = query.load(conn).await?;
    Ok(new.into_iter().map(|r| r.id).collect())
}

/// Mark tasks running on `node`, unless they already finished, in one statement (after
/// writing the `queued` row of any that has none yet: a synchronous submission's row is
/// first written by the node that runs it). Answers in the order of `tasks`.
pub async fn start_many(
    conn: &mut AsyncPgConnection,
    tasks: &[NewTask<'_>],
    node: &str,
) -> QueryResult<Vec<Start>> {
    insert_many(conn, tasks, None).await?;
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    let now = Utc::now();
    let started: Vec<TaskRow> = diesel::update(dsl::tasks.filter(dsl::id.eq_any(&ids)))
        .filter(startable(node, now))
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
    let mut by_id: HashMap<Uuid, TaskRow> = started.into_iter().map(|r| (r.id, r)).collect();
    let rest: Vec<Uuid> = ids
        .iter()
        .filter(|id| !by_id.contains_key(id))
        .copied()
        .collect();
    let mut final_rows = read_many(conn, &rest).await?;
    Ok(ids
        .iter()
        .map(|id| match (by_id.remove(id), final_rows.remove(id)) {
            (Some(row), _) => Start::Run(row),
            (None, Some(row)) if row.status == TaskStatus::Running => Start::Busy(row),
            (None, Some(row)) => Start::AlreadyFinal(row),
            (None, None) => Start::Missing,
        })
        .collect())
}

/// Rows of these tasks `running` on `node` back to `queued`: their deliveries go back to the
/// queue with no run of them going on here (an outcome that could not be written, a burial
/// that could not be published). Without it, a node taking the redelivery would see the task
/// running on a live node and wait for a run that is over. Answers how many went back.
pub async fn hand_back(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    node: &str,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(dsl::tasks.filter(dsl::id.eq_any(ids)))
        .filter(dsl::status.eq(TaskStatus::Running.as_str()))
        .filter(dsl::node.eq(node))
        .set((
            dsl::status.eq(TaskStatus::Queued.as_str()),
            dsl::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
}

/// Task `id`'s attempt `attempt`, started on `node`, was given to no worker (an external
/// kind's task with no worker free there): its row goes back to `queued` with the attempt
/// uncounted. Only while it is that attempt, running there.
pub async fn untake(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    node: &str,
    attempt: u32,
) -> QueryResult<usize> {
    diesel::update(dsl::tasks.filter(dsl::id.eq(id)))
        .filter(dsl::status.eq(TaskStatus::Running.as_str()))
        .filter(dsl::node.eq(node))
        .filter(dsl::attempts.eq(attempt as i32))
        .set((
            dsl::status.eq(TaskStatus::Queued.as_str()),
            dsl::attempts.eq(dsl::attempts - 1),
            dsl::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await
}

/// Whether a row may be started by `node`: `queued`, or `running` but not on another node
/// that is alive and started before the run (it beat within [`crate::fleet::SILENT`]; a node
/// that started again since the run began is not running it). A run on `node` itself is
/// known to its caller (see `delivery::start`).
fn startable(
    node: &str,
    now: DateTime<Utc>,
) -> Box<dyn BoxableExpression<dsl::tasks, diesel::pg::Pg, SqlType = diesel::sql_types::Bool>> {
    use diesel::sql_types::{Bool, Text, Timestamptz};
    let running_elsewhere = diesel::dsl::sql::<Bool>(
        "EXISTS (SELECT 1 FROM nodes n WHERE n.name = tasks.node AND n.name <> ",
    )
    .bind::<Text, _>(node.to_string())
    .sql(" AND n.seen_at > ")
    .bind::<Timestamptz, _>(now - crate::fleet::SILENT)
    .sql(" AND (n.state->>'started_at')::timestamptz <= tasks.started_at)");
    Box::new(
        dsl::status.eq(TaskStatus::Queued.as_str()).or(dsl::status
            .eq(TaskStatus::Running.as_str())
            .and(diesel::dsl::not(running_elsewhere))),
    )
}

pub(super) async fn read_many(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<HashMap<Uuid, TaskRow>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(dsl::tasks
        .filter(dsl::id.eq_any(ids))
        .select(TaskRow::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect())
}
