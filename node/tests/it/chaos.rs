//! Faults of the shared services: these restart PostgreSQL and RabbitMQ or drop every broker
//! connection, so they are `#[ignore]`d in the parallel run and `scripts/test` runs them
//! afterwards, one at a time (`--ignored --test-threads=1`). Each leaves the services running.

use protocol::{Client, TaskStatus};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tasknode::db::models::TaskRow;
use tasknode_testkit::{id_of, wait_final, ChildNode, Lines, TestEnv};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_tasknode");
const TASKS: usize = 2000;

pub(crate) fn run(cmd: &str, args: &[&str]) {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("/etc/postgresql")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a PostgreSQL cluster");
    run(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", "restart"],
    );
}

async fn spawn(env: &TestEnv, name: &str) -> ChildNode {
    env.spawn_process(
        Path::new(BIN),
        name,
        &[
            // Ride out the restarts below instead of giving up.
            ("TASKNODE__SUPERVISION__MAX_RESTARTS", "100"),
            ("TASKNODE__LANES__QUICK__PREFETCH", "32"),
        ],
    )
    .await
}

/// Connect to the first node of `addrs` that answers, starting at `start`, and `AUTH`.
pub(crate) async fn connect_any(
    addrs: &[std::net::SocketAddr],
    start: usize,
    token: &str,
) -> Client {
    let servers: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    tasknode_testkit::reconnect(&servers, start, token).await
}

