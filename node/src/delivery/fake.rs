//! A fake node for the delivery stages' unit tests: it records what each stage asked for,
//! and fails the effects it is told to.

use super::complete::{Completer, Handled};
use super::start::Starter;
use crate::actors::worker_pool::{RunError, TaskOutput};
use crate::config::Settings;
use crate::db::models::{Finish, TaskRow};
use crate::db::tasks::Start;
use crate::db::DbError;
use crate::messages::{PayloadRef, TaskMessage};
use crate::retry::RetryPolicy;
use protocol::TaskStatus;
use std::cell::RefCell;
use uuid::Uuid;

pub struct Fake {
    policy: RetryPolicy,
    pub log: RefCell<Vec<String>>,
    /// Effects (by the start of their log entry) that fail.
    fail: &'static [&'static str],
    /// What marking a task running finds (`None`: the database fails).
    pub found: Option<fn(TaskRow) -> Start>,
    /// What a run gives.
    pub ran: fn() -> Result<TaskOutput, RunError>,
}

impl Fake {
    /// Two attempts per task, 100 ms to the first retry.
    pub fn new(fail: &'static [&'static str]) -> Self {
        let mut tasks = Settings::from_toml("").unwrap().tasks;
        tasks.max_attempts = 2;
        tasks.retry_base_ms = 100;
        Fake {
            policy: RetryPolicy::new(tasks),
            log: RefCell::default(),
            fail,
            found: Some(Start::Run),
            ran: || Ok(TaskOutput::Inline(b"OK".to_vec())),
        }
    }

    fn did(&self, what: String) -> bool {
        let ok = !self.fail.iter().any(|f| what.starts_with(f));
        self.log.borrow_mut().push(what);
        ok
    }
}

/// The task every test completes.
pub fn task() -> TaskMessage {
    TaskMessage {
        id: Uuid::nil(),
        kind: "upper".into(),
        payload: PayloadRef::Inline { data: vec![] },
        submitted_by: "n".into(),
        reply_to: None,
        accepted_at: None,
        owner: None,
        priority: 0,
        key: None,
    }
}

/// Its row, at attempt `attempts` and in `status`.
pub fn row(status: TaskStatus, attempts: i32) -> TaskRow {
    let now = chrono::Utc::now();
    TaskRow {
        id: Uuid::nil(),
        kind: "upper".into(),
        status,
        payload: Some(vec![]),
        payload_key: None,
        payload_size: 0,
        result: None,
        result_key: None,
        result_size: None,
        error: None,
        attempts,
        submitted_by: "n".into(),
        node: Some("here".into()),
        created_at: now,
        started_at: Some(now),
        finished_at: None,
        updated_at: now,
        next_attempt_at: None,
        owner: None,
        priority: 0,
        run_at: None,
        key: None,
        progress: None,
        progress_note: None,
    }
}

impl Completer for Fake {
    fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
    async fn record(
        &self,
        _: &TaskMessage,
        f: Finish,
        _: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Handled {
        let what = format!("record {} {:?}", f.status, f.error.or(f.result_key));
        match self.did(what) {
            true => Handled::Done,
            false => Handled::Requeue,
        }
    }
    async fn store_result(&self, t: &TaskMessage, _: std::fs::File) -> Result<String, String> {
        match self.did("store".into()) {
            true => Ok(format!("results/{}", t.id)),
            false => Err("store down".into()),
        }
    }
    async fn retry_later(&self, _: &TaskMessage, error: &str, delay_ms: u64) -> Handled {
        self.did(format!("retry {delay_ms}ms: {error}"));
        Handled::Done
    }
    async fn bury(&self, _: &TaskMessage) -> bool {
        self.did("bury".into())
    }
}

impl Starter for Fake {
    async fn mark_running(&self, _: &TaskMessage) -> Result<Start, DbError> {
        self.did("mark running".into());
        match self.found {
            Some(found) => Ok(found(row(TaskStatus::Running, 2))),
            None => Err(DbError::Write("database down".into())),
        }
    }
    fn answer(&self, _: &TaskMessage, row: &TaskRow) {
        self.did(format!("answer from the {} row", row.status));
    }
    async fn run(&self, _: &TaskMessage, _: u32) -> Result<TaskOutput, RunError> {
        self.did("run".into());
        (self.ran)()
    }
    async fn not_taken(&self, _: &TaskMessage, attempt: u32) -> Handled {
        self.did(format!("not taken, attempt {attempt} uncounted"));
        Handled::Requeue
    }
}
