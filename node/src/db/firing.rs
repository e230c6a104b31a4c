//! Firing due schedules: any node's scheduler takes the schedules whose tick is due (`FOR
//! UPDATE SKIP LOCKED`), accepts their tasks and moves each to its next tick, in one
//! transaction: one task per tick across the fleet, however many nodes look.
//!
//! A schedule's tasks are its owner's tasks, so they count against the owner token's limits
//! as a submission would: its `max_inflight` (unfinished tasks) and its `rate` (tasks
//! accepted in the last second). A tick over a limit is not run: it is counted in the
//! schedule's `skipped`, with why in `last_skip` (`SCHEDULE LIST` shows both). The schedules
//! of a revoked token are disabled ([`crate::auth::tokens::revoke`]) and tick no more.

use super::control::NOBODY;
use super::listing::first_id_at;
use super::models::NewTask;
use super::outbox::Lease;
use super::schedules::{due_ticks, ScheduleRow, Ticks};
use super::schema::{schedules, tasks, tokens};
use super::tasks::insert_many;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use protocol::TaskStatus;
use uuid::Uuid;

/// How many of a schedule's due ticks its owner may have run now, or why none.
enum Room {
    /// Up to this many (and why the rest may not).
    Some(usize, String),
    /// The owner's token is revoked (or gone): disable the schedule.
    Revoked,
}

/// What `owner`'s token allows now (an open node's schedules, owner `''`, are not limited).
async fn room(conn: &mut AsyncPgConnection, owner: &str, now: DateTime<Utc>) -> QueryResult<Room> {
    if owner.is_empty() {
        return Ok(Room::Some(usize::MAX, String::new()));
    }
    let token: Option<(Option<i32>, Option<f64>)> = tokens::table
        .find(owner)
        .filter(tokens::revoked_at.is_null())
        .select((tokens::max_inflight, tokens::rate))
        .first(conn)
        .await
        .optional()?;
    let Some((max_inflight, rate)) = token else {
        return Ok(Room::Revoked);
    };
    let mut room = usize::MAX;
    let mut why = String::new();
    if let Some(max) = max_inflight {
        let unfinished: i64 = tasks::table
            .filter(tasks::owner.eq(owner))
            .filter(tasks::status.eq_any(TaskStatus::UNFINISHED.map(|s| s.as_str())))
            .count()
            .get_result(conn)
            .await?;
        let left = (i64::from(max) - unfinished).max(0) as usize;
        if left < room {
            room = left;
            why = format!("its token's max_inflight of {max} unfinished tasks was reached");
        }
    }
    if let Some(rate) = rate {
        let recent: i64 = tasks::table
            .filter(tasks::owner.eq(owner))
            .filter(tasks::id.ge(first_id_at(now - chrono::Duration::seconds(1))))
            .count()
            .get_result(conn)
            .await?;
        let left = (rate.ceil() as i64 - recent).max(0) as usize;
        if left < room {
            room = left;
            why = format!("its token's rate of {rate} tasks a second was reached");
        }
    }
    Ok(Room::Some(room, why))
}

/// Take up to `limit` due schedules, accept their tasks (due at once, for any relay) and move
/// them on. Answers the tasks made.
pub async fn fire_due(
    conn: &mut AsyncPgConnection,
    node: &str,
    ticks: &impl Ticks,
    limit: i64,
) -> QueryResult<usize> {
    let live = schedules::disabled_at.is_null();
    // Most looks find nothing due: one plain read, no transaction.
    let due: bool = diesel::select(diesel::dsl::exists(
        schedules::table
            .filter(schedules::next_at.le(Utc::now()))
            .filter(live),
    ))
    .get_result(conn)
    .await?;
    if !due {
        return Ok(0);
    }
    conn.transaction(async |c| {
        let now = Utc::now();
        let rows: Vec<ScheduleRow> = schedules::table
            .filter(schedules::next_at.le(now))
            .filter(live)
            .order(schedules::next_at)
            .limit(limit)
            .for_update()
            .skip_locked()
            .select(ScheduleRow::as_select())
            .load(c)
            .await?;
        let mut made = 0;
        for row in rows {
            made += fire(c, node, ticks, &row, now).await?;
        }
        Ok(made)
    })
    .await
}

/// Fire one due schedule: its ticks that its owner has room for, the rest skipped.
async fn fire(
    c: &mut AsyncPgConnection,
    node: &str,
    ticks: &impl Ticks,
    row: &ScheduleRow,
    now: DateTime<Utc>,
) -> QueryResult<usize> {
    let key = schedules::table.find((&row.owner, &row.name));
    let (mut due, next) = due_ticks(row, ticks, now);
    let (room, why) = match room(c, &row.owner, now).await? {
        Room::Some(room, why) => (room, why),
        Room::Revoked => {
            diesel::update(key)
                .set(schedules::disabled_at.eq(now))
                .execute(c)
                .await?;
            return Ok(0);
        }
    };
    let skipped = due.len().saturating_sub(room);
    due.truncate(room);
    let ids: Vec<Uuid> = due.iter().map(|_| Uuid::now_v7()).collect();
    let tasks: Vec<NewTask<'_>> = ids
        .iter()
        .zip(&due)
        .map(|(id, at)| NewTask {
            id: *id,
            kind: &row.kind,
            payload: Some(&row.payload),
            payload_key: None,
            payload_size: row.payload.len() as i64,
            submitted_by: node,
            created_at: *at,
            owner: row.task_owner(),
            priority: 0,
        })
        .collect();
    if !tasks.is_empty() {
        let lease = Lease {
            owner: NOBODY,
            due: now,
        };
        insert_many(c, &tasks, Some(lease)).await?;
    }
    if skipped > 0 {
        tracing::info!(schedule = %row.name, owner = %row.owner, ticks = skipped, why = %why, "schedule ticks skipped");
    }
    // A schedule that never ticks again (a date past) is kept, parked far ahead.
    let next = next.unwrap_or(DateTime::<Utc>::MAX_UTC);
    let next = next.min(now + chrono::Duration::days(365 * 100));
    let last_skip = match skipped {
        0 => row.last_skip.clone(),
        n => Some(format!("{n} tick(s) at {now}: {why}")),
    };
    diesel::update(key)
        .set((
            schedules::next_at.eq(next),
            schedules::last_at.eq(due.last().copied().or(row.last_at)),
            schedules::last_task.eq(ids.last().copied().or(row.last_task)),
            schedules::skipped.eq(row.skipped + skipped as i64),
            schedules::last_skip.eq(last_skip),
        ))
        .execute(c)
        .await?;
    Ok(tasks.len())
}
