//! Listing tasks page by page: newest first by id (UUIDv7, so by acceptance time), a page
//! starting below the last id of the one before (a cursor that stays right while tasks are
//! added).

use super::models::TaskRow;
use super::schema::tasks::dsl;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use protocol::TaskStatus;
use uuid::Uuid;

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this owner's tasks (`None`: everyone's, for an admin).
    pub owner: Option<String>,
    pub status: Option<TaskStatus>,
    pub kind: Option<String>,
    /// Only tasks older than this one.
    pub before: Option<Uuid>,
    /// Only this one and newer.
    pub from: Option<Uuid>,
}

/// The smallest UUIDv7 of the millisecond `at`: ids below it were made before `at` (ids are
/// UUIDv7, so a time bound is an id bound, on the primary key's index).
pub fn first_id_at(at: chrono::DateTime<chrono::Utc>) -> Uuid {
    let ms = at.timestamp_millis().clamp(0, (1 << 48) - 1) as u128;
    Uuid::from_u128((ms << 80) | (0x7 << 76) | (0b10 << 62))
}

/// Up to `limit` tasks matching `filter`, newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    filter: &Filter,
    limit: i64,
) -> QueryResult<Vec<TaskRow>> {
    let mut query = dsl::tasks.into_boxed();
    if let Some(owner) = &filter.owner {
        query = query.filter(dsl::owner.eq(owner));
    }
    if let Some(status) = filter.status {
        query = query.filter(dsl::status.eq(status.as_str()));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(dsl::kind.eq(kind));
    }
    if let Some(before) = filter.before {
        query = query.filter(dsl::id.lt(before));
    }
    if let Some(from) = filter.from {
        query = query.filter(dsl::id.ge(from));
    }
    let rows: Vec<super::listed::ListedRow> = query
        .order(dsl::id.desc())
        .limit(limit)
        .select(super::listed::columns())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(TaskRow::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_bound_falls_between_the_ids_made_before_and_after_it() {
        let at: chrono::DateTime<chrono::Utc> = "2026-11-27T10:00:00.500Z".parse().unwrap();
        let ms = |t: &str| {
            let t: chrono::DateTime<chrono::Utc> = t.parse().unwrap();
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                t.timestamp() as u64,
                t.timestamp_subsec_nanos(),
            );
            Uuid::new_v7(ts)
        };
        let bound = first_id_at(at);
        assert_eq!(bound.get_version_num(), 7);
        assert!(ms("2026-11-27T10:00:00.499Z") < bound);
        assert!(ms("2026-11-27T10:00:00.500Z") >= bound);
        assert!(ms("2026-11-27T10:00:01Z") > bound);
    }
}
