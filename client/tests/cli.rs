//! `taskctl` end to end: the real binary against real nodes (see `tasknode-testkit`).

#![allow(clippy::unwrap_used)] // a test's unwrap is its assertion

use sha2::Digest;
use std::path::PathBuf;
use std::process::Output;
use tasknode_testkit::TestEnv;

/// Run `taskctl` with `args` off the actix thread (the node under test runs on it).
async fn taskctl(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_taskctl"))
            .args(&args)
            .env_remove("TASKCTL_SERVER")
            .output()
            .expect("run taskctl")
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Run `taskctl --server <server> --token <the env's admin token> <rest>`.
async fn ctl(env: &TestEnv, server: &str, rest: &[&str]) -> Output {
    let mut all = vec!["--server", server, "--token", &env.token];
    all.extend_from_slice(rest);
    taskctl(args(&all)).await
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[actix_rt::test]
async fn submit_prints_the_result_and_json_on_request() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let server = node.addr.to_string();

    let o = ctl(&env, &server, &["submit", "upper", "hello world"]).await;
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "HELLO WORLD\n");

    // Several words are joined; the payload may hold characters the line protocol would not.
    let o = ctl(&env, &server, &["submit", "reverse", "a", "b\nc"]).await;
    assert_eq!(stdout(&o), "c\nb a\n");

    let o = ctl(&env, &server, &["--json", "submit", "upper", "hi"]).await;
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["result"], "HI");
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["node"], "n1");
}

#[actix_rt::test]
async fn async_submit_then_status_and_result() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let server = node.addr.to_string();
    let o = ctl(&env, &server, &["submit", "fib", "100", "--async"]).await;
    assert!(o.status.success(), "{o:?}");
    let id = stdout(&o).trim().to_string();
    assert_eq!(id.len(), 36, "prints the id: {id}");

    tasknode_testkit::poll_until("taskctl status shows the task succeeded", 30, async || {
        let o = ctl(&env, &server, &["status", &id]).await;
        stdout(&o).contains("status: succeeded").then_some(())
    })
    .await;
    let o = ctl(&env, &server, &["result", &id]).await;
    assert_eq!(stdout(&o), "354224848179261915075\n");
}

#[actix_rt::test]
async fn failures_exit_non_zero_with_a_message() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let server = node.addr.to_string();

    let o = ctl(&env, &server, &["submit", "nosuchkind", "x"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown kind"),
        "{o:?}"
    );

    let o = ctl(&env, &server, &["submit", "primes", "lots"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("failed"),
        "{o:?}"
    );

    let o = taskctl(args(&["--server", "127.0.0.1:1", "ping"])).await;
    assert_eq!(o.status.code(), Some(3), "unreachable: {o:?}");
}

#[actix_rt::test]
async fn falls_over_to_the_next_server() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let servers = format!("127.0.0.1:1,{}", node.addr);
    let o = taskctl(args(&[
        "--server", &servers, "--token", &env.token, "submit", "lower", "ABC",
    ]))
    .await;
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "abc\n");
}

#[actix_rt::test]
async fn file_payloads_stream_and_large_results_download() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let server = node.addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let input: PathBuf = dir.path().join("big.bin");
    let data: Vec<u8> = (0..9 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(&input, &data).unwrap();

    let o = ctl(
        &env,
        &server,
        &["submit", "sha256", "--file", input.to_str().unwrap()],
    )
    .await;
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o).trim(), hex::encode(sha2::Sha256::digest(&data)));

    // echo of a 9 MiB file: the result lives in the bucket and downloads to -o.
    let out = dir.path().join("echoed.bin");
    let o = ctl(
        &env,
        &server,
        &[
            "submit",
            "echo",
            "--file",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert!(o.status.success(), "{o:?}");
    assert!(
        std::fs::read(&out).unwrap() == data,
        "downloaded result matches"
    );
}

#[actix_rt::test]
async fn dead_and_retry_commands() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| {
            s.tasks.retry_base_ms = 50;
            tasknode_testkit::sleep_dies_fast(s, 1);
        })
        .await;
    let server = node.addr.to_string();
    let o = ctl(&env, &server, &["dead"]).await;
    assert_eq!(stdout(&o), "no dead tasks\n");
    let o = ctl(&env, &server, &["--json", "submit", "sleep", "3000"]).await;
    assert_eq!(o.status.code(), Some(1), "a dead task is a failure: {o:?}");
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["status"], "dead");

    let o = ctl(&env, &server, &["dead"]).await;
    assert!(
        stdout(&o).contains(&id) && stdout(&o).contains("timeout"),
        "{o:?}"
    );
    let o = ctl(&env, &server, &["retry", &id]).await;
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), format!("{id} queued again\n"));
    let o = ctl(&env, &server, &["retry", "not-an-id"]).await;
    assert_eq!(o.status.code(), Some(1));
}

