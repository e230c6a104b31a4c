//! Queries for control over work: accepting a task with an idempotency key or for later,
//! cancelling, and parking the tasks of paused lanes and kinds.
//!
//! A task for later is a `scheduled` row with an outbox entry due at its time and leased to
//! no node (owner `''`), so the relays of the fleet publish it when it is due
//! ([`super::outbox::claim_due`] turns it `queued`) and it waits in PostgreSQL, not as a
//! delivery. A paused task's entry is due `'infinity'` until its lane or kind is resumed.

use super::models::{NewTask, TaskRow};
use super::outbox::Lease;
use super::schema::{outbox, paused, task_keys, tasks};
use super::tasks::insert_many;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use protocol::TaskStatus;
use uuid::Uuid;

/// The owner of outbox entries no node holds: scheduled and parked tasks.
pub const NOBODY: &str = "";

/// An idempotency key to claim with a task.
#[derive(Debug, Clone)]
pub struct KeyClaim {
    /// The token's name, `''` on an open node.
    pub owner: String,
    pub key: String,
    /// A hash of the kind and payload (a second submission must ask the same).
    pub fingerprint: Vec<u8>,
    /// A key claimed before this may be taken again.
    pub expired_before: DateTime<Utc>,
}

/// What accepting a task with options came to.
#[derive(Debug)]
pub enum Accepted {
    /// Its row and outbox entry are written.
    New,
    /// The key belongs to an earlier task: its id and whether it asked the same.
    Existing { id: Uuid, same: bool },
}

/// Accept `task` in one transaction: claim its key (if any; an earlier live claim wins), write
/// its row (`scheduled` until `run_at`, else `queued`) and outbox entry (due at `run_at` for any
/// node, else leased by `lease`).
pub async fn accept(
    conn: &mut AsyncPgConnection,
    task: NewTask<'_>,
    run_at: Option<DateTime<Utc>>,
    key: Option<&KeyClaim>,
    lease: Lease<'_>,
) -> QueryResult<Accepted> {
    conn.transaction(async |c| {
        if let Some(claim) = key {
            if let Some(existing) = claim_key(c, task.id, claim).await? {
                return Ok(existing);
            }
        }
        let lease = match run_at {
            Some(due) => Lease { owner: NOBODY, due },
            None => lease,
        };
        insert_many(c, &[task], Some(lease)).await?;
        let status = match run_at {
            Some(_) => TaskStatus::Scheduled,
            None => TaskStatus::Queued,
        };
        diesel::update(tasks::table.find(task.id))
            .set((
                tasks::status.eq(status.as_str()),
                tasks::run_at.eq(run_at),
                tasks::key.eq(key.map(|k| k.key.as_str())),
            ))
            .execute(c)
            .await?;
        Ok(Accepted::New)
    })
    .await
}

const CLAIM_KEY: &str = "\
INSERT INTO task_keys AS k (owner, key, task_id, fingerprint, created_at) VALUES ($?, $?, $?, $?, $?) \
ON CONFLICT (owner, key) DO UPDATE SET task_id = EXCLUDED.task_id, \
  fingerprint = EXCLUDED.fingerprint, created_at = EXCLUDED.created_at \
WHERE k.created_at < $? \
RETURNING k.task_id";

/// Claim `claim.key` for task `id`; `Some` with the earlier task if it holds the key still.
/// Concurrent claims of one key wait for each other on the primary key: one wins.
async fn claim_key(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    claim: &KeyClaim,
) -> QueryResult<Option<Accepted>> {
    use diesel::sql_types::{Bytea, Text, Timestamptz, Uuid as SqlUuid};
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = SqlUuid)]
        #[allow(dead_code)]
        task_id: Uuid,
    }
    let taken: Option<Taken> = super::sql::Fixed::new(CLAIM_KEY)
        .bind::<Text, _>(&claim.owner)
        .bind::<Text, _>(&claim.key)
        .bind::<SqlUuid, _>(id)
        .bind::<Bytea, _>(&claim.fingerprint)
        .bind::<Timestamptz, _>(Utc::now())
        .bind::<Timestamptz, _>(claim.expired_before)
        .get_result(conn)
        .await
        .optional()?;
    if taken.is_some() {
        return Ok(None);
    }
    let (earlier, fingerprint): (Uuid, Vec<u8>) = task_keys::table
        .find((&claim.owner, &claim.key))
        .select((task_keys::task_id, task_keys::fingerprint))
        .first(conn)
        .await?;
    Ok(Some(Accepted::Existing {
        id: earlier,
        same: fingerprint == claim.fingerprint,
    }))
}

/// Forget keys claimed before `before`; answers how many.
pub async fn prune_keys(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(task_keys::table.filter(task_keys::created_at.lt(before)))
        .execute(conn)
        .await
}

