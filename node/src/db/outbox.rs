//! Queries on `outbox`: accepted tasks whose message the broker has not confirmed yet.
//!
//! A task enters the outbox with its `queued` row ([`super::tasks::insert_many`] with a
//! [`Lease`]), leased to the node that accepted it, which publishes it at once and deletes the
//! entry when the broker confirms ([`settle`]). A node that cannot publish hands the entry back
//! ([`release`]). Entries past their lease are claimed by any node's relay ([`claim_due`]):
//! the task of a node that died, or that lost its broker, is published by another.

use super::models::TaskRow;
use super::schema::{outbox, tasks};
use super::sql::Fixed;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::TaskStatus;
use uuid::Uuid;

/// Who publishes newly accepted tasks: `owner`, until `due` (then any node's relay).
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub owner: &'a str,
    pub due: DateTime<Utc>,
}

/// Put tasks (whose rows exist) in the outbox under `lease`, or renew their lease.
pub async fn lease(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    lease: Lease<'_>,
) -> QueryResult<usize> {
    let rows: Vec<_> = ids
        .iter()
        .map(|id| {
            (
                outbox::id.eq(*id),
                outbox::owner.eq(lease.owner),
                outbox::due.eq(lease.due),
            )
        })
        .collect();
    diesel::insert_into(outbox::table)
        .values(rows)
        .on_conflict(outbox::id)
        .do_update()
        .set((
            outbox::owner.eq(diesel::upsert::excluded(outbox::owner)),
            outbox::due.eq(diesel::upsert::excluded(outbox::due)),
        ))
        .execute(conn)
        .await
}

/// Whether an entry is parked: its task's lane or kind is paused ([`super::control::park`]).
fn parked() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql("outbox.due = 'infinity'")
}

/// The broker confirmed these tasks' messages: out of the outbox (unless a consumer has
/// parked one meanwhile: its confirm may come after its delivery).
pub async fn settle(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<usize> {
    diesel::delete(outbox::table.filter(outbox::id.eq_any(ids)))
        .filter(diesel::dsl::not(parked()))
        .execute(conn)
        .await
}

/// These tasks could not be published by their owner: due at `due` for any node's relay.
pub async fn release(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    due: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .filter(diesel::dsl::not(parked()))
        .set(outbox::due.eq(due))
        .execute(conn)
        .await
}

const CLAIM: &str = "\
UPDATE outbox o SET owner = $?, due = $? \
FROM (SELECT id FROM outbox \
      WHERE due <= $? AND (due <= $? OR owner = $?) \
      ORDER BY due LIMIT $? FOR UPDATE SKIP LOCKED) c \
WHERE o.id = c.id \
RETURNING o.id";

/// Lease to `lease.owner` up to `limit` entries that are due, and also those it held before it
/// last started (`booted`: a lease it took before then ends before `booted + lease_for`; one
/// taken since ends after), so a restarted node publishes its own leftovers at once. Answers
/// the rows of the claimed tasks that are still `queued`; entries whose task has moved on (it
/// ran: its message did reach the broker) are deleted.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    lease: Lease<'_>,
    booted: DateTime<Utc>,
    lease_for: chrono::Duration,
    limit: i64,
) -> QueryResult<Vec<TaskRow>> {
    use diesel::sql_types::{Int8, Text, Timestamptz};
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    // One range of the `due` index: entries due now, and (for a node just started) its own
    // entries up to the end of the leases it took before.
    let now = Utc::now();
    let claimed: Vec<Id> = Fixed::new(CLAIM)
        .bind::<Text, _>(lease.owner)
        .bind::<Timestamptz, _>(lease.due)
        .bind::<Timestamptz, _>(now.max(booted + lease_for))
        .bind::<Timestamptz, _>(now)
        .bind::<Text, _>(lease.owner)
        .bind::<Int8, _>(limit)
        .load(conn)
        .await?;
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = claimed.into_iter().map(|c| c.id).collect();
    // A scheduled task claimed is due: it is queued from now on.
    diesel::update(tasks::table.filter(tasks::id.eq_any(&ids)))
        .filter(tasks::status.eq(TaskStatus::Scheduled.as_str()))
        .set((
            tasks::status.eq(TaskStatus::Queued.as_str()),
            tasks::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    let queued: Vec<TaskRow> = tasks::table
        .filter(tasks::id.eq_any(&ids))
        .filter(tasks::status.eq(TaskStatus::Queued.as_str()))
        .select(TaskRow::as_select())
        .load(conn)
        .await?;
    let moved_on: Vec<Uuid> = ids
        .into_iter()
        .filter(|id| !queued.iter().any(|r| r.id == *id))
        .collect();
    if !moved_on.is_empty() {
        settle(conn, &moved_on).await?;
    }
    Ok(queued)
}
