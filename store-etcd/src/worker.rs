//! The etcd client's own thread: a current-thread tokio runtime serving the
//! store's calls, keeping the session lease alive and the prefix watch open.

use crate::{canonical_json, EtcdOptions, EtcdStats};
use crossbeam_channel::{Receiver, Sender};
use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, GetOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use switchyard_switch::store::{
    CommitOutcome, Compare, Conflict, Entry, Event, EventKind, Revision, StoreChanges,
    StoreContents, StoreError, Transaction,
};
use tokio::sync::Notify;
use tokio::time::{sleep, timeout, Instant};

/// What a caller asks the worker.
pub(crate) enum Op {
    Load,
    Commit(Transaction),
    ChangesSince(Revision),
    Revoke,
    Shutdown,
}

/// What the worker answers.
#[derive(Debug)]
pub(crate) enum Reply {
    Contents(StoreContents),
    Outcome(CommitOutcome),
    Changes(StoreChanges),
    Done,
}

/// One call and where its answer goes.
pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) reply: Sender<Result<Reply, StoreError>>,
}

impl Request {
    /// Stops the worker (its reply is never read).
    pub(crate) fn shutdown() -> Request {
        Request {
            op: Op::Shutdown,
            reply: crossbeam_channel::bounded(1).0,
        }
    }
}

/// A reply of the wrong kind: a bug, reported rather than panicked on.
pub(crate) fn unexpected(store: &str, reply: &Reply) -> StoreError {
    StoreError::Rejected {
        store: store.to_string(),
        detail: format!("internal error: unexpected reply {reply:?}"),
    }
}

/// The buffered change feed: every event under the prefix after `start`
/// up to `complete`, oldest first.
struct Feed {
    start: Revision,
    complete: Revision,
    events: VecDeque<Event>,
    limit: usize,
}

impl Feed {
    /// Adds events known complete up to `up_to` (skipping those already
    /// held), then trims to the limit by whole revisions.
    fn append(&mut self, events: Vec<Event>, up_to: Revision) {
        for e in events {
            if e.revision > self.complete {
                self.events.push_back(e);
            }
        }
        self.complete = self.complete.max(up_to);
        while self.events.len() > self.limit {
            let Some(first) = self.events.front().map(|e| e.revision) else {
                break;
            };
            while self.events.front().is_some_and(|e| e.revision == first) {
                self.events.pop_front();
            }
            self.start = first;
        }
    }

    fn since(&self, revision: Revision) -> Vec<Event> {
        let first = self.events.partition_point(|e| e.revision <= revision);
        self.events.range(first..).cloned().collect()
    }
}

/// State the worker's tasks and the store's handle share.
pub(crate) struct Shared {
    pub(crate) endpoints: String,
    lease: AtomicI64,
    /// A lost lease not yet reported to a commit: (id, how noticed).
    lost: Mutex<Option<(i64, String)>>,
    feed: Mutex<Feed>,
    feed_advanced: Notify,
    malformed: AtomicU64,
    leases_lost: AtomicU64,
    watch_starts: AtomicU64,
    catch_ups: AtomicU64,
}

impl Shared {
    pub(crate) fn lease_id(&self) -> i64 {
        self.lease.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> EtcdStats {
        EtcdStats {
            malformed: self.malformed.load(Ordering::Relaxed),
            leases_lost: self.leases_lost.load(Ordering::Relaxed),
            watch_starts: self.watch_starts.load(Ordering::Relaxed),
            catch_ups: self.catch_ups.load(Ordering::Relaxed),
        }
    }

    fn feed(&self) -> MutexGuard<'_, Feed> {
        // Every change to the feed is one call on it: a panic elsewhere
        // cannot leave it half-changed.
        self.feed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lost(&self) -> MutexGuard<'_, Option<(i64, String)>> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that lease `id` is gone (once per lease).
    fn mark_lost(&self, id: i64, detail: String) {
        if self
            .lease
            .compare_exchange(id, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(lease = format!("{id:x}"), %detail, "the etcd session lease is lost; its keys are gone");
            self.leases_lost.fetch_add(1, Ordering::Relaxed);
            *self.lost() = Some((id, detail));
        }
    }
}

/// A running worker, as [`crate::EtcdStore`] holds it.
pub(crate) struct Started {
    pub(crate) requests: tokio::sync::mpsc::UnboundedSender<Request>,
    pub(crate) notifier: Receiver<Revision>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) thread: JoinHandle<()>,
}

