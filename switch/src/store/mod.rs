//! Where the controller keeps its state: a key-value [`Store`] with etcd v3's
//! data model, so the same controller runs on the embedded file store (one
//! host), the memory store (simulator, tests) or etcd (several hosts sharing
//! networks, a later issue) without change.
//!
//! # Data model (etcd v3's)
//! - Keys are `/`-separated paths (`networks/<id>`, `ipam/local/10.1.0.0/24`,
//!   ...); values are JSON documents.
//! - The store has a [`Revision`]: every committed transaction that writes
//!   something moves it to exactly one past the revision before it, and all
//!   its writes carry that new revision. Other writers move it too, so the
//!   revisions one writer sees are increasing but not consecutive: on etcd
//!   the revision is the whole cluster's (writes outside our key prefix and
//!   deletions by lease expiry count), and the change feed skips the
//!   revisions that wrote nothing of ours. A writer may conclude "nobody
//!   wrote in between" only when its commit's revision is exactly one past
//!   the revision of its view (the controller does just that, and reloads
//!   otherwise). Each key carries the revision that created it
//!   (`create_revision`) and the one that last wrote it (`mod_revision`).
//!   A fresh store is at revision 0 (a fresh etcd at 1).
//! - [`Store::load`] returns every key with its revisions, and the store
//!   revision they were read at ([`StoreContents`]).
//! - A [`Transaction`] holds [`Compare`] clauses and writes (puts and
//!   deletes). The writes are applied, atomically and under one new
//!   revision, only if every compare holds; otherwise nothing changes and
//!   [`Store::commit`] returns [`CommitOutcome::Conflict`] naming the first
//!   key whose compare failed. A conflict is an expected outcome when several
//!   writers share a store, not an error: the writer reloads and retries.
//! - [`Store::changes_since`] is the change feed (etcd's watch from a
//!   revision): every write after a revision, in order. The history is
//!   bounded; asking for changes older than it, or for a revision the store
//!   never reached, is a [`StoreError::Compacted`] /
//!   [`StoreError::RevisionAhead`] that tells the caller to reload.
//!
//! Each controller operation commits everything it touched in one
//! transaction, so a crash leaves either the state before the operation or
//! the state after it, never half of both; its compares make a concurrent
//! change by another writer a conflict instead of a lost update.
//!
//! # Session leases
//! [`Transaction::put_leased`] writes a key that belongs to the writer's
//! session: a store shared between hosts (etcd) attaches its session lease,
//! kept alive by the store itself, so the key disappears when the writer
//! dies (stops renewing for the lease's TTL), and that deletion appears in
//! the change feed like any delete. A store nobody else shares
//! ([`FileStore`], [`MemoryStore`]) has no sessions: there a leased put is a
//! plain put and the key stays until deleted. When a store finds its
//! session lost (expired while it could not reach the cluster), its next
//! commit fails with [`StoreError::LeaseLost`] and writes nothing: the keys
//! of the old session are gone, and the writer must write them again (the
//! store has started a new session by then).

mod file;
mod keyspace;
mod memory;

pub use file::{FileStore, Recovery};
pub use memory::MemoryStore;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// A point in the store's history. Every write transaction moves it one
/// past the revision before it (other writers' transactions included, so
/// one writer sees gaps). Revision 0 is the empty store.
pub type Revision = u64;

/// How many revisions of history a store keeps for
/// [`Store::changes_since`] unless told otherwise.
pub const DEFAULT_HISTORY: u64 = 1000;

/// One key's value and revisions.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The JSON document stored under the key.
    pub value: Value,
    /// The revision that created the key (since it last did not exist).
    pub create_revision: Revision,
    /// The revision that last wrote the key.
    pub mod_revision: Revision,
}

/// Every key of a store and its entry, ordered by key.
pub type Entries = BTreeMap<String, Entry>;

/// What [`Store::load`] returns: every entry, and the store revision at
/// which they were read (the point to ask for later changes from).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreContents {
    /// The store revision the entries were read at.
    pub revision: Revision,
    /// Every key.
    pub entries: Entries,
}

impl StoreContents {
    /// The value under `key`, if present.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.entries.get(key).map(|e| &e.value)
    }
}

/// A condition on one key that a [`Transaction`] requires (etcd's Compare).
#[derive(Clone, Debug, PartialEq)]
pub enum Compare {
    /// The key exists and was last written at exactly this revision.
    ModRevision {
        /// The key.
        key: String,
        /// Its expected `mod_revision`.
        revision: Revision,
    },
    /// The key does not exist.
    Missing {
        /// The key.
        key: String,
    },
    /// The key exists (any value).
    Exists {
        /// The key.
        key: String,
    },
    /// The key exists and holds exactly this value.
    ValueEquals {
        /// The key.
        key: String,
        /// The expected value.
        value: Value,
    },
}

