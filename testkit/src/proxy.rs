//! [`Proxy`]: takes one dependency (the S3 store, RabbitMQ) away from the nodes that use it
//! without disturbing other tests.

use std::net::SocketAddr;
use tokio::net::TcpStream;

/// A TCP proxy a test can cut: takes one dependency (the S3 store, RabbitMQ) away from the
/// nodes that use it without disturbing other tests.
pub struct Proxy {
    pub addr: SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    /// Forward `127.0.0.1:<random port>` to `target`. Must be called inside a tokio runtime.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, up_rx) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !*up_rx.borrow() {
                    drop(inbound); // down: refuse by closing at once
                    continue;
                }
                let mut down = up_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = down.wait_for(|up| !*up) => {} // cut: drop both sides
                    }
                });
            }
        });
        Proxy { addr, up }
    }

    /// Cut every connection and refuse new ones (`false`), or forward again (`true`).
    pub fn set_up(&self, up: bool) {
        let _ = self.up.send(up);
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
