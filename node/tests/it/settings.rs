//! Settings a node refuses, or keeps to itself: an open node on a network address of either
//! front end, keys that would outlive their tasks, passwords in database URLs.

use tasknode::config::Settings;
use tasknode_testkit::TestEnv;

#[actix_rt::test]
async fn an_open_node_refuses_an_http_api_on_a_network_address() {
    let env = TestEnv::new().await;
    let refused = env
        .try_spawn_node_with("open", |s| {
            s.auth.mode = tasknode::auth::Mode::Open;
            s.http.address = "0.0.0.0:0".into();
        })
        .await;
    let why = refused.err().expect("refused").to_string();
    assert!(
        why.contains("not a loopback address") && why.contains("0.0.0.0"),
        "{why}"
    );
    // Allowed on purpose, it starts.
    let allowed = env
        .try_spawn_node_with("allowed", |s| {
            s.auth.mode = tasknode::auth::Mode::Open;
            s.auth.allow_open_network = true;
            s.http.address = "0.0.0.0:0".into();
        })
        .await;
    assert!(allowed.is_ok(), "{:?}", allowed.err());
}

#[test]
fn keys_kept_longer_than_their_tasks_are_refused() {
    let text = "[keys]\nretention_secs = 864000\n[retention]\ndays = 7\n";
    let why = Settings::from_toml(text).expect_err("refused").to_string();
    assert!(
        why.contains("keys.retention_secs") && why.contains("retention.days"),
        "{why}"
    );
    // Within the days kept, or with every task kept, it is fine.
    assert!(
        Settings::from_toml("[keys]\nretention_secs = 604800\n[retention]\ndays = 7\n").is_ok()
    );
    assert!(
        Settings::from_toml("[keys]\nretention_secs = 8640000\n[retention]\ndays = 0\n").is_ok()
    );
}

#[actix_rt::test]
async fn a_database_password_in_the_query_string_is_not_shown() {
    let env = TestEnv::new().await;
    let refused = env
        .try_spawn_node_with("n", |s| {
            // Nothing listens on port 1: the node cannot start, and says where it looked.
            s.database.url =
                "postgres://postgres@127.0.0.1:1/x?password=hunter2&connect_timeout=2".into();
        })
        .await;
    let why = refused.err().expect("refused").to_string();
    assert!(why.contains("127.0.0.1:1"), "it names the database: {why}");
    assert!(!why.contains("hunter2"), "{why}");
    assert!(why.contains("password=***"), "{why}");
}
