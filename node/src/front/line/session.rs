//! Session: one actor per TCP connection, speaking the line protocol, and dispatching each
//! request to the [`Services`].
//!
//! Requests on one connection may be pipelined: the session reads on while earlier requests
//! are still being served (up to [`MAX_PIPELINED`] at once), serves them side by side, and
//! the connection's [`writer`] answers strictly in request order. A client that sends one
//! request and waits (`nc`, most clients) sees no difference; one that sends many lines at
//! once gets many answers per write. Past the limit the connection is not read, so a fast
//! sender is slowed by TCP rather than buffered.
//!
//! A client that does not take its answers for `write_timeout_secs` is disconnected, and one
//! that sends nothing for `idle_timeout_secs` while nothing is pending gets `idle_timeout`
//! and is closed. Bad input gets an error line and the connection stays usable; only a `PUT`
//! whose declared size is over the limit closes it (its body cannot be told apart from
//! requests). A `PUT` body goes through `upload`.

mod auth;
mod requests;
mod upload;
mod work;
pub mod writer;

use crate::service::Services;
use actix::prelude::*;
use protocol::codec::{Inbound, LineCodec, Outbound};
use protocol::{ErrorCode, ErrorLine};
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::FramedRead;
use writer::{Item, Pending, Slot, Writer};

/// Requests of one connection served at once; past this the connection is not read until
/// the oldest is answered. A request weighs one slot, and one more per whole `SLOT_BYTES`
/// of payload, so large requests pipeline less deep and a connection holds at most
/// about `MAX_PIPELINED * SLOT_BYTES` (4 MiB) of requests in memory.
pub const MAX_PIPELINED: usize = 128;
const SLOT_BYTES: usize = 32 * 1024;
const _: () = assert!(MAX_PIPELINED * SLOT_BYTES <= 4 * 1024 * 1024);

/// Per-connection limits, from `[listener]`.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_line: usize,
    pub max_payload: u64,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    /// A connection that has not said `AUTH` (on a node with tokens) is closed after this.
    pub auth_timeout: Duration,
    /// How long a draining session (the node stops) may take to write its answers.
    pub drain_grace: Duration,
}

pub struct Session {
    /// Shared by this connection's requests (one clone of the services per connection).
    svc: Rc<Services>,
    slots: mpsc::Sender<Slot>,
    permits: Arc<Semaphore>,
    limits: SessionLimits,
    upload: Option<upload::Upload>,
    connections: Arc<AtomicUsize>,
    /// When the last request came in or the last answer went out.
    last_activity: Rc<Cell<Instant>>,
    writer: tokio::task::JoinHandle<()>,
    /// Who this connection is (after `AUTH`).
    who: auth::Who,
    /// Becomes `true` when the node drains.
    drain: tokio::sync::watch::Receiver<bool>,
    draining: bool,
    /// This connection's span (its peer and token): the session's own log lines carry it. A
    /// request's work is not instrumented with it: entering a span on every poll of every
    /// request cost the nodes ~13 µs a task at c=1024 (a quarter of their CPU).
    span: tracing::Span,
    /// Its number at the work hub, once it said `WORK`.
    worker: Option<u64>,
}

