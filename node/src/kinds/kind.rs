//! A task kind: its name, its work, its errors, and what kinds share (reading numbers and
//! text, the node's stop flag).

use std::io::{Read, Write};
use std::sync::Arc;

/// Why a task failed. The message is what the client and the task row show.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The input is wrong; running again would not help, so the task is not retried.
    #[error("{0}")]
    BadInput(String),
    /// The input needs more memory than the kind allows itself; not retried.
    #[error("too_large: {0}")]
    TooLarge(String),
    /// Anything else (reading the payload, writing the result): retried.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl TaskError {
    pub fn retryable(&self) -> bool {
        matches!(self, TaskError::Io(_))
    }
}

/// What a kind does with a payload: read it from `input`, write the result to `output`.
/// Errors become a `failed` task with the error's message.
pub type Work =
    dyn Fn(&mut dyn Read, &mut dyn Write) -> Result<(), TaskError> + Send + Sync + 'static;

/// A task kind: the name clients use, one line for `KINDS`, whether it is quick, and its work.
pub struct Kind {
    /// Lowercase, one word (`upper`, `sha256`, ...).
    pub name: &'static str,
    pub about: &'static str,
    /// A quick kind's run time is bounded by its input size (linear work, no waiting) and it
    /// has no effect but its result. A quick kind on an inline payload is a *quick task*: it
    /// runs directly on its worker thread, batched with the other quick tasks of its
    /// delivery, and may run again if its message is delivered twice; everything else runs
    /// on the worker's executor thread under the task timeout, marked running first.
    pub quick: bool,
    work: Box<Work>,
}

impl Kind {
    /// A quick kind (see the `quick` field).
    pub fn quick(
        name: &'static str,
        about: &'static str,
        work: impl Fn(&mut dyn Read, &mut dyn Write) -> Result<(), TaskError> + Send + Sync + 'static,
    ) -> Kind {
        Kind {
            name,
            about,
            quick: true,
            work: Box::new(work),
        }
    }

    /// A kind that may take long or wait: it runs under the task timeout.
    pub fn timed(
        name: &'static str,
        about: &'static str,
        work: impl Fn(&mut dyn Read, &mut dyn Write) -> Result<(), TaskError> + Send + Sync + 'static,
    ) -> Kind {
        Kind {
            quick: false,
            ..Kind::quick(name, about, work)
        }
    }

    /// Do the work.
    pub fn run(&self, input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
        (self.work)(input, output)
    }
}

thread_local! {
    /// The stop flag of the run on this thread (set by its worker on a timeout or cancel).
    static STOP: std::cell::RefCell<Option<Arc<std::sync::atomic::AtomicBool>>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether the run on this thread was told to stop (its timeout passed, or it was cancelled).
/// A kind that computes or waits long without reading or writing looks at this often and
/// ends with [`stopped_error`], so an abandoned run frees its thread soon.
pub fn stopped() -> bool {
    STOP.with(|s| {
        s.borrow()
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
    })
}

/// What a kind that saw [`stopped`] answers.
pub fn stopped_error() -> TaskError {
    TaskError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "task stopped (its timeout passed, or it was cancelled)",
    ))
}

/// Run `f` on this thread with `flag` as its stop flag.
pub(crate) fn with_stop<T>(flag: Arc<std::sync::atomic::AtomicBool>, f: impl FnOnce() -> T) -> T {
    STOP.with(|s| *s.borrow_mut() = Some(flag));
    let out = f();
    STOP.with(|s| *s.borrow_mut() = None);
    out
}

/// Read a text payload of at most `limit` bytes.
pub(crate) fn read_text(input: &mut dyn Read, limit: u64, kind: &str) -> Result<String, TaskError> {
    let mut bytes = Vec::new();
    input.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(TaskError::TooLarge(format!(
            "{kind} takes at most {limit} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|_| TaskError::BadInput(format!("{kind} needs UTF-8 text")))
}

/// Read a small numeric argument such as `primes 1000`.
pub(crate) fn read_number(input: &mut dyn Read, kind: &str, max: u64) -> Result<u64, TaskError> {
    let text = read_text(input, 64, kind)?;
    let n: u64 = text.trim().parse().map_err(|_| {
        TaskError::BadInput(format!(
            "{kind} needs a whole number from 0 to {max}, got `{}`",
            text.trim()
        ))
    })?;
    if n > max {
        return Err(TaskError::BadInput(format!(
            "{kind} accepts at most {max}, got {n}"
        )));
    }
    Ok(n)
}
