//! Switchyard's [`Store`] on etcd v3, so that daemons on several hosts share
//! networks, address pools and endpoints, and learn of each other's changes
//! and deaths.
//!
//! # Mapping
//! - Store key `networks/x` is etcd key `<prefix>networks/x` (prefix
//!   `/switchyard/` unless given); values are canonical JSON
//!   ([`canonical_json`]), so a value compare is a byte compare.
//! - [`Store::load`] ranges over the prefix in pages, every page at the
//!   revision of the first.
//! - [`Store::commit`] is one etcd Txn: `ModRevision` is `mod_revision ==`,
//!   `Missing` is `create_revision == 0`, `Exists` is `create_revision > 0`,
//!   `ValueEquals` is `value ==` the canonical bytes; the Txn's else branch
//!   reads every compared key at the same revision, so a conflict names the
//!   failed compare without another round trip. Leased puts carry the
//!   session lease.
//! - Revisions are etcd's: the whole cluster's, so they have gaps (writes
//!   outside the prefix, lease expiries); see `switchyard_switch::store`.
//! - [`Store::changes_since`] is served from a watch on the prefix that the
//!   store keeps open from its start and buffers (bounded). etcd 3.4's
//!   progress notifications can overtake events, so completeness is never
//!   taken from them: the store reads the current revision R and the newest
//!   `mod_revision` M under the prefix; the buffer is complete once the
//!   watch delivered M, and revisions after M that touched the prefix can
//!   only be deletions, which a short watch over the whole key space from
//!   there finds exactly (every revision has at least one event, so that
//!   watch reaches R). The same whole-key-space watch serves requests older
//!   than the buffer, and reports etcd's compaction as
//!   [`StoreError::Compacted`]. With etcd authentication on, the store's
//!   user therefore needs read access to the whole key space.
//!
//! # Threads and time
//! [`Store`] is synchronous and is called from plain threads and from
//! inside a tokio runtime (the daemon's API), so the etcd client runs on a
//! thread of its own with its own current-thread runtime; calls travel over
//! channels and each waits at most [`EtcdOptions::timeout`] (2 s), then
//! fails with [`StoreError::Unreachable`]. The same thread keeps the session
//! lease alive and the watch open, reconnecting after etcd comes back: the
//! store never needs reopening.
//!
//! # Session
//! The store holds one lease ([`EtcdOptions::lease_ttl`], 10 s by default,
//! at least 2 s) for [`Transaction::put_leased`](switchyard_switch::store::Transaction::put_leased).
//! Dropping the store stops renewing it (the keys vanish one TTL later, as
//! after a crash); [`EtcdStore::close`] revokes it at once. When etcd
//! reports the lease gone, the store takes a new one and its next commit
//! fails with [`StoreError::LeaseLost`] so the daemon re-registers.

mod canonical;
mod worker;

pub use canonical::canonical_json;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use switchyard_switch::store::{
    CommitOutcome, Revision, Store, StoreChanges, StoreContents, StoreError, Transaction,
};
use worker::{Op, Reply, Request, Shared};

/// The key prefix used when none is given.
pub const DEFAULT_PREFIX: &str = "/switchyard/";

/// The shortest session lease etcd is asked for: below it a busy host
/// would lose its session to a scheduling hiccup.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(2);

/// How an [`EtcdStore`] talks to etcd.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// The most any call (connect, load, commit, changes) waits before
    /// failing with [`StoreError::Unreachable`]. Default 2 s.
    pub timeout: Duration,
    /// The session lease's time to live: how long after this host dies its
    /// leased keys vanish. Default 10 s, at least [`MIN_LEASE_TTL`].
    pub lease_ttl: Duration,
    /// Keys per page when loading. Default 1000.
    pub page_size: i64,
    /// Change-feed events kept in memory; older requests take a one-off
    /// watch. Default 10 000.
    pub buffered_events: usize,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            timeout: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(10),
            page_size: 1000,
            buffered_events: 10_000,
        }
    }
}

/// Counters of what the store met, for `inspect` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EtcdStats {
    /// Keys or events under the prefix skipped because their key was not
    /// UTF-8 or their value not JSON (written by something else).
    pub malformed: u64,
    /// Session leases lost and replaced.
    pub leases_lost: u64,
    /// Times the background watch was (re)established.
    pub watch_starts: u64,
    /// Change requests that needed a one-off watch over the key space.
    pub catch_ups: u64,
}

/// A [`Store`] in an etcd v3 cluster, shared by every host given the same
/// endpoints and prefix.
pub struct EtcdStore {
    describe: String,
    timeout: Duration,
    requests: tokio::sync::mpsc::UnboundedSender<Request>,
    notifier: Receiver<Revision>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("store", &self.describe)
            .field("lease", &self.lease_id())
            .finish()
    }
}

