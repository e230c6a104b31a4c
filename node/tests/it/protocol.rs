//! The line protocol as a raw-socket client (nc) sees it: raw lines in, JSON lines out.

use tasknode_testkit::{Lines, TestEnv};

#[actix_rt::test]
async fn raw_socket_submit_returns_result_and_node() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let mut c = node.connect().await;
    let r = c.ask("upper hello world").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["result"], "HELLO WORLD", "{r}");
    assert_eq!(r["node"], "n1", "{r}");
    assert_eq!(r["id"].as_str().unwrap().len(), 36, "{r}");

    // CRLF line endings and JSON requests work the same way.
    c.say_raw(b"reverse abc\r\n").await;
    assert_eq!(c.hear().await["result"], "cba");
    let r = c.ask(r#"{"kind":"wordcount","payload":"a b a"}"#).await;
    assert_eq!(r["result"], r#"{"a":2,"b":1}"#, "{r}");
}

#[actix_rt::test]
async fn help_kinds_ping_and_quit() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let mut c = node.connect().await;
    let help = c.ask("HELP").await;
    let text = help["help"].to_string();
    for word in ["SUBMIT", "STATUS", "RESULT", "PUT", "KINDS", "PING", "QUIT"] {
        assert!(text.contains(word), "HELP lacks {word}: {text}");
    }
    let kinds = c.ask("KINDS").await;
    let names: Vec<_> = kinds["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"sha256".to_string()), "{kinds}");
    assert_eq!(c.ask("ping").await["node"], "n1");
    assert_eq!(c.ask("QUIT").await["bye"], true);
    assert!(c.closed().await, "QUIT must close the connection");
}

#[actix_rt::test]
async fn bad_input_gets_errors_and_the_connection_keeps_working() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| s.listener.max_line_bytes = 1024)
        .await;
    let mut c = node.connect().await;
    let mut other = node.connect().await;

    let r = c.ask("frobnicate something").await;
    assert_eq!(r["error"], "unknown_kind", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("upper"),
        "lists known kinds: {r}"
    );

    let r = c.ask("STATUS not-a-uuid").await;
    assert_eq!(r["error"], "malformed", "{r}");

    let r = c.ask(r#"{"kind": "upper", "payload": 5}"#).await;
    assert_eq!(r["error"], "malformed", "{r}");

    c.say(&"x".repeat(5000)).await;
    let r = c.hear().await;
    assert_eq!(r["error"], "line_too_long", "{r}");

    c.say_raw(b"upper \xff\xfe\n").await;
    let r = c.hear().await;
    assert_eq!(r["error"], "invalid_utf8", "{r}");

    c.say_raw(b"upper a\0b\n").await;
    assert_eq!(c.hear().await["error"], "nul_byte");

    c.say("").await;
    assert_eq!(c.hear().await["error"], "empty_line");

    let r = c.ask(&format!("STATUS {}", uuid::Uuid::new_v4())).await;
    assert_eq!(r["error"], "not_found", "{r}");

    // The same connection, and another one, still work.
    assert_eq!(c.ask("upper still here").await["result"], "STILL HERE");
    assert_eq!(other.ask("lower OK").await["result"], "ok");
}

#[actix_rt::test]
async fn oversized_upload_is_refused_and_others_keep_working() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| s.listener.max_payload_bytes = 1000)
        .await;
    let mut c = node.connect().await;
    let mut other = node.connect().await;
    let r = c.ask("PUT echo 5000").await;
    assert_eq!(r["error"], "payload_too_large", "{r}");
    assert!(
        c.closed().await,
        "a refused PUT body cannot be resynchronised"
    );
    assert_eq!(other.ask("upper fine").await["result"], "FINE");
}

#[actix_rt::test]
async fn task_errors_are_failed_tasks_not_protocol_errors() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let mut c = node.connect().await;
    let r = c.ask("fib banana").await;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"], "task_failed", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("whole number"),
        "{r}"
    );
    assert_eq!(c.ask("fib 90").await["result"], "2880067194370816120");
    assert_eq!(c.ask("primes 100").await["result"], "25");
}

#[actix_rt::test]
async fn binary_results_come_back_base64() {
    use base64::Engine;
    use std::io::Read;
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let mut c = node.connect().await;
    let r = c.ask("gzip hello hello hello").await;
    assert_eq!(r["result_encoding"], "base64", "{r}");
    let gz = base64::engine::general_purpose::STANDARD
        .decode(r["result"].as_str().unwrap())
        .unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "hello hello hello");
}

#[actix_rt::test]
async fn connections_over_the_limit_are_refused_with_a_line() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| s.listener.max_connections = 2)
        .await;
    let mut a = node.connect().await;
    let mut b = node.connect().await;
    assert_eq!(a.ask("PING").await["pong"], true);
    assert_eq!(b.ask("PING").await["pong"], true);
    let mut c = tasknode_testkit::connect(node.addr).await;
    assert_eq!(c.hear().await["error"], "busy");
    assert!(c.closed().await);
    drop(a);
    // Once a slot frees, new connections are served again.
    tasknode_testkit::poll_until("a freed connection slot is reused", 10, async || {
        let mut d = tasknode_testkit::connect(node.addr).await;
        d.ask("PING").await.get("pong").map(|_| ())
    })
    .await;
}

