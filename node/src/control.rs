//! Control over work, as one node holds it: which lanes and kinds are paused
//! ([`PauseState`], kept by [`crate::actors::controller`] from PostgreSQL), and the runs in
//! progress here ([`Running`]), so that a cancelled task is told to stop.

use crate::lanes::Lanes;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use uuid::Uuid;

/// A node's control state. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    pub paused: PauseState,
    pub running: Arc<Running>,
}

impl Control {
    pub fn new(lanes: Lanes) -> Self {
        Control {
            paused: PauseState::new(lanes),
            running: Default::default(),
        }
    }
}

/// The paused lanes and kinds (`lane:<name>`, `kind:<name>`). Cheap to clone.
#[derive(Clone)]
pub struct PauseState {
    targets: Arc<RwLock<BTreeSet<String>>>,
    lanes: Lanes,
}

impl PauseState {
    pub fn new(lanes: Lanes) -> Self {
        PauseState {
            targets: Default::default(),
            lanes,
        }
    }

    /// What is paused now (from the `paused` table).
    pub fn set(&self, targets: impl IntoIterator<Item = String>) {
        let targets = targets.into_iter().collect();
        *self.targets.write().unwrap_or_else(|e| e.into_inner()) = targets;
    }

    pub fn add(&self, target: String) {
        self.targets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(target);
    }

    pub fn remove(&self, target: &str) {
        self.targets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(target);
    }

    pub fn targets(&self) -> Vec<String> {
        let targets = self.targets.read().unwrap_or_else(|e| e.into_inner());
        targets.iter().cloned().collect()
    }

    /// Whether tasks of `kind` wait: the kind or its lane is paused.
    pub fn holds(&self, kind: &str) -> bool {
        let targets = self.targets.read().unwrap_or_else(|e| e.into_inner());
        if targets.is_empty() {
            return false;
        }
        let lane = self.lanes.of_kind(kind);
        targets.contains(&format!("kind:{kind}"))
            || targets.contains(&format!("lane:{}", lane.name))
    }

    /// Every kind held now: the built-in kinds held, and the external kinds paused (by kind,
    /// or by their lane `ext.<kind>`).
    pub fn held_kinds(&self) -> Vec<String> {
        let mut held: Vec<String> = self
            .lanes
            .all()
            .iter()
            .flat_map(|l| l.kinds.iter().copied())
            .filter(|k| self.holds(k))
            .map(String::from)
            .collect();
        let targets = self.targets.read().unwrap_or_else(|e| e.into_inner());
        for target in targets.iter() {
            let kind = target.strip_prefix("kind:").or_else(|| {
                target
                    .strip_prefix("lane:")
                    .and_then(|l| l.strip_prefix(crate::lanes::EXTERNAL))
            });
            if let Some(kind) = kind.filter(|k| !self.lanes.builtin(k)) {
                held.push(kind.to_string());
            }
        }
        held
    }

    /// Whether `name` is a lane of this node (for `PAUSE lane <name>`); an external kind's
    /// lane `ext.<kind>` is checked as its kind.
    pub fn is_lane(&self, name: &str) -> bool {
        self.lanes.all().iter().any(|l| l.name == name)
    }
}

/// The runs in progress on this node's workers, by task id: each with the flag that tells it
/// to stop.
#[derive(Debug, Default)]
pub struct Running(Mutex<HashMap<Uuid, Arc<AtomicBool>>>);

/// A run's place in [`Running`], given up when dropped.
pub struct RunSlot<'a> {
    running: &'a Running,
    id: Uuid,
    pub cancel: Arc<AtomicBool>,
}

impl Drop for RunSlot<'_> {
    fn drop(&mut self) {
        self.running.lock().remove(&self.id);
    }
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<AtomicBool>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Note that task `id` runs now.
    pub fn enter(&self, id: Uuid) -> RunSlot<'_> {
        let cancel = Arc::new(AtomicBool::new(false));
        self.lock().insert(id, cancel.clone());
        RunSlot {
            running: self,
            id,
            cancel,
        }
    }

    /// Note that task `id` runs here, held by a worker elsewhere (an external kind's lease):
    /// its flag is looked at by the holder. Given up with [`Running::release`].
    pub fn hold(&self, id: Uuid) -> Arc<AtomicBool> {
        let cancel = Arc::new(AtomicBool::new(false));
        self.lock().insert(id, cancel.clone());
        cancel
    }

    /// Task `id` no longer runs here (see [`Running::hold`]).
    pub fn release(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    /// Tell task `id` to stop, if it runs here; answers whether it did.
    pub fn cancel(&self, id: Uuid) -> bool {
        match self.lock().get(&id) {
            Some(flag) => {
                flag.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Whether task `id` runs here now.
    pub fn contains(&self, id: Uuid) -> bool {
        self.lock().contains_key(&id)
    }

    pub fn ids(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_known_while_it_runs_and_told_to_stop() {
        let running = Running::default();
        let id = Uuid::now_v7();
        {
            let slot = running.enter(id);
            assert_eq!(running.ids(), vec![id]);
            assert!(running.cancel(id));
            assert!(slot.cancel.load(Ordering::Relaxed));
        }
        assert!(running.ids().is_empty());
        assert!(!running.cancel(id));
    }
}
