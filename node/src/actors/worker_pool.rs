//! Worker: the pool of task handlers, `workers.count` `Worker` actors on the threads of an
//! actix `SyncArbiter` (started by [`Worker::start_pool`]).
//!
//! A delivery's quick tasks (decided in [`crate::delivery`]) run as one batch on the worker's
//! own thread (or where the delivery was taken, when small: [`QuickRunner`]). For any other
//! run each worker hands its task to an executor thread of its own and waits at most the
//! task's timeout. A handler that panics is caught there and fails only its task. A
//! handler that overruns its timeout is abandoned (told to stop at its next read or write,
//! its result discarded) and the worker gets a fresh executor thread, so the pool is back at
//! full size at once. A run cancelled (`CANCEL`, see [`Running`]) is abandoned the same way.
//! Inputs stream from the object store through the [`Uploader`]; outputs spill to a
//! temporary file past the inline limit, so neither needs to fit in memory.

use super::uploader::{ChannelReader, OpenObject, Uploader};
use super::Settle;
use crate::control::Running;
use crate::kinds::{Kind, Registry};
use actix::prelude::*;
use bytes::Bytes;
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tempfile::{SpooledData, SpooledTempFile};

mod executor;
mod quick;
use executor::{room_for_another, wait_for, Executor, Job, Waited};
pub use quick::QuickRunner;

/// Counters shared by all workers of a node (for tests and health reporting).
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Executor threads started (one per worker at first, one more per replacement).
    pub executors_started: AtomicU64,
    /// Handler panics caught.
    pub panics: AtomicU64,
    /// Runs abandoned past their timeout.
    pub timeouts: AtomicU64,
    /// Executor threads abandoned (a run past its timeout, or cancelled) that have not ended
    /// yet: at most [`MAX_ABANDONED`] on a node.
    pub abandoned: Arc<AtomicU64>,
}

/// Abandoned executor threads a node lets live at once. Past it a worker takes no new run
/// (so its lane takes no more deliveries) until one ends, for at most the run's own time.
pub const MAX_ABANDONED: u64 = 64;

impl PoolStats {
    pub fn executors_started(&self) -> u64 {
        self.executors_started.load(Ordering::Relaxed)
    }
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }
    pub fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
    }
    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }
}

/// Why a run failed, and so whether running it again could help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The input is wrong (or the kind unknown): running again would fail again.
    #[error("{0}")]
    BadInput(String),
    /// The handler panicked: a bug for this input, so it is not run again either.
    #[error("task handler panicked: {0}")]
    Panicked(String),
    /// Anything that may pass: a timeout, I/O, the object store, the worker pool.
    #[error("{0}")]
    Transient(String),
    /// Told to stop: the task was cancelled.
    #[error("cancelled while running")]
    Cancelled,
    /// Given to no worker (an external kind's task, and no worker here takes it now): it
    /// goes back to its queue and the attempt is not counted.
    #[error("{0}")]
    NotTaken(String),
}

impl RunError {
    pub(crate) fn retryable(message: impl Into<String>) -> Self {
        RunError::Transient(message.into())
    }

    /// Whether another attempt could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RunError::Transient(_))
    }

    /// What the handler's own error says about retrying.
    pub(crate) fn of_task(e: crate::kinds::TaskError) -> Self {
        if e.retryable() {
            RunError::Transient(e.to_string())
        } else {
            RunError::BadInput(e.to_string())
        }
    }
}

pub struct Worker {
    kinds: Registry,
    /// Quick runs (a delivery's quick tasks, batched: see [`crate::delivery`]).
    quick: QuickRunner,
    /// Results past this size go to a temporary file (then to the bucket).
    spill_limit: usize,
    /// The node's pool counters.
    stats: Arc<PoolStats>,
    uploader: Addr<Uploader>,
    executor: Option<Executor>,
    /// Runs in progress on this node (a cancelled one is told to stop).
    running: Arc<Running>,
    /// This lane's busy workers.
    busy: prometheus_client::metrics::gauge::Gauge,
}

impl Worker {
    /// Start `threads` workers.
    pub fn start_pool(
        threads: usize,
        kinds: Registry,
        uploader: Addr<Uploader>,
        quick: QuickRunner,
        running: Arc<Running>,
        busy: prometheus_client::metrics::gauge::Gauge,
    ) -> Addr<Worker> {
        SyncArbiter::start(threads, move || Worker {
            kinds: kinds.clone(),
            spill_limit: quick.spill_limit,
            stats: quick.stats.clone(),
            quick: quick.clone(),
            uploader: uploader.clone(),
            executor: None,
            running: running.clone(),
            busy: busy.clone(),
        })
    }

    fn open(&self, input: TaskInput) -> Result<Box<dyn Read + Send>, RunError> {
        match input {
            TaskInput::Inline(bytes) => Ok(Box::new(std::io::Cursor::new(bytes))),
            TaskInput::Object { key } => {
                let opened = self.uploader.send(OpenObject { key, range: None });
                let (size, rx) = futures_executor::block_on(opened)
                    .settle()
                    .map_err(|e| RunError::retryable(e.to_string()))?;
                Ok(Box::new(ChannelReader::new(rx, size)))
            }
        }
    }

