//! Heartbeat: every second a node writes its state (dependencies, load, lanes; read from
//! [`LocalNode`]) and the tasks it finished since the last beat to PostgreSQL
//! ([`crate::db::fleet`]), so that any node can show the whole fleet. Once a minute it prunes
//! old seconds and forgotten nodes. A beat that fails (the database is down) is skipped and
//! its tally is lost: these are views, not records.

use super::every::{self, Every, Periodic, Round};
use crate::db::fleet::FleetTables;
use crate::fleet::local::LocalNode;
use actix::prelude::*;
use std::time::Duration;

/// How often a node speaks.
pub const EVERY: Duration = Duration::from_secs(1);
/// Beats between prunes.
const PRUNE_EVERY: u32 = 60;

pub struct Heartbeat {
    local: LocalNode,
    tables: FleetTables,
    beats: u32,
}

impl Heartbeat {
    pub fn new(local: LocalNode, tables: FleetTables) -> Self {
        Heartbeat {
            local,
            tables,
            beats: 0,
        }
    }
}

impl Periodic for Heartbeat {
    const WHAT: &'static str = "write this node's heartbeat";

    fn round(&mut self) -> Round<Self> {
        self.beats = self.beats.wrapping_add(1);
        let prune = self.beats % PRUNE_EVERY == 1;
        let (local, tables) = (self.local.clone(), self.tables.clone());
        let work = async move {
            let state = local.state().await;
            let tally = local.metrics.recent.take();
            tables.beat(&state, &tally).await?;
            if prune {
                tables.prune().await?;
            }
            Ok(())
        };
        Box::pin(work.into_actor(self))
    }
}

impl Actor for Heartbeat {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        every::start(ctx, Every::new(EVERY));
    }
}
