//! Load from clients that never authenticate: `PING` floods, made-up tokens, `/readyz`. None
//! of it may take the database from the clients that do.

use protocol::TaskStatus;
use tasknode_testkit::{url_addr, Proxy, TestEnv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Send `n` pipelined `PING`s on a new connection to `addr` and read every answer.
async fn ping_flood(addr: std::net::SocketAddr, n: usize) -> usize {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = s.split();
    let send = async {
        let lines = "PING\n".repeat(1000);
        for _ in 0..n / 1000 {
            w.write_all(lines.as_bytes()).await.unwrap();
        }
    };
    let read = async {
        let (mut buf, mut answers) = (vec![0u8; 64 * 1024], 0);
        while answers < n / 1000 * 1000 {
            let got = r.read(&mut buf).await.unwrap();
            if got == 0 {
                break;
            }
            answers += buf[..got].iter().filter(|b| **b == b'\n').count();
        }
        answers
    };
    futures_util::future::join(send, read).await.1
}

#[actix_rt::test]
async fn a_ping_flood_and_made_up_tokens_do_not_starve_submissions() {
    let env = TestEnv::new().await;
    // The node reaches PostgreSQL through a proxy that counts what it sends.
    let pg = Proxy::start(url_addr(&env.database_url)).await;
    let db = url_addr(&env.database_url).to_string();
    let via = env.database_url.replace(&db, &pg.addr.to_string());
    let node = env.spawn_node_with("n", |s| s.database.url = via).await;
    let addr = node.addr;
    // What a flood may cost the database: the node's own work meanwhile, not a query per
    // request (20,000 `SELECT 1`s and 200 token lookups would send well over 1 MB).
    let before = pg.bytes_sent();
    let flood = async {
        let floods = futures_util::future::join_all((0..4).map(|_| ping_flood(addr, 5_000)));
        let guesses = futures_util::future::join_all((0..200).map(|i| async move {
            let mut c = protocol::Client::connect(&addr.to_string()).await.unwrap();
            c.auth(&format!("tn_madeup{i:04}")).await.is_err()
        }));
        let (answered, refused) = tokio::join!(floods, guesses);
        let cost = pg.bytes_sent() - before;
        (answered, refused, cost)
    };
    // 20,000 pipelined PINGs before AUTH on four connections, and 200 made-up tokens, while
    // an authenticated client submits and waits.
    let mut c = node.connect().await;
    let submits = async {
        let mut outcomes = Vec::new();
        for i in 0..40 {
            let payload = format!("flood-{i}");
            outcomes.push(c.submit("upper", payload.as_bytes(), true).await);
        }
        outcomes
    };
    let ((answered, refused, cost), outcomes) = tokio::join!(flood, submits);
    assert!(answered.iter().all(|n| *n == 5_000), "{answered:?}");
    eprintln!("the flood sent PostgreSQL {cost} bytes");
    assert!(cost < 300_000, "the flood sent PostgreSQL {cost} bytes");
    assert!(refused.iter().all(|r| *r), "every made-up token refused");
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let v = outcome.unwrap_or_else(|e| panic!("submission {i} refused: {e}"));
        assert_eq!(v.status, TaskStatus::Succeeded, "{v:?}");
        assert_eq!(v.result.as_deref(), Some(format!("FLOOD-{i}").as_str()));
    }
}

#[actix_rt::test]
async fn readyz_tells_anyone_only_whether_the_node_is_ready() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n", |s| s.node.name = "secret-name".into())
        .await;
    let mut admin = node.connect().await;
    use tasknode_testkit::Lines;
    admin.ask("PAUSE kind sha256").await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/readyz", node.http);
    let anyone = http.get(&url).send().await.unwrap();
    assert_eq!(anyone.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = anyone.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "ready": true }), "nothing else");
    let wrong = http.get(&url).bearer_auth("tn_wrong").send().await.unwrap();
    let body: serde_json::Value = wrong.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "ready": true }), "nothing else");
    let admin = http.get(&url).bearer_auth(&env.token).send().await.unwrap();
    assert_eq!(admin.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = admin.json().await.unwrap();
    assert_eq!(body["node"], "secret-name", "{body}");
    assert_eq!(body["paused"][0], "kind:sha256", "{body}");
    assert_eq!(body["ready"], true, "{body}");
}