    fn run(&mut self, msg: RunTask) -> Result<TaskOutput, RunError> {
        let kind = self
            .kinds
            .get(&msg.kind)
            .ok_or_else(|| RunError::BadInput(format!("unknown kind `{}`", msg.kind)))?;
        // The task's time counts from its delivery: what it waited for this worker is spent.
        let timeout = msg
            .deadline
            .saturating_duration_since(std::time::Instant::now());
        if timeout.is_zero() {
            return Err(RunError::retryable(
                "timeout (waited for a worker past the task's timeout, counted from its delivery)",
            ));
        }
        let input = self.open(msg.input)?;
        let executor = match self.executor.take() {
            Some(e) => e,
            None => {
                if !room_for_another(&self.stats, msg.deadline) {
                    return Err(RunError::retryable(format!(
                        "{MAX_ABANDONED} abandoned runs are still ending on this node; tried again later"
                    )));
                }
                Executor::spawn(&self.stats).map_err(|e| {
                    RunError::retryable(format!("cannot start a thread for the task: {e}"))
                })?
            }
        };
        let running = self.running.clone();
        let slot = running.enter(msg.id);
        let cancel = Arc::new(AtomicBool::new(false));
        let job = Job {
            kind,
            input,
            output: SpooledTempFile::new(self.spill_limit),
            cancel: cancel.clone(),
        };
        if executor.jobs.send(job).is_err() {
            return Err(RunError::retryable("task executor thread died"));
        }
        let (result, mut output) = match wait_for(&executor, timeout, &slot.cancel) {
            Ok(outcome) => {
                self.executor = Some(executor);
                outcome
            }
            Err(Waited::Cancelled) => {
                cancel.store(true, Ordering::Relaxed);
                executor.abandon(&self.stats);
                tracing::info!(task = %msg.id, kind = %msg.kind, "task cancelled while running; worker thread replaced");
                return Err(RunError::Cancelled);
            }
            Err(Waited::Timeout) => {
                // Abandon this executor (it exits once the handler returns) and replace it.
                cancel.store(true, Ordering::Relaxed);
                executor.abandon(&self.stats);
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(kind = %msg.kind, ?timeout, "task timed out; worker thread replaced");
                // (The kind's timeout counts from when the node took the delivery, so the
                // run itself had what was left of it.)
                return Err(RunError::retryable(format!(
                    "timeout: the task was still running {:.1}s after it started, when its \
                     time (counted from its delivery) ran out",
                    timeout.as_secs_f64()
                )));
            }
            Err(Waited::Disconnected) => {
                return Err(RunError::retryable("task executor thread died"));
            }
        };
        if let Err(e) = result {
            if let RunError::Panicked(text) = &e {
                self.stats.panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(kind = %msg.kind, error = %text, "task handler panicked");
            }
            return Err(e);
        }
        let size = output
            .seek(SeekFrom::End(0))
            .map_err(|e| RunError::retryable(format!("result spill file: {e}")))?;
        match output.into_inner() {
            SpooledData::InMemory(cursor) => Ok(TaskOutput::Inline(cursor.into_inner())),
            SpooledData::OnDisk(mut file) => {
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| RunError::retryable(format!("result spill file: {e}")))?;
                Ok(TaskOutput::Spilled { file, size })
            }
        }
    }
}

pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Actor for Worker {
    type Context = SyncContext<Self>;
}

/// A task's payload, as handed to a worker.
pub enum TaskInput {
    Inline(Bytes),
    Object { key: String },
}

/// A successful run's result.
#[derive(Debug)]
pub enum TaskOutput {
    /// Small enough to keep in the row.
    Inline(Vec<u8>),
    /// Past the inline limit: a temporary file (already unlinked), rewound.
    Spilled { file: std::fs::File, size: u64 },
    /// In the bucket already (an external worker's `DONE <lease> PUT`).
    Stored { key: String, size: u64 },
}

/// Run one task, ending it at `deadline` (its delivery's arrival plus its kind's timeout: the
/// time it waits for a worker counts).
#[derive(Message)]
#[rtype(result = "Result<TaskOutput, RunError>")]
pub struct RunTask {
    pub id: uuid::Uuid,
    pub kind: String,
    pub input: TaskInput,
    pub deadline: std::time::Instant,
}

impl Handler<RunTask> for Worker {
    type Result = Result<TaskOutput, RunError>;

    fn handle(&mut self, msg: RunTask, _: &mut SyncContext<Self>) -> Self::Result {
        self.busy.inc();
        let ran = self.run(msg);
        self.busy.dec();
        ran
    }
}

/// Run quick tasks (quick kinds on inline payloads) one after another on this worker's
/// thread (the tasks of one delivery: one hand-off for all of them). Answers in order.
#[derive(Message)]
#[rtype(result = "Vec<Result<TaskOutput, RunError>>")]
pub struct RunBatch(pub Vec<(Arc<Kind>, Bytes)>);

impl Handler<RunBatch> for Worker {
    type Result = MessageResult<RunBatch>;

    fn handle(&mut self, msg: RunBatch, _: &mut SyncContext<Self>) -> Self::Result {
        self.busy.inc();
        let ran = msg
            .0
            .into_iter()
            .map(|(kind, input)| self.quick.run(&kind, input))
            .collect();
        self.busy.dec();
        MessageResult(ran)
    }
}
