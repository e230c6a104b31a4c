//! SocketListener: accepts TCP connections and starts a [`Session`] for each, up to
//! `listener.max_connections`; past that a client gets one `busy` error line and is closed.
//!
//! With TLS configured the port speaks only TLS: a connection's handshake runs on its own
//! task (bounded in time, counted as a connection); a client whose first byte is not a TLS
//! handshake gets one plain `tls_required` error line and is closed.

use super::session::{Session, SessionLimits};
use crate::service::Services;
use crate::tls::ServerTls;
use actix::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;

/// The longest a TLS client may take to say hello and finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the listener pauses after a failed accept (out of file descriptors).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// The first byte of a TLS record carrying a handshake (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

pub struct SocketListener {
    svc: Services,
    max_connections: usize,
    limits: SessionLimits,
    connections: Arc<AtomicUsize>,
    tls: Option<ServerTls>,
    /// Tells every session when the node drains (see [`StopListening`]).
    drain: tokio::sync::watch::Sender<bool>,
}

impl SocketListener {
    pub fn start(
        listener: TcpListener,
        svc: Services,
        max_connections: usize,
        limits: SessionLimits,
        tls: Option<ServerTls>,
        connections: Arc<AtomicUsize>,
    ) -> Addr<Self> {
        SocketListener::create(move |ctx| {
            ctx.add_stream(TcpListenerStream::new(listener));
            SocketListener {
                svc,
                max_connections,
                limits,
                connections,
                tls,
                drain: tokio::sync::watch::Sender::new(false),
            }
        })
    }
}

/// Write one error line to a client that is being turned away, and close.
async fn turn_away(mut stream: TcpStream, line: protocol::ErrorLine) {
    let mut text = serde_json::to_vec(&line).unwrap_or_default();
    text.push(b'\n');
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&text)).await;
    let _ = stream.shutdown().await;
}

/// The TLS handshake of one connection, or why there is none.
async fn handshake(
    stream: TcpStream,
    tls: &ServerTls,
) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    let timed_out = || std::io::Error::from(std::io::ErrorKind::TimedOut);
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first))
        .await
        .map_err(|_| timed_out())??;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    if first[0] != TLS_HANDSHAKE {
        let line = protocol::ErrorLine::new(
            protocol::ErrorCode::TlsRequired,
            "this port speaks TLS only: connect with TLS (taskctl --tls --ca FILE)",
        );
        turn_away(stream, line).await;
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "plain text on the TLS port",
        ));
    }
    tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream))
        .await
        .map_err(|_| timed_out())?
}

impl Actor for SocketListener {
    type Context = Context<Self>;
}

/// Stop accepting connections (graceful shutdown), and tell every session to drain: it
/// reads no more requests, writes the answers of those it has, then closes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopListening;

impl Handler<StopListening> for SocketListener {
    type Result = ();

    fn handle(&mut self, _: StopListening, ctx: &mut Context<Self>) {
        self.drain.send_replace(true);
        ctx.stop();
    }
}

impl StreamHandler<std::io::Result<TcpStream>> for SocketListener {
    fn handle(&mut self, item: std::io::Result<TcpStream>, ctx: &mut Context<Self>) {
        let stream = match item {
            Ok(s) => s,
            Err(e) => {
                // Typically out of file descriptors: accepting again at once would fail again
                // in a tight loop, so the listener pauses (nothing else is lost: the pending
                // connections wait in the kernel's backlog).
                tracing::warn!(error = %e, pause = ?ACCEPT_PAUSE, "accept failed");
                ctx.wait(tokio::time::sleep(ACCEPT_PAUSE).into_actor(self));
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        if self.connections.load(Ordering::SeqCst) >= self.max_connections {
            let line = protocol::ErrorLine::new(
                protocol::ErrorCode::Busy,
                format!(
                    "this node serves at most {} connections; try again or use another node",
                    self.max_connections
                ),
            );
            actix::spawn(turn_away(stream, line));
            return;
        }
        self.connections.fetch_add(1, Ordering::SeqCst);
        let (svc, connections, limits) = (self.svc.clone(), self.connections.clone(), self.limits);
        let drain = self.drain.subscribe();
        let Some(tls) = self.tls.clone() else {
            let peer = stream.peer_addr().ok();
            let (read, write) = stream.into_split();
            Session::serve(read, write, svc, connections, limits, drain, peer);
            return;
        };
        actix::spawn(async move {
            let peer = stream.peer_addr().ok();
            match handshake(stream, &tls).await {
                Ok(stream) => {
                    let (read, write) = tokio::io::split(stream);
                    Session::serve(read, write, svc, connections, limits, drain, peer);
                }
                Err(e) => {
                    connections.fetch_sub(1, Ordering::SeqCst);
                    tracing::debug!(?peer, error = %e, "no TLS session");
                }
            }
        });
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        tracing::error!("listening socket closed");
        ctx.stop();
    }
}
