//! Task kinds: the real work a task does, one small file per kind behind [`TaskKind`].
//!
//! Adding a kind: write `kinds/<name>.rs` with a unit struct implementing [`TaskKind`], then add
//! one line to [`Registry::builtin`]. Handlers run on worker threads (blocking is fine); they
//! read the payload from `input` and write the result to `output`, both possibly larger than
//! memory (payloads stream from the object store, results spill to disk).

mod echo;
mod fib;
mod gzip;
mod panic;
mod primes;
mod sha256;
mod sleep;
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
    /// Anything else (reading the payload, writing the result): retried.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl TaskError {
    pub fn retryable(&self) -> bool {
        !matches!(self, TaskError::BadInput(_))
    }
}

pub trait TaskKind: Send + Sync + 'static {
    /// The name clients use (`upper`, `sha256`, ...): lowercase, one word.
    fn name(&self) -> &'static str;
    /// One line for `KINDS`.
    fn about(&self) -> &'static str;
    /// Do the work. Errors become a `failed` task with the error's message.
    fn run(&self, input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError>;

    /// Whether a run's time is bounded by its input size (linear work, no waiting). Such a
    /// kind with a small inline payload runs directly on its worker thread; others run on
    /// the worker's executor thread under the task timeout. Default: not bounded.
    fn bounded(&self) -> bool {
        false
    }
}

/// The kinds a node knows, by name.
#[derive(Clone)]
pub struct Registry {
    kinds: Arc<BTreeMap<&'static str, Arc<dyn TaskKind>>>,
}

impl Registry {
    /// Every built-in kind. One line per kind.
    pub fn builtin() -> Self {
        Registry::from_kinds(vec![
            Arc::new(echo::Echo),
            Arc::new(text::Upper),
            Arc::new(text::Lower),
            Arc::new(text::Reverse),
            Arc::new(wordcount::WordCount),
            Arc::new(sha256::Sha256),
            Arc::new(primes::Primes),
            Arc::new(fib::Fib),
            Arc::new(sleep::Sleep),
            Arc::new(gzip::Gzip),
        ])
    }

    /// The built-in kinds plus `panic`, which panics on purpose (supervision tests only;
    /// enabled by `tasks.enable_panic_kind`).
    pub fn with_panic_kind() -> Self {
        let mut kinds: Vec<Arc<dyn TaskKind>> =
            Registry::builtin().kinds.values().cloned().collect();
        kinds.push(Arc::new(panic::Panic));
        Registry::from_kinds(kinds)
    }

    pub fn from_kinds(kinds: Vec<Arc<dyn TaskKind>>) -> Self {
        Registry {
            kinds: Arc::new(kinds.into_iter().map(|k| (k.name(), k)).collect()),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn TaskKind>> {
        self.kinds.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    pub fn describe(&self) -> Vec<(&'static str, &'static str)> {
        self.kinds.values().map(|k| (k.name(), k.about())).collect()
    }
}

/// Read a text payload of at most `limit` bytes.
pub(crate) fn read_text(input: &mut dyn Read, limit: u64, kind: &str) -> Result<String, TaskError> {
    let mut bytes = Vec::new();
    input.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(TaskError::BadInput(format!(
            "payload too large for {kind}: at most {limit} bytes"
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
pub(crate) fn run_on(kind: &dyn TaskKind, input: &[u8]) -> Result<Vec<u8>, TaskError> {
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
