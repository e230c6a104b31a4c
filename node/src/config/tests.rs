use super::*;

#[test]
fn defaults_load_and_match_the_issue() {
    let s = Settings::from_toml("").unwrap();
    assert_eq!(
        s.database.url,
        "postgres://postgres@127.0.0.1:5432/tasknode"
    );
    assert_eq!(s.amqp.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
    assert_eq!(s.storage.endpoint, "http://127.0.0.1:9000");
    assert_eq!(s.storage.bucket, "tasknode");
    assert_eq!(s.storage.access_key, "minioadmin");
    assert_eq!(s.storage.inline_limit, 64 * 1024);
    assert!(s.workers.threads() >= 1);
}

#[test]
fn unknown_key_is_refused_by_name() {
    let err = Settings::from_toml("[amqp]\nprefetchh = 3\n").unwrap_err();
    assert!(err.to_string().contains("prefetchh"), "{err}");
    let err = Settings::from_toml("[nope]\nx = 1\n").unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn bad_values_name_their_key() {
    let err = Settings::from_toml("[listener]\naddress = \"nowhere\"\n").unwrap_err();
    assert!(err.to_string().contains("listener.address"), "{err}");
    let err = Settings::from_toml("[amqp]\nurls = [\"amqp://a/%2f\", \"http://b\"]\n").unwrap_err();
    assert!(err.to_string().contains("amqp.urls"), "{err}");
    let err = Settings::from_toml("[lanes.quick]\nprefetch = \"many\"\n").unwrap_err();
    assert!(err.to_string().contains("prefetch"), "{err}");
}

#[test]
fn environment_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.toml");
    std::fs::write(
        &path,
        "[node]\nname = \"filename\"\n[amqp]\npublish_wait_ms = 4\n",
    )
    .unwrap();
    let s = Settings::load_with_env(
        Some(&path),
        vec![
            (
                "TASKNODE__AMQP__PUBLISH_WAIT_MS".to_string(),
                "9".to_string(),
            ),
            (
                "TASKNODE__STORAGE__SECRET_KEY".to_string(),
                "s3cr3t".to_string(),
            ),
        ],
    )
    .unwrap();
    assert_eq!(s.node.name, "filename");
    assert_eq!(s.amqp.publish_wait_ms, 9);
    assert_eq!(s.storage.secret_key, "s3cr3t");
}

#[test]
fn per_kind_overrides() {
    let s = Settings::from_toml(
        "[tasks]\nmax_attempts = 4\n[tasks.kinds.sleep]\ntimeout_secs = 900\nmax_attempts = 1\n",
    )
    .unwrap();
    assert_eq!(s.tasks.max_attempts("sleep"), 1);
    assert_eq!(s.tasks.max_attempts("upper"), 4);
    assert_eq!(s.tasks.timeout("sleep").as_secs(), 900);
    assert_eq!(s.tasks.timeout("upper").as_secs(), 300);
    assert_eq!(s.tasks.most_attempts(), 4);
    let err = Settings::from_toml("[tasks.kinds.sleep]\ntimeout = 9\n").unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err}");
    let err = Settings::from_toml("[tasks]\ntimeout_secs = 4000\n").unwrap_err();
    assert!(err.to_string().contains("tasks.timeout_secs"), "{err}");
}

#[test]
fn workers_zero_means_accept_only() {
    let s = Settings::from_toml("[workers]\ncount = 0\n").unwrap();
    assert_eq!(s.workers.threads(), 0);
}

#[test]
fn tls_needs_both_a_certificate_and_a_key() {
    let err = Settings::from_toml("[listener]\ntls_cert = \"cert.pem\"\n").unwrap_err();
    assert!(err.to_string().contains("listener.tls_key"), "{err}");
    let s = Settings::from_toml("[listener]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n").unwrap();
    assert_eq!(s.listener.tls_key.as_deref(), Some(Path::new("k.pem")));
}

#[test]
fn one_broker_url_or_a_list() {
    let one = Settings::from_toml("").unwrap();
    assert_eq!(one.amqp.urls(), ["amqp://guest:guest@127.0.0.1:5672/%2f"]);
    assert!(Settings::from_toml("[amqp]\nurl = \"amqps://h/%2f\"\n").is_ok());
    let env = [(
        "TASKNODE__AMQP__URLS".to_string(),
        "amqp://a:5681/%2f,amqp://b:5682/%2f".to_string(),
    )];
    let listed = Settings::load_with_env(None, env).unwrap();
    assert_eq!(
        listed.amqp.urls(),
        ["amqp://a:5681/%2f", "amqp://b:5682/%2f"],
        "a list from the environment, comma-separated"
    );
    let env = [(
        "TASKNODE__DATABASE__URL".to_string(),
        "postgres://u@a:5432,b:5433/db?target_session_attrs=read-write".to_string(),
    )];
    let hosts = Settings::load_with_env(None, env).unwrap();
    assert_eq!(
        hosts.database.url, "postgres://u@a:5432,b:5433/db?target_session_attrs=read-write",
        "a multi-host database URL is not split"
    );
}
