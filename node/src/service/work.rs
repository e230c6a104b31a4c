//! What a node does for workers of any language (see [`crate::work`]): `WORK` enlists a
//! connection for some kinds, and `DONE`, `FAIL`, `PROGRESS` and `EXTEND` report on a lease.

use super::{Intake, ServiceError, Services};
use crate::actors::worker_pool::TaskOutput;
use crate::auth::Identity;
use crate::work::hub::{Join, Leave, Push, Quiet, Report, Said};
use protocol::work::{WorkOk, Working};
use std::io::{Seek, Write};
use tokio::sync::mpsc;

/// A connection enlisted as a worker: its number at the hub, and the answer to `WORK`.
pub struct Enlisted {
    pub worker: u64,
    pub working: Working,
}

fn hub_gone(e: actix::MailboxError) -> ServiceError {
    ServiceError::Busy(format!(
        "the node's work hub is not answering ({e}); try again"
    ))
}

impl Services {
    /// Whether `who` may take tasks as a worker.
    pub fn may_work(who: &Identity) -> Result<(), ServiceError> {
        match who.may_work() {
            true => Ok(()),
            false => Err(ServiceError::Forbidden(
                "only a token of role worker (or admin) may work: TOKEN CREATE <name> worker"
                    .into(),
            )),
        }
    }

    /// `WORK`: the connection becomes a worker for `kinds` (registered as external kinds),
    /// given tasks through `push` while it has free slots.
    pub async fn enlist(
        &self,
        kinds: Vec<String>,
        slots: u16,
        stream: bool,
        who: &Identity,
        push: mpsc::Sender<Push>,
    ) -> Result<Enlisted, ServiceError> {
        Services::may_work(who)?;
        if let Some(k) = kinds.iter().find(|k| self.handles.kinds.get(k).is_some()) {
            return Err(ServiceError::Invalid(format!(
                "`{k}` is built into the node; workers run kinds no node builds in"
            )));
        }
        self.handles.external.register(&kinds).await?;
        let join = Join {
            kinds: kinds.clone(),
            slots,
            stream,
            push,
            who: who.name.clone().unwrap_or_else(|| "-".into()),
        };
        let worker = self.handles.work.send(join).await.map_err(hub_gone)?;
        Ok(Enlisted {
            worker,
            working: Working {
                working: kinds,
                slots,
            },
        })
    }

    /// Object `key`'s size and bytes (a payload pushed to a worker with `stream=1`).
    pub async fn open_object(
        &self,
        key: String,
    ) -> Result<(Option<u64>, mpsc::Receiver<std::io::Result<bytes::Bytes>>), ServiceError> {
        use crate::actors::Settle;
        let open = crate::actors::uploader::OpenObject { key, range: None };
        Ok(self.handles.uploader.send(open).await.settle()?)
    }

    /// `QUIET`: worker `worker` takes no new tasks.
    pub fn quiet(&self, worker: u64) {
        self.handles.work.do_send(Quiet(worker));
    }

    /// The worker `worker` is gone (its connection closed): its tasks go back at once.
    pub fn leave(&self, worker: u64) {
        self.handles.work.do_send(Leave(worker));
    }

    /// `DONE`, `FAIL`, `PROGRESS`, `EXTEND` on `lease`. A progress is written before the
    /// answer, so a `STATUS` after it shows it.
    pub async fn report(
        &self,
        lease: String,
        said: Said,
        progress: Option<(u8, Option<String>)>,
        who: &Identity,
    ) -> Result<WorkOk, ServiceError> {
        Services::may_work(who)?;
        let report = Report {
            lease: lease.clone(),
            said,
        };
        let reported = self
            .handles
            .work
            .send(report)
            .await
            .map_err(hub_gone)?
            .map_err(|_| ServiceError::LeaseLost(lease))?;
        if let Some((percent, note)) = progress {
            let task = reported.task;
            self.handles
                .store
                .set_progress(task, percent, note.as_deref())
                .await?;
        }
        Ok(reported.ok)
    }

    /// A result sent in a `DONE` line: kept in the row up to the inline limit, else put in
    /// a temporary file for the bucket.
    pub fn result_of(&self, result: Vec<u8>) -> Result<TaskOutput, ServiceError> {
        if result.len() <= self.inline_limit {
            return Ok(TaskOutput::Inline(result));
        }
        let spill = || -> std::io::Result<std::fs::File> {
            let mut file = tempfile::tempfile()?;
            file.write_all(&result)?;
            file.rewind()?;
            Ok(file)
        };
        let file =
            spill().map_err(|e| ServiceError::Busy(format!("cannot keep the result: {e}")))?;
        Ok(TaskOutput::Spilled {
            file,
            size: result.len() as u64,
        })
    }

    /// Where the `size`-byte result of a `DONE <lease> PUT` goes: inline when small, else
    /// streamed to the bucket under a key of the lease's own (a lost lease's bytes never
    /// replace the result of the run that holds the task).
    pub fn result_intake(&self, lease: &str, size: u64) -> Intake {
        if size <= self.inline_limit as u64 {
            return Intake::Inline(Vec::with_capacity(size as usize));
        }
        let key = self.handles.storage.key(&format!("results/leases/{lease}"));
        Intake::upload(&self.handles.uploader, &self.uploads, key, Some(size))
    }
}
