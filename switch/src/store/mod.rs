//! Where the controller keeps its state: a key-value [`Store`] with atomic
//! transactions, so the same controller runs on an embedded file store (one
//! host) or etcd (several hosts sharing networks, a later issue) without
//! change.
//!
//! Keys are `/`-separated paths (`networks/<id>`, `endpoints/<id>`, ...);
//! values are JSON documents. Each controller operation commits all the
//! objects it touched in one [`Transaction`], so a crash leaves either the
//! state before the operation or the state after it, never half of both.

mod file;
mod memory;

pub use file::FileStore;
pub use memory::MemoryStore;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Every key and its JSON value, as loaded from a store.
pub type Snapshot = BTreeMap<String, Value>;

/// A set of writes applied atomically by [`Store::commit`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transaction {
    /// Keys to create or overwrite.
    pub puts: BTreeMap<String, Value>,
    /// Keys to delete (deleting a missing key is not an error).
    pub deletes: BTreeSet<String>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a write of `value` under `key` (cancels an earlier delete).
    pub fn put(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        self.deletes.remove(&key);
        self.puts.insert(key, value);
    }

    /// Records a delete of `key` (cancels an earlier write).
    pub fn delete(&mut self, key: impl Into<String>) {
        let key = key.into();
        self.puts.remove(&key);
        self.deletes.insert(key);
    }

    /// True when the transaction changes nothing.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }

    /// Applies the transaction to an in-memory snapshot.
    pub fn apply_to(&self, snapshot: &mut Snapshot) {
        for key in &self.deletes {
            snapshot.remove(key);
        }
        for (key, value) in &self.puts {
            snapshot.insert(key.clone(), value.clone());
        }
    }
}

/// Persistent, transactional key-value storage for controller state.
pub trait Store: Send {
    /// Reads every key. A fresh store returns an empty snapshot.
    fn load(&mut self) -> Result<Snapshot, StoreError>;

    /// Durably applies `txn` as one atomic step: when this returns `Ok`, the
    /// change survives a crash; when it returns `Err`, nothing changed.
    fn commit(&mut self, txn: &Transaction) -> Result<(), StoreError>;

    /// A short human description (`file:/var/lib/switchyard/state.json`).
    fn describe(&self) -> String;
}

/// Why the store could not load or save state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O error on a store file.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What we were doing (`write`, `fsync`, ...).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The state file is damaged (torn write, disk corruption, manual edit).
    /// Never silently reset: the user decides.
    #[error(
        "state file {path} is damaged ({detail}); nothing was changed. \
         {hint}"
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What check failed.
        detail: String,
        /// What the user can do.
        hint: String,
    },
    /// Another process holds the state directory.
    #[error(
        "state directory {dir} is in use by another switchyard daemon{holder}; \
         stop it first, or pass a different --state-dir"
    )]
    Locked {
        /// The state directory.
        dir: PathBuf,
        /// ` (pid N)` when known, else empty.
        holder: String,
    },
    /// The state was written by a newer, incompatible version.
    #[error("state file {path} has format version {found}, this build reads up to {supported}; upgrade switchyard")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u64,
        /// The newest version this build understands.
        supported: u64,
    },
}
