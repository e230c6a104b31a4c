//! Session: one actor per TCP connection, speaking the line protocol.
//!
//! Requests on one connection may be pipelined: the session reads on while earlier requests
//! are still being served (up to [`MAX_PIPELINED`] at once), serves them side by side, and
//! answers strictly in request order. A client that sends one request and waits (`nc`, most
//! clients) sees no difference; one that sends many lines at once gets many answers per
//! write, which is what makes a busy connection cheap. Past the limit the connection is not
//! read, so a fast sender is slowed by TCP rather than buffered.
//!
//! Each request takes a slot in the answer queue when it is read; a writer task writes the
//! slots in order as their answers come. A client that does not take its answers for
//! `write_timeout_secs` is disconnected, and one that sends nothing for `idle_timeout_secs`
//! while nothing is pending gets `idle_timeout` and is closed. Bad input gets an error line
//! and the connection stays usable; only a `PUT` whose declared size is over the limit closes
//! it (its body cannot be told apart from requests).

use super::uploader::{OpenObject, UploadStream};
use crate::protocol::codec::{Inbound, LineCodec, Outbound};
use crate::protocol::{error_line, ProtocolError, Request, TaskStatus, HELP};
use crate::service::{view_of, Answer, Payload, ServiceError, Services};
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::{FramedRead, FramedWrite};
use uuid::Uuid;

/// Requests of one connection served at once; past this the connection is not read until
/// the oldest is answered. A request weighs one slot, and one more per whole [`SLOT_BYTES`]
/// of payload, so large requests pipeline less deep and a connection holds at most
/// about `MAX_PIPELINED * SLOT_BYTES` (4 MiB) of requests in memory.
pub const MAX_PIPELINED: usize = 128;
const SLOT_BYTES: usize = 32 * 1024;
const _: () = assert!(MAX_PIPELINED * SLOT_BYTES <= 4 * 1024 * 1024);

/// The pipelining slots `req` takes.
fn weight(req: &Request) -> u32 {
    let bytes = match req {
        Request::Submit { payload, .. } => payload.len(),
        _ => 0,
    };
    (1 + bytes / SLOT_BYTES).min(MAX_PIPELINED) as u32
}

/// Per-connection limits, from `[listener]`.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_line: usize,
    pub max_payload: u64,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
}

/// What goes out for one request, in order.
enum Item {
    Out(Outbound),
    /// Close the connection once everything before has been written.
    Close,
}

/// A request's place in the answer queue: one answer, or a stream of them (a `RESULT`
/// header and its bytes). Holds the request's pipelining permit until written.
struct Slot {
    answer: Pending,
    _permit: Option<OwnedSemaphorePermit>,
}

enum Pending {
    One(oneshot::Receiver<Item>),
    Stream(mpsc::Receiver<Item>),
}

/// Where a streaming answer writes. `send` fails when the client has not taken its answers
/// for the write timeout (or has gone): the answer then ends and the connection closes.
pub struct Outbox {
    tx: mpsc::Sender<Item>,
    timeout: Duration,
}

impl Outbox {
    pub async fn send(&self, item: Outbound) -> bool {
        matches!(
            tokio::time::timeout(self.timeout, self.tx.send(Item::Out(item))).await,
            Ok(Ok(()))
        )
    }

    async fn json(&self, value: serde_json::Value) -> bool {
        self.send(Outbound::Json(value)).await
    }
}

pub struct Session {
    /// Shared by this connection's requests (one clone of the services per connection).
    svc: Rc<Services>,
    slots: mpsc::Sender<Slot>,
    permits: Arc<Semaphore>,
    limits: SessionLimits,
    upload: Option<Upload>,
    connections: Arc<AtomicUsize>,
    /// When the last request came in or the last answer went out.
    last_activity: Rc<Cell<Instant>>,
    writer: tokio::task::JoinHandle<()>,
}

