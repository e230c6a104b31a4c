//! Completing a run: its result becomes a final row, a retry after a delay, or a burial in
//! the dead-letter queue. The mapping lives in `complete`, over the effects of the
//! `Completer` trait, so it is unit-tested without a broker or a database; [`DeliveryCtx`]
//! is the completer the node uses.

pub use super::effects::Handled;
pub(crate) use super::effects::{Attempt, Completer};
use super::start::{start, Starter};
use super::DeliveryCtx;
use crate::actors::publisher::{Republish, Target};
use crate::actors::uploader::UploadFile;
use crate::actors::worker_pool::{RunError, TaskOutput};
use crate::actors::Settle;
use crate::db::models::Finish;
use crate::db::store::{RecordOutcome, RetryLater};
use crate::messages::TaskMessage;
use crate::retry::{Next, RetryPolicy};
use chrono::{DateTime, Utc};
use protocol::TaskStatus;

/// After `attempt` of `task` ran: map the run to its effect. The one way a run's outcome is
/// recorded, for quick tasks and timed ones alike.
#[tracing::instrument(level = "debug", skip_all, fields(task = %task.id, kind = %task.kind))]
pub(crate) async fn complete<C: Completer + Starter>(
    c: &C,
    task: &TaskMessage,
    attempt: Attempt,
    run: Result<TaskOutput, RunError>,
) -> Handled {
    let (attempt, started_at) = match (attempt, &run) {
        (Attempt::Counted(n), _) => (n, None),
        (Attempt::Uncounted { started_at }, Ok(TaskOutput::Inline(_))) => (1, Some(started_at)),
        (Attempt::Uncounted { started_at }, Err(e)) if !e.is_retryable() => (1, Some(started_at)),
        // It needs more than one write: counted as an attempt now (it ran), then completed.
        (Attempt::Uncounted { .. }, _) => match start(c, task).await {
            Ok(n) => (n, None),
            Err(done) => return done,
        },
    };
    let finish = match run {
        Ok(TaskOutput::Inline(data)) => Finish::succeeded(data),
        Ok(TaskOutput::Stored { key, size }) => Finish::stored(key, size),
        Ok(TaskOutput::Spilled { file, size }) => match c.store_result(task, file).await {
            Ok(key) => Finish::stored(key, size),
            Err(e) => {
                let error = format!("could not store the result: {e}");
                return fail_retryably(c, task, attempt, error).await;
            }
        },
        Err(e) if e.is_retryable() => return fail_retryably(c, task, attempt, e.to_string()).await,
        // Cancelled: its row says so already (this write leaves it as it is).
        Err(RunError::Cancelled) => Finish::failed(TaskStatus::Cancelled, "cancelled".into()),
        // Bad input and panics would fail again: the task fails now.
        Err(e) => Finish::failed(TaskStatus::Failed, e.to_string()),
    };
    c.record(task, finish, started_at).await
}

/// A failure that may pass: run again after a delay, or past the kind's attempts, bury the
/// task and mark it `dead`.
async fn fail_retryably<C: Completer>(
    c: &C,
    task: &TaskMessage,
    attempt: u32,
    error: String,
) -> Handled {
    match c.policy().next(&task.kind, attempt) {
        Next::RetryAfter { delay_ms } => {
            tracing::info!(task = %task.id, attempt, delay_ms, %error, "task failed; will retry");
            c.retry_later(task, &error, delay_ms).await
        }
        Next::Bury => {
            tracing::warn!(task = %task.id, attempt, %error, "task failed its last attempt; dead-lettered");
            if !c.bury(task).await {
                tracing::warn!(task = %task.id, "could not dead-letter the task; requeued");
                return Handled::Requeue;
            }
            let message = format!("{error} (after {attempt} attempts)");
            c.record(task, Finish::failed(TaskStatus::Dead, message), None)
                .await
        }
    }
}