#[actix_rt::test]
async fn bench_reports_what_it_ran_and_so_does_the_broker_baseline() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let server = node.addr.to_string();
    let o = ctl(
        &env,
        &server,
        &[
            "--json",
            "bench",
            "--kind",
            "reverse",
            "--payload-bytes",
            "32",
            "--concurrency",
            "4",
            "--total",
            "60",
        ],
    )
    .await;
    assert!(o.status.success(), "{o:?}");
    let r: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["completed"], 60, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["target"], "tasknode");
    let l = &r["latency_ms"];
    assert!(
        l["p50"].as_f64().unwrap() > 0.0 && l["p50"].as_f64() <= l["max"].as_f64(),
        "{r}"
    );

    // Through the HTTP API.
    let http = node.http.to_string();
    let o = ctl(
        &env,
        &http,
        &["--json", "bench", "--http", "-c", "4", "--total", "40"],
    )
    .await;
    assert!(o.status.success(), "{o:?}");
    let h: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (h["completed"].as_u64(), h["errors"].as_u64()),
        (Some(40), Some(0)),
        "{h}"
    );
    assert_eq!(h["target"], "tasknode-http");

    // Pipelined: 10 requests in flight on each of 3 connections (the last one carries 5);
    // every answer is matched to its request in order.
    let o = ctl(
        &env,
        &server,
        &[
            "--json",
            "bench",
            "--kind",
            "upper",
            "--concurrency",
            "25",
            "--pipeline",
            "10",
            "--total",
            "500",
        ],
    )
    .await;
    assert!(o.status.success(), "{o:?}");
    let p: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (p["completed"].clone(), p["errors"].clone()),
        (500.into(), 0.into()),
        "{p}"
    );
    assert_eq!(p["pipeline"], 10, "{p}");

    // The broker alone, on a classic queue and on a quorum queue (as the fleet's).
    for (queue_type, target) in [("classic", "broker"), ("quorum", "broker-quorum")] {
        let o = taskctl(args(&[
            "--json",
            "bench",
            "--broker-baseline",
            "--queue-type",
            queue_type,
            "--concurrency",
            "2",
            "--total",
            "20",
            "--amqp-url",
            &tasknode_testkit::amqp_url(),
        ]))
        .await;
        assert!(o.status.success(), "{o:?}");
        let b: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(
            (
                b["completed"].clone(),
                b["errors"].clone(),
                b["target"].clone()
            ),
            (20.into(), 0.into(), target.into()),
            "{b}"
        );
    }

    // A kind that does not exist is counted as errors, loudly, with a non-zero exit.
    let o = ctl(
        &env,
        &server,
        &[
            "bench",
            "--kind",
            "nosuch",
            "--concurrency",
            "1",
            "--total",
            "3",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("ERRORS"), "{o:?}");
}

