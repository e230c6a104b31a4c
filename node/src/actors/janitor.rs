//! Janitor: every `janitor.every_secs`, puts back what nothing else would move again.
//!
//! - **Dead letters.** RabbitMQ moves a message delivered `amqp.delivery_limit` times to its
//!   queue's `.dead` queue. Each node empties those queues: every task of such a message goes
//!   back through the outbox (its row made `queued` again, or written if it had none: a
//!   waiting submission's), so the limit never loses an accepted task; the attempt count in
//!   the row still bounds its runs. A message whose tasks have all ended, or that no node can
//!   read, is moved to the lane's `.buried` queue for an operator.
//! - **Stuck rows** (one node of the fleet at a time, an advisory lock): a row `running` or
//!   `queued` with no outbox entry and no message ([`crate::db::rescue`]) past its kind's
//!   timeout and `janitor.grace_secs` is put back through the outbox, or made `dead` when its
//!   attempts are spent. A `queued` row counts only while its lane's queues have been empty
//!   for two of the lane's longest timeouts and the grace: a message of it could not still be
//!   waiting for a worker.
//!
//! Both count in `tasknode_tasks_rescued_total`.

use super::every::{self, Every, Periodic, Round};
use crate::amqp::Broker;
use crate::db::models::NewTask;
use crate::db::outbox::Lease;
use crate::db::rescue::{self, Cutoffs};
use crate::db::tasks::insert_many;
use crate::db::{DbError, DbPool};
use crate::lanes::{band_queues, Lanes};
use crate::retry::{self, RetryPolicy};
use actix::prelude::*;
use chrono::Utc;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::{Channel, Connection};
use protocol::TaskStatus;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Dead letters taken from one queue in one round.
const DEAD_PER_ROUND: usize = 256;
/// Stuck rows handled in one round.
const STUCK_PER_ROUND: i64 = 256;

#[derive(Debug, thiserror::Error)]
pub enum JanitorError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ did not confirm a message moved to {0}")]
    NotConfirmed(String),
}

impl From<diesel::result::Error> for JanitorError {
    fn from(e: diesel::result::Error) -> Self {
        JanitorError::Db(DbError::Query(e))
    }
}

/// What a round needs; cheap to clone.
#[derive(Clone)]
pub struct Parts {
    pub pool: DbPool,
    pub broker: Broker,
    pub node: String,
    pub lanes: Lanes,
    pub policy: Arc<RetryPolicy>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub grace: Duration,
    pub every: Duration,
}

pub struct Janitor {
    parts: Parts,
    /// State kept between rounds (taken by a round in progress).
    state: Option<State>,
}

/// The janitor's connection, and since when each lane's queues have been seen empty.
#[derive(Default)]
struct State {
    link: Option<(Connection, Channel)>,
    empty_since: HashMap<String, Instant>,
}

impl Janitor {
    pub fn new(parts: Parts) -> Self {
        Janitor {
            parts,
            state: Some(State::default()),
        }
    }
}

impl Periodic for Janitor {
    const WHAT: &'static str = "empty dead-letter queues and rescue stuck tasks";

    fn round(&mut self) -> Round<Self> {
        let Some(mut state) = self.state.take() else {
            return Box::pin(fut::ready(Ok(()))); // cannot happen: rounds run one at a time
        };
        let parts = self.parts.clone();
        let work = async move {
            let done = round(&parts, &mut state).await;
            if done.is_err() {
                state.link = None;
            }
            (state, done)
        };
        Box::pin(work.into_actor(self).map(|(state, done), me, _| {
            me.state = Some(state);
            Ok(done?)
        }))
    }
}

impl Actor for Janitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        every::start(ctx, Every::new(self.parts.every).later());
    }
}

async fn round(parts: &Parts, state: &mut State) -> Result<(), JanitorError> {
    let channel = match &state.link {
        Some((conn, ch)) if conn.status().connected() && ch.status().connected() => ch.clone(),
        _ => {
            let conn = parts
                .broker
                .connect(&format!("{}-janitor", parts.node))
                .await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            state.link = Some((conn, ch.clone()));
            ch
        }
    };
    let mut rescued = 0;
    for lane in parts.lanes.all() {
        for band in band_queues(&lane.queue) {
            rescued += dead_letters(parts, &channel, &band).await?;
        }
    }
    // External kinds met here: their queues are made when first met, so made sure of here.
    let topology = parts.lanes.topology();
    for lane in parts.lanes.external() {
        for band in band_queues(&lane.queue) {
            topology.declare_lane(&channel, &band).await?;
            rescued += dead_letters(parts, &channel, &band).await?;
        }
    }
    let idle = idle_kinds(parts, &channel, &mut state.empty_since).await?;
    rescued += stuck_rows(parts, &idle).await?;
    if rescued > 0 {
        parts.metrics.rescued.inc_by(rescued as u64);
    }
    Ok(())
}

/// Empty the dead-letter queue of `queue`; answers how many tasks went back to the outbox.
async fn dead_letters(
    parts: &Parts,
    channel: &Channel,
    queue: &str,
) -> Result<usize, JanitorError> {
    let dead = retry::dead_queue(queue);
    let mut rescued = 0;
    for _ in 0..DEAD_PER_ROUND {
        let Some(message) = channel
            .basic_get(dead.as_str().into(), BasicGetOptions::default())
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        match dead_letter(parts, channel, queue, &delivery).await {
            Ok(n) => {
                rescued += n;
                delivery.acker.ack(BasicAckOptions::default()).await?;
            }
            Err(e) => {
                let back = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                let _ = delivery.acker.nack(back).await;
                return Err(e);
            }
        }
    }
    Ok(rescued)
}

