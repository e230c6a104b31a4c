//! Secrets recently found unknown: a node asks the database about a secret it does not know
//! (the token may be new), but not again for [`REMEMBER`], so a client trying wrong tokens
//! costs one lookup a second per distinct secret, not one per attempt. Bounded: at most
//! [`MOST`] secrets are remembered. (A secret cannot be tried before its token exists, so
//! remembering it as unknown never hides a new token.)

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const REMEMBER: Duration = Duration::from_secs(1);
pub const MOST: usize = 4096;

#[derive(Default)]
pub struct Unknown(HashMap<Vec<u8>, Instant>);

impl Unknown {
    /// Whether `hash` was found unknown within [`REMEMBER`] of `now`.
    pub fn fresh(&self, hash: &[u8], now: Instant) -> bool {
        self.0
            .get(hash)
            .is_some_and(|at| now.saturating_duration_since(*at) < REMEMBER)
    }

    /// Remember `hash` as unknown at `now`.
    pub fn note(&mut self, hash: Vec<u8>, now: Instant) {
        if self.0.len() >= MOST {
            self.0
                .retain(|_, at| now.saturating_duration_since(*at) < REMEMBER);
            if self.0.len() >= MOST {
                self.0.clear();
            }
        }
        self.0.insert(hash, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_secret_is_remembered_for_a_second_and_the_memory_is_bounded() {
        let t0 = Instant::now();
        let mut unknown = Unknown::default();
        unknown.note(vec![1], t0);
        assert!(unknown.fresh(&[1], t0 + Duration::from_millis(999)));
        assert!(!unknown.fresh(&[1], t0 + REMEMBER));
        assert!(!unknown.fresh(&[2], t0));
        for i in 0..(MOST as u32 * 3) {
            unknown.note(i.to_be_bytes().to_vec(), t0);
        }
        assert!(unknown.0.len() <= MOST);
        // Filled with old entries, they make room first; a fresh one is kept.
        let later = t0 + REMEMBER * 2;
        while unknown.0.len() < MOST {
            let n = unknown.0.len() as u64;
            unknown.note(n.to_be_bytes().to_vec(), t0);
        }
        unknown.note(vec![9], later);
        assert_eq!(unknown.0.len(), 1, "only the fresh one stays");
        assert!(unknown.fresh(&[9], later));
    }
}
