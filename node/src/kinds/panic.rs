use super::kind::{read_text, Kind, TaskError};
use std::io::{Read, Write};

/// Panics on purpose, to prove a panicking handler fails only its task. Registered only when
/// `tasks.enable_panic_kind` is set.
pub fn kind() -> Kind {
    Kind::timed("panic", "panics on purpose (test deployments only)", run)
}

fn run(input: &mut dyn Read, _output: &mut dyn Write) -> Result<(), TaskError> {
    let text = read_text(input, 1024, "panic")?;
    panic!("panic requested: {text}");
}
