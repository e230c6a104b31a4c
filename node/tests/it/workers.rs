//! Workers of any language: `WORK`, leases that fence, `DONE`/`FAIL`/`PROGRESS`/`EXTEND`, a
//! worker's connection closing, cancel, and tasks that wait in RabbitMQ for a free worker.

use protocol::{Client, TaskStatus};
use serde_json::Value;
use tasknode::auth::Role;
use tasknode_testkit::{connect_as, id_of, wait_final, Lines, TestEnv};

/// A worker connection for `kinds` with `slots`.
async fn worker(addr: std::net::SocketAddr, token: &str, kinds: &str, slots: u16) -> Client {
    let mut w = connect_as(addr, token).await;
    let working = w.ask(&format!("WORK {kinds} slots={slots}")).await;
    assert_eq!(working["slots"], slots, "{working}");
    w
}

/// The next task pushed to a worker: (its line, its lease).
async fn next_task(w: &mut Client) -> (Value, String) {
    let line = w.hear().await;
    let task = line["task"].clone();
    assert!(task.is_object(), "a task line: {line}");
    let lease = task["lease"].as_str().unwrap().to_string();
    (task, lease)
}

#[actix_rt::test]
async fn a_worker_runs_a_task_of_its_kind_and_a_second_done_is_lease_lost() {
    let env = TestEnv::new().await;
    let kind = env.external("shout");
    let a = env.spawn_node("a").await;
    let b = env.spawn_node("b").await;
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let mut c = b.connect().await;
    // Not a kind until a worker says WORK for it (or the config declares it).
    let unknown = c.ask(&format!("{kind} hello")).await;
    assert_eq!(unknown["error"], "unknown_kind", "{unknown}");
    let mut w = worker(a.addr, &secret, kind, 2).await;
    // Submitted on the other node: the registration is the fleet's.
    c.say(&format!("{kind} hello")).await;
    let (task, lease) = next_task(&mut w).await;
    assert_eq!(task["kind"], kind);
    assert_eq!(task["payload"], "hello");
    assert_eq!(task["attempt"], 1);
    let ok = w.ask(&format!("DONE {lease} HELLO!")).await;
    assert_eq!(ok["ok"], "done", "{ok}");
    let answer = c.hear().await;
    assert_eq!(answer["status"], "succeeded", "{answer}");
    assert_eq!(answer["result"], "HELLO!");
    let again = w.ask(&format!("DONE {lease} twice")).await;
    assert_eq!(again["error"], "lease_lost", "{again}");
    let row = env.row(id_of(&answer)).await.unwrap();
    assert_eq!(
        row.result.as_deref(),
        Some(&b"HELLO!"[..]),
        "the first DONE stands"
    );
}

#[actix_rt::test]
async fn only_workers_work_and_built_in_kinds_are_not_theirs() {
    let env = TestEnv::new().await;
    let a = env.spawn_node("a").await;
    let submitter = env.token("s", Role::Submit, Default::default()).await;
    let worker_token = env.token("w", Role::Worker, Default::default()).await;
    let mut s = connect_as(a.addr, &submitter).await;
    let refused = s.ask("WORK resize").await;
    assert_eq!(refused["error"], "forbidden", "{refused}");
    let mut w = connect_as(a.addr, &worker_token).await;
    let builtin = w.ask("WORK upper").await;
    assert_eq!(builtin["error"], "malformed", "{builtin}");
    let submit = w.ask("echo hi").await;
    assert_eq!(
        submit["error"], "forbidden",
        "a worker does not submit: {submit}"
    );
    let lost = w.ask("DONE 0123456789abcdef nothing").await;
    assert_eq!(lost["error"], "lease_lost", "{lost}");
}

