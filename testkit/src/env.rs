//! [`TestEnv`]: one isolated deployment against the real services. Its database is created
//! fresh and dropped (with its queues and run log) when the env is dropped; its queue names
//! and bucket key prefix are its own, so tests run in parallel. Several nodes started in one
//! env form a fleet that shares the task queue.

use crate::nodes::TestNode;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use tasknode::auth::{tokens, Role};
use tasknode::config::Settings;
use tasknode::db::models::TaskRow;
use tasknode::db::schema::tasks;
use tasknode::retry::{self, RetryPolicy};
use tasknode::startup::Node;
use tasknode::storage::Storage;
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

/// `sleep` times out after 1 s and gets `attempts` runs: a quick way to a dead task.
pub fn sleep_dies_fast(s: &mut Settings, attempts: u32) {
    let limits = tasknode::config::KindSettings {
        timeout_secs: Some(1),
        max_attempts: Some(attempts),
        max_secs: None,
    };
    s.tasks.kinds.insert("sleep".into(), limits);
}

/// One isolated deployment: database, queues, key prefix, run log.
pub struct TestEnv {
    pub tag: String,
    pub database: String,
    pub database_url: String,
    pub task_queue: String,
    pub reply_prefix: String,
    pub key_prefix: String,
    /// Where the env's `tally` kind records each run (see [`TestEnv::runs`]).
    pub run_log: PathBuf,
    /// Queues the env's nodes may have declared (deleted with the env).
    queues: std::sync::Mutex<BTreeSet<String>>,
    /// The secret of the env's admin token (named `admin`): clients from
    /// [`TestNode::connect`](crate::TestNode::connect) say `AUTH` with it.
    pub token: String,
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
        let database_url = format!("{base}/{database}");
        tasknode::db::run_migrations(
            &tasknode::db::Database::new(&database_url).expect("database url"),
        )
        .await
        .expect("migrate the test database");
        let mut db = AsyncPgConnection::establish(&database_url)
            .await
            .expect("connect to the test database");
        let token = tokens::create(&mut db, "admin", Role::Admin, Default::default())
            .await
            .expect("create the admin token");
        TestEnv {
            token: token.expose().to_string(),
            database_url,
            database,
            task_queue: format!("test-{tag}.tasks"),
            reply_prefix: format!("test-{tag}.replies"),
            key_prefix: format!("test-{tag}/"),
            run_log: std::env::temp_dir().join(format!("tasknode-{tag}.runs")),
            queues: Default::default(),
            tag,
        }
    }

    /// Create token `name` with `role` and `limits`; answers its secret.
    pub async fn token(&self, name: &str, role: Role, limits: tokens::Limits) -> String {
        let secret = tokens::create(&mut self.db().await, name, role, limits)
            .await
            .expect("create a token");
        secret.expose().to_string()
    }

    /// Revoke token `name`.
    pub async fn revoke(&self, name: &str) {
        assert!(tokens::revoke(&mut self.db().await, name).await.unwrap());
    }

    /// Settings for a node named `name` in this env, listening on port 0.
    pub fn settings(&self, name: &str) -> Settings {
        let mut s = Settings::from_toml("").expect("defaults");
        s.node.name = name.to_string();
        s.listener.address = "127.0.0.1:0".into();
        s.http.address = "127.0.0.1:0".into();
        s.listener.wait_timeout_secs = 60;
        s.amqp.url = amqp_url();
        s.amqp.task_queue = self.task_queue.clone();
        s.amqp.reply_queue_prefix = self.reply_prefix.clone();
        s.database.url = self.database_url.clone();
        s.database.pool_size = 4;
        s.storage.endpoint = s3_endpoint();
        s.storage.bucket = TEST_BUCKET.into();
        s.storage.key_prefix = self.key_prefix.clone();
        s.tasks.tally_file = Some(self.run_log.display().to_string());
        s.workers.count = Some(2);
        s
    }

    /// Start a node with default test settings. Must be called inside an actix system.
    pub async fn spawn_node(&self, name: &str) -> TestNode {
        self.spawn_node_with(name, |_| {}).await
    }

    /// Start a node after `tweak` adjusted its settings.
    pub async fn spawn_node_with(&self, name: &str, tweak: impl FnOnce(&mut Settings)) -> TestNode {
        self.try_spawn_node_with(name, tweak)
            .await
            .unwrap_or_else(|e| panic!("node {name} did not start: {e}"))
    }

    /// Start a node after `tweak` adjusted its settings, or say why it did not start.
    pub async fn try_spawn_node_with(
        &self,
        name: &str,
        tweak: impl FnOnce(&mut Settings),
    ) -> Result<TestNode, tasknode::startup::StartupError> {
        let mut settings = self.settings(name);
        tweak(&mut settings);
        self.remember_queues(&settings);
        let storage = Storage::new(&settings.storage).expect("storage");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let node = Node::build(settings, listener).await?;
        Ok(TestNode::new(name, storage, node, &self.token))
    }

    /// External kind `kind` of this env: its queues (made by the nodes that meet it) are
    /// deleted with the env. Answers `kind`.
    pub fn external<'k>(&self, kind: &'k str) -> &'k str {
        let lane =
            tasknode::lanes::lane_queue(&self.task_queue, &tasknode::lanes::external_lane(kind));
        let settings = self.settings("-");
        let mut queues = self.queues.lock().unwrap();
        for q in tasknode::lanes::band_queues(&lane) {
            queues.insert(retry::dead_queue(&q));
            queues.insert(retry::buried_queue(&q));
            queues.extend(RetryPolicy::new(settings.tasks.clone()).delay_queues(&q));
            queues.insert(q);
        }
        kind
    }

    pub(crate) fn remember_queues(&self, s: &Settings) {
        let mut queues = self.queues.lock().unwrap();
        for q in &tasknode::lanes::queues(s) {
            queues.insert(q.clone());
            queues.insert(retry::dead_queue(q));
            queues.insert(retry::buried_queue(q));
            queues.extend(RetryPolicy::new(s.tasks.clone()).delay_queues(q));
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

    /// Every task row.
    pub async fn rows(&self) -> Vec<TaskRow> {
        tasks::table
            .select(TaskRow::as_select())
            .load(&mut self.db().await)
            .await
            .expect("read task rows")
    }

    /// Task `id`'s row, if there is one.
    pub async fn row(&self, id: Uuid) -> Option<TaskRow> {
        tasks::table
            .find(id)
            .select(TaskRow::as_select())
            .first(&mut self.db().await)
            .await
            .optional()
            .expect("read a task row")
    }

    /// How many accepted tasks wait in the outbox (not yet confirmed by the broker).
    pub async fn outbox_len(&self) -> i64 {
        use tasknode::db::schema::outbox;
        outbox::table
            .count()
            .get_result(&mut self.db().await)
            .await
            .expect("count the outbox")
    }

    /// Wait until the outbox is empty (every accepted task confirmed by the broker).
    pub async fn outbox_drained(&self) {
        crate::poll_until("the outbox is empty", 30, async || {
            (self.outbox_len().await == 0).then_some(())
        })
        .await;
    }

    /// How many times the `tally` kind ran each payload in this env.
    pub fn runs(&self) -> HashMap<String, usize> {
        let text = std::fs::read_to_string(&self.run_log).unwrap_or_default();
        let mut runs = HashMap::new();
        for line in text.lines() {
            *runs.entry(line.to_string()).or_default() += 1;
        }
        runs
    }

    /// Publish `body` on the env's task queue as a node would (persistent, confirmed), with
    /// `kind` as its AMQP `type` (a node names the message version there). Tried again (for up
    /// to 30 s) while the broker is away or drops the connection, as a client of the broker
    /// would; a message whose confirm was lost may so arrive twice.
    pub async fn publish_raw(&self, body: &[u8], kind: Option<&str>) {
        crate::poll_until("the broker takes a raw message", 30, async || {
            self.try_publish_raw(body, kind).await.ok()
        })
        .await;
    }

    async fn try_publish_raw(&self, body: &[u8], kind: Option<&str>) -> Result<(), lapin::Error> {
        use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        let conn = tasknode::amqp::connect(&amqp_url(), "test-raw").await?;
        let ch = conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        let mut props = lapin::BasicProperties::default().with_delivery_mode(2);
        if let Some(kind) = kind {
            props = props.with_type(kind.into());
        }
        let to = self.task_queue.as_str().into();
        let confirm = ch
            .basic_publish("".into(), to, BasicPublishOptions::default(), body, props)
            .await?
            .await?;
        assert!(confirm.is_ack(), "the broker took it");
        let _ = conn.close(200, "done".into()).await;
        Ok(())
    }

    /// Messages ready in `queue` (a passive declare; the queue must exist).
    pub async fn ready_messages(&self, queue: &str) -> u32 {
        let conn = tasknode::amqp::connect(&amqp_url(), "test-peek")
            .await
            .expect("connect to RabbitMQ");
        let ch = conn.create_channel().await.expect("channel");
        let passive = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let q = ch
            .queue_declare(queue.into(), passive, Default::default())
            .await
            .unwrap_or_else(|e| panic!("queue {queue}: {e}"));
        let _ = conn.close(200, "done".into()).await;
        q.message_count()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let database = self.database.clone();
        let _ = std::fs::remove_file(&self.run_log);
        let queues: Vec<String> = {
            let mut q = self
                .queues
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            q.insert(self.task_queue.clone());
            q.insert(retry::dead_queue(&self.task_queue));
            q.insert(retry::buried_queue(&self.task_queue));
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
