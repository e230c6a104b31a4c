//! What a client is told about a task row: [`TaskView::from_row`].

use crate::db::models::TaskRow;
use crate::storage::Storage;
use protocol::{ErrorCode, TaskStatus, TaskView};

/// Views made from rows (the protocol crate knows no rows).
pub trait FromRow {
    fn from_row(row: &TaskRow, storage: &Storage) -> Self;
}

impl FromRow for TaskView {
    /// The task with its inline result, or its bucket key and a presigned URL; a failed task
    /// says why, and a task waiting for a retry shows why its last run failed.
    fn from_row(row: &TaskRow, storage: &Storage) -> TaskView {
        let mut view = TaskView::new(row.id, row.kind.clone(), row.status);
        view.node = row.node.clone();
        view.attempts = Some(row.attempts.max(0) as u32);
        view.payload_size = Some(row.payload_size.max(0) as u64);
        view.created_at = Some(row.created_at);
        view.started_at = row.started_at;
        view.finished_at = row.finished_at;
        view.message = row.error.clone();
        view.error = match row.status {
            TaskStatus::Failed => Some(ErrorCode::TaskFailed),
            TaskStatus::Dead => Some(ErrorCode::TaskDead),
            TaskStatus::Scheduled
            | TaskStatus::Queued
            | TaskStatus::Running
            | TaskStatus::Succeeded
            | TaskStatus::Cancelled => None,
        };
        if row.status == TaskStatus::Scheduled {
            view.run_at = row.run_at;
        }
        view.priority = (row.priority > 0).then_some(row.priority.clamp(0, 9) as u8);
        view.key = row.key.clone();
        view.progress = row.progress.map(|p| p.clamp(0, 100) as u8);
        view.progress_note = row.progress_note.clone();
        if let Some(data) = &row.result {
            view.set_result(data);
        }
        if let Some(key) = &row.result_key {
            view.result_size = row.result_size.map(|n| n as u64);
            view.result_key = Some(key.clone());
            view.result_url = Some(storage.presign_get(key));
        }
        // A listed row has no result bytes, only their size.
        if view.result_size.is_none() {
            view.result_size = row.result_size.map(|n| n as u64);
        }
        view
    }
}
