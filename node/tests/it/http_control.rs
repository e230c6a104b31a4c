//! Control over work over HTTP: the `Idempotency-Key` header, delayed and prioritized raw
//! submissions, cancel, pause and resume, schedules.

use crate::api::Api;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tasknode_testkit::{poll_until, TestEnv};

#[actix_rt::test]
async fn keys_delays_cancel_pause_and_schedules_over_http() {
    let env = TestEnv::new().await;
    let a = env.spawn_node("a").await;
    let api = Api::of(&a, &env.token);
    // The same Idempotency-Key twice: one task.
    let submit = || {
        api.req(Method::POST, "/v1/tasks")
            .header("Idempotency-Key", "invoice-9")
            .json(&json!({"kind": "upper", "payload": "nine"}))
    };
    let (status, first) = api.send(submit()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (_, second) = api.send(submit()).await;
    assert_eq!(first["id"], second["id"], "{first} {second}");
    let conflict = api
        .req(Method::POST, "/v1/tasks")
        .header("Idempotency-Key", "invoice-9")
        .json(&json!({"kind": "upper", "payload": "ten"}));
    let (status, body) = api.send(conflict).await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("key_conflict"))
    );
    // A raw body for later, at priority 7, then cancelled.
    let raw = api
        .req(Method::POST, "/v1/tasks/echo?delay_ms=60000&priority=7")
        .body("raw later");
    let (status, later) = api.send(raw).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{later}");
    assert_eq!(
        (&later["status"], &later["priority"]),
        (&json!("scheduled"), &json!(7))
    );
    let id = later["id"].as_str().unwrap();
    let (status, cancelled) = api.post(&format!("/v1/tasks/{id}/cancel"), json!({})).await;
    assert_eq!(
        (status, &cancelled["status"]),
        (StatusCode::OK, &json!("cancelled"))
    );
    let (status, again) = api.post(&format!("/v1/tasks/{id}/cancel"), json!({})).await;
    assert_eq!(
        (status, &again["error"]),
        (StatusCode::CONFLICT, &json!("not_cancellable"))
    );
    // Pause and resume a lane.
    let (status, paused) = api.send(api.req(Method::PUT, "/v1/paused/lane/slow")).await;
    assert_eq!(
        (status, &paused["paused"]),
        (StatusCode::OK, &json!(["lane:slow"]))
    );
    let (status, _) = api
        .send(api.req(Method::PUT, "/v1/paused/lane/nosuch"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, resumed) = api.delete("/v1/paused/lane/slow").await;
    assert_eq!(resumed["paused"], json!([]));
    // A schedule: added, listed, its task made, removed.
    let (status, added) = api
        .post(
            "/v1/schedules",
            json!({"name": "tick", "cron": "* * * * * *", "tz": "Europe/Madrid", "kind": "echo", "payload": "tock"}),
        )
        .await;
    assert_eq!(
        (status, &added["tz"]),
        (StatusCode::OK, &json!("Europe/Madrid")),
        "{added}"
    );
    let (_, list) = api.get("/v1/schedules").await;
    assert_eq!(list["schedules"][0]["name"], "tick", "{list}");
    poll_until("the schedule makes a task", 10, async || {
        let (_, list) = api.get("/v1/schedules").await;
        list["schedules"][0]["last_task"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    let (status, gone) = api.delete("/v1/schedules/tick").await;
    assert_eq!((status, &gone["removed"]), (StatusCode::OK, &json!("tick")));
    let (_, list) = api.get("/v1/schedules").await;
    assert_eq!(list["schedules"], json!([]));
}
