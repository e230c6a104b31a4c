//! One health answer per node, shared by `PING`, `/readyz` and the delivery path: RabbitMQ,
//! PostgreSQL and the bucket are each asked at most once every [`FRESH`], however many ask
//! (one asks, the others wait for its answer), so probes from anyone, authenticated or not,
//! never load the database pool or the bucket.

use crate::actors::publisher::{IsConnected, Publisher};
use crate::actors::uploader::{CheckStore, Uploader};
use actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An answer younger than this is given again.
pub const FRESH: Duration = Duration::from_secs(1);
/// The longest one dependency gets to answer.
const LIMIT: Duration = Duration::from_secs(2);

/// Whether each dependency answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deps {
    pub amqp: bool,
    pub postgres: bool,
    pub s3: bool,
}

impl Deps {
    pub fn all_up(&self) -> bool {
        self.amqp && self.postgres && self.s3
    }
}

/// The node's dependencies, asked at most once a second. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    publisher: Addr<Publisher>,
    store: crate::db::Store,
    uploader: Addr<Uploader>,
    /// The last answer; held while asking, so one asks at a time.
    last: tokio::sync::Mutex<Option<(Instant, Deps)>>,
}

impl Health {
    pub fn new(
        publisher: Addr<Publisher>,
        store: crate::db::Store,
        uploader: Addr<Uploader>,
    ) -> Self {
        Health {
            inner: Arc::new(Inner {
                publisher,
                store,
                uploader,
                last: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Each dependency's state, at most [`FRESH`] old.
    pub async fn check(&self) -> Deps {
        let mut last = self.inner.last.lock().await;
        if let Some((at, deps)) = *last {
            if at.elapsed() < FRESH {
                return deps;
            }
        }
        let deps = self.ask().await;
        *last = Some((Instant::now(), deps));
        deps
    }

    async fn ask(&self) -> Deps {
        let up = |r: Result<Result<bool, MailboxError>, tokio::time::error::Elapsed>| {
            matches!(r, Ok(Ok(true)))
        };
        let i = &self.inner;
        let (amqp, pg, s3) = tokio::join!(
            tokio::time::timeout(LIMIT, i.publisher.send(IsConnected)),
            tokio::time::timeout(LIMIT, i.store.ping()),
            tokio::time::timeout(LIMIT, i.uploader.send(CheckStore)),
        );
        Deps {
            amqp: up(amqp),
            postgres: matches!(pg, Ok(true)),
            s3: up(s3),
        }
    }

    /// Wait until PostgreSQL answers, looking once a second, for at most `longest`; answers
    /// whether it does.
    pub async fn database_back(&self, longest: Duration) -> bool {
        let deadline = Instant::now() + longest;
        loop {
            if self.check().await.postgres {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(FRESH).await;
        }
    }
}
