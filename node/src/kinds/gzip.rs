use super::kind::{Kind, TaskError};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::{Read, Write};

/// Gzip-compresses the payload as it streams; the result is binary.
pub fn kind() -> Kind {
    Kind::quick("gzip", "gzip-compressed payload (binary result)", run)
}

fn run(input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
    let mut encoder = GzEncoder::new(output, Compression::default());
    std::io::copy(input, &mut encoder)?;
    encoder.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips() {
        use std::io::Read;
        let out = super::super::run_on(&super::kind(), b"hello hello hello").unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "hello hello hello");
    }
}
