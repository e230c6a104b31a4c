//! Tokens: created by an operator (`tasknode token create`), kept in PostgreSQL as a SHA-256 of
//! the secret (the secret is shown once), checked by every node against a copy it refreshes
//! every [`REFRESH`] (so a revoked token is refused on every node within that, and a lookup
//! of a token the copy does not know yet goes to the database: a new token works at once).

use crate::db::schema::tokens;
use crate::db::{DbError, DbPool};
use base64::Engine;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::Role;

/// How often a node reloads the tokens.
pub const REFRESH: Duration = Duration::from_secs(1);
/// What every secret starts with (so one is recognisable in a config file or a leak scan).
pub const PREFIX: &str = "tn_";

/// A token's limits (none: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Unfinished tasks at once.
    pub max_inflight: Option<u32>,
    /// Submissions per second (a token bucket of one second's worth).
    pub rate: Option<f64>,
    /// Bytes of one payload.
    pub max_payload: Option<u64>,
    /// Schedules at once ([`DEFAULT_MAX_SCHEDULES`] if unset).
    pub max_schedules: Option<u32>,
}

/// A token's schedules at most, unless it says otherwise (and an open node's).
pub const DEFAULT_MAX_SCHEDULES: u32 = 100;

/// A token as a node knows it (never its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub limits: Limits,
}

/// A token's row, for `token list`.
#[derive(Debug, Clone, Queryable)]
pub struct TokenRow {
    pub name: String,
    pub role: String,
    pub max_inflight: Option<i32>,
    pub rate: Option<f64>,
    pub max_payload: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub max_schedules: Option<i32>,
}

/// A secret as a client holds it. Its `Debug` hides it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// A fresh secret: 256 random bits.
    fn generate() -> Secret {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        Secret(format!("{PREFIX}{text}"))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A live token's row, as a node reads it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = tokens, check_for_backend(diesel::pg::Pg))]
struct Row {
    name: String,
    hash: Vec<u8>,
    role: String,
    max_inflight: Option<i32>,
    rate: Option<f64>,
    max_payload: Option<i64>,
    max_schedules: Option<i32>,
}

impl Row {
    fn token(self) -> Option<Token> {
        Some(Token {
            name: self.name,
            role: Role::parse(&self.role)?,
            limits: Limits {
                max_inflight: self.max_inflight.map(|n| n.max(0) as u32),
                rate: self.rate,
                max_payload: self.max_payload.map(|n| n.max(0) as u64),
                max_schedules: self.max_schedules.map(|n| n.max(0) as u32),
            },
        })
    }
}

/// Why `name` cannot name a token, if it cannot: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    match !name.is_empty() && name.len() <= 64 && name.chars().all(ok) {
        true => Ok(()),
        false => Err(format!(
            "`{name}` cannot name a token: use 1 to 64 letters, digits, `.`, `_` or `-`"
        )),
    }
}

impl Limits {
    /// Why these limits make no sense, if they do not.
    pub fn check(&self) -> Result<(), String> {
        if self.max_inflight == Some(0) {
            return Err("max_inflight must be at least 1".into());
        }
        if self.rate.is_some_and(|r| !r.is_finite() || r <= 0.0) {
            return Err("rate must be a positive number of submissions a second".into());
        }
        if self.max_payload == Some(0) {
            return Err("max_payload must be at least 1 byte".into());
        }
        if self.max_schedules.is_some_and(|n| n > 100_000) {
            return Err("max_schedules must be at most 100000".into());
        }
        Ok(())
    }
}

/// Create token `name`: answers its secret (shown once; only its hash is kept).
pub async fn create(
    conn: &mut AsyncPgConnection,
    name: &str,
    role: Role,
    limits: Limits,
) -> Result<Secret, DbError> {
    let secret = Secret::generate();
    diesel::insert_into(tokens::table)
        .values((
            tokens::name.eq(name),
            tokens::hash.eq(secret.hash()),
            tokens::role.eq(role.as_str()),
            tokens::max_inflight.eq(limits.max_inflight.map(|n| n.min(i32::MAX as u32) as i32)),
            tokens::rate.eq(limits.rate),
            tokens::max_payload.eq(limits.max_payload.map(|n| n.min(i64::MAX as u64) as i64)),
            tokens::max_schedules.eq(limits.max_schedules.map(|n| n.min(i32::MAX as u32) as i32)),
        ))
        .execute(conn)
        .await?;
    Ok(secret)
}

/// Every token, oldest first.
pub async fn list(conn: &mut AsyncPgConnection) -> Result<Vec<TokenRow>, DbError> {
    Ok(tokens::table
        .order(tokens::created_at.asc())
        .select((
            tokens::name,
            tokens::role,
            tokens::max_inflight,
            tokens::rate,
            tokens::max_payload,
            tokens::created_at,
            tokens::revoked_at,
            tokens::max_schedules,
        ))
        .load(conn)
        .await?)
}

