//! Startup, step 4: what serves clients: the services over the shared handles, the heartbeat
//! that shows this node to the fleet, the line-protocol listener and the HTTP API.

use super::checks::Checked;
use super::StartupError;
use crate::actors::heartbeat::Heartbeat;
use crate::actors::Handles;
use crate::auth::tokens::TokenStore;
use crate::config::Settings;
use crate::db::fleet::FleetTables;
use crate::fleet::local::LocalNode;
use crate::front::line::listener::SocketListener;
use crate::front::line::session::SessionLimits;
use crate::service::access::Access;
use crate::service::fleet::Fleet;
use crate::service::Services;
use actix::prelude::*;
use actix_web::dev::ServerHandle;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The services clients are served by, and the heartbeat that reads the same node's state.
pub(super) async fn services(
    settings: &Settings,
    checked: &Checked,
    handles: Handles,
) -> (Services, Addr<Heartbeat>) {
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let local = LocalNode {
        name: checked.node.clone(),
        started_at: chrono::Utc::now(),
        lanes: checked
            .lanes
            .all()
            .iter()
            .map(|l| (l.name.clone(), l.workers as u32))
            .collect(),
        health: handles.health.clone(),
        metrics: handles.metrics.clone(),
        draining: draining.clone(),
        work: handles.work.clone(),
    };
    let tables = FleetTables::new(checked.pool.clone());
    let heartbeat = Heartbeat::new(local.clone(), tables.clone()).start();
    let services = Services {
        access: Access {
            mode: settings.auth.mode,
            tokens: TokenStore::start(checked.pool.clone()).await,
            rates: Default::default(),
            waiting: Default::default(),
            failures: Default::default(),
        },
        handles,
        inline_limit: settings.storage.inline_limit,
        wait_timeout: Duration::from_secs(settings.listener.wait_timeout_secs),
        max_payload: settings.listener.max_payload_bytes,
        draining,
        keys_retention: Duration::from_secs(settings.keys.retention_secs),
        uploads: Arc::new(tokio::sync::Semaphore::new(settings.storage.max_uploads)),
        fleet: Fleet::new(tables, local),
    };
    (services, heartbeat)
}

/// The running front ends.
pub(super) struct Fronts {
    pub listener: Addr<SocketListener>,
    pub http: Option<ServerHandle>,
    pub http_addr: Option<SocketAddr>,
}

/// Serve the line protocol on `listener` and, when `http.address` is set, the HTTP API.
pub(super) fn start(
    settings: &Settings,
    checked: &Checked,
    listener: TcpListener,
    services: &Services,
    connections: Arc<AtomicUsize>,
) -> Result<Fronts, StartupError> {
    let limits = SessionLimits {
        max_line: settings.listener.max_line_bytes,
        max_payload: settings.listener.max_payload_bytes,
        idle_timeout: Duration::from_secs(settings.listener.idle_timeout_secs),
        write_timeout: Duration::from_secs(settings.listener.write_timeout_secs),
        auth_timeout: Duration::from_secs(settings.listener.auth_timeout_secs),
        drain_grace: Duration::from_secs(settings.supervision.shutdown_grace_secs),
    };
    let listener = SocketListener::start(
        listener,
        services.clone(),
        settings.listener.max_connections,
        limits,
        checked.tls.clone(),
        connections,
    );
    if let Some(tls) = &checked.tls {
        tls.reload_on_hangup().map_err(StartupError::Listener)?;
    }
    let (http, http_addr) = match settings.http.address.as_str() {
        "" => (None, None),
        address => {
            let bound = std::net::TcpListener::bind(address)
                .map_err(|e| StartupError::Http(address.to_string(), e))?;
            let addr = bound.local_addr().map_err(StartupError::Listener)?;
            let handle = crate::front::http::start(bound, services.clone(), &settings.http)
                .map_err(|e| StartupError::Http(address.to_string(), e))?;
            (Some(handle), Some(addr))
        }
    };
    Ok(Fronts {
        listener,
        http,
        http_addr,
    })
}
