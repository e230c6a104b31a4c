//! The web console in a real browser: Debian's Chromium driven by playwright-core
//! (`console/tests/`, installed by `scripts/test`). Each test starts its nodes, prepares what
//! its scenario needs, and runs the scenario (`console/tests/scenarios.mjs`); a screenshot of
//! each ends up under `target/console/`.

use std::path::PathBuf;
use tasknode::auth::tokens::Limits;
use tasknode::auth::Role;
use tasknode_testkit::{connect_as, id_of, wait_final, Lines, TestEnv, TestNode};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run scenario `name` against `node`'s HTTP API with `vars` in its environment.
async fn scenario(name: &str, node: &TestNode, vars: &[(&str, &str)]) {
    let repo = repo();
    assert!(
        repo.join("console/tests/node_modules/playwright-core").is_dir()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the console's browser tests need Chromium and playwright-core: run scripts/test (it installs both)"
    );
    let out = tokio::process::Command::new("node")
        .arg("console/tests/run.mjs")
        .arg(name)
        .current_dir(&repo)
        .env("CONSOLE_URL", format!("http://{}", node.http))
        .env("SCREENSHOTS", repo.join("target/console"))
        .envs(vars.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .expect("node (Node.js) runs");
    assert!(
        out.status.success(),
        "scenario {name} failed (screenshot: target/console/{name}-failed.png):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix_rt::test]
async fn a_wrong_token_is_refused_and_an_admin_signs_in_to_the_overview() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    scenario("sign_in", &node, &[("ADMIN_TOKEN", &env.token)]).await;
}

#[actix_rt::test]
async fn a_typed_payload_is_submitted_and_its_result_arrives() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    scenario("submit_upper", &node, &[("ADMIN_TOKEN", &env.token)]).await;
}

#[actix_rt::test]
async fn a_dropped_twenty_megabyte_file_uploads_with_progress_and_gets_its_digest() {
    use sha2::Digest;
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let size = 20_000_000usize;
    let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    let size = size.to_string();
    let vars = [
        ("ADMIN_TOKEN", env.token.as_str()),
        ("FILE_BYTES", &size),
        ("EXPECTED_SHA256", &digest),
    ];
    scenario("drop_file", &node, &vars).await;
    // The node kept it in the bucket, not inline.
    let rows = env.rows().await;
    let row = rows
        .iter()
        .find(|r| r.kind == "sha256")
        .expect("a sha256 task");
    assert!(
        row.payload_key.is_some(),
        "a 20 MB payload goes to the bucket"
    );
    assert_eq!(row.payload_size as usize, bytes.len());
}

#[actix_rt::test]
async fn a_task_is_found_by_its_id() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let mut c = node.connect().await;
    let id = id_of(&c.ask("SUBMIT upper find me").await);
    wait_final(&mut c, id).await;
    let id = id.to_string();
    scenario(
        "find_task",
        &node,
        &[("ADMIN_TOKEN", &env.token), ("TASK_ID", &id)],
    )
    .await;
}

#[actix_rt::test]
async fn a_dead_task_retried_from_the_console_succeeds() {
    let env = TestEnv::new().await;
    // A node whose `sleep` dies at once: the task goes dead…
    let strict = env
        .spawn_node_with("strict", |s| tasknode_testkit::sleep_dies_fast(s, 1))
        .await;
    let mut c = strict.connect().await;
    let id = id_of(&c.ask("SUBMIT sleep 1500").await);
    let dead = wait_final(&mut c, id).await;
    assert_eq!(dead.status, protocol::TaskStatus::Dead, "{dead:?}");
    // …then the fleet is fixed (a node with the default timeout), and it is retried.
    strict.stop().await;
    let node = env.spawn_node("fixed").await;
    let id = id.to_string();
    scenario(
        "retry_dead",
        &node,
        &[("ADMIN_TOKEN", &env.token), ("TASK_ID", &id)],
    )
    .await;
    let row = env.row(id.parse().unwrap()).await.unwrap();
    assert_eq!(row.status, protocol::TaskStatus::Succeeded);
    assert_eq!(row.node.as_deref(), Some("fixed"));
}

#[actix_rt::test]
async fn the_overviews_throughput_moves_while_a_bench_runs() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let taskctl = repo().join("target/debug/taskctl");
    assert!(
        taskctl.exists(),
        "taskctl is built by `cargo test --workspace` (scripts/test)"
    );
    let _bench = tokio::process::Command::new(taskctl)
        .args([
            "bench",
            "--duration",
            "120",
            "--concurrency",
            "4",
            "--server",
        ])
        .arg(node.addr.to_string())
        .env("TASKCTL_TOKEN", &env.token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("taskctl bench starts");
    scenario("overview_moves", &node, &[("ADMIN_TOKEN", &env.token)]).await;
}

#[actix_rt::test]
async fn a_submit_token_sees_only_its_own_tasks_and_no_admin_pages() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let app = env.token("app", Role::Submit, Limits::default()).await;
    let mut mine = connect_as(node.addr, &app).await;
    let own = id_of(&mine.ask("SUBMIT upper mine").await).to_string();
    let mut admin = node.connect().await;
    let other = id_of(&admin.ask("SUBMIT upper not yours").await).to_string();
    let vars = [
        ("APP_TOKEN", app.as_str()),
        ("OWN_TASK", &own),
        ("OTHER_TASK", &other),
    ];
    scenario("submit_token", &node, &vars).await;
}

#[actix_rt::test]
async fn a_kind_is_paused_a_task_cancelled_and_the_kind_resumed_from_the_console() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    scenario("pause_and_cancel", &node, &[("ADMIN_TOKEN", &env.token)]).await;
    let rows = env.rows().await;
    let sleep = rows
        .iter()
        .find(|r| r.kind == "sleep")
        .expect("the sleep task");
    assert_eq!(sleep.status, protocol::TaskStatus::Cancelled, "{sleep:?}");
    assert_eq!(
        (sleep.key.as_deref(), sleep.priority),
        (Some("console-key-1"), 7)
    );
    assert!(sleep.started_at.is_none(), "it never ran: {sleep:?}");
}

#[actix_rt::test]
async fn connected_workers_and_a_tasks_progress_show_and_the_result_follows() {
    let env = TestEnv::new().await;
    let kind = env.external("render");
    let node = env.spawn_node("n1").await;
    let secret = env.token("painter", Role::Worker, Limits::default()).await;
    let mut w = connect_as(node.addr, &secret).await;
    w.ask(&format!("WORK {kind} slots=3")).await;
    let mut c = node.connect().await;
    let id = id_of(&c.ask(&format!("SUBMIT {kind} scene")).await);
    let task = w.hear().await;
    let lease = task["task"]["lease"].as_str().unwrap().to_string();
    let ok = w.ask(&format!("PROGRESS {lease} 60 halfway")).await;
    assert_eq!(ok["ok"], "progress", "{ok}");
    // The scenario says when to finish (once it has seen the progress) with a file.
    let dir = tempfile::tempdir().unwrap();
    let finish = dir.path().join("finish");
    let finish_str = finish.to_str().unwrap().to_string();
    let worker = actix_rt::spawn(async move {
        while !finish.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let done = w.ask(&format!("DONE {lease} ALL DONE")).await;
        assert_eq!(done["ok"], "done", "{done}");
        w
    });
    let id = id.to_string();
    let vars = [
        ("ADMIN_TOKEN", env.token.as_str()),
        ("TASK_ID", id.as_str()),
        ("KIND", kind),
        ("FINISH_FILE", finish_str.as_str()),
    ];
    scenario("workers_and_progress", &node, &vars).await;
    worker.await.unwrap();
}
