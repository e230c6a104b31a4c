//! The torture test: seeded, randomized clients doing valid and hostile things while faults
//! strike at random times; then every promise is checked. Serial (it restarts PostgreSQL and
//! drops every broker connection): `scripts/test` runs it with the other `#[ignore]`d tests.
//! `TORTURE_SEED=<n>` reruns a seed.

use crate::chaos::{connect_any, restart_postgres, run};
use protocol::{Client, TaskStatus};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tasknode::messages::{PayloadRef, TaskMessage, TASKS_V1};
use tasknode_testkit::{ChildNode, Proxy, TestEnv};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_tasknode");
const CLIENTS: usize = 6;
const MAX_ATTEMPTS: usize = 3;
/// Long tasks all clients may submit: enough to keep the slow lane's 12 workers busy for a
/// while, few enough that they can all end within the 60 s the test allows after its faults.
const LONG_TASKS: usize = 48;

/// What clients were told, to be checked against the rows and the run log at the end.
#[derive(Default)]
struct Ledger {
    /// Told `queued` (or `timeout`, the task goes on): must end with a final row.
    queued: Vec<Uuid>,
    /// Given a result: its `tally` payload must have a final row.
    results: Vec<String>,
    /// Told `not_accepted`: its `tally` payload must never run.
    refused: Vec<String>,
    /// Unreadable messages published straight onto the task queue.
    unreadable: u32,
    ops: u64,
    errors: u64,
}

/// Send `line` and read one answer; `None` if the connection broke.
async fn ask(c: &mut Client, line: &str) -> Option<Value> {
    c.send_raw(format!("{line}\n").as_bytes()).await.ok()?;
    hear(c).await
}

async fn hear(c: &mut Client) -> Option<Value> {
    let line = tokio::time::timeout(Duration::from_secs(30), c.recv_line())
        .await
        .ok()?
        .ok()?;
    serde_json::from_slice(line).ok()
}

impl Ledger {
    /// Record the answer to a `tally` submission of `payload`.
    fn note(&mut self, payload: &str, answer: Option<&Value>) {
        self.ops += 1;
        let Some(r) = answer else { return };
        if r.get("result").is_some() {
            self.results.push(payload.to_string());
        } else if r["status"] == "queued" || r["error"] == "timeout" {
            if let Some(id) = r["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                self.queued.push(id);
            }
        } else if r["error"] == "not_accepted" {
            self.refused.push(payload.to_string());
        } else {
            self.errors += 1;
        }
    }
}

