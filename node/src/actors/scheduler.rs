//! Scheduler: every [`EVERY`] each node takes the periodic schedules whose tick is due and
//! accepts their tasks ([`crate::db::firing::fire_due`]); the relays publish them. Nodes
//! take schedules with `SKIP LOCKED`, so each tick makes one task however many nodes run, and
//! the schedules go on while any node is up.

use super::every::{self, Every, Periodic, Round};
use crate::db::Store;
use actix::prelude::*;
use std::time::Duration;

/// How often a node looks for due schedules.
pub const EVERY: Duration = Duration::from_millis(250);
/// Most schedules taken at once.
const TAKE: i64 = 64;

pub struct Scheduler {
    node: String,
    store: Store,
}

impl Scheduler {
    pub fn new(node: String, store: Store) -> Self {
        Scheduler { node, store }
    }
}

impl Periodic for Scheduler {
    const WHAT: &'static str = "fire due schedules";

    fn round(&mut self) -> Round<Self> {
        let (store, node) = (self.store.clone(), self.node.clone());
        let work = async move {
            loop {
                match store.fire_schedules(&node, TAKE).await? {
                    0 => return Ok(()),
                    n => tracing::debug!(tasks = n, "periodic tasks accepted"),
                }
            }
        };
        Box::pin(work.into_actor(self))
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        every::start(ctx, Every::new(EVERY).later());
    }
}
