//! `nodes` and `node_seconds`: each node's word about itself, written every second by its
//! heartbeat, and read back by any node for the fleet's overview.

use super::schema::{node_seconds, nodes};
use super::{DbError, DbPool};
use crate::fleet::recent::Tally;
use crate::fleet::{FORGET_NODE, KEEP_SECONDS, SILENT, WINDOW};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use protocol::fleet::{NodeState, Second};
use std::collections::BTreeMap;

/// One node's handle on the fleet tables. Cheap to clone.
#[derive(Clone)]
pub struct FleetTables {
    pool: DbPool,
}

impl FleetTables {
    pub fn new(pool: DbPool) -> Self {
        FleetTables { pool }
    }

    /// Write this node's state and the tally of the time since its last beat.
    pub async fn beat(&self, state: &NodeState, tally: &Tally) -> Result<(), DbError> {
        let mut conn = self.pool.get().await?;
        let json = serde_json::to_value(state).map_err(|e| DbError::Write(e.to_string()))?;
        diesel::insert_into(nodes::table)
            .values((
                nodes::name.eq(&state.name),
                nodes::seen_at.eq(state.seen_at),
                nodes::state.eq(&json),
            ))
            .on_conflict(nodes::name)
            .do_update()
            .set((nodes::seen_at.eq(state.seen_at), nodes::state.eq(&json)))
            .execute(&mut conn)
            .await?;
        if tally.finished > 0 {
            let latency: Vec<i64> = tally.latency.iter().map(|&n| n as i64).collect();
            diesel::insert_into(node_seconds::table)
                .values((
                    node_seconds::node.eq(&state.name),
                    node_seconds::at.eq(state.seen_at),
                    node_seconds::finished.eq(tally.finished as i64),
                    node_seconds::failed.eq(tally.failed as i64),
                    node_seconds::latency.eq(latency),
                ))
                .on_conflict_do_nothing()
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }

    /// Forget seconds past [`KEEP_SECONDS`] (every node's: one that died leaves its own) and
    /// nodes unseen for [`FORGET_NODE`]. Any node may do it; the rows go by the primary key's
    /// index (it starts with the time).
    pub async fn prune(&self) -> Result<(), DbError> {
        let mut conn = self.pool.get().await?;
        let now = Utc::now();
        diesel::delete(node_seconds::table.filter(node_seconds::at.lt(now - KEEP_SECONDS)))
            .execute(&mut conn)
            .await?;
        diesel::delete(nodes::table.filter(nodes::seen_at.lt(now - FORGET_NODE)))
            .execute(&mut conn)
            .await?;
        Ok(())
    }

    /// Every node seen lately (by name), and the fleet's seconds of the last [`WINDOW`] up to
    /// `now`, oldest first (a second in which nothing finished counts zero).
    pub async fn read(&self, now: DateTime<Utc>) -> Result<(Vec<NodeState>, Vec<Second>), DbError> {
        let mut conn = self.pool.get().await?;
        let rows: Vec<(serde_json::Value, DateTime<Utc>)> = nodes::table
            .filter(nodes::seen_at.gt(now - FORGET_NODE))
            .order(nodes::name)
            .select((nodes::state, nodes::seen_at))
            .load(&mut conn)
            .await?;
        let nodes = rows
            .into_iter()
            .filter_map(|(json, seen_at)| {
                let mut state: NodeState = serde_json::from_value(json).ok()?;
                state.seen_at = seen_at;
                state.up = now - seen_at < SILENT;
                Some(state)
            })
            .collect();
        let since = now - WINDOW;
        let rows: Vec<(DateTime<Utc>, i64, i64, Vec<i64>)> = node_seconds::table
            .filter(node_seconds::at.gt(since))
            .select((
                node_seconds::at,
                node_seconds::finished,
                node_seconds::failed,
                node_seconds::latency,
            ))
            .load(&mut conn)
            .await?;
        Ok((nodes, seconds(since, now, rows)))
    }
}

/// Sum rows into whole seconds from `since` to `now`.
fn seconds(
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    rows: Vec<(DateTime<Utc>, i64, i64, Vec<i64>)>,
) -> Vec<Second> {
    let second = |t: DateTime<Utc>| t.duration_trunc(TimeDelta::seconds(1)).unwrap_or(t);
    let mut by_second: BTreeMap<DateTime<Utc>, Tally> = BTreeMap::new();
    let mut t = second(since) + TimeDelta::seconds(1);
    while t <= now {
        by_second.insert(t, Tally::empty());
        t += TimeDelta::seconds(1);
    }
    for (at, finished, failed, latency) in rows {
        let tally = Tally {
            finished: finished.max(0) as u64,
            failed: failed.max(0) as u64,
            latency: latency.into_iter().map(|n| n.max(0) as u64).collect(),
        };
        by_second
            .entry(second(at))
            .or_insert_with(Tally::empty)
            .add(&tally);
    }
    by_second
        .into_iter()
        .map(|(at, t)| Second {
            at,
            finished: t.finished,
            failed: t.failed,
            p50_ms: t.quantile_ms(0.5),
            p99_ms: t.quantile_ms(0.99),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_several_nodes_in_one_second_are_summed_and_empty_seconds_are_zero() {
        let now: DateTime<Utc> = "2026-11-27T10:00:10.400Z".parse().unwrap();
        let since = now - TimeDelta::seconds(5);
        let mut one = Tally::empty();
        one.finished = 3;
        one.failed = 1;
        one.latency[2] = 3;
        let row = |at: &str, t: &Tally| {
            let latency = t.latency.iter().map(|&n| n as i64).collect();
            (
                at.parse().unwrap(),
                t.finished as i64,
                t.failed as i64,
                latency,
            )
        };
        let rows = vec![
            row("2026-11-27T10:00:08.100Z", &one),
            row("2026-11-27T10:00:08.900Z", &one),
        ];
        let s = seconds(since, now, rows);
        assert_eq!(s.len(), 5, "{s:?}");
        let busy = s.iter().find(|s| s.finished > 0).unwrap();
        assert_eq!(
            busy.at,
            "2026-11-27T10:00:08Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!((busy.finished, busy.failed), (6, 2));
        assert!(busy.p50_ms.is_some());
        assert_eq!(s.iter().map(|s| s.finished).sum::<u64>(), 6);
        assert!(s.windows(2).all(|w| w[0].at < w[1].at));
    }
}
