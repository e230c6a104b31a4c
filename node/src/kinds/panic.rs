use super::{read_text, TaskError, TaskKind};
use std::io::{Read, Write};

/// Panics on purpose, to prove a panicking handler fails only its task. Registered only when
/// `tasks.enable_panic_kind` is set.
pub struct Panic;

impl TaskKind for Panic {
    fn name(&self) -> &'static str {
        "panic"
    }
    fn about(&self) -> &'static str {
        "panics on purpose (test deployments only)"
    }
    fn run(&self, input: &mut dyn Read, _output: &mut dyn Write) -> Result<(), TaskError> {
        let text = read_text(input, 1024, self.name())?;
        panic!("panic requested: {text}");
    }
}
