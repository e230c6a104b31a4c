//! Tasks through the whole system: queue, workers, rows, bucket, replies across nodes.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use sha2::Digest;
use std::time::Duration;
use tasknode::amqp::{PayloadRef, TaskMessage};
use tasknode::db::models::TaskRow;
use tasknode::db::schema::tasks;
use tasknode::testing::{LineClient, TestEnv};
use uuid::Uuid;

async fn row(env: &TestEnv, id: &str) -> TaskRow {
    let id = Uuid::parse_str(id).unwrap();
    let mut conn = env.db().await;
    tasks::table
        .find(id)
        .select(TaskRow::as_select())
        .first(&mut conn)
        .await
        .expect("task row")
}

async fn row_count(env: &TestEnv) -> i64 {
    let mut conn = env.db().await;
    tasks::table.count().get_result(&mut conn).await.unwrap()
}

/// Poll `STATUS` until the task is final.
async fn wait_final(c: &mut LineClient, id: &str) -> serde_json::Value {
    for _ in 0..600 {
        let r = c.call(&format!("STATUS {id}")).await;
        if r["status"] == "succeeded" || r["status"] == "failed" {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} did not finish");
}

#[actix_rt::test]
async fn submit_then_status_and_result_on_another_node() {
    let env = TestEnv::new().await;
    let n1 = env.spawn_node("n1").await;
    let n2 = env.spawn_node("n2").await;
    let mut c1 = n1.connect().await;
    let r = c1.call("SUBMIT upper async world").await;
    assert_eq!(r["status"], "queued", "{r}");
    let id = r["id"].as_str().unwrap().to_string();

    let mut c2 = n2.connect().await;
    let s = wait_final(&mut c2, &id).await;
    assert_eq!(s["status"], "succeeded", "{s}");
    assert!(
        s.get("result").is_none(),
        "STATUS carries no result body: {s}"
    );
    let r = c2.call(&format!("RESULT {id}")).await;
    assert_eq!(r["result"], "ASYNC WORLD", "{r}");
    assert_eq!(r["id"], id.as_str());
}

#[actix_rt::test]
async fn result_of_unfinished_task_says_so() {
    let env = TestEnv::new().await;
    let n1 = env.spawn_node("n1").await;
    let mut c = n1.connect().await;
    let id = c.call("SUBMIT sleep 1500").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = c.call(&format!("RESULT {id}")).await;
    assert_eq!(r["error"], "not_finished", "{r}");
    assert_eq!(wait_final(&mut c, &id).await["status"], "succeeded");
}

#[actix_rt::test]
async fn the_task_row_records_everything() {
    let env = TestEnv::new().await;
    let n1 = env.spawn_node("n1").await;
    let mut c = n1.connect().await;
    let r = c.call("lower MiXeD Case").await;
    assert_eq!(r["status"], "succeeded");
    let stored = row(&env, r["id"].as_str().unwrap()).await;
    let row = stored;
    assert_eq!(row.kind, "lower");
    assert_eq!(row.status, "succeeded");
    assert_eq!(row.payload.as_deref(), Some(&b"MiXeD Case"[..]));
    assert_eq!(row.payload_key, None);
    assert_eq!(row.result.as_deref(), Some(&b"mixed case"[..]));
    assert_eq!(row.result_size, Some(10));
    assert_eq!(row.attempts, 1);
    assert_eq!(row.node.as_deref(), Some("n1"));
    assert_eq!(row.submitted_by, "n1");
    assert!(row.started_at.is_some() && row.finished_at.is_some());
    assert!(row.finished_at.unwrap() >= row.started_at.unwrap());

    let r = c.call("sleep forever").await;
    let failed = self::row(&env, r["id"].as_str().unwrap()).await;
    assert_eq!(failed.status, "failed");
    assert!(failed.error.unwrap().contains("whole number"));
}

#[actix_rt::test]
async fn large_upload_streams_to_the_bucket_with_its_key_in_the_row() {
    let env = TestEnv::new().await;
    let n1 = env.spawn_node("n1").await;
    // Over one 8 MiB part, so the upload is multipart.
    let data: Vec<u8> = (0..10 * 1024 * 1024 + 123)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut c = n1.connect().await;
    c.send(&format!("PUT sha256 {}", data.len())).await;
    c.send_raw(&data).await;
    let r = c.recv().await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["result"], hex::encode(sha2::Sha256::digest(&data)), "{r}");

    let row = row(&env, r["id"].as_str().unwrap()).await;
    assert_eq!(row.payload, None, "large payload must not be inline");
    assert_eq!(row.payload_size, data.len() as i64);
    let key = row.payload_key.expect("payload key");
    assert!(key.starts_with(&env.key_prefix), "{key}");
    let stored = n1.storage.get_bytes(&key).await.expect("object in bucket");
    assert!(stored == data, "bucket holds exactly the uploaded bytes");

    // The connection goes on after a binary upload.
    assert_eq!(c.call("upper after").await["result"], "AFTER");
}

