use super::kind::{Kind, TaskError};
use std::io::{Read, Write};

/// Returns its payload unchanged (binary-safe).
pub fn kind() -> Kind {
    Kind::quick("echo", "returns the payload unchanged", run)
}

fn run(input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
    std::io::copy(input, output)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn echoes_bytes() {
        assert_eq!(
            super::super::run_on(&super::kind(), b"a\0b").unwrap(),
            b"a\0b"
        );
    }
}