/// Cancel task `id` if it has not ended: answers its row as it was before and as it is now.
/// A queued or scheduled task leaves the outbox (it will not be published; a message already
/// in a queue finds the row final and is dropped); a running one is told to stop by its node.
pub async fn cancel(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    why: &str,
) -> QueryResult<Option<(TaskStatus, TaskRow)>> {
    conn.transaction(async |c| {
        let Some(before) = tasks::table
            .find(id)
            .select(tasks::status)
            .for_update()
            .first::<String>(c)
            .await
            .optional()?
        else {
            return Ok(None);
        };
        let now = Utc::now();
        let row: Option<TaskRow> = diesel::update(tasks::table.find(id))
            .filter(tasks::status.eq_any(TaskStatus::UNFINISHED.map(|s| s.as_str())))
            .set((
                tasks::status.eq(TaskStatus::Cancelled.as_str()),
                tasks::error.eq(why),
                tasks::finished_at.eq(now),
                tasks::updated_at.eq(now),
                tasks::next_attempt_at.eq(None::<DateTime<Utc>>),
            ))
            .returning(TaskRow::as_returning())
            .get_result(c)
            .await
            .optional()?;
        let Some(row) = row else {
            return Ok(None);
        };
        diesel::delete(outbox::table.find(id)).execute(c).await?;
        let before = TaskStatus::parse(&before).unwrap_or(TaskStatus::Queued);
        Ok(Some((before, row)))
    })
    .await
}

/// Those of `ids` that are cancelled (tasks running here that were cancelled elsewhere).
pub async fn cancelled_among(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    tasks::table
        .filter(tasks::id.eq_any(ids))
        .filter(tasks::status.eq(TaskStatus::Cancelled.as_str()))
        .select(tasks::id)
        .load(conn)
        .await
}

const PARK: &str = "\
INSERT INTO outbox (id, owner, due) SELECT id, '', 'infinity' FROM UNNEST($?::uuid[]) AS v(id) \
ON CONFLICT (id) DO UPDATE SET owner = '', due = 'infinity'";

/// Park these tasks (delivered while their lane or kind is paused): back in the outbox,
/// never due until released (with their row first, for a waiting submission's task, whose
/// row its running node writes). A row left `running` (a redelivery: the node that ran it
/// died, or lost its channel) is `queued` again, so the relay publishes it on release; should
/// that run still end, its outcome is written over `queued` as over `running`.
pub async fn park(conn: &mut AsyncPgConnection, tasks: &[NewTask<'_>]) -> QueryResult<usize> {
    use diesel::sql_types::{Array, Uuid as SqlUuid};
    let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
    conn.transaction(async |c| {
        insert_many(c, tasks, None).await?;
        diesel::update(tasks::table.filter(tasks::id.eq_any(&ids)))
            .filter(tasks::status.eq(TaskStatus::Running.as_str()))
            .set((
                tasks::status.eq(TaskStatus::Queued.as_str()),
                tasks::updated_at.eq(Utc::now()),
            ))
            .execute(c)
            .await?;
        super::sql::Fixed::new(PARK)
            .bind::<Array<SqlUuid>, _>(&ids)
            .execute(c)
            .await
    })
    .await
}

const RELEASE: &str = "\
UPDATE outbox o SET due = $? FROM tasks t \
WHERE o.due = 'infinity' AND t.id = o.id AND NOT (t.kind = ANY($?::text[]))";

/// Make parked tasks due again, except those of `held` kinds (paused still).
pub async fn release_parked(conn: &mut AsyncPgConnection, held: &[String]) -> QueryResult<usize> {
    use diesel::sql_types::{Array, Text, Timestamptz};
    super::sql::Fixed::new(RELEASE)
        .bind::<Timestamptz, _>(Utc::now())
        .bind::<Array<Text>, _>(held)
        .execute(conn)
        .await
}

/// Every paused target (`lane:<name>`, `kind:<name>`), in order.
pub async fn list_paused(conn: &mut AsyncPgConnection) -> QueryResult<Vec<String>> {
    paused::table
        .select(paused::target)
        .order(paused::target)
        .load(conn)
        .await
}

/// Pause `target` (again: no change).
pub async fn pause(
    conn: &mut AsyncPgConnection,
    target: &str,
    by: Option<&str>,
) -> QueryResult<()> {
    diesel::insert_into(paused::table)
        .values((paused::target.eq(target), paused::by.eq(by)))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(drop)
}

/// Resume `target`; `false` if it was not paused.
pub async fn resume(conn: &mut AsyncPgConnection, target: &str) -> QueryResult<bool> {
    diesel::delete(paused::table.find(target))
        .execute(conn)
        .await
        .map(|n| n == 1)
}
