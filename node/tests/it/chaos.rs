//! Faults of the shared services: these restart PostgreSQL and RabbitMQ or drop every broker
//! connection, so they are `#[ignore]`d in the parallel run and `scripts/test` runs them
//! afterwards, one at a time (`--ignored --test-threads=1`). Each leaves the services running.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use tasknode::db::models::TaskRow;
use tasknode::db::schema::tasks;
use tasknode::testing::{ChildNode, LineClient, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_tasknode");
const TASKS: usize = 2000;

fn run(cmd: &str, args: &[&str]) {
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

fn restart_postgres() {
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
            ("TASKNODE__AMQP__PREFETCH", "32"),
        ],
    )
    .await
}

/// Connect to the first node of `addrs` that answers, starting at `start`.
async fn connect_any(addrs: &[std::net::SocketAddr], start: usize) -> LineClient {
    for i in 0..addrs.len() * 20 {
        let addr = addrs[(start + i) % addrs.len()];
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
        {
            return LineClient::connect(addr).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no node reachable");
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
        submitters.push(tokio::spawn(async move {
            let mut accepted: Vec<(String, String)> = Vec::new();
            let mut refused = 0usize;
            let mut c = connect_any(&addrs, s).await;
            for i in (s..TASKS).step_by(6) {
                let (line, want) = if i % 2 == 0 {
                    (format!("SUBMIT upper chaos-{i}"), format!("CHAOS-{i}"))
                } else {
                    let ms = 5 + i % 20;
                    (format!("SUBMIT sleep {ms}"), format!("slept {ms}ms"))
                };
                c.send(&line).await;
                match c.try_recv().await {
                    Some(r) if r["status"] == "queued" => {
                        accepted.push((r["id"].as_str().unwrap().to_string(), want))
                    }
                    Some(r) => {
                        assert!(r.get("error").is_some(), "not accepted means an error: {r}");
                        refused += 1;
                    }
                    None => {
                        // Our node died mid-request: that submission is unconfirmed.
                        refused += 1;
                        c = connect_any(&addrs, s + i).await;
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
    let wanted: HashMap<uuid::Uuid, String> = accepted
        .iter()
        .map(|(id, want)| (uuid::Uuid::parse_str(id).unwrap(), want.clone()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(240);
    let rows: Vec<TaskRow> = loop {
        let rows: Vec<TaskRow> = match env.db_try().await {
            Some(mut conn) => tasks::table
                .select(TaskRow::as_select())
                .load(&mut conn)
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let done = rows
            .iter()
            .filter(|r| wanted.contains_key(&r.id) && r.status().is_final())
            .count();
        if done == wanted.len() || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let mut per_id: HashMap<uuid::Uuid, usize> = HashMap::new();
    for r in &rows {
        *per_id.entry(r.id).or_default() += 1;
    }
    let by_id: HashMap<_, _> = rows.iter().map(|r| (r.id, r)).collect();
    let (mut succeeded, mut failed, mut redelivered, mut lost, mut wrong) = (0, 0, 0, 0, 0);
    for (id, want) in &wanted {
        match by_id.get(id) {
            Some(r) if r.status == "succeeded" => {
                succeeded += 1;
                if r.result.as_deref() != Some(want.as_bytes()) {
                    wrong += 1;
                }
                if r.attempts > 1 {
                    redelivered += 1;
                }
            }
            Some(r) if r.status().is_final() => failed += 1,
            _ => lost += 1,
        }
    }
    let duplicates = per_id.values().filter(|n| **n > 1).count();
    println!(
        "chaos: accepted={} refused={refused} succeeded={succeeded} failed={failed} \
         redelivered={redelivered} lost={lost} duplicate_rows={duplicates} wrong_results={wrong}",
        wanted.len()
    );
    assert!(wanted.len() > TASKS / 2, "most submissions were accepted");
    assert_eq!(lost, 0, "every accepted task reached a final state");
    assert_eq!(duplicates, 0);
    assert_eq!(wrong, 0);
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
        let r = c.call(&format!("SUBMIT sleep {}", 100 + i)).await;
        ids.push(r["id"].as_str().unwrap().to_string());
    }
    run("rabbitmqctl", &["stop_app"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = c.call("SUBMIT upper while-down").await;
    assert_eq!(r["error"], "not_accepted", "never a false accept: {r}");
    run("rabbitmqctl", &["start_app"]);
    run("rabbitmqctl", &["await_startup"]);

    // Durable queue, persistent messages: everything accepted before the restart completes.
    for id in &ids {
        let mut final_status = serde_json::Value::Null;
        for _ in 0..600 {
            let s = c.call(&format!("STATUS {id}")).await;
            if s["status"] == "succeeded" || s["status"] == "dead" || s["status"] == "failed" {
                final_status = s;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(final_status["status"], "succeeded", "{final_status}");
    }
    // And new work flows again, through the healed publisher, consumer and reply queue.
    let mut ok = false;
    for _ in 0..100 {
        let r = c.call("upper after restart").await;
        if r["result"] == "AFTER RESTART" {
            assert_eq!(r["node"], "w1");
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ok, "the fleet works again after the broker restart");
    drop(worker);
}
