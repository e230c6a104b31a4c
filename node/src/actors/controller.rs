//! Controller: keeps a node's [`Control`] in step with the fleet's. Every [`EVERY`] it reads
//! which lanes and kinds are paused (an admin's `PAUSE` on any node reaches every node within
//! that), makes the parked tasks of whatever is no longer paused due again (so a `RESUME` is
//! never missed, even one that raced a delivery being parked), and tells the runs in progress
//! here whose task was cancelled on another node to stop. Once a minute it forgets
//! idempotency keys past `keys.retention_secs`.

use super::persister::control::{CancelledAmong, ListPaused, PruneKeys, ReleaseParked};
use super::persister::Persister;
use super::Settle;
use crate::control::Control;
use actix::prelude::*;
use std::time::Duration;

/// How often the controller looks.
pub const EVERY: Duration = Duration::from_millis(500);
/// Looks between prunes of old keys.
const PRUNE_EVERY: u32 = 120;

pub struct Controller {
    persister: Addr<Persister>,
    control: Control,
    keys_retention: chrono::Duration,
    rounds: u32,
    busy: bool,
}

impl Controller {
    pub fn new(persister: Addr<Persister>, control: Control, keys_retention: Duration) -> Self {
        Controller {
            persister,
            control,
            keys_retention: chrono::Duration::from_std(keys_retention)
                .unwrap_or(chrono::Duration::MAX),
            rounds: 0,
            busy: false,
        }
    }

    fn look(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        self.rounds = self.rounds.wrapping_add(1);
        let prune = self.rounds % PRUNE_EVERY == 1;
        let (persister, control) = (self.persister.clone(), self.control.clone());
        let before = chrono::Utc::now() - self.keys_retention;
        let work = async move {
            match persister.send(ListPaused).await.settle() {
                Ok(targets) => control.paused.set(targets),
                Err(e) => tracing::debug!(error = %e, "paused lanes and kinds not read"),
            }
            let held = control.paused.held_kinds();
            match persister.send(ReleaseParked(held)).await.settle() {
                Ok(0) => {}
                Ok(n) => tracing::info!(tasks = n, "parked tasks released"),
                Err(e) => tracing::debug!(error = %e, "parked tasks not released"),
            }
            let running = control.running.ids();
            if !running.is_empty() {
                match persister.send(CancelledAmong(running)).await.settle() {
                    Ok(ids) => {
                        for id in ids {
                            control.running.cancel(id);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "cancellations not read"),
                }
            }
            if prune {
                if let Err(e) = persister.send(PruneKeys(before)).await.settle() {
                    tracing::debug!(error = %e, "old idempotency keys not pruned");
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|_, me, _| me.busy = false));
    }
}

impl Actor for Controller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.look(ctx);
        ctx.run_interval(EVERY, |me, ctx| me.look(ctx));
    }
}
