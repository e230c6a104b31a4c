//! Access: who a connection is (`AUTH`), whether its token is still live, and what its role
//! may do. The session keeps the [`Identity`]; the services take it with each request.

use super::{ServiceError, Services};
use crate::auth::tokens::{Secret, TokenStore};
use crate::auth::{Identity, Mode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How a node lets clients in. Cheap to clone.
#[derive(Clone)]
pub struct Access {
    pub mode: Mode,
    pub tokens: TokenStore,
    /// Each token's submissions per second, on this node.
    pub rates: Rates,
    /// Each token's waiting submissions on this node (they have no row until they end).
    pub waiting: Waiting,
    /// Failed HTTP authentications per client address.
    pub failures: crate::auth::backoff::Backoff,
}

/// Waiting submissions per token on this node.
#[derive(Clone, Default)]
pub struct Waiting(Arc<Mutex<HashMap<String, usize>>>);

/// One waiting submission, counted while it lives.
pub struct WaitingOne {
    of: Waiting,
    name: String,
}

impl Waiting {
    pub fn count(&self, name: &str) -> usize {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(name).copied().unwrap_or(0)
    }

    pub fn enter(&self, name: &str) -> WaitingOne {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(name.to_string()).or_default() += 1;
        WaitingOne {
            of: self.clone(),
            name: name.to_string(),
        }
    }
}

impl Drop for WaitingOne {
    fn drop(&mut self) {
        let mut map = self.of.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.name) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.name);
            }
        }
    }
}

/// A token bucket per token (by name): `rate` submissions a second, bursts of up to one
/// second's worth. Kept per node: a fleet of N nodes lets a token submit up to N × rate.
#[derive(Clone, Default)]
pub struct Rates(Arc<Mutex<HashMap<String, Bucket>>>);

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Rates {
    /// Take one submission for `name` at `rate` a second: `Err(ms)` to wait if none is left.
    pub fn take(&self, name: &str, rate: f64, now: Instant) -> Result<(), u64> {
        let burst = rate.max(1.0);
        let mut buckets = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(name.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / rate.max(f64::MIN_POSITIVE);
        Err((wait * 1000.0).ceil().min(3_600_000.0) as u64)
    }
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

    /// Whether `who`'s token is still live (revoked tokens are refused on every node within
    /// a second or two).
    pub async fn still_allowed(
        &self,
        who: &Identity,
        secret: Option<&Secret>,
    ) -> Result<(), ServiceError> {
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

    /// Resolves once `who`'s token is revoked (looked at every [`crate::auth::tokens::REFRESH`]
    /// in the node's copy of the live tokens); never for an open node's identity.
    pub async fn revoked(&self, who: &Identity) {
        let Some(name) = &who.name else {
            return std::future::pending().await;
        };
        while self.access.tokens.is_live(name) {
            tokio::time::sleep(crate::auth::tokens::REFRESH).await;
        }
    }

    /// Whether `who` may submit a task of `size` bytes now: its role, its `max_payload`, its
    /// `rate` (which this takes one from).
    pub fn admit(&self, who: &Identity, size: u64) -> Result<(), ServiceError> {
        Services::may_submit(who)?;
        let limits = &who.limits;
        if let Some(max) = limits.max_payload.filter(|max| size > *max) {
            return Err(ServiceError::OverMaxPayload { size, max });
        }
        if let (Some(rate), Some(name)) = (limits.rate, &who.name) {
            self.access
                .rates
                .take(name, rate, Instant::now())
                .map_err(|retry_after_ms| {
                    self.handles.metrics.rate_limited.inc();
                    ServiceError::RateLimited {
                        rate,
                        retry_after_ms,
                    }
                })?;
        }
        Ok(())
    }

    /// Refuse a submission past `who`'s `max_inflight`: its `queued` and `running` tasks (in
    /// the database, fleet-wide) and its waiting submissions on this node.
    pub async fn check_inflight(&self, who: &Identity) -> Result<(), ServiceError> {
        let (Some(max), Some(name)) = (who.limits.max_inflight, &who.name) else {
            return Ok(());
        };
        let queued = self.handles.store.count_unfinished(name).await?;
        let unfinished = queued.max(0) as usize + self.access.waiting.count(name);
        if unfinished >= max as usize {
            return Err(ServiceError::QuotaExceeded(format!(
                "this token has {unfinished} unfinished tasks, its max_inflight is {max}; submit again when some have ended"
            )));
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_rate_allows_a_second_of_burst_then_one_per_interval() {
        let rates = Rates::default();
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(rates.take("a", 4.0, t0).is_ok());
        }
        let wait = rates.take("a", 4.0, t0).unwrap_err();
        assert_eq!(wait, 250, "one more in a quarter second");
        assert!(rates
            .take("a", 4.0, t0 + Duration::from_millis(250))
            .is_ok());
        // Tokens do not share a bucket.
        assert!(rates.take("b", 4.0, t0).is_ok());
        // A slow rate still allows one at a time.
        assert!(rates.take("slow", 0.5, t0).is_ok());
        assert_eq!(rates.take("slow", 0.5, t0).unwrap_err(), 2000);
    }
}
