//! [`Proxy`]: takes one dependency (the S3 store, RabbitMQ) away from the nodes that use it
//! without disturbing other tests.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

/// What a [`Proxy`] does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Forward them.
    Up,
    /// Cut them, and refuse new ones (closed at once).
    Down,
    /// Freeze them (open, silent), and accept new ones and never answer: a host that stopped
    /// responding.
    Stalled,
}

/// A TCP proxy a test can cut: takes one dependency (the S3 store, RabbitMQ) away from the
/// nodes that use it without disturbing other tests.
pub struct Proxy {
    pub addr: SocketAddr,
    state: tokio::sync::watch::Sender<State>,
    /// Bytes forwarded to the target so far.
    sent: Arc<AtomicU64>,
}

/// Reads from `inner`, counting the bytes into `count`.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        polled
    }
}

/// Forward both ways until either side closes, counting what goes to `outbound`.
async fn forward(inbound: &mut TcpStream, outbound: &mut TcpStream, sent: Arc<AtomicU64>) {
    let (in_r, mut in_w) = inbound.split();
    let (mut out_r, mut out_w) = outbound.split();
    let mut up = Counting {
        inner: in_r,
        count: sent,
    };
    tokio::select! {
        _ = tokio::io::copy(&mut up, &mut out_w) => {}
        _ = tokio::io::copy(&mut out_r, &mut in_w) => {}
    }
}

impl Proxy {
    /// Forward `127.0.0.1:<random port>` to `target`. Must be called inside a tokio runtime.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, state_rx) = tokio::sync::watch::channel(State::Up);
        let sent = Arc::new(AtomicU64::new(0));
        let counted = sent.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut changed = state_rx.clone();
                match *state_rx.borrow() {
                    State::Down => {
                        drop(inbound);
                        continue;
                    }
                    State::Stalled => {
                        // Hold the connection, silent, until the proxy is up again.
                        tokio::spawn(async move {
                            let _ = changed.wait_for(|s| *s == State::Up).await;
                            drop(inbound);
                        });
                        continue;
                    }
                    State::Up => {}
                }
                let sent = counted.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let cut = tokio::select! {
                        _ = forward(&mut inbound, &mut outbound, sent) => None,
                        now = changed.wait_for(|s| *s != State::Up) => now.ok().map(|s| *s),
                    };
                    if cut == Some(State::Stalled) {
                        // Freeze: both sides stay open and nothing moves.
                        let _ = changed.wait_for(|s| *s != State::Stalled).await;
                    }
                    // Then (or when down) drop both sides.
                });
            }
        });
        Proxy { addr, state, sent }
    }

    /// Bytes forwarded to the target so far (what the nodes sent it).
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// A proxy to the test S3 store (its endpoint: [`Proxy::http`]).
    pub async fn s3() -> Proxy {
        Proxy::start(url_addr(&crate::s3_endpoint())).await
    }

    /// A proxy to the test broker, and the AMQP URL that goes through it.
    pub async fn amqp() -> (Proxy, String) {
        let direct = crate::amqp_url();
        let proxy = Proxy::start(url_addr(&direct)).await;
        let via = direct.replace(&url_addr(&direct).to_string(), &proxy.addr.to_string());
        (proxy, via)
    }

    /// Cut every connection and refuse new ones (`false`), or forward again (`true`).
    pub fn set_up(&self, up: bool) {
        self.set(if up { State::Up } else { State::Down });
    }

    pub fn set(&self, state: State) {
        let _ = self.state.send(state);
    }

    /// `http://addr` (for an S3 endpoint through the proxy).
    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The host:port of a URL such as `http://127.0.0.1:9000` or `amqp://u:p@host:5672/%2f`.
pub fn url_addr(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let hostport = rest.split('/').next().unwrap_or(rest);
    use std::net::ToSocketAddrs;
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("no address in {url}"))
}
