//! The line protocol as a raw-socket client (nc) sees it.

use tasknode::testing::TestEnv;

#[actix_rt::test]
async fn raw_socket_submit_returns_result_and_node() {
    let env = TestEnv::new().await;
    let node = env.spawn_node("n1").await;
    let mut c = node.connect().await;
    let r = c.call("upper hello world").await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["result"], "HELLO WORLD", "{r}");
    assert_eq!(r["node"], "n1", "{r}");
    assert!(r["id"].as_str().unwrap().len() == 36, "{r}");
}