/// Starts the thread, connects, takes the lease and opens the watch; fails
/// when that does not succeed within the timeout.
pub(crate) fn start(
    endpoints: Vec<String>,
    prefix: String,
    options: EtcdOptions,
) -> Result<Started, StoreError> {
    let joined = endpoints.join(",");
    let shared = Arc::new(Shared {
        endpoints: joined.clone(),
        lease: AtomicI64::new(0),
        lost: Mutex::new(None),
        feed: Mutex::new(Feed {
            start: 0,
            complete: 0,
            events: VecDeque::new(),
            limit: options.buffered_events,
        }),
        feed_advanced: Notify::new(),
        malformed: AtomicU64::new(0),
        leases_lost: AtomicU64::new(0),
        watch_starts: AtomicU64::new(0),
        catch_ups: AtomicU64::new(0),
    });
    let (requests, inbox) = tokio::sync::mpsc::unbounded_channel();
    let (wake, notifier) = crossbeam_channel::bounded(64);
    let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Rejected {
            store: format!("etcd at {joined}"),
            detail: format!("cannot start the etcd client's runtime: {e}"),
        })?;
    let timeout_ = options.timeout;
    let thread_shared = shared.clone();
    let thread = std::thread::Builder::new()
        .name("etcd-store".into())
        .spawn(move || {
            runtime.block_on(async move {
                let worker =
                    match Worker::connect(endpoints, prefix, options, thread_shared, wake).await {
                        Ok(w) => {
                            let _ = ready_tx.send(Ok(()));
                            w
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                worker.run(inbox).await;
            })
        })
        .map_err(|e| StoreError::Rejected {
            store: format!("etcd at {joined}"),
            detail: format!("cannot start the etcd client thread: {e}"),
        })?;
    let unreachable = |detail: String| StoreError::Unreachable {
        endpoints: joined.clone(),
        detail,
    };
    match ready_rx.recv_timeout(timeout_ + Duration::from_millis(250)) {
        Ok(Ok(())) => Ok(Started {
            requests,
            notifier,
            shared,
            thread,
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            // The thread gives up at its own deadline; do not wait for it.
            Err(unreachable(format!(
                "no answer within {timeout_:?} while connecting"
            )))
        }
    }
}

/// The worker's state: the client and what every task shares.
#[derive(Clone)]
struct Worker {
    client: Client,
    prefix: String,
    options: EtcdOptions,
    shared: Arc<Shared>,
    wake: Sender<Revision>,
}

/// How long to wait before trying a broken watch or keep-alive again.
const RETRY: Duration = Duration::from_millis(200);

impl Worker {
    async fn connect(
        endpoints: Vec<String>,
        prefix: String,
        options: EtcdOptions,
        shared: Arc<Shared>,
        wake: Sender<Revision>,
    ) -> Result<Worker, StoreError> {
        let deadline = Instant::now() + options.timeout;
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.timeout)
            .with_timeout(options.timeout)
            .with_keep_alive(Duration::from_secs(5), options.timeout)
            .with_keep_alive_while_idle(true);
        let client = Client::connect(&endpoints, Some(connect))
            .await
            .map_err(|e| StoreError::Unreachable {
                endpoints: shared.endpoints.clone(),
                detail: e.to_string(),
            })?;
        let worker = Worker {
            client,
            prefix,
            options,
            shared,
            wake,
        };
        let current = worker.until(deadline, || worker.current_revision()).await?;
        {
            let mut feed = worker.shared.feed();
            feed.start = current;
            feed.complete = current;
        }
        let lease = worker.until(deadline, || worker.grant()).await?;
        worker.shared.lease.store(lease, Ordering::Relaxed);
        Ok(worker)
    }

    async fn run(self, mut inbox: tokio::sync::mpsc::UnboundedReceiver<Request>) {
        tokio::spawn(self.clone().watch_loop());
        tokio::spawn(self.clone().keep_alive_loop());
        while let Some(request) = inbox.recv().await {
            if matches!(request.op, Op::Shutdown) {
                break;
            }
            let worker = self.clone();
            tokio::spawn(async move {
                let result = worker.serve(request.op).await;
                let _ = request.reply.send(result);
            });
        }
        // Dropping the runtime ends the tasks; the lease is left to expire.
    }

    fn unreachable(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Unreachable {
            endpoints: self.shared.endpoints.clone(),
            detail: detail.into(),
        }
    }

    /// Maps a client error: transport trouble is `Unreachable`, anything
    /// etcd refused on purpose is `Rejected`.
    fn error(&self, e: etcd_client::Error) -> StoreError {
        use etcd_client::Error as E;
        use tonic::Code;
        match e {
            E::GRpcStatus(s) => match s.code() {
                Code::Unavailable
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::Unknown
                | Code::Aborted => self.unreachable(format!("{}: {}", s.code(), s.message())),
                _ => StoreError::Rejected {
                    store: format!("etcd at {}", self.shared.endpoints),
                    detail: s.message().to_string(),
                },
            },
            E::InvalidArgs(_) | E::InvalidUri(_) | E::Utf8Error(_) => StoreError::Rejected {
                store: format!("etcd at {}", self.shared.endpoints),
                detail: e.to_string(),
            },
            other => self.unreachable(other.to_string()),
        }
    }

    /// Runs `f` until it succeeds, fails for good, or `deadline` passes;
    /// only `Unreachable` is retried (reads only: a commit is never
    /// repeated, it may have been applied).
    async fn until<T, F, Fut>(&self, deadline: Instant, mut f: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let err = match timeout(left, f()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e @ StoreError::Unreachable { .. })) => e,
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    return Err(
                        self.unreachable(format!("no answer within {:?}", self.options.timeout))
                    )
                }
            };
            if Instant::now() + Duration::from_millis(100) >= deadline {
                return Err(err);
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    async fn serve(&self, op: Op) -> Result<Reply, StoreError> {
        let deadline = Instant::now() + self.options.timeout;
        match op {
            Op::Load => self
                .until(deadline, || self.load())
                .await
                .map(Reply::Contents),
            Op::Commit(txn) => match timeout(self.options.timeout, self.commit(&txn)).await {
                Ok(r) => r.map(Reply::Outcome),
                Err(_) => Err(self.unreachable(format!(
                    "no answer within {:?}; the commit may or may not have been applied",
                    self.options.timeout
                ))),
            },
            Op::ChangesSince(r) => {
                match timeout(self.options.timeout, self.changes_since(r, deadline)).await {
                    Ok(r) => r.map(Reply::Changes),
                    Err(_) => {
                        Err(self
                            .unreachable(format!("no answer within {:?}", self.options.timeout)))
                    }
                }
            }
            Op::Revoke => {
                let id = self.shared.lease.swap(0, Ordering::Relaxed);
                if id != 0 {
                    let mut lease = self.client.lease_client();
                    match timeout(self.options.timeout, lease.revoke(id)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(self.error(e)),
                        Err(_) => return Err(self.unreachable("no answer to the lease revoke")),
                    }
                }
                Ok(Reply::Done)
            }
            Op::Shutdown => Ok(Reply::Done),
        }
    }

    fn key(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + key.len());
        k.extend_from_slice(self.prefix.as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The store key of an etcd key under the prefix, counting the
    /// malformed.
    fn store_key(&self, key: &[u8]) -> Option<String> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        match std::str::from_utf8(rest) {
            Ok(k) => Some(k.to_string()),
            Err(_) => {
                self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn value(&self, key: &str, bytes: &[u8]) -> Option<serde_json::Value> {
        match serde_json::from_slice(bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(key, error = %e, "skipping an etcd value that is not JSON");
                None
            }
        }
    }

    async fn grant(&self) -> Result<i64, StoreError> {
        let ttl = i64::try_from(self.options.lease_ttl.as_secs()).unwrap_or(i64::MAX);
        let mut lease = self.client.lease_client();
        let resp = lease.grant(ttl, None).await.map_err(|e| self.error(e))?;
        Ok(resp.id())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        let mut kv = self.client.kv_client();
        let resp = kv
            .get(
                self.prefix.as_bytes(),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(header_revision(resp.header()))
    }

    async fn load(&self) -> Result<StoreContents, StoreError> {
        let end = prefix_end(self.prefix.as_bytes());
        let mut kv = self.client.kv_client();
        let mut from = self.prefix.as_bytes().to_vec();
        let mut revision = 0i64;
        let mut entries = BTreeMap::new();
        loop {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(self.options.page_size)
                .with_revision(revision);
            let resp = kv
                .get(from.clone(), Some(options))
                .await
                .map_err(|e| self.error(e))?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            let kvs = resp.kvs();
            for item in kvs {
                let Some(key) = self.store_key(item.key()) else {
                    continue;
                };
                let Some(value) = self.value(&key, item.value()) else {
                    continue;
                };
                entries.insert(
                    key,
                    Entry {
                        value,
                        create_revision: rev(item.create_revision()),
                        mod_revision: rev(item.mod_revision()),
                    },
                );
            }
            match kvs.last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(StoreContents {
            revision: rev(revision),
            entries,
        })
    }

    async fn commit(&self, txn: &Transaction) -> Result<CommitOutcome, StoreError> {
        let lost = self.shared.lost().take();
        if let Some((lease, detail)) = lost {
            // Start the new session now, so the writer's retry works.
            if let Ok(id) = self.grant().await {
                self.shared.lease.store(id, Ordering::Relaxed);
            }
            return Err(StoreError::LeaseLost { lease, detail });
        }
        let mut lease = self.shared.lease_id();
        if lease == 0 && !txn.leased.is_empty() {
            lease = self.grant().await?;
            self.shared.lease.store(lease, Ordering::Relaxed);
        }
        let mut compares = Vec::with_capacity(txn.compares.len());
        let mut reads: Vec<TxnOp> = Vec::new();
        let mut read_keys: Vec<Vec<u8>> = Vec::new();
        for c in &txn.compares {
            let key = self.key(c.key());
            compares.push(match c {
                Compare::ModRevision { revision, .. } => EtcdCompare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    i64::try_from(*revision).unwrap_or(i64::MAX),
                ),
                Compare::Missing { .. } => {
                    EtcdCompare::create_revision(key.clone(), CompareOp::Equal, 0)
                }
                Compare::Exists { .. } => {
                    EtcdCompare::create_revision(key.clone(), CompareOp::Greater, 0)
                }
                Compare::ValueEquals { value, .. } => {
                    EtcdCompare::value(key.clone(), CompareOp::Equal, canonical_json(value))
                }
            });
            if !read_keys.contains(&key) {
                reads.push(TxnOp::get(key.clone(), None));
                read_keys.push(key);
            }
        }
        let mut ops = Vec::with_capacity(txn.puts.len() + txn.deletes.len());
        for key in &txn.deletes {
            ops.push(TxnOp::delete(self.key(key), None));
        }
        for (key, value) in &txn.puts {
            let options = txn
                .is_leased(key)
                .then(|| PutOptions::new().with_lease(lease));
            ops.push(TxnOp::put(self.key(key), canonical_json(value), options));
        }
        let request = Txn::new().when(compares).and_then(ops).or_else(reads);
        let mut kv = self.client.kv_client();
        let resp = match kv.txn(request).await {
            Ok(r) => r,
            Err(etcd_client::Error::GRpcStatus(s))
                if s.code() == tonic::Code::NotFound && s.message().contains("lease not found") =>
            {
                self.shared
                    .mark_lost(lease, "etcd no longer knows it".into());
                self.shared.lost().take();
                if let Ok(id) = self.grant().await {
                    self.shared.lease.store(id, Ordering::Relaxed);
                }
                return Err(StoreError::LeaseLost {
                    lease,
                    detail: "etcd no longer knows it".into(),
                });
            }
            Err(e) => return Err(self.error(e)),
        };
        let revision = header_revision(resp.header());
        if resp.succeeded() {
            return Ok(CommitOutcome::Applied { revision });
        }
        // The else branch read every compared key at the failing revision.
        let mut found: BTreeMap<Vec<u8>, (Revision, Vec<u8>)> = BTreeMap::new();
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                for item in get.kvs() {
                    found.insert(
                        item.key().to_vec(),
                        (rev(item.mod_revision()), item.value().to_vec()),
                    );
                }
            }
        }
        let failed = txn
            .compares
            .iter()
            .find(|c| {
                let entry = found.get(&self.key(c.key()));
                !match c {
                    Compare::ModRevision { revision, .. } => {
                        entry.is_some_and(|(m, _)| m == revision)
                    }
                    Compare::Missing { .. } => entry.is_none(),
                    Compare::Exists { .. } => entry.is_some(),
                    Compare::ValueEquals { value, .. } => {
                        entry.is_some_and(|(_, v)| *v == canonical_json(value))
                    }
                }
            })
            .or(txn.compares.first());
        match failed {
            Some(c) => Ok(CommitOutcome::Conflict(Conflict {
                compare: c.clone(),
                found: found.get(&self.key(c.key())).map(|(m, _)| *m),
            })),
            None => Err(StoreError::Rejected {
                store: format!("etcd at {}", self.shared.endpoints),
                detail: "a transaction without compares failed".into(),
            }),
        }
    }

    /// An etcd event as the feed's, `None` outside the prefix or malformed.
    fn event(&self, ev: &etcd_client::Event) -> Option<Event> {
        let kv = ev.kv()?;
        let key = self.store_key(kv.key())?;
        let revision = rev(kv.mod_revision());
        let kind = match ev.0.r#type {
            0 => EventKind::Put {
                value: self.value(&key, kv.value())?,
                create_revision: rev(kv.create_revision()),
            },
            1 => EventKind::Delete,
            _ => {
                self.shared.malformed.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        };
        Some(Event {
            key,
            kind,
            revision,
        })
    }

    /// The background watch on the prefix, re-established from where it
    /// stopped whenever it breaks.
    async fn watch_loop(self) {
        loop {
            let from = self.shared.feed().complete + 1;
            let mut watch = self.client.watch_client();
            let options = WatchOptions::new()
                .with_prefix()
                .with_start_revision(i64::try_from(from).unwrap_or(i64::MAX));
            if let Ok(mut stream) = watch.watch(self.prefix.as_bytes(), Some(options)).await {
                self.shared.watch_starts.fetch_add(1, Ordering::Relaxed);
                while let Ok(Some(resp)) = stream.message().await {
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            // The history we had not seen is gone: start
                            // over after it; older requests get Compacted.
                            let at = rev(resp.compact_revision()).saturating_sub(1);
                            let mut feed = self.shared.feed();
                            feed.events.clear();
                            feed.start = at;
                            feed.complete = at;
                        }
                        break;
                    }
                    if resp.events().is_empty() {
                        continue;
                    }
                    let events: Vec<Event> =
                        resp.events().iter().filter_map(|e| self.event(e)).collect();
                    let last = resp
                        .events()
                        .iter()
                        .filter_map(|e| e.kv().map(|kv| rev(kv.mod_revision())))
                        .max()
                        .unwrap_or(0);
                    self.shared.feed().append(events, last);
                    self.shared.feed_advanced.notify_waiters();
                    let _ = self.wake.try_send(last);
                }
            }
            sleep(RETRY).await;
        }
    }

    /// Renews the session lease every third of its TTL; a lease etcd no
    /// longer knows is lost and replaced.
    async fn keep_alive_loop(self) {
        let period = self.options.lease_ttl / 3;
        loop {
            let id = self.shared.lease_id();
            if id == 0 {
                if let Ok(new) = self.grant().await {
                    self.shared.lease.store(new, Ordering::Relaxed);
                    continue;
                }
            } else if let Ok((mut keeper, mut stream)) =
                self.client.lease_client().keep_alive(id).await
            {
                loop {
                    if self.shared.lease_id() != id || keeper.keep_alive().await.is_err() {
                        break;
                    }
                    match timeout(self.options.timeout, stream.message()).await {
                        Ok(Ok(Some(resp))) if resp.ttl() > 0 => sleep(period).await,
                        Ok(Ok(Some(_))) => {
                            self.shared
                                .mark_lost(id, "etcd reported it expired or revoked".into());
                            break;
                        }
                        _ => break,
                    }
                }
            }
            sleep(RETRY).await;
        }
    }

    /// The newest `mod_revision` under the prefix at `at` (0 when empty).
    async fn newest_put(&self, at: Revision) -> Result<Revision, StoreError> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_sort(SortTarget::Mod, SortOrder::Descend)
            .with_limit(1)
            .with_revision(i64::try_from(at).unwrap_or(i64::MAX));
        let resp = kv
            .get(self.prefix.as_bytes(), Some(options))
            .await
            .map_err(|e| self.error(e))?;
        Ok(resp.kvs().first().map_or(0, |kv| rev(kv.mod_revision())))
    }

    async fn changes_since(
        &self,
        since: Revision,
        deadline: Instant,
    ) -> Result<StoreChanges, StoreError> {
        let current = self.until(deadline, || self.current_revision()).await?;
        if since > current {
            return Err(StoreError::RevisionAhead {
                requested: since,
                current,
            });
        }
        let (start, complete) = {
            let feed = self.shared.feed();
            (feed.start, feed.complete)
        };
        if since < start {
            // Older than the buffer: one pass over the history.
            let events = self.catch_up(since, current).await?;
            return Ok(StoreChanges {
                revision: current,
                events,
            });
        }
        if complete < current {
            let newest = self.newest_put(current).await?;
            // The watch will deliver `newest`: wait for it.
            loop {
                let notified = self.shared.feed_advanced.notified();
                if self.shared.feed().complete >= newest {
                    break;
                }
                if timeout(deadline.saturating_duration_since(Instant::now()), notified)
                    .await
                    .is_err()
                {
                    return Err(self.unreachable(format!(
                        "the watch did not deliver revision {newest} within {:?}",
                        self.options.timeout
                    )));
                }
            }
            let complete = self.shared.feed().complete;
            if complete < current {
                // What lies between can only be deletions under the prefix
                // (or others' writes): find them exactly.
                let events = self.catch_up(complete, current).await?;
                self.shared.feed().append(events, current);
            }
        }
        let feed = self.shared.feed();
        Ok(StoreChanges {
            revision: feed.complete.max(since),
            events: feed.since(since),
        })
    }

    /// Every event under the prefix in `(from, to]`, read with a watch over
    /// the whole key space: every revision has an event, so the watch
    /// reaches `to` exactly.
    async fn catch_up(&self, from: Revision, to: Revision) -> Result<Vec<Event>, StoreError> {
        self.shared.catch_ups.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        if from >= to {
            return Ok(out);
        }
        let mut watch = self.client.watch_client();
        let options = WatchOptions::new()
            .with_all_keys()
            .with_start_revision(i64::try_from(from + 1).unwrap_or(i64::MAX));
        let mut stream = watch
            .watch(Vec::<u8>::new(), Some(options))
            .await
            .map_err(|e| self.error(e))?;
        loop {
            let resp = match stream.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => return Err(self.unreachable("the watch stream closed")),
                Err(e) => return Err(self.error(e)),
            };
            if resp.canceled() {
                if resp.compact_revision() > 0 {
                    return Err(StoreError::Compacted {
                        requested: from,
                        oldest: rev(resp.compact_revision()).saturating_sub(1),
                    });
                }
                return Err(self.unreachable(format!(
                    "etcd cancelled the watch: {}",
                    resp.cancel_reason()
                )));
            }
            let mut reached = false;
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let r = rev(kv.mod_revision());
                if r > to {
                    reached = true;
                    break;
                }
                reached |= r == to;
                if let Some(e) = self.event(ev) {
                    out.push(e);
                }
            }
            if reached {
                return Ok(out);
            }
        }
    }
}

