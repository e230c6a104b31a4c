//! What the console stands on, over HTTP: the fleet's overview from any node, who a token
//! is, tokens managed by admins, a task's payload read back, the task list by time, and the
//! console's own files with their caching.

use crate::api::Api;
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use tasknode::auth::{tokens::Limits, Role};
use tasknode_testkit::{poll_until, TestEnv};

#[actix_rt::test]
async fn any_node_shows_every_node_and_what_the_fleet_finished() {
    let env = TestEnv::new().await;
    let (n1, n2) = (env.spawn_node("n1").await, env.spawn_node("n2").await);
    let on_n1 = Api::of(&n1, &env.token);
    for i in 0..5 {
        let (status, body) = on_n1
            .post(
                "/v1/tasks",
                json!({"kind": "upper", "payload": format!("t{i}"), "wait": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Asked of n2, the overview has both nodes up and the five tasks (they finished on
    // either node) within a few heartbeats.
    let on_n2 = Api::of(&n2, &env.token);
    let overview = poll_until(
        "both nodes and five tasks in n2's overview",
        15,
        async || {
            let (status, o) = on_n2.get("/v1/overview").await;
            assert_eq!(status, StatusCode::OK, "{o}");
            let names: Vec<&str> = o["nodes"]
                .as_array()?
                .iter()
                .filter(|n| n["up"] == true)
                .filter_map(|n| n["name"].as_str())
                .collect();
            let finished: u64 = o["seconds"]
                .as_array()?
                .iter()
                .filter_map(|s| s["finished"].as_u64())
                .sum();
            (names == ["n1", "n2"] && finished == 5).then_some(o)
        },
    )
    .await;
    assert_eq!(overview["node"], "n2");
    let node = &overview["nodes"][0];
    for dependency in ["broker", "database", "store"] {
        assert_eq!(node[dependency], true, "{node}");
    }
    assert!(
        node["lanes"].as_array().is_some_and(|l| !l.is_empty()),
        "{node}"
    );
    assert_eq!(
        node["restarts"], 0,
        "a fresh node has restarted nothing: {node}"
    );
    let second = overview["seconds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["finished"].as_u64() > Some(0))
        .unwrap();
    assert!(
        second["p50_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{second}"
    );
    assert!(
        overview["queues"].as_array().is_some_and(|q| q.len() == 2),
        "{overview}"
    );

    // Only for admins; anyone may ask who they are.
    let app = env.token("app", Role::Submit, Limits::default()).await;
    let as_app = Api::of(&n2, &app);
    assert_eq!(as_app.get("/v1/overview").await.0, StatusCode::FORBIDDEN);
    let (status, me) = as_app.get("/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me, json!({"name": "app", "role": "submit", "node": "n2"}));
}

#[actix_rt::test]
async fn admins_make_list_and_revoke_tokens_over_http() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let admin = Api::of(&node, &env.token);
    let (status, made) = admin
        .post(
            "/v1/tokens",
            json!({"name": "phone", "role": "submit", "rate": 5.0}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let secret = made["secret"].as_str().unwrap().to_string();
    let phone = Api::of(&node, &secret);
    assert_eq!(phone.get("/v1/me").await.1["name"], "phone");

    let (status, again) = admin
        .post("/v1/tokens", json!({"name": "phone", "role": "read"}))
        .await;
    assert_eq!(
        (status, again["error"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );
    let (status, bad) = admin
        .post("/v1/tokens", json!({"name": "x", "role": "root"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (_, list) = admin.get("/v1/tokens").await;
    let listed = list["tokens"].as_array().unwrap();
    let entry = listed.iter().find(|t| t["name"] == "phone").unwrap();
    assert_eq!(entry["rate"], 5.0);
    assert!(
        !list.to_string().contains(&secret),
        "a listing shows no secret"
    );

    // Not by a submit token, not the admin's own token; then the phone's.
    assert_eq!(phone.get("/v1/tokens").await.0, StatusCode::FORBIDDEN);
    let own = "/v1/tokens/admin";
    assert_eq!(admin.delete(own).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        admin.delete("/v1/tokens/nobody").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, revoked) = admin.delete("/v1/tokens/phone").await;
    assert_eq!(
        (status, revoked),
        (StatusCode::OK, json!({"revoked": "phone"}))
    );
    poll_until("the revoked token refused", 5, async || {
        (phone.get("/v1/me").await.0 == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn a_payload_reads_back_and_tasks_are_listed_by_time() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let api = Api::of(&node, &env.token);
    let before = chrono::Utc::now() - chrono::TimeDelta::seconds(1);
    let (_, task) = api
        .post(
            "/v1/tasks",
            json!({"kind": "upper", "payload": "hello payload", "wait": true}),
        )
        .await;
    let id = task["id"].as_str().unwrap();
    assert_eq!(task["payload_size"], 13);
    assert!(
        task["created_at"].is_string() && task["finished_at"].is_string(),
        "{task}"
    );

    let res = api
        .req(Method::GET, &format!("/v1/tasks/{id}/payload"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "hello payload");
    let res = api
        .req(Method::GET, &format!("/v1/tasks/{id}/payload"))
        .header(header::RANGE, "bytes=6-")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(res.headers()[header::CONTENT_RANGE], "bytes 6-12/13");
    assert_eq!(res.text().await.unwrap(), "payload");

    let ids = |page: Value| -> Vec<String> {
        page["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    let at =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let later = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    let (_, since) = api.get(&format!("/v1/tasks?since={}", at(before))).await;
    assert_eq!(ids(since), [id]);
    let (_, after) = api.get(&format!("/v1/tasks?since={}", at(later))).await;
    assert!(ids(after).is_empty());
    let (_, until) = api.get(&format!("/v1/tasks?until={}", at(before))).await;
    assert!(ids(until).is_empty());
    let (status, bad) = api.get("/v1/tasks?since=yesterday").await;
    assert_eq!(
        (status, bad["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed"))
    );
}

#[actix_rt::test]
async fn the_console_is_served_from_the_binary_with_caching_headers() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{}{path}", node.http);
    let res = http.get(url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()[header::LOCATION], "/console/");

    let res = http.get(url("/console/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let etag = res.headers()[header::ETAG].clone();
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
    assert!(res.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let page = res.text().await.unwrap();
    let tag = page
        .split("app.js?v=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();

    let res = http
        .get(url(&format!("/console/app.js?v={tag}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(res.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let again = http
        .get(url("/console/"))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let res = http.get(url("/console/secrets.txt")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
