use super::{TaskError, TaskKind};
use std::io::{Read, Write};

/// Returns its payload unchanged (binary-safe).
pub struct Echo;

impl TaskKind for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn about(&self) -> &'static str {
        "returns the payload unchanged"
    }
    fn bounded(&self) -> bool {
        true
    }
    fn run(&self, input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
        std::io::copy(input, output)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn echoes_bytes() {
        assert_eq!(
            super::super::run_on(&super::Echo, b"a\0b").unwrap(),
            b"a\0b"
        );
    }
}
