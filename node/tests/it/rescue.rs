//! Tasks nothing else would move again: a running task parked by a paused kind after its node
//! died, rows left `running` or `queued` with no message, messages RabbitMQ dead-letters past
//! its delivery limit, and deliveries that meet a database outage (the janitor, and deliveries
//! held while PostgreSQL is away).

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use lapin::options::{BasicGetOptions, BasicNackOptions};
use protocol::TaskStatus;
use std::path::Path;
use std::time::Duration;
use tasknode::db::models::NewTask;
use tasknode::db::schema::tasks;
use tasknode::messages::{PayloadRef, TaskMessage};
use tasknode_testkit::{poll_until, wait_status, Lines, Proxy, TestEnv};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_tasknode");

/// Janitor settings for tests: a round a second, a second's grace.
fn quick_janitor(s: &mut tasknode::config::Settings) {
    s.janitor.every_secs = 1;
    s.janitor.grace_secs = 1;
}

/// The number in `tasknode_tasks_rescued_total` of a node's `/metrics`.
async fn rescued(env: &TestEnv, node: &tasknode_testkit::TestNode) -> u64 {
    let text = reqwest::Client::new()
        .get(format!("http://{}/metrics", node.http))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tasknode_tasks_rescued_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn a_running_task_parked_by_a_paused_kind_after_its_node_died_runs_on_resume() {
    let env = TestEnv::new().await;
    // `a` runs the task and dies; `b` takes the redelivery while the kind is paused.
    let a = env
        .spawn_process(Path::new(BIN), "a", &[("TASKNODE__WORKERS__COUNT", "2")])
        .await;
    let mut c = a.connect().await;
    let id = c
        .submit_with("sleep", b"6000", false, Default::default())
        .await
        .unwrap()
        .id;
    wait_status(&mut c, id, &[TaskStatus::Running], 20).await;
    let b = env.spawn_node("b").await;
    let mut admin = b.connect().await;
    let r = admin.ask("PAUSE kind sleep").await;
    assert_eq!(r["paused"][0], "kind:sleep", "{r}");
    a.signal("KILL");
    // b is handed the message and parks it (an outbox entry never due).
    poll_until("the redelivered task is parked", 30, async || {
        let parked: i64 = tasknode::db::schema::outbox::table
            .filter(tasknode::db::schema::outbox::id.eq(id))
            .count()
            .get_result(&mut env.db().await)
            .await
            .unwrap();
        (parked == 1).then_some(())
    })
    .await;
    admin.ask("RESUME kind sleep").await;
    let done = wait_status(&mut admin, id, &[TaskStatus::Succeeded], 60).await;
    assert_eq!(done.attempts, Some(2), "run again once: {done:?}");
}

/// Write a row as a node that died mid-run would have left it: `running` on `node`, started
/// `ago`, with no message and no outbox entry.
async fn lost_run(env: &TestEnv, kind: &str, payload: &[u8], attempts: i32, ago: Duration) -> Uuid {
    let id = Uuid::now_v7();
    let task = TaskMessage {
        id,
        kind: kind.into(),
        payload: PayloadRef::Inline {
            data: payload.to_vec(),
        },
        reply_to: None,
        submitted_by: "gone".into(),
        accepted_at: Some(chrono::Utc::now()),
        owner: Some("admin".into()),
        priority: 0,
        key: None,
    };
    let mut db = env.db().await;
    tasknode::db::tasks::insert_many(&mut db, &[NewTask::of(&task)], None)
        .await
        .unwrap();
    let then = chrono::Utc::now() - chrono::Duration::from_std(ago).unwrap();
    diesel::update(tasks::table.find(id))
        .set((
            tasks::status.eq("running"),
            tasks::node.eq("gone"),
            tasks::attempts.eq(attempts),
            tasks::started_at.eq(then),
            tasks::updated_at.eq(then),
        ))
        .execute(&mut db)
        .await
        .unwrap();
    id
}

#[actix_rt::test]
async fn rows_left_running_with_no_message_are_put_back_or_end_dead() {
    let env = TestEnv::new().await;
    let again = lost_run(&env, "upper", b"lost", 1, Duration::from_secs(5)).await;
    let spent = lost_run(&env, "upper", b"spent", 3, Duration::from_secs(5)).await;
    // Started a moment ago: its run may still be going on somewhere.
    let recent = lost_run(&env, "upper", b"recent", 1, Duration::ZERO).await;
    let node = env
        .spawn_node_with("n", |s| {
            quick_janitor(s);
            s.tasks.kinds.insert(
                "upper".into(),
                tasknode::config::KindSettings {
                    timeout_secs: Some(2),
                    max_attempts: None,
                    max_secs: None,
                },
            );
        })
        .await;
    let mut c = node.connect().await;
    let done = wait_status(&mut c, again, &[TaskStatus::Succeeded], 30).await;
    assert_eq!(done.attempts, Some(2), "{done:?}");
    let r = c.result(again).await.unwrap();
    assert_eq!(r.result.as_deref(), Some("LOST"));
    let dead = wait_status(&mut c, spent, &[TaskStatus::Dead], 30).await;
    let why = dead.message.unwrap_or_default();
    assert!(
        why.contains("no outcome after 3 attempts") && why.contains("gone"),
        "{why}"
    );
    assert!(rescued(&env, &node).await >= 2);
    // The recent one is rescued only once it is past its timeout and the grace.
    let row = env.row(recent).await.unwrap();
    assert_ne!(row.status, TaskStatus::Succeeded, "not before its time");
    wait_status(&mut c, recent, &[TaskStatus::Succeeded], 30).await;
}

#[actix_rt::test]
async fn a_message_over_the_delivery_limit_goes_back_through_the_outbox() {
    let env = TestEnv::new().await;
    // An accept-only node declares the queues with a delivery limit of 2.
    let front = env
        .spawn_node_with("front", |s| {
            s.workers.count = Some(0);
            s.lanes.values_mut().for_each(|l| l.workers = Some(0));
            s.amqp.delivery_limit = 2;
        })
        .await;
    let mut c = front.connect().await;
    let id = c
        .submit_with("upper", b"limit", false, Default::default())
        .await
        .unwrap()
        .id;
    env.outbox_drained().await;
    // Someone takes the message and hands it back until the broker dead-letters it.
    let conn = tasknode::amqp::connect(&tasknode_testkit::amqp_url(), "test-nack")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let dead = tasknode::retry::dead_queue(&env.task_queue);
    poll_until("the broker dead-letters the message", 30, async || {
        if let Some(m) = ch
            .basic_get(env.task_queue.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            let back = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            m.delivery.acker.nack(back).await.unwrap();
        }
        (env.ready_messages(&dead).await == 1).then_some(())
    })
    .await;
    assert_eq!(env.row(id).await.unwrap().status, TaskStatus::Queued);
    // A node with workers empties the dead-letter queue: the task runs.
    let worker = env
        .spawn_node_with("worker", |s| {
            quick_janitor(s);
            s.amqp.delivery_limit = 2;
        })
        .await;
    let mut w = worker.connect().await;
    let done = wait_status(&mut w, id, &[TaskStatus::Succeeded], 30).await;
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(
        env.ready_messages(&dead).await,
        0,
        "nothing left in the broker"
    );
    assert!(rescued(&env, &worker).await >= 1);
    let _ = conn.close(200, "done".into()).await;
}

#[actix_rt::test]
async fn twenty_seconds_without_postgresql_lose_no_task_to_the_delivery_limit() {
    let env = TestEnv::new().await;
    let pg = Proxy::start(tasknode_testkit::proxy::url_addr(&env.database_url)).await;
    let via_proxy = env.database_url.replace(
        &tasknode_testkit::proxy::url_addr(&env.database_url).to_string(),
        &pg.addr.to_string(),
    );
    // The worker reaches PostgreSQL through the proxy; the front node directly.
    let worker = env
        .spawn_node_with("worker", |s| {
            s.database.url = via_proxy.clone();
            s.amqp.delivery_limit = 2;
        })
        .await;
    let front = env
        .spawn_node_with("front", |s| {
            s.workers.count = Some(0);
            s.lanes.values_mut().for_each(|l| l.workers = Some(0));
            s.amqp.delivery_limit = 2;
        })
        .await;
    pg.set_up(false);
    let mut c = front.connect().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let payload = format!("outage-{i}");
        ids.push(
            c.submit_with("upper", payload.as_bytes(), false, Default::default())
                .await
                .unwrap()
                .id,
        );
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    pg.set_up(true);
    let mut w = worker.connect().await;
    for id in ids {
        let v = wait_status(&mut w, id, &[TaskStatus::Succeeded], 60).await;
        assert_eq!(v.status, TaskStatus::Succeeded);
    }
    let dead = tasknode::retry::dead_queue(&env.task_queue);
    assert_eq!(env.ready_messages(&dead).await, 0, "none dead-lettered");
}

#[actix_rt::test]
async fn a_second_message_of_a_running_task_does_not_run_it_again_meanwhile() {
    let env = TestEnv::new().await;
    let a = env.spawn_node("a").await;
    let b = env.spawn_node("b").await;
    let mut c = a.connect().await;
    let id = c
        .submit_with("sleep", b"3000", false, Default::default())
        .await
        .unwrap()
        .id;
    let running = wait_status(&mut c, id, &[TaskStatus::Running], 20).await;
    assert_eq!(running.attempts, Some(1));
    // The same task's message once more (a publisher that sent it again), while it runs.
    let row = env.row(id).await.unwrap();
    let again = TaskMessage {
        id,
        kind: row.kind.clone(),
        payload: PayloadRef::Inline {
            data: row.payload.clone().unwrap(),
        },
        reply_to: None,
        submitted_by: row.submitted_by.clone(),
        accepted_at: Some(row.created_at),
        owner: row.owner.clone(),
        priority: 0,
        key: None,
    };
    let slow = tasknode::lanes::lane_queue(&env.task_queue, "slow");
    let body = serde_json::to_vec(&[&again]).unwrap();
    publish_to(&slow, &body).await;
    let done = wait_status(&mut c, id, &[TaskStatus::Succeeded], 30).await;
    assert_eq!(done.attempts, Some(1), "run once: {done:?}");
    // Both copies are settled: nothing waits in the queue or runs on either node.
    poll_until("both deliveries settled", 20, async || {
        (env.ready_messages(&slow).await == 0 && a.inflight() == 0 && b.inflight() == 0)
            .then_some(())
    })
    .await;
    assert_eq!(env.row(id).await.unwrap().attempts, 1);
}

/// Publish `body` as a task message to `queue` (persistent, confirmed).
async fn publish_to(queue: &str, body: &[u8]) {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    let conn = tasknode::amqp::connect(&tasknode_testkit::amqp_url(), "test-again")
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let props = lapin::BasicProperties::default()
        .with_delivery_mode(2)
        .with_type(tasknode::messages::TASKS_V1.into());
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    let _ = conn.close(200, "done".into()).await;
}
