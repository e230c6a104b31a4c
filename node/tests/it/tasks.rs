//! Tasks through the whole system: queue, workers, rows, bucket, replies across nodes.

use protocol::{TaskStatus, TaskView};
use sha2::Digest;
use tasknode::messages::{PayloadRef, TaskMessage, TASKS_V1};
use tasknode_testkit::{id_of, wait_final, Lines, TestEnv};
use uuid::Uuid;

#[actix_rt::test]
async fn submit_then_status_and_result_on_another_node() {
    let env = TestEnv::new().await;
    let n1 = env.spawn_node("n1").await;
    let n2 = env.spawn_node("n2").await;
    let mut c1 = n1.connect().await;
    let queued = c1.submit("upper", b"async world", false).await.unwrap();
    assert_eq!(queued.status, TaskStatus::Queued, "{queued:?}");

    let mut c2 = n2.connect().await;
    let s = wait_final(&mut c2, queued.id).await;
    assert_eq!(s.status, TaskStatus::Succeeded, "{s:?}");
    assert!(s.result.is_none(), "STATUS carries no result body: {s:?}");
    let r = c2.result(queued.id).await.unwrap();
    assert_eq!(r.result.as_deref(), Some("ASYNC WORLD"), "{r:?}");
    assert_eq!(r.id, queued.id);
}

#[actix_rt::test]
async fn result_of_unfinished_task_says_so() {
    let env = TestEnv::new().await;
    let n1 = env.spawn_node("n1").await;
    let mut c = n1.connect().await;
    let id = id_of(&c.ask("SUBMIT sleep 1500").await);
    let r = c.ask(&format!("RESULT {id}")).await;
    assert_eq!(r["error"], "not_finished", "{r}");
    assert_eq!(r["status"], "queued", "{r}");
    assert_eq!(wait_final(&mut c, id).await.status, TaskStatus::Succeeded);
}

#[actix_rt::test]
async fn the_task_row_records_everything() {
    let env = TestEnv::new().await;
    let n1 = env.spawn_node("n1").await;
    let mut c = n1.connect().await;
    let r = c.ask("lower MiXeD Case").await;
    assert_eq!(r["status"], "succeeded");
    let row = env.row(id_of(&r)).await.expect("a row");
    assert_eq!(row.kind, "lower");
    assert_eq!(row.status, TaskStatus::Succeeded);
    assert_eq!(row.payload.as_deref(), Some(&b"MiXeD Case"[..]));
    assert_eq!(row.payload_key, None);
    assert_eq!(row.result.as_deref(), Some(&b"mixed case"[..]));
    assert_eq!(row.result_size, Some(10));
    assert_eq!(row.attempts, 1);
    assert_eq!(row.node.as_deref(), Some("n1"));
    assert_eq!(row.submitted_by, "n1");
    assert!(row.started_at.is_some() && row.finished_at.is_some());
    assert!(row.finished_at.unwrap() >= row.started_at.unwrap());

    let r = c.ask("sleep forever").await;
    let failed = env.row(id_of(&r)).await.expect("a row");
    assert_eq!(failed.status, TaskStatus::Failed);
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
    let r = c
        .put("sha256", data.len() as u64, &mut &data[..], true)
        .await
        .unwrap();
    assert_eq!(r.status, TaskStatus::Succeeded, "{r:?}");
    assert_eq!(r.result, Some(hex::encode(sha2::Sha256::digest(&data))));

    let row = env.row(r.id).await.expect("a row");
    assert_eq!(row.payload, None, "large payload must not be inline");
    assert_eq!(row.payload_size, data.len() as i64);
    let key = row.payload_key.expect("payload key");
    assert!(key.starts_with(&env.key_prefix), "{key}");
    let stored = n1.storage.get_bytes(&key).await.expect("object in bucket");
    assert!(stored == data, "bucket holds exactly the uploaded bytes");

    // The connection goes on after a binary upload.
    assert_eq!(c.ask("upper after").await["result"], "AFTER");
}

#[actix_rt::test]
async fn large_results_live_in_the_bucket_and_come_back_by_result() {
    let env = TestEnv::new().await;
    let n1 = env.spawn_node("n1").await;
    let mut c = n1.connect().await;
    // A 200 KiB line payload: over the 64 KiB inline limit both ways.
    let text = "abc ".repeat(50 * 1024);
    let r = c.ask(&format!("upper {text}")).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert!(r.get("result").is_none(), "large result is not inline: {r}");
    assert_eq!(r["result_size"], text.len() as u64);
    assert!(r["result_url"].as_str().unwrap().starts_with("http"), "{r}");
    let id = id_of(&r);

    let row = env.row(id).await.expect("a row");
    assert!(row.payload_key.is_some() && row.payload.is_none());
    let result_key = row.result_key.clone().expect("result key");
    assert_eq!(row.result, None);
    let stored = n1.storage.get_bytes(&result_key).await.unwrap();
    assert_eq!(stored, text.to_uppercase().as_bytes());

    let header = c.ask(&format!("RESULT {id}")).await;
    assert_eq!(header["bytes"], text.len() as u64, "{header}");
    let body = c.hear_raw(text.len()).await;
    assert_eq!(body, text.to_uppercase().as_bytes());
    assert_eq!(
        c.ask("PING").await["pong"],
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
        let r = c.ask(&format!("upper task {i}")).await;
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["result"], format!("TASK {i}"));
        assert_eq!(r["node"], "b", "{r}");
        let row = env.row(id_of(&r)).await.expect("a row");
        assert_eq!(row.submitted_by, "a");
        assert_eq!(row.node.as_deref(), Some("b"));
    }
}

