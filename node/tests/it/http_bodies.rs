//! Raw bodies over HTTP: payloads of any size streamed to the bucket (with a length or
//! chunked), large results streamed back, and bodies cut short leave no task behind.

use futures_util::StreamExt;
use reqwest::{header, Body, Client, StatusCode};
use serde_json::Value;
use sha2::Digest;
use tasknode_testkit::TestEnv;

/// `n` bytes of a repeating pattern, in 64 KiB chunks, made as they are sent.
fn pattern(n: usize) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunk: Vec<u8> = (0..65536u32).map(|i| b'a' + (i % 26) as u8).collect();
    futures_util::stream::iter((0..n).step_by(65536).map(move |at| {
        let len = (n - at).min(65536);
        Ok(chunk[..len].to_vec())
    }))
}

fn expected_sha(n: usize) -> String {
    let chunk: Vec<u8> = (0..65536u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut h = sha2::Sha256::new();
    for at in (0..n).step_by(65536) {
        h.update(&chunk[..(n - at).min(65536)]);
    }
    hex::encode(h.finalize())
}

#[actix_rt::test]
async fn raw_bodies_stream_both_ways() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let http = Client::new();
    let url = |path: &str| format!("http://{}{path}", node.http);
    let size = 12 * 1024 * 1024 + 5;

    // Chunked (no length): kept until past the inline limit, then streamed to the bucket.
    let res = http
        .post(url("/v1/tasks/sha256?wait=true"))
        .bearer_auth(&env.token)
        .body(Body::wrap_stream(pattern(size)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let done: Value = res.json().await.unwrap();
    assert_eq!(done["result"], expected_sha(size), "{done}");
    let row = env.row(tasknode_testkit::id_of(&done)).await.unwrap();
    assert!(row.payload_key.is_some(), "the payload went to the bucket");
    assert_eq!(row.payload_size, size as i64);

    // A small chunked body stays inline.
    let res = http
        .post(url("/v1/tasks/upper?wait=30"))
        .bearer_auth(&env.token)
        .body(Body::wrap_stream(futures_util::stream::iter([
            Ok::<_, std::io::Error>(b"small ".to_vec()),
            Ok(b"chunks".to_vec()),
        ])))
        .send()
        .await
        .unwrap();
    let done: Value = res.json().await.unwrap();
    assert_eq!(done["result"], "SMALL CHUNKS");

    // With a length: a large result, kept in the bucket, streamed back whole.
    let big: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let upper = big.to_ascii_uppercase();
    let res = http
        .post(url("/v1/tasks/upper?wait=true"))
        .bearer_auth(&env.token)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let done: Value = res.json().await.unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let id = done["id"].as_str().unwrap();
    let res = http
        .get(url(&format!("/v1/tasks/{id}/result")))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_LENGTH],
        big.len().to_string().as_str()
    );
    let mut got = Vec::new();
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == upper, "the whole result, in order");
    // One range of it, fetched as a range from the bucket; a range past the end is refused.
    let range = |spec: &'static str| {
        http.get(url(&format!("/v1/tasks/{id}/result")))
            .bearer_auth(&env.token)
            .header(header::RANGE, spec)
            .send()
    };
    let res = range("bytes=1000-1099").await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        res.headers()[header::CONTENT_RANGE],
        format!("bytes 1000-1099/{}", big.len()).as_str()
    );
    assert_eq!(res.bytes().await.unwrap(), upper[1000..1100]);
    let res = range("bytes=-7").await.unwrap();
    assert_eq!(res.bytes().await.unwrap(), upper[upper.len() - 7..]);
    let res = range("bytes=99999999-").await.unwrap();
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Or a redirect to the presigned URL.
    let res = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url(&format!("/v1/tasks/{id}/result?redirect=presigned")))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TEMPORARY_REDIRECT);
    assert!(res.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .contains("X-Amz-Signature"));
}

