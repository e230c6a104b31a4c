//! What a node does for workers of any language (see [`crate::work`]): `WORK` enlists a
//! connection for some kinds, and `DONE`, `FAIL`, `PROGRESS` and `EXTEND` report on a lease.

use super::{Intake, ServiceError, Services};
use crate::actors::publisher::ForwardReport;
use crate::actors::replies::{Register, Unregister};
use crate::auth::Identity;
use crate::messages::PayloadRef;
use crate::work::hub::{Join, Leave, Push, Quiet, Report, ReportError};
use crate::work::lease::{self, LeaseReport, Said};
use protocol::work::{WorkOk, Working};
use protocol::{ErrorCode, ErrorLine};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// How long a report forwarded to the node holding its lease is waited for.
const FORWARD_WAIT: Duration = Duration::from_secs(5);

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

    /// `DONE`, `FAIL`, `PROGRESS`, `EXTEND` on `lease`, wherever it is held: here, or at
    /// the node its name says (forwarded there through RabbitMQ).
    pub async fn report(
        &self,
        lease: String,
        said: Said,
        who: &Identity,
    ) -> Result<WorkOk, ServiceError> {
        Services::may_work(who)?;
        match lease::holder(&lease) {
            Some(node) if node == self.node() => self.report_here(lease, said).await,
            Some(node) => {
                let node = node.to_string();
                self.report_at(node, lease, said).await
            }
            None => Err(ServiceError::LeaseLost(lease)),
        }
    }

    async fn report_here(&self, lease: String, said: Said) -> Result<WorkOk, ServiceError> {
        let report = Report {
            lease: lease.clone(),
            said,
        };
        match self.handles.work.send(report).await.map_err(hub_gone)? {
            Ok(ok) => Ok(ok),
            Err(ReportError::LeaseLost) => Err(ServiceError::LeaseLost(lease)),
            Err(ReportError::Db(e)) => Err(e.into()),
        }
    }

    /// A report on a lease `node` holds: sent to its reply queue, answered on ours.
    async fn report_at(
        &self,
        node: String,
        lease: String,
        said: Said,
    ) -> Result<WorkOk, ServiceError> {
        let id = Uuid::new_v4();
        let (tx, rx) = oneshot::channel();
        self.handles.replies.do_send(Register(id, tx));
        let report = LeaseReport {
            id,
            lease: lease.clone(),
            said,
            reply_to: self.handles.reply_queue.clone(),
        };
        let queue = match self.handles.reply_queue.strip_suffix(self.node()) {
            Some(prefix) => format!("{prefix}{node}"),
            None => return Err(ServiceError::LeaseLost(lease)),
        };
        self.handles
            .publisher
            .do_send(ForwardReport { queue, report });
        let answer = match tokio::time::timeout(FORWARD_WAIT, rx).await {
            Ok(Ok(answer)) => answer,
            _ => {
                self.handles.replies.do_send(Unregister(id));
                // A node that is down holds nothing: its tasks went back to their queues.
                return match self.node_is_up(&node).await {
                    false => Err(ServiceError::LeaseLost(lease)),
                    true => Err(ServiceError::Busy(format!(
                        "node `{node}`, which holds this lease, did not answer within {} s; try again",
                        FORWARD_WAIT.as_secs()
                    ))),
                };
            }
        };
        if let Ok(ok) = serde_json::from_slice::<WorkOk>(&answer) {
            return Ok(ok);
        }
        match serde_json::from_slice::<ErrorLine>(&answer) {
            Ok(e) if e.error == ErrorCode::LeaseLost => Err(ServiceError::LeaseLost(lease)),
            Ok(e) => Err(ServiceError::Busy(format!(
                "node `{node}`, which holds this lease: {}",
                e.message
            ))),
            Err(e) => Err(ServiceError::Busy(format!(
                "node `{node}` answered a report unreadably ({e}); try again"
            ))),
        }
    }

    /// Whether `node` beats (as the fleet's tables say).
    async fn node_is_up(&self, node: &str) -> bool {
        match self.fleet.tables.read(chrono::Utc::now()).await {
            Ok((nodes, _)) => nodes.iter().any(|n| n.name == node && n.up),
            Err(_) => true,
        }
    }

    /// A result sent in a `DONE` line: kept inline up to the inline limit, else put in the
    /// bucket under the lease's own key (so it can be reported to any node).
    pub async fn result_of(
        &self,
        lease: &str,
        result: Vec<u8>,
    ) -> Result<PayloadRef, ServiceError> {
        let size = result.len() as u64;
        self.result_intake(lease, Some(size)).whole(result).await
    }

    /// Where the result of a `DONE <lease> PUT` (or an HTTP `done`) of `size` bytes (not
    /// known yet: `None`) goes: inline when small, else streamed to the bucket under a key of
    /// the lease's own (a lost lease's bytes never replace the result of the run that holds
    /// the task).
    pub fn result_intake(&self, lease: &str, size: Option<u64>) -> Intake {
        let key = self.handles.storage.key(&format!("results/leases/{lease}"));
        match size {
            Some(size) if size <= self.inline_limit as u64 => {
                Intake::Inline(Vec::with_capacity(size as usize))
            }
            Some(size) => Intake::upload(&self.handles.uploader, &self.uploads, key, Some(size)),
            None => Intake::Growing {
                buf: Vec::new(),
                key,
                limit: self.inline_limit,
                uploader: self.handles.uploader.clone(),
                uploads: self.uploads.clone(),
            },
        }
    }

    /// Report `DONE` with `result` (inline or in the bucket already); a lost lease's object
    /// is removed.
    pub async fn report_done(
        &self,
        lease: String,
        result: PayloadRef,
        who: &Identity,
    ) -> Result<WorkOk, ServiceError> {
        let stored = match &result {
            PayloadRef::Object { key, .. } => Some(key.clone()),
            PayloadRef::Inline { .. } => None,
        };
        let done = self.report(lease, Said::Done { result }, who).await;
        if let (Err(ServiceError::LeaseLost(_)), Some(key)) = (&done, stored) {
            self.forget_object(key);
        }
        done
    }
}
