//! Writing runs' outcomes: one statement for a batch, idempotent on the task id (a row that
//! has ended keeps its first outcome).

use super::models::{Finish, NewTask, TaskRow};
use super::sql::Fixed;
use super::tasks::read_many;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::collections::HashMap;
use uuid::Uuid;

/// A run's outcome to record: the task (for a row that does not exist yet), what came of
/// it, and when it started if that was not recorded by [`start_many`].
pub struct Outcome<'a> {
    pub task: NewTask<'a>,
    pub finish: &'a Finish,
    /// `Some`: the run was not marked running first, so this write also counts the attempt.
    pub started_at: Option<DateTime<Utc>>,
}

const RECORD: &str = "\
INSERT INTO tasks AS t (id, kind, status, payload, payload_key, payload_size, submitted_by, \
  result, result_key, result_size, error, attempts, node, created_at, started_at, finished_at, updated_at, owner, priority) \
SELECT v.id, v.kind, v.status, v.payload, v.payload_key, v.payload_size, v.submitted_by, \
  v.result, v.result_key, v.result_size, v.error, 1, $?, v.created_at, v.started_at, $?, $?, v.owner, v.priority \
FROM UNNEST($?::uuid[], $?::text[], $?::text[], $?::bytea[], $?::text[], $?::int8[], $?::text[], \
  $?::bytea[], $?::text[], $?::int8[], $?::text[], $?::timestamptz[], $?::timestamptz[], $?::text[], $?::int2[]) \
  AS v(id, kind, status, payload, payload_key, payload_size, submitted_by, \
       result, result_key, result_size, error, created_at, started_at, owner, priority) \
ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, result = EXCLUDED.result, \
  result_key = EXCLUDED.result_key, result_size = EXCLUDED.result_size, error = EXCLUDED.error, \
  node = EXCLUDED.node, \
  attempts = t.attempts + CASE WHEN EXCLUDED.started_at IS NULL THEN 0 ELSE 1 END, \
  started_at = COALESCE(EXCLUDED.started_at, t.started_at), \
  finished_at = EXCLUDED.finished_at, updated_at = EXCLUDED.updated_at, next_attempt_at = NULL \
WHERE t.status IN ('queued', 'running') \
RETURNING t.id, t.attempts, t.created_at, t.started_at, t.key";

