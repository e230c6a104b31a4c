//! The store's batches: writes waiting for the next flush, grouped by kind, each with
//! where its own answer goes, and how a batch is written.

use super::{Accept, RecordOutcome, RetryLater, StartTask};
use crate::db::models::{NewTask, TaskRow};
use crate::db::outbox;
use crate::db::outcomes::{self, Outcome};
use crate::db::tasks::{self, Start};
use crate::db::DbError;
use crate::messages::TaskMessage;
use diesel_async::AsyncPgConnection;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Most writes in one batch.
pub const MAX_BATCH: usize = 1024;

pub(super) type Tx<T> = oneshot::Sender<Result<T, DbError>>;

/// Writes waiting for the next flush, by kind, each with where its own answer goes.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) inserts: Vec<(TaskMessage, Tx<bool>)>,
    pub(super) accepts: Vec<(Accept, Tx<bool>)>,
    /// Tasks the broker confirmed (out of the outbox).
    pub(super) settled: Vec<(Vec<Uuid>, Tx<()>)>,
    pub(super) starts: Vec<(StartTask, Tx<Start>)>,
    pub(super) records: Vec<(RecordOutcome, Tx<Option<TaskRow>>)>,
    pub(super) singles: Vec<(Single, Tx<bool>)>,
}

/// The rare writes, one statement each.
pub(super) enum Single {
    RetryLater(RetryLater),
}

/// What a batch wrote, in the order of its writes.
pub(super) struct Written {
    inserts: Vec<bool>,
    accepts: Vec<bool>,
    settled: Vec<()>,
    starts: Vec<Start>,
    records: Vec<Option<TaskRow>>,
    singles: Vec<bool>,
}

impl Batch {
    pub(super) fn len(&self) -> usize {
        self.inserts.len()
            + self.accepts.len()
            + self.settled.len()
            + self.starts.len()
            + self.records.len()
            + self.singles.len()
    }

    /// Whether the batch is one statement, so it needs no transaction: one kind of write
    /// alone (outcomes: of one node; accepts: of one owner), and not starts (two statements).
    pub(super) fn one_statement(&self) -> bool {
        let kinds = [
            self.inserts.len(),
            self.accepts.len(),
            self.settled.len(),
            self.starts.len(),
            self.records.len(),
            self.singles.len(),
        ];
        let one_kind = kinds.iter().filter(|n| **n > 0).count() <= 1;
        let one_node = self
            .records
            .iter()
            .all(|(r, _)| Some(&r.node) == self.records.first().map(|(f, _)| &f.node));
        let one_owner = self
            .accepts
            .iter()
            .all(|(a, _)| Some(&a.owner) == self.accepts.first().map(|(f, _)| &f.owner));
        one_kind && one_node && one_owner && self.starts.is_empty() && self.singles.len() <= 1
    }

