use super::kind::{Kind, TaskError};
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// Counts words (case-folded, surrounding punctuation trimmed); streams its input.
pub fn kind() -> Kind {
    Kind::quick(
        "wordcount",
        "JSON object of word counts (case-folded, punctuation trimmed)",
        run,
    )
}

/// What one run may hold in memory.
struct Bounds {
    /// Bytes of all distinct words together.
    distinct_bytes: usize,
    /// Bytes of one word.
    word_bytes: usize,
}

const BOUNDS: Bounds = Bounds {
    distinct_bytes: 16 * 1024 * 1024,
    word_bytes: 1024 * 1024,
};

fn run(input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
    let counts = count(input, &BOUNDS)?;
    serde_json::to_writer(output, &counts).map_err(std::io::Error::from)?;
    Ok(())
}

/// Count the words of `input`, reading it in chunks: text is taken up to the last ASCII
/// whitespace of what has arrived (never inside a word or a UTF-8 character), the rest waits
/// for the next chunk, so memory holds the counts and one word, whatever the input's size.
fn count(input: &mut dyn Read, bounds: &Bounds) -> Result<BTreeMap<String, u64>, TaskError> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut distinct = 0usize;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut chunk)?;
        pending.extend_from_slice(&chunk[..n]);
        let cut = match n {
            0 => pending.len(),
            _ => match pending.iter().rposition(u8::is_ascii_whitespace) {
                Some(at) => at + 1,
                None if pending.len() > bounds.word_bytes => {
                    let most = bounds.word_bytes;
                    return Err(TaskError::TooLarge(format!(
                        "wordcount takes words of at most {most} bytes"
                    )));
                }
                None => continue,
            },
        };
        let text = std::str::from_utf8(&pending[..cut])
            .map_err(|_| TaskError::BadInput("wordcount needs UTF-8 text".into()))?;
        for word in text.split_whitespace() {
            let word = word.trim_matches(|c: char| !c.is_alphanumeric());
            if word.is_empty() {
                continue;
            }
            let word = word.to_lowercase();
            match counts.get_mut(&word) {
                Some(n) => *n += 1,
                None => {
                    distinct += word.len();
                    if distinct > bounds.distinct_bytes {
                        let most = bounds.distinct_bytes;
                        return Err(TaskError::TooLarge(format!(
                            "wordcount holds at most {most} bytes of distinct words"
                        )));
                    }
                    counts.insert(word, 1);
                }
            }
        }
        pending.drain(..cut);
        if n == 0 {
            return Ok(counts);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_words() {
        let out = super::super::run_on(&super::kind(), b"The cat, the hat.\nthe END").unwrap();
        assert_eq!(out, br#"{"cat":1,"end":1,"hat":1,"the":3}"#);
    }

    #[test]
    fn words_split_across_chunks_count_once() {
        // Chunks of 64 KiB: the word at the seam is read whole.
        let mut text = "a ".repeat(32 * 1024 - 1).into_bytes();
        text.extend_from_slice("seamword\u{e9}t\u{e9} b\n".as_bytes());
        let counts = super::count(&mut &text[..], &super::BOUNDS).unwrap();
        assert_eq!(counts["seamwordété"], 1);
        assert_eq!(counts["a"], 32 * 1024 - 1);
        assert_eq!(counts["b"], 1);
    }

    #[test]
    fn memory_is_bounded_and_over_it_the_task_fails_too_large() {
        let small = super::Bounds {
            distinct_bytes: 10,
            word_bytes: 8,
        };
        let e = super::count(&mut &b"aa bb cc dd ee ff"[..], &small).unwrap_err();
        assert!(e.to_string().starts_with("too_large"), "{e}");
        assert!(!e.retryable());
        let long = vec![b'x'; 100 * 1024];
        let e = super::count(&mut &long[..], &small).unwrap_err();
        assert!(e.to_string().contains("words of at most 8 bytes"), "{e}");
        // Repeats of known words take no more room.
        let many = "aa bb ".repeat(10_000);
        assert_eq!(
            super::count(&mut many.as_bytes(), &small).unwrap()["aa"],
            10_000
        );
    }
}
