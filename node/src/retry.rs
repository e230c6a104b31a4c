//! Retry policy: how many runs a task gets, how long it waits between them, and where it
//! waits. A retryable failure sends the task to a delay queue `<task_queue>.retry.<ms>ms`
//! whose TTL dead-letters it back onto the task queue; past its last attempt it is buried in
//! `<task_queue>.buried` and its row says `dead`.

use crate::config::TaskSettings;

/// The queue a failed task waits in for `delay_ms` before flowing back to `task_queue`. One
/// queue per delay, so no message waits behind a longer one; the delay is in the name, so
/// changing `tasks.retry_base_ms` makes new queues instead of clashing.
pub fn retry_queue(task_queue: &str, delay_ms: u64) -> String {
    format!("{task_queue}.retry.{delay_ms}ms")
}

/// Where the broker dead-letters a message of `task_queue` delivered `amqp.delivery_limit`
/// times. Every node's janitor empties it: each task in such a message goes back through the
/// outbox (see [`crate::actors::janitor`]), so the limit never loses an accepted task.
pub fn dead_queue(task_queue: &str) -> String {
    format!("{task_queue}.dead")
}

/// Where messages are kept for an operator: tasks that used up their attempts, and messages
/// no node can read.
pub fn buried_queue(task_queue: &str) -> String {
    format!("{task_queue}.buried")
}

/// What to do after attempt `attempt` of a task failed for a reason that may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Run again after this delay.
    RetryAfter { delay_ms: u64 },
    /// That was the last attempt.
    Bury,
}

/// The retry rules of a deployment (from `[tasks]`).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    settings: TaskSettings,
}

impl RetryPolicy {
    pub fn new(settings: TaskSettings) -> Self {
        RetryPolicy { settings }
    }

    /// After attempt `attempt` (1 for the first run) of a task of `kind` failed retryably.
    pub fn next(&self, kind: &str, attempt: u32) -> Next {
        if attempt >= self.max_attempts(kind) {
            Next::Bury
        } else {
            Next::RetryAfter {
                delay_ms: self.delay_ms(attempt + 1),
            }
        }
    }

    /// The broker-side delay before attempt `next` (2 for the first retry): the base,
    /// doubling for each further attempt.
    pub fn delay_ms(&self, next: u32) -> u64 {
        self.settings
            .retry_base_ms
            .saturating_mul(1u64 << (next.saturating_sub(2)).min(20))
    }

    /// Every delay queue this policy may use on `task_queue`.
    pub fn delay_queues(&self, task_queue: &str) -> Vec<String> {
        (2..=self.settings.most_attempts())
            .map(|next| retry_queue(task_queue, self.delay_ms(next)))
            .collect()
    }

    /// The runs a task of `kind` gets.
    pub fn max_attempts(&self, kind: &str) -> u32 {
        self.settings.max_attempts(kind)
    }

    pub fn timeout(&self, kind: &str) -> std::time::Duration {
        self.settings.timeout(kind)
    }

    /// The longest a run of `kind` may last with `EXTEND`, if set (`max_secs`).
    pub fn longest(&self, kind: &str) -> Option<std::time::Duration> {
        let secs = self.settings.kinds.get(kind).and_then(|k| k.max_secs)?;
        Some(std::time::Duration::from_secs(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KindSettings, Settings};

    fn policy() -> RetryPolicy {
        let mut tasks = Settings::from_toml("").unwrap().tasks;
        tasks.max_attempts = 3;
        tasks.retry_base_ms = 100;
        tasks.kinds.insert(
            "sleep".into(),
            KindSettings {
                max_attempts: Some(1),
                ..Default::default()
            },
        );
        RetryPolicy::new(tasks)
    }

    #[test]
    fn delays_double_until_the_last_attempt_buries() {
        let p = policy();
        assert_eq!(p.next("upper", 1), Next::RetryAfter { delay_ms: 100 });
        assert_eq!(p.next("upper", 2), Next::RetryAfter { delay_ms: 200 });
        assert_eq!(p.next("upper", 3), Next::Bury);
        assert_eq!(p.next("sleep", 1), Next::Bury, "per-kind attempts");
    }

    #[test]
    fn delay_queues_are_named_by_their_delay() {
        assert_eq!(
            policy().delay_queues("q"),
            vec!["q.retry.100ms".to_string(), "q.retry.200ms".to_string()]
        );
        assert_eq!(dead_queue("q"), "q.dead");
        assert_eq!(buried_queue("q"), "q.buried");
    }
}
