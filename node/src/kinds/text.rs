//! Text transforms: `upper`, `lower`, `reverse`.
use super::kind::{read_text, Kind, TaskError};
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

pub fn upper() -> Kind {
    Kind::quick("upper", "upper-cases UTF-8 text", |i, o| {
        transform("upper", i, o, str::to_uppercase)
    })
}

pub fn lower() -> Kind {
    Kind::quick("lower", "lower-cases UTF-8 text", |i, o| {
        transform("lower", i, o, str::to_lowercase)
    })
}

pub fn reverse() -> Kind {
    Kind::quick(
        "reverse",
        "reverses UTF-8 text character by character",
        |i, o| transform("reverse", i, o, |s| s.chars().rev().collect()),
    )
}

#[cfg(test)]
mod tests {
    use super::super::run_on;
    use super::*;

    #[test]
    fn transforms() {
        assert_eq!(
            run_on(&upper(), "hello wörld".as_bytes()).unwrap(),
            "HELLO WÖRLD".as_bytes()
        );
        assert_eq!(run_on(&lower(), b"HeLLo").unwrap(), b"hello");
        assert_eq!(
            run_on(&reverse(), "abç".as_bytes()).unwrap(),
            "çba".as_bytes()
        );
        assert!(run_on(&upper(), b"\xff").is_err());
    }
}
