//! The journal of multipart uploads in progress (`uploads`): written when a node starts one,
//! deleted when it completes or aborts it, so that uploads a dead node left open can be found
//! and aborted (S3 has no cheap "uploads older than" query, and not every store lists them).

use super::schema::uploads;
use super::{DbError, DbPool};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

/// A node's handle on the journal. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    pool: DbPool,
    node: String,
}

/// An upload left open.
#[derive(Debug, Queryable)]
pub struct OpenUpload {
    pub upload_id: String,
    pub key: String,
}

impl Journal {
    pub fn new(pool: DbPool, node: &str) -> Self {
        Journal {
            pool,
            node: node.to_string(),
        }
    }

    /// An upload of `key` was started.
    pub async fn begin(&self, upload_id: &str, key: &str) -> Result<(), DbError> {
        let mut conn = self.pool.get().await?;
        diesel::insert_into(uploads::table)
            .values((
                uploads::upload_id.eq(upload_id),
                uploads::key.eq(key),
                uploads::node.eq(&self.node),
            ))
            .on_conflict_do_nothing()
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// An upload was completed or aborted.
    pub async fn end(&self, upload_id: &str) -> Result<(), DbError> {
        let mut conn = self.pool.get().await?;
        diesel::delete(uploads::table.find(upload_id))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// Uploads left open: those this node started before `booted` (it died with them open),
    /// and any node's started before `older_than`.
    pub async fn stale(
        &self,
        booted: DateTime<Utc>,
        older_than: DateTime<Utc>,
    ) -> Result<Vec<OpenUpload>, DbError> {
        let mut conn = self.pool.get().await?;
        let mine = uploads::node
            .eq(&self.node)
            .and(uploads::started_at.lt(booted));
        Ok(uploads::table
            .filter(mine.or(uploads::started_at.lt(older_than)))
            .select((uploads::upload_id, uploads::key))
            .load(&mut conn)
            .await?)
    }
}
