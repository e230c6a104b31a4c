use super::{read_number, Kind, TaskError};
use std::io::{Read, Write};

/// Ten minutes: well under RabbitMQ's 30-minute consumer timeout.
const MAX_MS: u64 = 600_000;

/// Sleeps the given number of milliseconds (for long-running tasks in tests and demos).
pub fn kind() -> Kind {
    Kind::timed(
        "sleep",
        "sleeps n milliseconds (up to 600000), answers `slept <n>ms`",
        run,
    )
}

fn run(input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
    let ms = read_number(input, "sleep", MAX_MS)?;
    std::thread::sleep(std::time::Duration::from_millis(ms));
    write!(output, "slept {ms}ms")?;
    Ok(())
}
