//! External kinds and their tasks' progress (see [`crate::work`]): the kinds workers
//! registered, and what a worker last said of a task's progress.

use super::schema::{external_kinds, tasks};
use super::store::Store;
use super::DbError;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Register `kinds` (again: seen now).
pub async fn register(conn: &mut AsyncPgConnection, kinds: &[String]) -> QueryResult<usize> {
    let now = Utc::now();
    let rows: Vec<_> = kinds
        .iter()
        .map(|k| {
            (
                external_kinds::name.eq(k),
                external_kinds::registered_at.eq(now),
                external_kinds::seen_at.eq(now),
            )
        })
        .collect();
    diesel::insert_into(external_kinds::table)
        .values(rows)
        .on_conflict(external_kinds::name)
        .do_update()
        .set(external_kinds::seen_at.eq(excluded(external_kinds::seen_at)))
        .execute(conn)
        .await
}

/// The kinds registered and seen since `since`.
pub async fn registered(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> QueryResult<Vec<String>> {
    external_kinds::table
        .filter(external_kinds::seen_at.ge(since))
        .select(external_kinds::name)
        .order(external_kinds::name)
        .load(conn)
        .await
}

/// Note a running task's progress; `false` if it is not running (any more).
pub async fn set_progress(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    percent: i16,
    note: Option<&str>,
) -> QueryResult<bool> {
    let n = diesel::update(tasks::table.find(id))
        .filter(tasks::status.eq(protocol::TaskStatus::Running.as_str()))
        .set((
            tasks::progress.eq(percent),
            tasks::progress_note.eq(note),
            tasks::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

impl Store {
    /// Register external `kinds` (see [`register`]).
    pub async fn register_kinds(&self, kinds: &[String]) -> Result<usize, DbError> {
        self.run(async |c| register(c, kinds).await).await
    }

    /// The external kinds registered since `since`.
    pub async fn registered_kinds(&self, since: DateTime<Utc>) -> Result<Vec<String>, DbError> {
        self.run(async |c| registered(c, since).await).await
    }

    /// Note task `id`'s progress (see [`set_progress`]).
    pub async fn set_progress(
        &self,
        id: Uuid,
        percent: u8,
        note: Option<&str>,
    ) -> Result<bool, DbError> {
        self.run(async |c| set_progress(c, id, percent.into(), note).await)
            .await
    }
}