#[actix_rt::test]
async fn large_results_live_in_the_bucket_and_come_back_by_result() {
    let env = TestEnv::new().await;
    let n1 = env.spawn_node("n1").await;
    let mut c = n1.connect().await;
    // A 200 KiB line payload: over the 64 KiB inline limit both ways.
    let text = "abc ".repeat(50 * 1024);
    let r = c.call(&format!("upper {text}")).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert!(r.get("result").is_none(), "large result is not inline: {r}");
    assert_eq!(r["result_size"], text.len() as u64);
    assert!(r["result_url"].as_str().unwrap().starts_with("http"), "{r}");
    let id = r["id"].as_str().unwrap().to_string();

    let row = row(&env, &id).await;
    assert!(row.payload_key.is_some() && row.payload.is_none());
    let result_key = row.result_key.clone().expect("result key");
    assert_eq!(row.result, None);
    let stored = n1.storage.get_bytes(&result_key).await.unwrap();
    assert_eq!(stored, text.to_uppercase().as_bytes());

    let header = c.call(&format!("RESULT {id}")).await;
    assert_eq!(header["bytes"], text.len() as u64, "{header}");
    let body = c.recv_raw(text.len()).await;
    assert_eq!(body, text.to_uppercase().as_bytes());
    assert_eq!(
        c.call("PING").await["pong"],
        true,
        "protocol resumes after the body"
    );
}

#[actix_rt::test]
async fn task_accepted_on_a_and_run_on_b_answers_the_client_on_a() {
    let env = TestEnv::new().await;
    // `a` runs no tasks itself, so every task must run on `b`.
    let a = env
        .spawn_node_with("a", |s| s.workers.count = Some(0))
        .await;
    let _b = env.spawn_node("b").await;
    let mut c = a.connect().await;
    for i in 0..5 {
        let r = c.call(&format!("upper task {i}")).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["result"], format!("TASK {i}"));
        assert_eq!(r["node"], "b", "{r}");
        let row = row(&env, r["id"].as_str().unwrap()).await;
        assert_eq!(row.submitted_by, "a");
        assert_eq!(row.node.as_deref(), Some("b"));
    }
}

async fn publish_raw(env: &TestEnv, msg: &TaskMessage) {
    publish_body(env, &serde_json::to_vec(msg).unwrap()).await;
}