#[actix_rt::test]
async fn tls_end_to_end_with_a_ca_file() {
    let env = TestEnv::new().await;
    let ca = tasknode_testkit::TestCa::new("taskctl");
    let node = env
        .spawn_node_with("n1", |s| {
            s.listener.tls_cert = Some(ca.cert());
            s.listener.tls_key = Some(ca.key());
        })
        .await;
    // By name, as the certificate says: localhost.
    let server = format!("localhost:{}", node.addr.port());
    let ca_file = ca.ca().display().to_string();

    let o = ctl(
        &env,
        &server,
        &["--tls", "--ca", &ca_file, "submit", "upper", "secret"],
    )
    .await;
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "SECRET\n");

    // A large payload and result both ways over TLS (PUT and a RESULT body).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    std::fs::write(&input, "ab".repeat(300_000)).unwrap();
    let (i, out) = (input.display().to_string(), output.display().to_string());
    let o = ctl(
        &env,
        &server,
        &[
            "--ca", &ca_file, "submit", "upper", "--file", &i, "-o", &out,
        ],
    )
    .await;
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        std::fs::read(&output).unwrap(),
        "AB".repeat(300_000).into_bytes()
    );

    // Without TLS the node says so; trusting only the system's roots, the handshake fails.
    let o = ctl(&env, &server, &["submit", "upper", "plain"]).await;
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("tls_required"),
        "{o:?}"
    );
    let o = ctl(&env, &server, &["--tls", "submit", "upper", "unknown ca"]).await;
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("certificate"),
        "{o:?}"
    );
}

#[actix_rt::test]
async fn an_admin_manages_tokens_through_taskctl() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let server = node.addr.to_string();
    let o = ctl(
        &env,
        &server,
        &[
            "token", "create", "app-7", "--role", "submit", "--rate", "50",
        ],
    )
    .await;
    assert!(o.status.success(), "{o:?}");
    let secret = stdout(&o).trim().to_string();
    assert!(secret.starts_with("tn_"), "the secret on stdout: {secret}");

    // The new token works at once, and may not manage tokens.
    let as_app = |rest: &[&str]| {
        let mut all = vec!["--server", &server, "--token", &secret];
        all.extend_from_slice(rest);
        taskctl(args(&all))
    };
    let o = as_app(&["submit", "upper", "made by an admin"]).await;
    assert_eq!(stdout(&o), "MADE BY AN ADMIN\n", "{o:?}");
    let o = as_app(&["token", "list"]).await;
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("forbidden"),
        "{o:?}"
    );

    // Listed (without its secret), taken names refused, then revoked.
    let o = ctl(&env, &server, &["token", "list"]).await;
    let list = stdout(&o);
    let line = list
        .lines()
        .find(|l| l.starts_with("app-7\t"))
        .expect("listed");
    assert!(line.starts_with("app-7\tsubmit\t-\t50\t-\t"), "{line}");
    assert!(!list.contains(&secret));
    let o = ctl(
        &env,
        &server,
        &["token", "create", "app-7", "--role", "read"],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("already_exists"),
        "{o:?}"
    );
    let o = ctl(
        &env,
        &server,
        &["token", "create", "bad name", "--role", "read"],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("malformed"),
        "{o:?}"
    );
    let o = ctl(&env, &server, &["token", "revoke", "app-7"]).await;
    assert!(o.status.success(), "{o:?}");
    let o = as_app(&["submit", "upper", "after"]).await;
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unauthenticated"),
        "{o:?}"
    );
    let o = ctl(&env, &server, &["--json", "token", "list"]).await;
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let app = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "app-7")
        .unwrap();
    assert!(app["revoked_at"].is_string(), "{app}");
}

#[actix_rt::test]
async fn keys_delays_cancel_pause_and_schedules_through_taskctl() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let server = node.addr.to_string();
    let submit = ["submit", "upper", "--async", "--key", "order-17", "hello"];
    let first = stdout(&ctl(&env, &server, &submit).await);
    let again = stdout(&ctl(&env, &server, &submit).await);
    assert_eq!((first.len(), &first), (37, &again), "one task for one key");
    let o = ctl(
        &env,
        &server,
        &["submit", "upper", "--async", "--key", "order-17", "bye"],
    )
    .await;
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("key_conflict"),
        "{o:?}"
    );

    let o = ctl(
        &env,
        &server,
        &[
            "--json",
            "submit",
            "echo",
            "--async",
            "--in",
            "10m",
            "--priority",
            "8",
            "later",
        ],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (&v["status"], &v["priority"]),
        (&"scheduled".into(), &8.into()),
        "{v}"
    );
    let id = v["id"].as_str().unwrap();
    let o = ctl(&env, &server, &["cancel", id]).await;
    assert_eq!(stdout(&o), format!("{id} cancelled\n"));
    let o = ctl(&env, &server, &["submit", "echo", "--in", "soon", "x"]).await;
    assert!(!o.status.success(), "a bad delay is refused: {o:?}");

    let o = ctl(&env, &server, &["pause", "kind", "sleep"]).await;
    assert_eq!(stdout(&o), "paused: kind:sleep\n");
    let o = ctl(&env, &server, &["resume", "kind", "sleep"]).await;
    assert_eq!(stdout(&o), "nothing is paused\n");

    let add = [
        "schedule",
        "add",
        "nightly",
        "0 30 3 * * *",
        "gzip",
        "report",
        "--tz",
        "Europe/Madrid",
    ];
    let o = ctl(&env, &server, &add).await;
    assert!(
        stdout(&o).starts_with("schedule `nightly` added; next run "),
        "{o:?}"
    );
    let o = ctl(&env, &server, &["schedule", "list"]).await;
    assert!(
        stdout(&o).contains("nightly\t0 30 3 * * *\tEurope/Madrid\tgzip report"),
        "{o:?}"
    );
    let o = ctl(&env, &server, &["schedule", "remove", "nightly"]).await;
    assert_eq!(stdout(&o), "schedule `nightly` removed\n");
}

