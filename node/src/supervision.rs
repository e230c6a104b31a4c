//! Restart policy for the node's long-lived actors.
//!
//! Each connection actor (publisher, reply router, task consumer) runs under an actix
//! `Supervisor`. When it loses its connection, or cannot make one, it stops itself; the
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
}

impl RestartBudget {
    pub fn new(actor: &'static str, max: u32, window: Duration, fatal: FatalSender) -> Self {
        RestartBudget {
            actor,
            max,
            window,
            restarts: Mutex::new(VecDeque::new()),
            fatal,
        }
    }

    /// Record a restart after `failures` consecutive failures. Returns how long to wait
    /// before trying again, or `None` when the budget is spent (the fatal error is sent).
    pub fn restart(&self, failures: u32, why: &str) -> Option<Duration> {
        let now = Instant::now();
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

/// The connection state every AMQP actor keeps across supervisor restarts.
pub struct Link {
    pub connection: Option<lapin::Connection>,
    pub channel: Option<lapin::Channel>,
    /// Consecutive failures since the last good connection (drives the backoff).
    failures: u32,
    last_error: String,
    /// Wait before connecting, set when restarting.
    delay: Option<Duration>,
    /// The budget was spent: do not connect again (the node is exiting).
    gave_up: bool,
    budget: std::sync::Arc<RestartBudget>,
}

impl Link {
    pub fn new(budget: std::sync::Arc<RestartBudget>) -> Self {
        Link {
            connection: None,
            channel: None,
            failures: 0,
            last_error: String::new(),
            delay: None,
            gave_up: false,
            budget,
        }
    }

    /// Whether the channel is open.
    pub fn healthy(&self) -> bool {
        self.channel
            .as_ref()
            .is_some_and(|c| c.status().connected())
    }

    /// Whether a channel was set and has since closed (the connection was lost).
    pub fn lost(&self) -> bool {
        self.channel.is_some() && !self.healthy()
    }

    /// A good connection: reset the backoff.
    pub fn up(&mut self, connection: lapin::Connection, channel: lapin::Channel) {
        if self.failures > 0 {
            tracing::info!(actor = self.budget.actor, "connected again");
        }
        self.failures = 0;
        self.connection = Some(connection);
        self.channel = Some(channel);
    }

    /// Record why the actor is about to stop itself (and be restarted).
    pub fn failed(&mut self, why: impl std::fmt::Display) {
        self.failures += 1;
        self.last_error = why.to_string();
    }

    /// Called from `Supervised::restarting`: drop the dead connection, consult the budget.
    pub fn restarting(&mut self) {
        self.channel = None;
        self.connection = None;
        if self.failures == 0 {
            self.failed("stopped");
        }
        match self.budget.restart(self.failures - 1, &self.last_error) {
            Some(delay) => self.delay = Some(delay),
            None => self.gave_up = true,
        }
    }

    /// How long `started()` should wait before connecting; `None`: do not connect.
    pub fn start_delay(&mut self) -> Option<Duration> {
        if self.gave_up {
            None
        } else {
            Some(self.delay.take().unwrap_or_default())
        }
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
