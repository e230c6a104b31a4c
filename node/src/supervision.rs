//! Restart policy for the node's long-lived actors.
//!
//! Each connection actor (publisher, reply router, task consumer) runs under an actix
//! `Supervisor` (their shared lifecycle is [`crate::amqp::link`]). When it loses its connection, or cannot make one, it stops itself; the
//! supervisor restarts it, and its [`RestartBudget`] says how long to wait first: exponential
//! backoff with jitter. Past `supervision.max_restarts` restarts within
//! `supervision.window_secs`, the budget gives up and reports a fatal error: the node logs why
//! and exits non-zero, so its process supervisor (systemd, docker) restarts it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Where a budget that gave up reports (the node's main loop listens).
pub type FatalSender = mpsc::UnboundedSender<String>;

pub struct RestartBudget {
    actor: &'static str,
    max: u32,
    window: Duration,
    restarts: Mutex<VecDeque<Instant>>,
    fatal: FatalSender,
    /// Every restart, counted.
    counted: Option<prometheus_client::metrics::counter::Counter>,
}

impl RestartBudget {
    pub fn new(actor: &'static str, max: u32, window: Duration, fatal: FatalSender) -> Self {
        RestartBudget {
            actor,
            max,
            window,
            restarts: Mutex::new(VecDeque::new()),
            fatal,
            counted: None,
        }
    }

    /// Count every restart in `counter`.
    pub fn counting(mut self, counter: prometheus_client::metrics::counter::Counter) -> Self {
        self.counted = Some(counter);
        self
    }

    /// The actor this budget is for.
    pub fn actor(&self) -> &'static str {
        self.actor
    }

    /// Record a restart after `failures` consecutive failures. Returns how long to wait
    /// before trying again, or `None` when the budget is spent (the fatal error is sent).
    pub fn restart(&self, failures: u32, why: &str) -> Option<Duration> {
        let now = Instant::now();
        if let Some(counter) = &self.counted {
            counter.inc();
        }
        let mut restarts = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
        while restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            restarts.pop_front();
        }
        restarts.push_back(now);
        if restarts.len() as u32 > self.max {
            let reason = format!(
                "{} restarted {} times within {:?}, last because: {why}",
                self.actor,
                restarts.len() - 1,
                self.window
            );
            tracing::error!(actor = self.actor, %reason, "restart budget spent; stopping the node");
            let _ = self.fatal.send(reason);
            return None;
        }
        let delay = crate::amqp::backoff(failures);
        tracing::warn!(actor = self.actor, %why, ?delay, restarts = restarts.len(), "restarting");
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_past_the_budget_and_says_why() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let b = RestartBudget::new("publisher", 3, Duration::from_secs(60), tx);
        assert!(b.restart(0, "x").is_some());
        assert!(b.restart(1, "x").is_some());
        assert!(b.restart(2, "x").is_some());
        assert!(b.restart(3, "broker gone").is_none());
        let reason = rx.try_recv().unwrap();
        assert!(
            reason.contains("publisher") && reason.contains("broker gone"),
            "{reason}"
        );
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let b = RestartBudget::new("consumer", 1, Duration::from_millis(20), tx);
        assert!(b.restart(0, "x").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.restart(0, "x").is_some());
    }
}
