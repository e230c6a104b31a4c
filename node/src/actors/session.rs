//! Session: one actor per TCP connection, speaking the line protocol.
//!
//! Requests on one connection are served in order, one at a time (`ctx.wait`): responses come
//! back in request order, and while a request is in progress the connection is not read, so
//! a fast sender is slowed by TCP rather than buffered. Writes go through a bounded [`Outbox`]
//! to a writer task; a client that does not read its replies for `write_timeout_secs` is
//! disconnected, and one that sends nothing for `idle_timeout_secs` gets `idle_timeout` and is
//! closed. Bad input gets an error line and the connection stays usable; only a `PUT` whose
//! declared size is over the limit closes it (its body cannot be told apart from requests).

use super::uploader::{OpenObject, UploadStream};
use crate::protocol::codec::{Inbound, LineCodec, Outbound};
use crate::protocol::{error_line, ProtocolError, Request, TaskStatus, HELP};
use crate::service::{view_of, Payload, ServiceError, Services};
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use uuid::Uuid;

/// Responses buffered for a client before the session stops reading from it.
const OUTBOX: usize = 64;

/// Per-connection limits, from `[listener]`.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_line: usize,
    pub max_payload: u64,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
}

/// The writing side of a connection. `send` fails when the client has not taken its replies
/// for the write timeout (or has gone): the session then closes.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outbound>,
    timeout: Duration,
}

impl Outbox {
    pub async fn send(&self, item: Outbound) -> bool {
        matches!(
            tokio::time::timeout(self.timeout, self.tx.send(item)).await,
            Ok(Ok(()))
        )
    }

    async fn json(&self, value: serde_json::Value) -> bool {
        self.send(Outbound::Json(value)).await
    }
}

pub struct Session {
    svc: Services,
    out: Outbox,
    limits: SessionLimits,
    upload: Option<Upload>,
    connections: Arc<AtomicUsize>,
    last_activity: Instant,
    writer: tokio::task::JoinHandle<()>,
}

/// A `PUT` in progress.
struct Upload {
    id: Uuid,
    kind: String,
    wait: bool,
    size: u64,
    sink: UploadSink,
}

type UploadDone =
    tokio::task::JoinHandle<Result<Result<u64, crate::storage::StorageError>, MailboxError>>;

enum UploadSink {
    /// Small: kept in memory, sent inline.
    Memory(BytesMut),
    /// Large: streamed to the object store as it arrives.
    Store {
        key: String,
        tx: Option<mpsc::Sender<Bytes>>,
        done: UploadDone,
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
        limits: SessionLimits,
    ) {
        let (read, write) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Outbound>(OUTBOX);
        let writer = actix::spawn(async move {
            let mut sink =
                FramedWrite::new(write, LineCodec::new(limits.max_line, limits.max_payload));
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
            ctx.add_stream(FramedRead::new(
                read,
                LineCodec::new(limits.max_line, limits.max_payload),
            ));
            Session {
                svc,
                out: Outbox {
                    tx,
                    timeout: limits.write_timeout,
                },
                limits,
                upload: None,
                connections,
                last_activity: Instant::now(),
                writer,
            }
        });
    }

    /// Serve one request: run `fut` with the connection paused until it is done; it returns
    /// whether the connection must close afterwards.
    fn serve_one(&mut self, ctx: &mut Context<Self>, fut: impl Future<Output = bool> + 'static) {
        fut.into_actor(self)
            .map(|close, act, ctx: &mut Context<Self>| {
                act.last_activity = Instant::now();
                if close {
                    ctx.stop();
                }
            })
            .wait(ctx);
    }

    /// Answer with one line; close afterwards if `close` (or if the client is not reading).
    fn answer(&mut self, ctx: &mut Context<Self>, line: serde_json::Value, close: bool) {
        let out = self.out.clone();
        self.serve_one(ctx, async move { !out.json(line).await || close });
    }

