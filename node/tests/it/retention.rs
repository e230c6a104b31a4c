//! Retention: a day of tasks older than `retention.days` is dropped whole, with the bucket
//! objects of its finished tasks, while new tasks keep flowing; its unfinished tasks stay.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use protocol::TaskStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tasknode::db::retention;
use tasknode::db::schema::{task_partitions, tasks};
use tasknode::storage::Storage;
use tasknode_testkit::{poll_until, TestEnv};
use uuid::{Timestamp, Uuid};

/// Write a row of `status` accepted at `at`, its payload in the bucket under `key`.
async fn insert_old(
    db: &mut diesel_async::AsyncPgConnection,
    at: chrono::DateTime<chrono::Utc>,
    status: TaskStatus,
    key: &str,
) {
    let ts = Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    );
    let finished = status.is_final().then_some(at);
    diesel::insert_into(tasks::table)
        .values((
            tasks::id.eq(Uuid::new_v7(ts)),
            tasks::kind.eq("echo"),
            tasks::status.eq(status.as_str()),
            tasks::payload_key.eq(Some(key.to_string())),
            tasks::payload_size.eq(3i64),
            tasks::submitted_by.eq("old"),
            tasks::created_at.eq(at),
            tasks::updated_at.eq(at),
            tasks::finished_at.eq(finished),
        ))
        .execute(db)
        .await
        .unwrap();
}