/// Publish `tasks` as one message on the task queue, as a node would (version 1).
async fn publish(env: &TestEnv, tasks: &[TaskMessage]) {
    let body = serde_json::to_vec(tasks).unwrap();
    env.publish_raw(&body, Some(TASKS_V1)).await;
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
        owner: None,
        priority: 0,
        key: None,
    }
}

#[actix_rt::test]
async fn a_redelivered_task_that_already_ended_is_not_run_again() {
    use futures_util::StreamExt;
    use lapin::options::BasicConsumeOptions;

    let env = TestEnv::new().await;
    let a = env
        .spawn_node_with("a", |s| s.workers.count = Some(0))
        .await;
    let mut c = a.connect().await;
    let task = c.submit("tally", b"redelivered", false).await.unwrap();
    // The publisher sent it again too: the same task is on the queue twice.
    publish(&env, &[message(task.id, "tally", b"redelivered")]).await;

    // A consumer takes both copies and dies without acking: the broker redelivers both.
    {
        let conn = tasknode::amqp::connect(&tasknode_testkit::amqp_url(), "test-crash")
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
        for _ in 0..2 {
            let delivery =
                tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next())
                    .await
                    .expect("message delivered")
                    .unwrap()
                    .unwrap();
            assert!(!delivery.redelivered);
        }
        conn.close(200, "crash".into()).await.unwrap();
    }
    // Behind them, a marker task: the queue is served in order, one delivery at a time, so
    // once the marker has ended both copies have been handled.
    let marker = Uuid::now_v7();
    publish(&env, &[message(marker, "tally", b"marker")]).await;

    let _b = env
        .spawn_node_with("b", |s| {
            s.workers.count = Some(1);
            s.lanes.get_mut("quick").unwrap().prefetch = 1;
        })
        .await;
    env.final_row(marker).await;
    let row = env.final_row(task.id).await;
    assert_eq!(row.result.as_deref(), Some(&b"redelivered"[..]));
    assert_eq!(row.attempts, 1, "one attempt counted");
    assert_eq!(
        env.runs().get("redelivered"),
        Some(&1),
        "the second copy found the task ended and did not run it"
    );
}

#[actix_rt::test]
async fn a_task_whose_row_is_not_written_yet_is_run_and_recorded_whole() {
    // A waiting submission's row is first written by the node that runs it: the message
    // alone must be enough to make the whole row.
    let env = TestEnv::new().await;
    let _node = env.spawn_node("n1").await;
    let (quick, slow) = (Uuid::now_v7(), Uuid::now_v7());
    publish(&env, &[message(quick, "upper", b"no row yet")]).await;
    publish(&env, &[message(slow, "sleep", b"10")]).await;

    let row = env.final_row(quick).await;
    assert_eq!(row.status, TaskStatus::Succeeded);
    assert_eq!(row.result.as_deref(), Some(&b"NO ROW YET"[..]));
    assert_eq!(row.payload.as_deref(), Some(&b"no row yet"[..]));
    assert_eq!(row.kind, "upper");
    assert_eq!(row.submitted_by, "elsewhere");
    assert_eq!(row.node.as_deref(), Some("n1"));
    assert_eq!(row.attempts, 1);
    assert!(row.started_at.is_some() && row.finished_at >= row.started_at);

    let row = env.final_row(slow).await;
    assert_eq!(row.status, TaskStatus::Succeeded);
    assert_eq!(row.kind, "sleep");
    assert_eq!(row.attempts, 1);
    assert!(row.started_at.is_some() && row.finished_at >= row.started_at);
}

#[actix_rt::test]
async fn the_same_task_twice_in_one_message_runs_once() {
    let env = TestEnv::new().await;
    let _node = env.spawn_node("n1").await;
    let id = Uuid::now_v7();
    let m = message(id, "tally", b"twice");
    publish(&env, &[m.clone(), m]).await;
    let row = env.final_row(id).await;
    assert_eq!(row.status, TaskStatus::Succeeded);
    assert_eq!(row.attempts, 1, "one outcome was written, not two");
    // The copies of one message run together, before their outcome is written.
    assert_eq!(env.runs().get("twice"), Some(&1), "the task ran once");
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
    let r = c.ask("upper later").await;
    assert_eq!(r["error"], "timeout", "{r}");
    let id = id_of(&r);
    // The client now knows the id, so the task has a row to ask about.
    let s: TaskView = c.status(id).await.unwrap();
    assert_eq!(s.status, TaskStatus::Queued, "{s:?}");

    let _worker = env.spawn_node("worker").await;
    let s = wait_final(&mut c, id).await;
    assert_eq!(s.status, TaskStatus::Succeeded, "{s:?}");
    assert_eq!(c.result(id).await.unwrap().result.as_deref(), Some("LATER"));
    let row = env.row(id).await.expect("a row");
    assert_eq!(row.submitted_by, "front");
    assert_eq!(row.node.as_deref(), Some("worker"));
    assert_eq!(row.attempts, 1);
}