    fn handle_request(&mut self, req: Request, ctx: &mut Context<Self>) {
        let svc = self.svc.clone();
        let out = self.out.clone();
        match req {
            Request::Ping => {
                self.serve_one(ctx, async move { !out.json(svc.health().await).await })
            }
            Request::Help => self.answer(ctx, serde_json::json!({ "help": HELP }), false),
            Request::Kinds => {
                let kinds: Vec<_> = svc
                    .kinds
                    .describe()
                    .into_iter()
                    .map(|(name, about)| serde_json::json!({"name": name, "about": about}))
                    .collect();
                self.answer(ctx, serde_json::json!({ "kinds": kinds }), false);
            }
            Request::Quit => self.answer(ctx, serde_json::json!({"bye": true}), true),
            Request::Submit {
                kind,
                payload,
                wait,
            } => self.serve_one(ctx, async move {
                let res = svc
                    .submit(Uuid::now_v7(), kind, Payload::Bytes(payload.into()), wait)
                    .await;
                !out.json(json_or_error(res)).await
            }),
            Request::Status(id) => self.serve_one(ctx, async move {
                !out.json(json_or_error(svc.status(id).await)).await
            }),
            Request::Dead(limit) => self.serve_one(ctx, async move {
                !out.json(json_or_error(svc.dead(limit).await)).await
            }),
            Request::Retry(id) => self.serve_one(ctx, async move {
                !out.json(json_or_error(svc.retry(id).await)).await
            }),
            Request::Result(id) => {
                self.serve_one(ctx, async move { send_result(&svc, &out, id).await })
            }
            Request::Put { kind, size, wait } => self.start_upload(kind, size, wait),
        }
    }

    fn start_upload(&mut self, kind: String, size: u64, wait: bool) {
        let id = Uuid::now_v7();
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
        self.serve_one(ctx, async move {
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
            !out.json(json_or_error(res)).await
        });
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
/// connection must close (the promised bytes could not all be sent, or the client is gone).
async fn send_result(svc: &Services, out: &Outbox, id: Uuid) -> bool {
    let row = match svc.row(id).await {
        Ok(row) => row,
        Err(e) => return !out.json(e.to_line()).await,
    };
    let status = row.status();
    if !status.is_final() {
        let e = ServiceError::NotFinished { id, status };
        return !out.json(e.to_line()).await;
    }
    let mut view = view_of(&row, &svc.storage);
    let key = match (&row.result_key, status) {
        (Some(key), TaskStatus::Succeeded) => key.clone(),
        _ => return !out.json(json_or_error(Ok(view))).await,
    };
    let stream = svc.uploader.send(OpenObject { key: key.clone() }).await;
    let (size, mut rx) = match stream {
        Ok(Ok((Some(size), rx))) => (size, rx),
        Ok(Ok((None, _))) => {
            let e = ServiceError::Unavailable(format!("object store gave no size for `{key}`"));
            return !out.json(e.to_line()).await;
        }
        Ok(Err(e)) => return !out.json(ServiceError::Storage(e).to_line()).await,
        Err(e) => {
            return !out
                .json(ServiceError::Unavailable(e.to_string()).to_line())
                .await
        }
    };
    view.bytes = Some(size);
    if !out.json(json_or_error(Ok(view))).await {
        return true;
    }
    let mut sent = 0u64;
    while let Some(chunk) = rx.recv().await {
        match chunk {
            Ok(bytes) => {
                sent += bytes.len() as u64;
                if !out.send(Outbound::Raw(bytes)).await {
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

    fn started(&mut self, ctx: &mut Self::Context) {
        let every =
            (self.limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        // Intervals do not fire while a request is being served (`ctx.wait`), so a client
        // waiting for a long task is never idle.
        ctx.run_interval(every, |act, ctx| {
            if act.upload.is_none() && act.last_activity.elapsed() >= act.limits.idle_timeout {
                let secs = act.limits.idle_timeout.as_secs();
                let line = error_line(
                    "idle_timeout",
                    format!("no request for {secs}s; closing the connection"),
                    None,
                );
                act.answer(ctx, line, true);
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.connections.fetch_sub(1, Ordering::SeqCst);
        if self.writer.is_finished() {
            return;
        }
        // Let queued replies drain briefly (QUIT's `bye`), then drop the socket even if the
        // client is not reading.
        let writer = std::mem::replace(&mut self.writer, actix::spawn(async {}));
        let grace = self.limits.write_timeout;
        actix::spawn(async move {
            let abort = writer.abort_handle();
            if tokio::time::timeout(grace, writer).await.is_err() {
                abort.abort();
            }
        });
    }
}

impl StreamHandler<Result<Inbound, std::io::Error>> for Session {
    fn handle(&mut self, item: Result<Inbound, std::io::Error>, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        match item {
            Ok(Inbound::Request(Ok(req))) => self.handle_request(req, ctx),
            Ok(Inbound::Request(Err(e))) => {
                let fatal = matches!(e, ProtocolError::PayloadTooLarge { .. });
                self.answer(ctx, error_line(e.code(), &e, None), fatal);
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
