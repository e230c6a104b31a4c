//! Task kinds: the real work a task does, one small file per kind, each a [`Kind`].
//!
//! Adding a kind: write `kinds/<name>.rs` with a `pub fn kind() -> Kind` (a [`Kind::quick`]
//! or a [`Kind::timed`] kind), then add one line to [`Registry::builtin`]. Handlers run on
//! worker threads (blocking is fine); they read the payload from `input` and write the result
//! to `output`, both possibly larger than memory (payloads stream from the object store,
//! results spill to disk).

mod echo;
mod fib;
mod gzip;
mod panic;
mod primes;
mod sha256;
mod sleep;
mod tally;
mod text;
mod wordcount;

use std::collections::BTreeMap;
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

/// The kinds a node knows, by name.
#[derive(Clone)]
pub struct Registry {
    kinds: Arc<BTreeMap<&'static str, Arc<Kind>>>,
}

impl Registry {
    /// Every built-in kind. One line per kind.
    pub fn builtin() -> Self {
        Registry::from_kinds(vec![
            echo::kind(),
            text::upper(),
            text::lower(),
            text::reverse(),
            wordcount::kind(),
            sha256::kind(),
            primes::kind(),
            fib::kind(),
            sleep::kind(),
            gzip::kind(),
        ])
    }

    /// The kinds of a node with these settings: the built-in ones, plus the test-only ones
    /// it enables: `panic` (panics on purpose, `tasks.enable_panic_kind`) and `tally`
    /// (records each run, `tasks.tally_file`).
    pub fn for_settings(tasks: &crate::config::TaskSettings) -> Self {
        let mut registry = Registry::builtin();
        let kinds = Arc::make_mut(&mut registry.kinds);
        if tasks.enable_panic_kind {
            tracing::warn!("the `panic` kind is enabled (tasks.enable_panic_kind)");
            kinds.insert("panic", Arc::new(panic::kind()));
        }
        if let Some(file) = &tasks.tally_file {
            tracing::warn!(file, "the `tally` kind is enabled (tasks.tally_file)");
            kinds.insert("tally", Arc::new(tally::kind(file.into())));
        }
        registry
    }

    pub fn from_kinds(kinds: Vec<Kind>) -> Self {
        Registry {
            kinds: Arc::new(kinds.into_iter().map(|k| (k.name, Arc::new(k))).collect()),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Kind>> {
        self.kinds.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    pub fn describe(&self) -> Vec<(&'static str, &'static str)> {
        self.kinds.values().map(|k| (k.name, k.about)).collect()
    }
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

#[cfg(test)]
pub(crate) fn run_on(kind: &Kind, input: &[u8]) -> Result<Vec<u8>, TaskError> {
    let mut out = Vec::new();
    kind.run(&mut &input[..], &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lists_the_issue_kinds() {
        let names = Registry::builtin().names();
        for k in [
            "echo",
            "upper",
            "lower",
            "reverse",
            "wordcount",
            "sha256",
            "primes",
            "fib",
            "sleep",
            "gzip",
        ] {
            assert!(names.contains(&k), "{k} missing from {names:?}");
        }
    }
}