/// Take one from `left`, if any is left.
fn take(left: &AtomicUsize) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// One client's random walk until `stop`.
async fn client(
    env: Arc<TestEnv>,
    addrs: Vec<SocketAddr>,
    n: usize,
    seed: u64,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    long_left: Arc<AtomicUsize>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = connect_any(&addrs, n, &env.token).await;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let p = format!("t{seed}-{n}-{i}");
        let roll = rng.random_range(0..100);
        let healthy = match roll {
            0..30 => {
                let r = ask(&mut c, &format!("SUBMIT tally {p}")).await;
                ledger.lock().unwrap().note(&p, r.as_ref());
                r.is_some()
            }
            30..48 => {
                let r = ask(&mut c, &format!("tally {p}")).await;
                ledger.lock().unwrap().note(&p, r.as_ref());
                r.is_some()
            }
            48..56 => {
                // A pipelined flood, read back after a pause now and then (a slow reader).
                let n = rng.random_range(8..96);
                let lines: String = (0..n).map(|k| format!("SUBMIT tally {p}-{k}\n")).collect();
                let mut ok = c.send_raw(lines.as_bytes()).await.is_ok();
                if rng.random_bool(0.3) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                for k in 0..n {
                    let r = if ok { hear(&mut c).await } else { None };
                    ok &= r.is_some();
                    ledger.lock().unwrap().note(&format!("{p}-{k}"), r.as_ref());
                }
                ok
            }
            56..66 => {
                let hostile = [
                    r#"{"kind":"fib","payload":"1\u0000","wait":false}"#.to_string(),
                    r#"{"kind":5}"#.into(),
                    r#"{"kind":"upper","payload":[1,2]}"#.into(),
                    r#"{"nope":"#.into(),
                    "SUBMIT".into(),
                    "PUT tally banana".into(),
                    "x".repeat(1_100_000),
                ];
                let line = hostile.choose(&mut rng).unwrap();
                let r = ask(&mut c, line).await;
                if let Some(r) = &r {
                    assert!(
                        r.get("error").is_some() || r["status"] == "queued",
                        "hostile input gets an error line: {r}"
                    );
                    if r["status"] == "queued" {
                        ledger.lock().unwrap().note("", Some(r));
                    }
                }
                r.is_some()
            }
            66..71 => {
                // Reset mid-request: a line cut short, or a PUT whose body stops.
                let addr = addrs[rng.random_range(0..addrs.len())];
                if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                    let half: &[u8] = match rng.random_bool(0.5) {
                        true => b"SUBMIT tally cut-sh",
                        false => b"PUT tally 100000 ASYNC\nsome of the bo",
                    };
                    let _ = s.write_all(half).await;
                    let _ = s.set_zero_linger();
                }
                true
            }
            71..76 => {
                let r = ask(&mut c, &format!("SUBMIT panic {p}")).await;
                ledger.lock().unwrap().note(&p, r.as_ref());
                r.is_some()
            }
            76..88 if take(&long_left) => {
                // Long tasks keep the slow lane busy; some run past their timeout (2 s).
                let ms = if rng.random_bool(0.2) { 4000 } else { 1500 };
                let r = ask(&mut c, &format!("SUBMIT sleep {ms}")).await;
                ledger.lock().unwrap().note(&p, r.as_ref());
                r.is_some()
            }
            88..92 => {
                // Straight onto the queue: one task twice in a message, or an unreadable body.
                if rng.random_bool(0.5) {
                    let task = TaskMessage {
                        id: Uuid::now_v7(),
                        kind: "tally".into(),
                        payload: PayloadRef::Inline {
                            data: p.clone().into_bytes(),
                        },
                        submitted_by: "torture".into(),
                        reply_to: None,
                        accepted_at: None,
                        owner: None,
                        priority: 0,
                        key: None,
                    };
                    let body = serde_json::to_vec(&[&task, &task]).unwrap();
                    env.publish_raw(&body, Some(TASKS_V1)).await;
                    ledger.lock().unwrap().queued.push(task.id);
                } else {
                    env.publish_raw(b"\xff{not a task", Some(TASKS_V1)).await;
                    ledger.lock().unwrap().unreadable += 1;
                }
                true
            }
            _ => {
                let r = ask(&mut c, "PING").await;
                r.is_some()
            }
        };
        if !healthy {
            c = connect_any(&addrs, n + i, &env.token).await;
        }
    }
}

async fn spawn(env: &TestEnv, name: &str, s3: &str) -> ChildNode {
    env.spawn_process(
        Path::new(BIN),
        name,
        &[
            ("TASKNODE__SUPERVISION__MAX_RESTARTS", "1000"),
            ("TASKNODE__TASKS__ENABLE_PANIC_KIND", "true"),
            ("TASKNODE__TASKS__RETRY_BASE_MS", "200"),
            ("TASKNODE__TASKS__KINDS__SLEEP__TIMEOUT_SECS", "2"),
            ("TASKNODE__LISTENER__WAIT_TIMEOUT_SECS", "20"),
            ("TASKNODE__STORAGE__ENDPOINT", s3),
            ("TASKNODE__STORAGE__TIMEOUT_SECS", "5"),
        ],
    )
    .await
}