/// A `PUT` in progress.
struct Upload {
    permit: OwnedSemaphorePermit,
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
        Session::create(move |ctx| {
            let (slots, queue) = mpsc::channel::<Slot>(MAX_PIPELINED + 1);
            let last_activity = Rc::new(Cell::new(Instant::now()));
            let sink = FramedWrite::new(write, LineCodec::new(limits.max_line, limits.max_payload));
            let writer = Writer {
                sink,
                timeout: limits.write_timeout,
                unflushed: false,
                last_activity: last_activity.clone(),
            };
            let writer = actix::spawn(write_answers(writer, queue, ctx.address()));
            ctx.add_stream(FramedRead::new(
                read,
                LineCodec::new(limits.max_line, limits.max_payload),
            ));
            Session {
                svc: Rc::new(svc),
                slots,
                permits: Arc::new(Semaphore::new(MAX_PIPELINED)),
                limits,
                upload: None,
                connections,
                last_activity,
                writer,
            }
        });
    }

    /// Take `slots` pipelining slots, then run `then`; with too few free, stop reading until
    /// older requests are answered (requests stay in order).
    fn admit(
        &mut self,
        ctx: &mut Context<Self>,
        slots: u32,
        then: impl FnOnce(&mut Self, &mut Context<Self>, OwnedSemaphorePermit) + 'static,
    ) {
        match self.permits.clone().try_acquire_many_owned(slots) {
            Ok(permit) => then(self, ctx, permit),
            Err(_) => self
                .permits
                .clone()
                .acquire_many_owned(slots)
                .into_actor(self)
                .map(move |permit, act, ctx| match permit {
                    Ok(permit) => then(act, ctx, permit),
                    Err(_) => ctx.stop(),
                })
                .wait(ctx),
        }
    }

    /// Queue `slot`; a writer that is gone (the client stopped reading) ends the session.
    fn queue(&mut self, ctx: &mut Context<Self>, answer: Pending, permit: OwnedSemaphorePermit) {
        let slot = Slot {
            answer,
            _permit: Some(permit),
        };
        // Never full: every queued slot but a last `Close` holds one of MAX_PIPELINED permits.
        if self.slots.try_send(slot).is_err() {
            ctx.stop();
        }
    }

    /// Answer with what `fut` gives, in turn; the connection closes after it if `close`.
    fn serve_one(
        &mut self,
        ctx: &mut Context<Self>,
        permit: OwnedSemaphorePermit,
        close: bool,
        fut: impl Future<Output = Outbound> + 'static,
    ) {
        let (mut tx, rx) = oneshot::channel();
        self.queue(ctx, Pending::One(rx), permit);
        actix::spawn(async move {
            // A connection that is gone takes no answers: stop working on this one (a waiting
            // submission stops waiting; its task goes on).
            let out = tokio::select! {
                out = fut => Some(out),
                _ = tx.closed() => None,
            };
            if let Some(out) = out {
                let _ = tx.send(Item::Out(out));
            }
        });
        if close {
            // Take nothing more from this client; what is queued is still answered.
            self.close_after_answers();
            ctx.stop();
        }
    }

    /// Close the connection once every answer queued so far is written.
    fn close_after_answers(&mut self) {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Item::Close);
        // Needs no permit: nothing comes after it. Fails only if the writer is gone already.
        let _ = self.slots.try_send(Slot {
            answer: Pending::One(rx),
            _permit: None,
        });
    }

    /// Answer with one line at once; close afterwards if `close`.
    fn answer(
        &mut self,
        ctx: &mut Context<Self>,
        permit: OwnedSemaphorePermit,
        line: serde_json::Value,
        close: bool,
    ) {
        self.serve_one(ctx, permit, close, async move { Outbound::Json(line) });
    }

    /// A streaming answer (`RESULT`): `fut` writes to the outbox and returns whether the
    /// connection must close afterwards.
    fn serve_stream<F: Future<Output = bool> + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        permit: OwnedSemaphorePermit,
        fut: impl FnOnce(Outbox) -> F,
    ) {
        let (tx, rx) = mpsc::channel(8);
        self.queue(ctx, Pending::Stream(rx), permit);
        let out = Outbox {
            tx: tx.clone(),
            timeout: self.limits.write_timeout,
        };
        let fut = fut(out);
        actix::spawn(async move {
            if fut.await {
                let _ = tx.send(Item::Close).await;
            }
        });
    }

    fn handle_request(
        &mut self,
        req: Request,
        permit: OwnedSemaphorePermit,
        ctx: &mut Context<Self>,
    ) {
        let svc = self.svc.clone();
        match req {
            Request::Ping => self.serve_one(ctx, permit, false, async move {
                Outbound::Json(svc.health().await)
            }),
            Request::Help => self.answer(ctx, permit, serde_json::json!({ "help": HELP }), false),
            Request::Kinds => {
                let kinds: Vec<_> = svc
                    .kinds
                    .describe()
                    .into_iter()
                    .map(|(name, about)| serde_json::json!({"name": name, "about": about}))
                    .collect();
                self.answer(ctx, permit, serde_json::json!({ "kinds": kinds }), false);
            }
            Request::Quit => self.answer(ctx, permit, serde_json::json!({"bye": true}), true),
            Request::Submit {
                kind,
                payload,
                wait,
            } => self.serve_one(ctx, permit, false, async move {
                let res = svc
                    .submit(Uuid::now_v7(), kind, Payload::Bytes(payload.into()), wait)
                    .await;
                answer_line(res)
            }),
            Request::Status(id) => self.serve_one(ctx, permit, false, async move {
                line_or_error(svc.status(id).await)
            }),
            Request::Dead(limit) => self.serve_one(ctx, permit, false, async move {
                line_or_error(svc.dead(limit).await)
            }),
            Request::Retry(id) => self.serve_one(ctx, permit, false, async move {
                line_or_error(svc.retry(id).await)
            }),
            Request::Result(id) => self.serve_stream(ctx, permit, move |out| async move {
                send_result(&svc, &out, id).await
            }),
            Request::Put { kind, size, wait } => self.start_upload(kind, size, wait, permit),
        }
    }

    fn start_upload(&mut self, kind: String, size: u64, wait: bool, permit: OwnedSemaphorePermit) {
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
            permit,
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
        self.serve_one(ctx, upload.permit, false, async move {
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
            answer_line(res)
        });
    }
}

