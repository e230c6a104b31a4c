use super::kind::{read_number, Kind, TaskError};
use num_bigint::BigUint;
use std::io::{Read, Write};

const MAX_N: u64 = 200_000;

/// The n-th Fibonacci number, exact (fast doubling on big integers).
pub fn kind() -> Kind {
    Kind::timed("fib", "n-th Fibonacci number, exact (n up to 200000)", run)
}

fn run(input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
    let n = read_number(input, "fib", MAX_N)?;
    let value = fib(n);
    // (At most about a second of work: the stop flag is looked at before the long part,
    // writing the number's digits.)
    if super::kind::stopped() {
        return Err(super::kind::stopped_error());
    }
    write!(output, "{value}")?;
    Ok(())
}

/// (F(n), F(n+1)) by fast doubling.
fn fib_pair(n: u64) -> (BigUint, BigUint) {
    if n == 0 {
        return (BigUint::from(0u8), BigUint::from(1u8));
    }
    let (a, b) = fib_pair(n / 2);
    let c = &a * (&b * 2u8 - &a);
    let d = &a * &a + &b * &b;
    if n % 2 == 0 {
        (c, d)
    } else {
        let e = &c + &d;
        (d, e)
    }
}

pub fn fib(n: u64) -> BigUint {
    fib_pair(n).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(fib(0).to_string(), "0");
        assert_eq!(fib(1).to_string(), "1");
        assert_eq!(fib(10).to_string(), "55");
        assert_eq!(fib(100).to_string(), "354224848179261915075");
        assert_eq!(super::super::run_on(&kind(), b" 20\n").unwrap(), b"6765");
    }
}
