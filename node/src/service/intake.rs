//! Intake: where a task's payload goes as it arrives, decided once for request lines, `PUT`
//! bodies and HTTP bodies alike: up to `storage.inline_limit` it travels in the task message
//! (and the row); past that it streams to the bucket as it arrives, so no payload needs to
//! fit in memory. A body of unknown length (HTTP chunked) is kept until it passes the limit,
//! then streamed. A payload for an unknown kind is read and dropped, then refused.

use super::{ServiceError, Services};
use crate::actors::uploader::{UploadStream, Uploader};
use crate::actors::Settle;
use crate::messages::PayloadRef;
use crate::storage::StorageError;
use actix::Addr;
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// A payload being received.
pub enum Intake {
    /// Small: kept, sent inline.
    Inline(Vec<u8>),
    /// Large: streamed to the bucket under `key` as it arrives (one of the node's
    /// `storage.max_uploads` while it lasts).
    Bucket {
        key: String,
        tx: mpsc::Sender<Bytes>,
        done: tokio::task::JoinHandle<Result<u64, StorageError>>,
        _slot: OwnedSemaphorePermit,
    },
    /// Of unknown length: kept while it fits inline, then streamed to the bucket.
    Growing {
        buf: Vec<u8>,
        key: String,
        limit: usize,
        uploader: Addr<Uploader>,
        uploads: Arc<Semaphore>,
    },
    /// Refused (an unknown kind): the body is read and dropped, then this is answered.
    Refused(ServiceError),
}

impl Services {
    /// Before a payload is taken: a kind this node does not know yet may be an external
    /// kind a worker registered on another node a moment ago, so any name an external kind
    /// may have passes here; the submission itself is checked against the database
    /// ([`Services::find_kind`]) and a refused one's uploaded payload is deleted.
    fn check_kind_soon(&self, kind: &str) -> Result<(), ServiceError> {
        match protocol::work::valid_kind_name(kind) {
            true => Ok(()),
            false => self.check_kind(kind),
        }
    }

    /// Where the `size`-byte payload of task `id` of `kind` goes.
    pub fn intake(&self, id: Uuid, kind: &str, size: u64) -> Intake {
        if let Err(e) = self.check_kind_soon(kind) {
            return Intake::Refused(e);
        }
        if size <= self.inline_limit as u64 {
            return Intake::Inline(Vec::with_capacity(size as usize));
        }
        let key = self.handles.storage.key(&format!("payloads/{id}"));
        Intake::upload(&self.handles.uploader, &self.uploads, key, Some(size))
    }

    /// Where the payload of task `id` of `kind`, of a length not known yet, goes.
    pub fn intake_unsized(&self, id: Uuid, kind: &str) -> Intake {
        if let Err(e) = self.check_kind_soon(kind) {
            return Intake::Refused(e);
        }
        Intake::Growing {
            buf: Vec::new(),
            key: self.handles.storage.key(&format!("payloads/{id}")),
            limit: self.inline_limit,
            uploader: self.handles.uploader.clone(),
            uploads: self.uploads.clone(),
        }
    }
}

/// Which `Bytes` ends a body (see [`UploadStream`]).
fn end_of_body() -> Bytes {
    Bytes::new()
}

impl Intake {
    pub(super) fn upload(
        uploader: &Addr<Uploader>,
        uploads: &Arc<Semaphore>,
        key: String,
        size: Option<u64>,
    ) -> Intake {
        let Ok(slot) = uploads.clone().try_acquire_owned() else {
            return Intake::Refused(ServiceError::Busy(
                "this node has as many uploads in progress as it allows (storage.max_uploads); try again or use another node".into(),
            ));
        };
        let (tx, body) = mpsc::channel(8);
        let upload = UploadStream {
            key: key.clone(),
            body,
            size,
        };
        let uploader = uploader.clone();
        let done = actix::spawn(async move { uploader.send(upload).await.settle() });
        Intake::Bucket {
            key,
            tx,
            done,
            _slot: slot,
        }
    }

    /// Bytes taken so far that are held here (not yet in the bucket).
    pub fn held(&self) -> usize {
        match self {
            Intake::Inline(buf) | Intake::Growing { buf, .. } => buf.len(),
            _ => 0,
        }
    }

    /// Take the next chunk. For the bucket the chunk is handed on by the returned future:
    /// await it before reading more, so the sender goes at the store's pace and only a few
    /// chunks are ever in memory. (If the upload already failed, the chunk is dropped and
    /// [`Intake::finish`] says why.)
    pub fn push(&mut self, chunk: Bytes) -> Option<impl Future<Output = ()> + 'static> {
        if chunk.is_empty() {
            return None;
        }
        if let Intake::Growing {
            buf,
            key,
            limit,
            uploader,
            uploads,
        } = self
        {
            if buf.len() + chunk.len() <= *limit {
                buf.extend_from_slice(&chunk);
                return None;
            }
            // Past the inline limit: to the bucket, what was kept first.
            let held = Bytes::from(std::mem::take(buf));
            *self = Intake::upload(uploader, uploads, std::mem::take(key), None);
            let Intake::Bucket { tx, .. } = self else {
                return None; // refused: no room for another upload
            };
            let tx = tx.clone();
            return Some(futures_util::future::Either::Left(async move {
                let _ = tx.send(held).await;
                let _ = tx.send(chunk).await;
            }));
        }
        match self {
            Intake::Inline(buf) => {
                buf.extend_from_slice(&chunk);
                None
            }
            Intake::Bucket { tx, .. } => {
                let tx = tx.clone();
                Some(futures_util::future::Either::Right(async move {
                    let _ = tx.send(chunk).await;
                }))
            }
            Intake::Refused(_) | Intake::Growing { .. } => None,
        }
    }

    /// A payload that arrived whole (a request line): kept as it is when inline.
    pub async fn whole(self, data: Vec<u8>) -> Result<PayloadRef, ServiceError> {
        match self {
            Intake::Inline(_) => Ok(PayloadRef::Inline { data }),
            mut intake => {
                if let Some(sending) = intake.push(data.into()) {
                    sending.await;
                }
                intake.finish().await
            }
        }
    }

    /// The whole payload is in: where it is now.
    pub async fn finish(self) -> Result<PayloadRef, ServiceError> {
        match self {
            Intake::Inline(data) | Intake::Growing { buf: data, .. } => {
                Ok(PayloadRef::Inline { data })
            }
            Intake::Refused(e) => Err(e),
            Intake::Bucket { key, tx, done, .. } => {
                let _ = tx.send(end_of_body()).await;
                drop(tx);
                match done.await {
                    Ok(Ok(size)) => Ok(PayloadRef::Object { key, size }),
                    Ok(Err(e)) => Err(ServiceError::Storage(e)),
                    Err(e) => Err(ServiceError::Storage(StorageError::S3(format!(
                        "upload ended: {e}"
                    )))),
                }
            }
        }
    }
}
