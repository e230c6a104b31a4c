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
mod kind;
mod panic;
mod primes;
mod sha256;
mod sleep;
mod tally;
mod text;
mod wordcount;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use kind::*;

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
