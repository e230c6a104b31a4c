//! `/metrics`, read with a Prometheus text parser: counters move as tasks run.

use prometheus_parse::{Scrape, Value};
use tasknode::auth::{tokens::Limits, Role};
use tasknode_testkit::{Lines, TestEnv, TestNode};

async fn scrape(node: &TestNode, token: &str) -> (reqwest::StatusCode, Option<Scrape>) {
    let res = reqwest::Client::new()
        .get(format!("http://{}/metrics", node.http))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    (status, Scrape::parse(lines).ok())
}

/// The value of `name` whose labels include `labels`, if any.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(h) => h.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => f64::NAN,
        })
}

#[actix_rt::test]
async fn counters_move_as_tasks_run() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let (status, before) = scrape(&node, &env.token).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let before = before.expect("parses as Prometheus text");
    let accepted = |s: &Scrape| {
        value(
            s,
            "tasknode_tasks_accepted_total",
            &[("kind", "upper"), ("lane", "quick")],
        )
        .unwrap_or(0.0)
    };
    let finished = |s: &Scrape, outcome: &str| {
        value(
            s,
            "tasknode_tasks_finished_total",
            &[("kind", "fib"), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(accepted(&before), 0.0);

    let mut c = node.connect().await;
    for i in 0..5 {
        assert_eq!(c.ask(&format!("upper m{i}")).await["status"], "succeeded");
    }
    assert_eq!(c.ask("fib 10").await["status"], "succeeded");
    assert_eq!(c.ask("fib x").await["status"], "failed");
    let _ = c.ask("AUTH tn_wrong").await;

    let (_, after) = scrape(&node, &env.token).await;
    let after = after.unwrap();
    assert_eq!(accepted(&after), 5.0, "five upper tasks accepted");
    assert_eq!(finished(&after, "succeeded"), 1.0);
    assert_eq!(finished(&after, "failed"), 1.0);
    let runs = value(
        &after,
        "tasknode_task_run_seconds_count",
        &[("kind", "upper")],
    );
    assert_eq!(runs, Some(5.0), "a run time observed per task");
    assert_eq!(
        value(
            &after,
            "tasknode_auth_failures_total",
            &[("protocol", "line")]
        ),
        Some(1.0)
    );
    for dependency in ["rabbitmq", "postgresql", "object_store"] {
        assert_eq!(
            value(
                &after,
                "tasknode_dependency_up",
                &[("dependency", dependency)]
            ),
            Some(1.0),
            "{dependency}"
        );
    }
    assert_eq!(
        value(&after, "tasknode_open_connections", &[("protocol", "line")]),
        Some(1.0),
        "this test's connection"
    );
    assert!(
        value(&after, "tasknode_open_connections", &[("protocol", "http")]) >= Some(1.0),
        "the scrape's own connection"
    );
    assert!(value(&after, "tasknode_queue_depth", &[("lane", "slow")]).is_some());
    assert!(value(&after, "tasknode_write_batch_size_count", &[]).unwrap() >= 1.0);

    // Not for everyone: a submit token is refused.
    let app = env.token("app", Role::Submit, Limits::default()).await;
    let (status, _) = scrape(&node, &app).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
}
