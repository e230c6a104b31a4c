use super::kind::{Kind, TaskError};
use sha2::Digest;
use std::io::{Read, Write};

/// Hex SHA-256 of the payload, computed as it streams in.
pub fn kind() -> Kind {
    Kind::quick(
        "sha256",
        "hex SHA-256 digest of the payload (streams large payloads)",
        run,
    )
}

fn run(input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    output.write_all(hex::encode(hasher.finalize()).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn digest_of_abc() {
        assert_eq!(
            super::super::run_on(&super::kind(), b"abc").unwrap(),
            b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
