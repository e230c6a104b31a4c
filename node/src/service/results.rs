//! `RESULT <id>`: a finished task's result, decided here: inline in its answer line, or (a
//! result kept in the bucket) a header line with `"bytes":N` followed by the object's bytes,
//! streamed from the store.

use super::{ServiceError, Services};
use crate::actors::uploader::OpenObject;
use crate::actors::Settle;
use crate::auth::Identity;
use crate::db::models::TaskRow;
use crate::storage::StorageError;
use bytes::Bytes;
use protocol::{TaskStatus, TaskView};
use tokio::sync::mpsc;
use uuid::Uuid;

/// What `RESULT` answers.
pub enum ResultBody {
    /// The task with its result inline (or why it failed).
    Inline(TaskView),
    /// The header (with `bytes` set), then exactly that many bytes from `chunks`.
    Stream {
        header: TaskView,
        size: u64,
        chunks: mpsc::Receiver<std::io::Result<Bytes>>,
    },
}

impl Services {
    /// Task `id`'s result; of a result in the bucket, only the bytes in `range` (first to last,
    /// inclusive) if given.
    pub async fn result(
        &self,
        id: Uuid,
        who: &Identity,
        range: Option<(u64, u64)>,
    ) -> Result<ResultBody, ServiceError> {
        let row = self.row(id, who).await?;
        if !row.status.is_final() {
            let status = row.status;
            return Err(ServiceError::NotFinished { id, status });
        }
        let mut header = self.view(&row);
        let key = match (&row.result_key, row.status) {
            (Some(key), TaskStatus::Succeeded) => key.clone(),
            _ => return Ok(ResultBody::Inline(header)),
        };
        let (size, chunks) = self
            .handles
            .uploader
            .send(OpenObject {
                key: key.clone(),
                range,
            })
            .await
            .settle()?;
        let size = size.ok_or_else(|| {
            StorageError::S3(format!("the object store gave no size for `{key}`"))
        })?;
        header.bytes = Some(size);
        Ok(ResultBody::Stream {
            header,
            size,
            chunks,
        })
    }
}

/// A payload's bytes (or the part asked for).
pub enum PayloadBody {
    Inline(Vec<u8>),
    /// Exactly the bytes asked for, from the bucket.
    Stream(mpsc::Receiver<std::io::Result<Bytes>>),
}

impl Services {
    /// The payload of `row` (a row `who` may see: [`Services::row`]), only the bytes in
    /// `range` (first to last inclusive, within its size) if given: inline from the row, or
    /// streamed from the bucket.
    pub async fn payload(
        &self,
        row: TaskRow,
        range: Option<(u64, u64)>,
    ) -> Result<PayloadBody, ServiceError> {
        if let Some(key) = row.payload_key {
            let (_, chunks) = self
                .handles
                .uploader
                .send(OpenObject { key, range })
                .await
                .settle()?;
            return Ok(PayloadBody::Stream(chunks));
        }
        let bytes = row.payload.unwrap_or_default();
        Ok(PayloadBody::Inline(match range {
            Some((first, last)) => bytes
                .get(first as usize..=last as usize)
                .unwrap_or_default()
                .to_vec(),
            None => bytes,
        }))
    }
}
