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
    assert!(rows.iter().all(|r| r.status == TaskStatus::Succeeded));
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
