//! Publishing what the outbox holds. A task is accepted once its `queued` row and its outbox
//! entry are written ([`crate::service`]'s accept); from then on publishing it is the node's
//! duty, whatever becomes of the client's connection. The accepting node publishes it at once
//! (its entry is leased to it for [`LEASE`]) and deletes the entry when the broker confirms;
//! entries past their lease — a task whose node died, lost its broker, or handed it back
//! after a failed publish — are claimed and published by any node's relay
//! ([`crate::actors::relay`]). So a task is published once in the normal case and at least
//! once in any case.

use crate::actors::publisher::{PublishTask, Publisher};
use crate::db::models::TaskRow;
use crate::db::Store;
use crate::mailbox::Settle;
use crate::messages::{PayloadRef, TaskMessage};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// How long an outbox entry stays with the node that took it before any relay may claim it.
/// Longer than a publish can take (`amqp.publish_wait_ms` plus the confirm timeout).
pub const LEASE: Duration = Duration::from_secs(30);
/// Accepted tasks a node publishes at once on its own. Past that (a broker slower than the
/// submissions) a newly accepted task is left to the relay, which claims a batch at a time:
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

/// Publishes outbox entries leased to this node. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    pub node: String,
    /// Permits for publishes in flight ([`MAX_PUBLISHING`]).
    publishing: Arc<Semaphore>,
    pub store: Store,
    pub publisher: Addr<Publisher>,
}

impl Outbox {
    pub fn new(node: String, store: Store, publisher: Addr<Publisher>) -> Outbox {
        Outbox {
            node,
            publishing: Arc::new(Semaphore::new(MAX_PUBLISHING)),
            store,
            publisher,
        }
    }

    /// Publish a task whose row and outbox entry (leased to this node) are written, in the
    /// background, unless [`MAX_PUBLISHING`] are in flight: then it is left to the relay.
    pub async fn publish_soon(&self, task: TaskMessage) {
        match self.publishing.clone().try_acquire_owned() {
            Ok(permit) => {
                let outbox = self.clone();
                actix::spawn(async move {
                    outbox.publish(vec![task]).await;
                    drop(permit);
                });
            }
            // Too many in flight: the relay publishes it (its entry is due at once).
            Err(_) => self.hand_back(vec![task.id], Duration::ZERO).await,
        }
    }

    /// Make outbox entries due for any node's relay after `wait` (if this fails, they wait
    /// for their lease to end).
    async fn hand_back(&self, ids: Vec<Uuid>, wait: Duration) {
        if ids.is_empty() {
            return;
        }
        if let Err(e) = self.store.unpublished(&ids, lease_end(wait)).await {
            tracing::warn!(error = %e, "unpublished tasks wait for their lease to end");
        }
    }

    /// Publish tasks in the outbox (leased to this node); delete the entries the broker
    /// confirmed, hand back the others.
    #[tracing::instrument(level = "debug", skip_all, fields(tasks = tasks.len()))]
    pub async fn publish(&self, tasks: Vec<TaskMessage>) {
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
        let sent = futures_util::future::join_all(
            tasks
                .into_iter()
                .map(|task| self.publisher.send(PublishTask { task })),
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
            if let Err(e) = self.store.published(done).await {
                tracing::warn!(error = %e, "published tasks stay in the outbox (they may be sent again)");
            }
        }
        self.hand_back(again, Duration::ZERO).await;
        self.hand_back(unsure, UNSURE_WAIT).await;
    }
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
        key: row.key,
    }
}
