//! The HTTP API end to end with a real HTTP client (reqwest) against in-process nodes: the
//! same tasks, tokens, isolation and error codes as the line protocol.

use crate::api::Api;
use reqwest::{header, Client, Method, StatusCode};
use serde_json::{json, Value};
use tasknode::auth::{tokens::Limits, Role};
use tasknode_testkit::TestEnv;

#[actix_rt::test]
async fn submit_wait_long_poll_list_and_retry() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let api = Api::of(&node, &env.token);

    let (status, done) = api
        .post(
            "/v1/tasks",
            json!({"kind": "upper", "payload": "hi there", "wait": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["result"], "HI THERE");

    // Without waiting: 202 and where to look; then long-poll it until it is final.
    let res = api
        .req(Method::POST, "/v1/tasks")
        .json(&json!({"kind": "upper", "payload": "later"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let location = res.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    let queued: Value = res.json().await.unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(
        location,
        format!("/v1/tasks/{}", queued["id"].as_str().unwrap())
    );
    let (status, view) = api.get(&format!("{location}?wait=30")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        view["status"], "succeeded",
        "long-polled until final: {view}"
    );
    assert_eq!(view["result"], "LATER");

    // Binary payloads as base64; a failed task is an answer (200), not a refusal.
    let (_, bin) = api
        .post(
            "/v1/tasks",
            json!({"kind": "reverse", "payload_base64": "AAEC", "wait": 30}),
        )
        .await;
    assert_eq!(bin["status"], "succeeded", "{bin}");
    let (status, failed) = api
        .post(
            "/v1/tasks",
            json!({"kind": "fib", "payload": "not a number", "wait": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(failed["status"], "failed", "{failed}");
    let failed_id = failed["id"].as_str().unwrap().to_string();
    let (status, retried) = api
        .post(&format!("/v1/tasks/{failed_id}/retry"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    assert_eq!(retried["status"], "queued");

    // Listing: newest first, page by page, no task twice, filters.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = api.get(&format!("/v1/tasks?limit=2&cursor={cursor}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for t in page["tasks"].as_array().unwrap() {
            seen.push(t["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, each once");
    assert!(seen.len() >= 3, "the queued ones at least: {seen:?}");
    let (_, reversed) = api.get("/v1/tasks?kind=reverse").await;
    let kinds: Vec<&str> = reversed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert!(
        !kinds.is_empty() && kinds.iter().all(|k| *k == "reverse"),
        "{kinds:?}"
    );

    let (status, kinds) = api.get("/v1/kinds").await;
    assert_eq!(status, StatusCode::OK);
    assert!(kinds["kinds"].as_array().unwrap().len() > 3);
}

#[actix_rt::test]
async fn refusals_have_fitting_statuses_and_the_line_protocols_codes() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| s.http.max_json_bytes = 4096)
        .await;
    let api = Api::of(&node, &env.token);
    let anonymous = Api::of(&node, "");

    let res = anonymous
        .http
        .post(format!("{}/v1/tasks", api.base))
        .json(&json!({"kind": "upper"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "unauthenticated");
    let wrong = Api::of(&node, "tn_wrong");
    assert_eq!(wrong.get("/v1/kinds").await.0, StatusCode::UNAUTHORIZED);

    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            api.req(Method::POST, "/v1/tasks")
                .header(header::CONTENT_TYPE, "application/json")
                .body("{not json"),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            api.req(Method::POST, "/v1/tasks")
                .header(header::CONTENT_TYPE, "text/plain")
                .body("upper hi"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "malformed",
        ),
        (
            api.req(Method::POST, "/v1/tasks")
                .json(&json!({"kind": "upper", "payload": "x".repeat(8192)})),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            api.req(Method::POST, "/v1/tasks")
                .json(&json!({"kind": "nope"})),
            StatusCode::BAD_REQUEST,
            "unknown_kind",
        ),
        (
            api.req(Method::POST, "/v1/tasks/nope").body("raw"),
            StatusCode::BAD_REQUEST,
            "unknown_kind",
        ),
        (
            api.req(Method::GET, &format!("/v1/tasks/{}", uuid::Uuid::now_v7())),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            api.req(Method::GET, "/v1/tasks/not-a-uuid"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            api.req(Method::GET, "/v1/tasks?limit=0"),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            api.req(Method::GET, "/v1/tasks?colour=blue"),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            api.req(Method::GET, "/v2/everything"),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (rb, want, code) in cases {
        let (status, body) = api.send(rb).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (want, Some(code)),
            "{body}"
        );
    }
    // A NUL in a filter is a bad kind, not a database failure; a wrong method is 405.
    let (status, body) = api.get("/v1/tasks?kind=%00").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_kind"))
    );
    for path in ["/healthz", "/v1/kinds", "/v1/tasks"] {
        let (status, _) = api.send(api.req(Method::DELETE, path)).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }

    // Roles and quotas as on the line protocol.
    let reader = env.token("reader", Role::Read, Limits::default()).await;
    let (status, body) = Api::of(&node, &reader)
        .post("/v1/tasks", json!({"kind": "upper", "payload": "x"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let slow = Limits {
        rate: Some(1.0),
        max_payload: Some(16),
        ..Limits::default()
    };
    let slow = Api::of(&node, &env.token("slow", Role::Submit, slow).await);
    let (status, _) = slow
        .post("/v1/tasks", json!({"kind": "upper", "payload": "a"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let res = slow
        .req(Method::POST, "/v1/tasks")
        .json(&json!({"kind": "upper", "payload": "b"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert!(body["retry_after_ms"].as_u64().unwrap() > 0);
    let (status, body) = slow
        .send(
            slow.req(Method::POST, "/v1/tasks/upper")
                .body("x".repeat(17)),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("quota_exceeded"))
    );

    // A result asked for too early.
    let (_, queued) = api
        .post("/v1/tasks", json!({"kind": "sleep", "payload": "2000"}))
        .await;
    let id = queued["id"].as_str().unwrap();
    let (status, body) = api.get(&format!("/v1/tasks/{id}/result")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::CONFLICT, Some("not_finished"))
    );

    // The node served all of that and goes on.
    let (status, _) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
}

#[actix_rt::test]
async fn one_owner_cannot_see_anothers_tasks_over_http() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let alice = Api::of(
        &node,
        &env.token("alice", Role::Submit, Limits::default()).await,
    );
    let bob = Api::of(
        &node,
        &env.token("bob", Role::Submit, Limits::default()).await,
    );
    let admin = Api::of(&node, &env.token);

    let (_, task) = alice
        .post(
            "/v1/tasks",
            json!({"kind": "upper", "payload": "mine", "wait": true}),
        )
        .await;
    let id = task["id"].as_str().unwrap();
    let unknown = uuid::Uuid::now_v7();
    for path in [format!("/v1/tasks/{id}"), format!("/v1/tasks/{id}/result")] {
        let (status, theirs) = bob.get(&path).await;
        let other = path.replace(id, &unknown.to_string());
        let (_, never) = bob.get(&other).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {theirs}");
        assert_eq!(
            theirs["message"].as_str().unwrap().replace(id, "ID"),
            never["message"]
                .as_str()
                .unwrap()
                .replace(&unknown.to_string(), "ID"),
            "answered exactly as an unknown id"
        );
    }
    let (status, _) = bob.post(&format!("/v1/tasks/{id}/retry"), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, page) = bob.get("/v1/tasks").await;
    assert!(page["tasks"].as_array().unwrap().is_empty(), "{page}");

    let (status, mine) = alice.get(&format!("/v1/tasks/{id}/result")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["text"], "MINE", "the raw result");
    let (status, seen) = admin.get(&format!("/v1/tasks/{id}")).await;
    assert_eq!(
        (status, seen["result"].as_str()),
        (StatusCode::OK, Some("MINE"))
    );
}

#[actix_rt::test]
async fn cors_preflight_answers_allowed_origins_only() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| {
            s.http.cors_origins = vec!["https://app.example".into()]
        })
        .await;
    let url = format!("http://{}/v1/tasks", node.http);
    let preflight = |origin: &'static str| {
        Client::new()
            .request(Method::OPTIONS, &url)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://app.example").await.unwrap();
    assert!(ok.status().is_success(), "{ok:?}");
    assert_eq!(
        ok.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(
        !other
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "{other:?}"
    );
}

#[actix_rt::test]
async fn events_stream_a_tasks_states_until_it_is_final() {
    use futures_util::StreamExt;
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let api = Api::of(&node, &env.token);
    let (_, queued) = api
        .post("/v1/tasks", json!({"kind": "sleep", "payload": "1500"}))
        .await;
    let id = queued["id"].as_str().unwrap();
    let res = api
        .req(Method::GET, &format!("/v1/tasks/{id}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut text = String::new();
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    // The stream ended by itself, after the final state.
    let states: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        states.last().map(String::as_str),
        Some("succeeded"),
        "{text}"
    );
    assert!(
        states.contains(&"running".to_string()),
        "saw it run: {states:?}"
    );
    let mut deduped = states.clone();
    deduped.dedup();
    assert_eq!(deduped, states, "one event per change");

    // Another owner's task streams nothing: 404 as for an unknown id.
    let bob = Api::of(
        &node,
        &env.token("bob", Role::Submit, Limits::default()).await,
    );
    let (status, _) = bob.get(&format!("/v1/tasks/{id}/events")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
