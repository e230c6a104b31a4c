//! Controller: keeps a node's [`Control`] in step with the fleet's. Every [`EVERY`] it reads
//! which lanes and kinds are paused (an admin's `PAUSE` on any node reaches every node within
//! that), makes the parked tasks of whatever is no longer paused due again (so a `RESUME` is
//! never missed, even one that raced a delivery being parked), and tells the runs in progress
//! here whose task was cancelled on another node to stop. Once a minute it forgets
//! idempotency keys past `keys.retention_secs`.

use super::every::{self, Every, Periodic, Round};
use crate::control::Control;
use crate::db::Store;
use actix::prelude::*;
use std::time::Duration;

/// How often the controller looks.
pub const EVERY: Duration = Duration::from_millis(500);
/// Looks between prunes of old keys.
const PRUNE_EVERY: u32 = 120;

pub struct Controller {
    store: Store,
    control: Control,
    keys_retention: chrono::Duration,
    rounds: u32,
}

impl Controller {
    pub fn new(store: Store, control: Control, keys_retention: Duration) -> Self {
        Controller {
            store,
            control,
            keys_retention: chrono::Duration::from_std(keys_retention)
                .unwrap_or(chrono::Duration::MAX),
            rounds: 0,
        }
    }
}

impl Periodic for Controller {
    const WHAT: &'static str = "follow the fleet's pauses and cancellations";

    fn round(&mut self) -> Round<Self> {
        self.rounds = self.rounds.wrapping_add(1);
        let prune = self.rounds % PRUNE_EVERY == 1;
        let (store, control) = (self.store.clone(), self.control.clone());
        let before = chrono::Utc::now() - self.keys_retention;
        let work = async move {
            control.paused.set(store.list_paused().await?);
            let held = control.paused.held_kinds();
            match store.release_parked(&held).await? {
                0 => {}
                n => tracing::info!(tasks = n, "parked tasks released"),
            }
            let running = control.running.ids();
            if !running.is_empty() {
                for id in store.cancelled_among(&running).await? {
                    control.running.cancel(id);
                }
            }
            if prune {
                store.prune_keys(before).await?;
            }
            Ok(())
        };
        Box::pin(work.into_actor(self))
    }
}

impl Actor for Controller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        every::start(ctx, Every::new(EVERY));
    }
}
