//! What completing a run needs from the rest of the node, behind a trait (so the completer is
//! unit-tested without a broker or a database), and how a task of a delivery ended.

use crate::db::models::Finish;
use crate::messages::TaskMessage;
use crate::retry::RetryPolicy;
use chrono::{DateTime, Utc};

/// How one task of a delivery ended, as far as the delivery is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Its outcome (final, or a scheduled retry) is written: the delivery may be acked.
    Done,
    /// Something could not be written: the whole delivery goes back to the queue (its other
    /// tasks, already final, are then answered from their rows, not run again).
    Requeue,
}

/// Which attempt a run was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Counted on the row before it ran (see [`super::start`]).
    Counted(u32),
    /// A quick task's first run, not marked running first: its outcome is its first write,
    /// unless it needs more (a retry, a result for the bucket), which counts it first.
    Uncounted { started_at: DateTime<Utc> },
}

/// The effects of completing a run.
pub(crate) trait Completer {
    fn policy(&self) -> &RetryPolicy;
    /// Write a final outcome and, once written, answer the waiting client. `started_at`: when
    /// a run not marked running first started.
    async fn record(
        &self,
        task: &TaskMessage,
        finish: Finish,
        started_at: Option<DateTime<Utc>>,
    ) -> Handled;
    /// Put a result that spilled to a file in the bucket; answers its key.
    async fn store_result(&self, task: &TaskMessage, file: std::fs::File)
        -> Result<String, String>;
    /// Note the failure on the row and send the task to wait `delay_ms` in a delay queue.
    async fn retry_later(&self, task: &TaskMessage, error: &str, delay_ms: u64) -> Handled;
    /// Park the task in the dead-letter queue; `false` if that failed.
    async fn bury(&self, task: &TaskMessage) -> bool;
}
