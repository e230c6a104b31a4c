//! Uploader: all object-store traffic (payload uploads, result uploads, payload downloads for
//! workers) goes through here. Bodies stream; nothing holds a whole object in memory.

use crate::storage::{Storage, StorageError};
use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;

pub struct Uploader {
    storage: Storage,
}

impl Uploader {
    pub fn new(storage: Storage) -> Self {
        Uploader { storage }
    }
}

impl Actor for Uploader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

/// Store a small object.
#[derive(Message)]
#[rtype(result = "Result<(), StorageError>")]
pub struct PutObject {
    pub key: String,
    pub data: Bytes,
}

/// Store the bytes arriving on `body` (a client's `PUT` or HTTP body): exactly `size` of
/// them if given. The sender ends the body with an empty chunk; a body whose sender goes
/// away without one was cut short, and nothing is kept. Answers the bytes stored.
#[derive(Message)]
#[rtype(result = "Result<u64, StorageError>")]
pub struct UploadStream {
    pub key: String,
    pub body: mpsc::Receiver<Bytes>,
    pub size: Option<u64>,
}

/// Store a result that spilled to a file.
#[derive(Message)]
#[rtype(result = "Result<u64, StorageError>")]
pub struct UploadFile {
    pub key: String,
    pub file: std::fs::File,
}

/// Start streaming an object; its chunks arrive on the returned channel (size first if known).
#[derive(Message)]
#[rtype(result = "Result<(Option<u64>, mpsc::Receiver<std::io::Result<Bytes>>), StorageError>")]
pub struct OpenObject {
    pub key: String,
    /// Only these bytes (first to last, inclusive).
    pub range: Option<(u64, u64)>,
}

impl Handler<PutObject> for Uploader {
    type Result = ResponseFuture<Result<(), StorageError>>;

    fn handle(&mut self, msg: PutObject, _: &mut Context<Self>) -> Self::Result {
        let storage = self.storage.clone();
        Box::pin(async move { storage.put(&msg.key, msg.data).await })
    }
}

impl Handler<UploadStream> for Uploader {
    type Result = ResponseFuture<Result<u64, StorageError>>;

    fn handle(&mut self, msg: UploadStream, _: &mut Context<Self>) -> Self::Result {
        let storage = self.storage.clone();
        Box::pin(async move {
            let body = futures_util::stream::unfold(Some(msg.body), |rx| async move {
                let mut rx = rx?;
                match rx.recv().await {
                    Some(chunk) if chunk.is_empty() => None,
                    Some(chunk) => Some((Ok(chunk), Some(rx))),
                    None => {
                        let cut = std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the body was cut short",
                        );
                        Some((Err(cut), None))
                    }
                }
            });
            storage
                .upload_stream(&msg.key, Box::pin(body), msg.size)
                .await
        })
    }
}

impl Handler<UploadFile> for Uploader {
    type Result = ResponseFuture<Result<u64, StorageError>>;

    fn handle(&mut self, msg: UploadFile, _: &mut Context<Self>) -> Self::Result {
        let storage = self.storage.clone();
        Box::pin(async move {
            let file = tokio::fs::File::from_std(msg.file);
            let body = ReaderStream::with_capacity(file, 256 * 1024);
            storage.upload_stream(&msg.key, body, None).await
        })
    }
}

impl Handler<OpenObject> for Uploader {
    type Result =
        ResponseFuture<Result<(Option<u64>, mpsc::Receiver<std::io::Result<Bytes>>), StorageError>>;

    fn handle(&mut self, msg: OpenObject, _: &mut Context<Self>) -> Self::Result {
        let storage = self.storage.clone();
        Box::pin(async move {
            let (size, mut stream) = storage.get_stream(&msg.key, msg.range).await?;
            // A few chunks of read-ahead; the reader's pace bounds memory.
            let (tx, rx) = mpsc::channel(4);
            actix::spawn(async move {
                while let Some(chunk) = stream.next().await {
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                }
            });
            Ok((size, rx))
        })
    }
}

/// A blocking `Read` over an object streamed by [`OpenObject`], for worker threads.
pub struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
    /// Bytes expected in all; a stream that ends short is an error, not a short payload.
    remaining: Option<u64>,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<std::io::Result<Bytes>>, size: Option<u64>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
            remaining: size,
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => {
                    return match self.remaining {
                        Some(n) if n > 0 => Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("object stream ended {n} bytes early"),
                        )),
                        _ => Ok(0),
                    }
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(n as u64);
        }
        Ok(n)
    }
}

/// Whether the bucket answers (for health checks).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct CheckStore;

impl Handler<CheckStore> for Uploader {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: CheckStore, _: &mut Context<Self>) -> Self::Result {
        let storage = self.storage.clone();
        Box::pin(async move { storage.reachable().await })
    }
}
