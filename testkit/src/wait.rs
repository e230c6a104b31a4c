//! Waiting for an event instead of sleeping: poll something cheap until it says so, within a
//! bound, and fail with what was last seen.

use crate::env::TestEnv;
use protocol::{Client, ClientError, TaskStatus, TaskView};
use std::time::Duration;
use tasknode::db::models::TaskRow;
use uuid::Uuid;

/// How often the helpers here look again.
const EVERY: Duration = Duration::from_millis(50);

/// Call `probe` until it gives `Some`, for at most `secs` seconds; panics naming `what`.
pub async fn poll_until<T>(what: &str, secs: u64, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: not within {secs} s");
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// `STATUS` of task `id` until its status is one of `want` (within `secs`).
pub async fn wait_status(c: &mut Client, id: Uuid, want: &[TaskStatus], secs: u64) -> TaskView {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let seen = c.status(id).await;
        match &seen {
            Ok(view) if want.contains(&view.status) => return view.clone(),
            Ok(_) | Err(ClientError::Refused(_)) => {}
            Err(e) => panic!("STATUS {id}: {e}"),
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("task {id} never reached {want:?} within {secs} s; last {seen:?}");
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// `STATUS` of task `id` until it has ended (within 30 s).
pub async fn wait_final(c: &mut Client, id: Uuid) -> TaskView {
    wait_status(c, id, &TaskStatus::FINAL, 30).await
}

impl TestEnv {
    /// Task `id`'s row once it has ended (within 30 s).
    pub async fn final_row(&self, id: Uuid) -> TaskRow {
        poll_until(&format!("a final row for task {id}"), 30, async || {
            self.row(id).await.filter(|r| r.status.is_final())
        })
        .await
    }
}