#[actix_rt::test]
async fn a_declared_kind_waits_in_the_queue_until_a_worker_of_any_node_comes() {
    let env = TestEnv::new().await;
    let kind = env.external("later");
    let a = env
        .spawn_node_with("a", |s| s.external.kinds = vec!["later".into()])
        .await;
    let b = env.spawn_node("b").await;
    let mut c = a.connect().await;
    let queued = c.ask(&format!("SUBMIT {kind} first")).await;
    let id = id_of(&queued);
    let view = c.ask(&format!("STATUS {id}")).await;
    assert_eq!(view["status"], "queued", "no worker yet: {view}");
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let mut w = worker(b.addr, &secret, kind, 1).await;
    let (task, lease) = next_task(&mut w).await;
    assert_eq!(task["id"], id.to_string());
    w.ask(&format!("DONE {lease} ok")).await;
    let done = wait_final(&mut c, id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
}

#[actix_rt::test]
async fn a_lost_worker_gives_its_task_back_at_once_and_its_late_done_changes_nothing() {
    let env = TestEnv::new().await;
    let kind = env.external("crunch");
    let a = env.spawn_node("a").await;
    let b = env.spawn_node("b").await;
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let mut first = worker(a.addr, &secret, kind, 1).await;
    let mut c = a.connect().await;
    let id = id_of(&c.ask(&format!("SUBMIT {kind} numbers")).await);
    let (_, lost_lease) = next_task(&mut first).await;
    // The first worker dies holding the task; another, on the other node, gets it again.
    drop(first);
    let mut second = worker(b.addr, &secret, kind, 1).await;
    let (task, lease) = next_task(&mut second).await;
    assert_eq!(task["id"], id.to_string());
    assert_eq!(task["attempt"], 2, "the lost run counted: {task}");
    assert_ne!(lease, lost_lease);
    // The first worker's answer, late, from wherever: refused, and nothing changes.
    let mut late = connect_as(b.addr, &secret).await;
    let refused = late.ask(&format!("DONE {lost_lease} stale")).await;
    assert_eq!(refused["error"], "lease_lost", "{refused}");
    second.ask(&format!("DONE {lease} fresh")).await;
    let done = wait_final(&mut c, id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    let result = c.ask(&format!("RESULT {id}")).await;
    assert_eq!(result["result"], "fresh", "{result}");
}

#[actix_rt::test]
async fn fail_retries_until_dead_and_a_final_fail_fails_at_once() {
    let env = TestEnv::new().await;
    let kind = env.external("flaky");
    let a = env
        .spawn_node_with("a", |s| {
            s.tasks.retry_base_ms = 100;
            s.external.kinds = vec!["flaky".into()];
            let limits = tasknode::config::KindSettings {
                max_attempts: Some(2),
                ..Default::default()
            };
            s.tasks.kinds.insert("flaky".into(), limits);
        })
        .await;
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let mut w = worker(a.addr, &secret, kind, 1).await;
    let mut c = a.connect().await;
    let id = id_of(&c.ask(&format!("SUBMIT {kind} x")).await);
    for attempt in 1..=2 {
        let (task, lease) = next_task(&mut w).await;
        assert_eq!(task["attempt"], attempt);
        let ok = w.ask(&format!("FAIL {lease} disk full")).await;
        assert_eq!(ok["ok"], "failed", "{ok}");
    }
    let dead = wait_final(&mut c, id).await;
    assert_eq!(dead.status, TaskStatus::Dead, "{dead:?}");
    assert!(
        dead.message.as_deref().unwrap().contains("disk full"),
        "{dead:?}"
    );
    let id = id_of(&c.ask(&format!("SUBMIT {kind} y")).await);
    let (_, lease) = next_task(&mut w).await;
    w.ask(&format!("FAIL {lease} final no such image")).await;
    let failed = wait_final(&mut c, id).await;
    assert_eq!(failed.status, TaskStatus::Failed, "{failed:?}");
    assert_eq!(failed.attempts, Some(1), "not retried: {failed:?}");
}

#[actix_rt::test]
async fn progress_shows_in_status_and_cancel_reaches_the_worker() {
    let env = TestEnv::new().await;
    let kind = env.external("render");
    let a = env.spawn_node("a").await;
    let b = env.spawn_node("b").await;
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let mut w = worker(a.addr, &secret, kind, 1).await;
    let mut c = b.connect().await;
    let id = id_of(&c.ask(&format!("SUBMIT {kind} scene")).await);
    let (_, lease) = next_task(&mut w).await;
    let ok = w.ask(&format!("PROGRESS {lease} 40 lighting")).await;
    assert_eq!(ok["ok"], "progress", "{ok}");
    let view = c.ask(&format!("STATUS {id}")).await;
    assert_eq!(view["status"], "running");
    assert_eq!(view["progress"], 40, "{view}");
    assert_eq!(view["progress_note"], "lighting", "{view}");
    // Cancelled on the other node: the worker is told, and its lease is gone.
    let cancelled = c.ask(&format!("CANCEL {id}")).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let told = w.hear().await;
    assert_eq!(told["cancel"], lease.as_str(), "{told}");
    let late = w.ask(&format!("DONE {lease} too late")).await;
    assert_eq!(late["error"], "lease_lost", "{late}");
}

#[actix_rt::test]
async fn extend_keeps_a_task_past_its_first_deadline_and_a_deadline_passed_is_a_timeout() {
    let env = TestEnv::new().await;
    let kind = env.external("slowpoke");
    let a = env
        .spawn_node_with("a", |s| {
            s.external.kinds = vec!["slowpoke".into()];
            let limits = tasknode::config::KindSettings {
                timeout_secs: Some(2),
                max_attempts: Some(1),
                max_secs: Some(20),
            };
            s.tasks.kinds.insert("slowpoke".into(), limits);
        })
        .await;
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let mut w = worker(a.addr, &secret, kind, 1).await;
    let mut c = a.connect().await;
    let id = id_of(&c.ask(&format!("SUBMIT {kind} long")).await);
    let (task, lease) = next_task(&mut w).await;
    let first: chrono::DateTime<chrono::Utc> = task["deadline"].as_str().unwrap().parse().unwrap();
    let extended = w.ask(&format!("EXTEND {lease} 8")).await;
    assert_eq!(extended["ok"], "extended", "{extended}");
    let later: chrono::DateTime<chrono::Utc> =
        extended["deadline"].as_str().unwrap().parse().unwrap();
    assert!(
        later > first + chrono::Duration::seconds(4),
        "{first} -> {later}"
    );
    // Past the first deadline the lease holds.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let ok = w.ask(&format!("DONE {lease} finally")).await;
    assert_eq!(ok["ok"], "done", "{ok}");
    assert_eq!(wait_final(&mut c, id).await.status, TaskStatus::Succeeded);
    // Not extended: at its deadline the worker is told to stop, and the run is a timeout.
    let id = id_of(&c.ask(&format!("SUBMIT {kind} forgotten")).await);
    let (_, lease) = next_task(&mut w).await;
    let told = w.hear().await;
    assert_eq!(told["cancel"], lease.as_str(), "{told}");
    let dead = wait_final(&mut c, id).await;
    assert_eq!(dead.status, TaskStatus::Dead, "{dead:?}");
    assert!(
        dead.message.as_deref().unwrap().contains("timeout"),
        "{dead:?}"
    );
}

#[actix_rt::test]
async fn a_busy_worker_on_one_node_leaves_the_next_task_to_an_idle_worker_on_another() {
    let env = TestEnv::new().await;
    let kind = env.external("resize");
    let a = env.spawn_node("a").await;
    let b = env.spawn_node("b").await;
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let mut busy = worker(a.addr, &secret, kind, 1).await;
    let mut c = a.connect().await;
    let first = id_of(&c.ask(&format!("SUBMIT {kind} one")).await);
    let (task, _held) = next_task(&mut busy).await;
    assert_eq!(task["id"], first.to_string());
    let mut idle = worker(b.addr, &secret, kind, 1).await;
    // Node a's worker has no free slot: node a does not take the second task.
    let second = id_of(&c.ask(&format!("SUBMIT {kind} two")).await);
    let (task, lease) = next_task(&mut idle).await;
    assert_eq!(task["id"], second.to_string());
    idle.ask(&format!("DONE {lease} ok")).await;
    assert_eq!(
        wait_final(&mut c, second).await.status,
        TaskStatus::Succeeded
    );
}

#[actix_rt::test]
async fn a_large_result_goes_up_with_done_put_and_comes_back_whole() {
    let env = TestEnv::new().await;
    let kind = env.external("blob");
    let a = env.spawn_node("a").await;
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let mut w = worker(a.addr, &secret, kind, 1).await;
    let mut c = a.connect().await;
    let id = id_of(&c.ask(&format!("SUBMIT {kind} make it big")).await);
    let (_, lease) = next_task(&mut w).await;
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    w.say(&format!("DONE {lease} PUT {}", body.len())).await;
    w.say_raw(&body).await;
    let ok = w.hear().await;
    assert_eq!(ok["ok"], "done", "{ok}");
    let done = wait_final(&mut c, id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(done.result_size, Some(body.len() as u64));
    let header = c.ask(&format!("RESULT {id}")).await;
    let n = header["bytes"].as_u64().unwrap() as usize;
    assert_eq!(c.hear_raw(n).await, body);
}

#[actix_rt::test]
async fn an_external_kind_keeps_pause_keys_and_delays() {
    let env = TestEnv::new().await;
    let kind = env.external("ledger");
    let a = env
        .spawn_node_with("a", |s| s.external.kinds = vec!["ledger".into()])
        .await;
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let mut w = worker(a.addr, &secret, kind, 2).await;
    let mut c = a.connect().await;
    // Paused: accepted and held, not given to the worker, until resumed.
    c.ask(&format!("PAUSE kind {kind}")).await;
    let line = format!(r#"{{"kind":"{kind}","payload":"held","key":"order-7","wait":false}}"#);
    let id = id_of(&c.ask(&line).await);
    let view = c.ask(&format!("STATUS {id}")).await;
    assert_eq!(view["paused"], true, "{view}");
    c.ask(&format!("RESUME kind {kind}")).await;
    let (task, lease) = next_task(&mut w).await;
    assert_eq!(task["id"], id.to_string());
    assert_eq!(task["key"], "order-7", "the worker sees the key: {task}");
    w.ask(&format!("DONE {lease} booked")).await;
    assert_eq!(wait_final(&mut c, id).await.status, TaskStatus::Succeeded);
    // The same key again: the first task, not a second run.
    let again = c.ask(&line).await;
    assert_eq!(id_of(&again), id, "{again}");
    // Delayed: given to the worker no sooner than its delay.
    let line = format!(r#"{{"kind":"{kind}","payload":"later","delay_ms":1500,"wait":false}}"#);
    let id = id_of(&c.ask(&line).await);
    let (task, lease) = next_task(&mut w).await;
    assert_eq!(task["id"], id.to_string());
    w.ask(&format!("DONE {lease} ok")).await;
    let row = env.row(id).await.unwrap();
    let waited = row.started_at.unwrap() - row.created_at;
    assert!(waited >= chrono::Duration::milliseconds(1500), "{waited}");
}