/// Write the outcomes of runs on `node` in one statement: a task without a row gets its
/// whole row, final at once; a `queued` or `running` row gets the outcome. Answers each row
/// as stored, in the order of `items`: when another delivery of a task finished first, its
/// outcome stands and is returned instead.
pub async fn record_many(
    conn: &mut AsyncPgConnection,
    node: &str,
    items: &[Outcome<'_>],
) -> QueryResult<Vec<Option<TaskRow>>> {
    use diesel::sql_types::{Array, Bytea, Int2, Int4, Int8, Nullable, Text, Timestamptz};
    #[derive(QueryableByName)]
    struct Written {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
        #[diesel(sql_type = Int4)]
        attempts: i32,
        #[diesel(sql_type = Timestamptz)]
        created_at: DateTime<Utc>,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        started_at: Option<DateTime<Utc>>,
        #[diesel(sql_type = Nullable<Text>)]
        key: Option<String>,
    }
    // One statement may not update a row twice: a task that is in the batch twice (two
    // deliveries of one message) is written once, and its other copies see that row.
    let by_id: HashMap<Uuid, &Outcome<'_>> = items.iter().map(|o| (o.task.id, o)).collect();
    let unique: Vec<&Outcome<'_>> = by_id.values().copied().collect();
    let now = Utc::now();
    let ids: Vec<Uuid> = unique.iter().map(|o| o.task.id).collect();
    let kinds: Vec<&str> = unique.iter().map(|o| o.task.kind).collect();
    let statuses: Vec<&str> = unique.iter().map(|o| o.finish.status.as_str()).collect();
    let payloads: Vec<Option<&[u8]>> = unique.iter().map(|o| o.task.payload).collect();
    let payload_keys: Vec<Option<&str>> = unique.iter().map(|o| o.task.payload_key).collect();
    let payload_sizes: Vec<i64> = unique.iter().map(|o| o.task.payload_size).collect();
    let by: Vec<&str> = unique.iter().map(|o| o.task.submitted_by).collect();
    let results: Vec<Option<&[u8]>> = unique.iter().map(|o| o.finish.result.as_deref()).collect();
    let result_keys: Vec<Option<&str>> = unique
        .iter()
        .map(|o| o.finish.result_key.as_deref())
        .collect();
    let result_sizes: Vec<Option<i64>> = unique.iter().map(|o| o.finish.result_size).collect();
    let errors: Vec<Option<&str>> = unique.iter().map(|o| o.finish.error.as_deref()).collect();
    let created: Vec<DateTime<Utc>> = unique.iter().map(|o| o.task.created_at).collect();
    let started: Vec<Option<DateTime<Utc>>> = unique.iter().map(|o| o.started_at).collect();
    let owners: Vec<Option<&str>> = unique.iter().map(|o| o.task.owner).collect();
    let priorities: Vec<i16> = unique.iter().map(|o| o.task.priority).collect();
    let written: Vec<Written> = Fixed::new(RECORD)
        .bind::<Text, _>(node)
        .bind::<Timestamptz, _>(now)
        .bind::<Timestamptz, _>(now)
        .bind::<Array<diesel::sql_types::Uuid>, _>(&ids)
        .bind::<Array<Text>, _>(&kinds)
        .bind::<Array<Text>, _>(&statuses)
        .bind::<Array<Nullable<Bytea>>, _>(&payloads)
        .bind::<Array<Nullable<Text>>, _>(&payload_keys)
        .bind::<Array<Int8>, _>(&payload_sizes)
        .bind::<Array<Text>, _>(&by)
        .bind::<Array<Nullable<Bytea>>, _>(&results)
        .bind::<Array<Nullable<Text>>, _>(&result_keys)
        .bind::<Array<Nullable<Int8>>, _>(&result_sizes)
        .bind::<Array<Nullable<Text>>, _>(&errors)
        .bind::<Array<Timestamptz>, _>(&created)
        .bind::<Array<Nullable<Timestamptz>>, _>(&started)
        .bind::<Array<Nullable<Text>>, _>(&owners)
        .bind::<Array<Int2>, _>(&priorities)
        .load(conn)
        .await?;
    let mut rows: HashMap<Uuid, TaskRow> = HashMap::with_capacity(items.len());
    for w in written {
        let Some(o) = by_id.get(&w.id) else {
            continue;
        };
        rows.insert(
            w.id,
            o.row_as_written(node, now, w.attempts, w.created_at, w.started_at, w.key),
        );
    }
    // Finished by another delivery first (or a second copy in this batch): that row stands.
    let rest: Vec<Uuid> = ids
        .iter()
        .filter(|id| !rows.contains_key(id))
        .copied()
        .collect();
    rows.extend(read_many(conn, &rest).await?);
    Ok(items
        .iter()
        .map(|o| rows.get(&o.task.id).cloned())
        .collect())
}

impl Outcome<'_> {
    /// The row as [`record_many`] just wrote it (without reading it back).
    fn row_as_written(
        &self,
        node: &str,
        now: DateTime<Utc>,
        attempts: i32,
        created_at: DateTime<Utc>,
        started_at: Option<DateTime<Utc>>,
        key: Option<String>,
    ) -> TaskRow {
        TaskRow {
            id: self.task.id,
            kind: self.task.kind.to_string(),
            status: self.finish.status,
            payload: self.task.payload.map(<[u8]>::to_vec),
            payload_key: self.task.payload_key.map(str::to_string),
            payload_size: self.task.payload_size,
            result: self.finish.result.clone(),
            result_key: self.finish.result_key.clone(),
            result_size: self.finish.result_size,
            error: self.finish.error.clone(),
            attempts,
            submitted_by: self.task.submitted_by.to_string(),
            node: Some(node.to_string()),
            created_at,
            started_at,
            finished_at: Some(now),
            updated_at: now,
            next_attempt_at: None,
            owner: self.task.owner.map(str::to_string),
            priority: self.task.priority,
            run_at: None,
            key,
            progress: None,
            progress_note: None,
        }
    }
}
