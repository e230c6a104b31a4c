//! The columns of a task a listing shows (`GET /v1/tasks`, `DEAD`): a [`TaskRow`] without its
//! payload and inline result bytes.

use super::models::{StatusColumn, TaskRow};
use super::schema::tasks;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The columns of a task a listing shows: a [`TaskRow`] without its payload and inline result
/// bytes (a page of a thousand tasks would otherwise carry up to 128 MiB of them);
/// `result_size` says how large an inline result is.
pub fn columns() -> ListedColumns {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Binary, Nullable};
    use tasks::dsl as t;
    (
        t::id,
        t::kind,
        t::status,
        sql::<Nullable<Binary>>("NULL"),
        t::payload_key,
        t::payload_size,
        sql::<Nullable<Binary>>("NULL"),
        t::result_key,
        sql::<Nullable<BigInt>>("COALESCE(result_size, octet_length(result))"),
        t::error,
        t::attempts,
        t::submitted_by,
        t::node,
        (
            t::created_at,
            t::started_at,
            t::finished_at,
            t::updated_at,
            t::next_attempt_at,
            t::owner,
            t::priority,
            t::run_at,
            t::key,
        ),
    )
}

type NullBytes =
    diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Binary>>;

/// See [`columns`].
pub type ListedColumns = (
    tasks::id,
    tasks::kind,
    tasks::status,
    NullBytes,
    tasks::payload_key,
    tasks::payload_size,
    NullBytes,
    tasks::result_key,
    diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::BigInt>>,
    tasks::error,
    tasks::attempts,
    tasks::submitted_by,
    tasks::node,
    (
        tasks::created_at,
        tasks::started_at,
        tasks::finished_at,
        tasks::updated_at,
        tasks::next_attempt_at,
        tasks::owner,
        tasks::priority,
        tasks::run_at,
        tasks::key,
    ),
);

/// A row of [`columns`], as loaded.
pub type ListedRow = (
    Uuid,
    String,
    StatusColumn,
    Option<Vec<u8>>,
    Option<String>,
    i64,
    Option<Vec<u8>>,
    Option<String>,
    Option<i64>,
    Option<String>,
    i32,
    String,
    Option<String>,
    (
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Option<String>,
        i16,
        Option<DateTime<Utc>>,
        Option<String>,
    ),
);

impl From<ListedRow> for TaskRow {
    fn from(r: ListedRow) -> Self {
        let times = r.13;
        TaskRow {
            id: r.0,
            kind: r.1,
            status: r.2.into(),
            payload: r.3,
            payload_key: r.4,
            payload_size: r.5,
            result: r.6,
            result_key: r.7,
            result_size: r.8,
            error: r.9,
            attempts: r.10,
            submitted_by: r.11,
            node: r.12,
            created_at: times.0,
            started_at: times.1,
            finished_at: times.2,
            updated_at: times.3,
            next_attempt_at: times.4,
            owner: times.5,
            priority: times.6,
            run_at: times.7,
            key: times.8,
            progress: None,
            progress_note: None,
        }
    }
}
