//! The lifecycle every AMQP actor shares (publisher, reply router, task consumer): connect
//! after the backoff its [`RestartBudget`] allows, check the channel every second, and on a
//! lost connection (or one that cannot be made) stop, so the actor's `Supervisor` restarts
//! it. Each actor says only how it connects ([`Connected::connect`]) and what it does once
//! connected ([`Connected::up`]).

use crate::supervision::RestartBudget;
use actix::prelude::*;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A connection attempt in progress.
pub type Opening<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, lapin::Error>>>>;

/// An actor that owns an AMQP connection under a `Supervisor`.
pub trait Connected: Actor<Context = Context<Self>> + Supervised {
    /// What a connection attempt opens (connection, channel, consumer...).
    type Opened: 'static;

    fn link(&mut self) -> &mut Link;
    /// Open the connection; `what` names it in errors.
    fn connect(&mut self) -> (&'static str, Opening<Self::Opened>);
    /// Take over what was opened.
    fn up(&mut self, opened: Self::Opened, ctx: &mut Context<Self>);
    /// Whether a lost channel should restart the actor now (not while stopping on purpose).
    fn watching(&self) -> bool {
        true
    }
}

/// From `started()`: connect after the link's delay (unless the budget is spent), and watch.
pub fn start<A: Connected>(ctx: &mut Context<A>, act: &mut A) {
    let Some(delay) = act.link().start_delay() else {
        return;
    };
    ctx.run_later(delay, |act, ctx| connect(act, ctx));
    watch(ctx);
}

/// Check the channel every second; a lost one stops the actor (to be restarted).
pub fn watch<A: Connected>(ctx: &mut Context<A>) {
    ctx.run_interval(Duration::from_secs(1), |act, ctx| {
        if act.watching() && act.link().lost() {
            act.link().failed("RabbitMQ channel closed");
            ctx.stop();
        }
    });
}

/// The longest connecting (and declaring) may take. A connection cut in the middle of its
/// handshake can leave lapin's connect waiting for ever; past this it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn connect<A: Connected>(act: &mut A, ctx: &mut Context<A>) {
    let (what, opening) = act.connect();
    tokio::time::timeout(CONNECT_TIMEOUT, opening)
        .into_actor(act)
        .map(move |res, act, ctx| match res {
            Ok(Ok(opened)) => act.up(opened, ctx),
            Ok(Err(e)) => {
                act.link().failed(format!("{what}: {e}"));
                ctx.stop();
            }
            Err(_) => {
                act.link()
                    .failed(format!("{what}: no answer within {CONNECT_TIMEOUT:?}"));
                ctx.stop();
            }
        })
        .spawn(ctx);
}

/// The connection state every AMQP actor keeps across supervisor restarts.
pub struct Link {
    /// Shared, so an actor can open another channel on it from a future.
    pub connection: Option<Arc<lapin::Connection>>,
    pub channel: Option<lapin::Channel>,
    /// Consecutive failures since the last good connection (drives the backoff).
    failures: u32,
    last_error: String,
    /// Wait before connecting, set when restarting.
    delay: Option<Duration>,
    /// The budget was spent: do not connect again (the node is exiting).
    gave_up: bool,
    budget: Arc<RestartBudget>,
}

impl Link {
    pub fn new(budget: Arc<RestartBudget>) -> Self {
        Link {
            connection: None,
            channel: None,
            failures: 0,
            last_error: String::new(),
            delay: None,
            gave_up: false,
            budget,
        }
    }

    /// Whether the channel and its connection are open. (lapin may report a channel as open
    /// while its connection is being torn down or recovered by lapin itself; either one not
    /// connected counts as lost.)
    pub fn healthy(&self) -> bool {
        let channel = self
            .channel
            .as_ref()
            .is_some_and(|c| c.status().connected());
        let connection = self
            .connection
            .as_ref()
            .is_none_or(|c| c.status().connected());
        channel && connection
    }

    /// Whether a channel was set and has since closed (the connection was lost).
    pub fn lost(&self) -> bool {
        self.channel.is_some() && !self.healthy()
    }

    /// A good connection: reset the backoff.
    pub fn up(&mut self, connection: lapin::Connection, channel: lapin::Channel) {
        if self.failures > 0 {
            tracing::info!(actor = self.budget.actor(), "connected again");
        }
        self.failures = 0;
        self.connection = Some(Arc::new(connection));
        self.channel = Some(channel);
    }

    /// Record why the actor is about to stop itself (and be restarted).
    pub fn failed(&mut self, why: impl std::fmt::Display) {
        self.failures += 1;
        self.last_error = why.to_string();
    }

    /// Called from `Supervised::restarting`: drop the dead connection, consult the budget.
    pub fn restarting(&mut self) {
        self.channel = None;
        self.connection = None;
        if self.failures == 0 {
            self.failed("stopped");
        }
        match self.budget.restart(self.failures - 1, &self.last_error) {
            Some(delay) => self.delay = Some(delay),
            None => self.gave_up = true,
        }
    }

    /// How long `started()` should wait before connecting; `None`: do not connect.
    pub fn start_delay(&mut self) -> Option<Duration> {
        if self.gave_up {
            None
        } else {
            Some(self.delay.take().unwrap_or_default())
        }
    }
}
