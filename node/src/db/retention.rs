//! The day partitions of `tasks` (see the `day_partitions` migration): made ahead, and
//! dropped whole once older than `retention.days` — never a `DELETE` of a day's rows.
//!
//! Dropping a day: detach its partition (its range then belongs to `tasks_default`), copy its
//! unfinished rows back into `tasks` (they land in `tasks_default`; a task scheduled far ahead
//! is not lost), note it `detached`, delete the bucket objects of its finished rows, drop it.
//! A node that dies half-way leaves it `detached`; the next round finishes the job.

use super::schema::task_partitions;
use super::sql::Fixed;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use protocol::TaskStatus;

/// Days made ahead of today.
pub const AHEAD: u64 = 2;
/// How long a change of `tasks`' partitions waits for its lock before giving up (then it is
/// tried again later). Detaching or attaching a partition needs the whole table to itself,
/// and while it waits every write to `tasks` queues behind it: behind one long reader, a
/// change that waited without a bound would stop every node's writes.
pub const LOCK_WAIT: &str = "SET LOCAL lock_timeout = '2s'";

/// The advisory lock one node holds while it maintains the partitions.
const LOCK: i64 = 0x7461_736b_6e6f_6465; // "tasknode"

/// A partition's table name.
pub fn partition_name(day: NaiveDate) -> String {
    format!("tasks_p{}", day.format("%Y%m%d"))
}

/// The lowest UUIDv7 of `day` (UTC) as text: its first 48 bits are the day's first millisecond.
pub fn day_floor(day: NaiveDate) -> String {
    let ms = day
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_millis();
    let hex = format!("{ms:012x}");
    format!("{}-{}-0000-0000-000000000000", &hex[..8], &hex[8..])
}

/// Take the maintenance lock for this connection's session; `false` if another node has it.
pub async fn try_lock(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    super::lock::try_lock(conn, LOCK).await
}

pub async fn unlock(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    super::lock::unlock(conn, LOCK).await
}

/// Make the partitions of the days after the last one made, from `from` through `through`;
/// answers their names. `from` should be a day still ahead: attaching a day while its rows
/// are written makes those writes fail (PostgreSQL checks a row routed to the default
/// partition against the new bounds), so a day missed (the whole fleet down for days) keeps
/// its rows in `tasks_default`.
pub async fn make_days(
    conn: &mut AsyncPgConnection,
    from: NaiveDate,
    through: NaiveDate,
) -> QueryResult<Vec<String>> {
    let last: Option<NaiveDate> = task_partitions::table
        .select(diesel::dsl::max(task_partitions::hi_day))
        .first(conn)
        .await?;
    let mut day = last.map_or(from, |last| last.max(from));
    let mut made = Vec::new();
    while day <= through {
        made.push(make_day(conn, day).await?);
        day = day.succ_opt().expect("a next day");
    }
    Ok(made)
}

/// Make the partition of `day`; rows of that day in `tasks_default` move into it. Answers its
/// name.
pub async fn make_day(conn: &mut AsyncPgConnection, day: NaiveDate) -> QueryResult<String> {
    let name = partition_name(day);
    let next = day.succ_opt().expect("a next day");
    let (lo, hi) = (day_floor(day), day_floor(next));
    conn.transaction(async |c| {
        let sql = [
            LOCK_WAIT.to_string(),
            format!("CREATE TABLE {name} (LIKE tasks INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"),
            format!(
                "WITH moved AS (DELETE FROM tasks_default WHERE id >= '{lo}' AND id < '{hi}' RETURNING *) \
                 INSERT INTO {name} SELECT * FROM moved"
            ),
            format!("ALTER TABLE tasks ATTACH PARTITION {name} FOR VALUES FROM ('{lo}') TO ('{hi}')"),
        ];
        for statement in sql {
            diesel::sql_query(statement).execute(c).await?;
        }
        diesel::insert_into(task_partitions::table)
            .values((
                task_partitions::name.eq(&name),
                task_partitions::lo_day.eq(Some(day)),
                task_partitions::hi_day.eq(next),
            ))
            .execute(c)
            .await
    })
    .await?;
    Ok(name)
}

/// Partitions wholly before `before` (and any left detached by an earlier round).
pub async fn expired(conn: &mut AsyncPgConnection, before: NaiveDate) -> QueryResult<Vec<String>> {
    task_partitions::table
        .filter(
            task_partitions::hi_day
                .le(before)
                .or(task_partitions::detached.eq(true)),
        )
        .order(task_partitions::hi_day)
        .select(task_partitions::name)
        .load(conn)
        .await
}

