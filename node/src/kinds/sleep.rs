use super::kind::{read_number, Kind, TaskError};
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

/// How often a sleep looks whether it was told to stop.
const LOOK: std::time::Duration = std::time::Duration::from_millis(50);

fn run(input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
    let ms = read_number(input, "sleep", MAX_MS)?;
    let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    loop {
        if super::kind::stopped() {
            return Err(super::kind::stopped_error());
        }
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(LOOK));
    }
    write!(output, "slept {ms}ms")?;
    Ok(())
}
