//! Retention: at start and every [`EVERY`], one node of the fleet (an advisory lock) makes
//! the day partitions of `tasks` for the days ahead, and, with `retention.days` set, drops
//! the days older than that with the bucket objects of their finished tasks
//! ([`crate::db::retention`]): constant work per day, whatever the day held.

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
    busy: bool,
}

impl Retention {
    pub fn new(pool: DbPool, storage: Storage, days: u64) -> Self {
        Retention {
            pool,
            storage,
            days,
            busy: false,
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (pool, storage, days) = (self.pool.clone(), self.storage.clone(), self.days);
        let work = async move {
            let done = maintain(&pool, &storage, days).await;
            if let Err(e) = &done {
                tracing::warn!(error = %e, again = ?AGAIN, "task partitions not maintained this round");
            }
            done.is_ok()
        };
        ctx.spawn(work.into_actor(self).map(|done, me, ctx| {
            me.busy = false;
            if !done {
                ctx.run_later(AGAIN, |me, ctx| me.round(ctx));
            }
        }));
    }
}

impl Actor for Retention {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.round(ctx);
        ctx.run_interval(EVERY, |me, ctx| me.round(ctx));
    }
}

/// One round, if this node gets the lock.
async fn maintain(pool: &DbPool, storage: &Storage, days: u64) -> Result<(), crate::db::DbError> {
    let mut conn = pool.get().await?;
    if !retention::try_lock(&mut conn).await? {
        return Ok(());
    }
    let done = keep_days(&mut conn, storage, days).await;
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
        let keys = retention::object_keys(conn, &name).await?;
        let objects = keys.len();
        delete_objects(storage, keys).await;
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
