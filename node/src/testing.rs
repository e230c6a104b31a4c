//! Test support: real nodes on port 0 against the real services, each test isolated.
//!
//! A [`TestEnv`] is one isolated deployment: its own freshly created database (dropped, with
//! its queues, when the env is dropped), its own queue names and its own key prefix in the
//! test bucket. Several nodes started in one env form a fleet that shares the task queue.
//!
//! Service addresses default to the local ones and can be overridden with
//! `TASKNODE_TEST_PG` (an admin URL, database `postgres`), `TASKNODE_TEST_AMQP` and
//! `TASKNODE_TEST_S3` (endpoint).

use crate::config::Settings;
use crate::startup::Node;
use crate::storage::Storage;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use uuid::Uuid;

pub const TEST_BUCKET: &str = "tasknode-test";

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

pub fn pg_admin_url() -> String {
    env_or(
        "TASKNODE_TEST_PG",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
}

pub fn amqp_url() -> String {
    env_or(
        "TASKNODE_TEST_AMQP",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    )
}

pub fn s3_endpoint() -> String {
    env_or("TASKNODE_TEST_S3", "http://127.0.0.1:9000")
}

/// One isolated deployment: database, queues, key prefix.
pub struct TestEnv {
    pub tag: String,
    pub database: String,
    pub database_url: String,
    pub task_queue: String,
    pub reply_prefix: String,
    pub key_prefix: String,
    /// Queues the env's nodes may have declared (deleted with the env).
    queues: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl TestEnv {
    /// Create a fresh, empty database for this env.
    pub async fn new() -> TestEnv {
        let tag = Uuid::new_v4().simple().to_string()[..12].to_string();
        let database = format!("tasknode_test_{tag}");
        let admin = pg_admin_url();
        let mut conn = AsyncPgConnection::establish(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {database}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        TestEnv {
            database_url: format!("{base}/{database}"),
            database,
            task_queue: format!("test-{tag}.tasks"),
            reply_prefix: format!("test-{tag}.replies"),
            key_prefix: format!("test-{tag}/"),
            queues: Default::default(),
            tag,
        }
    }

    /// Settings for a node named `name` in this env, listening on port 0.
    pub fn settings(&self, name: &str) -> Settings {
        let mut s = Settings::from_toml("").expect("defaults");
        s.node.name = name.to_string();
        s.listener.address = "127.0.0.1:0".into();
        s.listener.wait_timeout_secs = 60;
        s.amqp.url = amqp_url();
        s.amqp.task_queue = self.task_queue.clone();
        s.amqp.reply_queue_prefix = self.reply_prefix.clone();
        s.database.url = self.database_url.clone();
        s.database.pool_size = 4;
        s.storage.endpoint = s3_endpoint();
        s.storage.bucket = TEST_BUCKET.into();
        s.storage.key_prefix = self.key_prefix.clone();
        s.workers.count = Some(2);
        s
    }

    /// Start a node with default test settings. Must be called inside an actix system.
    pub async fn spawn_node(&self, name: &str) -> TestNode {
        self.spawn_node_with(name, |_| {}).await
    }

    /// Start a node after `tweak` adjusted its settings.
    pub async fn spawn_node_with(&self, name: &str, tweak: impl FnOnce(&mut Settings)) -> TestNode {
        let mut settings = self.settings(name);
        tweak(&mut settings);
        self.remember_queues(&settings);
        let storage = Storage::new(&settings.storage).expect("storage");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let node = Node::build(settings, listener)
            .await
            .unwrap_or_else(|e| panic!("node {name} did not start: {e}"));
        TestNode {
            addr: node.local_addr(),
            name: name.to_string(),
            storage,
            node,
        }
    }

    fn remember_queues(&self, s: &Settings) {
        let q = &s.amqp.task_queue;
        let mut queues = self.queues.lock().unwrap();
        queues.insert(q.clone());
        queues.insert(crate::amqp::dead_queue(q));
        for next in 2..=s.tasks.most_attempts() {
            queues.insert(crate::amqp::retry_queue(q, s.tasks.retry_delay_ms(next)));
        }
    }

    /// A direct connection to this env's database, if it can be had now.
    pub async fn db_try(&self) -> Option<AsyncPgConnection> {
        AsyncPgConnection::establish(&self.database_url).await.ok()
    }

    /// A direct connection to this env's database.
    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.database_url)
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let database = self.database.clone();
        let queues: Vec<String> = {
            let mut q = self
                .queues
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            q.insert(self.task_queue.clone());
            q.insert(crate::amqp::dead_queue(&self.task_queue));
            q.into_iter().collect()
        };
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = AsyncPgConnection::establish(&pg_admin_url()).await {
                    let _ = diesel::sql_query(format!(
                        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
                    ))
                    .execute(&mut conn)
                    .await;
                }
                if let Ok(conn) = lapin::Connection::connect_with_runtime(
                    &amqp_url(),
                    lapin::ConnectionProperties::default(),
                    async_rs::Runtime::tokio_current(),
                )
                .await
                {
                    if let Ok(ch) = conn.create_channel().await {
                        for q in queues {
                            let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
                        }
                    }
                    let _ = conn.close(200, "test done".into()).await;
                }
            });
        })
        .join();
    }
}

