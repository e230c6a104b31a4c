//! Lanes: tasks that may run long have their own queue and workers, so short tasks never
//! wait behind them.

use protocol::TaskStatus;
use tasknode_testkit::{id_of, Lines, TestEnv};

#[actix_rt::test]
async fn short_tasks_do_not_wait_behind_long_ones() {
    let env = TestEnv::new().await;
    let a = env.spawn_node("a").await;
    let b = env.spawn_node("b").await;
    let mut c = a.connect().await;
    // More long tasks than both nodes have slow workers: the slow lane is saturated.
    let mut sleeps = Vec::new();
    for _ in 0..12 {
        let r = c.ask("SUBMIT sleep 15000").await;
        assert_eq!(r["status"], "queued", "{r}");
        sleeps.push(id_of(&r));
    }
    tasknode_testkit::poll_until("the long tasks are running", 20, async || {
        let running = env
            .rows()
            .await
            .iter()
            .filter(|r| r.status == TaskStatus::Running)
            .count();
        (running >= 8).then_some(())
    })
    .await;
    // A short task on the other node is answered while every long one still runs.
    let r = b.connect().await.ask("upper hol").await;
    assert_eq!(r["result"], "HOL", "{r}");
    for id in sleeps {
        let row = env.row(id).await.expect("a row");
        assert!(
            !row.status.is_final(),
            "the short task waited for a long one to end: {row:?}"
        );
    }
}

#[actix_rt::test]
async fn a_small_quick_task_waits_for_no_worker_of_its_lane() {
    // One worker in a lane that also holds a long kind: the long task takes that worker, and
    // a small quick task behind it in the same lane still runs (where its delivery is taken).
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("a", |s| {
            let quick = s.lanes.get_mut("quick").unwrap();
            quick.kinds.push("sleep".into());
            quick.workers = Some(1);
        })
        .await;
    let mut c = node.connect().await;
    let r = c.ask("SUBMIT sleep 15000").await;
    assert_eq!(r["status"], "queued", "{r}");
    let sleep = id_of(&r);
    tasknode_testkit::poll_until("the long task is running", 20, async || {
        let row = env.row(sleep).await?;
        (row.status == TaskStatus::Running).then_some(())
    })
    .await;
    let r = c.ask("upper hol").await;
    assert_eq!(r["result"], "HOL", "{r}");
    let row = env.row(sleep).await.expect("a row");
    assert_eq!(
        row.status,
        TaskStatus::Running,
        "the quick task waited for the lane's only worker: {row:?}"
    );
}

#[actix_rt::test]
async fn a_task_waiting_for_a_worker_spends_its_timeout_meanwhile() {
    let env = TestEnv::new().await;
    // One slow worker; `sleep` has 2 s from its delivery and one attempt.
    let node = env
        .spawn_node_with("n", |s| {
            if let Some(slow) = s.lanes.get_mut("slow") {
                slow.workers = Some(1);
            }
            s.tasks.kinds.insert(
                "sleep".into(),
                tasknode::config::KindSettings {
                    timeout_secs: Some(2),
                    max_attempts: Some(1),
                    max_secs: None,
                },
            );
        })
        .await;
    let mut c = node.connect().await;
    // Three delivered together: the first runs 1.5 s, the second has 0.5 s left when the
    // worker is free, the third none.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = c.ask("SUBMIT sleep 1500").await;
        assert_eq!(r["status"], "queued", "{r}");
        ids.push(id_of(&r));
    }
    let mut outcomes = Vec::new();
    for id in ids {
        let v = tasknode_testkit::wait_final(&mut c, id).await;
        outcomes.push((v.status, v.message.unwrap_or_default()));
    }
    let succeeded = outcomes
        .iter()
        .filter(|(s, _)| *s == TaskStatus::Succeeded)
        .count();
    assert_eq!(succeeded, 1, "{outcomes:?}");
    for (status, message) in outcomes.iter().filter(|(s, _)| *s != TaskStatus::Succeeded) {
        assert_eq!(*status, TaskStatus::Dead, "{outcomes:?}");
        assert!(message.contains("timeout"), "{outcomes:?}");
    }
}

/// Threads named `name` of process `pid`.
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|comm| comm.trim() == name)
                })
                .count()
        })
        .unwrap_or(0)
}

#[actix_rt::test]
async fn cancelled_runs_give_their_threads_back() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_process(
            std::path::Path::new(env!("CARGO_BIN_EXE_tasknode")),
            "n",
            &[("TASKNODE__LANES__SLOW__WORKERS", "1")],
        )
        .await;
    let mut c = node.connect().await;
    // Twenty ten-minute sleeps, each cancelled once it runs.
    for _ in 0..20 {
        let r = c.ask("SUBMIT sleep 600000").await;
        let id = id_of(&r);
        tasknode_testkit::wait_status(&mut c, id, &[TaskStatus::Running], 20).await;
        let r = c.ask(&format!("CANCEL {id}")).await;
        assert_eq!(r["status"], "cancelled", "{r}");
    }
    // Each run saw its stop flag and ended: no sleeping thread is left behind.
    let pid = node.child.id();
    tasknode_testkit::poll_until("the cancelled runs' threads end", 20, async || {
        (threads_named(pid, "task-executor") <= 1).then_some(())
    })
    .await;
    // The lane still runs tasks.
    let r = c
        .ask(r#"{"kind":"sleep","payload":"10","wait":true}"#)
        .await;
    assert_eq!(r["result"], "slept 10ms", "{r}");
}
