//! Workers over HTTP: `POST /v1/work` long-polls for leased tasks, and a report on a lease
//! may reach any node (the node holding the lease does it).

use crate::api::Api;
use futures_util::StreamExt;
use protocol::TaskStatus;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tasknode::auth::Role;
use tasknode_testkit::{connect_as, id_of, wait_final, Lines, TestEnv};

/// The one task of a poll's answer.
fn one_task(status: StatusCode, answer: &Value) -> Value {
    assert_eq!(status, StatusCode::OK, "{answer}");
    let tasks = answer["tasks"].as_array().expect("a list of tasks");
    assert_eq!(tasks.len(), 1, "{answer}");
    tasks[0].clone()
}

#[actix_rt::test]
async fn an_http_worker_polls_on_one_node_and_reports_on_another() {
    let env = TestEnv::new().await;
    let kind = env.external("pixels");
    let small = |s: &mut tasknode::config::Settings| s.storage.inline_limit = 1024;
    let a = env.spawn_node_with("a", small).await;
    let b = env.spawn_node_with("b", small).await;
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let (at_a, at_b) = (Api::of(&a, &secret), Api::of(&b, &secret));

    // Nothing to do yet: an empty answer (and the kind is registered by asking).
    let ask = json!({"kinds": [kind], "max": 4, "wait": 0});
    let (status, none) = at_a.post("/v1/work", ask).await;
    assert_eq!(status, StatusCode::OK, "{none}");
    assert_eq!(none["tasks"], json!([]));

    let mut c = connect_as(b.addr, &env.token).await;
    let id = id_of(&c.ask(&format!("SUBMIT {kind} photo.png")).await);
    let ask = json!({"kinds": [kind], "max": 4, "wait": 20});
    let (status, answer) = at_a.post("/v1/work", ask).await;
    let task = one_task(status, &answer);
    assert_eq!(task["id"], id.to_string());
    assert_eq!(task["payload"], "photo.png");
    assert_eq!(task["attempt"], 1);
    let lease = task["lease"].as_str().unwrap().to_string();
    let submitter = Api::of(&a, &env.token);
    let mut events = submitter
        .req(Method::GET, &format!("/v1/tasks/{id}/events"))
        .send()
        .await
        .unwrap()
        .bytes_stream();

    // Reports to the other node reach the node that holds the lease.
    let (status, ok) = at_b
        .post(
            &format!("/v1/work/{lease}/progress"),
            json!({"percent": 40, "note": "scaling"}),
        )
        .await;
    assert_eq!(
        (status, &ok["ok"]),
        (StatusCode::OK, &json!("progress")),
        "{ok}"
    );
    let view = c.ask(&format!("STATUS {id}")).await;
    assert_eq!(view["progress"], 40, "{view}");
    assert_eq!(view["progress_note"], "scaling", "{view}");
    // The task's event stream tells the progress as it comes.
    let mut text = String::new();
    while !text.contains(r#""progress":40"#) {
        let chunk = events.next().await.expect("the stream goes on").unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(r#""status":"running""#), "{text}");
    let (status, ok) = at_b
        .post(&format!("/v1/work/{lease}/extend"), json!({"secs": 60}))
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    assert!(ok["deadline"].is_string(), "{ok}");

    // A result past the inline limit, as a raw body, through the other node.
    let result: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let done = at_b
        .req(Method::POST, &format!("/v1/work/{lease}/done"))
        .body(result.clone());
    let (status, ok) = at_b.send(done).await;
    assert_eq!(
        (status, &ok["ok"]),
        (StatusCode::OK, &json!("done")),
        "{ok}"
    );
    let view = wait_final(&mut c, id).await;
    assert_eq!(view.status, TaskStatus::Succeeded, "{view:?}");
    let got = submitter
        .req(Method::GET, &format!("/v1/tasks/{id}/result"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().to_vec(), result);
    // The lease is spent: on either node a second answer changes nothing.
    for api in [&at_a, &at_b] {
        let (status, lost) = api
            .post(
                &format!("/v1/work/{lease}/fail"),
                json!({"message": "late", "final": true}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{lost}");
        assert_eq!(lost["error"], "lease_lost", "{lost}");
    }
    assert_eq!(
        wait_final(&mut c, id).await.status,
        TaskStatus::Succeeded,
        "the first answer stands"
    );
}

#[actix_rt::test]
async fn a_poll_takes_at_most_max_and_a_fail_over_http_retries_then_fails() {
    let env = TestEnv::new().await;
    let kind = env.external("batch");
    let a = env
        .spawn_node_with("a", |s| {
            s.tasks.retry_base_ms = 100;
            s.external.kinds = vec!["batch".into()];
        })
        .await;
    let secret = env.token("w", Role::Worker, Default::default()).await;
    let api = Api::of(&a, &secret);
    let mut c = connect_as(a.addr, &env.token).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(id_of(&c.ask(&format!("SUBMIT {kind} job-{n}")).await));
    }
    let ask = json!({"kinds": [kind], "max": 2, "wait": 20});
    let (status, first) = api.post("/v1/work", ask.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first = first["tasks"].as_array().unwrap().clone();
    assert!(
        (1..=2).contains(&first.len()),
        "at most max tasks: {first:?}"
    );
    // Every task comes, once, over the polls that follow.
    let mut seen: Vec<Value> = first.clone();
    while seen.len() < 3 {
        let (status, more) = api.post("/v1/work", ask.clone()).await;
        assert_eq!(status, StatusCode::OK, "{more}");
        seen.extend(more["tasks"].as_array().unwrap().iter().cloned());
    }
    let mut got: Vec<String> = seen
        .iter()
        .map(|t| t["id"].as_str().unwrap().into())
        .collect();
    got.sort();
    let mut want: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "each task once");
    assert!(
        seen.iter().all(|t| t["attempt"] == 1),
        "no task was counted twice: {seen:?}"
    );
    // A retryable FAIL: the task comes back (attempt 2); a final one ends it.
    let retried = seen[0]["id"].as_str().unwrap().to_string();
    let lease = seen[0]["lease"].as_str().unwrap();
    let (status, ok) = api
        .post(
            &format!("/v1/work/{lease}/fail"),
            json!({"message": "disk full"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let (status, again) = api.post("/v1/work", ask.clone()).await;
    let task = one_task(status, &again);
    assert_eq!(
        (task["id"].as_str().unwrap(), &task["attempt"]),
        (retried.as_str(), &json!(2))
    );
    let lease = task["lease"].as_str().unwrap();
    let fail = json!({"message": "no such image", "final": true});
    api.post(&format!("/v1/work/{lease}/fail"), fail).await;
    let failed = wait_final(&mut c, retried.parse().unwrap()).await;
    assert_eq!(failed.status, TaskStatus::Failed, "{failed:?}");
    assert_eq!(failed.message.as_deref(), Some("no such image"));
}

#[actix_rt::test]
async fn bad_polls_and_reports_are_refused_clearly() {
    let env = TestEnv::new().await;
    let a = env.spawn_node("a").await;
    let worker = env.token("w", Role::Worker, Default::default()).await;
    let submitter = env.token("s", Role::Submit, Default::default()).await;
    let api = Api::of(&a, &worker);
    for (body, why) in [
        (json!({"kinds": ["ok"], "max": 0}), "max"),
        (json!({"kinds": ["ok"], "max": 257}), "max"),
        (json!({"kinds": ["ok"], "wait": 31}), "wait"),
        (json!({"kinds": []}), "kinds"),
        (json!({"kinds": ["Not A Kind!"]}), "kind name"),
        (json!({"kinds": ["upper"]}), "built into the node"),
        (json!({"kinds": ["ok"], "slots": 2}), "unknown field"),
    ] {
        let (status, e) = api.post("/v1/work", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {e}");
        assert!(e["message"].as_str().unwrap().contains(why), "{body}: {e}");
    }
    let (status, e) = Api::of(&a, &submitter)
        .post("/v1/work", json!({"kinds": ["ok"]}))
        .await;
    assert_eq!(
        (status, &e["error"]),
        (StatusCode::FORBIDDEN, &json!("forbidden")),
        "{e}"
    );
    let (status, e) = api
        .post(
            "/v1/work/0123456789abcdef/progress",
            json!({"percent": 101}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let (status, e) = api
        .post("/v1/work/0123456789abcdef/extend", json!({"secs": 5}))
        .await;
    assert_eq!(
        (status, &e["error"]),
        (StatusCode::CONFLICT, &json!("lease_lost")),
        "{e}"
    );
}