/// One dead letter: its tasks back through the outbox (answers how many), or the message
/// moved to the buried queue when none of its tasks is left to run.
async fn dead_letter(
    parts: &Parts,
    channel: &Channel,
    queue: &str,
    delivery: &lapin::message::Delivery,
) -> Result<usize, JanitorError> {
    let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
    let tasks = crate::messages::decode_tasks(kind, &delivery.data).unwrap_or_default();
    let mut rescued = 0;
    if !tasks.is_empty() {
        let mut conn = parts.pool.get().await.map_err(DbError::from)?;
        let rows: Vec<NewTask<'_>> = tasks.iter().map(NewTask::of).collect();
        let lease = Lease {
            owner: crate::db::control::NOBODY,
            due: Utc::now(),
        };
        // A task without a row (a waiting submission's) gets one, queued in the outbox.
        let new = insert_many(&mut conn, &rows, Some(lease)).await?;
        let known: Vec<uuid::Uuid> = tasks
            .iter()
            .map(|t| t.id)
            .filter(|id| !new.contains(id))
            .collect();
        let back = rescue::requeue(&mut conn, &known).await?;
        rescued = new.len() + back.len();
    }
    if rescued > 0 {
        tracing::warn!(
            queue,
            tasks = rescued,
            "message over the delivery limit; its tasks go back through the outbox"
        );
        return Ok(rescued);
    }
    let buried = retry::buried_queue(queue);
    let confirm = channel
        .basic_publish(
            "".into(),
            buried.as_str().into(),
            BasicPublishOptions::default(),
            &delivery.data,
            delivery.properties.clone(),
        )
        .await?
        .await?;
    if !confirm.is_ack() {
        return Err(JanitorError::NotConfirmed(buried));
    }
    tracing::info!(queue, "dead letter of ended tasks kept in the buried queue");
    Ok(0)
}

/// The kinds of lanes whose queues have been empty long enough for a `queued` row of theirs
/// with no outbox entry to have no message anywhere.
async fn idle_kinds(
    parts: &Parts,
    channel: &Channel,
    empty_since: &mut HashMap<String, Instant>,
) -> Result<Vec<&'static str>, JanitorError> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let mut idle = Vec::new();
    for lane in parts.lanes.all() {
        let mut waiting = 0;
        for band in band_queues(&lane.queue) {
            let q = channel
                .queue_declare(band.as_str().into(), passive, Default::default())
                .await?;
            waiting += q.message_count();
        }
        if waiting > 0 {
            empty_since.remove(&lane.name);
            continue;
        }
        let since = *empty_since
            .entry(lane.name.clone())
            .or_insert_with(Instant::now);
        let longest = lane
            .kinds
            .iter()
            .map(|k| parts.policy.timeout(k))
            .max()
            .unwrap_or_default();
        if since.elapsed() >= 2 * longest + parts.grace {
            idle.extend(lane.kinds.iter().copied());
        }
    }
    Ok(idle)
}

/// Stuck rows, if this node holds the lock: put back, or dead when out of attempts.
async fn stuck_rows(parts: &Parts, idle: &[&str]) -> Result<usize, JanitorError> {
    let mut conn = parts.pool.get().await.map_err(DbError::from)?;
    if !rescue::try_lock(&mut conn).await? {
        return Ok(0);
    }
    let done = rescue_stuck(parts, &mut conn, idle).await;
    rescue::unlock(&mut conn).await?;
    done
}

async fn rescue_stuck(
    parts: &Parts,
    conn: &mut diesel_async::AsyncPgConnection,
    idle: &[&str],
) -> Result<usize, JanitorError> {
    let now = Utc::now();
    let cutoff = |timeout: Duration| {
        now - chrono::Duration::from_std(timeout + parts.grace).unwrap_or(chrono::Duration::MAX)
    };
    let cutoffs = Cutoffs {
        kinds: parts
            .lanes
            .all()
            .iter()
            .flat_map(|l| l.kinds.iter())
            .map(|k| (k.to_string(), cutoff(parts.policy.timeout(k))))
            .collect(),
        default: cutoff(parts.policy.timeout("")),
    };
    let stuck = rescue::find(conn, &cutoffs, idle, STUCK_PER_ROUND).await?;
    let mut back = Vec::new();
    let mut ended = 0;
    for row in &stuck {
        let max = parts.policy.max_attempts(&row.kind);
        let running = row.status == TaskStatus::Running.as_str();
        if running && row.attempts.max(0) as u32 >= max {
            let node = row.node.as_deref().unwrap_or("?");
            let why = format!(
                "no outcome after {} attempts (the last run, on node {node}, was lost)",
                row.attempts
            );
            if rescue::bury(conn, row.id, &why).await? {
                tracing::warn!(task = %row.id, node, "stuck task out of attempts; made dead");
                ended += 1;
            }
        } else {
            back.push(row.id);
        }
    }
    let back = rescue::requeue(conn, &back).await?;
    for id in &back {
        tracing::warn!(task = %id, "stuck task with no message put back through the outbox");
    }
    Ok(back.len() + ended)
}
