//! Queries on `schedules`: periodic tasks. Any node's scheduler takes the schedules whose
//! tick is due (`FOR UPDATE SKIP LOCKED`), accepts their tasks (rows and outbox entries due at
//! once, for any node's relay) and moves each schedule to its next tick, all in one
//! transaction: one task per tick across the fleet, however many nodes look.

use super::models::NewTask;
use super::schema::schedules;
use super::tasks::{insert_many, Lease};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = schedules, check_for_backend(diesel::pg::Pg))]
pub struct ScheduleRow {
    pub name: String,
    pub cron: String,
    pub tz: String,
    pub kind: String,
    pub payload: Vec<u8>,
    pub missed: String,
    pub owner: Option<String>,
    pub next_at: DateTime<Utc>,
    pub last_at: Option<DateTime<Utc>>,
    pub last_task: Option<Uuid>,
}

/// When a schedule ticks: the first tick after a time.
pub trait Ticks: Sync {
    fn after(&self, row: &ScheduleRow, at: DateTime<Utc>) -> Option<DateTime<Utc>>;
}

/// Add `row`, or replace the schedule of its name if `may_replace` says so of its owner.
/// Answers `false` if the name is taken by a schedule it may not replace.
pub async fn put(
    conn: &mut AsyncPgConnection,
    row: &ScheduleRow,
    may_replace: impl FnOnce(Option<&str>) -> bool + Send,
) -> QueryResult<bool> {
    conn.transaction(async |c| {
        let owner: Option<Option<String>> = schedules::table
            .find(&row.name)
            .select(schedules::owner)
            .for_update()
            .first(c)
            .await
            .optional()?;
        if let Some(owner) = owner {
            if !may_replace(owner.as_deref()) {
                return Ok(false);
            }
            diesel::delete(schedules::table.find(&row.name))
                .execute(c)
                .await?;
        }
        diesel::insert_into(schedules::table)
            .values(row)
            .execute(c)
            .await?;
        Ok(true)
    })
    .await
}

/// Every schedule (of `owner`, if given), by name.
pub async fn list(
    conn: &mut AsyncPgConnection,
    owner: Option<&str>,
) -> QueryResult<Vec<ScheduleRow>> {
    let mut query = schedules::table.into_boxed();
    if let Some(owner) = owner {
        query = query.filter(schedules::owner.eq(owner));
    }
    query
        .order(schedules::name)
        .select(ScheduleRow::as_select())
        .load(conn)
        .await
}

/// Remove schedule `name` (of `owner`, if given); `false` if there is none.
pub async fn remove(
    conn: &mut AsyncPgConnection,
    name: &str,
    owner: Option<&str>,
) -> QueryResult<bool> {
    let mut query = diesel::delete(schedules::table)
        .filter(schedules::name.eq(name))
        .into_boxed();
    if let Some(owner) = owner {
        query = query.filter(schedules::owner.eq(owner));
    }
    query.execute(conn).await.map(|n| n == 1)
}

/// A tick later than this is late, not missed: it still runs (a slow sweep, a short pause).
pub const LATE: chrono::Duration = chrono::Duration::seconds(10);
/// Most ticks of one schedule run in one go (a one-second schedule has at most 11 late ones).
const MOST_TICKS: usize = 1_000;

/// The ticks of `row` to run now (`now` included), and its next tick after `now`: each due
/// tick of the last [`LATE`] runs; older ones (every node was down) run once together, or not
/// at all, as the schedule's `missed` says. Missed ticks are not counted one by one: the
/// walk starts at the first tick of the last [`LATE`], so a day down costs no more than a
/// moment.
pub fn due_ticks(
    row: &ScheduleRow,
    ticks: &impl Ticks,
    now: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut due = Vec::new();
    let mut missed = false;
    let mut tick = Some(row.next_at);
    if row.next_at < now - LATE {
        missed = true;
        tick = ticks.after(row, now - LATE - chrono::Duration::milliseconds(1));
    }
    while let Some(at) = tick.filter(|at| *at <= now) {
        due.push(at);
        tick = match due.len() < MOST_TICKS {
            true => ticks.after(row, at),
            false => ticks.after(row, now),
        };
    }
    if missed && due.is_empty() && row.missed == "once" {
        due.push(now);
    }
    (due, tick)
}

/// Take up to `limit` due schedules, accept their tasks (due at once, for any relay) and move
/// them on. Answers the tasks made.
pub async fn fire_due(
    conn: &mut AsyncPgConnection,
    node: &str,
    ticks: &impl Ticks,
    limit: i64,
) -> QueryResult<usize> {
    // Most looks find nothing due: one plain read, no transaction.
    let due: bool = diesel::select(diesel::dsl::exists(
        schedules::table.filter(schedules::next_at.le(Utc::now())),
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
            .order(schedules::next_at)
            .limit(limit)
            .for_update()
            .skip_locked()
            .select(ScheduleRow::as_select())
            .load(c)
            .await?;
        let mut made = 0;
        for row in rows {
            let (due, next) = due_ticks(&row, ticks, now);
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
                    owner: row.owner.as_deref(),
                    priority: 0,
                })
                .collect();
            if !tasks.is_empty() {
                let lease = Lease {
                    owner: super::control::NOBODY,
                    due: now,
                };
                insert_many(c, &tasks, Some(lease)).await?;
                made += tasks.len();
            }
            // A schedule that never ticks again (a date past) is kept, parked far ahead.
            let next = next.unwrap_or(DateTime::<Utc>::MAX_UTC);
            let next = next.min(now + chrono::Duration::days(365 * 100));
            diesel::update(schedules::table.find(&row.name))
                .set((
                    schedules::next_at.eq(next),
                    schedules::last_at.eq(due.last().copied().or(row.last_at)),
                    schedules::last_task.eq(ids.last().copied().or(row.last_task)),
                ))
                .execute(c)
                .await?;
        }
        Ok(made)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks every `n` seconds.
    struct Every(i64);

    impl Ticks for Every {
        fn after(&self, _: &ScheduleRow, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
            Some(at + chrono::Duration::seconds(self.0))
        }
    }

    fn row(next_at: DateTime<Utc>, missed: &str) -> ScheduleRow {
        ScheduleRow {
            name: "s".into(),
            cron: "* * * * * *".into(),
            tz: "UTC".into(),
            kind: "echo".into(),
            payload: vec![],
            missed: missed.into(),
            owner: None,
            next_at,
            last_at: None,
            last_task: None,
        }
    }

    #[test]
    fn late_ticks_each_run_and_missed_ones_run_once_or_not_at_all() {
        let now = Utc::now();
        let s = chrono::Duration::seconds;
        // Two ticks due within the last seconds: both run.
        let (due, next) = due_ticks(&row(now - s(1), "once"), &Every(1), now);
        assert_eq!(due, vec![now - s(1), now]);
        assert_eq!(next, Some(now + s(1)));
        // An hour down: the missed ticks run once (plus the recent ones, each).
        let (due, next) = due_ticks(&row(now - s(3630), "once"), &Every(60), now);
        assert_eq!((due, next), (vec![now], Some(now + s(30))));
        let (due, next) = due_ticks(&row(now - s(3630), "skip"), &Every(60), now);
        assert_eq!((due.len(), next), (0, Some(now + s(30))));
        // Not due yet.
        let (due, next) = due_ticks(&row(now + s(5), "once"), &Every(1), now);
        assert_eq!((due.len(), next), (0, Some(now + s(5))));
    }
}