impl Session {
    /// Serve a connection (its two halves) until the peer leaves. The caller counted it in `connections`; the
    /// session uncounts it when it stops.
    pub fn serve(
        read: impl AsyncRead + Unpin + 'static,
        write: impl AsyncWrite + Unpin + 'static,
        svc: Services,
        connections: Arc<AtomicUsize>,
        limits: SessionLimits,
        drain: tokio::sync::watch::Receiver<bool>,
        peer: Option<std::net::SocketAddr>,
    ) {
        let span = tracing::info_span!(
            "connection",
            peer = tracing::field::display(peer.map_or("?".to_string(), |p| p.to_string())),
            token = tracing::field::Empty,
        );
        Session::create(move |ctx| {
            // Room for every request's answer, the close, and what is pushed to a worker.
            let (slots, queue) = mpsc::channel::<Slot>(MAX_PIPELINED + 1 + work::PUSH_ROOM);
            let last_activity = Rc::new(Cell::new(Instant::now()));
            let writer = Writer::new(write, limits.write_timeout, last_activity.clone());
            let session = ctx.address();
            let writer = actix::spawn(async move {
                writer.run(queue).await;
                // The writer gave up (or was told to close): the session ends with it.
                session.do_send(WriterGone);
            });
            ctx.add_stream(FramedRead::new(
                read,
                LineCodec::new(limits.max_line, limits.max_payload),
            ));
            Session {
                who: auth::Who::for_mode(svc.access.mode),
                svc: Rc::new(svc),
                slots,
                permits: Arc::new(Semaphore::new(MAX_PIPELINED)),
                limits,
                upload: None,
                connections,
                last_activity,
                writer,
                drain,
                draining: false,
                span,
                worker: None,
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

    /// Queue a slot; a writer that is gone (the client stopped reading) ends the session.
    fn queue(&mut self, ctx: &mut Context<Self>, answer: Pending, permit: OwnedSemaphorePermit) {
        let slot = Slot {
            answer,
            permit: Some(permit),
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
        let work = async move {
            // A connection that is gone takes no answers: stop working on this one (a waiting
            // submission stops waiting; its task goes on).
            let out = tokio::select! {
                out = fut => Some(out),
                _ = tx.closed() => None,
            };
            if let Some(out) = out {
                let _ = tx.send(Item::Out(out));
            }
        };
        actix::spawn(work);
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
            permit: None,
        });
    }

    /// Answer with one line at once; close afterwards if `close`.
    fn answer<T: serde::Serialize>(
        &mut self,
        ctx: &mut Context<Self>,
        permit: OwnedSemaphorePermit,
        line: &T,
        close: bool,
    ) {
        let out = Outbound::line(line);
        self.serve_one(ctx, permit, close, async move { out });
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.watch_auth_deadline(ctx);
        let mut drain = self.drain.clone();
        let told = async move { drain.wait_for(|d| *d).await.is_ok() };
        ctx.spawn(told.into_actor(self).map(|told, act, ctx| {
            if told {
                act.drain(ctx);
            }
        }));
        let every =
            (self.limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        // Idle means nothing pending either: a client waiting for a long task is not idle,
        // nor is a worker waiting for tasks.
        ctx.run_interval(every, |act, ctx| {
            if act.last_activity.get().elapsed() < act.limits.idle_timeout || act.worker.is_some()
            {
                return;
            }
            let secs = act.limits.idle_timeout.as_secs();
            if let Some(upload) = act.upload.take() {
                // A PUT whose body stopped coming: what arrived is dropped, and with it the
                // upload to the bucket (a multipart upload is aborted).
                let line = ErrorLine::new(
                    ErrorCode::IdleTimeout,
                    format!("no bytes of the PUT body for {secs}s; the upload is aborted and the connection closed"),
                );
                act.answer(ctx, upload.permit, &line, true);
                return;
            }
            let pending = act.permits.available_permits() < MAX_PIPELINED;
            if !pending {
                let line = ErrorLine::new(
                    ErrorCode::IdleTimeout,
                    format!("no request for {secs}s; closing the connection"),
                );
                act.admit(ctx, 1, move |act, ctx, permit| {
                    act.answer(ctx, permit, &line, true)
                });
            }
        });
    }

    /// The connection counts as open until its writer is done.
    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Some(worker) = self.worker.take() {
            // Its tasks go back at once.
            self.svc.leave(worker);
        }
        let connections = self.connections.clone();
        if self.writer.is_finished() {
            connections.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        // Let queued answers drain (QUIT's `bye`; a draining node's answers), then drop the
        // socket even if the client is not reading.
        let writer = std::mem::replace(&mut self.writer, actix::spawn(async {}));
        let grace = match self.draining {
            true => self.limits.drain_grace,
            false => self.limits.write_timeout,
        };
        actix::spawn(async move {
            let abort = writer.abort_handle();
            if tokio::time::timeout(grace, writer).await.is_err() {
                abort.abort();
            }
            connections.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

impl Session {
    /// The node drains: read no more requests (an unfinished `PUT` is aborted), write the
    /// answers of those taken, then close.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        tracing::debug!("node draining: the connection closes after its answers");
        self.draining = true;
        self.upload = None;
        self.close_after_answers();
        ctx.stop();
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

impl StreamHandler<Result<Inbound, std::io::Error>> for Session {
    fn handle(&mut self, item: Result<Inbound, std::io::Error>, ctx: &mut Context<Self>) {
        let _span = self.span.clone().entered();
        self.last_activity.set(Instant::now());
        match item {
            Ok(Inbound::Request(Ok(req))) => {
                self.admit(ctx, requests::weight(&req), move |act, ctx, permit| {
                    act.handle_request(req, permit, ctx)
                })
            }
            Ok(Inbound::Request(Err(e))) => {
                let fatal = e.is_fatal();
                let line = e.to_line();
                self.admit(ctx, 1, move |act, ctx, permit| {
                    act.answer(ctx, permit, &line, fatal)
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
        // ends the session). An unfinished PUT is aborted by dropping its intake.
        self.upload = None;
        self.close_after_answers();
    }
}

#[cfg(test)]
mod tests;
