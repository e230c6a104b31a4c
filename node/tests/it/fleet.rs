//! A fleet of node processes behind a real HAProxy (TCP mode with a `PING` health check for
//! the line protocol, HTTP mode with `/readyz` for the API), using the project's own
//! `config/haproxy.cfg` with the test's addresses.

use protocol::{Check, Client, TaskStatus};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;
use tasknode_testkit::{Lines, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_tasknode");

/// HAProxy on a free port in front of `nodes`; killed on drop.
struct Balancer {
    addr: std::net::SocketAddr,
    http: std::net::SocketAddr,
    child: std::process::Child,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn balancer(nodes: &[&tasknode_testkit::ChildNode]) -> Balancer {
    let port = tasknode_testkit::nodes::free_port();
    let http_port = tasknode_testkit::nodes::free_port();
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/haproxy.cfg");
    // Faster checks than production, so the test sees a dead node taken out quickly.
    let text = std::fs::read_to_string(cfg)
        .unwrap()
        .replace("inter 1s fall 2", "inter 200ms fall 1");
    let path = std::env::temp_dir().join(format!("haproxy-{port}.cfg"));
    std::fs::write(&path, text).unwrap();
    let mut balancer = Balancer {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        http: format!("127.0.0.1:{http_port}").parse().unwrap(),
        child: std::process::Command::new("haproxy")
            .args(["-db", "-f", path.to_str().unwrap()])
            .env("TASKNODE_LB_BIND", format!("127.0.0.1:{port}"))
            .env("TASKNODE_NODE1", nodes[0].addr.to_string())
            .env("TASKNODE_NODE2", nodes[1].addr.to_string())
            .env("TASKNODE_NODE3", nodes[2].addr.to_string())
            .env("TASKNODE_HTTP_BIND", format!("127.0.0.1:{http_port}"))
            .env("TASKNODE_HTTP1", nodes[0].http.to_string())
            .env("TASKNODE_HTTP2", nodes[1].http.to_string())
            .env("TASKNODE_HTTP3", nodes[2].http.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy must be installed (scripts/test installs it)"),
    };
    // Ready when a PING goes through it: it listens and its health checks marked a node up.
    let lb = balancer.addr.to_string();
    let child = &mut balancer.child;
    tasknode_testkit::poll_until("haproxy forwards a PING to a node", 20, async || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("haproxy exited: {status}");
        }
        let mut c = Client::connect(&lb).await.ok()?;
        c.ping().await.ok()
    })
    .await;
    balancer
}

/// A connection through the balancer (which may refuse while a node is going away),
/// authenticated with `token`.
async fn connect(lb: std::net::SocketAddr, token: &str) -> Client {
    tasknode_testkit::reconnect(&[lb.to_string()], 0, token).await
}

#[actix_rt::test]
async fn three_nodes_behind_haproxy_share_work_and_survive_losing_one() {
    let env = TestEnv::new().await;
    let mut nodes = Vec::new();
    for name in ["f1", "f2", "f3"] {
        nodes.push(env.spawn_process(Path::new(BIN), name, &[]).await);
    }
    let lb = balancer(&nodes.iter().collect::<Vec<_>>()).await;

    let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut clients = Vec::new();
    for c in 0..6usize {
        let lb_addr = lb.addr;
        let token = env.token.clone();
        let progress_tx = progress_tx.clone();
        clients.push(actix_rt::spawn(async move {
            let mut results = BTreeMap::new();
            let mut conn = connect(lb_addr, &token).await;
            for i in (c..600).step_by(6) {
                loop {
                    conn.say(&format!("upper fleet-{i}")).await;
                    match conn.try_hear().await {
                        Some(r) if r["status"] == "succeeded" => {
                            results.insert(i, r["result"].as_str().unwrap().to_string());
                            let _ = progress_tx.send(());
                            break;
                        }
                        // Our node went away (or refused): reconnect through the balancer
                        // and submit again.
                        _ => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            conn = connect(lb_addr, &token).await;
                        }
                    }
                }
            }
            results
        }));
    }
    drop(progress_tx);
    // Stop one node a third of the way through.
    for _ in 0..200 {
        progress.recv().await;
    }
    nodes[1].signal("KILL");

    let mut all = BTreeMap::new();
    for c in clients {
        all.extend(c.await.unwrap());
    }
    assert_eq!(all.len(), 600, "every task answered");
    for (i, result) in &all {
        assert_eq!(result, &format!("FLEET-{i}"));
    }
    let rows = env.rows().await;
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for r in rows.iter().filter(|r| r.status == TaskStatus::Succeeded) {
        *per_node
            .entry(r.node.clone().unwrap_or_default())
            .or_default() += 1;
    }
    for name in ["f1", "f2", "f3"] {
        assert!(
            per_node.get(name).copied().unwrap_or(0) > 0,
            "{name} ran some tasks: {per_node:?}"
        );
    }
    // The HTTP API through the balancer's HTTP side (its /readyz checks took f2 out).
    let url = format!("http://{}/v1/tasks", lb.http);
    let http = reqwest::Client::new();
    for i in 0..6 {
        let done = tasknode_testkit::poll_until("HTTP through the balancer", 20, async || {
            let res = http
                .post(&url)
                .bearer_auth(&env.token)
                .json(&serde_json::json!({"kind": "upper", "payload": format!("http-{i}"), "wait": true}))
                .send()
                .await
                .ok()?;
            let body: serde_json::Value = res.json().await.ok()?;
            (body["status"] == "succeeded").then_some(body)
        })
        .await;
        assert_eq!(done["result"], format!("HTTP-{i}"));
        assert_ne!(done["node"], "f2", "the dead node is out");
    }
    drop(lb);
}

#[actix_rt::test]
async fn ping_reports_each_dependency() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let p = node.connect().await.ping().await.unwrap();
    assert_eq!(p.node.as_deref(), Some("n1"));
    assert!(p.healthy, "{p:?}");
    assert_eq!([p.amqp, p.postgres, p.s3], [Some(Check::Ok); 3], "{p:?}");
    // Before AUTH a node says whether it is healthy, nothing more.
    let brief = tasknode_testkit::connect(node.addr)
        .await
        .ping()
        .await
        .unwrap();
    assert!(
        brief.healthy && brief.node.is_none() && brief.amqp.is_none(),
        "{brief:?}"
    );
}
