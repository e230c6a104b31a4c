//! Accepting is the node's job, not the connection's: an accepted task (its row written) is
//! published by the outbox relay whatever becomes of its client, its node or the broker.

use diesel_async::RunQueryDsl;
use protocol::TaskStatus;
use tasknode_testkit::{id_of, poll_until, wait_final, Lines, TestEnv};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

/// Write a task row as a node accepting it would, optionally with its outbox entry leased to
/// `owner` (a node that is gone) until a moment already past.
async fn write_accepted(env: &TestEnv, id: Uuid, payload: &str, owner: Option<&str>) {
    let mut db = env.db().await;
    diesel::sql_query(format!(
        "INSERT INTO tasks (id, kind, payload, payload_size, submitted_by) \
         VALUES ('{id}', 'upper', '{payload}'::bytea, {}, 'gone')",
        payload.len()
    ))
    .execute(&mut db)
    .await
    .expect("write a task row");
    if let Some(owner) = owner {
        diesel::sql_query(format!(
            "INSERT INTO outbox (id, owner, due) VALUES ('{id}', '{owner}', now() - interval '1 s')"
        ))
        .execute(&mut db)
        .await
        .expect("write an outbox entry");
    }
}

#[actix_rt::test]
async fn clients_that_pipeline_submissions_and_reset_leave_no_task_queued() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let mut resets = Vec::new();
    for conn in 0..20 {
        let addr = node.addr;
        let token = env.token.clone();
        resets.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut lines = format!("AUTH {token}\n");
            for i in 0..128 {
                lines.push_str(&format!("SUBMIT upper c{conn}r{i}\n"));
            }
            stream.write_all(lines.as_bytes()).await.unwrap();
            // Reset (RST, not FIN) as soon as the requests are out.
            stream.set_zero_linger().unwrap();
            drop(stream);
        }));
    }
    for r in resets {
        r.await.unwrap();
    }
    let mut c = node.connect().await;
    // The node is still serving, and each task it wrote a row for ends.
    assert_eq!(c.ask("upper after").await["result"], "AFTER");
    let rows = poll_until("every written task ends", 60, async || {
        let rows = env.rows().await;
        rows.iter().all(|r| r.status.is_final()).then_some(rows)
    })
    .await;
    assert!(
        rows.len() > 1,
        "some submissions were accepted: {}",
        rows.len()
    );
    // Each written task is one that was sent, once, and ran to its own answer.
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        let payload = String::from_utf8(row.payload.clone().unwrap_or_default()).unwrap();
        let sent = payload == "after" || (payload.starts_with('c') && payload.contains('r'));
        assert!(sent, "{payload} was never sent");
        assert!(seen.insert(payload.clone()), "{payload} written twice");
        assert_eq!(row.status, TaskStatus::Succeeded, "{row:?}");
        let result = String::from_utf8(row.result.clone().unwrap_or_default()).unwrap();
        assert_eq!(result, payload.to_uppercase(), "{row:?}");
    }
    env.outbox_drained().await;
}

#[actix_rt::test]
async fn a_task_left_in_the_outbox_by_a_node_that_died_is_published_by_another() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let id = Uuid::now_v7();
    write_accepted(&env, id, "orphan", Some("dead-node")).await;
    let mut c = node.connect().await;
    let ended = wait_final(&mut c, id).await;
    assert_eq!(ended.status, TaskStatus::Succeeded, "{ended:?}");
    assert_eq!(
        c.result(id).await.unwrap().result.as_deref(),
        Some("ORPHAN")
    );
    env.outbox_drained().await;
}

#[actix_rt::test]
async fn retry_publishes_a_task_stuck_queued_without_a_message() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let id = Uuid::now_v7();
    // A row with no message anywhere (say its queue was purged).
    write_accepted(&env, id, "stuck", None).await;
    let mut c = node.connect().await;
    let r = c.ask(&format!("RETRY {id}")).await;
    assert_eq!(r["status"], "queued", "{r}");
    assert_eq!(id_of(&r), id);
    let ended = wait_final(&mut c, id).await;
    assert_eq!(ended.status, TaskStatus::Succeeded, "{ended:?}");
    // A finished task is not retried.
    let r = c.ask(&format!("RETRY {id}")).await;
    assert_eq!(r["error"], "not_retryable", "{r}");
}

#[actix_rt::test]
async fn no_task_message_is_larger_than_four_mebibytes() {
    let env = TestEnv::new().await;
    // An accept-only node: what it publishes stays in the queue to be looked at.
    let node = env
        .spawn_node_with("front", |s| {
            s.workers.count = Some(0);
            s.lanes.values_mut().for_each(|l| l.workers = Some(0));
            s.storage.inline_limit = 1024 * 1024;
            s.listener.max_line_bytes = 4 * 1024 * 1024;
        })
        .await;
    // 64 tasks of 1 MB inline payloads, accepted at once: 85 MB of messages if batched whole.
    let payload = "a".repeat(1_000_000);
    let line = format!(r#"{{"kind":"upper","payload":"{payload}","wait":false}}"#);
    let answers = futures_util::future::join_all((0..32).map(|_| async {
        let mut c = node.connect().await;
        let mut ids = Vec::new();
        for _ in 0..2 {
            let r = c.ask(&line).await;
            assert_eq!(
                r["status"],
                "queued",
                "{}",
                &r.to_string()[..200.min(r.to_string().len())]
            );
            ids.push(id_of(&r));
        }
        ids
    }))
    .await;
    let sent: std::collections::HashSet<Uuid> = answers.into_iter().flatten().collect();
    env.outbox_drained().await;
    let conn = tasknode::amqp::connect(&tasknode_testkit::amqp_url(), "test-sizes")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let (mut found, mut largest) = (std::collections::HashSet::new(), 0);
    while let Some(m) = ch
        .basic_get(env.task_queue.as_str().into(), Default::default())
        .await
        .unwrap()
    {
        let d = m.delivery;
        largest = largest.max(d.data.len());
        for task in tasknode::messages::decode_tasks(None, &d.data).unwrap() {
            found.insert(task.id);
        }
        d.acker.ack(Default::default()).await.unwrap();
    }
    assert_eq!(found, sent, "every task is in a message");
    assert!(largest <= 4 * 1024 * 1024, "a message of {largest} bytes");
    let _ = conn.close(200, "done".into()).await;
}
