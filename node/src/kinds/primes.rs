use super::kind::{read_number, Kind, TaskError};
use std::io::{Read, Write};

/// Largest n accepted (about ten seconds of sieving on one core).
const MAX_N: u64 = 10_000_000_000;
const SEGMENT: u64 = 1 << 18;

/// Counts the primes <= n with a segmented sieve (memory stays O(sqrt n)).
pub fn kind() -> Kind {
    Kind::timed("primes", "count of primes <= n (n up to 10^10)", run)
}

fn run(input: &mut dyn Read, output: &mut dyn Write) -> Result<(), TaskError> {
    let n = read_number(input, "primes", MAX_N)?;
    let count =
        count_primes_until(n, super::kind::stopped).ok_or_else(super::kind::stopped_error)?;
    write!(output, "{count}")?;
    Ok(())
}

fn small_primes(limit: u64) -> Vec<u64> {
    let limit = limit as usize;
    let mut composite = vec![false; limit + 1];
    let mut primes = Vec::new();
    for i in 2..=limit {
        if !composite[i] {
            primes.push(i as u64);
            let mut j = i * i;
            while j <= limit {
                composite[j] = true;
                j += i;
            }
        }
    }
    primes
}

#[cfg(test)]
pub fn count_primes(n: u64) -> u64 {
    count_primes_until(n, || false).unwrap_or(0)
}

/// [`count_primes`], given up (`None`) once `stop` says so (looked at every segment).
fn count_primes_until(n: u64, stop: impl Fn() -> bool) -> Option<u64> {
    if n < 2 {
        return Some(0);
    }
    let root = (n as f64).sqrt() as u64 + 1;
    let base = small_primes(root);
    let mut count = 0u64;
    let mut seg = vec![true; SEGMENT as usize];
    let mut low = 2u64;
    while low <= n {
        if stop() {
            return None;
        }
        let high = (low + SEGMENT - 1).min(n);
        let len = (high - low + 1) as usize;
        seg[..len].fill(true);
        for &p in &base {
            if p * p > high {
                break;
            }
            let mut start = low.div_ceil(p) * p;
            if start < p * p {
                start = p * p;
            }
            let mut m = start;
            while m <= high {
                seg[(m - low) as usize] = false;
                m += p;
            }
        }
        count += seg[..len].iter().filter(|&&b| b).count() as u64;
        low = high + 1;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_counts() {
        assert_eq!(count_primes(0), 0);
        assert_eq!(count_primes(2), 1);
        assert_eq!(count_primes(10), 4);
        assert_eq!(count_primes(1_000_000), 78_498);
        assert_eq!(count_primes(10_000_000), 664_579);
        assert!(super::super::run_on(&kind(), b"-3").is_err());
        assert!(super::super::run_on(&kind(), b"99999999999").is_err());
    }
}
