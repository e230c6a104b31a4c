//! Who may use a node: tokens, roles, and owners who cannot see each other's tasks.

use protocol::TaskStatus;
use tasknode::auth::{tokens::Limits, Role};
use tasknode_testkit::{connect, connect_as, id_of, poll_until, wait_final, Lines, TestEnv};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_tasknode");

/// Run `tasknode token …` against the env's database, as an operator would.
fn token_cli(env: &TestEnv, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("token")
        .args(args)
        .env("TASKNODE__DATABASE__URL", &env.database_url)
        .output()
        .expect("run tasknode token")
}

#[actix_rt::test]
async fn before_auth_only_ping_help_and_quit_are_served() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let mut c = connect(node.addr).await;
    for line in [
        "upper hi",
        "SUBMIT upper hi",
        "KINDS",
        "DEAD",
        &format!("STATUS {}", Uuid::now_v7()),
    ] {
        let r = c.ask(line).await;
        assert_eq!(r["error"], "unauthenticated", "{line}: {r}");
    }
    assert!(c.ask("HELP").await["help"].is_array());
    let pong = c.ask("PING").await;
    assert_eq!(
        pong,
        serde_json::json!({"pong": true, "healthy": true}),
        "nothing more"
    );
    // A PUT is refused without reading its body, and the connection closed.
    c.say("PUT upper 5").await;
    assert_eq!(c.hear().await["error"], "unauthenticated");
    assert!(c.closed().await, "closed: its body is not read");
    // Wrong tokens are refused, ever more slowly, and the fifth closes the connection.
    let mut c = connect(node.addr).await;
    for i in 1..=5 {
        let r = c.ask("AUTH tn_not-a-token").await;
        assert_eq!(r["error"], "unauthenticated", "try {i}: {r}");
    }
    assert!(c.closed().await, "closed after five failed AUTHs");
    // The right one works, and then everything does.
    let mut c = connect(node.addr).await;
    let r = c.ask(&format!("AUTH {}", env.token)).await;
    assert_eq!(r["auth"], "ok", "{r}");
    assert_eq!(r["role"], "admin", "{r}");
    assert_eq!(c.ask("upper hi").await["result"], "HI");
}

#[actix_rt::test]
async fn a_token_made_and_revoked_with_the_cli_works_at_once_then_is_refused_on_every_node() {
    let env = TestEnv::new().await;
    let n1 = env.spawn_node("n1").await;
    let n3 = env.spawn_node("n3").await;
    let made = token_cli(&env, &["create", "--name", "alice", "--role", "submit"]);
    assert!(made.status.success(), "{made:?}");
    let secret = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(secret.starts_with("tn_"), "{secret}");
    let list = String::from_utf8(token_cli(&env, &["list"]).stdout).unwrap();
    assert!(list.contains("alice\tsubmit"), "{list}");
    assert!(!list.contains(&secret), "list never shows a secret: {list}");

    let mut on1 = connect_as(n1.addr, &secret).await;
    let mut on3 = connect_as(n3.addr, &secret).await;
    assert_eq!(on1.ask("upper a").await["result"], "A");
    assert_eq!(on3.ask("upper b").await["result"], "B");
    let revoked = token_cli(&env, &["revoke", "alice"]);
    assert!(revoked.status.success(), "{revoked:?}");
    poll_until("node 3 refuses the revoked token", 2, async || {
        let r = on3.ask("upper c").await;
        (r["error"] == "unauthenticated").then_some(())
    })
    .await;
    let mut again = connect(n1.addr).await;
    let r = again.ask(&format!("AUTH {secret}")).await;
    assert_eq!(r["error"], "unauthenticated", "{r}");
}

