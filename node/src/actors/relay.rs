//! Relay: every [`EVERY`], each node claims outbox entries past their lease and publishes
//! them ([`crate::publishing`]); one node claims each entry (`FOR UPDATE SKIP LOCKED`).

use super::every::{self, Every, Periodic, Round};
use super::publisher::IsConnected;
use crate::db::store::ClaimDue;
use crate::publishing::{lease_end, message_of, Outbox, LEASE};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// How often each node's relay looks for entries past their lease.
pub const EVERY: Duration = Duration::from_millis(250);
/// Most entries claimed at once.
const CLAIM: i64 = 256;

/// Claims outbox entries past their lease and publishes them.
pub struct Relay {
    outbox: Outbox,
    booted: DateTime<Utc>,
}

impl Relay {
    pub fn new(outbox: Outbox) -> Self {
        Relay {
            outbox,
            booted: Utc::now(),
        }
    }
}

impl Periodic for Relay {
    const WHAT: &'static str = "relay the outbox";

    /// Claim and publish due entries, a batch at a time, while the broker is reachable.
    fn round(&mut self) -> Round<Self> {
        let (outbox, booted) = (self.outbox.clone(), self.booted);
        let work = async move {
            while outbox.publisher.send(IsConnected).await.unwrap_or(false) {
                let claim = ClaimDue {
                    owner: outbox.node.clone(),
                    until: lease_end(LEASE),
                    booted,
                    lease_for: chrono::Duration::from_std(LEASE).unwrap_or_default(),
                    limit: CLAIM,
                };
                let rows = outbox.store.claim_due(claim).await?;
                let n = rows.len();
                if n > 0 {
                    tracing::info!(tasks = n, "relaying tasks from the outbox");
                }
                let tasks = rows.into_iter().map(|r| message_of(r, &outbox.node));
                outbox.publish(tasks.collect()).await;
                if n < CLAIM as usize {
                    break;
                }
            }
            Ok(())
        };
        Box::pin(work.into_actor(self))
    }
}

impl Actor for Relay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        every::start(ctx, Every::new(EVERY));
    }
}
