//! Watcher: one shared poller per node for the rows of tasks that clients wait on. A waiting
//! submission is normally answered by its reply ([`super::replies`]); if the reply is lost (a
//! broker fault, a reply too large for a message), the row tells. Instead of every waiter
//! reading its own row, the node reads the rows of all tasks waited on for over [`GRACE`] in
//! one query every [`EVERY`], and wakes the waiters whose task has a final row.

use super::every::{self, Every, Periodic, Round};
use crate::db::models::TaskRow;
use crate::db::Store;
use actix::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// How often the rows are read.
pub const EVERY: Duration = Duration::from_secs(1);
/// A task is looked up only after it has been waited on this long (its reply comes first).
pub const GRACE: Duration = Duration::from_secs(2);
/// Most ids in one query.
const CHUNK: usize = 4096;

type Waiter = (Instant, oneshot::Sender<TaskRow>);

pub struct Watcher {
    store: Store,
    waiting: HashMap<Uuid, Vec<Waiter>>,
}

impl Watcher {
    pub fn new(store: Store) -> Self {
        Watcher {
            store,
            waiting: HashMap::new(),
        }
    }
}

impl Periodic for Watcher {
    const WHAT: &'static str = "read the rows of tasks waited on";

    fn round(&mut self) -> Round<Self> {
        // Waiters that went away (answered by their reply, or their client gone).
        self.waiting.retain(|_, ws| {
            ws.retain(|(_, tx)| !tx.is_closed());
            !ws.is_empty()
        });
        let due: Vec<Uuid> = self
            .waiting
            .iter()
            .filter(|(_, ws)| ws.iter().any(|(since, _)| since.elapsed() >= GRACE))
            .map(|(id, _)| *id)
            .take(CHUNK)
            .collect();
        if due.is_empty() {
            return Box::pin(fut::ready(Ok(())));
        }
        let store = self.store.clone();
        let read = async move { store.final_rows(&due).await };
        Box::pin(read.into_actor(self).map(|rows, act, _| {
            for row in rows? {
                for (_, tx) in act.waiting.remove(&row.id).unwrap_or_default() {
                    let _ = tx.send(row.clone());
                }
            }
            Ok(())
        }))
    }
}

impl Actor for Watcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        every::start(ctx, Every::new(EVERY).later());
    }
}

/// Send the final row of task `.0` to `.1` once there is one (dropping the receiver withdraws).
/// Its row is first read after [`GRACE`] (its reply usually comes first).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watch(pub Uuid, pub oneshot::Sender<TaskRow>);

/// As [`Watch`], read from the next sweep on (a client long-polling a task: no reply comes).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchNow(pub Uuid, pub oneshot::Sender<TaskRow>);

impl Handler<Watch> for Watcher {
    type Result = ();

    fn handle(&mut self, Watch(id, tx): Watch, _: &mut Context<Self>) {
        self.waiting
            .entry(id)
            .or_default()
            .push((Instant::now(), tx));
    }
}

impl Handler<WatchNow> for Watcher {
    type Result = ();

    fn handle(&mut self, WatchNow(id, tx): WatchNow, _: &mut Context<Self>) {
        let due = Instant::now()
            .checked_sub(GRACE)
            .unwrap_or_else(Instant::now);
        self.waiting.entry(id).or_default().push((due, tx));
    }
}