#[actix_rt::test]
#[ignore = "restarts shared services; scripts/test runs it alone"]
async fn torture_every_task_reaches_an_end() {
    let seed: u64 = std::env::var("TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("torture: seed={seed} (TORTURE_SEED={seed} reruns it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let env = Arc::new(TestEnv::new().await);
    let s3 = Proxy::s3().await;
    let mut nodes = Vec::new();
    for name in ["t1", "t2", "t3"] {
        nodes.push(spawn(&env, name, &s3.http()).await);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let long_left = Arc::new(AtomicUsize::new(LONG_TASKS));
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let (env, addrs, stop, ledger) = (env.clone(), addrs.clone(), stop.clone(), ledger.clone());
        let seed = seed.wrapping_add(n as u64);
        let long_left = long_left.clone();
        clients.push(actix_rt::spawn(client(
            env, addrs, n, seed, stop, ledger, long_left,
        )));
    }
    // A probe: quick tasks one at a time, timed, while the slow lane is busy.
    let probe = {
        let (addrs, stop, token) = (addrs.clone(), stop.clone(), env.token.clone());
        actix_rt::spawn(async move {
            let mut took = Vec::new();
            let mut c = connect_any(&addrs, 0, &token).await;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match ask(&mut c, "upper probe").await {
                    Some(r) if r["result"] == "PROBE" => took.push(t.elapsed()),
                    Some(_) => {}
                    None => c = connect_any(&addrs, took.len(), &token).await,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            took
        })
    };

    // The faults, in a random order at random times.
    let mut faults = ["kill", "broker", "postgres", "s3"];
    faults.shuffle(&mut rng);
    let mut peak_rss = 0;
    for fault in faults {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1500..4000))).await;
        println!("torture: fault {fault}");
        match fault {
            "kill" => {
                let k = rng.random_range(0..nodes.len());
                peak_rss = peak_rss.max(nodes[k].peak_rss_mib());
                nodes[k].signal("KILL");
                let _ = nodes[k].wait_exit(Duration::from_secs(5)).await;
                let name = nodes[k].name.clone();
                // It comes back on a new port; clients find it through the others meanwhile.
                nodes[k] = spawn(&env, &name, &s3.http()).await;
            }
            "broker" => run("rabbitmqctl", &["close_all_connections", "torture"]),
            "postgres" => restart_postgres(),
            _ => {
                s3.set_up(false);
                tokio::time::sleep(Duration::from_secs(5)).await;
                s3.set_up(true);
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let mut took = probe.await.unwrap();
    let last_fault = Instant::now();

    // Within 60 s of the last fault: every row final and the outbox empty.
    let mut stuck = usize::MAX;
    while last_fault.elapsed() < Duration::from_secs(60) {
        if env.db_try().await.is_some() {
            stuck = env
                .rows()
                .await
                .iter()
                .filter(|r| !r.status.is_final())
                .count();
            if stuck == 0 && env.outbox_len().await == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = last_fault.elapsed();
    let rows = env.rows().await;
    let by_id: HashMap<Uuid, &tasknode::db::models::TaskRow> =
        rows.iter().map(|r| (r.id, r)).collect();
    let final_payloads: HashSet<&[u8]> = rows
        .iter()
        .filter(|r| r.status.is_final())
        .filter_map(|r| r.payload.as_deref())
        .collect();
    let runs = env.runs();
    let dead = tasknode::retry::buried_queue(&env.task_queue);
    let parked = env.ready_messages(&dead).await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    let unanswered = ledger
        .queued
        .iter()
        .filter(|id| !by_id.get(id).is_some_and(|r| r.status.is_final()))
        .count()
        + ledger
            .results
            .iter()
            .filter(|p| !final_payloads.contains(p.as_bytes()))
            .count();
    let over_attempts = runs.values().filter(|n| **n > MAX_ATTEMPTS).count();
    let ran_after_refusal = ledger
        .refused
        .iter()
        .filter(|p| runs.contains_key(*p))
        .count();
    let unparked = ledger.unreadable.saturating_sub(parked);
    for n in &nodes {
        peak_rss = peak_rss.max(n.peak_rss_mib());
    }
    took.sort();
    let p99 = took
        .get(took.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    let dead_rows = rows.iter().filter(|r| r.status == TaskStatus::Dead).count();
    println!(
        "torture: seed={seed} ops={} accepted={} final={} stuck={stuck} \
         over_attempts={over_attempts} unanswered={unanswered} \
         ran_after_refusal={ran_after_refusal} refused={} other_errors={} dead={dead_rows} \
         unreadable={} unparked={unparked} peak_rss_mib={peak_rss} quick_p99_ms={:.1} \
         settled_in={:.1}s",
        ledger.ops,
        ledger.queued.len() + ledger.results.len(),
        rows.len() - stuck.min(rows.len()),
        ledger.refused.len(),
        ledger.errors,
        ledger.unreadable,
        p99.as_secs_f64() * 1000.0,
        settled.as_secs_f64(),
    );
    let mut stuck_kinds: HashMap<(String, TaskStatus, i32, bool), usize> = HashMap::new();
    for r in rows.iter().filter(|r| !r.status.is_final()) {
        let key = (
            r.kind.clone(),
            r.status,
            r.attempts,
            r.next_attempt_at.is_some(),
        );
        *stuck_kinds.entry(key).or_default() += 1;
    }
    if !stuck_kinds.is_empty() {
        println!("torture: stuck (kind, status, attempts, retry due) → rows: {stuck_kinds:?}");
        let outbox = env.outbox_len().await;
        println!("torture: outbox holds {outbox}");
    }
    assert_eq!(stuck, 0, "every row ends (seed {seed})");
    assert_eq!(
        over_attempts, 0,
        "no task ran past max_attempts (seed {seed})"
    );
    assert_eq!(
        unanswered, 0,
        "every accepted task has its final row (seed {seed})"
    );
    assert_eq!(
        ran_after_refusal, 0,
        "a refused task never ran (seed {seed})"
    );
    assert_eq!(unparked, 0, "unreadable messages are parked (seed {seed})");
    assert!(ledger.ops > 100, "the clients did work: {}", ledger.ops);
}
