//! Faults a node must survive, each bounded in time and isolated to its own env: a dependency
//! is taken away from the node under test through a [`Proxy`], or the node is a real process
//! that gets killed. (Faults of the shared services themselves are in `chaos.rs`.)

use diesel_async::RunQueryDsl;
use protocol::TaskStatus;
use std::path::Path;
use std::time::Duration;
use tasknode_testkit::{self as testkit, id_of, wait_final, wait_status, Lines, Proxy, TestEnv};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_tasknode");
const ENDED: &[TaskStatus] = &[TaskStatus::Succeeded, TaskStatus::Failed, TaskStatus::Dead];

/// Messages buried in `lane` (kept for an operator).
async fn dead_letters(env: &TestEnv, lane: &str) -> u32 {
    let queue = tasknode::lanes::lane_queue(&env.task_queue, lane);
    env.ready_messages(&tasknode::retry::buried_queue(&queue))
        .await
}

#[actix_rt::test]
async fn a_panicking_handler_fails_its_task_and_the_pool_stays_full() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| {
            s.tasks.enable_panic_kind = true;
            s.workers.count = Some(2);
        })
        .await;
    let mut c = node.connect().await;
    for i in 0..4 {
        let r = c.ask(&format!("panic boom{i}")).await;
        assert_eq!(r["status"], "failed", "{r}");
        let msg = r["message"].as_str().unwrap();
        assert!(
            msg.contains("panicked") && msg.contains(&format!("boom{i}")),
            "{r}"
        );
        assert_eq!(r["attempts"], 1, "a panic is not retried: {r}");
    }
    assert_eq!(node.pool_stats().panics(), 4);

    // Both workers still run tasks, side by side: two sleeps overlap in time.
    let mut a = node.connect().await;
    let mut b = node.connect().await;
    a.say("sleep 700").await;
    b.say("sleep 700").await;
    let (ra, rb) = (a.hear().await, b.hear().await);
    assert_eq!(ra["status"], "succeeded");
    assert_eq!(rb["status"], "succeeded");
    let all = env.rows().await;
    let sleeps: Vec<_> = all.iter().filter(|r| r.kind == "sleep").collect();
    let (x, y) = (sleeps[0], sleeps[1]);
    assert!(
        x.started_at.unwrap() < y.finished_at.unwrap()
            && y.started_at.unwrap() < x.finished_at.unwrap(),
        "the two sleeps ran at the same time on the two workers"
    );
    // Panic kind is off by default.
    let off = env.spawn_node("n2").await;
    let r = off.connect().await.ask("panic x").await;
    assert_eq!(r["error"], "unknown_kind", "{r}");
}

#[actix_rt::test]
async fn a_task_over_its_timeout_fails_and_frees_its_worker_then_goes_dead() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| {
            s.workers.count = Some(1);
            s.lanes.get_mut("slow").unwrap().workers = Some(1);
            s.tasks.retry_base_ms = 200;
            tasknode_testkit::sleep_dies_fast(s, 2);
        })
        .await;
    let mut c = node.connect().await;
    let r = c.ask("sleep 5000").await;
    assert_eq!(r["status"], "dead", "{r}");
    assert_eq!(r["error"], "task_dead");
    assert!(r["message"].as_str().unwrap().contains("timeout"), "{r}");
    assert_eq!(r["attempts"], 2, "{r}");
    // The only worker is free again at once, though the abandoned sleep is still going,
    // and runs timed work on a fresh executor thread.
    assert_eq!(c.ask("upper free").await["result"], "FREE");
    assert_eq!(c.ask("fib 10").await["result"], "55");
    let stats = node.pool_stats();
    assert_eq!(stats.timeouts(), 2);
    assert_eq!(
        stats.executors_started(),
        3,
        "one per attempt, then a replacement"
    );

    assert_eq!(
        dead_letters(&env, "slow").await,
        1,
        "its message is in the dead-letter queue"
    );
    let dead = c.dead(10).await.unwrap();
    assert_eq!(dead.dead[0].id, id_of(&r), "{dead:?}");
}

#[actix_rt::test]
async fn an_object_store_outage_fails_tasks_retryably_and_they_succeed_later() {
    let env = TestEnv::new().await;
    let proxy = Proxy::s3().await;
    let node = env
        .spawn_node_with("n1", |s| {
            s.storage.endpoint = proxy.http();
            s.tasks.max_attempts = 6;
            s.tasks.retry_base_ms = 300;
        })
        .await;
    let data = vec![b'x'; 200 * 1024];
    let mut c = node.connect().await;
    c.say("PUT sha256 204800 ASYNC").await;
    c.say_raw(&data).await;
    // Accepted before the outage (the payload is in the bucket)...
    let r = c.hear().await;
    assert_eq!(r["status"], "queued", "{r}");
    let id = id_of(&r);
    proxy.set_up(false);
    // ...and its runs fail while the store is away: it waits for a retry.
    let mut probe = node.connect().await;
    testkit::poll_until("a run failed against the missing store", 10, async || {
        let s = probe.status(id).await.ok()?;
        (s.attempts >= Some(1) && s.message.is_some_and(|m| !m.is_empty())).then_some(())
    })
    .await;
    // A large submission meanwhile is refused clearly, not accepted.
    let big = format!("upper {}", "y".repeat(100 * 1024));
    let refused = c.ask(&big).await;
    assert_eq!(refused["error"], "storage_unavailable", "{refused}");
    // PING says so within a second (one health answer a second serves the whole node).
    let ping = testkit::poll_until("PING says the store is down", 5, async || {
        let ping = c.ask("PING").await;
        (ping["s3"] == "down").then_some(ping)
    })
    .await;
    assert_eq!(ping["healthy"], false, "{ping}");

    proxy.set_up(true);
    let done = wait_status(&mut c, id, ENDED, 30).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert!(done.attempts >= Some(2), "{done:?}");
    let r = c.result(id).await.unwrap();
    use sha2::Digest;
    assert_eq!(r.result, Some(hex::encode(sha2::Sha256::digest(&data))));
}