/// Detach partition `name` (unless it is already) and copy its unfinished rows back into
/// `tasks`, in one transaction; fails without waiting long for its lock ([`LOCK_WAIT`]).
pub async fn detach(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<()> {
    conn.transaction(async |c| {
        let detached: bool = task_partitions::table
            .find(name)
            .select(task_partitions::detached)
            .for_update()
            .first(c)
            .await?;
        if detached {
            return Ok(());
        }
        let unfinished = sql_list(&TaskStatus::UNFINISHED);
        for statement in [
            LOCK_WAIT.to_string(),
            format!("ALTER TABLE tasks DETACH PARTITION {name}"),
            format!("INSERT INTO tasks SELECT * FROM {name} WHERE status IN ({unfinished})"),
        ] {
            diesel::sql_query(statement).execute(c).await?;
        }
        diesel::update(task_partitions::table.find(name))
            .set(task_partitions::detached.eq(true))
            .execute(c)
            .await
            .map(drop)
    })
    .await
}

/// Statuses as an SQL list: `'a', 'b'`.
fn sql_list(statuses: &[TaskStatus]) -> String {
    let quoted: Vec<String> = statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    quoted.join(", ")
}

/// The object keys of rows.
fn keys_of(rows: Vec<Keys>) -> Vec<String> {
    rows.into_iter()
        .flat_map(|k| [k.payload_key, k.result_key])
        .flatten()
        .collect()
}

#[derive(Debug, QueryableByName)]
struct Keys {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    payload_key: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    result_key: Option<String>,
}

/// Rows of one page of [`object_keys`].
pub const KEYS_PAGE: i64 = 1000;

#[derive(Debug, QueryableByName)]
struct PagedKeys {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    payload_key: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    result_key: Option<String>,
}

/// The bucket objects of up to [`KEYS_PAGE`] finished rows of detached partition `name`, those
/// after id `after` in id order; and the last id of the page (`None`: no more pages). A day
/// of millions of tasks is read a page at a time, never whole.
pub async fn object_keys(
    conn: &mut AsyncPgConnection,
    name: &str,
    after: Option<uuid::Uuid>,
) -> QueryResult<(Vec<String>, Option<uuid::Uuid>)> {
    let finished = sql_list(&TaskStatus::FINAL);
    let after = after.unwrap_or(uuid::Uuid::nil());
    let rows: Vec<PagedKeys> = diesel::sql_query(format!(
        "SELECT id, payload_key, result_key FROM {name} WHERE status IN ({finished}) \
         AND (payload_key IS NOT NULL OR result_key IS NOT NULL) AND id > $1 \
         ORDER BY id LIMIT {KEYS_PAGE}"
    ))
    .bind::<diesel::sql_types::Uuid, _>(after)
    .load(conn)
    .await?;
    let last = (rows.len() as i64 == KEYS_PAGE)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let keys = rows
        .into_iter()
        .flat_map(|r| [r.payload_key, r.result_key])
        .flatten()
        .collect();
    Ok((keys, last))
}

/// Those of `ids` that have a row.
pub async fn with_rows(
    conn: &mut AsyncPgConnection,
    ids: &[uuid::Uuid],
) -> QueryResult<Vec<uuid::Uuid>> {
    use super::schema::tasks;
    tasks::table
        .filter(tasks::id.eq_any(ids))
        .select(tasks::id)
        .load(conn)
        .await
}

/// Drop detached partition `name` and forget it.
pub async fn drop_partition(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<()> {
    conn.transaction(async |c| {
        diesel::sql_query(LOCK_WAIT).execute(c).await?;
        diesel::sql_query(format!("DROP TABLE IF EXISTS {name}"))
            .execute(c)
            .await?;
        diesel::delete(task_partitions::table.find(name))
            .execute(c)
            .await
            .map(drop)
    })
    .await
}

const EXPIRED_DEFAULT: &str = "\
DELETE FROM tasks_default WHERE status IN ('succeeded', 'failed', 'dead', 'cancelled') \
AND finished_at < $? RETURNING payload_key, result_key";

/// Delete the finished rows of `tasks_default` (kept rows of dropped days, few) that ended
/// before `before`; answers their objects.
pub async fn expire_default(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> QueryResult<Vec<String>> {
    let rows: Vec<Keys> = Fixed::new(EXPIRED_DEFAULT)
        .bind::<diesel::sql_types::Timestamptz, _>(before)
        .load(conn)
        .await?;
    Ok(keys_of(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_begins_at_its_first_millisecond() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        assert_eq!(day_floor(day), "01a21a4d-4000-0000-0000-000000000000");
        assert_eq!(partition_name(day), "tasks_p20261127");
        let id = uuid::Uuid::parse_str("01a21e93-9df7-753d-912a-46037e306b7d").unwrap();
        let next = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        assert!(day_floor(day) < id.to_string() && id.to_string() < day_floor(next));
    }
}
