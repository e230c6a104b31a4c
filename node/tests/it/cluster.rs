//! A RabbitMQ cluster of three brokers (`scripts/rabbit-cluster`): the durable queues are
//! replicated on all three, and a fleet keeps its promises while the broker leading its task
//! queue is killed, then another. Starts and stops brokers of its own (ports 5681–5683), so
//! `scripts/test` runs it in the serial part; it takes the cluster down when it ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tasknode_testkit::{ChildNode, Lines, TestEnv};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_tasknode");
const NODES: [&str; 3] = ["k1", "k2", "k3"];
const TASKS: usize = 5000;
/// Submissions are spread over about this long (the faults take place inside it).
const SPREAD: Duration = Duration::from_secs(50);

/// The cluster for one test: up when made, down (data deleted) when dropped.
struct Cluster;

impl Cluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/rabbit-cluster")
    }

    /// `scripts/rabbit-cluster ARGS`, its output; panics if it fails.
    fn run(args: &[&str]) -> String {
        let out = std::process::Command::new(Self::script())
            .args(args)
            .output()
            .expect("scripts/rabbit-cluster");
        assert!(
            out.status.success(),
            "rabbit-cluster {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// As [`Cluster::run`], off the test's (single) runtime thread, which the clients share.
    async fn run_async(args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Cluster::run(&args)
        })
        .await
        .expect("rabbit-cluster thread")
    }

    fn up() -> Cluster {
        Cluster::run(&["up"]);
        Cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Cluster::script())
            .arg("down")
            .output();
    }
}

async fn spawn(env: &TestEnv, name: &str, urls: &str) -> ChildNode {
    env.spawn_process(
        Path::new(BIN),
        name,
        &[
            ("TASKNODE__AMQP__URLS", urls),
            ("TASKNODE__SUPERVISION__MAX_RESTARTS", "100"),
            ("TASKNODE__LANES__QUICK__PREFETCH", "32"),
            // One kind times out, so its retries make (and test) a delay queue.
            ("TASKNODE__TASKS__KINDS__SLEEP__TIMEOUT_SECS", "1"),
        ],
    )
    .await
}

/// Every queue of this test's fleet as the cluster lists it: (name, type, members).
fn queues_of(prefix: &str) -> Vec<(String, String, usize)> {
    let out = Cluster::run(&[
        "ctl",
        "1",
        "list_queues",
        "-q",
        "--no-table-headers",
        "name",
        "type",
        "members",
    ]);
    out.lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| {
            let mut cols = l.splitn(3, '\t');
            let name = cols.next().unwrap_or_default().to_string();
            let kind = cols.next().unwrap_or_default().to_string();
            let members = cols.next().unwrap_or_default().matches('@').count();
            (name, kind, members)
        })
        .collect()
}

/// Each AMQP connection to the cluster: (its name, the broker's AMQP port).
async fn connections(via: usize) -> Vec<(String, u16)> {
    let out = Cluster::run_async(&[
        "ctl",
        &via.to_string(),
        "list_connections",
        "-q",
        "--no-table-headers",
        "client_properties",
        "port",
    ])
    .await;
    out.lines()
        .filter_map(|l| {
            let (props, port) = l.rsplit_once('\t')?;
            let name = props
                .split("{\"connection_name\",\"")
                .nth(1)?
                .split('"')
                .next()?;
            Some((name.to_string(), port.trim().parse().ok()?))
        })
        .collect()
}

/// The broker port each of `nodes` has its reply queue's connection on (asked of broker
/// `via`).
async fn reply_ports(via: usize, nodes: &[&str]) -> Vec<Option<u16>> {
    let all = connections(via).await;
    nodes
        .iter()
        .map(|n| {
            let name = format!("{n}-replies");
            all.iter().find(|(c, _)| *c == name).map(|(_, p)| *p)
        })
        .collect()
}

