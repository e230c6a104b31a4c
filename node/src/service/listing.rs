//! Looking tasks up the HTTP way: a client's tasks newest first, a page at a time
//! (`GET /v1/tasks`), and one task long-polled until it is final (`GET /v1/tasks/{id}?wait=`).

use super::{ServiceError, Services};
use crate::actors::watcher::WatchNow;
use crate::auth::Identity;
use crate::db::listing::{first_id_at, Filter};
use protocol::http::{TaskPage, TaskQuery, PAGE_DEFAULT, PAGE_MAX};
use protocol::TaskView;
use std::time::Duration;
use uuid::Uuid;

impl Services {
    /// A page of `who`'s tasks (everyone's for an admin) matching `query`; results are left
    /// out (ask for each task's result on its own).
    pub async fn list(&self, query: TaskQuery, who: &Identity) -> Result<TaskPage, ServiceError> {
        let limit = query.limit.unwrap_or(PAGE_DEFAULT);
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(ServiceError::Invalid(format!(
                "limit must be from 1 to {PAGE_MAX}"
            )));
        }
        let before = match query.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(Uuid::parse_str(c).map_err(|_| {
                ServiceError::Invalid(format!(
                    "`{c}` is not a cursor (pass next_cursor from the page before)"
                ))
            })?),
        };
        if let Some(kind) = &query.kind {
            self.check_kind(&kind.to_ascii_lowercase())?;
        }
        let filter = Filter {
            owner: (!who.is_admin()).then(|| who.owner().unwrap_or_default().to_string()),
            status: query.status,
            kind: query.kind.map(|k| k.to_ascii_lowercase()),
            // The older of the cursor and `until`.
            before: match (before, query.until.map(first_id_at)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            from: query.since.map(first_id_at),
        };
        // One more than asked: whether a next page exists.
        let mut rows = self.handles.store.list(&filter, limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|r| r.id.to_string()))
            .flatten();
        Ok(TaskPage {
            tasks: rows.iter().map(|r| self.view(r).without_result()).collect(),
            next_cursor,
        })
    }

    /// Task `id` as `who` may see it (with an inline result); if it is not final, after
    /// waiting up to `wait` for it to be (its row is read once a second meanwhile, one query
    /// for every task waited on at the node).
    pub async fn task(
        &self,
        id: Uuid,
        who: &Identity,
        wait: Duration,
    ) -> Result<TaskView, ServiceError> {
        let row = self.row(id, who).await?;
        if row.status.is_final() || wait.is_zero() {
            return Ok(self.view(&row));
        }
        // A long poll ends when its token is revoked.
        tokio::select! {
            view = self.long_poll(id, who, wait) => view,
            () = self.revoked(who) => Err(ServiceError::Unauthenticated("the token was revoked".into())),
        }
    }

    async fn long_poll(
        &self,
        id: Uuid,
        who: &Identity,
        wait: Duration,
    ) -> Result<TaskView, ServiceError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.handles.watcher.do_send(WatchNow(id, tx));
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(row)) => Ok(self.view(&row)),
            // Not final yet (or the watcher went away): as it is now.
            _ => Ok(self.view(&self.row(id, who).await?)),
        }
    }
}
