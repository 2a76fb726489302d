//! An in-memory store: for the simulator (whose hosts "crash" and restart
//! without touching the disk) and for tests.

use super::{Snapshot, Store, StoreError, Transaction};
use std::sync::{Arc, Mutex};

/// A store that lives in memory. Clones share the same contents, so a
/// simulated host can be "restarted" with a new controller over the same
/// store, exactly like a daemon restarting over its state directory.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    data: Arc<Mutex<Snapshot>>,
    fail_next_commit: Arc<Mutex<bool>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next commit fail (once), to test that a failed write
    /// leaves the controller's state unchanged.
    pub fn fail_next_commit(&self) {
        *self
            .fail_next_commit
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> Snapshot {
        self.data.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<Snapshot, StoreError> {
        Ok(self.snapshot())
    }

    fn commit(&mut self, txn: &Transaction) -> Result<(), StoreError> {
        let mut fail = self
            .fail_next_commit
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if std::mem::take(&mut *fail) {
            return Err(StoreError::Io {
                action: "write",
                path: "memory".into(),
                source: std::io::Error::other("injected failure"),
            });
        }
        txn.apply_to(&mut self.data.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}
