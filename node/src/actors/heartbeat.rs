//! Heartbeat: every second a node writes its state (dependencies, load, lanes) and the
//! tasks it finished since the last beat to PostgreSQL ([`crate::db::fleet`]), so that any
//! node can show the whole fleet. Once a minute it prunes old seconds and forgotten nodes.
//! A beat that fails (the database is down) is skipped and its tally is lost: these are
//! views, not records.

use crate::service::Services;
use actix::prelude::*;
use std::time::Duration;

/// How often a node speaks.
pub const EVERY: Duration = Duration::from_secs(1);
/// Beats between prunes.
const PRUNE_EVERY: u32 = 60;

pub struct Heartbeat {
    svc: Services,
    beats: u32,
    /// A beat is in progress (a slow database does not pile them up).
    beating: bool,
}

impl Heartbeat {
    pub fn new(svc: Services) -> Self {
        Heartbeat {
            svc,
            beats: 0,
            beating: false,
        }
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        if self.beating {
            return;
        }
        self.beating = true;
        self.beats = self.beats.wrapping_add(1);
        let prune = self.beats % PRUNE_EVERY == 1;
        let svc = self.svc.clone();
        let work = async move {
            let state = svc.node_state().await;
            let tally = svc.handles.metrics.recent.take();
            let tables = &svc.fleet.tables;
            if let Err(e) = tables.beat(&state, &tally).await {
                tracing::debug!(error = %e, "heartbeat not written");
            }
            if prune {
                if let Err(e) = tables.prune().await {
                    tracing::debug!(error = %e, "old seconds not pruned");
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|_, me, _| me.beating = false));
    }
}

impl Actor for Heartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.beat(ctx);
        ctx.run_interval(EVERY, Self::beat);
    }
}