/// Revoke token `name`; `false` if there is no such live token.
/// Revoke token `name` and disable its schedules (in one transaction); `false` if there is no
/// such live token.
pub async fn revoke(conn: &mut AsyncPgConnection, name: &str) -> Result<bool, DbError> {
    use crate::db::schema::schedules;
    use diesel_async::AsyncConnection;
    let now = Utc::now();
    let revoked = conn
        .transaction(async |c| {
            let n = diesel::update(tokens::table.find(name))
                .filter(tokens::revoked_at.is_null())
                .set(tokens::revoked_at.eq(now))
                .execute(c)
                .await?;
            diesel::update(schedules::table.filter(schedules::owner.eq(name)))
                .filter(schedules::disabled_at.is_null())
                .set(schedules::disabled_at.eq(now))
                .execute(c)
                .await?;
            Ok::<_, diesel::result::Error>(n == 1)
        })
        .await?;
    Ok(revoked)
}

#[derive(Default)]
struct Known {
    by_hash: HashMap<Vec<u8>, Token>,
    names: std::collections::HashSet<String>,
}

/// A node's copy of the live tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenStore {
    pool: DbPool,
    known: Arc<RwLock<Known>>,
    /// Secrets looked up in vain a moment ago.
    unknown: Arc<std::sync::Mutex<super::unknown::Unknown>>,
    /// One database lookup of a secret not in the copy at a time, node-wide: a flood of
    /// made-up tokens costs one pool connection, never the pool.
    looking: Arc<tokio::sync::Semaphore>,
}

impl TokenStore {
    /// A copy of the live tokens, loaded now (if the database answers) and refreshed every
    /// [`REFRESH`] on the current runtime.
    pub async fn start(pool: DbPool) -> TokenStore {
        let store = TokenStore {
            pool,
            known: Arc::new(RwLock::new(Known::default())),
            unknown: Default::default(),
            looking: Arc::new(tokio::sync::Semaphore::new(1)),
        };
        if let Err(e) = store.refresh().await {
            tracing::warn!(error = %e, "cannot load the tokens yet; each AUTH asks the database");
        }
        let refreshing = store.clone();
        actix::spawn(async move {
            let mut every = tokio::time::interval(REFRESH);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(e) = refreshing.refresh().await {
                    tracing::debug!(error = %e, "cannot reload tokens; keeping the last copy");
                }
            }
        });
        store
    }

    async fn refresh(&self) -> Result<(), DbError> {
        let mut conn = self.pool.get().await?;
        let rows: Vec<Row> = tokens::table
            .filter(tokens::revoked_at.is_null())
            .select(Row::as_select())
            .load(&mut conn)
            .await?;
        let mut known = Known::default();
        for row in rows {
            let hash = row.hash.clone();
            if let Some(token) = row.token() {
                known.names.insert(token.name.clone());
                known.by_hash.insert(hash, token);
            }
        }
        *self.known.write().unwrap_or_else(|e| e.into_inner()) = known;
        Ok(())
    }

    /// The live token whose secret is `secret`, if any.
    pub async fn check(&self, secret: &Secret) -> Result<Option<Token>, DbError> {
        let hash = secret.hash();
        if let Some(token) = self.read().by_hash.get(&hash) {
            return Ok(Some(token.clone()));
        }
        // Not in the copy: perhaps made a moment ago (the copy is reloaded every second),
        // unless it was asked about a moment ago, or another lookup is under way (then it is
        // refused as unknown: a new token is in the copy within a second anyway).
        if self.unknown().fresh(&hash, std::time::Instant::now()) {
            return Ok(None);
        }
        let Ok(_looking) = self.looking.try_acquire() else {
            return Ok(None);
        };
        let row: Option<Row> = self.lookup(&hash).await?;
        let token = row.and_then(Row::token);
        match &token {
            Some(token) => {
                let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
                known.names.insert(token.name.clone());
                known.by_hash.insert(hash, token.clone());
            }
            None => self.unknown().note(hash, std::time::Instant::now()),
        }
        Ok(token)
    }

    fn unknown(&self) -> std::sync::MutexGuard<'_, super::unknown::Unknown> {
        self.unknown.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn lookup(&self, hash: &[u8]) -> Result<Option<Row>, DbError> {
        let mut conn = self.pool.get().await?;
        Ok(tokens::table
            .filter(tokens::hash.eq(hash))
            .filter(tokens::revoked_at.is_null())
            .select(Row::as_select())
            .first(&mut conn)
            .await
            .optional()?)
    }

    /// Create token `name` (see [`create`]); this node knows it at once, others on their next
    /// refresh or at its first `AUTH`.
    pub async fn create(&self, name: &str, role: Role, limits: Limits) -> Result<Secret, DbError> {
        let secret = create(&mut *self.pool.get().await?, name, role, limits).await?;
        let _ = self.refresh().await;
        Ok(secret)
    }

    pub async fn list(&self) -> Result<Vec<TokenRow>, DbError> {
        list(&mut *self.pool.get().await?).await
    }

    /// Revoke token `name`: `false` if there is no live one. This node refuses it at once,
    /// others within [`REFRESH`].
    pub async fn revoke(&self, name: &str) -> Result<bool, DbError> {
        let revoked = revoke(&mut *self.pool.get().await?, name).await?;
        let _ = self.refresh().await;
        Ok(revoked)
    }

    /// Whether token `name` is still live (revoked ones drop out within [`REFRESH`]).
    pub fn is_live(&self, name: &str) -> bool {
        self.read().names.contains(name)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Known> {
        self.known.read().unwrap_or_else(|e| e.into_inner())
    }
}