/// `taskctl work` as a process, until killed.
fn work(server: &str, token: &str, rest: &[&str]) -> std::process::Child {
    let mut all = vec!["--server", server, "--token", token, "work"];
    all.extend_from_slice(rest);
    std::process::Command::new(env!("CARGO_BIN_EXE_taskctl"))
        .args(&all)
        .env_remove("TASKCTL_SERVER")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run taskctl work")
}

#[actix_rt::test]
async fn work_runs_a_shell_command_per_task_and_its_exit_status_is_the_outcome() {
    let env = TestEnv::new().await;
    let kind = env.external("shout");
    let node = env
        .spawn_node_with("n1", |s| {
            s.external.kinds = vec!["shout".into()];
            s.tasks.retry_base_ms = 100;
            let limits = tasknode::config::KindSettings {
                max_attempts: Some(2),
                ..Default::default()
            };
            s.tasks.kinds.insert("shout".into(), limits);
        })
        .await;
    let server = node.addr.to_string();
    let worker = env
        .token("sh", tasknode::auth::Role::Worker, Default::default())
        .await;
    // Upper-cases its input; fails (retryably) on "oops", finally on "bad".
    let script = r#"input=$(cat); case "$input" in oops) echo "it went wrong" >&2; exit 1;; bad) echo "not for me" >&2; exit 65;; esac; printf '%s' "$input" | tr a-z A-Z"#;
    let mut child = work(
        &server,
        &worker,
        &[kind, "-c", "2", "--", "sh", "-c", script],
    );
    let o = ctl(&env, &server, &["submit", kind, "hello from a shell"]).await;
    let ok = stdout(&o);
    let oops = ctl(&env, &server, &["--json", "submit", kind, "oops"]).await;
    let bad = ctl(&env, &server, &["--json", "submit", kind, "bad"]).await;
    // A large payload comes as raw bytes and a large result goes back as a PUT body.
    let big = "x".repeat(3 * 1024 * 1024);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &big).unwrap();
    let path = file.path().display().to_string();
    let out = tempfile::NamedTempFile::new().unwrap();
    let out_path = out.path().display().to_string();
    let large = ctl(
        &env,
        &server,
        &["submit", kind, "--file", &path, "-o", &out_path],
    )
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(ok, "HELLO FROM A SHELL\n");
    let oops: serde_json::Value = serde_json::from_str(&stdout(&oops)).unwrap();
    assert_eq!(oops["status"], "dead", "{oops}");
    assert_eq!(oops["attempts"], 2);
    assert!(
        oops["message"].as_str().unwrap().contains("it went wrong"),
        "{oops}"
    );
    let bad: serde_json::Value = serde_json::from_str(&stdout(&bad)).unwrap();
    assert_eq!(
        (&bad["status"], &bad["attempts"]),
        (&"failed".into(), &1.into()),
        "{bad}"
    );
    assert_eq!(bad["message"], "not for me");
    assert!(large.status.success(), "{large:?}");
    assert_eq!(
        std::fs::read(out.path()).unwrap(),
        big.to_uppercase().as_bytes()
    );
}
