//! Who a session is: `AUTH <token>`, and the gate every request passes. Before `AUTH` only
//! `PING` (just `pong` and `healthy`), `HELP` and `QUIT` are served. Failed `AUTH`s are
//! answered ever more slowly, and past [`MAX_FAILED`] the connection is closed.

use super::requests::line_or_error;
use super::writer::{Item, Pending};
use super::Session;
use crate::auth::tokens::Secret;
use crate::auth::{Identity, Mode};
use crate::service::ServiceError;
use actix::prelude::*;
use protocol::codec::Outbound;
use protocol::{AuthOk, ErrorCode, ErrorLine};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

/// Failed `AUTH`s a connection may make; the last one closes it.
pub const MAX_FAILED: u32 = 5;
/// The pause before answering the first failed `AUTH`; it doubles with each.
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// A session's identity: who it is, and the secret it showed (to check again, should its
/// token drop out of the node's copy).
#[derive(Default)]
pub(super) struct Who {
    pub identity: Option<Rc<Identity>>,
    secret: Option<Rc<Secret>>,
    failed: u32,
}

impl Who {
    /// An open node's sessions are admins from the start.
    pub fn for_mode(mode: Mode) -> Who {
        Who {
            identity: (mode == Mode::Open).then(|| Rc::new(Identity::open())),
            ..Default::default()
        }
    }
}

impl Session {
    /// `AUTH <token>`. Nothing after it on the connection is served before it is decided
    /// (requests pipelined behind it are served as the identity it gives).
    pub(super) fn authenticate(
        &mut self,
        ctx: &mut Context<Self>,
        permit: OwnedSemaphorePermit,
        token: String,
    ) {
        let (tx, rx) = oneshot::channel();
        self.queue(ctx, Pending::One(rx), permit);
        let secret = Secret::new(token);
        let svc = self.svc.clone();
        let pause = FIRST_PAUSE * 2u32.pow(self.who.failed.min(8));
        async move {
            let checked = svc.authenticate(&secret).await;
            if checked.is_err() {
                // Failed guesses are slow, and slower each time.
                tokio::time::sleep(pause).await;
            }
            (checked, secret)
        }
        .into_actor(self)
        .map(move |(checked, secret), act, ctx| match checked {
            Ok(identity) => {
                let ok = AuthOk {
                    auth: "ok".into(),
                    name: identity.name.clone(),
                    role: identity.role.as_str().into(),
                };
                if let Some(name) = &identity.name {
                    act.span.record("token", name.as_str());
                }
                act.who.identity = Some(Rc::new(identity));
                act.who.secret = Some(Rc::new(secret));
                act.who.failed = 0;
                let _ = tx.send(Item::Out(Outbound::line(&ok)));
            }
            Err(e) => {
                act.who.failed += 1;
                act.svc.handles.metrics.auth_failed("line");
                let mut line = e.to_line();
                let close = act.who.failed >= MAX_FAILED;
                if close {
                    line.message = format!("{}; too many failed AUTHs, closing", line.message);
                }
                let _ = tx.send(Item::Out(Outbound::error(&line)));
                if close {
                    act.close_after_answers();
                    ctx.stop();
                }
            }
        })
        .wait(ctx);
    }

    /// Serve `serve(identity)` if this session may: it has authenticated and its token is
    /// still live; otherwise answer `unauthenticated`.
    pub(super) fn as_who<F>(
        &mut self,
        ctx: &mut Context<Self>,
        permit: OwnedSemaphorePermit,
        serve: impl FnOnce(Rc<Identity>) -> F,
    ) where
        F: Future<Output = Outbound> + 'static,
    {
        let Some(identity) = self.who.identity.clone() else {
            let line = ErrorLine::new(
                ErrorCode::Unauthenticated,
                "say AUTH <token> first (PING, HELP and QUIT need none)",
            );
            return self.answer(ctx, permit, &line, false);
        };
        let (svc, secret) = (self.svc.clone(), self.who.secret.clone());
        // A request's future can be large (a submission's holds every step of accepting and
        // waiting): boxed once here, it is not copied again as it is wrapped and spawned.
        let fut = Box::pin(serve(identity.clone()));
        self.serve_one(ctx, permit, false, async move {
            match svc.still_allowed(&identity, secret.as_deref()).await {
                Ok(()) => fut.await,
                Err(e) => line_or_error::<()>(Err(e)),
            }
        });
    }

    /// The identity for a request served without waiting on the database (a `PUT` whose
    /// body is about to come, a `RESULT` stream): its token checked against this node's copy.
    pub(super) fn identity_now(&self) -> Result<Rc<Identity>, ServiceError> {
        let identity = self
            .who
            .identity
            .clone()
            .ok_or_else(|| ServiceError::Unauthenticated("say AUTH <token> first".into()))?;
        match &identity.name {
            Some(name) if !self.svc.access.tokens.is_live(name) => Err(
                ServiceError::Unauthenticated("the token was revoked".into()),
            ),
            _ => Ok(identity),
        }
    }
}

impl Session {
    /// A connection that has not said who it is within `listener.auth_timeout_secs` is told
    /// so and closed (`PING`, `HELP` do not extend it).
    pub(super) fn watch_auth_deadline(&mut self, ctx: &mut Context<Self>) {
        if self.who.identity.is_none() {
            ctx.run_later(self.limits.auth_timeout, |act, ctx| {
                if act.who.identity.is_some() {
                    return;
                }
                let line = ErrorLine::new(
                    ErrorCode::Unauthenticated,
                    format!(
                        "no AUTH within {}s; closing the connection",
                        act.limits.auth_timeout.as_secs()
                    ),
                );
                act.admit(ctx, 1, move |act, ctx, permit| {
                    act.answer(ctx, permit, &line, true)
                });
            });
        }
    }
}