#[actix_rt::test]
async fn owners_cannot_see_each_others_tasks_and_admins_see_all() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| {
            tasknode_testkit::sleep_dies_fast(s, 1);
        })
        .await;
    let alice = env.token("alice", Role::Submit, Limits::default()).await;
    let bob = env.token("bob", Role::Submit, Limits::default()).await;
    let reader = env.token("reader", Role::Read, Limits::default()).await;
    let mut a = connect_as(node.addr, &alice).await;
    let mut b = connect_as(node.addr, &bob).await;
    let mut admin = node.connect().await;

    let done = id_of(&a.ask("SUBMIT upper mine").await);
    let dead = id_of(&a.ask("SUBMIT sleep 5000").await);
    assert_eq!(wait_final(&mut a, dead).await.status, TaskStatus::Dead);
    wait_final(&mut a, done).await;
    assert_eq!(a.ask(&format!("RESULT {done}")).await["result"], "MINE");

    // Bob gets what he would for an id that does not exist: same code, same message shape.
    let unknown = Uuid::now_v7();
    for (cmd, id) in [("STATUS", done), ("RESULT", done), ("RETRY", dead)] {
        let theirs = b.ask(&format!("{cmd} {id}")).await;
        let nothing = b.ask(&format!("{cmd} {unknown}")).await;
        assert_eq!(theirs["error"], "not_found", "{cmd}: {theirs}");
        assert_eq!(
            theirs["message"]
                .as_str()
                .unwrap()
                .replace(&id.to_string(), "ID"),
            nothing["message"]
                .as_str()
                .unwrap()
                .replace(&unknown.to_string(), "ID"),
        );
    }
    let listed = b.ask("DEAD").await;
    assert_eq!(listed["dead"], serde_json::json!([]), "{listed}");
    let listed = a.ask("DEAD").await;
    assert_eq!(listed["dead"][0]["id"], dead.to_string(), "{listed}");
    // The admin sees and acts on everyone's.
    assert_eq!(admin.ask(&format!("RESULT {done}")).await["result"], "MINE");
    let listed = admin.ask("DEAD").await;
    assert_eq!(listed["dead"][0]["id"], dead.to_string(), "{listed}");
    assert_eq!(
        admin.ask(&format!("RETRY {dead}")).await["status"],
        "queued"
    );
    // A read token reads (its own, so nothing here) but cannot submit.
    let mut r = connect_as(node.addr, &reader).await;
    assert_eq!(r.ask("upper x").await["error"], "forbidden");
    assert_eq!(r.ask(&format!("STATUS {done}")).await["error"], "not_found");
}

#[actix_rt::test]
async fn an_open_node_refuses_to_start_on_a_network_address() {
    let env = TestEnv::new().await;
    let mut settings = env.settings("open");
    settings.auth.mode = tasknode::auth::Mode::Open;
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let refused = tasknode::startup::Node::build(settings.clone(), listener).await;
    let why = refused.err().expect("refused").to_string();
    assert!(why.contains("not a loopback address"), "{why}");
    // On loopback it starts, and serves without tokens.
    let open = env
        .spawn_node_with("open", |s| s.auth.mode = tasknode::auth::Mode::Open)
        .await;
    let mut c = connect(open.addr).await;
    assert_eq!(c.ask("upper open").await["result"], "OPEN");
}

#[actix_rt::test]
async fn rate_and_payload_limits_are_answered_and_submissions_go_through_again_after() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let limits = Limits {
        rate: Some(2.0),
        max_payload: Some(10),
        max_inflight: None,
        max_schedules: None,
    };
    let limited = env.token("limited", Role::Submit, limits).await;
    let mut c = connect_as(node.addr, &limited).await;
    // Over max_payload, on a line and on a PUT (its body is read and dropped): nothing accepted.
    let r = c.ask("SUBMIT upper 0123456789X").await;
    assert_eq!(r["error"], "quota_exceeded", "{r}");
    c.say("PUT upper 11 ASYNC").await;
    c.say_raw(b"0123456789X").await;
    assert_eq!(c.hear().await["error"], "quota_exceeded");
    // Two a second: a burst of two, then the third is told when to come back.
    assert_eq!(c.ask("SUBMIT upper a").await["status"], "queued");
    assert_eq!(c.ask("SUBMIT upper b").await["status"], "queued");
    let r = c.ask("SUBMIT upper c").await;
    assert_eq!(r["error"], "rate_limited", "{r}");
    let after = r["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!((1..=500).contains(&after), "{r}");
    poll_until("submissions are taken again", 5, async || {
        let r = c.ask("SUBMIT upper c").await;
        (r["status"] == "queued").then_some(())
    })
    .await;
    assert_eq!(
        env.rows().await.len(),
        3,
        "only the accepted submissions made tasks"
    );
    // Another token is not slowed by this one's limit.
    let mut admin = node.connect().await;
    for i in 0..5 {
        assert_eq!(
            admin.ask(&format!("SUBMIT upper {i}")).await["status"],
            "queued"
        );
    }
}

