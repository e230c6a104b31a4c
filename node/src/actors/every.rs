//! One periodic loop for the node's background actors (relay, watcher, heartbeat, retention,
//! scheduler, controller, janitor): each says what one round is ([`Periodic::round`]) and
//! starts its rounds with [`start`]. A round runs alone (the next one starts `every` after
//! the previous one started, or when it ends if it took longer), its error is logged (a
//! warning when rounds start failing, then quietly until one succeeds again), and the rounds
//! stop with their actor, so with the node.

use actix::prelude::*;
use std::time::{Duration, Instant};

/// Why a round did not finish; logged, never fatal.
pub type RoundError = Box<dyn std::error::Error + Send + Sync>;

/// One round of a periodic actor, with access to the actor when it ends.
pub type Round<A> = ResponseActFuture<A, Result<(), RoundError>>;

/// An actor that does something every so often.
pub trait Periodic: Actor<Context = Context<Self>> {
    /// What its rounds do, for the log ("relay the outbox").
    const WHAT: &'static str;
    /// One round.
    fn round(&mut self) -> Round<Self>;
}

/// When rounds run.
#[derive(Debug, Clone, Copy)]
pub struct Every {
    /// Between the starts of two rounds.
    pub every: Duration,
    /// The first round runs at once (else after `every`).
    pub at_start: bool,
    /// After a failed round, the next one comes this soon instead.
    pub again: Option<Duration>,
}

impl Every {
    /// A round every `every`, the first at once.
    pub fn new(every: Duration) -> Every {
        Every {
            every,
            at_start: true,
            again: None,
        }
    }

    /// The first round only after `every`.
    pub fn later(self) -> Every {
        Every {
            at_start: false,
            ..self
        }
    }

    /// A failed round is tried again after `again`.
    pub fn again(self, again: Duration) -> Every {
        Every {
            again: Some(again),
            ..self
        }
    }
}

/// Start `A`'s rounds (call from `started`).
pub fn start<A: Periodic>(ctx: &mut Context<A>, when: Every) {
    let first = match when.at_start {
        true => Duration::ZERO,
        false => when.every,
    };
    next(ctx, when, false, first);
}

fn next<A: Periodic>(ctx: &mut Context<A>, when: Every, failing: bool, after: Duration) {
    ctx.run_later(after, move |act, ctx| {
        let began = Instant::now();
        let round = act.round().map(move |result, _, ctx: &mut Context<A>| {
            let failing_now = match result {
                Ok(()) => {
                    if failing {
                        tracing::info!(what = A::WHAT, "periodic round succeeded again");
                    }
                    false
                }
                Err(e) if failing => {
                    tracing::debug!(what = A::WHAT, error = %e, "periodic round failed again");
                    true
                }
                Err(e) => {
                    tracing::warn!(what = A::WHAT, error = %e, "periodic round failed; tried again");
                    true
                }
            };
            let wait = match (failing_now, when.again) {
                (true, Some(again)) => again,
                _ => when.every.saturating_sub(began.elapsed()),
            };
            next(ctx, when, failing_now, wait);
        });
        ctx.spawn(round);
    });
}
