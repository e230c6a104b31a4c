//! WorkerPool: task handlers on `workers.count` threads (an actix `SyncArbiter`).
//!
//! A handler may block and may panic: the panic is caught here and becomes a failed task, so
//! the thread lives on and the pool stays at full size. Inputs stream from the object store
//! through the [`Uploader`]; outputs spill to a temporary file past the inline limit, so
//! neither needs to fit in memory.

use super::uploader::{ChannelReader, OpenObject, Uploader};
use crate::kinds::Registry;
use actix::prelude::*;
use bytes::Bytes;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tempfile::{SpooledData, SpooledTempFile};

pub struct Worker {
    kinds: Registry,
    uploader: Addr<Uploader>,
    spill_limit: usize,
}

impl Worker {
    pub fn new(kinds: Registry, uploader: Addr<Uploader>, spill_limit: usize) -> Self {
        Worker {
            kinds,
            uploader,
            spill_limit,
        }
    }

    /// Start `threads` workers.
    pub fn start_pool(
        threads: usize,
        kinds: Registry,
        uploader: Addr<Uploader>,
        spill_limit: usize,
    ) -> Addr<Worker> {
        SyncArbiter::start(threads, move || {
            Worker::new(kinds.clone(), uploader.clone(), spill_limit)
        })
    }

    fn open(&self, input: TaskInput) -> Result<Box<dyn Read>, String> {
        match input {
            TaskInput::Inline(bytes) => Ok(Box::new(std::io::Cursor::new(bytes))),
            TaskInput::Object { key } => {
                let reply = futures_executor::block_on(self.uploader.send(OpenObject { key }))
                    .map_err(|e| format!("object store unavailable: {e}"))?
                    .map_err(|e| e.to_string())?;
                let (size, rx) = reply;
                Ok(Box::new(ChannelReader::new(rx, size)))
            }
        }
    }

    fn run(&self, msg: RunTask) -> Result<TaskOutput, String> {
        let kind = self
            .kinds
            .get(&msg.kind)
            .ok_or_else(|| format!("unknown kind `{}`", msg.kind))?;
        let mut input = self.open(msg.input)?;
        let mut output = SpooledTempFile::new(self.spill_limit);
        let outcome = catch_unwind(AssertUnwindSafe(|| kind.run(&mut input, &mut output)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                tracing::error!(kind = %msg.kind, panic = %text, "task handler panicked");
                return Err(format!("task handler panicked: {text}"));
            }
        }
        let size = output
            .seek(SeekFrom::End(0))
            .map_err(|e| format!("result spill file: {e}"))?;
        match output.into_inner() {
            SpooledData::InMemory(cursor) => Ok(TaskOutput::Inline(cursor.into_inner())),
            SpooledData::OnDisk(mut file) => {
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| format!("result spill file: {e}"))?;
                Ok(TaskOutput::Spilled { file, size })
            }
        }
    }
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
}

/// Run one task. `Err` carries the failure message for the task row.
#[derive(Message)]
#[rtype(result = "Result<TaskOutput, String>")]
pub struct RunTask {
    pub kind: String,
    pub input: TaskInput,
}

impl Handler<RunTask> for Worker {
    type Result = Result<TaskOutput, String>;

    fn handle(&mut self, msg: RunTask, _: &mut SyncContext<Self>) -> Self::Result {
        self.run(msg)
    }
}
