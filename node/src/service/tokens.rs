//! `TOKEN …`: admins create, list and revoke tokens over the protocol, as `tasknode token`
//! does from a shell on a node's machine.

use super::{ServiceError, Services};
use crate::auth::tokens::{self, Limits, TokenRow};
use crate::auth::{Identity, Role};
use crate::db::DbError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use protocol::{NewToken, TokenCreated, TokenInfo, TokenList, TokenRevoked};

/// A token row as the protocol shows it.
pub fn info(row: TokenRow) -> TokenInfo {
    TokenInfo {
        name: row.name,
        role: row.role,
        max_inflight: row.max_inflight.map(|n| n.max(0) as u32),
        rate: row.rate,
        max_payload: row.max_payload.map(|n| n.max(0) as u64),
        max_schedules: row.max_schedules.map(|n| n.max(0) as u32),
        created_at: row.created_at,
        revoked_at: row.revoked_at,
    }
}

/// Refuse `who` unless it is an admin.
fn may_manage(who: &Identity) -> Result<(), ServiceError> {
    match who.role {
        Role::Admin => Ok(()),
        _ => Err(ServiceError::Forbidden(format!(
            "a {} token may not manage tokens; an admin token may",
            who.role.as_str()
        ))),
    }
}

impl Services {
    pub async fn create_token(
        &self,
        new: NewToken,
        who: &Identity,
    ) -> Result<TokenCreated, ServiceError> {
        may_manage(who)?;
        tokens::check_name(&new.name).map_err(ServiceError::Invalid)?;
        let role = Role::parse(&new.role).ok_or_else(|| {
            ServiceError::Invalid(format!("no role `{}`: submit, read or admin", new.role))
        })?;
        let limits = Limits {
            max_inflight: new.max_inflight,
            rate: new.rate,
            max_payload: new.max_payload,
            max_schedules: new.max_schedules,
        };
        limits.check().map_err(ServiceError::Invalid)?;
        let secret = match self.access.tokens.create(&new.name, role, limits).await {
            Ok(secret) => secret,
            Err(DbError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _,
            ))) => return Err(ServiceError::TokenExists(new.name)),
            Err(e) => return Err(e.into()),
        };
        let row = self
            .access
            .tokens
            .list()
            .await?
            .into_iter()
            .find(|t| t.name == new.name)
            .ok_or_else(|| ServiceError::NoSuchToken(new.name.clone()))?;
        tracing::info!(token = %new.name, role = role.as_str(), by = ?who.name, "token created");
        Ok(TokenCreated {
            token: info(row),
            secret: secret.expose().to_string(),
        })
    }

    pub async fn list_tokens(&self, who: &Identity) -> Result<TokenList, ServiceError> {
        may_manage(who)?;
        let rows = self.access.tokens.list().await?;
        Ok(TokenList {
            tokens: rows.into_iter().map(info).collect(),
        })
    }

    pub async fn revoke_token(
        &self,
        name: String,
        who: &Identity,
    ) -> Result<TokenRevoked, ServiceError> {
        may_manage(who)?;
        if who.name.as_deref() == Some(name.as_str()) {
            return Err(ServiceError::Forbidden(format!(
                "`{name}` is the token making this request; revoke it with another admin token"
            )));
        }
        if !self.access.tokens.revoke(&name).await? {
            return Err(ServiceError::NoSuchToken(name));
        }
        tracing::info!(token = %name, by = ?who.name, "token revoked");
        Ok(TokenRevoked { revoked: name })
    }
}