fn rev(r: i64) -> Revision {
    u64::try_from(r).unwrap_or(0)
}

fn header_revision(h: Option<&etcd_client::ResponseHeader>) -> Revision {
    rev(h.map_or(0, |h| h.revision()))
}

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(key: &str, revision: Revision) -> Event {
        Event {
            key: key.into(),
            kind: EventKind::Put {
                value: json!(1),
                create_revision: revision,
            },
            revision,
        }
    }

    #[test]
    fn the_feed_skips_what_it_holds_and_trims_whole_revisions() {
        let mut feed = Feed {
            start: 10,
            complete: 10,
            events: VecDeque::new(),
            limit: 3,
        };
        feed.append(vec![put("a", 11), put("b", 11), put("c", 12)], 12);
        feed.append(vec![put("c", 12), put("d", 14)], 14);
        assert_eq!(feed.complete, 14);
        // Four events over the limit of three: revision 11 goes whole.
        assert_eq!(feed.start, 11);
        let keys: Vec<String> = feed.since(11).into_iter().map(|e| e.key).collect();
        assert_eq!(keys, ["c", "d"]);
        assert!(feed.since(14).is_empty());
    }

    #[test]
    fn prefix_end_is_the_next_key_after_the_prefix() {
        assert_eq!(prefix_end(b"/sy/"), b"/sy0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
