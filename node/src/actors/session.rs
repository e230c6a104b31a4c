//! Session: one actor per TCP connection, speaking the line protocol.
//!
//! Requests on one connection are served in order, one at a time (`ctx.wait`): responses come
//! back in request order, and while a request is in progress the connection is not read, so
//! a fast sender is slowed by TCP rather than buffered. Writes go through a bounded channel to
//! a writer task, so a client that does not read its replies stalls only itself.
//! Bad input gets an error line and the connection stays usable; only a `PUT` whose declared
//! size is over the limit closes it (its body cannot be told apart from requests).

use super::uploader::UploadStream;
use crate::protocol::codec::{Inbound, LineCodec, Outbound};
use crate::protocol::{error_line, ProtocolError, Request, TaskStatus, HELP};
use crate::service::{view_of, Payload, ServiceError, Services};
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use uuid::Uuid;

/// Responses buffered for a client before the session stops reading from it.
const OUTBOX: usize = 64;

pub struct Session {
    svc: Services,
    out: mpsc::Sender<Outbound>,
    upload: Option<Upload>,
    connections: Arc<AtomicUsize>,
}

/// A `PUT` in progress.
struct Upload {
    id: Uuid,
    kind: String,
    wait: bool,
    size: u64,
    sink: UploadSink,
}

enum UploadSink {
    /// Small: kept in memory, sent inline.
    Memory(BytesMut),
    /// Large: streamed to the object store as it arrives.
    Store {
        key: String,
        tx: Option<mpsc::Sender<Bytes>>,
        done: tokio::task::JoinHandle<
            Result<Result<u64, crate::storage::StorageError>, MailboxError>,
        >,
    },
    /// Refused (unknown kind): the body is read and dropped, then this error is answered.
    Discard(ServiceError),
}