/// A node started by a test.
pub struct TestNode {
    pub addr: SocketAddr,
    pub name: String,
    /// The node's bucket, for checking what it stored.
    pub storage: Storage,
    node: Node,
}

impl TestNode {
    /// The node's worker pool counters.
    pub fn pool_stats(&self) -> &crate::actors::worker_pool::PoolStats {
        &self.node.pool_stats
    }

    pub async fn connect(&self) -> LineClient {
        LineClient::connect(self.addr).await
    }
}

/// A raw protocol connection, as `nc` would use it.
pub struct LineClient {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl LineClient {
    pub async fn connect(addr: SocketAddr) -> LineClient {
        let stream = TcpStream::connect(addr).await.expect("connect to node");
        let (r, w) = stream.into_split();
        LineClient {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    /// Send raw bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write to node");
    }

    /// Send one line (a newline is added).
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    /// The next response line as JSON, waiting at most 60 s.
    pub async fn recv(&mut self) -> serde_json::Value {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(60), self.reader.read_line(&mut line))
            .await
            .expect("no response line within 60 s")
            .expect("read from node");
        assert!(n > 0, "node closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    /// The next response line, or `None` if the connection ended (or nothing came in 60 s).
    pub async fn try_recv(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        match tokio::time::timeout(Duration::from_secs(60), self.reader.read_line(&mut line)).await
        {
            Ok(Ok(n)) if n > 0 => serde_json::from_str(&line).ok(),
            _ => None,
        }
    }

    /// Exactly `n` raw bytes.
    pub async fn recv_raw(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        tokio::time::timeout(Duration::from_secs(60), self.reader.read_exact(&mut buf))
            .await
            .expect("raw bytes within 60 s")
            .expect("read raw bytes");
        buf
    }

    /// Send a line and read one response.
    pub async fn call(&mut self, line: &str) -> serde_json::Value {
        self.send(line).await;
        self.recv().await
    }

    /// True when the node has closed this connection (reads EOF within 10 s).
    pub async fn closed(&mut self) -> bool {
        let mut buf = String::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

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

/// A node running as its own process (the real `tasknode` binary), for kill -9 and exit codes.
pub struct ChildNode {
    pub addr: SocketAddr,
    pub name: String,
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl TestEnv {
    /// The environment variables that put a `tasknode` process in this env (on `port`).
    pub fn process_env(&self, name: &str, port: u16) -> Vec<(String, String)> {
        let s = self.settings(name);
        self.remember_queues(&s);
        [
            ("NODE__NAME", name.to_string()),
            ("LISTENER__ADDRESS", format!("127.0.0.1:{port}")),
            ("AMQP__URL", s.amqp.url),
            ("AMQP__TASK_QUEUE", s.amqp.task_queue),
            ("AMQP__REPLY_QUEUE_PREFIX", s.amqp.reply_queue_prefix),
            ("DATABASE__URL", s.database.url),
            ("DATABASE__POOL_SIZE", "4".into()),
            ("STORAGE__ENDPOINT", s.storage.endpoint),
            ("STORAGE__BUCKET", s.storage.bucket),
            ("STORAGE__KEY_PREFIX", s.storage.key_prefix),
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!("tasknode-{}-{name}.log", self.tag));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = std::process::Command::new(bin);
        cmd.envs(self.process_env(name, port))
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .env("RUST_LOG", "info")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        let mut child = cmd.spawn().expect("start tasknode");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // The port is bound before startup finishes; ready means it answers PING.
        let ping = |addr| async move {
            let mut stream = TcpStream::connect(addr).await.ok()?;
            stream.write_all(b"PING\n").await.ok()?;
            let mut line = String::new();
            BufReader::new(stream).read_line(&mut line).await.ok()?;
            line.contains("\"pong\":true").then_some(())
        };
        for _ in 0..300 {
            if let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(500), ping(addr)).await
            {
                return ChildNode {
                    addr,
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

impl ChildNode {
    pub async fn connect(&self) -> LineClient {
        LineClient::connect(self.addr).await
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
