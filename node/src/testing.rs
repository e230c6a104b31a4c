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
            _node: node,
        }
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
        let queues = vec![self.task_queue.clone()];
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
    _node: Node,
}

impl TestNode {
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