impl Session {
    /// Serve `stream` until the peer leaves. The caller counted it in `connections`; the
    /// session uncounts it when it stops.
    pub fn serve(
        stream: TcpStream,
        svc: Services,
        connections: Arc<AtomicUsize>,
        max_line: usize,
        max_payload: u64,
    ) {
        let (read, write) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Outbound>(OUTBOX);
        actix::spawn(async move {
            let mut sink = FramedWrite::new(write, LineCodec::new(max_line, max_payload));
            while let Some(item) = rx.recv().await {
                if sink.feed(item).await.is_err() {
                    return;
                }
                while let Ok(more) = rx.try_recv() {
                    if sink.feed(more).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        Session::create(move |ctx| {
            ctx.add_stream(FramedRead::new(read, LineCodec::new(max_line, max_payload)));
            Session {
                svc,
                out: tx,
                upload: None,
                connections,
            }
        });
    }

    /// Send `items` in order, pausing this session until they are queued for writing; then
    /// close the connection if `close`.
    fn reply(&mut self, ctx: &mut Context<Self>, items: Vec<Outbound>, close: bool) {
        let out = self.out.clone();
        async move {
            for item in items {
                if out.send(item).await.is_err() {
                    break;
                }
            }
        }
        .into_actor(self)
        .map(move |_, _, ctx: &mut Context<Self>| {
            if close {
                ctx.stop();
            }
        })
        .wait(ctx);
    }

    fn handle_request(&mut self, req: Request, ctx: &mut Context<Self>) {
        let svc = self.svc.clone();
        let out = self.out.clone();
        match req {
            Request::Ping => {
                let line = serde_json::json!({"pong": true, "node": svc.node});
                self.reply(ctx, vec![Outbound::Json(line)], false);
            }
            Request::Help => {
                let line = serde_json::json!({"help": HELP});
                self.reply(ctx, vec![Outbound::Json(line)], false);
            }
            Request::Kinds => {
                let kinds: Vec<_> = svc
                    .kinds
                    .describe()
                    .into_iter()
                    .map(|(name, about)| serde_json::json!({"name": name, "about": about}))
                    .collect();
                self.reply(
                    ctx,
                    vec![Outbound::Json(serde_json::json!({"kinds": kinds}))],
                    false,
                );
            }
            Request::Quit => {
                self.reply(
                    ctx,
                    vec![Outbound::Json(serde_json::json!({"bye": true}))],
                    true,
                );
            }
            Request::Submit {
                kind,
                payload,
                wait,
            } => {
                async move {
                    let res = svc
                        .submit(Uuid::new_v4(), kind, Payload::Bytes(payload.into()), wait)
                        .await;
                    let _ = out.send(Outbound::Json(json_or_error(res))).await;
                }
                .into_actor(self)
                .wait(ctx);
            }
            Request::Status(id) => {
                async move {
                    let res = svc.status(id).await;
                    let _ = out.send(Outbound::Json(json_or_error(res))).await;
                }
                .into_actor(self)
                .wait(ctx);
            }
            Request::Dead(limit) => {
                async move {
                    let res = svc.dead(limit).await;
                    let _ = out.send(Outbound::Json(json_or_error(res))).await;
                }
                .into_actor(self)
                .wait(ctx);
            }
            Request::Retry(id) => {
                async move {
                    let res = svc.retry(id).await;
                    let _ = out.send(Outbound::Json(json_or_error(res))).await;
                }
                .into_actor(self)
                .wait(ctx);
            }
            Request::Result(id) => {
                async move { send_result(&svc, &out, id).await }
                    .into_actor(self)
                    .map(|broken, _, ctx: &mut Context<Self>| {
                        if broken {
                            ctx.stop();
                        }
                    })
                    .wait(ctx);
            }
            Request::Put { kind, size, wait } => self.start_upload(kind, size, wait),
        }
    }

    fn start_upload(&mut self, kind: String, size: u64, wait: bool) {
        let id = Uuid::new_v4();
        let sink = if let Err(e) = self.svc.check_kind(&kind) {
            UploadSink::Discard(e)
        } else if size as usize <= self.svc.inline_limit {
            UploadSink::Memory(BytesMut::with_capacity(size as usize))
        } else {
            let key = self.svc.storage.key(&format!("payloads/{id}"));
            let (tx, body) = mpsc::channel(8);
            let done = actix::spawn(self.svc.uploader.send(UploadStream {
                key: key.clone(),
                body,
                size,
            }));
            UploadSink::Store {
                key,
                tx: Some(tx),
                done,
            }
        };
        self.upload = Some(Upload {
            id,
            kind,
            wait,
            size,
            sink,
        });
    }

    fn upload_chunk(&mut self, chunk: Bytes, ctx: &mut Context<Self>) {
        let Some(upload) = self.upload.as_mut() else {
            return;
        };
        match &mut upload.sink {
            UploadSink::Memory(buf) => buf.extend_from_slice(&chunk),
            UploadSink::Discard(_) => {}
            UploadSink::Store { tx, .. } => {
                if let Some(sender) = tx.clone() {
                    // Waiting here holds back reading the socket: the client goes at the
                    // store's pace and only a few chunks are ever in memory.
                    async move { sender.send(chunk).await.is_ok() }
                        .into_actor(self)
                        .map(|ok, act, _| {
                            if !ok {
                                // The upload failed early; its error is answered at the end.
                                if let Some(Upload {
                                    sink: UploadSink::Store { tx, .. },
                                    ..
                                }) = act.upload.as_mut()
                                {
                                    *tx = None;
                                }
                            }
                        })
                        .wait(ctx);
                }
            }
        }
    }

    fn finish_upload(&mut self, ctx: &mut Context<Self>) {
        let Some(upload) = self.upload.take() else {
            return;
        };
        let svc = self.svc.clone();
        let out = self.out.clone();
        async move {
            let payload = match upload.sink {
                UploadSink::Discard(e) => Err(e),
                UploadSink::Memory(buf) => Ok(Payload::Bytes(buf.freeze())),
                UploadSink::Store { key, tx, done } => {
                    drop(tx);
                    match done.await {
                        Ok(Ok(Ok(_))) => Ok(Payload::Stored {
                            key,
                            size: upload.size,
                        }),
                        Ok(Ok(Err(e))) => Err(ServiceError::Storage(e)),
                        Ok(Err(e)) => Err(ServiceError::Unavailable(e.to_string())),
                        Err(e) => Err(ServiceError::Unavailable(e.to_string())),
                    }
                }
            };
            let res = match payload {
                Ok(payload) => {
                    svc.submit(upload.id, upload.kind, payload, upload.wait)
                        .await
                }
                Err(e) => Err(e),
            };
            let _ = out.send(Outbound::Json(json_or_error(res))).await;
        }
        .into_actor(self)
        .wait(ctx);
    }
}

fn json_or_error<T: serde::Serialize>(res: Result<T, ServiceError>) -> serde_json::Value {
    match res {
        Ok(v) => serde_json::to_value(v).unwrap_or_else(|e| error_line("internal", e, None)),
        Err(e) => e.to_line(),
    }
}

/// `RESULT <id>`: the task with its result; a result kept in the bucket follows its header
/// line as exactly `bytes` raw bytes, streamed from the store. Returns `true` when the
/// promised bytes could not all be sent, so the connection must close.
async fn send_result(svc: &Services, out: &mpsc::Sender<Outbound>, id: Uuid) -> bool {
    let row = match svc.row(id).await {
        Ok(row) => row,
        Err(e) => {
            let _ = out.send(Outbound::Json(e.to_line())).await;
            return false;
        }
    };
    let status = row.status();
    if !status.is_final() {
        let e = ServiceError::NotFinished { id, status };
        let _ = out.send(Outbound::Json(e.to_line())).await;
        return false;
    }
    let mut view = view_of(&row, &svc.storage);
    let key = match (&row.result_key, status) {
        (Some(key), TaskStatus::Succeeded) => key.clone(),
        _ => {
            let _ = out.send(Outbound::Json(json_or_error(Ok(view)))).await;
            return false;
        }
    };
    let stream = svc
        .uploader
        .send(super::uploader::OpenObject { key: key.clone() })
        .await;
    let (size, mut rx) = match stream {
        Ok(Ok((Some(size), rx))) => (size, rx),
        Ok(Ok((None, _))) => {
            let e = ServiceError::Unavailable(format!("object store gave no size for `{key}`"));
            let _ = out.send(Outbound::Json(e.to_line())).await;
            return false;
        }
        Ok(Err(e)) => {
            let _ = out
                .send(Outbound::Json(ServiceError::Storage(e).to_line()))
                .await;
            return false;
        }
        Err(e) => {
            let e = ServiceError::Unavailable(e.to_string());
            let _ = out.send(Outbound::Json(e.to_line())).await;
            return false;
        }
    };
    view.bytes = Some(size);
    if out
        .send(Outbound::Json(json_or_error(Ok(view))))
        .await
        .is_err()
    {
        return false;
    }
    let mut sent = 0u64;
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Ok(bytes) => {
                sent += bytes.len() as u64;
                if out.send(Outbound::Raw(bytes)).await.is_err() {
                    return true;
                }
            }
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "result stream failed mid-way");
                break;
            }
        }
    }
    if sent != size {
        // The header promised `size` bytes; the stream is now out of step, so end it.
        tracing::warn!(task = %id, sent, size, "result stream short; closing connection");
        return true;
    }
    false
}

impl Actor for Session {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

impl StreamHandler<Result<Inbound, std::io::Error>> for Session {
    fn handle(&mut self, item: Result<Inbound, std::io::Error>, ctx: &mut Context<Self>) {
        match item {
            Ok(Inbound::Request(Ok(req))) => self.handle_request(req, ctx),
            Ok(Inbound::Request(Err(e))) => {
                let fatal = matches!(e, ProtocolError::PayloadTooLarge { .. });
                let line = error_line(e.code(), &e, None);
                self.reply(ctx, vec![Outbound::Json(line)], fatal);
            }
            Ok(Inbound::Chunk(chunk)) => self.upload_chunk(chunk, ctx),
            Ok(Inbound::UploadEnd) => self.finish_upload(ctx),
            Err(e) => {
                tracing::debug!(error = %e, "connection read failed");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The peer closed its side (an unfinished PUT is aborted by dropping its sender).
        ctx.stop();
    }
}
