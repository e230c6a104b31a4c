//! The HTTP API's bounds on clients: slow request heads and stalled bodies are cut off, and
//! connections past `http.max_connections` are told `busy`, while everyone else is served.

use reqwest::{Client, StatusCode};
use tasknode_testkit::{poll_until, TestEnv};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send `GET path` on a kept-alive connection and read the whole answer: its status and body.
async fn get(conn: &mut TcpStream, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: tasknode\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut said = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed mid-answer: {}",
            String::from_utf8_lossy(&said)
        );
        said.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&said);
        let Some(head_end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length: usize = text[..head_end]
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .expect("a length");
        if said.len() >= head_end + 4 + length {
            let status = text[9..12].parse().unwrap();
            return (status, text[head_end + 4..].to_string());
        }
    }
}

/// Read until the server closes; what it said.
async fn until_closed(raw: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut said = Vec::new();
    let _ = raw.read_to_end(&mut said).await;
    String::from_utf8_lossy(&said).into_owned()
}

#[actix_rt::test]
async fn slow_heads_and_stalled_bodies_are_cut_off_while_others_are_served() {
    use tokio::io::AsyncWriteExt;
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| s.http.request_timeout_secs = 1)
        .await;
    let mut slow_head = tokio::net::TcpStream::connect(node.http).await.unwrap();
    slow_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut stalled = tokio::net::TcpStream::connect(node.http).await.unwrap();
    let head = format!(
        "POST /v1/tasks/upper HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\nonly ten b",
        env.token
    );
    stalled.write_all(head.as_bytes()).await.unwrap();

    // Meanwhile others are served.
    let res = Client::new()
        .get(format!("http://{}/healthz", node.http))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let said = until_closed(&mut slow_head).await;
    assert!(
        said.is_empty() || said.starts_with("HTTP/1.1 408"),
        "{said}"
    );
    let said = until_closed(&mut stalled).await;
    assert!(said.contains("idle_timeout"), "{said}");
}

#[actix_rt::test]
async fn connections_past_the_bound_are_told_busy_while_open_ones_are_served() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| s.http.max_connections = 2)
        .await;
    // Two kept-alive connections, each answered once (so the node has counted both).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = TcpStream::connect(node.http).await.unwrap();
        assert_eq!(get(&mut conn, "/healthz").await.0, 200);
        held.push(conn);
    }

    // A third is answered 503 busy, told when to come back, and closed.
    let mut third = TcpStream::connect(node.http).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: tasknode\r\n\r\n")
        .await
        .unwrap();
    let said = until_closed(&mut third).await;
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(said.contains("\"error\":\"busy\""), "{said}");
    assert!(
        said.to_ascii_lowercase().contains("retry-after: 1"),
        "{said}"
    );

    // The open ones go on being served.
    for conn in &mut held {
        assert_eq!(get(conn, "/healthz").await.0, 200);
    }

    // A closed one frees its place: a new connection is served once the node has seen it go.
    drop(held.pop());
    poll_until("a freed connection slot", 10, async || {
        let mut conn = TcpStream::connect(node.http).await.ok()?;
        (get(&mut conn, "/healthz").await.0 == 200).then_some(())
    })
    .await;
}
