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