#[actix_rt::test]
async fn a_body_cut_short_makes_no_task_and_the_node_goes_on() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    // A length is promised, a part sent, then the connection closed.
    let mut raw = tokio::net::TcpStream::connect(node.http).await.unwrap();
    let head = format!(
        "POST /v1/tasks/sha256 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 10000000\r\n\r\n",
        env.token
    );
    use tokio::io::AsyncWriteExt;
    raw.write_all(head.as_bytes()).await.unwrap();
    raw.write_all(&vec![b'z'; 2_000_000]).await.unwrap();
    drop(raw);
    // Chunked, cut before its last chunk.
    let mut raw = tokio::net::TcpStream::connect(node.http).await.unwrap();
    let head = format!(
        "POST /v1/tasks/sha256 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        env.token
    );
    raw.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..40 {
        raw.write_all(format!("{:x}\r\n", 65536).as_bytes())
            .await
            .unwrap();
        raw.write_all(&vec![b'z'; 65536]).await.unwrap();
        raw.write_all(b"\r\n").await.unwrap();
    }
    drop(raw);

    let res = Client::new()
        .post(format!("http://{}/v1/tasks", node.http))
        .bearer_auth(&env.token)
        .json(&serde_json::json!({"kind": "upper", "payload": "after", "wait": true}))
        .send()
        .await
        .unwrap();
    let done: Value = res.json().await.unwrap();
    assert_eq!(done["result"], "AFTER");
    let rows = env.rows().await;
    assert_eq!(
        rows.len(),
        1,
        "only the whole request made a task: {rows:?}"
    );
}

/// Serial (heavy, not disturbing): a gibibyte through a node process whose memory stays small.
#[actix_rt::test]
#[ignore = "a gibibyte through a node process: heavy; scripts/test runs it with the serial tests"]
async fn a_gibibyte_streams_through_a_node_that_grows_by_under_64_mib() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_process(
            std::path::Path::new(env!("CARGO_BIN_EXE_tasknode")),
            "gib",
            &[],
        )
        .await;
    let size = 1024 * 1024 * 1024;
    // The node's own size (its actors, pools, connections) is not what this measures: the
    // gibibyte streams through, so what it adds stays small whatever the node holds idle.
    let before = node.peak_rss_mib();
    println!("gibibyte: node peak RSS before {before} MiB");
    let res = Client::new()
        .post(format!("http://{}/v1/tasks/sha256?wait=true", node.http))
        .bearer_auth(&env.token)
        .body(Body::wrap_stream(pattern(size)))
        .send()
        .await
        .unwrap();
    let done: Value = res.json().await.unwrap();
    assert_eq!(done["result"], expected_sha(size), "{done}");
    let peak = node.peak_rss_mib();
    println!("gibibyte: node peak RSS {peak} MiB");
    assert!(
        peak - before < 64,
        "the gibibyte took the node from {before} MiB to {peak} MiB"
    );
}

#[actix_rt::test]
async fn a_range_of_a_result_that_changes_meanwhile_is_always_answered() {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use tasknode::db::schema::tasks;
    let env = TestEnv::new().await;
    let node = env.spawn_node("n").await;
    let long = vec![b'L'; 100];
    let id = uuid::Uuid::now_v7();
    diesel::insert_into(tasks::table)
        .values((
            tasks::id.eq(id),
            tasks::kind.eq("upper"),
            tasks::status.eq("succeeded"),
            tasks::payload.eq(Some(b"l".to_vec())),
            tasks::payload_size.eq(1i64),
            tasks::submitted_by.eq("n"),
            tasks::result.eq(Some(long.clone())),
            tasks::finished_at.eq(Some(chrono::Utc::now())),
        ))
        .execute(&mut env.db().await)
        .await
        .unwrap();
    // The result changes back and forth (as a RETRY and a new run would change it) while
    // ranges of it are asked for.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipping = {
        let (stop, mut db) = (stop.clone(), env.db().await);
        tokio::spawn(async move {
            let mut n = 0u64;
            while !std::sync::atomic::AtomicBool::load(&stop, std::sync::atomic::Ordering::Relaxed)
            {
                let result = if n % 2 == 0 {
                    b"SHORT".to_vec()
                } else {
                    long.clone()
                };
                diesel::update(tasks::table.find(id))
                    .set(tasks::result.eq(Some(result)))
                    .execute(&mut db)
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let http = Client::new();
    let url = format!("http://{}/v1/tasks/{id}/result", node.http);
    let mut seen = std::collections::HashMap::new();
    for _ in 0..400 {
        let res = http
            .get(&url)
            .bearer_auth(&env.token)
            .header(header::RANGE, "bytes=50-99")
            .send()
            .await
            .expect("answered, not dropped");
        let status = res.status();
        let body = res.bytes().await.expect("a whole answer");
        match status {
            StatusCode::PARTIAL_CONTENT => assert_eq!(&body[..], &[b'L'; 50][..]),
            StatusCode::RANGE_NOT_SATISFIABLE => assert!(body.is_empty()),
            other => panic!("{other}: {body:?}"),
        }
        *seen.entry(status).or_insert(0) += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipping.await.unwrap();
    assert!(flips > 10, "the result changed {flips} times");
    // The node serves on.
    let again = http.get(&url).bearer_auth(&env.token).send().await.unwrap();
    assert!(again.status().is_success(), "{seen:?}");
}
