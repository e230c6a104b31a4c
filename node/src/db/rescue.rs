//! Queries of the janitor ([`crate::actors::janitor`]): tasks whose row stays `running` or
//! `queued` with no message anywhere and no outbox entry, found and put back through the
//! outbox (or ended `dead` when their attempts are spent).
//!
//! A row is *stuck* when nothing will ever move it again:
//! - `running`, no outbox entry, last written longer ago than its kind's timeout and a grace:
//!   its run is over wherever it was (the worker's timeout ends every run), and no delivery of
//!   it is held (a delivery is acked or handed back within its timeout);
//! - `queued`, no outbox entry, last written (or due to run again) longer ago than that, while
//!   its lane's queues hold no message (checked by the caller): its message is gone.

use super::control::NOBODY;
use super::models::row_text;
use super::schema::{outbox, tasks};
use super::sql::Fixed;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use protocol::TaskStatus;
use uuid::Uuid;

/// The advisory lock one node holds while it looks for stuck rows.
const LOCK: i64 = 0x7461_736b_6a61_6e69; // "taskjani"

/// A row found stuck.
#[derive(Debug, Clone, QueryableByName)]
pub struct Stuck {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub node: Option<String>,
}

/// When a row of each kind counts as stuck: rows last written before `cutoff`.
#[derive(Debug, Clone)]
pub struct Cutoffs {
    /// `(kind, cutoff)` for kinds with their own timeout.
    pub kinds: Vec<(String, DateTime<Utc>)>,
    /// Every other kind.
    pub default: DateTime<Utc>,
}

const STUCK: &str = "\
SELECT t.id, t.kind, t.status, t.attempts, t.node FROM tasks t \
WHERE (t.status = 'running' OR (t.status = 'queued' AND t.kind = ANY($?::text[]))) \
  AND GREATEST(t.updated_at, COALESCE(t.next_attempt_at, t.updated_at)) < \
      COALESCE((SELECT c.cutoff FROM UNNEST($?::text[], $?::timestamptz[]) AS c(kind, cutoff) \
                WHERE c.kind = t.kind), $?) \
  AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = t.id) \
ORDER BY t.updated_at LIMIT $?";

/// Up to `limit` stuck rows: `running` ones of any kind, `queued` ones of `idle_kinds` (kinds
/// whose lanes hold no message now), oldest first.
pub async fn find(
    conn: &mut AsyncPgConnection,
    cutoffs: &Cutoffs,
    idle_kinds: &[&str],
    limit: i64,
) -> QueryResult<Vec<Stuck>> {
    use diesel::sql_types::{Array, Int8, Text, Timestamptz};
    let kinds: Vec<&str> = cutoffs.kinds.iter().map(|(k, _)| k.as_str()).collect();
    let times: Vec<DateTime<Utc>> = cutoffs.kinds.iter().map(|(_, t)| *t).collect();
    Fixed::new(STUCK)
        .bind::<Array<Text>, _>(idle_kinds)
        .bind::<Array<Text>, _>(&kinds)
        .bind::<Array<Timestamptz>, _>(&times)
        .bind::<Timestamptz, _>(cutoffs.default)
        .bind::<Int8, _>(limit)
        .load(conn)
        .await
}

/// Put tasks whose rows have not ended back through the outbox: `queued`, due now for any
/// node's relay. Answers those put back (a row that ended meanwhile, or that has an outbox
/// entry already, is left alone).
pub async fn requeue(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction(async |c| {
        let now = Utc::now();
        let back: Vec<Uuid> = diesel::update(tasks::table.filter(tasks::id.eq_any(ids)))
            .filter(
                tasks::status.eq_any([TaskStatus::Queued.as_str(), TaskStatus::Running.as_str()]),
            )
            .set((
                tasks::status.eq(TaskStatus::Queued.as_str()),
                tasks::updated_at.eq(now),
                tasks::next_attempt_at.eq(None::<DateTime<Utc>>),
            ))
            .returning(tasks::id)
            .get_results(c)
            .await?;
        let entries: Vec<_> = back
            .iter()
            .map(|id| {
                (
                    outbox::id.eq(*id),
                    outbox::owner.eq(NOBODY),
                    outbox::due.eq(now),
                )
            })
            .collect();
        diesel::insert_into(outbox::table)
            .values(entries)
            .on_conflict_do_nothing()
            .execute(c)
            .await?;
        Ok(back)
    })
    .await
}

/// End task `id` `dead` with `why` if it has not ended (its attempts are spent).
pub async fn bury(conn: &mut AsyncPgConnection, id: Uuid, why: &str) -> QueryResult<bool> {
    let now = Utc::now();
    let n = diesel::update(tasks::table.find(id))
        .filter(tasks::status.eq_any([TaskStatus::Queued.as_str(), TaskStatus::Running.as_str()]))
        .set((
            tasks::status.eq(TaskStatus::Dead.as_str()),
            tasks::error.eq(row_text(why)),
            tasks::finished_at.eq(now),
            tasks::updated_at.eq(now),
            tasks::next_attempt_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Take the janitor's lock for this session; `false` if another node holds it.
pub async fn try_lock(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    super::lock::try_lock(conn, LOCK).await
}

pub async fn unlock(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    super::lock::unlock(conn, LOCK).await
}
