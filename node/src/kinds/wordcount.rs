use super::{Kind, TaskError};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};

/// Counts words (case-folded, surrounding punctuation trimmed); streams its input.
pub fn kind() -> Kind {
    Kind::quick(
        "wordcount",
        "JSON object of word counts (case-folded, punctuation trimmed)",
        run,
    )
}

fn run(input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = std::str::from_utf8(&line)
            .map_err(|_| TaskError::BadInput("wordcount needs UTF-8 text".into()))?;
        for word in text.split_whitespace() {
            let word = word.trim_matches(|c: char| !c.is_alphanumeric());
            if !word.is_empty() {
                *counts.entry(word.to_lowercase()).or_default() += 1;
            }
        }
    }
    serde_json::to_writer(output, &counts).map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_words() {
        let out = super::super::run_on(&super::kind(), b"The cat, the hat.\nthe END").unwrap();
        assert_eq!(out, br#"{"cat":1,"end":1,"hat":1,"the":3}"#);
    }
}