impl EtcdStore {
    /// Connects to the cluster at `endpoints` (`http://127.0.0.1:2379`),
    /// keeping keys under `prefix` (`""` means [`DEFAULT_PREFIX`]; a `/` is
    /// added at the end when missing), takes the session lease and opens
    /// the change watch. Fails with [`StoreError::Unreachable`] when etcd
    /// does not answer within the timeout, [`StoreError::Rejected`] for
    /// options that cannot work.
    pub fn connect(
        endpoints: &[String],
        prefix: &str,
        options: EtcdOptions,
    ) -> Result<EtcdStore, StoreError> {
        let joined = endpoints.join(",");
        let rejected = |detail: String| StoreError::Rejected {
            store: format!("etcd at {joined}"),
            detail,
        };
        if endpoints.is_empty() {
            return Err(rejected("no etcd endpoints were given".into()));
        }
        if options.lease_ttl < MIN_LEASE_TTL {
            return Err(rejected(format!(
                "a session lease of {:?} is too short; use at least {:?}",
                options.lease_ttl, MIN_LEASE_TTL
            )));
        }
        if options.timeout.is_zero() || options.page_size < 1 || options.buffered_events < 1 {
            return Err(rejected(
                "the timeout, the page size and the buffered events must be positive".into(),
            ));
        }
        let mut prefix = if prefix.is_empty() {
            DEFAULT_PREFIX.to_string()
        } else {
            prefix.to_string()
        };
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let describe = format!("etcd:{joined}{prefix}");
        let timeout = options.timeout;
        let started = worker::start(endpoints.to_vec(), prefix, options)?;
        Ok(EtcdStore {
            describe,
            timeout,
            requests: started.requests,
            notifier: started.notifier,
            shared: started.shared,
            thread: Some(started.thread),
        })
    }

    /// Wakes with a revision whenever the watch delivers changes under the
    /// prefix (other hosts' commits, this store's own, lease expiries), so a
    /// daemon can refresh within one watch round trip instead of polling.
    /// Wake-ups coalesce when nobody reads; the revision is a hint: read
    /// the changes with [`Store::changes_since`].
    pub fn notifier(&self) -> Receiver<Revision> {
        self.notifier.clone()
    }

    /// The id of the current session lease (0 before the first grant).
    pub fn lease_id(&self) -> i64 {
        self.shared.lease_id()
    }

    /// What the store has counted so far.
    pub fn stats(&self) -> EtcdStats {
        self.shared.stats()
    }

    /// Ends the session: revokes the lease (its keys vanish now, with
    /// deletions in every host's feed) and stops the client thread.
    pub fn close(mut self) -> Result<(), StoreError> {
        let result = self.call(Op::Revoke).map(|_| ());
        self.stop();
        result
    }

    fn call(&self, op: Op) -> Result<Reply, StoreError> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        let unreachable = |detail: String| StoreError::Unreachable {
            endpoints: self.shared.endpoints.clone(),
            detail,
        };
        self.requests
            .send(Request { op, reply })
            .map_err(|_| unreachable("the etcd client thread has stopped".into()))?;
        // The worker bounds the call itself; the margin covers its thread
        // being slow to be scheduled, never a second full timeout.
        match answer.recv_timeout(self.timeout + Duration::from_millis(250)) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => {
                Err(unreachable(format!("no answer within {:?}", self.timeout)))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(unreachable("the etcd client thread has stopped".into()))
            }
        }
    }

    fn stop(&mut self) {
        let _ = self.requests.send(Request::shutdown());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EtcdStore {
    /// Stops the client thread without revoking the lease: to the cluster
    /// this host died, and its leased keys vanish one TTL later.
    fn drop(&mut self) {
        self.stop();
    }
}

impl Store for EtcdStore {
    fn load(&mut self) -> Result<StoreContents, StoreError> {
        match self.call(Op::Load)? {
            Reply::Contents(c) => Ok(c),
            other => Err(worker::unexpected(&self.describe, &other)),
        }
    }

    fn commit(&mut self, txn: &Transaction) -> Result<CommitOutcome, StoreError> {
        match self.call(Op::Commit(txn.clone()))? {
            Reply::Outcome(o) => Ok(o),
            other => Err(worker::unexpected(&self.describe, &other)),
        }
    }

    fn changes_since(&mut self, revision: Revision) -> Result<StoreChanges, StoreError> {
        match self.call(Op::ChangesSince(revision))? {
            Reply::Changes(c) => Ok(c),
            other => Err(worker::unexpected(&self.describe, &other)),
        }
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
