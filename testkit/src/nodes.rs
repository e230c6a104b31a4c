//! Nodes started by a test: in-process ([`TestNode`]) or as a real `tasknode` process
//! ([`ChildNode`], for kill -9, SIGTERM and exit codes).

use crate::env::TestEnv;
use protocol::{Client, ClientError, ErrorCode};
use std::net::SocketAddr;
use std::time::Duration;
use tasknode::actors::worker_pool::PoolStats;
use tasknode::startup::Node;
use tasknode::storage::Storage;

/// Connect the typed client to `addr` (not yet authenticated).
pub async fn connect(addr: SocketAddr) -> Client {
    Client::connect(&addr.to_string())
        .await
        .unwrap_or_else(|e| panic!("connect to node at {addr}: {e}"))
}

/// Connect to the first of `servers` that answers (from `start`) and `AUTH` with `token`,
/// trying again for up to 20 s (a node may be restarting, a balancer refusing meanwhile).
pub async fn reconnect(servers: &[String], start: usize, token: &str) -> Client {
    crate::poll_until("a node accepts a connection", 20, async || {
        let mut c = Client::connect_any(servers, start, &protocol::Transport::plain())
            .await
            .ok()?;
        c.auth(token).await.ok()?;
        Some(c)
    })
    .await
}

/// Connect to `addr` and `AUTH` with `token`.
pub async fn connect_as(addr: SocketAddr, token: &str) -> Client {
    let mut c = connect(addr).await;
    c.auth(token)
        .await
        .unwrap_or_else(|e| panic!("AUTH at {addr}: {e}"));
    c
}

/// A node started in this process.
pub struct TestNode {
    pub addr: SocketAddr,
    /// Where its HTTP API listens.
    pub http: SocketAddr,
    pub name: String,
    /// The node's bucket, for checking what it stored.
    pub storage: Storage,
    node: Node,
    token: String,
}

impl TestNode {
    pub(crate) fn new(name: &str, storage: Storage, node: Node, token: &str) -> Self {
        TestNode {
            token: token.to_string(),
            addr: node.local_addr(),
            http: node.http_addr().expect("the test node serves HTTP"),
            name: name.to_string(),
            storage,
            node,
        }
    }

    /// The node's worker pool counters.
    pub fn pool_stats(&self) -> &PoolStats {
        &self.node.pool_stats
    }

    /// Deliveries the node is processing now.
    pub fn inflight(&self) -> usize {
        self.node.inflight.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stop the node as on SIGTERM: it takes no more tasks and finishes what it runs.
    pub async fn stop(self) {
        let _ = self.node.run_until_stopped(async {}).await;
    }

    /// A client authenticated with the env's admin token.
    pub async fn connect(&self) -> Client {
        connect_as(self.addr, &self.token).await
    }
}

/// A node running as its own process.
pub struct ChildNode {
    pub addr: SocketAddr,
    /// Where its HTTP API listens.
    pub http: SocketAddr,
    pub name: String,
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
    /// The env's admin token.
    pub token: String,
}

impl TestEnv {
    /// The environment variables that put a `tasknode` process in this env (on `port`, its
    /// HTTP API on `http_port`).
    pub fn process_env(&self, name: &str, port: u16, http_port: u16) -> Vec<(String, String)> {
        let s = self.settings(name);
        self.remember_queues(&s);
        [
            ("NODE__NAME", name.to_string()),
            ("LISTENER__ADDRESS", format!("127.0.0.1:{port}")),
            ("HTTP__ADDRESS", format!("127.0.0.1:{http_port}")),
            ("AMQP__URL", s.amqp.url),
            ("AMQP__TASK_QUEUE", s.amqp.task_queue),
            ("AMQP__REPLY_QUEUE_PREFIX", s.amqp.reply_queue_prefix),
            ("DATABASE__URL", s.database.url),
            ("DATABASE__POOL_SIZE", "4".into()),
            ("STORAGE__ENDPOINT", s.storage.endpoint),
            ("STORAGE__BUCKET", s.storage.bucket),
            ("STORAGE__KEY_PREFIX", s.storage.key_prefix),
            ("TASKS__TALLY_FILE", self.run_log.display().to_string()),
            ("WORKERS__COUNT", "2".into()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("TASKNODE__{k}"), v))
        .collect()
    }

    /// Start `bin` (the `tasknode` binary) as a node of this env; `extra` environment
    /// variables (`TASKNODE__...`) adjust its settings. Waits until it answers `PING`.
    pub async fn spawn_process(
        &self,
        bin: &std::path::Path,
        name: &str,
        extra: &[(&str, &str)],
    ) -> ChildNode {
        let (port, http_port) = (free_port(), free_port());
        let log = std::env::temp_dir().join(format!("tasknode-{}-{name}.log", self.tag));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = std::process::Command::new(bin);
        cmd.envs(self.process_env(name, port, http_port))
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .env("RUST_LOG", "info")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        let mut child = cmd.spawn().expect("start tasknode");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // The port is bound before startup finishes; ready means it answers PING (a TLS
        // port answers plain text with `tls_required`).
        let ping = |addr: SocketAddr| async move {
            let mut c = Client::connect(&addr.to_string()).await.ok()?;
            match c.ping().await {
                Ok(_) => Some(()),
                Err(ClientError::Refused(line)) if line.error == ErrorCode::TlsRequired => Some(()),
                Err(_) => None,
            }
        };
        for _ in 0..300 {
            if let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(500), ping(addr)).await
            {
                return ChildNode {
                    token: self.token.clone(),
                    addr,
                    http: format!("127.0.0.1:{http_port}").parse().unwrap(),
                    name: name.to_string(),
                    child,
                    log,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "tasknode {name} exited at startup ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("tasknode {name} did not listen on {addr}");
    }
}

/// A port free now (for a process to bind soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ChildNode {
    /// A client authenticated with the env's admin token.
    pub async fn connect(&self) -> Client {
        connect_as(self.addr, &self.token).await
    }

    /// Send a signal (`libc`-free: through `kill`).
    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Wait up to `within` for the process to exit; its exit status.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The process's peak resident memory so far, in MiB (`VmHWM`).
    pub fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
