//! Relay: publishes accepted tasks. A task is accepted once its `queued` row and its outbox
//! entry are written ([`accept`]); from then on publishing it is the node's duty, whatever
//! becomes of the client's connection. The accepting node publishes it at once (its entry is
//! leased to it for [`LEASE`]) and deletes the entry when the broker confirms. Every
//! [`EVERY`], the [`Relay`] of each node claims entries past their lease — a task whose node
//! died, lost its broker, or handed it back after a failed publish — and publishes them; one
//! node claims each entry (`FOR UPDATE SKIP LOCKED`), so a task is published once in the
//! normal case and at least once in any case.

use super::persister::{Accept, ClaimDue, Persister, Published, Unpublished};
use super::publisher::{IsConnected, PublishTask, Publisher};
use super::Settle;
use crate::db::models::TaskRow;
use crate::db::DbError;
use crate::messages::{PayloadRef, TaskMessage};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long an outbox entry stays with the node that took it before any relay may claim it.
/// Longer than a publish can take (`amqp.publish_wait_ms` plus the confirm timeout).
pub const LEASE: Duration = Duration::from_secs(30);
/// How often each node's relay looks for entries past their lease.
pub const EVERY: Duration = Duration::from_millis(250);
/// Most entries claimed at once.
const CLAIM: i64 = 256;
/// Accepted tasks a node publishes at once on its own. Past that (a broker slower than the
/// submissions) a newly accepted task is left to the relay, which takes [`CLAIM`] at a time:
/// memory stays bounded however fast clients submit.
pub const MAX_PUBLISHING: usize = 8192;
/// A publish that failed without knowing whether the broker took the message (a lost
/// connection, a confirm that did not come) is published again only after this: most such
/// messages did arrive, and their task's row has moved on by then, so they are not sent twice.
pub const UNSURE_WAIT: Duration = Duration::from_secs(5);

/// When a lease taken now ends.
pub fn lease_end(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

/// Whom the relay works with.
#[derive(Clone)]
pub struct Parts {
    pub node: String,
    /// Permits for publishes in flight ([`MAX_PUBLISHING`]).
    pub publishing: Arc<Semaphore>,
    pub persister: Addr<Persister>,
    pub publisher: Addr<Publisher>,
}

/// Accept `task`: write its row and outbox entry, then publish it in the background (the
/// caller may go away meanwhile). Once this returns `Ok`, the task will be published.
pub async fn accept(parts: &Parts, task: TaskMessage) -> Result<(), DbError> {
    let accept = Accept {
        task: task.clone(),
        owner: parts.node.clone(),
        due: lease_end(LEASE),
    };
    parts.persister.send(accept).await.settle()?;
    publish_accepted(parts, task).await;
    Ok(())
}

/// Publish a task whose row and outbox entry (leased to this node) are written, in the
/// background, unless [`MAX_PUBLISHING`] are in flight: then it is left to the relay.
pub async fn publish_accepted(parts: &Parts, task: TaskMessage) {
    match parts.publishing.clone().try_acquire_owned() {
        Ok(permit) => {
            let parts = parts.clone();
            actix::spawn(async move {
                publish(parts, vec![task]).await;
                drop(permit);
            });
        }
        // Too many in flight: the relay publishes it (its entry is due at once).
        Err(_) => hand_back(parts, vec![task.id], Duration::ZERO).await,
    }
}

/// Make outbox entries due for any node's relay after `wait` (if this fails, they wait for
/// their lease to end).
async fn hand_back(parts: &Parts, ids: Vec<uuid::Uuid>, wait: Duration) {
    if ids.is_empty() {
        return;
    }
    let due = lease_end(wait);
    if let Err(e) = parts
        .persister
        .send(Unpublished { ids, due })
        .await
        .settle()
    {
        tracing::warn!(error = %e, "unpublished tasks wait for their lease to end");
    }
}

/// Publish tasks in the outbox (leased to this node); delete the entries the broker
/// confirmed, hand back the others.
pub async fn publish(parts: Parts, tasks: Vec<TaskMessage>) {
    let ids: Vec<uuid::Uuid> = tasks.iter().map(|t| t.id).collect();
    let sent = futures_util::future::join_all(
        tasks
            .into_iter()
            .map(|task| parts.publisher.send(PublishTask { task })),
    )
    .await;
    let (mut done, mut again, mut unsure) = (Vec::new(), Vec::new(), Vec::new());
    for (id, result) in ids.into_iter().zip(sent) {
        match result.settle() {
            Ok(()) => done.push(id),
            Err(e) if e.is_definite() => again.push(id),
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "publish unconfirmed; the relay sends it again later");
                unsure.push(id)
            }
        }
    }
    if !done.is_empty() {
        if let Err(e) = parts.persister.send(Published(done)).await.settle() {
            tracing::warn!(error = %e, "published tasks stay in the outbox (they may be sent again)");
        }
    }
    hand_back(&parts, again, Duration::ZERO).await;
    hand_back(&parts, unsure, UNSURE_WAIT).await;
}

/// The message of a task as its row holds it (published by the relay, or by `RETRY`).
pub fn message_of(row: TaskRow, node: &str) -> TaskMessage {
    let payload = match (row.payload, row.payload_key) {
        (_, Some(key)) => PayloadRef::Object {
            key,
            size: row.payload_size as u64,
        },
        (data, None) => PayloadRef::Inline {
            data: data.unwrap_or_default(),
        },
    };
    TaskMessage {
        id: row.id,
        kind: row.kind,
        payload,
        submitted_by: node.to_string(),
        reply_to: None,
        accepted_at: Some(row.created_at),
        owner: row.owner,
        priority: row.priority.clamp(0, 9) as u8,
    }
}

/// Claims outbox entries past their lease and publishes them.
pub struct Relay {
    parts: Parts,
    booted: DateTime<Utc>,
    busy: bool,
}

impl Relay {
    pub fn new(parts: Parts) -> Self {
        Relay {
            parts,
            booted: Utc::now(),
            busy: false,
        }
    }

    /// Claim and publish due entries, a batch at a time, while the broker is reachable.
    fn sweep(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let (parts, booted) = (self.parts.clone(), self.booted);
        async move {
            while parts.publisher.send(IsConnected).await.unwrap_or(false) {
                let claim = ClaimDue {
                    owner: parts.node.clone(),
                    until: lease_end(LEASE),
                    booted,
                    lease_for: chrono::Duration::from_std(LEASE).unwrap_or_default(),
                    limit: CLAIM,
                };
                let rows = match parts.persister.send(claim).await.settle() {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::debug!(error = %e, "outbox claim failed");
                        break;
                    }
                };
                let n = rows.len();
                if n > 0 {
                    tracing::info!(tasks = n, "relaying tasks from the outbox");
                }
                let tasks = rows.into_iter().map(|r| message_of(r, &parts.node));
                publish(parts.clone(), tasks.collect()).await;
                if n < CLAIM as usize {
                    break;
                }
            }
        }
        .into_actor(self)
        .map(|_, act, _| act.busy = false)
        .spawn(ctx);
    }
}

impl Actor for Relay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.sweep(ctx);
        ctx.run_interval(EVERY, |act, ctx| act.sweep(ctx));
    }
}