/// A submission's answer line.
fn answer_line(res: Result<Answer, ServiceError>) -> Outbound {
    match res {
        Ok(Answer::Json(json)) => Outbound::Line(json),
        Ok(Answer::View(view)) => line_or_error(Ok(view)),
        Err(e) => Outbound::Json(e.to_line()),
    }
}

/// `value` as an answer line, serialized once.
fn line_or_error<T: serde::Serialize>(res: Result<T, ServiceError>) -> Outbound {
    match res.map(|v| serde_json::to_vec(&v)) {
        Ok(Ok(json)) => Outbound::Line(json.into()),
        Ok(Err(e)) => Outbound::Json(error_line("internal", e, None)),
        Err(e) => Outbound::Json(e.to_line()),
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
        // Idle means nothing pending either: a client waiting for a long task is not idle.
        ctx.run_interval(every, |act, ctx| {
            let pending = act.permits.available_permits() < MAX_PIPELINED;
            if act.upload.is_none()
                && !pending
                && act.last_activity.get().elapsed() >= act.limits.idle_timeout
            {
                let secs = act.limits.idle_timeout.as_secs();
                let line = error_line(
                    "idle_timeout",
                    format!("no request for {secs}s; closing the connection"),
                    None,
                );
                act.admit(ctx, 1, move |act, ctx, permit| {
                    act.answer(ctx, permit, line, true)
                });
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.connections.fetch_sub(1, Ordering::SeqCst);
        if self.writer.is_finished() {
            return;
        }
        // Let queued answers drain briefly (QUIT's `bye`), then drop the socket even if the
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

/// The writer gave up (the client is not reading, or went away): end the session.
#[derive(Message)]
#[rtype(result = "()")]
struct WriterGone;

impl Handler<WriterGone> for Session {
    type Result = ();

    fn handle(&mut self, _: WriterGone, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Pending {
    /// The next item if it is there: `Some(None)` when the answer is complete.
    fn try_next(&mut self) -> Option<Option<Item>> {
        match self {
            Pending::One(rx) => match rx.try_recv() {
                Ok(item) => Some(Some(item)),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(None),
            },
            Pending::Stream(rx) => match rx.try_recv() {
                Ok(item) => Some(Some(item)),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
            },
        }
    }

    /// Wait for the next item; `None` when the answer is complete.
    async fn next(&mut self) -> Option<Item> {
        match self {
            Pending::One(rx) => rx.await.ok(),
            Pending::Stream(rx) => rx.recv().await,
        }
    }
}

/// The writing side of a connection: buffers answers, sends them when the next one is not
/// ready yet, and gives up when the client does not take them within `timeout`.
struct Writer {
    sink: FramedWrite<tokio::net::tcp::OwnedWriteHalf, LineCodec>,
    timeout: Duration,
    unflushed: bool,
    last_activity: Rc<Cell<Instant>>,
}

impl Writer {
    async fn feed(&mut self, out: Outbound) -> bool {
        self.unflushed = true;
        matches!(
            tokio::time::timeout(self.timeout, self.sink.feed(out)).await,
            Ok(Ok(()))
        )
    }

    async fn flush(&mut self) -> bool {
        if !self.unflushed {
            return true;
        }
        self.unflushed = false;
        self.last_activity.set(Instant::now());
        matches!(
            tokio::time::timeout(self.timeout, self.sink.flush()).await,
            Ok(Ok(()))
        )
    }
}

/// Write the answers of `queue`'s slots in order, many per write when they are ready
/// together. Ends on `Item::Close`, when the session is gone, or when a write does not
/// complete within the write timeout (the client does not read); then tells the session.
async fn write_answers(mut out: Writer, mut queue: mpsc::Receiver<Slot>, session: Addr<Session>) {
    'slots: loop {
        let mut slot = match queue.try_recv() {
            Ok(slot) => slot,
            Err(mpsc::error::TryRecvError::Empty) => {
                if !out.flush().await {
                    break;
                }
                match queue.recv().await {
                    Some(slot) => slot,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        loop {
            let item = match slot.answer.try_next() {
                Some(item) => item,
                // Not ready: send what is written so far, then wait for it.
                None if out.flush().await => slot.answer.next().await,
                None => break 'slots,
            };
            match item {
                None => break,
                Some(Item::Close) => break 'slots,
                Some(Item::Out(item)) => {
                    if !out.feed(item).await {
                        break 'slots;
                    }
                    if matches!(slot.answer, Pending::One(_)) {
                        break;
                    }
                }
            }
        }
    }
    let _ = tokio::time::timeout(out.timeout, out.sink.close()).await;
    session.do_send(WriterGone);
}

impl StreamHandler<Result<Inbound, std::io::Error>> for Session {
    fn handle(&mut self, item: Result<Inbound, std::io::Error>, ctx: &mut Context<Self>) {
        self.last_activity.set(Instant::now());
        match item {
            Ok(Inbound::Request(Ok(req))) => {
                self.admit(ctx, weight(&req), move |act, ctx, permit| {
                    act.handle_request(req, permit, ctx)
                })
            }
            Ok(Inbound::Request(Err(e))) => {
                let fatal = matches!(e, ProtocolError::PayloadTooLarge { .. });
                let line = error_line(e.code(), &e, None);
                self.admit(ctx, 1, move |act, ctx, permit| {
                    act.answer(ctx, permit, line, fatal)
                });
            }
            Ok(Inbound::Chunk(chunk)) => self.upload_chunk(chunk, ctx),
            Ok(Inbound::UploadEnd) => self.finish_upload(ctx),
            Err(e) => {
                tracing::debug!(error = %e, "connection read failed");
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        // The peer closed its sending side: answer what it asked, then close (the writer then
        // ends the session). An unfinished PUT is aborted by dropping its sender.
        self.upload = None;
        self.close_after_answers();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submit(bytes: usize) -> Request {
        Request::Submit {
            kind: "echo".into(),
            payload: vec![b'x'; bytes],
            wait: true,
        }
    }

    #[test]
    fn large_requests_pipeline_less_deep() {
        assert_eq!(weight(&Request::Ping), 1);
        assert_eq!(weight(&submit(16)), 1);
        assert_eq!(weight(&submit(SLOT_BYTES - 1)), 1);
        assert_eq!(weight(&submit(SLOT_BYTES)), 2);
        assert_eq!(weight(&submit(10 * SLOT_BYTES + 1)), 11);
        // A line of the largest size still fits (it waits for the connection to drain).
        assert_eq!(weight(&submit(64 * 1024 * 1024)), MAX_PIPELINED as u32);
    }
}
