//! Every task reaches an end: hostile input never leaves a task running for ever, and a
//! message no node can read is kept, not dropped or looped.

use diesel_async::RunQueryDsl;
use protocol::TaskStatus;
use std::path::Path;
use std::time::Duration;
use tasknode::messages::TASKS_V1;
use tasknode_testkit::{id_of, poll_until, wait_final, Lines, TestEnv};

#[actix_rt::test]
async fn a_nul_in_what_a_client_sent_fails_its_task_once_with_a_readable_error() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let mut c = node.connect().await;
    // The kind's error quotes the payload, NUL and all; PostgreSQL's text refuses NUL.
    let r = c
        .ask(r#"{"kind":"fib","payload":"1\u0000","wait":false}"#)
        .await;
    assert_eq!(r["status"], "queued", "{r}");
    let done = wait_final(&mut c, id_of(&r)).await;
    assert_eq!(done.status, TaskStatus::Failed, "{done:?}");
    assert_eq!(done.attempts, Some(1), "bad input runs once: {done:?}");
    let message = done.message.expect("why it failed");
    assert!(
        message.contains("`1\\0`"),
        "the NUL is shown, escaped: {message}"
    );

    // The same as a waiting submission: the client gets the failure.
    let r = c.ask(r#"{"kind":"fib","payload":"2\u0000"}"#).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert!(r["message"].as_str().unwrap().contains("`2\\0`"), "{r}");
}

#[actix_rt::test]
async fn a_message_no_node_can_read_is_parked_in_the_dead_letter_queue() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    env.publish_raw(b"{not a task", Some(TASKS_V1)).await;
    env.publish_raw(b"[]", Some("tasknode.tasks.v9")).await;
    let dead = tasknode::retry::buried_queue(&env.task_queue);
    poll_until(
        "both messages parked in the dead-letter queue",
        20,
        async || (env.ready_messages(&dead).await == 2).then_some(()),
    )
    .await;
    assert_eq!(
        env.ready_messages(&env.task_queue).await,
        0,
        "none is looping"
    );
    let mut c = node.connect().await;
    assert_eq!(
        c.ask("upper still serving").await["result"],
        "STILL SERVING"
    );
}

#[actix_rt::test]
async fn a_put_whose_body_stops_coming_is_aborted_at_the_idle_timeout() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| s.listener.idle_timeout_secs = 1)
        .await;
    let mut c = node.connect().await;
    // Over the inline limit, so it streams to the bucket; a tenth of it arrives.
    c.say("PUT sha256 200000").await;
    c.say_raw(&[7u8; 20_000]).await;
    let r = c.hear().await;
    assert_eq!(r["error"], "idle_timeout", "{r}");
    assert!(r["message"].as_str().unwrap().contains("PUT"), "{r}");
    assert!(c.closed().await, "the stalled connection is closed");
    assert!(
        env.rows().await.is_empty(),
        "no task from an aborted upload"
    );
    let mut other = node.connect().await;
    assert_eq!(other.ask("upper fine").await["result"], "FINE");
}

#[actix_rt::test]
async fn an_object_store_that_stops_answering_times_out_instead_of_hanging() {
    use tasknode_testkit::{Proxy, ProxyState};
    let env = TestEnv::new().await;
    let proxy = Proxy::s3().await;
    let node = env
        .spawn_node_with("n1", |s| {
            s.storage.endpoint = proxy.http();
            s.storage.timeout_secs = 1;
        })
        .await;
    let mut c = node.connect().await;
    proxy.set(ProxyState::Stalled);
    // A payload over the inline limit goes to the bucket, which now accepts and never answers.
    let r = c.ask(&format!("upper {}", "y".repeat(100 * 1024))).await;
    assert_eq!(r["error"], "storage_unavailable", "{r}");
    assert!(r["message"].as_str().unwrap().contains("within 1s"), "{r}");
    proxy.set(ProxyState::Up);
    let r = c.ask(&format!("upper {}", "z".repeat(100 * 1024))).await;
    assert_eq!(r["status"], "succeeded", "the store serves again: {r}");
}

#[actix_rt::test]
async fn a_waiting_client_whose_reply_does_not_come_is_answered_from_the_row() {
    let env = TestEnv::new().await;
    let front = env
        .spawn_node_with("front", |s| s.workers.count = Some(0))
        .await;
    let runner = env.spawn_node("runner").await;
    let mut c = front.connect().await;
    c.say("sleep 20000").await;
    // The runner has it (its row says running); an operator ends it by hand meanwhile.
    let id = poll_until("the task runs", 20, async || {
        let rows = env.rows().await;
        rows.iter()
            .find(|r| r.status == TaskStatus::Running)
            .map(|r| r.id)
    })
    .await;
    let mut db = env.db().await;
    diesel::sql_query(format!(
        "UPDATE tasks SET status = 'failed', error = 'ended by hand', finished_at = now() \
         WHERE id = '{id}'"
    ))
    .execute(&mut db)
    .await
    .unwrap();
    // No reply comes for 20 s; the waiting client hears of the row's end well before.
    let r = c.hear().await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["message"], "ended by hand", "{r}");
    assert_eq!(runner.inflight(), 1, "answered while the run still goes on");
}

#[actix_rt::test]
async fn a_multipart_upload_left_open_by_a_killed_node_is_aborted_when_it_starts_again() {
    use diesel::QueryDsl;
    use tasknode::db::schema::uploads;
    const BIN: &str = env!("CARGO_BIN_EXE_tasknode");
    let env = TestEnv::new().await;
    let part = ("TASKNODE__STORAGE__PART_SIZE", "5242880");
    let mut node = env.spawn_process(Path::new(BIN), "u1", &[part]).await;
    let mut c = node.connect().await;
    c.say(&format!("PUT sha256 {} ASYNC", 20 << 20)).await;
    // More than a part: the first part is stored, the upload open.
    c.say_raw(&vec![b'x'; 6 << 20]).await;
    let open_uploads = async || -> Vec<(String, String)> {
        uploads::table
            .select((uploads::upload_id, uploads::key))
            .load(&mut env.db().await)
            .await
            .unwrap()
    };
    let store = tasknode::storage::Storage::new(&env.settings("check").storage).unwrap();
    let (upload_id, key) = poll_until("the upload is noted, a part stored", 20, async || {
        let (upload_id, key) = open_uploads().await.pop()?;
        let parts = store.stored_parts(&key, &upload_id).await.unwrap();
        (parts > 0).then_some((upload_id, key))
    })
    .await;
    node.signal("KILL");
    node.wait_exit(Duration::from_secs(5)).await;
    assert!(
        store.stored_parts(&key, &upload_id).await.unwrap() > 0,
        "the killed node left its upload open, a part stored"
    );

    let _again = env.spawn_process(Path::new(BIN), "u1", &[part]).await;
    poll_until("the upload left open is aborted", 20, async || {
        let gone = store.stored_parts(&key, &upload_id).await.unwrap() == 0;
        (gone && open_uploads().await.is_empty()).then_some(())
    })
    .await;
}