impl Completer for DeliveryCtx {
    fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    async fn record(
        &self,
        task: &TaskMessage,
        finish: Finish,
        started_at: Option<DateTime<Utc>>,
    ) -> Handled {
        let written = self
            .handles
            .store
            .record(RecordOutcome {
                task: task.clone(),
                node: self.handles.node.clone(),
                finish,
                started_at,
            })
            .await;
        match written {
            Ok(Some(row)) => {
                self.handles.metrics.finished(&row);
                self.answer(task, &row);
                Handled::Done
            }
            Ok(None) => {
                tracing::error!(task = %task.id, "task row vanished while running");
                Handled::Done
            }
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "cannot write task outcome; requeued");
                Handled::Requeue
            }
        }
    }

    async fn store_result(
        &self,
        task: &TaskMessage,
        file: std::fs::File,
    ) -> Result<String, String> {
        let key = self.handles.storage.key(&format!("results/{}", task.id));
        let upload = UploadFile {
            key: key.clone(),
            file,
        };
        match self.handles.uploader.send(upload).await.settle() {
            Ok(_) => Ok(key),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn retry_later(&self, task: &TaskMessage, error: &str, delay_ms: u64) -> Handled {
        let next_attempt_at = chrono::Utc::now() + chrono::Duration::milliseconds(delay_ms as i64);
        let noted = self
            .handles
            .store
            .retry_later(RetryLater {
                id: task.id,
                node: self.handles.node.clone(),
                error: error.to_string(),
                next_attempt_at,
            })
            .await;
        if noted.is_err() {
            return Handled::Requeue;
        }
        match self.republish(task, Target::Retry { delay_ms }).await {
            true => Handled::Done,
            false => {
                tracing::warn!(task = %task.id, "could not schedule the retry; requeued");
                Handled::Requeue
            }
        }
    }

    async fn bury(&self, task: &TaskMessage) -> bool {
        self.republish(task, Target::Dead).await
    }
}

impl DeliveryCtx {
    async fn republish(&self, task: &TaskMessage, target: Target) -> bool {
        let msg = Republish {
            target,
            task: task.clone(),
        };
        self.handles.publisher.send(msg).await.settle().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::fake::{task, Fake};
    use uuid::Uuid;

    fn run(fake: &Fake, attempt: u32, r: Result<TaskOutput, RunError>) -> (Handled, Vec<String>) {
        let handled =
            futures_executor::block_on(complete(fake, &task(), Attempt::Counted(attempt), r));
        (handled, fake.log.take())
    }

    fn transient() -> Result<TaskOutput, RunError> {
        Err(RunError::Transient("timeout".into()))
    }

    #[test]
    fn a_result_is_recorded_as_succeeded() {
        let (h, log) = run(&Fake::new(&[]), 1, Ok(TaskOutput::Inline(b"X".to_vec())));
        assert_eq!(
            (h, log),
            (Handled::Done, vec!["record succeeded None".into()])
        );
    }

    #[test]
    fn bad_input_and_panics_fail_at_once() {
        for e in [
            RunError::BadInput("nope".into()),
            RunError::Panicked("boom".into()),
        ] {
            let (h, log) = run(&Fake::new(&[]), 1, Err(e.clone()));
            assert_eq!(h, Handled::Done);
            assert_eq!(
                log,
                vec![format!("record failed Some({:?})", e.to_string())]
            );
        }
    }

    #[test]
    fn a_transient_failure_retries_then_is_buried_and_dead() {
        let (h, log) = run(&Fake::new(&[]), 1, transient());
        assert_eq!(
            (h, log),
            (Handled::Done, vec!["retry 100ms: timeout".into()])
        );
        let (h, log) = run(&Fake::new(&[]), 2, transient());
        assert_eq!(h, Handled::Done);
        assert_eq!(
            log,
            vec![
                "bury".to_string(),
                "record dead Some(\"timeout (after 2 attempts)\")".into()
            ]
        );
    }

    #[test]
    fn a_task_that_cannot_be_buried_goes_back_to_the_queue_unrecorded() {
        let (h, log) = run(&Fake::new(&["bury"]), 2, transient());
        assert_eq!((h, log), (Handled::Requeue, vec!["bury".into()]));
    }

    #[test]
    fn a_result_that_cannot_be_stored_is_retried() {
        let file = tempfile::tempfile().unwrap();
        let spilled = Ok(TaskOutput::Spilled { file, size: 9 });
        let (h, log) = run(&Fake::new(&["store"]), 1, spilled);
        assert_eq!(h, Handled::Done);
        assert_eq!(
            log,
            vec![
                "store".to_string(),
                "retry 100ms: could not store the result: store down".into()
            ]
        );
        let file = tempfile::tempfile().unwrap();
        let (_, log) = run(
            &Fake::new(&[]),
            1,
            Ok(TaskOutput::Spilled { file, size: 9 }),
        );
        assert_eq!(
            log[1],
            format!("record succeeded Some(\"results/{}\")", Uuid::nil())
        );
    }

    fn quick(fake: &Fake, r: Result<TaskOutput, RunError>) -> (Handled, Vec<String>) {
        let first = Attempt::Uncounted {
            started_at: chrono::Utc::now(),
        };
        let handled = futures_executor::block_on(complete(fake, &task(), first, r));
        (handled, fake.log.take())
    }

    #[test]
    fn a_quick_run_is_recorded_in_one_write_unless_it_needs_more() {
        let fake = Fake::new(&[]);
        let (h, log) = quick(&fake, Ok(TaskOutput::Inline(b"X".to_vec())));
        assert_eq!(
            (h, log),
            (Handled::Done, vec!["record succeeded None".into()])
        );
        let (h, log) = quick(&fake, Err(RunError::BadInput("nope".into())));
        assert_eq!(
            (h, log),
            (Handled::Done, vec!["record failed Some(\"nope\")".into()])
        );
        // A failure that may pass is counted first (the row says attempt 2 of 2: buried).
        let (h, log) = quick(&fake, transient());
        assert_eq!(h, Handled::Done);
        assert_eq!(
            log,
            [
                "mark running",
                "bury",
                "record dead Some(\"timeout (after 2 attempts)\")"
            ]
        );
    }

    #[test]
    fn an_outcome_that_cannot_be_written_requeues() {
        let (h, _) = run(&Fake::new(&["record"]), 1, Ok(TaskOutput::Inline(vec![])));
        assert_eq!(h, Handled::Requeue);
    }
}
