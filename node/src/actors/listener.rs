//! SocketListener: accepts TCP connections and starts a [`Session`] for each, up to
//! `listener.max_connections`; past that a client gets one `busy` error line and is closed.

use super::session::{Session, SessionLimits};
use crate::service::Services;
use actix::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;

pub struct SocketListener {
    svc: Services,
    max_connections: usize,
    limits: SessionLimits,
    connections: Arc<AtomicUsize>,
}

impl SocketListener {
    pub fn start(
        listener: TcpListener,
        svc: Services,
        max_connections: usize,
        limits: SessionLimits,
    ) -> Addr<Self> {
        SocketListener::create(move |ctx| {
            ctx.add_stream(TcpListenerStream::new(listener));
            SocketListener {
                svc,
                max_connections,
                limits,
                connections: Arc::new(AtomicUsize::new(0)),
            }
        })
    }
}

impl Actor for SocketListener {
    type Context = Context<Self>;
}

/// Stop accepting connections (graceful shutdown); open sessions go on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopListening;

impl Handler<StopListening> for SocketListener {
    type Result = ();

    fn handle(&mut self, _: StopListening, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl StreamHandler<std::io::Result<TcpStream>> for SocketListener {
    fn handle(&mut self, item: std::io::Result<TcpStream>, _ctx: &mut Context<Self>) {
        let stream = match item {
            Ok(s) => s,
            Err(e) => {
                // Typically out of file descriptors; the next accept may succeed.
                tracing::warn!(error = %e, "accept failed");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        if self.connections.load(Ordering::SeqCst) >= self.max_connections {
            let limit = self.max_connections;
            actix::spawn(async move {
                let mut stream = stream;
                let line = protocol::ErrorLine::new(
                    protocol::ErrorCode::Busy,
                    format!("this node serves at most {limit} connections; try again or use another node"),
                );
                let mut text = serde_json::to_vec(&line).unwrap_or_default();
                text.push(b'\n');
                let _ = stream.write_all(&text).await;
                let _ = stream.shutdown().await;
            });
            return;
        }
        self.connections.fetch_add(1, Ordering::SeqCst);
        Session::serve(
            stream,
            self.svc.clone(),
            self.connections.clone(),
            self.limits,
        );
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        tracing::error!("listening socket closed");
        ctx.stop();
    }
}
