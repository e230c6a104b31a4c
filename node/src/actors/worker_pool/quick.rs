//! Quick tasks (quick kinds on inline payloads): their run takes microseconds, so it happens
//! where it is asked for, on a worker's thread or, for a small delivery, on the consumer's
//! own thread (no hand-off at all), still panic-safe.

use super::{panic_text, PoolStats, RunError, TaskOutput};
use crate::kinds::Kind;
use bytes::Bytes;
use std::io::{Seek, SeekFrom, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The most input a delivery's quick tasks may hold together to run on the thread that took
/// the delivery instead of a worker's: a quick kind's work is linear in its input, so this
/// bounds how long that thread is busy (16 KiB of `gzip`, the slowest, takes well under a
/// millisecond), and a small task waits for no worker, not even behind a long task of its lane.
pub const IN_PLACE_BYTES: usize = 16 * 1024;

/// Runs quick tasks; cheap to clone.
#[derive(Clone)]
pub struct QuickRunner {
    /// Results past this size go to a temporary file (then to the bucket).
    pub(super) spill_limit: usize,
    pub(super) stats: Arc<PoolStats>,
}

impl QuickRunner {
    pub fn new(spill_limit: usize, stats: Arc<PoolStats>) -> Self {
        QuickRunner { spill_limit, stats }
    }

    /// Whether quick tasks whose inputs come to `bytes` in all may run on the calling thread.
    pub fn in_place(bytes: usize) -> bool {
        bytes <= IN_PLACE_BYTES
    }

    /// Run one quick task here; a panic fails only this task.
    pub fn run(&self, kind: &Kind, input: Bytes) -> Result<TaskOutput, RunError> {
        let mut output = Vec::new();
        let result = catch_unwind(AssertUnwindSafe(|| {
            kind.run(&mut std::io::Cursor::new(input), &mut output)
        }));
        match result {
            Ok(Ok(())) if output.len() <= self.spill_limit => Ok(TaskOutput::Inline(output)),
            Ok(Ok(())) => {
                let mut file = tempfile::tempfile()
                    .map_err(|e| RunError::retryable(format!("result spill file: {e}")))?;
                file.write_all(&output)
                    .and_then(|_| file.seek(SeekFrom::Start(0)))
                    .map_err(|e| RunError::retryable(format!("result spill file: {e}")))?;
                Ok(TaskOutput::Spilled {
                    file,
                    size: output.len() as u64,
                })
            }
            Ok(Err(e)) => Err(RunError::of_task(e)),
            Err(panic) => {
                self.stats.panics.fetch_add(1, Ordering::Relaxed);
                Err(RunError::Panicked(panic_text(&*panic)))
            }
        }
    }
}
