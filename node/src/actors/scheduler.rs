//! Scheduler: every [`EVERY`] each node takes the periodic schedules whose tick is due and
//! accepts their tasks ([`crate::db::schedules::fire_due`]); the relays publish them. Nodes
//! take schedules with `SKIP LOCKED`, so each tick makes one task however many nodes run, and
//! the schedules go on while any node is up.

use super::persister::control::FireSchedules;
use super::persister::Persister;
use super::Settle;
use actix::prelude::*;
use std::time::Duration;

/// How often a node looks for due schedules.
pub const EVERY: Duration = Duration::from_millis(250);
/// Most schedules taken at once.
const TAKE: i64 = 64;

pub struct Scheduler {
    node: String,
    persister: Addr<Persister>,
    busy: bool,
}

impl Scheduler {
    pub fn new(node: String, persister: Addr<Persister>) -> Self {
        Scheduler {
            node,
            persister,
            busy: false,
        }
    }

    fn look(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (persister, node) = (self.persister.clone(), self.node.clone());
        let work = async move {
            loop {
                let fire = FireSchedules {
                    node: node.clone(),
                    limit: TAKE,
                };
                match persister.send(fire).await.settle() {
                    Ok(0) => break,
                    Ok(n) => tracing::debug!(tasks = n, "periodic tasks accepted"),
                    Err(e) => {
                        tracing::debug!(error = %e, "schedules not read");
                        break;
                    }
                }
            }
        };
        ctx.spawn(work.into_actor(self).map(|_, me, _| me.busy = false));
    }
}

impl Actor for Scheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(EVERY, |me, ctx| me.look(ctx));
    }
}
