//! Control over work: idempotency keys, delayed tasks, cancelling, pausing, periodic tasks.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use protocol::{SubmitOptions, TaskStatus};
use std::collections::HashSet;
use tasknode::db::schema::{outbox, tasks};
use tasknode_testkit::{id_of, poll_until, wait_final, wait_status, Lines, TestEnv};
use uuid::Uuid;

fn keyed(key: &str) -> SubmitOptions {
    SubmitOptions {
        key: Some(key.into()),
        ..Default::default()
    }
}

fn later(ms: u64) -> SubmitOptions {
    SubmitOptions {
        delay_ms: Some(ms),
        ..Default::default()
    }
}

#[actix_rt::test]
async fn fifty_submissions_of_one_key_at_once_make_one_task() {
    let env = TestEnv::new().await;
    let a = env.spawn_node("a").await;
    let b = env.spawn_node("b").await;
    let mut clients = Vec::new();
    for i in 0..50 {
        let node = if i % 2 == 0 { &a } else { &b };
        clients.push(node.connect().await);
    }
    let answers = futures_util::future::join_all(clients.iter_mut().map(|c| async move {
        c.submit_with("tally", b"order-17", false, keyed("order-17"))
            .await
            .expect("a keyed submission is answered")
    }))
    .await;
    let ids: HashSet<Uuid> = answers.iter().map(|v| v.id).collect();
    assert_eq!(ids.len(), 1, "every submission got the first task: {ids:?}");
    let id = *ids.iter().next().unwrap();
    let mut c = a.connect().await;
    let done = wait_final(&mut c, id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(done.key.as_deref(), Some("order-17"));
    let rows = env.rows().await;
    assert_eq!(rows.len(), 1, "one row for the key: {rows:?}");
    assert_eq!(env.runs().get("order-17"), Some(&1), "it ran once");
    // Later, the same key still names that task; with another payload it is a conflict.
    let again = c
        .submit_with("tally", b"order-17", true, keyed("order-17"))
        .await
        .unwrap();
    assert_eq!((again.id, again.status), (id, TaskStatus::Succeeded));
    let r = c
        .ask(r#"{"kind":"tally","payload":"order-18","key":"order-17","wait":false}"#)
        .await;
    assert_eq!(r["error"], "key_conflict", "{r}");
    assert_eq!(
        r["id"],
        id.to_string(),
        "the conflict names the key's task: {r}"
    );
    // Keys are per token: another token's "order-17" is its own task.
    let other = env
        .token("other", tasknode::auth::Role::Submit, Default::default())
        .await;
    let mut o = tasknode_testkit::connect_as(a.addr, &other).await;
    let theirs = o
        .submit_with("tally", b"order-17", false, keyed("order-17"))
        .await
        .unwrap();
    assert_ne!(theirs.id, id);
}

#[actix_rt::test]
async fn a_delayed_task_is_scheduled_until_due_then_runs() {
    let env = TestEnv::new().await;
    let a = env.spawn_node("a").await;
    let mut c = a.connect().await;
    let v = c
        .submit_with("upper", b"later", false, later(1500))
        .await
        .unwrap();
    assert_eq!(v.status, TaskStatus::Scheduled, "{v:?}");
    let run_at = v.run_at.expect("a scheduled task says when it runs");
    let row = env.row(v.id).await.expect("its row");
    assert_eq!(row.status, TaskStatus::Scheduled);
    let done = wait_final(&mut c, v.id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    let result = c.result(v.id).await.unwrap();
    assert_eq!(result.result.as_deref(), Some("LATER"), "{result:?}");
    let started = done.started_at.expect("started");
    assert!(
        started >= run_at,
        "it ran at {started}, before it was due at {run_at}"
    );
    // Nothing of it is left in the outbox.
    env.outbox_drained().await;
}

#[actix_rt::test]
async fn a_delayed_task_survives_every_node_restarting() {
    let env = TestEnv::new().await;
    let a = env.spawn_node("a").await;
    let b = env.spawn_node("b").await;
    let first = a
        .connect()
        .await
        .submit_with("tally", b"kept-a", false, later(3000))
        .await
        .unwrap();
    let second = b
        .connect()
        .await
        .submit_with("tally", b"kept-b", false, later(3000))
        .await
        .unwrap();
    a.stop().await;
    b.stop().await;
    // Every node that knew of them is gone; new ones take over.
    let c = env.spawn_node("c").await;
    let mut client = c.connect().await;
    for id in [first.id, second.id] {
        let done = wait_final(&mut client, id).await;
        assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
        assert_eq!(done.node.as_deref(), Some("c"));
    }
    let runs = env.runs();
    assert_eq!((runs["kept-a"], runs["kept-b"]), (1, 1), "{runs:?}");
}

#[actix_rt::test]
async fn cancelled_tasks_never_run_and_running_ones_stop() {
    let env = TestEnv::new().await;
    let a = env.spawn_node("a").await;
    let b = env.spawn_node("b").await;
    let mut c = a.connect().await;
    // Scheduled: cancelled before it is due, it never runs.
    let scheduled = c
        .submit_with("tally", b"scheduled", false, later(1000))
        .await
        .unwrap();
    let v = b.connect().await.cancel(scheduled.id).await.unwrap();
    assert_eq!(v.status, TaskStatus::Cancelled, "{v:?}");
    // Queued in the broker: held by a paused kind first, so it is surely not run yet.
    c.ask("PAUSE kind tally").await;
    let queued = c.submit_with("tally", b"queued", false, SubmitOptions::default());
    let queued = queued.await.unwrap();
    let v = c.cancel(queued.id).await.unwrap();
    assert_eq!(v.status, TaskStatus::Cancelled, "{v:?}");
    c.ask("RESUME kind tally").await;
    // Running: its waiting client hears `cancelled`, well before the sleep would end.
    let mut waiter = a.connect().await;
    let sleeping = tokio::spawn(async move {
        let line = r#"{"kind":"sleep","payload":"40000","wait":true}"#;
        waiter.ask(line).await
    });
    let running = poll_until("the sleep runs", 20, async || {
        env.rows()
            .await
            .into_iter()
            .find(|r| r.kind == "sleep" && r.status == TaskStatus::Running)
    })
    .await;
    let v = b.connect().await.cancel(running.id).await.unwrap();
    assert_eq!(v.status, TaskStatus::Cancelled);
    let heard = sleeping.await.unwrap();
    assert_eq!(heard["status"], "cancelled", "{heard}");
    // A task that has ended cannot be cancelled.
    let done = c.submit("upper", b"x", true).await.unwrap();
    let r = c.ask(&format!("CANCEL {}", done.id)).await;
    assert_eq!(r["error"], "not_cancellable", "{r}");
    assert_eq!(r["status"], "succeeded", "{r}");
    // The tasks after them ran; the cancelled ones did not.
    let marker = c
        .submit_with("tally", b"marker", false, later(1500))
        .await
        .unwrap();
    wait_final(&mut c, marker.id).await;
    let runs = env.runs();
    assert_eq!(runs.get("scheduled"), None, "{runs:?}");
    assert_eq!(runs.get("queued"), None, "{runs:?}");
    assert_eq!(runs.get("marker"), Some(&1), "{runs:?}");
    let sleep = env.row(running.id).await.unwrap();
    assert_eq!(sleep.status, TaskStatus::Cancelled, "{sleep:?}");
}

#[actix_rt::test]
async fn a_paused_kind_waits_accepted_on_every_node_until_resumed() {
    let env = TestEnv::new().await;
    let a = env.spawn_node("a").await;
    let b = env.spawn_node("b").await;
    let mut admin = a.connect().await;
    let r = admin.ask("PAUSE kind tally").await;
    assert_eq!(r["paused"][0], "kind:tally", "{r}");
    let submitter = env
        .token("sub", tasknode::auth::Role::Submit, Default::default())
        .await;
    let mut s = tasknode_testkit::connect_as(b.addr, &submitter).await;
    let r = s.ask("PAUSE lane quick").await;
    assert_eq!(r["error"], "forbidden", "only an admin pauses: {r}");
    // Node b learns of the pause from the database.
    poll_until("node b sees the pause", 10, async || {
        let pong = b.connect().await.ask("PING").await;
        (pong["paused"][0] == "kind:tally").then_some(())
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = s.ask(&format!("SUBMIT tally held-{i}")).await;
        assert_eq!(r["status"], "queued", "accepted while paused: {r}");
        ids.push(id_of(&r));
    }
    // Every one waits in the outbox, parked; other kinds go on.
    let mut db = env.db().await;
    poll_until("the held tasks are parked", 20, async || {
        let parked: i64 = outbox::table
            .filter(outbox::id.eq_any(&ids))
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "due = 'infinity'",
            ))
            .count()
            .get_result(&mut db)
            .await
            .unwrap();
        (parked == 5).then_some(())
    })
    .await;
    assert_eq!(
        s.submit("upper", b"on", true)
            .await
            .unwrap()
            .result
            .as_deref(),
        Some("ON")
    );
    let v = s.status(ids[0]).await.unwrap();
    assert_eq!(
        (v.status, v.paused),
        (TaskStatus::Queued, Some(true)),
        "{v:?}"
    );
    assert!(env.runs().is_empty(), "nothing held ran: {:?}", env.runs());
    let r = admin.ask("RESUME kind tally").await;
    assert_eq!(r["paused"], serde_json::json!([]), "{r}");
    for id in &ids {
        let done = wait_final(&mut s, *id).await;
        assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    }
    assert_eq!(env.runs().len(), 5);
}

#[actix_rt::test]
async fn a_one_second_schedule_on_three_nodes_runs_once_a_tick() {
    let env = TestEnv::new().await;
    let nodes = [
        env.spawn_node("a").await,
        env.spawn_node("b").await,
        env.spawn_node("c").await,
    ];
    let mut c = nodes[0].connect().await;
    let r = c
        .ask("SCHEDULE ADD every-second \"* * * * * *\" echo tick")
        .await;
    assert_eq!(r["name"], "every-second", "{r}");
    let listed = nodes[1].connect().await.ask("SCHEDULE LIST").await;
    assert_eq!(listed["schedules"][0]["cron"], "* * * * * *", "{listed}");
    let mut db = env.db().await;
    let ticks: Vec<chrono::DateTime<chrono::Utc>> =
        poll_until("ten ticks of the schedule", 30, async || {
            let ticks: Vec<chrono::DateTime<chrono::Utc>> = tasks::table
                .filter(tasks::kind.eq("echo"))
                .select(tasks::created_at)
                .load(&mut db)
                .await
                .unwrap();
            (ticks.len() >= 10).then_some(ticks)
        })
        .await;
    let r = c.ask("SCHEDULE REMOVE every-second").await;
    assert_eq!(r["removed"], "every-second", "{r}");
    // A task is made at its tick (its created_at), once: three nodes never make one twice.
    let distinct: HashSet<_> = ticks.iter().collect();
    assert_eq!(distinct.len(), ticks.len(), "one task per tick: {ticks:?}");
    assert!(
        ticks.iter().all(|t| t.timestamp_subsec_nanos() == 0),
        "each at a whole second: {ticks:?}"
    );
    for id in tasks::table
        .filter(tasks::kind.eq("echo"))
        .select(tasks::id)
        .load::<Uuid>(&mut db)
        .await
        .unwrap()
    {
        let mut c = nodes[2].connect().await;
        wait_status(&mut c, id, &[TaskStatus::Succeeded], 30).await;
        let result = c.result(id).await.unwrap();
        assert_eq!(result.result.as_deref(), Some("tick"));
    }
    let r = c.ask("SCHEDULE ADD bad \"* * *\" echo").await;
    assert_eq!(r["error"], "malformed", "{r}");
    let r = c.ask("SCHEDULE ADD bad \"0 0 3 * * *\" nosuchkind").await;
    assert_eq!(r["error"], "unknown_kind", "{r}");
}