/// Wait up to `secs` until partition `name` is dropped (no longer listed).
async fn dropped(db: &mut diesel_async::AsyncPgConnection, name: &str, secs: u64) {
    poll_until("the old day is dropped", secs, async || {
        let listed: i64 = task_partitions::table
            .filter(task_partitions::name.eq(name))
            .count()
            .get_result(db)
            .await
            .unwrap();
        (listed == 0).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn a_day_past_retention_is_dropped_with_its_objects_while_tasks_flow() {
    let env = TestEnv::new().await;
    let settings = env.settings("a");
    let storage = Storage::new(&settings.storage).unwrap();
    storage.ensure_bucket().await.unwrap();
    let mut db = env.db().await;
    // A day ten days ago, with two finished tasks (objects in the bucket) and one unfinished.
    let at = chrono::Utc::now() - chrono::Duration::days(10);
    let day = at.date_naive();
    retention::make_day(&mut db, day).await.unwrap();
    let keys: Vec<String> = (0..3)
        .map(|i| format!("{}old/payload-{i}", env.key_prefix))
        .collect();
    for key in &keys {
        storage
            .put(key, bytes::Bytes::from_static(b"old"))
            .await
            .unwrap();
    }
    let statuses = [
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Scheduled,
    ];
    for (status, key) in statuses.into_iter().zip(&keys) {
        insert_old(&mut db, at, status, key).await;
    }
    let kept: Uuid = tasks::table
        .filter(tasks::status.eq("scheduled"))
        .select(tasks::id)
        .first(&mut db)
        .await
        .unwrap();
    // The day after tomorrow is not made yet: the node makes it.
    let ahead = chrono::Utc::now().date_naive() + chrono::Days::new(retention::AHEAD);
    let last = retention::partition_name(ahead);
    diesel::sql_query(format!("DROP TABLE {last}"))
        .execute(&mut db)
        .await
        .unwrap();
    diesel::delete(task_partitions::table.find(&last))
        .execute(&mut db)
        .await
        .unwrap();
    // A node keeping 7 days, with a client submitting all along.
    let a = env.spawn_node_with("a", |s| s.retention.days = 7).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut c = a.connect().await;
    let flowing = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            while !AtomicBool::load(&stop, Ordering::Relaxed) {
                match c.submit("upper", b"flow", true).await {
                    Ok(v) if v.status == TaskStatus::Succeeded => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    let name = retention::partition_name(day);
    dropped(&mut db, &name, 30).await;
    AtomicBool::store(&stop, true, Ordering::Relaxed);
    let (ok, failed) = flowing.await.unwrap();
    assert!(
        ok > 0 && failed == 0,
        "tasks flowed: {ok} succeeded, {failed} did not"
    );
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let table: Exists = diesel::sql_query(format!(
        "SELECT to_regclass('{name}') IS NOT NULL AS exists"
    ))
    .get_result(&mut db)
    .await
    .unwrap();
    assert!(!table.exists, "the partition's table is gone");
    // Its finished tasks and their objects are gone; its unfinished task stays, with its object.
    let rows: Vec<(Uuid, String)> = tasks::table
        .filter(tasks::submitted_by.eq("old"))
        .select((tasks::id, tasks::status))
        .load(&mut db)
        .await
        .unwrap();
    assert_eq!(rows, vec![(kept, "scheduled".to_string())]);
    for key in &keys[..2] {
        assert!(storage.get_bytes(key).await.is_err(), "{key} is deleted");
    }
    assert_eq!(storage.get_bytes(&keys[2]).await.unwrap(), b"old");
    // The days ahead have their partitions.
    let made: i64 = task_partitions::table
        .filter(task_partitions::lo_day.gt(chrono::Utc::now().date_naive()))
        .count()
        .get_result(&mut db)
        .await
        .unwrap();
    assert_eq!(made, retention::AHEAD as i64);
    assert_eq!(
        task_partitions::table
            .find(&last)
            .count()
            .get_result::<i64>(&mut db)
            .await
            .unwrap(),
        1,
        "the node made {last}"
    );
}

#[actix_rt::test]
async fn a_long_reader_of_tasks_does_not_stop_writes_while_a_day_waits_to_be_dropped() {
    let env = TestEnv::new().await;
    let mut db = env.db().await;
    let at = chrono::Utc::now() - chrono::Duration::days(10);
    let day = at.date_naive();
    retention::make_day(&mut db, day).await.unwrap();
    insert_old(&mut db, at, TaskStatus::Succeeded, "old/none").await;
    // A report that reads `tasks` in one long transaction.
    let mut reader = env.db().await;
    diesel::sql_query("BEGIN")
        .execute(&mut reader)
        .await
        .unwrap();
    diesel::sql_query("SELECT count(*) FROM tasks")
        .execute(&mut reader)
        .await
        .unwrap();
    // The node's first retention round wants the old day's partition meanwhile.
    let a = env.spawn_node_with("a", |s| s.retention.days = 7).await;
    let mut c = a.connect().await;
    for i in 0..5 {
        let payload = format!("during-{i}");
        let v = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            c.submit("upper", payload.as_bytes(), true),
        )
        .await
        .expect("a submission is answered while the reader reads")
        .unwrap();
        assert_eq!(v.status, TaskStatus::Succeeded, "{v:?}");
    }
    // Once the reader is done, the day is dropped on a later round.
    diesel::sql_query("COMMIT")
        .execute(&mut reader)
        .await
        .unwrap();
    let name = retention::partition_name(day);
    dropped(&mut db, &name, 60).await;
}

/// Keys under `name` in the env's part of the bucket.
async fn listed(storage: &Storage, name: &str) -> Vec<String> {
    let (page, _) = storage.list_page(name, None).await.unwrap();
    page.into_iter().map(|o| o.key).collect()
}

#[actix_rt::test]
async fn a_payload_uploaded_for_a_refused_submission_does_not_stay_in_the_bucket() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n").await;
    let limits = tasknode::auth::tokens::Limits {
        max_inflight: Some(1),
        ..Default::default()
    };
    let capped = env
        .token("capped", tasknode::auth::Role::Submit, limits)
        .await;
    let mut c = tasknode_testkit::connect_as(node.addr, &capped).await;
    let later = protocol::SubmitOptions {
        delay_ms: Some(3_600_000),
        ..Default::default()
    };
    c.submit_with("upper", b"one", false, later).await.unwrap();
    // Past the inline limit: uploaded to the bucket, then refused (one unfinished already).
    let big = vec![b'x'; 200 * 1024];
    let refused = c
        .submit("upper", &big, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("quota_exceeded") || refused.contains("max_inflight"),
        "{refused}"
    );
    poll_until("the refused payload is deleted", 20, async || {
        listed(&node.storage, "payloads/")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn objects_no_task_names_are_swept_once_old() {
    let env = TestEnv::new().await;
    let settings = env.settings("n");
    let storage = Storage::new(&settings.storage).unwrap();
    storage.ensure_bucket().await.unwrap();
    let orphan = storage.key(&format!("payloads/{}", Uuid::now_v7()));
    storage
        .put(&orphan, bytes::Bytes::from_static(b"nobody's"))
        .await
        .unwrap();
    // A queued task whose payload is in the bucket: named, so kept however old.
    let id = Uuid::now_v7();
    let named = storage.key(&format!("payloads/{id}"));
    storage
        .put(&named, bytes::Bytes::from_static(b"named"))
        .await
        .unwrap();
    let mut db = env.db().await;
    diesel::insert_into(tasks::table)
        .values((
            tasks::id.eq(id),
            tasks::kind.eq("nosuchkind"),
            tasks::status.eq("scheduled"),
            tasks::payload_key.eq(Some(named.clone())),
            tasks::payload_size.eq(5i64),
            tasks::submitted_by.eq("gone"),
        ))
        .execute(&mut db)
        .await
        .unwrap();
    // Both older than the sweep's age (the store dates objects to the second).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let _node = env
        .spawn_node_with("n", |s| s.retention.orphans_after_secs = 1)
        .await;
    poll_until("the orphan is deleted", 30, async || {
        (!listed(&storage, "payloads/").await.contains(&orphan)).then_some(())
    })
    .await;
    assert_eq!(storage.get_bytes(&named).await.unwrap(), b"named");
}