#[actix_rt::test]
async fn a_token_past_its_max_inflight_is_refused_until_its_tasks_end() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let limits = Limits {
        max_inflight: Some(2),
        ..Limits::default()
    };
    let busy = env.token("busy", Role::Submit, limits).await;
    let mut c = connect_as(node.addr, &busy).await;
    let first = id_of(&c.ask("SUBMIT sleep 1500").await);
    let second = id_of(&c.ask("SUBMIT sleep 1500").await);
    let r = c.ask("upper one more").await;
    assert_eq!(r["error"], "quota_exceeded", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("max_inflight"),
        "{r}"
    );
    wait_final(&mut c, first).await;
    wait_final(&mut c, second).await;
    assert_eq!(c.ask("upper one more").await["result"], "ONE MORE");
}

#[actix_rt::test]
async fn no_token_or_payload_reaches_the_log() {
    let env = TestEnv::new().await;
    let mut node = env
        .spawn_process(std::path::Path::new(BIN), "quiet", &[])
        .await;
    let marker = format!("payload-{}", Uuid::now_v7().simple());
    let guess = format!("tn_guess{}", Uuid::now_v7().simple());
    let mut c = connect(node.addr).await;
    assert_eq!(
        c.ask(&format!("AUTH {guess}")).await["error"],
        "unauthenticated"
    );
    assert_eq!(c.ask(&format!("AUTH {}", env.token)).await["auth"], "ok");
    let r = c.ask(&format!("upper {marker}")).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    let r = c
        .ask(&format!(r#"{{"kind":"fib","payload":"{marker}"}}"#))
        .await;
    assert_eq!(r["status"], "failed", "{r}");
    node.signal("TERM");
    node.wait_exit(std::time::Duration::from_secs(20)).await;
    let log = std::fs::read_to_string(&node.log).unwrap();
    assert!(log.contains("node ready"), "the log was written: {log}");
    for secret in [&env.token, &guess, &marker, &marker.to_uppercase()] {
        assert!(
            !log.contains(secret.as_str()),
            "`{secret}` is in the log:\n{log}"
        );
    }
}

/// Read `res`'s body to its end; `None` if it does not end within `secs`.
async fn body_ends(res: reqwest::Response, secs: u64) -> Option<String> {
    let within = std::time::Duration::from_secs(secs);
    tokio::time::timeout(within, res.text()).await.ok()?.ok()
}

#[actix_rt::test]
async fn streams_and_long_polls_end_when_their_token_is_revoked_or_their_time_is_up() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n", |s| s.http.max_stream_secs = 3)
        .await;
    let sub = env.token("sub", Role::Submit, Limits::default()).await;
    // A task for an hour from now: its stream would have nothing to say until then.
    let mut c = connect_as(node.addr, &sub).await;
    let later = protocol::SubmitOptions {
        delay_ms: Some(3_600_000),
        ..Default::default()
    };
    let id = c
        .submit_with("upper", b"later", false, later)
        .await
        .unwrap()
        .id;
    let http = reqwest::Client::new();
    let base = format!("http://{}/v1/tasks/{id}", node.http);
    let stream = http
        .get(format!("{base}/events"))
        .bearer_auth(&sub)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), reqwest::StatusCode::OK);
    let poll = {
        let (http, url, sub) = (http.clone(), format!("{base}?wait=60"), sub.clone());
        tokio::spawn(async move { http.get(url).bearer_auth(sub).send().await.unwrap() })
    };
    // An admin's stream of it, never revoked: it ends when its time is up.
    let admin = http
        .get(format!("{base}/events"))
        .bearer_auth(&env.token)
        .send()
        .await
        .unwrap();
    env.revoke("sub").await;
    let said = body_ends(stream, 10)
        .await
        .expect("the revoked stream ends");
    assert!(said.contains("\"status\":\"scheduled\""), "{said}");
    let polled = tokio::time::timeout(std::time::Duration::from_secs(10), poll)
        .await
        .expect("the revoked long poll ends")
        .unwrap();
    assert_eq!(polled.status(), reqwest::StatusCode::UNAUTHORIZED);
    let said = body_ends(admin, 15)
        .await
        .expect("a stream ends after its time");
    assert!(said.contains("\"status\":\"scheduled\""), "{said}");
}