#[actix_rt::test]
async fn dead_tasks_are_listed_and_can_be_retried() {
    let env = TestEnv::new().await;
    let proxy = Proxy::s3().await;
    let node = env
        .spawn_node_with("n1", |s| {
            s.storage.endpoint = proxy.http();
            s.tasks.max_attempts = 2;
            s.tasks.retry_base_ms = 100;
        })
        .await;
    let mut c = node.connect().await;
    c.say("PUT wordcount 70000 ASYNC").await;
    c.say_raw(&b"word ".repeat(14000)).await;
    let id = id_of(&c.hear().await);
    proxy.set_up(false);
    let dead = wait_status(&mut c, id, ENDED, 30).await;
    assert_eq!(dead.status, TaskStatus::Dead, "{dead:?}");
    let list = c.dead(10).await.unwrap();
    assert!(list.dead.iter().any(|d| d.id == id), "{list:?}");
    assert_eq!(dead_letters(&env, "quick").await, 1);

    let r = c.ask(&format!("RETRY {}", Uuid::new_v4())).await;
    assert_eq!(r["error"], "not_found", "{r}");
    proxy.set_up(true);
    let r = c.ask(&format!("RETRY {id}")).await;
    assert_eq!(r["status"], "queued", "{r}");
    let done = wait_status(&mut c, id, ENDED, 30).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(
        c.result(id).await.unwrap().result.as_deref(),
        Some(r#"{"word":14000}"#)
    );
    let r = c.ask(&format!("RETRY {id}")).await;
    assert_eq!(
        r["error"], "not_retryable",
        "a succeeded task is not retried: {r}"
    );
}

#[actix_rt::test]
async fn killed_database_sessions_lose_nothing() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let admin_url = testkit::pg_admin_url();
    let db = env.database.clone();
    let killer = tokio::spawn(async move {
        use diesel_async::AsyncConnection;
        let mut conn = diesel_async::AsyncPgConnection::establish(&admin_url)
            .await
            .unwrap();
        for _ in 0..15 {
            let _ = diesel::sql_query(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{db}' AND pid <> pg_backend_pid()"
            ))
            .execute(&mut conn)
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut accepted = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(node.connect().await);
    }
    for round in 0..15 {
        for (i, c) in clients.iter_mut().enumerate() {
            let r = c.ask(&format!("SUBMIT upper r{round}c{i}")).await;
            match r["status"].as_str() {
                Some("queued") => accepted.push((id_of(&r), format!("R{round}C{i}"))),
                _ => assert!(
                    ["database_unavailable", "not_accepted"]
                        .contains(&r["error"].as_str().unwrap_or("")),
                    "a refusal must be a clear error: {r}"
                ),
            }
        }
    }
    killer.await.unwrap();
    assert!(
        accepted.len() > 30,
        "most submissions were accepted: {}",
        accepted.len()
    );
    let c = &mut clients[0];
    for (id, want) in &accepted {
        let s = wait_status(c, *id, ENDED, 30).await;
        assert_eq!(s.status, TaskStatus::Succeeded, "{s:?}");
        assert_eq!(c.result(*id).await.unwrap().result.as_ref(), Some(want));
    }
}

#[actix_rt::test]
async fn losing_rabbitmq_keeps_accepting_then_heals() {
    let env = TestEnv::new().await;
    let (proxy, amqp_via_proxy) = Proxy::amqp().await;
    let node = env
        .spawn_node_with("n1", |s| {
            s.amqp.url = amqp_via_proxy.clone();
            // A waiting submission waits this long for the broker, then is refused.
            s.amqp.publish_wait_ms = 500;
        })
        .await;
    let mut c = node.connect().await;
    assert_eq!(c.ask("upper before").await["result"], "BEFORE");

    proxy.set_up(false);
    // PING tells a load balancer to take this node out.
    let mut probe = node.connect().await;
    let down = testkit::poll_until("PING reports the broker down", 10, async || {
        let pong = probe.ping().await.ok()?;
        (pong.amqp == Some(protocol::Check::Down)).then_some(pong)
    })
    .await;
    assert!(!down.healthy, "{down:?}");
    assert_eq!(down.postgres, Some(protocol::Check::Ok), "{down:?}");
    // A submission that waits for its result cannot have one: it is refused, never sent.
    let r = c.ask("upper refused").await;
    assert_eq!(r["error"], "not_accepted", "{r}");
    // A submission that does not wait is accepted: its row is written, and publishing it is
    // the node's job (the outbox) once the broker is back.
    let mut during = Vec::new();
    for i in 0..5 {
        let r = c.ask(&format!("SUBMIT upper during{i}")).await;
        assert_eq!(r["status"], "queued", "{r}");
        during.push(id_of(&r));
    }

    proxy.set_up(true);
    for id in during {
        let ended = wait_final(&mut c, id).await;
        assert_eq!(ended.status, TaskStatus::Succeeded, "{ended:?}");
    }
    assert_eq!(c.ask("upper after").await["result"], "AFTER");
    // The refused task never ran and left no row.
    let rows = env.rows().await;
    assert!(
        !rows
            .iter()
            .any(|r| r.payload.as_deref() == Some(&b"refused"[..])),
        "a refused task left a row"
    );
    env.outbox_drained().await;
}

#[actix_rt::test]
async fn a_node_that_cannot_recover_exits_non_zero() {
    let env = TestEnv::new().await;
    let (proxy, via) = Proxy::amqp().await;
    let mut child = env
        .spawn_process(
            Path::new(BIN),
            "doomed",
            &[
                ("TASKNODE__AMQP__URL", &via),
                ("TASKNODE__SUPERVISION__MAX_RESTARTS", "3"),
            ],
        )
        .await;
    proxy.set_up(false);
    let status = child
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("the node gave up and exited");
    assert!(!status.success(), "exit status must be non-zero: {status}");
    assert!(
        child.log_text().contains("restart budget spent"),
        "{}",
        child.log_text()
    );
}

#[actix_rt::test]
async fn a_node_killed_mid_work_has_its_tasks_redelivered() {
    let env = TestEnv::new().await;
    let front = env
        .spawn_node_with("front", |s| s.workers.count = Some(0))
        .await;
    let victim = env.spawn_process(Path::new(BIN), "victim", &[]).await;
    let mut c = front.connect().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(id_of(&c.ask(&format!("SUBMIT sleep {}", 1500 + i)).await));
    }
    // Wait until the victim is running some of them, then kill -9 it.
    wait_status(&mut c, ids[0], &[TaskStatus::Running], 10).await;
    victim.signal("KILL");
    drop(victim);
    let _rescuer = env.spawn_node("rescuer").await;
    for id in &ids {
        let s = wait_status(&mut c, *id, ENDED, 30).await;
        assert_eq!(s.status, TaskStatus::Succeeded, "{s:?}");
    }
    let all = env.rows().await;
    assert!(
        all.iter()
            .any(|r| r.attempts == 2 && r.node.as_deref() == Some("rescuer")),
        "the killed node's tasks ran again elsewhere"
    );
}

