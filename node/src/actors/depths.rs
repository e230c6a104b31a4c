//! QueueDepths: how many messages wait in each lane's queue, asked of the broker (a passive
//! declare per queue on a connection of its own) at most every [`FRESH`]; for `/metrics`.

use crate::amqp::Broker;
use actix::prelude::*;
use lapin::options::QueueDeclareOptions;
use lapin::{Channel, Connection};
use std::time::{Duration, Instant};

/// Depths younger than this are answered from the last look.
const FRESH: Duration = Duration::from_secs(5);

pub struct QueueDepths {
    broker: Broker,
    name: String,
    /// (lane, queue)
    queues: Vec<(String, String)>,
    link: Option<(Connection, Channel)>,
    last: Option<(Instant, Vec<(String, u32)>)>,
}

impl QueueDepths {
    pub fn new(broker: Broker, node: &str, queues: Vec<(String, String)>) -> Self {
        QueueDepths {
            broker,
            name: format!("{node}-depths"),
            queues,
            link: None,
            last: None,
        }
    }
}

impl Actor for QueueDepths {
    type Context = Context<Self>;
}

/// Each lane's ready messages (lane, count); empty when the broker cannot be asked.
#[derive(Message)]
#[rtype(result = "Vec<(String, u32)>")]
pub struct GetDepths;

async fn look(
    broker: Broker,
    name: String,
    link: Option<(Connection, Channel)>,
    queues: Vec<(String, String)>,
) -> Result<((Connection, Channel), Vec<(String, u32)>), lapin::Error> {
    let (conn, channel) = match link {
        Some(link) if link.1.status().connected() => link,
        _ => {
            let conn = broker.connect(&name).await?;
            let channel = conn.create_channel().await?;
            (conn, channel)
        }
    };
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let mut depths = Vec::with_capacity(queues.len());
    for (lane, queue) in queues {
        let q = channel
            .queue_declare(queue.as_str().into(), passive, Default::default())
            .await?;
        depths.push((lane, q.message_count()));
    }
    Ok(((conn, channel), depths))
}

impl Handler<GetDepths> for QueueDepths {
    /// One look at a time: a scrape arriving meanwhile gets the look's answer after it.
    type Result = AtomicResponse<Self, Vec<(String, u32)>>;

    fn handle(&mut self, _: GetDepths, _: &mut Context<Self>) -> Self::Result {
        if let Some((at, depths)) = &self.last {
            if at.elapsed() < FRESH {
                return AtomicResponse::new(Box::pin(fut::ready(depths.clone())));
            }
        }
        let asking = look(
            self.broker.clone(),
            self.name.clone(),
            self.link.take(),
            self.queues.clone(),
        );
        AtomicResponse::new(Box::pin(asking.into_actor(self).map(
            |looked, act, _| match looked {
                Ok((link, depths)) => {
                    act.link = Some(link);
                    act.last = Some((Instant::now(), depths.clone()));
                    depths
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot ask the broker for queue depths");
                    Vec::new()
                }
            },
        )))
    }
}
