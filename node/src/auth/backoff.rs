//! Failed authentications per client address (HTTP, where every request stands alone): each
//! failure from an address is answered more slowly than the one before (from 100 ms,
//! doubling, at most 1.6 s), as failed `AUTH`s are on one line protocol connection; an
//! address with no failure for [`FORGET`] starts again. Bounded: at most [`MOST`] addresses
//! are remembered. The pause is short because behind a balancer many clients share one
//! address; it holds only the failing request's connection, never a database connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const FORGET: Duration = Duration::from_secs(60);
pub const MOST: usize = 4096;
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Cheap to clone.
#[derive(Clone, Default)]
pub struct Backoff(Arc<Mutex<HashMap<IpAddr, (u32, Instant)>>>);

impl Backoff {
    /// Note a failure from `addr` at `now`; answers how long to wait before saying so.
    pub fn failed(&self, addr: IpAddr, now: Instant) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MOST && !map.contains_key(&addr) {
            map.retain(|_, (_, at)| now.saturating_duration_since(*at) < FORGET);
            if map.len() >= MOST {
                map.clear();
            }
        }
        let entry = map.entry(addr).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= FORGET {
            entry.0 = 0;
        }
        let pause = FIRST_PAUSE * 2u32.pow(entry.0.min(4));
        entry.0 += 1;
        entry.1 = now;
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_from_one_address_slow_down_and_are_forgotten() {
        let b = Backoff::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(b.failed(a, t0), Duration::from_millis(100));
        assert_eq!(b.failed(a, t0), Duration::from_millis(200));
        assert_eq!(b.failed(a, t0), Duration::from_millis(400));
        assert_eq!(
            b.failed(other, t0),
            Duration::from_millis(100),
            "per address"
        );
        for _ in 0..20 {
            b.failed(a, t0);
        }
        assert_eq!(b.failed(a, t0), Duration::from_millis(1_600), "bounded");
        assert_eq!(b.failed(a, t0 + FORGET), Duration::from_millis(100));
        for i in 0..(MOST as u32 * 2) {
            b.failed(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(b.0.lock().unwrap().len() <= MOST);
    }
}
