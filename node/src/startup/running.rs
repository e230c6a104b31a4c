//! A running node: serving until told to stop, then stopping gracefully.

use super::{Fatal, Node};
use crate::actors::consumer::StopConsuming;
use crate::front::line::listener::StopListening;
use std::time::Duration;

impl Node {
    /// Serve until `shutdown` resolves, then stop gracefully: stop accepting connections and
    /// taking tasks, tell every session to drain (it reads no more requests and closes once
    /// its answers are written), give in-flight tasks and sessions up to
    /// `supervision.shutdown_grace_secs` to finish (each task is acked only once its row is
    /// written; any still running when the grace ends is simply not acked, so the broker
    /// hands it to another node). Returns `Err` when an actor could not recover, so the
    /// process exits non-zero.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), Fatal> {
        tokio::select! {
            _ = shutdown => {}
            reason = self.fatal.recv() => {
                return Err(Fatal(reason.unwrap_or_else(|| "supervision channel closed".into())));
            }
        }
        let node = self.services.node().to_string();
        tracing::info!(%node, grace = ?self.grace, "shutting down: no new connections or tasks");
        self.services
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.listener.do_send(StopListening);
        if let Some(http) = &self.http {
            // No new HTTP connections; requests being served get a few seconds.
            actix::spawn(http.stop(true));
        }
        for consumer in &self.consumers {
            let _ = consumer.send(StopConsuming).await;
        }
        let deadline = tokio::time::Instant::now() + self.grace;
        loop {
            let left = self.inflight.load(std::sync::atomic::Ordering::SeqCst);
            let open = self.connections.load(std::sync::atomic::Ordering::SeqCst);
            if left == 0 && open == 0 {
                tracing::info!(%node, "in-flight tasks and sessions done; stopped");
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(%node, left, open, "grace period over; unfinished tasks go back to the queue");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resolves when an actor spent its restart budget (for tests that run nodes in-process).
    pub async fn fatal(&mut self) -> Option<String> {
        self.fatal.recv().await
    }
}