#[actix_rt::test]
#[ignore = "runs a RabbitMQ cluster of its own; scripts/test runs it alone"]
async fn a_fleet_on_a_broker_cluster_survives_losing_brokers_one_at_a_time() {
    let _cluster = Cluster::up();
    let urls = Cluster::run(&["urls"]);
    let env = TestEnv::new().await;
    let nodes = [
        spawn(&env, NODES[0], &urls).await,
        spawn(&env, NODES[1], &urls).await,
        spawn(&env, NODES[2], &urls).await,
    ];
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr).collect();
    let settings = env.settings("k1");
    let quick = settings.amqp.task_queue.clone();

    // One task that times out and is retried: its delay queue is made.
    let mut c = super::chaos::connect_any(&addrs, 0, &env.token).await;
    let r = c.ask("SUBMIT sleep 3000").await;
    assert_eq!(r["status"], "queued", "{r}");
    let delay_prefix = format!("{quick}.slow.retry.");
    tasknode_testkit::poll_until("a delay queue is declared", 30, async || {
        let qs = queues_of(&quick);
        qs.iter()
            .any(|(name, ..)| name.starts_with(&delay_prefix))
            .then_some(())
    })
    .await;

    // Replicated: every durable queue of the fleet is a quorum queue on all three brokers.
    let queues = queues_of(&quick);
    for wanted in tasknode::lanes::queues(&settings) {
        for name in [
            wanted.clone(),
            tasknode::retry::dead_queue(&wanted),
            tasknode::retry::buried_queue(&wanted),
        ] {
            assert!(
                queues.iter().any(|(n, ..)| *n == name),
                "queue {name} is declared: {queues:?}"
            );
        }
    }
    for (name, kind, members) in &queues {
        if name.starts_with(&settings.amqp.reply_queue_prefix) {
            continue; // a node's own reply queue: classic, exclusive, on its broker
        }
        assert_eq!(kind, "quorum", "{name}");
        assert_eq!(*members, 3, "{name} is replicated on the three brokers");
    }

    // Spread: the three nodes start on three different brokers.
    let mut ports = reply_ports(1, &NODES).await;
    ports.sort();
    ports.dedup();
    assert_eq!(
        ports.len(),
        3,
        "one node on each broker: {:?}",
        connections(1).await
    );

    // Submitters: 6 connections over the three nodes, together spread over SPREAD.
    let started = Instant::now();
    let accepted_at: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let mut submitters = Vec::new();
    for s in 0..6usize {
        let (addrs, token, accepted_at) = (addrs.clone(), env.token.clone(), accepted_at.clone());
        submitters.push(actix_rt::spawn(async move {
            let mut accepted: Vec<(Uuid, String)> = Vec::new();
            let mut refused = 0usize;
            let mut c = super::chaos::connect_any(&addrs, s, &token).await;
            for i in (s..TASKS).step_by(6) {
                let due = started + SPREAD.mul_f64(i as f64 / TASKS as f64);
                tokio::time::sleep_until(due.into()).await;
                let payload = format!("cluster-{i}");
                c.say(&format!("SUBMIT tally {payload}")).await;
                match c.try_hear().await {
                    Some(r) if r["status"] == "queued" => {
                        accepted_at.lock().unwrap().push(Instant::now());
                        let id = Uuid::parse_str(r["id"].as_str().unwrap()).unwrap();
                        accepted.push((id, payload));
                    }
                    Some(r) => {
                        assert!(r.get("error").is_some(), "not accepted means an error: {r}");
                        refused += 1;
                    }
                    None => {
                        refused += 1;
                        c = super::chaos::connect_any(&addrs, s + i, &token).await;
                    }
                }
            }
            (accepted, refused)
        }));
    }

    // The faults: kill -9 the broker leading the quick lane's queue, start it again; then
    // the same for another broker.
    let mut killed = Vec::new();
    tokio::time::sleep(Duration::from_secs(4)).await;
    for round in 0..2 {
        let leader: usize = Cluster::run_async(&["leader", &quick])
            .await
            .parse()
            .expect("a broker number");
        let victim = if killed.contains(&leader) {
            (1..=3).find(|b| !killed.contains(b)).unwrap()
        } else {
            leader
        };
        Cluster::run_async(&["kill", &victim.to_string()]).await;
        killed.push(victim);
        let at = started.elapsed();
        eprintln!("round {round}: killed broker {victim} (leader was {leader}) at {at:?}");
        // While it is down, every node moves to a live broker and answers a waiting request
        // (publish, consume and reply all through the two brokers left).
        let live = (1..=3).find(|b| *b != victim).unwrap();
        let dead_port = 5680 + victim as u16;
        tasknode_testkit::poll_until("every node on a live broker", 10, async || {
            let ports = reply_ports(live, &NODES).await;
            ports
                .iter()
                .all(|p| p.is_some_and(|p| p != dead_port))
                .then_some(())
        })
        .await;
        for node in &nodes {
            let r = node.connect().await.ask("upper meanwhile").await;
            assert_eq!(
                r["result"], "MEANWHILE",
                "{} with broker {victim} down: {r}",
                node.name
            );
        }
        tokio::time::sleep_until((started + at + Duration::from_secs(6)).into()).await;
        Cluster::run_async(&["start", &victim.to_string()]).await;
        eprintln!(
            "round {round}: broker {victim} back at {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let faults_over = started.elapsed();
    // Every node found a live broker and answers through its new reply queue.
    for node in &nodes {
        let r = node.connect().await.ask("upper moved").await;
        assert_eq!(r["result"], "MOVED", "{}: {r}", node.name);
    }

    let mut accepted = Vec::new();
    let mut refused = 0;
    for s in submitters {
        let (a, r) = s.await.unwrap();
        accepted.extend(a);
        refused += r;
    }
    // The longest time no submission was accepted anywhere in the fleet.
    let mut times = accepted_at.lock().unwrap().clone();
    times.sort();
    let longest_pause = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();

    // Drain: every accepted task ends, and the run log says how often each ran.
    let wanted: HashMap<Uuid, String> = accepted.into_iter().collect();
    let rows = tasknode_testkit::poll_until("every accepted task ended", 240, async || {
        let rows = env.rows().await;
        let done = rows
            .iter()
            .filter(|r| wanted.contains_key(&r.id) && r.status.is_final())
            .count();
        (done == wanted.len()).then_some(rows)
    })
    .await;
    let rows: HashMap<Uuid, _> = rows.into_iter().map(|r| (r.id, r)).collect();
    let runs = env.runs();
    let max_attempts = settings.tasks.max_attempts("tally") as usize;
    let (mut succeeded, mut over_attempts, mut never_ran) = (0, 0, 0);
    for (id, payload) in &wanted {
        let row = &rows[id];
        succeeded += usize::from(row.status == protocol::TaskStatus::Succeeded);
        let n = runs.get(payload).copied().unwrap_or(0);
        over_attempts += usize::from(n > max_attempts || row.attempts as usize > max_attempts);
        never_ran += usize::from(n == 0 && row.status == protocol::TaskStatus::Succeeded);
    }
    println!(
        "cluster: brokers=3 nodes=3 submitted={TASKS} accepted={} refused={refused} \
         succeeded={succeeded} lost=0 over_attempts={over_attempts} never_ran={never_ran} \
         kills={killed:?} longest_pause_ms={} faults_over_s={:.1}",
        wanted.len(),
        longest_pause.as_millis(),
        faults_over.as_secs_f64(),
    );
    assert!(
        refused * 100 <= TASKS,
        "at least 99% of submissions accepted: {refused} of {TASKS} refused"
    );
    assert_eq!(
        succeeded,
        wanted.len(),
        "broker faults are retried, not failed"
    );
    assert_eq!(never_ran, 0, "a task recorded as succeeded really ran");
    assert_eq!(over_attempts, 0, "no task ran more than max_attempts times");
    assert!(
        longest_pause <= Duration::from_secs(5),
        "submissions flow again within 5 s of a kill: the longest pause was {longest_pause:?}"
    );
}
