//! Access: who a connection is (`AUTH`), whether its token is still live, and what its role
//! may do. The session keeps the [`Identity`]; the services take it with each request.

use super::{ServiceError, Services};
use crate::auth::tokens::{Secret, TokenStore};
use crate::auth::{Identity, Mode};

/// How a node lets clients in. Cheap to clone.
#[derive(Clone)]
pub struct Access {
    pub mode: Mode,
    pub tokens: TokenStore,
}

impl Services {
    /// Who `secret` is (an open node: everyone is an admin).
    pub async fn authenticate(&self, secret: &Secret) -> Result<Identity, ServiceError> {
        if self.access.mode == Mode::Open {
            return Ok(Identity::open());
        }
        match self.access.tokens.check(secret).await? {
            Some(token) => Ok(Identity {
                name: Some(token.name),
                role: token.role,
                limits: token.limits,
            }),
            None => Err(ServiceError::Unauthenticated(
                "unknown or revoked token".into(),
            )),
        }
    }

    /// The identity of a connection, if its token is still live (revoked tokens are refused
    /// on every node within a second or two).
    pub async fn still_allowed(
        &self,
        who: Option<&Identity>,
        secret: Option<&Secret>,
    ) -> Result<(), ServiceError> {
        let Some(who) = who else {
            return Err(ServiceError::Unauthenticated(
                "say AUTH <token> first (PING, HELP and QUIT need none)".into(),
            ));
        };
        let Some(name) = &who.name else {
            return Ok(());
        };
        if self.access.tokens.is_live(name) {
            return Ok(());
        }
        // Not in this node's copy: revoked, or made after the copy was taken.
        match secret {
            Some(secret) if self.access.tokens.check(secret).await?.is_some() => Ok(()),
            _ => Err(ServiceError::Unauthenticated(
                "the token was revoked".into(),
            )),
        }
    }

    /// Refuse `who` unless its role may submit tasks.
    pub fn may_submit(who: &Identity) -> Result<(), ServiceError> {
        match who.may_submit() {
            true => Ok(()),
            false => Err(ServiceError::Forbidden(format!(
                "a `{}` token cannot submit or retry tasks",
                who.role.as_str()
            ))),
        }
    }
}
