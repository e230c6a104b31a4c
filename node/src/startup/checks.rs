//! Startup, step 1: check every dependency before any actor starts, so a node that cannot
//! serve says why at once (each error names the dependency and what to check).

use super::errors::db_err;
use super::{files, prepare, StartupError};
use crate::actors::replies::ReplyRouter;
use crate::amqp;
use crate::config::Settings;
use crate::db::{self, DbPool};
use crate::kinds::Registry;
use crate::lanes::Lanes;
use crate::storage::Storage;
use crate::tls::ServerTls;
use lapin::{Channel, Connection, Consumer};
use std::net::SocketAddr;

/// What the checks found, for the steps that start the node.
pub(super) struct Checked {
    pub node: String,
    pub kinds: Registry,
    pub lanes: Lanes,
    pub storage: Storage,
    pub broker: amqp::Broker,
    pub tls: Option<ServerTls>,
    pub pool: DbPool,
    pub reply_queue: String,
    /// This node's reply queue, opened (exclusively) by the check.
    pub replies_open: Option<(Connection, Channel, Consumer)>,
}

/// The addresses, the open files, the kinds and lanes, the database (migrated), the bucket,
/// the broker (each lane's queues declared) and this node's reply queue.
pub(super) async fn dependencies(
    settings: &Settings,
    local_addr: SocketAddr,
) -> Result<Checked, StartupError> {
    let node = settings.node.name.clone();
    addresses(settings, local_addr)?;
    files::fit(settings).map_err(StartupError::OpenFiles)?;
    let kinds = Registry::for_settings(&settings.tasks);
    let external = |k: &String| settings.external.kinds.contains(k);
    if let Some(unknown) = settings
        .tasks
        .kinds
        .keys()
        .find(|k| kinds.get(k).is_none() && !external(k))
    {
        return Err(StartupError::UnknownKindOverride(unknown.clone()));
    }
    let lanes = Lanes::resolve(settings, &kinds)?;
    let storage = prepare(settings).await?;
    let database = settings.database.target().map_err(db_err(settings))?;
    let broker = amqp::Broker::with_ca(
        &settings.amqp.urls(),
        &node,
        settings.amqp.tls_ca.as_deref(),
    )?;
    let tls = match (&settings.listener.tls_cert, &settings.listener.tls_key) {
        (Some(cert), Some(key)) => Some(ServerTls::load(cert, key)?),
        _ => None,
    };
    let pool = db::connect_pool(&database, settings.database.pool_size)
        .await
        .map_err(db_err(settings))?;
    pool.get()
        .await
        .map_err(|e| db_err(settings)(db::DbError::Pool(e)))?;
    declare_lanes(settings, &broker, &lanes).await?;
    let reply_queue = settings.amqp.reply_queue(&node);
    let replies_open = ReplyRouter::open(&broker, &node, &reply_queue)
        .await
        .map_err(|source| StartupError::ReplyQueue {
            url: broker.describe(),
            queue: reply_queue.clone(),
            node: node.clone(),
            source: Box::new(source),
        })?;
    Ok(Checked {
        node,
        kinds,
        lanes,
        storage,
        broker,
        tls,
        pool,
        reply_queue,
        replies_open: Some(replies_open),
    })
}

/// An open node (no tokens) is refused on an address other hosts reach, on the line protocol
/// and on HTTP alike (every address a host name stands for is checked).
fn addresses(settings: &Settings, local_addr: SocketAddr) -> Result<(), StartupError> {
    settings
        .auth
        .check(&local_addr)
        .map_err(StartupError::OpenNetwork)?;
    if !settings.http.address.is_empty() {
        use std::net::ToSocketAddrs;
        let address = &settings.http.address;
        let addrs = address
            .to_socket_addrs()
            .map_err(|e| StartupError::Http(address.clone(), e))?;
        for http in addrs {
            settings
                .auth
                .check(&http)
                .map_err(StartupError::OpenNetwork)?;
        }
    }
    Ok(())
}

/// Connect once and declare each lane's queues (as the configured queue type).
async fn declare_lanes(
    settings: &Settings,
    broker: &amqp::Broker,
    lanes: &Lanes,
) -> Result<(), StartupError> {
    let amqp_err = |source| StartupError::Amqp {
        url: broker.describe(),
        source,
    };
    let probe = broker
        .connect(&format!("{}-probe", settings.node.name))
        .await
        .map_err(amqp_err)?;
    let channel = probe.create_channel().await.map_err(amqp_err)?;
    for lane in lanes.all() {
        lanes
            .topology()
            .declare_lane(&channel, &lane.queue)
            .await
            .map_err(|source| StartupError::Queue {
                queue: lane.queue.clone(),
                queue_type: settings.amqp.queue_type,
                source: Box::new(source),
            })?;
    }
    let _ = probe.close(200, "probe done".into()).await;
    Ok(())
}
