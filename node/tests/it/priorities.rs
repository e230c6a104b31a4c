//! Priorities: a high-priority task does not wait behind a backlog of ordinary ones.

use protocol::TaskStatus;
use tasknode::db::schema::tasks;
use tasknode_testkit::{Lines, TestEnv};

/// Ordinary tasks queued ahead of the urgent one.
const BACKLOG: usize = 20_000;
/// Submissions sent before their answers are read.
const PIPELINE: usize = 256;

#[actix_rt::test]
async fn a_priority_nine_task_submitted_last_passes_a_backlog_of_twenty_thousand() {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    let env = TestEnv::new().await;
    // Two slow workers: the backlog takes minutes to drain.
    let a = env
        .spawn_node_with("a", |s| s.lanes.get_mut("slow").unwrap().workers = Some(2))
        .await;
    let mut c = a.connect().await;
    let mut sent = 0;
    while sent < BACKLOG {
        let n = PIPELINE.min(BACKLOG - sent);
        for _ in 0..n {
            c.say("SUBMIT sleep 20").await;
        }
        for _ in 0..n {
            let r = c.hear().await;
            assert_eq!(r["status"], "queued", "{r}");
        }
        sent += n;
    }
    // Every one is in the broker (none waits to be published).
    env.outbox_drained().await;
    let mut db = env.db().await;
    let finished = async |db: &mut diesel_async::AsyncPgConnection| -> i64 {
        tasks::table
            .filter(tasks::kind.eq("sleep"))
            .filter(tasks::status.eq(TaskStatus::Succeeded.as_str()))
            .count()
            .get_result(db)
            .await
            .unwrap()
    };
    let before = finished(&mut db).await;
    let urgent = c
        .ask(r#"{"kind":"sleep","payload":"1","priority":9,"wait":true}"#)
        .await;
    assert_eq!(urgent["status"], "succeeded", "{urgent}");
    assert_eq!(urgent["priority"], 9, "{urgent}");
    let passed = finished(&mut db).await - before;
    assert!(
        passed < 100,
        "the urgent task waited for {passed} more of the backlog ({before} had finished before it came)"
    );
    assert!(
        (before as usize) < BACKLOG - 1_000,
        "the backlog was nearly gone before the urgent task came ({before} finished)"
    );
}
