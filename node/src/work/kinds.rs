//! Which external kinds a node accepts: those declared in `[external] kinds`, and those a
//! worker registered (in PostgreSQL, kept `external.registration_ttl_secs` after a worker
//! last said `WORK` for them). Every node keeps the registered ones in memory, refreshed by
//! its [`super::WorkHub`] every [`REFRESH`], and asks the database about a kind it does not
//! know yet before refusing it.

use crate::db::{DbError, Store};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often a node reads the registered kinds again.
pub const REFRESH: Duration = Duration::from_secs(2);
/// A kind this node registered is not written again sooner than this (an HTTP worker polls
/// often; a registration lasts `external.registration_ttl_secs`, at least a minute).
const REWRITE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct ExternalKinds {
    declared: Arc<BTreeSet<String>>,
    registered: Arc<RwLock<BTreeSet<String>>>,
    /// When this node last wrote each kind's registration.
    written: Arc<Mutex<HashMap<String, Instant>>>,
    ttl: Duration,
    store: Store,
}

impl ExternalKinds {
    pub fn new(declared: &[String], ttl: Duration, store: Store) -> Self {
        ExternalKinds {
            declared: Arc::new(declared.iter().cloned().collect()),
            registered: Arc::default(),
            written: Arc::default(),
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

    /// Register `kinds` (a worker said `WORK` for them, or polls for them); a kind written
    /// here within [`REWRITE`] is not written again.
    pub async fn register(&self, kinds: &[String]) -> Result<(), DbError> {
        let stale: Vec<String> = {
            let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = |k: &String| written.get(k).is_some_and(|at| at.elapsed() < REWRITE);
            kinds.iter().filter(|k| !fresh(k)).cloned().collect()
        };
        if stale.is_empty() {
            return Ok(());
        }
        self.store.register_kinds(&stale).await?;
        let now = Instant::now();
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.retain(|_, at| at.elapsed() < REWRITE);
        written.extend(stale.iter().map(|k| (k.clone(), now)));
        drop(written);
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
