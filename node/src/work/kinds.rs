//! Which external kinds a node accepts: those declared in `[external] kinds`, and those a
//! worker registered (in PostgreSQL, kept `external.registration_ttl_secs` after a worker
//! last said `WORK` for them). Every node keeps the registered ones in memory, refreshed by
//! its [`super::WorkHub`] every [`REFRESH`], and asks the database about a kind it does not
//! know yet before refusing it.

use crate::db::{DbError, Store};
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How often a node reads the registered kinds again.
pub const REFRESH: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct ExternalKinds {
    declared: Arc<BTreeSet<String>>,
    registered: Arc<RwLock<BTreeSet<String>>>,
    ttl: Duration,
    store: Store,
}

impl ExternalKinds {
    pub fn new(declared: &[String], ttl: Duration, store: Store) -> Self {
        ExternalKinds {
            declared: Arc::new(declared.iter().cloned().collect()),
            registered: Arc::default(),
            ttl,
            store,
        }
    }

    /// Whether `kind` is known as external now (declared, or registered when last read).
    pub fn knows(&self, kind: &str) -> bool {
        self.declared.contains(kind)
            || self
                .registered
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(kind)
    }

    /// Whether `kind` is external, asking the database if it is not known here yet.
    pub async fn find(&self, kind: &str) -> Result<bool, DbError> {
        if !self.knows(kind) && protocol::work::valid_kind_name(kind) {
            self.refresh().await?;
        }
        Ok(self.knows(kind))
    }

    /// Register `kinds` (a worker said `WORK` for them).
    pub async fn register(&self, kinds: &[String]) -> Result<(), DbError> {
        self.store.register_kinds(kinds).await?;
        let mut registered = self.registered.write().unwrap_or_else(|e| e.into_inner());
        registered.extend(kinds.iter().cloned());
        Ok(())
    }

    /// Read the registered kinds again.
    pub async fn refresh(&self) -> Result<(), DbError> {
        let since = chrono::Utc::now()
            - chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX);
        let now: BTreeSet<String> = self
            .store
            .registered_kinds(since)
            .await?
            .into_iter()
            .collect();
        *self.registered.write().unwrap_or_else(|e| e.into_inner()) = now;
        Ok(())
    }

    /// Every external kind known now, in order.
    pub fn names(&self) -> Vec<String> {
        let registered = self.registered.read().unwrap_or_else(|e| e.into_inner());
        self.declared.union(&registered).cloned().collect()
    }
}