#[actix_rt::test]
async fn an_idle_client_is_told_and_closed() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| s.listener.idle_timeout_secs = 1)
        .await;
    let mut idle = node.connect().await;
    let mut busy = node.connect().await;
    // A request that takes longer than the idle timeout does not count as idle.
    assert_eq!(busy.ask("sleep 1500").await["status"], "succeeded");
    let r = idle.hear().await;
    assert_eq!(r["error"], "idle_timeout", "{r}");
    assert!(idle.closed().await);
    assert_eq!(busy.ask("PING").await["pong"], true);
}

#[actix_rt::test]
async fn a_client_that_never_reads_is_dropped_and_others_are_served() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| s.listener.write_timeout_secs = 1)
        .await;
    // Pipeline many requests whose answers fill the socket buffers, and never read.
    let stuck = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let (_r, mut w) = stuck.into_split();
    let auth = format!("AUTH {}\n", env.token);
    tokio::io::AsyncWriteExt::write_all(&mut w, auth.as_bytes())
        .await
        .unwrap();
    let line = format!("echo {}\n", "z".repeat(60_000));
    let mut written = 0usize;
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for _ in 0..400 {
            match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                w.write_all(line.as_bytes()),
            )
            .await
            {
                Ok(Ok(())) => written += 1,
                _ => break,
            }
        }
        written
    });
    let mut other = node.connect().await;
    for i in 0..5 {
        assert_eq!(
            other.ask(&format!("upper ok{i}")).await["result"],
            format!("OK{i}")
        );
    }
    let written = writer.await.unwrap();
    assert!(
        written < 400,
        "the node stopped reading from the stuck client"
    );
    assert_eq!(other.ask("PING").await["pong"], true);
}

#[actix_rt::test]
async fn a_truncated_upload_is_not_a_task() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    {
        let mut c = node.connect().await;
        c.say("PUT sha256 1000000").await;
        c.say_raw(&[7u8; 300_000]).await;
        // The client goes away mid-body.
    }
    let mut c = node.connect().await;
    assert_eq!(c.ask("upper still fine").await["result"], "STILL FINE");
    let sha = env
        .rows()
        .await
        .into_iter()
        .filter(|r| r.kind == "sha256")
        .count();
    assert_eq!(sha, 0, "no task from a truncated upload");
}

#[actix_rt::test]
async fn pipelined_requests_are_served_together_and_answered_in_order() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| s.workers.count = Some(2))
        .await;
    let mut c = node.connect().await;
    // One write, many requests: a slow task first, then fast ones and non-task requests.
    let started = std::time::Instant::now();
    c.say_raw(b"sleep 1500\nupper a\nPING\nSTATUS nope\nreverse abc\nsleep 1500\nlower B\n")
        .await;
    let answers: Vec<serde_json::Value> = {
        let mut v = Vec::new();
        for _ in 0..7 {
            v.push(c.hear().await);
        }
        v
    };
    // The two sleeps ran side by side, not one after the other (that would take 3 s).
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2700),
        "pipelined requests were served one at a time ({:?})",
        started.elapsed()
    );
    assert_eq!(answers[0]["kind"], "sleep", "{}", answers[0]);
    assert_eq!(answers[0]["status"], "succeeded", "{}", answers[0]);
    assert_eq!(answers[1]["result"], "A", "{}", answers[1]);
    assert_eq!(answers[2]["pong"], true, "{}", answers[2]);
    assert_eq!(answers[3]["error"], "malformed", "{}", answers[3]);
    assert_eq!(answers[4]["result"], "cba", "{}", answers[4]);
    assert_eq!(answers[5]["kind"], "sleep", "{}", answers[5]);
    assert_eq!(answers[6]["result"], "b", "{}", answers[6]);
    // The connection goes on as usual afterwards.
    assert_eq!(c.ask("upper after").await["result"], "AFTER");
}

#[actix_rt::test]
async fn a_client_that_closes_its_side_still_gets_its_answers() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let stream = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let lines = format!("AUTH {}\nupper one\nsleep 300\nupper two\n", env.token);
    write.write_all(lines.as_bytes()).await.unwrap();
    write.shutdown().await.unwrap();
    let mut lines = tokio::io::BufReader::new(read).lines();
    let mut got = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        got.push(serde_json::from_str::<serde_json::Value>(&line).unwrap());
    }
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0]["auth"], "ok");
    assert_eq!(got[1]["result"], "ONE");
    assert_eq!(got[2]["status"], "succeeded");
    assert_eq!(got[3]["result"], "TWO");
}

/// Stopping a node (SIGTERM) drains its sessions: a request already taken is answered, then
/// the node closes the connection, and the stop ends only once that answer is written.
#[actix_rt::test]
async fn a_stopping_node_answers_what_it_took_then_closes_the_connection() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let stream = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut lines = tokio::io::BufReader::new(read).lines();
    let auth = format!("AUTH {}\n", env.token);
    write.write_all(auth.as_bytes()).await.unwrap();
    let ok: serde_json::Value =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(ok["auth"], "ok");
    write.write_all(b"sleep 1500\n").await.unwrap();
    // The task is being run: the session has taken the request.
    while node.inflight() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    node.stop().await;
    // The stop waited for the answer: it is there to read, then the end of the connection.
    let answer = tokio::time::timeout(std::time::Duration::from_secs(1), lines.next_line())
        .await
        .expect("the answer was written before the stop ended")
        .unwrap()
        .expect("an answer, not the end of the connection");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["status"], "succeeded", "{answer}");
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
        .await
        .expect("the node closed the connection");
    assert_eq!(end.unwrap(), None);
}