    /// Each write as a batch of its own.
    pub(super) fn into_singles(self) -> Vec<Batch> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.inserts.into_iter().map(|w| Batch {
            inserts: vec![w],
            ..Default::default()
        }));
        out.extend(self.accepts.into_iter().map(|w| Batch {
            accepts: vec![w],
            ..Default::default()
        }));
        out.extend(self.settled.into_iter().map(|w| Batch {
            settled: vec![w],
            ..Default::default()
        }));
        out.extend(self.starts.into_iter().map(|w| Batch {
            starts: vec![w],
            ..Default::default()
        }));
        out.extend(self.records.into_iter().map(|w| Batch {
            records: vec![w],
            ..Default::default()
        }));
        out.extend(self.singles.into_iter().map(|w| Batch {
            singles: vec![w],
            ..Default::default()
        }));
        out
    }

    /// Answer every write with what was written.
    pub(super) fn answer(self, written: Written) {
        fn send<W, T>(writes: Vec<(W, Tx<T>)>, results: Vec<T>) {
            for ((_, tx), r) in writes.into_iter().zip(results) {
                let _ = tx.send(Ok(r));
            }
        }
        send(self.inserts, written.inserts);
        send(self.accepts, written.accepts);
        send(self.settled, written.settled);
        send(self.starts, written.starts);
        send(self.records, written.records);
        send(self.singles, written.singles);
    }

    /// Answer every write with an error.
    pub(super) fn fail(self, e: impl Fn() -> DbError) {
        fn send<W, T>(writes: Vec<(W, Tx<T>)>, e: &impl Fn() -> DbError) {
            for (_, tx) in writes {
                let _ = tx.send(Err(e()));
            }
        }
        send(self.inserts, &e);
        send(self.accepts, &e);
        send(self.settled, &e);
        send(self.starts, &e);
        send(self.records, &e);
        send(self.singles, &e);
    }

    /// Run the batch's statements: inserts, starts (per node), outcomes (per node), singles.
    pub(super) async fn write(&self, conn: &mut AsyncPgConnection) -> diesel::QueryResult<Written> {
        let rows: Vec<NewTask<'_>> = self.inserts.iter().map(|(t, _)| NewTask::of(t)).collect();
        let inserts = match rows.is_empty() {
            true => Vec::new(),
            false => {
                let new: std::collections::HashSet<Uuid> = tasks::insert_many(conn, &rows, None)
                    .await?
                    .into_iter()
                    .collect();
                rows.iter().map(|r| new.contains(&r.id)).collect()
            }
        };
        let mut accepts = Vec::with_capacity(self.accepts.len());
        for (owner, at) in by_node(self.accepts.iter().map(|(a, _)| a.owner.as_str())) {
            let rows: Vec<NewTask<'_>> = at
                .iter()
                .map(|i| NewTask::of(&self.accepts[*i].0.task))
                .collect();
            // Each keeps its own lease (a waiting submission's is shorter than a queued one's).
            let dues: Vec<_> = at.iter().map(|i| self.accepts[*i].0.due).collect();
            let new: std::collections::HashSet<Uuid> =
                tasks::accept_many(conn, &rows, owner, &dues)
                    .await?
                    .into_iter()
                    .collect();
            accepts.extend(at.into_iter().zip(rows.iter().map(|r| new.contains(&r.id))));
        }
        let settled = match self.settled.is_empty() {
            true => Vec::new(),
            false => {
                let ids: Vec<Uuid> = self
                    .settled
                    .iter()
                    .flat_map(|(ids, _)| ids)
                    .copied()
                    .collect();
                outbox::settle(conn, &ids).await?;
                vec![(); self.settled.len()]
            }
        };
        let mut starts = Vec::with_capacity(self.starts.len());
        for (node, at) in by_node(self.starts.iter().map(|(s, _)| s.node.as_str())) {
            let rows: Vec<NewTask<'_>> = at
                .iter()
                .map(|i| NewTask::of(&self.starts[*i].0.task))
                .collect();
            starts.extend(
                at.into_iter()
                    .zip(tasks::start_many(conn, &rows, node).await?),
            );
        }
        let mut records = Vec::with_capacity(self.records.len());
        for (node, at) in by_node(self.records.iter().map(|(r, _)| r.node.as_str())) {
            let outcomes: Vec<Outcome<'_>> =
                at.iter().map(|i| self.records[*i].0.outcome()).collect();
            records.extend(
                at.into_iter()
                    .zip(outcomes::record_many(conn, node, &outcomes).await?),
            );
        }
        let mut singles = Vec::with_capacity(self.singles.len());
        for (single, _) in &self.singles {
            singles.push(match single {
                Single::RetryLater(m) => {
                    tasks::retry_later(conn, m.id, &m.node, &m.error, m.next_attempt_at).await?
                }
            });
        }
        Ok(Written {
            inserts,
            accepts: in_order(accepts),
            settled,
            starts: in_order(starts),
            records: in_order(records),
            singles,
        })
    }
}

/// The indexes of `nodes`, grouped by node.
fn by_node<'a>(
    nodes: impl Iterator<Item = &'a str>,
) -> std::collections::BTreeMap<&'a str, Vec<usize>> {
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, node) in nodes.enumerate() {
        groups.entry(node).or_default().push(i);
    }
    groups
}

/// Answers gathered per node, back in the order of the writes.
fn in_order<T>(mut answers: Vec<(usize, T)>) -> Vec<T> {
    answers.sort_by_key(|(i, _)| *i);
    answers.into_iter().map(|(_, t)| t).collect()
}
