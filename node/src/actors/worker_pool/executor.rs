//! A worker's executor thread: it runs one handler at a time, catching panics, with the run's
//! stop flag set for the kind to look at; abandoned (a run past its timeout, or cancelled),
//! it ends at the handler's next look and counts itself out of [`PoolStats::abandoned`].

use super::{panic_text, PoolStats, RunError, MAX_ABANDONED};
use crate::kinds::Kind;
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tempfile::SpooledTempFile;

/// What an executor thread hands back: how the run ended, and its output.
pub(super) type Ran = (Result<(), RunError>, SpooledTempFile);

pub(super) struct Job {
    pub(super) kind: Arc<Kind>,
    pub(super) input: Box<dyn Read + Send>,
    pub(super) output: SpooledTempFile,
    pub(super) cancel: Arc<AtomicBool>,
}

/// A thread that runs handlers for one worker.
pub(super) struct Executor {
    pub(super) jobs: mpsc::Sender<Job>,
    outcomes: mpsc::Receiver<Ran>,
    /// Set when its worker gives up on its run: the thread then counts itself out of
    /// [`PoolStats::abandoned`] when it ends.
    abandoned: Arc<AtomicBool>,
}

/// Counts an abandoned executor thread out when it ends.
struct Ending {
    abandoned: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
}

impl Drop for Ending {
    fn drop(&mut self) {
        if self.abandoned.load(Ordering::SeqCst) {
            self.count.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Executor {
    pub(super) fn spawn(stats: &PoolStats) -> std::io::Result<Executor> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (outcome_tx, outcomes) = mpsc::channel::<Ran>();
        let abandoned = Arc::new(AtomicBool::new(false));
        let ending = Ending {
            abandoned: abandoned.clone(),
            count: stats.abandoned.clone(),
        };
        std::thread::Builder::new()
            .name("task-executor".into())
            .spawn(move || {
                let _ending = ending;
                // Ends when its worker drops the sender (after a timeout, or at shutdown).
                while let Ok(mut job) = job_rx.recv() {
                    let mut input = Cancellable {
                        inner: job.input,
                        cancel: job.cancel.clone(),
                    };
                    let mut output = Cancellable {
                        inner: &mut job.output,
                        cancel: job.cancel.clone(),
                    };
                    let kind = job.kind.clone();
                    let result = crate::kinds::with_stop(job.cancel.clone(), || {
                        catch_unwind(AssertUnwindSafe(|| kind.run(&mut input, &mut output)))
                    });
                    let result = match result {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(RunError::of_task(e)),
                        Err(panic) => Err(RunError::Panicked(panic_text(&*panic))),
                    };
                    if outcome_tx.send((result, job.output)).is_err() {
                        break;
                    }
                }
            })?;
        stats.executors_started.fetch_add(1, Ordering::Relaxed);
        Ok(Executor {
            jobs,
            outcomes,
            abandoned,
        })
    }

    /// Give up on this executor's run: it ends at its next look at the stop flag (or read or
    /// write), counted in `stats` until then.
    pub(super) fn abandon(self, stats: &PoolStats) {
        stats.abandoned.fetch_add(1, Ordering::SeqCst);
        self.abandoned.store(true, Ordering::SeqCst);
    }
}

/// Wait (blocking this worker's thread, so its lane takes no new run) while a node has
/// [`MAX_ABANDONED`] abandoned runs still ending, until `deadline`; whether there is room.
pub(super) fn room_for_another(stats: &PoolStats, deadline: std::time::Instant) -> bool {
    while stats.abandoned() >= MAX_ABANDONED {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(CANCEL_CHECK);
    }
    true
}

/// Fails reads and writes once its task is cancelled, so a streaming handler stops early.
struct Cancellable<T> {
    inner: T,
    cancel: Arc<AtomicBool>,
}

impl<T> Cancellable<T> {
    fn check(&self) -> std::io::Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "task stopped (its timeout passed, or it was cancelled)",
            ))
        } else {
            Ok(())
        }
    }
}

impl<T: Read> Read for Cancellable<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}

impl<T: Write> Write for Cancellable<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// How often a waiting worker looks whether its run was cancelled.
const CANCEL_CHECK: Duration = Duration::from_millis(50);

/// Why a run's outcome did not come.
pub(super) enum Waited {
    Timeout,
    Cancelled,
    Disconnected,
}

/// The outcome of the run on `executor`, within `timeout`, unless `cancel` is set first.
pub(super) fn wait_for(
    executor: &Executor,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<Ran, Waited> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(Waited::Timeout);
        }
        match executor.outcomes.recv_timeout(left.min(CANCEL_CHECK)) {
            Ok(ran) => return Ok(ran),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(Waited::Disconnected),
            Err(mpsc::RecvTimeoutError::Timeout) if cancel.load(Ordering::Relaxed) => {
                return Err(Waited::Cancelled)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}