/// Every line `addr` says to a connection that sends `first` until it closes the connection
/// (which it must within `secs`).
async fn lines_until_closed(
    addr: std::net::SocketAddr,
    first: &[u8],
    secs: u64,
) -> Vec<serde_json::Value> {
    use tokio::io::AsyncBufReadExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(first).await.unwrap();
    let mut lines = tokio::io::BufReader::new(s).lines();
    let within = std::time::Duration::from_secs(secs);
    tokio::time::timeout(within, async {
        let mut said = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            said.push(serde_json::from_str(&line).unwrap());
        }
        said
    })
    .await
    .expect("the node closes the connection")
}

#[actix_rt::test]
async fn connections_that_never_authenticate_are_not_held() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n", |s| s.listener.auth_timeout_secs = 1)
        .await;
    // Silent: closed once the AUTH deadline passes (not after the 300 s idle timeout).
    let said = lines_until_closed(node.addr, b"", 10).await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0]["error"], "unauthenticated", "{said:?}");
    let why = said[0]["message"].as_str().unwrap();
    assert!(why.contains("no AUTH within 1s"), "{why}");
    // PINGs do not extend it.
    let said = lines_until_closed(node.addr, b"PING\n", 10).await;
    assert_eq!(said[0]["pong"], true, "{said:?}");
    assert_eq!(said[1]["error"], "unauthenticated", "{said:?}");
    // A PUT before AUTH: refused at once, its 8 GiB body never read.
    let said = lines_until_closed(node.addr, b"PUT upper 8589934592\nxxxxxxxx", 10).await;
    assert_eq!(said.len(), 1, "{said:?}");
    assert_eq!(said[0]["error"], "unauthenticated", "{said:?}");
    assert!(
        said[0]["message"].as_str().unwrap().contains("before PUT"),
        "{said:?}"
    );
    // An authenticated client is not cut off.
    let mut c = node.connect().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let v = c.submit("upper", b"still", true).await.unwrap();
    assert_eq!(v.result.as_deref(), Some("STILL"));
}

#[actix_rt::test]
async fn a_node_whose_connection_bounds_exceed_the_open_files_limit_refuses_to_start() {
    let env = TestEnv::new().await;
    let refused = env
        .try_spawn_node_with("n", |s| s.listener.max_connections = 2_000_000)
        .await;
    let why = refused.err().expect("refused").to_string();
    assert!(
        why.contains("open files") && why.contains("listener.max_connections (2000000)"),
        "{why}"
    );
}

#[actix_rt::test]
async fn uploads_past_the_bound_are_told_busy_and_the_next_goes_through() {
    use tasknode_testkit::Lines;
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n", |s| s.storage.max_uploads = 1)
        .await;
    // One large PUT under way: 2 MB announced, 1 MB sent so far.
    let mut first = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let head = format!("AUTH {}\nPUT sha256 2000000 ASYNC\n", env.token);
    first.write_all(head.as_bytes()).await.unwrap();
    first.write_all(&vec![b'a'; 1_000_000]).await.unwrap();
    // Another large payload meanwhile: refused, not held in memory.
    let mut c = node.connect().await;
    let big = "b".repeat(100 * 1024);
    let r =
        tasknode_testkit::poll_until("the upload under way holds the only slot", 20, async || {
            let r = c.ask(&format!("SUBMIT sha256 {big}")).await;
            (r["error"] == "busy").then_some(r)
        })
        .await;
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("storage.max_uploads"),
        "{r}"
    );
    // Small payloads are not uploads: they go on.
    assert_eq!(c.ask("upper small").await["result"], "SMALL");
    // The first upload ends; then the next large one goes through.
    first.write_all(&vec![b'a'; 1_000_000]).await.unwrap();
    let mut answer = tokio::io::BufReader::new(first);
    let mut lines = Vec::new();
    use tokio::io::AsyncBufReadExt;
    while lines.len() < 2 {
        let mut line = String::new();
        answer.read_line(&mut line).await.unwrap();
        lines.push(line);
    }
    assert!(lines[1].contains("\"queued\""), "{lines:?}");
    let r = tasknode_testkit::poll_until("a slot is free again", 20, async || {
        let r = c.ask(&format!("SUBMIT sha256 {big}")).await;
        (r["error"] != "busy").then_some(r)
    })
    .await;
    assert_eq!(r["status"], "queued", "accepted: {r}");
}
