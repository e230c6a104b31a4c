//! The tasks this node finished since the last heartbeat: counts and a histogram of their
//! end-to-end times, cheap to record (one short lock) and summed across nodes by adding bucket
//! counts, from which the fleet's percentiles are estimated.

use std::sync::Mutex;

/// Upper bounds of the latency buckets, in milliseconds; one more bucket holds the rest.
pub const BOUNDS_MS: &[f64] = &[
    0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 25.0, 35.0, 50.0, 70.0, 100.0, 150.0,
    200.0, 300.0, 500.0, 750.0, 1_000.0, 1_500.0, 2_000.0, 3_000.0, 5_000.0, 10_000.0, 30_000.0,
    60_000.0, 300_000.0,
];

/// Counts since the last [`Recent::take`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tally {
    pub finished: u64,
    pub failed: u64,
    /// One count per bucket of [`BOUNDS_MS`], and one past the last.
    pub latency: Vec<u64>,
}

impl Tally {
    pub fn empty() -> Tally {
        Tally {
            latency: vec![0; BOUNDS_MS.len() + 1],
            ..Tally::default()
        }
    }

    /// Add another node's (or second's) counts.
    pub fn add(&mut self, other: &Tally) {
        self.finished += other.finished;
        self.failed += other.failed;
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            *mine += theirs;
        }
    }

    /// The `q` quantile (0..=1) of the latencies, interpolated within its bucket; `None`
    /// when nothing was counted.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut below = 0u64;
        for (i, &n) in self.latency.iter().enumerate() {
            if n > 0 && (below + n) as f64 >= rank {
                let low = if i == 0 { 0.0 } else { BOUNDS_MS[i - 1] };
                let Some(&high) = BOUNDS_MS.get(i) else {
                    return Some(low);
                };
                let within = (rank - below as f64) / n as f64;
                return Some(low + (high - low) * within);
            }
            below += n;
        }
        BOUNDS_MS.last().copied()
    }
}

/// The current second's tally, shared by whoever writes outcomes and the heartbeat.
pub struct Recent(Mutex<Tally>);

impl Default for Recent {
    fn default() -> Self {
        Recent(Mutex::new(Tally::empty()))
    }
}

impl Recent {
    /// Count one final outcome, `ms` from acceptance.
    pub fn record(&self, failed: bool, ms: Option<f64>) {
        let bucket = ms.map(|ms| BOUNDS_MS.partition_point(|&b| b < ms));
        let mut tally = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tally.finished += 1;
        tally.failed += failed as u64;
        if let Some(b) = bucket {
            tally.latency[b] += 1;
        }
    }

    /// What was counted since the last take; the tally starts again from zero.
    pub fn take(&self) -> Tally {
        let mut tally = self.0.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *tally, Tally::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_buckets_summed_across_nodes() {
        let (a, b) = (Recent::default(), Recent::default());
        for _ in 0..98 {
            a.record(false, Some(1.2)); // (1, 1.5]
        }
        b.record(true, Some(400.0)); // (300, 500]
        b.record(true, Some(400.0));
        let mut fleet = a.take();
        fleet.add(&b.take());
        assert_eq!((fleet.finished, fleet.failed), (100, 2));
        let p50 = fleet.quantile_ms(0.5).unwrap();
        assert!((1.0..=1.5).contains(&p50), "{p50}");
        let p99 = fleet.quantile_ms(0.99).unwrap();
        assert!((300.0..=500.0).contains(&p99), "{p99}");
        // Taken: the next second starts empty.
        assert_eq!(a.take(), Tally::empty());
        assert_eq!(Tally::empty().quantile_ms(0.5), None);
    }

    #[test]
    fn latencies_past_the_last_bound_are_kept() {
        let r = Recent::default();
        r.record(false, Some(1e9));
        let t = r.take();
        assert_eq!(t.latency[BOUNDS_MS.len()], 1);
        assert_eq!(t.quantile_ms(0.5), Some(300_000.0));
    }
}
