//! Retention: at start and every [`EVERY`], one node of the fleet (an advisory lock) makes
//! the day partitions of `tasks` for the days ahead, and, with `retention.days` set, drops
//! the days older than that with the bucket objects of their finished tasks
//! ([`crate::db::retention`]): constant work per day, whatever the day held.

use super::every::{self, Every, Periodic, Round};
use crate::db::{retention, DbPool};
use crate::storage::Storage;
use actix::prelude::*;
use chrono::Utc;
use futures_util::StreamExt;
use std::time::Duration;

/// How often a node tries.
pub const EVERY: Duration = Duration::from_secs(600);
/// How soon a round that did not finish (a partition's lock not had in time, behind a long
/// reader; the database away) is tried again.
pub const AGAIN: Duration = Duration::from_secs(10);
/// Object deletions in flight at once.
const DELETING: usize = 16;

pub struct Retention {
    pool: DbPool,
    storage: Storage,
    /// Days kept; 0 keeps every task.
    days: u64,
    /// Objects no row names are deleted once this old.
    orphans_after: Duration,
}

impl Retention {
    pub fn new(pool: DbPool, storage: Storage, days: u64, orphans_after: Duration) -> Self {
        Retention {
            pool,
            storage,
            days,
            orphans_after,
        }
    }
}

impl Periodic for Retention {
    const WHAT: &'static str = "maintain the task partitions";

    fn round(&mut self) -> Round<Self> {
        let (pool, storage, days) = (self.pool.clone(), self.storage.clone(), self.days);
        let orphans_after = self.orphans_after;
        let work = async move { Ok(maintain(&pool, &storage, days, orphans_after).await?) };
        Box::pin(work.into_actor(self))
    }
}

impl Actor for Retention {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        every::start(ctx, Every::new(EVERY).again(AGAIN));
    }
}

/// One round, if this node gets the lock.
async fn maintain(
    pool: &DbPool,
    storage: &Storage,
    days: u64,
    orphans_after: Duration,
) -> Result<(), crate::db::DbError> {
    let mut conn = pool.get().await?;
    if !retention::try_lock(&mut conn).await? {
        return Ok(());
    }
    let mut done = keep_days(&mut conn, storage, days).await;
    if done.is_ok() {
        done = sweep_orphans(&mut conn, storage, orphans_after)
            .await
            .map(drop);
    }
    retention::unlock(&mut conn).await?;
    done
}

async fn keep_days(
    conn: &mut diesel_async::AsyncPgConnection,
    storage: &Storage,
    days: u64,
) -> Result<(), crate::db::DbError> {
    let today = Utc::now().date_naive();
    let tomorrow = today + chrono::Days::new(1);
    let made =
        retention::make_days(conn, tomorrow, today + chrono::Days::new(retention::AHEAD)).await?;
    if !made.is_empty() {
        tracing::info!(partitions = ?made, "task partitions made");
    }
    if days == 0 {
        return Ok(());
    }
    let before = today - chrono::Days::new(days);
    for name in retention::expired(conn, before).await? {
        retention::detach(conn, &name).await?;
        let (mut objects, mut after) = (0, None);
        loop {
            let (keys, last) = retention::object_keys(conn, &name, after).await?;
            objects += keys.len();
            delete_objects(storage, keys).await;
            match last {
                Some(last) => after = Some(last),
                None => break,
            }
        }
        retention::drop_partition(conn, &name).await?;
        tracing::info!(partition = %name, objects, "tasks past retention dropped");
    }
    let cutoff = before.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let keys = retention::expire_default(conn, cutoff).await?;
    delete_objects(storage, keys).await;
    Ok(())
}

/// Delete objects, some at once; one that cannot be deleted is left (it costs only space).
async fn delete_objects(storage: &Storage, keys: Vec<String>) {
    futures_util::stream::iter(keys)
        .for_each_concurrent(DELETING, |key| async move {
            if let Err(e) = storage.delete(&key).await {
                tracing::warn!(%key, error = %e, "object past retention not deleted");
            }
        })
        .await;
}

/// Pages of a listing looked at in one round (a thousand objects each).
const ORPHAN_PAGES: usize = 50;

/// Delete the payloads and results in the bucket that no row names and that are older than
/// `older_than` (a submission refused after its upload, a node that died between an upload
/// and its row): kept while young, since a waiting submission's row is written after its
/// payload.
async fn sweep_orphans(
    conn: &mut diesel_async::AsyncPgConnection,
    storage: &Storage,
    older_than: Duration,
) -> Result<usize, crate::db::DbError> {
    let before =
        Utc::now() - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let mut swept = 0;
    for name in ["payloads/", "results/"] {
        let mut from = None;
        for _ in 0..ORPHAN_PAGES {
            let (listed, next) = match storage.list_page(name, from.take()).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the bucket for objects no task names");
                    return Ok(swept);
                }
            };
            let old: Vec<(uuid::Uuid, String)> = listed
                .into_iter()
                .filter(|o| o.modified.is_some_and(|m| m < before))
                .filter_map(|o| {
                    let id = o.key.rsplit('/').next()?.parse().ok()?;
                    Some((id, o.key))
                })
                .collect();
            let ids: Vec<uuid::Uuid> = old.iter().map(|(id, _)| *id).collect();
            let named: std::collections::HashSet<uuid::Uuid> = retention::with_rows(conn, &ids)
                .await?
                .into_iter()
                .collect();
            let orphans: Vec<String> = old
                .into_iter()
                .filter(|(id, _)| !named.contains(id))
                .map(|(_, key)| key)
                .collect();
            swept += orphans.len();
            delete_objects(storage, orphans).await;
            match next {
                Some(token) => from = Some(token),
                None => break,
            }
        }
    }
    if swept > 0 {
        tracing::info!(objects = swept, "deleted objects no task names");
    }
    Ok(swept)
}