#[actix_rt::test]
async fn sigterm_finishes_in_flight_work_and_exits_zero() {
    let env = TestEnv::new().await;
    let front = env
        .spawn_node_with("front", |s| s.workers.count = Some(0))
        .await;
    let mut node = env.spawn_process(Path::new(BIN), "leaving", &[]).await;
    let mut c = front.connect().await;
    let id = id_of(&c.ask("SUBMIT sleep 1200").await);
    wait_status(&mut c, id, &[TaskStatus::Running], 10).await;
    node.signal("TERM");
    let status = node
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exits within the grace period");
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    let s = c.status(id).await.unwrap();
    assert_eq!(
        s.status,
        TaskStatus::Succeeded,
        "in-flight task finished before exit: {s:?}"
    );
    assert_eq!(s.node.as_deref(), Some("leaving"));
    assert_eq!(s.attempts, Some(1));
}

#[actix_rt::test]
async fn a_submission_during_a_broker_blip_waits_for_the_new_connection() {
    let env = TestEnv::new().await;
    let (proxy, amqp_via_proxy) = Proxy::amqp().await;
    let node = env
        .spawn_node_with("n1", |s| s.amqp.url = amqp_via_proxy.clone())
        .await;
    let mut c = node.connect().await;
    proxy.set_up(false);
    let mut probe = node.connect().await;
    testkit::poll_until("PING reports the broker down", 10, async || {
        let pong = probe.ping().await.ok()?;
        (pong.amqp == Some(protocol::Check::Down)).then_some(())
    })
    .await;
    // Both kinds of submission go in while the node has no broker connection...
    c.say("SUBMIT upper queued-in-blip").await;
    c.say("upper waited-in-blip").await;
    // ...and the broker is back soon after (the outage's length is the test's, not a wait for
    // something to happen).
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.set_up(true);
    let queued = c.hear().await;
    assert_eq!(queued["status"], "queued", "{queued}");
    let waited = c.hear().await;
    assert_eq!(waited["result"], "WAITED-IN-BLIP", "{waited}");
    let s = wait_status(&mut c, id_of(&queued), ENDED, 30).await;
    assert_eq!(s.status, TaskStatus::Succeeded, "{s:?}");
}