/// Publish `body` on the task queue as a node would (persistent, confirmed).
async fn publish_body(env: &TestEnv, body: &[u8]) {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    let conn = tasknode::amqp::connect(&tasknode::testing::amqp_url(), "test-raw")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.basic_publish(
        "".into(),
        env.task_queue.as_str().into(),
        BasicPublishOptions::default(),
        body,
        lapin::BasicProperties::default().with_delivery_mode(2),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    conn.close(200, "done".into()).await.unwrap();
}

#[actix_rt::test]
async fn a_redelivered_or_duplicated_message_leaves_exactly_one_row() {
    use futures_util::StreamExt;
    use lapin::options::BasicConsumeOptions;

    let env = TestEnv::new().await;
    let a = env
        .spawn_node_with("a", |s| s.workers.count = Some(0))
        .await;
    let mut c = a.connect().await;
    let id = c.call("SUBMIT reverse redelivered").await["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A consumer takes the message and dies without acking: the broker redelivers it.
    {
        let conn = tasknode::amqp::connect(&tasknode::testing::amqp_url(), "test-crash")
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut consumer = ch
            .basic_consume(
                env.task_queue.as_str().into(),
                "crasher".into(),
                BasicConsumeOptions::default(),
                Default::default(),
            )
            .await
            .unwrap();
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("message delivered")
            .unwrap()
            .unwrap();
        assert!(!delivery.redelivered);
        conn.close(200, "crash".into()).await.unwrap();
    }
    // The publisher retried too: the same task is on the queue twice.
    publish_raw(
        &env,
        &TaskMessage {
            id: Uuid::parse_str(&id).unwrap(),
            kind: "reverse".into(),
            payload: PayloadRef::Inline {
                data: b"redelivered".to_vec(),
            },
            submitted_by: "a".into(),
            reply_to: None,
            accepted_at: None,
        },
    )
    .await;

    // One worker, one delivery at a time: the second copy finds the row final.
    let b = env
        .spawn_node_with("b", |s| {
            s.workers.count = Some(1);
            s.amqp.prefetch = 1;
        })
        .await;
    let mut cb = b.connect().await;
    let s = wait_final(&mut cb, &id).await;
    assert_eq!(s["status"], "succeeded", "{s}");
    // Give the duplicate time to be consumed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(row_count(&env).await, 1);
    let row = row(&env, &id).await;
    assert_eq!(row.result.as_deref(), Some(&b"derevileder"[..]));
    assert_eq!(row.attempts, 1, "the duplicate was not run again");
}

/// Wait until task `id` has a final row.
async fn final_row(env: &TestEnv, id: Uuid) -> TaskRow {
    for _ in 0..200 {
        let mut conn = env.db().await;
        let found: Option<TaskRow> = tasks::table
            .find(id)
            .select(TaskRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .unwrap();
        if let Some(r) = found.filter(|r| r.status().is_final()) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} has no final row");
}

fn message(id: Uuid, kind: &str, payload: &[u8]) -> TaskMessage {
    TaskMessage {
        id,
        kind: kind.into(),
        payload: PayloadRef::Inline {
            data: payload.to_vec(),
        },
        submitted_by: "elsewhere".into(),
        reply_to: None,
        accepted_at: None,
    }
}

#[actix_rt::test]
async fn a_task_whose_row_is_not_written_yet_is_run_and_recorded_whole() {
    // A waiting submission's row is first written by the node that runs it: the message
    // alone must be enough to make the whole row.
    let env = TestEnv::new().await;
    let _node = env.spawn_node("n1").await;
    let (quick, slow) = (Uuid::now_v7(), Uuid::now_v7());
    publish_raw(&env, &message(quick, "upper", b"no row yet")).await;
    publish_raw(&env, &message(slow, "sleep", b"10")).await;

    let row = final_row(&env, quick).await;
    assert_eq!(row.status, "succeeded");
    assert_eq!(row.result.as_deref(), Some(&b"NO ROW YET"[..]));
    assert_eq!(row.payload.as_deref(), Some(&b"no row yet"[..]));
    assert_eq!(row.kind, "upper");
    assert_eq!(row.submitted_by, "elsewhere");
    assert_eq!(row.node.as_deref(), Some("n1"));
    assert_eq!(row.attempts, 1);
    assert!(row.started_at.is_some() && row.finished_at >= row.started_at);

    let row = final_row(&env, slow).await;
    assert_eq!(row.status, "succeeded");
    assert_eq!(row.kind, "sleep");
    assert_eq!(row.attempts, 1);
    assert!(row.started_at.is_some() && row.finished_at >= row.started_at);
}

#[actix_rt::test]
async fn the_same_task_twice_in_one_message_makes_one_row() {
    let env = TestEnv::new().await;
    let _node = env.spawn_node("n1").await;
    let id = Uuid::now_v7();
    let m = message(id, "reverse", b"twice");
    publish_body(&env, &serde_json::to_vec(&vec![m.clone(), m]).unwrap()).await;
    let row = final_row(&env, id).await;
    assert_eq!(row.status, "succeeded");
    assert_eq!(row.result.as_deref(), Some(&b"eciwt"[..]));
    assert_eq!(row.attempts, 1, "one outcome was written, not two");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(row_count(&env).await, 1);
}

#[actix_rt::test]
async fn a_wait_that_times_out_leaves_a_row_to_ask_about() {
    let env = TestEnv::new().await;
    // Nobody runs tasks yet: the waiting submission times out with its task still queued.
    let front = env
        .spawn_node_with("front", |s| {
            s.workers.count = Some(0);
            s.listener.wait_timeout_secs = 1;
        })
        .await;
    let mut c = front.connect().await;
    let r = c.call("upper later").await;
    assert_eq!(r["error"], "timeout", "{r}");
    let id = r["id"]
        .as_str()
        .expect("the timeout names the task")
        .to_string();
    // The client now knows the id, so the task has a row to ask about.
    let s = c.call(&format!("STATUS {id}")).await;
    assert_eq!(s["status"], "queued", "{s}");

    let _worker = env.spawn_node("worker").await;
    let s = wait_final(&mut c, &id).await;
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(c.call(&format!("RESULT {id}")).await["result"], "LATER");
    let row = row(&env, &id).await;
    assert_eq!(row.submitted_by, "front");
    assert_eq!(row.node.as_deref(), Some("worker"));
    assert_eq!(row.attempts, 1);
}
