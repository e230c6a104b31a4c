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
    query
        .order(dsl::id.desc())
        .limit(limit)
        .select(TaskRow::as_select())
        .load(conn)
        .await
}
