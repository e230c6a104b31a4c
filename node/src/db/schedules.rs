//! Queries on `schedules`: periodic tasks. Any node's scheduler takes the schedules whose
//! tick is due (`FOR UPDATE SKIP LOCKED`), accepts their tasks (rows and outbox entries due at
//! once, for any node's relay) and moves each schedule to its next tick, all in one
//! transaction: one task per tick across the fleet, however many nodes look.

use super::schema::schedules;
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
    /// The token that added it (`''` on an open node): names are per owner.
    pub owner: String,
    pub next_at: DateTime<Utc>,
    pub last_at: Option<DateTime<Utc>>,
    pub last_task: Option<Uuid>,
    /// Ticks not run because its owner was over a limit, and why the last one was not.
    pub skipped: i64,
    pub last_skip: Option<String>,
    /// When its token was revoked: it ticks no more.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl ScheduleRow {
    /// A schedule first due at `next_at`, never fired, skipped or disabled; its name, cron,
    /// kind, payload and owner are empty (set them with struct update syntax).
    pub fn unfired(next_at: DateTime<Utc>) -> ScheduleRow {
        ScheduleRow {
            name: String::new(),
            cron: String::new(),
            tz: "UTC".into(),
            kind: String::new(),
            payload: Vec::new(),
            missed: protocol::Missed::default().as_str().to_string(),
            owner: String::new(),
            next_at,
            last_at: None,
            last_task: None,
            skipped: 0,
            last_skip: None,
            disabled_at: None,
        }
    }
}

impl ScheduleRow {
    /// Its tasks' owner (`None` on an open node).
    pub fn task_owner(&self) -> Option<&str> {
        (!self.owner.is_empty()).then_some(self.owner.as_str())
    }
}

/// When a schedule ticks: the first tick after a time.
pub trait Ticks: Sync {
    fn after(&self, row: &ScheduleRow, at: DateTime<Utc>) -> Option<DateTime<Utc>>;
}

/// What [`put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Added,
    /// Its owner had a schedule of that name: replaced.
    Replaced,
    /// Its owner has this many schedules already (its `max_schedules`): not added.
    Full(u32),
}

/// Add `row`, replacing its owner's schedule of the same name; refused when the owner has
/// `max` schedules already. (Another owner's schedule of that name is another schedule.)
pub async fn put(conn: &mut AsyncPgConnection, row: &ScheduleRow, max: u32) -> QueryResult<Put> {
    conn.transaction(async |c| {
        // One change of an owner's schedules at a time, so the count below holds.
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind::<diesel::sql_types::Text, _>(format!("schedules:{}", row.owner))
            .execute(c)
            .await?;
        let replaced = diesel::delete(schedules::table.find((&row.owner, &row.name)))
            .execute(c)
            .await?
            == 1;
        if !replaced {
            let has: i64 = schedules::table
                .filter(schedules::owner.eq(&row.owner))
                .count()
                .get_result(c)
                .await?;
            if has >= i64::from(max) {
                return Ok(Put::Full(max));
            }
        }
        diesel::insert_into(schedules::table)
            .values(row)
            .execute(c)
            .await?;
        Ok(if replaced { Put::Replaced } else { Put::Added })
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

/// Remove schedule `name` of `owner` (every owner's of that name, for an admin: `None`);
/// `false` if there is none.
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
    query.execute(conn).await.map(|n| n >= 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks every `n` seconds, on the grid of the row's `next_at` (as a cron's ticks are on
    /// the clock's).
    struct Every(i64);

    impl Ticks for Every {
        fn after(&self, row: &ScheduleRow, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
            let step = chrono::Duration::seconds(self.0);
            let mut tick = row.next_at;
            while tick <= at {
                tick += step;
            }
            while tick - step > at {
                tick -= step;
            }
            Some(tick)
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
            ..ScheduleRow::unfired(next_at)
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
