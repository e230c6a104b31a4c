//! Text transforms: `upper`, `lower`, `reverse`.
use super::{read_text, TaskError, TaskKind};
use std::io::{Read, Write};

/// Text kinds hold the whole payload in memory; this bounds it.
const TEXT_LIMIT: u64 = 64 * 1024 * 1024;

fn transform(
    kind: &str,
    input: &mut dyn Read,
    output: &mut dyn Write,
    f: impl Fn(&str) -> String,
) -> Result<(), TaskError> {
    let text = read_text(input, TEXT_LIMIT, kind)?;
    output.write_all(f(&text).as_bytes())?;
    Ok(())
}

pub struct Upper;
impl TaskKind for Upper {
    fn name(&self) -> &'static str {
        "upper"
    }
    fn about(&self) -> &'static str {
        "upper-cases UTF-8 text"
    }
    fn bounded(&self) -> bool {
        true
    }
    fn run(&self, input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
        transform(self.name(), input, output, str::to_uppercase)
    }
}

pub struct Lower;
impl TaskKind for Lower {
    fn name(&self) -> &'static str {
        "lower"
    }
    fn about(&self) -> &'static str {
        "lower-cases UTF-8 text"
    }
    fn bounded(&self) -> bool {
        true
    }
    fn run(&self, input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
        transform(self.name(), input, output, str::to_lowercase)
    }
}

pub struct Reverse;
impl TaskKind for Reverse {
    fn name(&self) -> &'static str {
        "reverse"
    }
    fn about(&self) -> &'static str {
        "reverses UTF-8 text character by character"
    }
    fn bounded(&self) -> bool {
        true
    }
    fn run(&self, input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
        transform(self.name(), input, output, |s| s.chars().rev().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::run_on;
    use super::*;

    #[test]
    fn transforms() {
        assert_eq!(
            run_on(&Upper, "hello wörld".as_bytes()).unwrap(),
            "HELLO WÖRLD".as_bytes()
        );
        assert_eq!(run_on(&Lower, b"HeLLo").unwrap(), b"hello");
        assert_eq!(
            run_on(&Reverse, "abç".as_bytes()).unwrap(),
            "çba".as_bytes()
        );
        assert!(run_on(&Upper, b"\xff").is_err());
    }
}
