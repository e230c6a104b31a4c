use super::{read_number, TaskError, TaskKind};
use std::io::{Read, Write};

/// Ten minutes: well under RabbitMQ's 30-minute consumer timeout.
const MAX_MS: u64 = 600_000;

/// Sleeps the given number of milliseconds (for long-running tasks in tests and demos).
pub struct Sleep;

impl TaskKind for Sleep {
    fn name(&self) -> &'static str {
        "sleep"
    }
    fn about(&self) -> &'static str {
        "sleeps n milliseconds (up to 600000), answers `slept <n>ms`"
    }
    fn run(&self, input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
        let ms = read_number(input, self.name(), MAX_MS)?;
        std::thread::sleep(std::time::Duration::from_millis(ms));
        write!(output, "slept {ms}ms")?;
        Ok(())
    }
}