impl Compare {
    /// The key this compare is about.
    pub fn key(&self) -> &str {
        match self {
            Compare::ModRevision { key, .. }
            | Compare::Missing { key }
            | Compare::Exists { key }
            | Compare::ValueEquals { key, .. } => key,
        }
    }

    /// True when the compare holds against `entries`.
    pub fn holds(&self, entries: &Entries) -> bool {
        let entry = entries.get(self.key());
        match self {
            Compare::ModRevision { revision, .. } => {
                entry.is_some_and(|e| e.mod_revision == *revision)
            }
            Compare::Missing { .. } => entry.is_none(),
            Compare::Exists { .. } => entry.is_some(),
            Compare::ValueEquals { value, .. } => entry.is_some_and(|e| &e.value == value),
        }
    }
}

/// A set of compares and writes, committed atomically by [`Store::commit`]:
/// the writes are applied only if every compare holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transaction {
    /// Conditions that must all hold.
    pub compares: Vec<Compare>,
    /// Keys to create or overwrite.
    pub puts: BTreeMap<String, Value>,
    /// Keys to delete (deleting a missing key is not an error).
    pub deletes: BTreeSet<String>,
    /// The keys of `puts` that belong to the writer's session
    /// ([`Transaction::put_leased`]); always a subset of `puts`' keys.
    pub leased: BTreeSet<String>,
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a condition the transaction requires.
    pub fn require(&mut self, compare: Compare) {
        self.compares.push(compare);
    }

    /// Records a write of `value` under `key` (cancels an earlier delete
    /// or leased put of it).
    pub fn put(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        self.deletes.remove(&key);
        self.leased.remove(&key);
        self.puts.insert(key, value);
    }

    /// Records a write of `value` under `key` that belongs to the writer's
    /// session: the key disappears when the session dies (see "Session
    /// leases" in the module docs). [`FileStore`] and [`MemoryStore`] have
    /// no sessions and store it as a plain [`Transaction::put`].
    pub fn put_leased(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        self.deletes.remove(&key);
        self.leased.insert(key.clone());
        self.puts.insert(key, value);
    }

    /// True when the put of `key` is a [`Transaction::put_leased`].
    pub fn is_leased(&self, key: &str) -> bool {
        self.leased.contains(key)
    }

    /// Records a delete of `key` (cancels an earlier write).
    pub fn delete(&mut self, key: impl Into<String>) {
        let key = key.into();
        self.puts.remove(&key);
        self.leased.remove(&key);
        self.deletes.insert(key);
    }

    /// True when the transaction writes nothing (it may still compare).
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// The result of [`Store::commit`] when the store itself did not fail.
#[must_use]
#[derive(Clone, Debug, PartialEq)]
pub enum CommitOutcome {
    /// Every compare held and the writes are durable. `revision` is the
    /// store revision after the commit (unchanged if nothing was written).
    Applied {
        /// The store revision the transaction's writes carry.
        revision: Revision,
    },
    /// A compare failed; nothing was written.
    Conflict(Conflict),
}

/// A compare that failed: which key, what was required, what was found.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// The compare that did not hold.
    pub compare: Compare,
    /// The key's `mod_revision` at the time, `None` when it was missing.
    pub found: Option<Revision>,
}

impl Conflict {
    /// The key whose compare failed.
    pub fn key(&self) -> &str {
        self.compare.key()
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let found = match self.found {
            Some(r) => format!("it was last written at revision {r}"),
            None => "it does not exist".to_string(),
        };
        let wanted = match &self.compare {
            Compare::ModRevision { revision, .. } => {
                format!("last written at revision {revision}")
            }
            Compare::Missing { .. } => "not to exist".to_string(),
            Compare::Exists { .. } => "to exist".to_string(),
            Compare::ValueEquals { .. } => "to hold the value read earlier".to_string(),
        };
        write!(f, "key {} was expected {wanted}, but {found}", self.key())
    }
}

/// One write in the change feed.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The key written.
    pub key: String,
    /// What happened to it.
    pub kind: EventKind,
    /// The revision of the transaction that wrote it.
    pub revision: Revision,
}

