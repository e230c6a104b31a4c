//! The Python SDK (`sdk/python`, installed into `.run/sdk-venv` by `scripts/test`) against a
//! real fleet: each test starts two nodes in an env of its own and runs one pytest test of
//! `sdk/python/tests/test_sdk.py` against them.

use std::path::PathBuf;
use tasknode::auth::Role;
use tasknode::config::KindSettings;
use tasknode_testkit::TestEnv;

/// The kinds the pytest tests use, declared so that tasks may be submitted before their
/// workers connect.
const KINDS: &[&str] = &[
    "py-count",
    "py-kill",
    "py-big",
    "py-fail",
    "py-final",
    "py-cancel",
    "py-extend",
    "thumbnail",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn pytest(test: &str) {
    let env = TestEnv::new().await;
    for kind in KINDS {
        env.external(kind);
    }
    let settings = |s: &mut tasknode::config::Settings| {
        s.external.kinds = KINDS.iter().map(|k| k.to_string()).collect();
        s.tasks.retry_base_ms = 200;
        let kind = |timeout_secs, max_attempts, max_secs| KindSettings {
            timeout_secs,
            max_attempts,
            max_secs,
        };
        s.tasks
            .kinds
            .insert("py-fail".into(), kind(None, Some(2), None));
        s.tasks
            .kinds
            .insert("py-extend".into(), kind(Some(2), Some(1), Some(30)));
        s.tasks
            .kinds
            .insert("py-big".into(), kind(Some(600), None, None));
    };
    let a = env.spawn_node_with("a", settings).await;
    let b = env.spawn_node_with("b", settings).await;
    let worker = env
        .token("py-worker", Role::Worker, Default::default())
        .await;
    let repo = repo();
    // Where scripts/lib.sh keeps its run files: TASKNODE_RUN_DIR, else .run in the repository.
    let run_dir = std::env::var_os("TASKNODE_RUN_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo.join(".run"));
    let python = run_dir.join("sdk-venv/bin/python");
    assert!(
        python.exists(),
        "the Python SDK's tests need {}: run scripts/test (it makes it)",
        python.display()
    );
    let out = tokio::process::Command::new(&python)
        .args(["-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"])
        .arg(format!("tests/test_sdk.py::{test}"))
        .current_dir(repo.join("sdk/python"))
        .env("TASKNODE_SERVERS", format!("{},{}", a.addr, b.addr))
        .env("TASKNODE_TOKEN", &env.token)
        .env("TASKNODE_WORKER_TOKEN", &worker)
        .kill_on_drop(true)
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "pytest {test} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix_rt::test]
async fn a_thousand_tasks_over_four_worker_processes_each_run_exactly_once() {
    pytest("test_a_thousand_tasks_over_four_worker_processes_each_run_exactly_once").await;
}

#[actix_rt::test]
async fn a_worker_killed_mid_task_the_task_runs_again_elsewhere_once() {
    pytest("test_a_worker_killed_mid_task_the_task_runs_again_elsewhere_once").await;
}

#[actix_rt::test]
async fn a_handler_that_always_fails_makes_its_task_dead_after_its_attempts() {
    pytest("test_a_handler_that_always_fails_makes_its_task_dead_after_its_attempts").await;
}

#[actix_rt::test]
async fn a_final_failure_is_not_retried() {
    pytest("test_a_final_failure_is_not_retried").await;
}

#[actix_rt::test]
async fn cancel_reaches_the_running_handler_and_progress_shows_in_status() {
    pytest("test_cancel_reaches_the_running_handler_and_progress_shows_in_status").await;
}

#[actix_rt::test]
async fn extend_keeps_a_long_task_alive_past_its_first_deadline() {
    pytest("test_extend_keeps_a_long_task_alive_past_its_first_deadline").await;
}

#[actix_rt::test]
async fn a_hundred_megabyte_payload_and_result_stream_through_a_worker_of_bounded_memory() {
    pytest("test_a_hundred_megabyte_payload_and_result_stream_through_a_worker_of_bounded_memory")
        .await;
}

#[actix_rt::test]
async fn the_thumbnail_example_makes_jpeg_thumbnails_and_refuses_what_is_not_an_image() {
    pytest("test_the_thumbnail_example_makes_jpeg_thumbnails_and_refuses_what_is_not_an_image")
        .await;
}
