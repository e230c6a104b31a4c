//! The benchmark over the HTTP API (`--http`): each connection a keep-alive HTTP/1.1 client
//! sending `POST /v1/tasks` with `"wait":true`, one request at a time, spread round-robin over
//! the servers (HTTP addresses). The client is a few lines over TCP, so it costs as little as
//! the line protocol's.

use super::{start_at, BenchArgs, Plan, Shared};
use anyhow::{bail, Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn run(
    args: &BenchArgs,
    servers: &[String],
    token: Option<&str>,
    plan: &Arc<Plan>,
    shared: &Arc<Shared>,
) -> Result<()> {
    if args.pipeline != 1 {
        bail!("--http sends one request at a time per connection (--pipeline 1)");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = serde_json::json!({
        "kind": args.kind,
        "payload": super::payload(args.payload_bytes),
        "wait": true,
    })
    .to_string();
    tokio::task::LocalSet::new().block_on(&rt, async {
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..args.concurrency {
            let server = servers[w % servers.len()].clone();
            let mut request = format!(
                "POST /v1/tasks HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            );
            if let Some(token) = token {
                request.push_str(&format!("Authorization: Bearer {token}\r\n"));
            }
            request.push_str("\r\n");
            request.push_str(&body);
            let request: Arc<[u8]> = request.into_bytes().into();
            let (plan, shared) = (plan.clone(), shared.clone());
            workers.spawn_local(async move {
                while !plan.over() {
                    match drive(&server, &request, &plan, &shared).await {
                        Ok(()) => return,
                        Err(e) => {
                            shared.error(format!("{e:#}"));
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        }
        while workers.join_next().await.is_some() {}
    });
    Ok(())
}

/// Requests on one connection until the plan is over.
async fn drive(server: &str, request: &[u8], plan: &Plan, shared: &Shared) -> Result<()> {
    let mut conn = TcpStream::connect(server)
        .await
        .with_context(|| format!("connect to {server}"))?;
    conn.set_nodelay(true).ok();
    let mut buf = Vec::with_capacity(4096);
    while let Some(at) = plan.next() {
        let at = start_at(at).await;
        conn.write_all(request).await?;
        let body = response(&mut conn, &mut buf).await?;
        const SUCCEEDED: &[u8] = br#""status":"succeeded""#;
        if body.windows(SUCCEEDED.len()).any(|w| w == SUCCEEDED) {
            shared.record(at);
        } else {
            shared.error(String::from_utf8_lossy(body));
        }
    }
    Ok(())
}

/// Read one response on `conn` (with a `Content-Length`); its body.
async fn response<'a>(conn: &mut TcpStream, buf: &'a mut Vec<u8>) -> Result<&'a [u8]> {
    buf.clear();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("a response head that is not text")?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .context("a response without Content-Length")?;
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection mid-body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(&buf[head_end..head_end + length])
}
