//! An in-memory store: for the simulator (whose hosts "crash" and restart
//! without touching the disk) and for tests.

use super::keyspace::Keyspace;
use super::{
    CommitOutcome, Revision, Store, StoreChanges, StoreContents, StoreError, Transaction,
    DEFAULT_HISTORY,
};
use std::sync::{Arc, Mutex, MutexGuard};

/// A store that lives in memory. Clones share the same contents, so a
/// simulated host can be "restarted" with a new controller over the same
/// store, exactly like a daemon restarting over its state directory, and
/// several controllers (hosts) can share one store, as they would share etcd.
#[derive(Clone, Debug)]
pub struct MemoryStore {
    keyspace: Arc<Mutex<Keyspace>>,
    fail_next_commit: Arc<Mutex<bool>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_history(DEFAULT_HISTORY)
    }
}

impl MemoryStore {
    /// An empty store keeping [`DEFAULT_HISTORY`] revisions of changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping `revisions` revisions of changes for
    /// [`Store::changes_since`].
    pub fn with_history(revisions: u64) -> Self {
        MemoryStore {
            keyspace: Arc::new(Mutex::new(Keyspace::new(
                StoreContents::default(),
                revisions,
            ))),
            fail_next_commit: Arc::new(Mutex::new(false)),
        }
    }

    /// Makes the next commit fail (once) with an I/O error, to test that a
    /// failed write leaves the controller's state unchanged.
    pub fn fail_next_commit(&self) {
        *self
            .fail_next_commit
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// A copy of the current contents.
    pub fn contents(&self) -> StoreContents {
        self.keyspace().contents()
    }

    fn keyspace(&self) -> MutexGuard<'_, Keyspace> {
        // A panic elsewhere while holding the lock leaves the key space
        // consistent (every change is one `install`), so keep using it.
        self.keyspace.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn load(&mut self) -> Result<StoreContents, StoreError> {
        Ok(self.contents())
    }

    fn commit(&mut self, txn: &Transaction) -> Result<CommitOutcome, StoreError> {
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
        Ok(self.keyspace().commit(txn))
    }

    fn changes_since(&mut self, revision: Revision) -> Result<StoreChanges, StoreError> {
        self.keyspace().changes_since(revision)
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn clones_share_contents_revisions_and_history() {
        let mut a = MemoryStore::new();
        let mut b = a.clone();
        let mut t = Transaction::new();
        t.put("k", json!(1));
        assert_eq!(
            a.commit(&t).unwrap(),
            CommitOutcome::Applied { revision: 1 }
        );
        assert_eq!(b.load().unwrap().revision, 1);
        assert_eq!(b.changes_since(0).unwrap().events.len(), 1);
    }

    #[test]
    fn an_injected_failure_changes_nothing() {
        let mut s = MemoryStore::new();
        s.fail_next_commit();
        let mut t = Transaction::new();
        t.put("k", json!(1));
        assert!(matches!(s.commit(&t), Err(StoreError::Io { .. })));
        assert_eq!(s.load().unwrap(), StoreContents::default());
        assert!(s.commit(&t).is_ok(), "the failure is injected once");
    }
}
