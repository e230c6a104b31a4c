//! PostgreSQL beyond one host: a database URL may list several hosts (a primary and its
//! standbys), and `target_session_attrs=read-write` makes every connection find the one that
//! takes writes.

use protocol::TaskStatus;
use tasknode_testkit::{free_port, id_of, wait_final, Lines, TestEnv};

/// `url` (`postgres://user@host:port/db`) with `first` listed before its host, asking for the
/// host that takes writes.
fn with_first_host(url: &str, first: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (creds, rest) = rest.rsplit_once('@').expect("user@host");
    format!("{scheme}://{creds}@{first},{rest}?target_session_attrs=read-write&connect_timeout=5")
}

#[actix_rt::test]
async fn a_database_url_whose_first_host_is_dead_reaches_the_next() {
    let env = TestEnv::new().await;
    let dead = format!("127.0.0.1:{}", free_port());
    let url = with_first_host(&env.database_url, &dead);
    let node = env
        .spawn_node_with("n1", |s| s.database.url = url.clone())
        .await;
    let mut c = node.connect().await;
    assert_eq!(
        c.ask("upper past a dead host").await["result"],
        "PAST A DEAD HOST"
    );
    let id = id_of(&c.ask("SUBMIT upper queued").await);
    let done = wait_final(&mut c, id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    // What the node wrote is in the database the live host serves.
    let row = env.row(id).await.expect("the row");
    assert_eq!(row.result.as_deref(), Some(&b"QUEUED"[..]));

    // Only dead hosts: the node does not start, and says so.
    let err = env
        .try_spawn_node_with("n2", |s| {
            s.database.url = with_first_host(&format!("postgres://postgres@{dead}/x"), &dead)
        })
        .await
        .err()
        .expect("no live host: no start");
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
}