/// A put or a delete, as the change feed reports it.
#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    /// The key now holds `value`.
    Put {
        /// The new value.
        value: Value,
        /// The revision that created the key.
        create_revision: Revision,
    },
    /// The key was deleted.
    Delete,
}

/// What [`Store::changes_since`] returns: the writes after a revision, in
/// commit order, and the store revision they bring the caller to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreChanges {
    /// The store revision after the last event (the next point to ask from).
    pub revision: Revision,
    /// Every write after the requested revision.
    pub events: Vec<Event>,
}

/// Persistent, transactional key-value storage for controller state.
///
/// Several writers (controllers on several hosts) may share one store:
/// [`MemoryStore`] clones share their contents, etcd shares across
/// machines. Conflicts between them are [`CommitOutcome::Conflict`]s.
pub trait Store: Send {
    /// Reads every key with its revisions. A fresh store is empty at
    /// revision 0.
    fn load(&mut self) -> Result<StoreContents, StoreError>;

    /// Checks every compare of `txn` and, if all hold, durably applies its
    /// writes as one atomic step under a new revision: when this returns
    /// `Applied`, the change survives a crash. On `Conflict` or `Err`,
    /// nothing changed.
    fn commit(&mut self, txn: &Transaction) -> Result<CommitOutcome, StoreError>;

    /// Every write after `revision`, in order. Fails with
    /// [`StoreError::Compacted`] when that part of the history is no longer
    /// kept and [`StoreError::RevisionAhead`] when the store never reached
    /// `revision`; either way the caller reloads with [`Store::load`].
    fn changes_since(&mut self, revision: Revision) -> Result<StoreChanges, StoreError>;

    /// A short human description (`file:/var/lib/switchyard/state.json`).
    fn describe(&self) -> String;
}

/// Why the store could not load, save or report state.
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
    /// The state file is missing or unreadable while an older copy exists:
    /// starting empty would lose that state (and the next commits would
    /// replace the copy), so the user decides.
    #[error("{path} is {problem} but {found}")]
    StateMissing {
        /// The state file.
        path: PathBuf,
        /// `missing` or `unreadable (...)`.
        problem: String,
        /// What was found instead and what the user can do
        /// (`state.json.prev exists (written at ...); start with ...`).
        found: String,
    },
    /// Recovery from the previous copy was asked for but is not possible.
    #[error("cannot recover from {path}: {reason}")]
    RecoveryFailed {
        /// The previous copy.
        path: PathBuf,
        /// Why not.
        reason: String,
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
    /// The change feed no longer holds the requested part of the history.
    #[error(
        "changes since revision {requested} are no longer kept (the history starts after \
         revision {oldest}); reload the whole state"
    )]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision changes can be asked from.
        oldest: Revision,
    },
    /// The change feed was asked for a revision the store has not reached
    /// (the store was replaced or restored from an older copy).
    #[error(
        "revision {requested} is ahead of the store's revision {current} (the store was \
         replaced or restored from an older copy); reload the whole state"
    )]
    RevisionAhead {
        /// The revision asked for.
        requested: Revision,
        /// The store's current revision.
        current: Revision,
    },
    /// A shared store (etcd) did not answer in time: nothing is known to
    /// have changed (a commit that timed out may still have been applied;
    /// reload to find out).
    #[error(
        "the etcd cluster at {endpoints} cannot be reached ({detail}); check that etcd is \
         running and listening there (etcdctl --endpoints {endpoints} endpoint health), \
         that this host can reach it (firewall, TLS, address), and that the endpoints \
         configured for switchyard are right"
    )]
    Unreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// What failed (no answer within 2 s, connection refused, ...).
        detail: String,
    },
    /// The writer's session lease expired (typically while the store could
    /// not reach the cluster for longer than its TTL): every key it wrote
    /// with [`Transaction::put_leased`] has been deleted. Nothing of the
    /// failed commit was written; the store has a new session, so the
    /// writer re-registers (writes its leased keys again) and goes on.
    #[error(
        "the session lease {lease:x} of this host expired ({detail}): the cluster deleted \
         the keys it held; write them again (re-register) under the new session"
    )]
    LeaseLost {
        /// The lost lease's id.
        lease: i64,
        /// How the loss was noticed.
        detail: String,
    },
    /// A shared store refused a request it understood (too many operations
    /// in one transaction, a request too large, missing permissions, a bad
    /// configuration): retrying the same request will not help.
    #[error("{store} refused the request: {detail}")]
    Rejected {
        /// The store (`etcd at http://...`).
        store: String,
        /// The store's reason and what to change.
        detail: String,
    },
}
