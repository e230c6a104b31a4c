//! TLS on every link: the client port (with reloads on SIGHUP), PostgreSQL (`sslmode=require`,
//! a CA that must have signed the server's certificate) and RabbitMQ (`amqps://`, here through
//! an HAProxy that ends TLS in front of the local broker). Certificates are made at run time.
//! taskctl's `--tls --ca` is tested in the client crate.

use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use protocol::{Client, TaskStatus};
use tasknode_testkit::{amqp_url, connect, poll_until, Lines, TestCa, TestEnv};

const BIN: &str = env!("CARGO_BIN_EXE_tasknode");

#[actix_rt::test]
async fn a_tls_port_serves_tls_clients_and_turns_plain_text_away() {
    let env = TestEnv::new().await;
    let ca = TestCa::new("port");
    let node = env
        .spawn_node_with("n1", |s| {
            s.listener.tls_cert = Some(ca.cert());
            s.listener.tls_key = Some(ca.key());
        })
        .await;
    let addr = node.addr.to_string();

    let mut c = Client::connect_via(&addr, &ca.transport()).await.unwrap();
    c.auth(&env.token).await.unwrap();
    let view = c.submit("upper", b"over tls", true).await.unwrap();
    assert_eq!(view.status, TaskStatus::Succeeded, "{view:?}");
    assert_eq!(view.result.as_deref(), Some("OVER TLS"));

    // Plain text gets one plain line saying why, and the connection closes.
    let mut plain = connect(node.addr).await;
    let r = plain.ask("PING").await;
    assert_eq!(r["error"], "tls_required", "{r}");
    assert!(plain.closed().await, "closed after the line");

    // A client that does not trust the node's CA does not get in.
    let stranger = TestCa::new("stranger");
    let refused = Client::connect_via(&addr, &stranger.transport()).await;
    assert!(
        refused.is_err(),
        "a certificate from an unknown CA is refused"
    );

    // The node kept serving throughout.
    let view = c.submit("upper", b"still here", true).await.unwrap();
    assert_eq!(view.result.as_deref(), Some("STILL HERE"));
}

#[actix_rt::test]
async fn sighup_swaps_the_certificate_for_new_connections() {
    let env = TestEnv::new().await;
    let first = TestCa::new("first");
    let (cert, key) = (first.cert(), first.key());
    let child = env
        .spawn_process(
            BIN.as_ref(),
            "hup",
            &[
                ("TASKNODE__LISTENER__TLS_CERT", cert.to_str().unwrap()),
                ("TASKNODE__LISTENER__TLS_KEY", key.to_str().unwrap()),
            ],
        )
        .await;
    let addr = child.addr.to_string();
    let mut before = Client::connect_via(&addr, &first.transport())
        .await
        .unwrap();
    before.auth(&child.token).await.unwrap();

    let second = TestCa::new("second");
    second.install_over(&first);
    child.signal("HUP");
    let mut after = poll_until("the node shows the new certificate", 10, async || {
        Client::connect_via(&addr, &second.transport()).await.ok()
    })
    .await;
    after.auth(&child.token).await.unwrap();
    assert!(
        Client::connect_via(&addr, &first.transport())
            .await
            .is_err(),
        "the old certificate is no longer shown"
    );
    // The connection made before the reload goes on.
    let view = before.submit("upper", b"kept", true).await.unwrap();
    assert_eq!(view.result.as_deref(), Some("KEPT"));

    // A reload that fails (a broken file) keeps the certificate in use.
    std::fs::write(first.cert(), "not a certificate").unwrap();
    child.signal("HUP");
    poll_until("the failed reload is logged", 10, async || {
        child.log_text().contains("TLS reload failed").then_some(())
    })
    .await;
    let mut c = Client::connect_via(&addr, &second.transport())
        .await
        .unwrap();
    c.auth(&child.token).await.unwrap();
}

/// Connections of this env's database (other than the asking one) that use TLS.
async fn tls_connections(env: &TestEnv) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = current_database() AND s.ssl AND a.pid <> pg_backend_pid()",
    )
    .get_result(&mut env.db().await)
    .await
    .expect("count TLS connections");
    row.n
}

#[actix_rt::test]
async fn sslmode_require_speaks_tls_to_postgresql() {
    let env = TestEnv::new().await;
    let node = env
        .spawn_node_with("n1", |s| {
            s.database.url = format!("{}?sslmode=require", env.database_url)
        })
        .await;
    let mut c = node.connect().await;
    assert_eq!(c.ask("upper pg over tls").await["result"], "PG OVER TLS");
    assert!(tls_connections(&env).await > 0, "the node's pool uses TLS");

    // Checking the server's certificate: this CA did not sign PostgreSQL's, so no start.
    let ca = TestCa::new("not-postgres");
    let err = env
        .try_spawn_node_with("n2", |s| {
            s.database.url = format!("{}?sslmode=require", env.database_url);
            s.database.tls_ca = Some(ca.ca());
        })
        .await
        .err()
        .expect("a node that cannot trust PostgreSQL's certificate does not start");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "says why: {err}"
    );
}

/// HAProxy ending TLS (the test CA's certificate) in front of the local RabbitMQ.
struct TlsBroker {
    port: u16,
    child: std::process::Child,
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn tls_broker(ca: &TestCa) -> TlsBroker {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = tasknode_testkit::url_addr(&amqp_url());
    let cfg = format!(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 1h\n  timeout server 1h\n\
         frontend amqps\n  bind 127.0.0.1:{port} ssl crt {}\n  default_backend rabbit\n\
         backend rabbit\n  server r1 {broker}\n",
        ca.combined().display()
    );
    let path = ca.combined().with_file_name("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let mut tls = TlsBroker {
        port,
        child: std::process::Command::new("haproxy")
            .args(["-db", "-f", path.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("haproxy must be installed (scripts/test installs it)"),
    };
    let child = &mut tls.child;
    poll_until("haproxy listens", 20, async || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("haproxy exited: {status}");
        }
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    tls
}

#[actix_rt::test]
async fn amqps_reaches_rabbitmq_over_tls() {
    let env = TestEnv::new().await;
    let ca = TestCa::new("broker");
    let broker = tls_broker(&ca).await;
    // The same credentials and vhost, to HAProxy's TLS port by name (the certificate's).
    let plain = amqp_url();
    let (creds, rest) = plain["amqp://".len()..]
        .rsplit_once('@')
        .expect("user@host");
    let vhost = rest.split_once('/').map_or("", |(_, v)| v);
    let amqps = format!("amqps://{creds}@localhost:{}/{vhost}", broker.port);
    let node = env
        .spawn_node_with("n1", |s| {
            s.amqp.url = amqps.clone();
            s.amqp.tls_ca = Some(ca.ca());
        })
        .await;
    let mut c = node.connect().await;
    assert_eq!(
        c.ask("upper through amqps").await["result"],
        "THROUGH AMQPS"
    );
    let view = c.ask("SUBMIT upper queued over tls").await;
    let id = tasknode_testkit::id_of(&view);
    let done = tasknode_testkit::wait_final(&mut c, id).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");

    // Without the CA the broker's certificate is not trusted: no start.
    let err = env
        .try_spawn_node_with("n2", |s| s.amqp.url = amqps.clone())
        .await
        .err()
        .expect("a node that cannot trust the broker does not start");
    assert!(err.to_string().contains("RabbitMQ"), "says which: {err}");
}