#[actix_rt::test]
#[ignore = "restarts shared services; scripts/test runs it alone"]
async fn chaos_nothing_accepted_is_lost() {
    let env = TestEnv::new().await;
    let mut nodes = [
        spawn(&env, "c1").await,
        spawn(&env, "c2").await,
        spawn(&env, "c3").await,
    ];
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();

    // Submitters: 6 connections spread over the nodes, each sending its share.
    let mut submitters = Vec::new();
    for s in 0..6usize {
        let addrs = addrs.clone();
        let token = env.token.clone();
        submitters.push(actix_rt::spawn(async move {
            // (task id, the result it must end with, whether the tally records its runs)
            let mut accepted: Vec<(Uuid, String, bool)> = Vec::new();
            let mut refused = 0usize;
            let mut c = connect_any(&addrs, s, &token).await;
            for i in (s..TASKS).step_by(6) {
                let (line, want, tallied) = if i % 2 == 0 {
                    (
                        format!("SUBMIT tally chaos-{i}"),
                        format!("chaos-{i}"),
                        true,
                    )
                } else {
                    let ms = 5 + i % 20;
                    (format!("SUBMIT sleep {ms}"), format!("slept {ms}ms"), false)
                };
                c.say(&line).await;
                match c.try_hear().await {
                    Some(r) if r["status"] == "queued" => {
                        let id = Uuid::parse_str(r["id"].as_str().unwrap()).unwrap();
                        accepted.push((id, want, tallied))
                    }
                    Some(r) => {
                        assert!(r.get("error").is_some(), "not accepted means an error: {r}");
                        refused += 1;
                    }
                    None => {
                        // Our node died mid-request: that submission is unconfirmed.
                        refused += 1;
                        c = connect_any(&addrs, s + i, &token).await;
                    }
                }
            }
            (accepted, refused)
        }));
    }

    // The faults, while work is in flight.
    tokio::time::sleep(Duration::from_millis(800)).await;
    nodes[1].signal("KILL");
    let _ = nodes[1].wait_exit(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes[1] = spawn(&env, "c2").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    run("rabbitmqctl", &["close_all_connections", "chaos test"]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    restart_postgres();

    let mut accepted = Vec::new();
    let mut refused = 0;
    for s in submitters {
        let (a, r) = s.await.unwrap();
        accepted.extend(a);
        refused += r;
    }

    // Drain: every accepted task must reach a final state.
    let wanted: HashMap<Uuid, (String, bool)> = accepted
        .into_iter()
        .map(|(id, want, tallied)| (id, (want, tallied)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    let rows: HashMap<Uuid, TaskRow> = loop {
        let rows = match env.db_try().await {
            Some(_) => env.rows().await,
            None => Vec::new(),
        };
        let done = rows
            .iter()
            .filter(|r| wanted.contains_key(&r.id) && r.status.is_final())
            .count();
        if done == wanted.len() || Instant::now() > deadline {
            break rows.into_iter().map(|r| (r.id, r)).collect();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // Each run of a tally task is a line in the run log: a task that ran is seen, and so
    // is one that ran more often than its row counts attempts.
    let runs = env.runs();
    let (mut succeeded, mut failed, mut redelivered, mut lost, mut wrong) = (0, 0, 0, 0, 0);
    let (mut never_ran, mut ran_twice, mut uncounted) = (0, 0, 0);
    for (id, (want, tallied)) in &wanted {
        match rows.get(id) {
            Some(r) if r.status == TaskStatus::Succeeded => {
                succeeded += 1;
                if r.result.as_deref() != Some(want.as_bytes()) {
                    wrong += 1;
                }
                if r.attempts > 1 {
                    redelivered += 1;
                }
                if *tallied {
                    let n = runs.get(want).copied().unwrap_or(0);
                    never_ran += usize::from(n == 0);
                    ran_twice += usize::from(n > 1);
                    // A crash can lose one quick run before its outcome was written; any
                    // further run must have counted as an attempt.
                    uncounted += usize::from(n > r.attempts as usize + 1);
                }
            }
            Some(r) if r.status.is_final() => failed += 1,
            _ => lost += 1,
        }
    }
    println!(
        "chaos: accepted={} refused={refused} succeeded={succeeded} failed={failed} \
         redelivered={redelivered} lost={lost} wrong_results={wrong} \
         tally_never_ran={never_ran} tally_ran_twice={ran_twice} tally_uncounted_runs={uncounted}",
        wanted.len()
    );
    assert!(
        refused * 100 <= TASKS,
        "at most 1% of submissions refused: {refused} of {TASKS}"
    );
    assert_eq!(lost, 0, "every accepted task reached a final state");
    assert_eq!(wrong, 0);
    assert_eq!(never_ran, 0, "a task recorded as succeeded really ran");
    assert_eq!(
        uncounted, 0,
        "no run beyond the one a crash can lose went uncounted"
    );
    assert_eq!(failed, 0, "infrastructure faults are retried, not failed");
    assert!(redelivered > 0, "the killed node's tasks were redelivered");
}

#[actix_rt::test]
#[ignore = "restarts RabbitMQ; scripts/test runs it alone"]
async fn a_broker_restart_is_survived() {
    let env = TestEnv::new().await;
    let front = env
        .spawn_node_with("front", |s| {
            s.workers.count = Some(0);
            s.supervision.max_restarts = 100;
        })
        .await;
    let worker = spawn(&env, "w1").await;
    let mut c = front.connect().await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = c.ask(&format!("SUBMIT sleep {}", 100 + i)).await;
        ids.push(Uuid::parse_str(r["id"].as_str().unwrap()).unwrap());
    }
    run("rabbitmqctl", &["stop_app"]);
    // Whether or not the node has noticed yet, a task that does not wait is accepted (its
    // row is written; the outbox publishes it once the broker is back).
    let r = c.ask("SUBMIT upper while-down").await;
    assert_eq!(r["status"], "queued", "{r}");
    ids.push(id_of(&r));
    run("rabbitmqctl", &["start_app"]);
    run("rabbitmqctl", &["await_startup"]);

    // Durable queue, persistent messages: everything accepted before the restart completes.
    for id in &ids {
        let ended = wait_final(&mut c, *id).await;
        assert_eq!(ended.status, TaskStatus::Succeeded, "{ended:?}");
    }
    // And new work flows again, through the healed publisher, consumer and reply queue.
    let healed = tasknode_testkit::poll_until(
        "the fleet works again after the broker restart",
        20,
        async || {
            Some(c.ask("upper after restart").await).filter(|r| r["result"] == "AFTER RESTART")
        },
    )
    .await;
    assert_eq!(healed["node"], "w1");
    drop(worker);
}
