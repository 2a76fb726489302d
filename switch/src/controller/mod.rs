//! The CNM controller: networks, endpoints and sandboxes, with Docker's
//! rules, persisted through a [`Store`].
//!
//! Every operation validates, changes the in-memory state, and commits the
//! objects it touched in one store transaction. If validation or the commit
//! fails, the in-memory state is reloaded from the store, so a failed
//! operation leaves no trace. Successful operations queue [`Change`]s that
//! the data plane (real mode or the simulator) drains with
//! [`Controller::take_changes`] and turns into ports through the drivers.
//!
//! # Several controllers, one store
//! Controllers on several hosts may share a store (key layout in
//! `keys.rs`). Each transaction compares every key it writes against the
//! revision this controller last read it at (or requires it missing), and
//! an operation that depends on a key it does not change rewrites it
//! unchanged, so the dependency is compared too: `connect` and `disconnect`
//! rewrite their network, so a concurrent `network rm` conflicts (Docker's
//! libnetwork keeps an endpoint count object for the same reason), and a
//! `container:OTHER` sandbox rewrites OTHER. Before each operation the
//! controller catches up with the store's change feed; when a commit still
//! conflicts, it reloads the state and runs the operation again, up to
//! [`MAX_ATTEMPTS`] times, then gives up with
//! [`ControllerError::ConcurrentChange`]. Retrying inside is safe because an
//! operation is validated again against the reloaded state, and it spares
//! every caller the same loop.

mod error;
pub mod inspect;
mod keys;
pub mod model;
mod names;
mod networks;
pub mod publish;
mod sandboxes;

pub(crate) use error::shown;
pub use error::ControllerError;
pub use names::{validate_alias, validate_name};
pub use publish::{
    docker_port_lines, host_endpoints, parse_add_host, parse_publish, ExtraHost, ExtraHostTarget,
    PortMapping, Protocol, PublishError,
};

use crate::driver::{DriverRegistry, PeerHost, PeerVia, PortPlan};
use crate::port::SegmentId;
use crate::store::{CommitOutcome, Compare, Conflict, Revision, Store, StoreError, Transaction};
use ipnetwork::Ipv6Network;
use model::{Endpoint, Network, Sandbox};
use rand_core::RngCore;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use switchyard_ipam::{DefaultPool, Ipam, IpamConfig, PoolId};

/// Something the data plane must act on after an operation succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A network now exists: set its DNS policy and create the ports it
    /// has as a whole ([`Controller::plan_network_ports`]).
    NetworkCreated {
        /// The network's id.
        network_id: String,
    },
    /// A network is gone (its ports were already removed).
    NetworkRemoved {
        /// The network as it was.
        network: Box<Network>,
    },
    /// A sandbox now exists.
    SandboxCreated {
        /// The sandbox's id.
        sandbox_id: String,
    },
    /// A sandbox is gone (its endpoints were already removed).
    SandboxRemoved {
        /// The sandbox as it was.
        sandbox: Box<Sandbox>,
    },
    /// An endpoint joined: plan its port with [`Controller::plan_endpoint_port`].
    EndpointJoined {
        /// The endpoint's id.
        endpoint_id: String,
    },
    /// An endpoint left: remove its port and DNS records.
    EndpointLeft {
        /// The endpoint as it was.
        endpoint: Box<Endpoint>,
    },
    /// An endpoint's name, aliases or default-route flag changed.
    EndpointUpdated {
        /// The endpoint's id.
        endpoint_id: String,
    },
}

/// How many times an operation runs when its commits keep conflicting with
/// other writers of a shared store. Each attempt catches up first, so it
/// loses again only if yet another write lands between its read and its
/// commit: two hosts allocating from one pool as fast as etcd commits
/// (about 1 ms) made 5 attempts run out 0–2 times in 60 operations; 16
/// make that vanishingly rare while a stuck loop still ends quickly.
pub const MAX_ATTEMPTS: u32 = 16;

/// A station of a network on another host, as [`Controller::remote_stations`]
/// lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteStation {
    /// Its endpoint.
    pub endpoint_id: String,
    /// Its MAC address.
    pub mac: crate::mac::MacAddr,
    /// The VTEP of the host that holds it.
    pub vtep: IpAddr,
    /// Its IPv4 and IPv6 addresses.
    pub addresses: Vec<IpAddr>,
}

/// The host id of a controller not told otherwise: a single host.
pub const DEFAULT_HOST: &str = "local";

/// Settings of a controller. The address pools only matter when it first
/// creates the state.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Default IPv4 address pools (Docker's `default-address-pools`);
    /// `None` keeps Docker's 172.17–31/16 and 192.168.0.0/20 blocks.
    pub v4_pools: Option<Vec<DefaultPool>>,
    /// Default IPv6 address pools; `None` means /64s of a random ULA /48.
    pub v6_pools: Option<Vec<DefaultPool>>,
    /// This host's id among the hosts sharing the store (container-name
    /// rules); its sandboxes and switch segments are stored under
    /// `local/<host>/`, and its endpoints name it.
    pub host: String,
    /// This host's tunnel endpoint address, recorded on its endpoints.
    pub vtep: Option<IpAddr>,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            v4_pools: None,
            v6_pools: None,
            host: DEFAULT_HOST.to_string(),
            vtep: None,
        }
    }
}

/// This host's own bookkeeping: which switch segment each network has here.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Local {
    /// The next segment id to hand out.
    next_segment: u32,
    /// Segment of each network on this host's switch.
    segments: BTreeMap<String, SegmentId>,
}

impl Default for Local {
    fn default() -> Self {
        Local {
            next_segment: 1,
            segments: BTreeMap::new(),
        }
    }
}

impl Local {
    fn allocate(&mut self, network_id: &str) -> SegmentId {
        let s = SegmentId(self.next_segment);
        self.next_segment += 1;
        self.segments.insert(network_id.to_string(), s);
        s
    }
}

/// Everything the controller owns, as this host sees it.
#[derive(Clone, Debug)]
struct State {
    ipam: Ipam,
    networks: BTreeMap<String, Network>,
    endpoints: BTreeMap<String, Endpoint>,
    /// This host's sandboxes.
    sandboxes: BTreeMap<String, Sandbox>,
    local: Local,
}

impl State {
    fn new(ipam: Ipam) -> State {
        State {
            ipam,
            networks: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            sandboxes: BTreeMap::new(),
            local: Local::default(),
        }
    }

    /// A network by exact id, exact name, or unique id prefix.
    fn network(&self, key: &str) -> Result<&Network, ControllerError> {
        names::resolve(
            "network",
            key,
            self.networks
                .values()
                .map(|n| (n.id.as_str(), n.name.as_str(), n)),
        )?
        .ok_or_else(|| ControllerError::NoSuchNetwork {
            name: key.to_string(),
        })
    }

    /// A sandbox by exact id, exact name, or unique id prefix.
    fn sandbox(&self, key: &str) -> Result<&Sandbox, ControllerError> {
        names::resolve(
            "container",
            key,
            self.sandboxes
                .values()
                .map(|s| (s.id.as_str(), s.name.as_str(), s)),
        )?
        .ok_or_else(|| ControllerError::NoSuchSandbox {
            name: key.to_string(),
        })
    }

    /// The sandbox whose namespace `sandbox` uses.
    fn namespace_owner<'a>(&'a self, sandbox: &'a Sandbox) -> &'a Sandbox {
        match &sandbox.mode {
            model::NetnsMode::Container(owner) => self.sandboxes.get(owner).unwrap_or(sandbox),
            _ => sandbox,
        }
    }
}

/// Which stored objects an operation wrote (and so compares).
#[derive(Default)]
struct Dirty {
    meta: bool,
    ipam_config: bool,
    /// Address spaces whose pool list changed.
    spaces: BTreeSet<String>,
    pools: BTreeSet<PoolId>,
    networks: BTreeSet<String>,
    /// Network name keys to write (`Some(id)`) or delete.
    network_names: BTreeMap<String, Option<String>>,
    /// VNI claim keys to write (`Some(network id)`) or delete.
    vnis: BTreeMap<u32, Option<String>>,
    endpoints: BTreeSet<String>,
    sandboxes: BTreeSet<String>,
    /// Sandbox name keys to write (`Some(id)`) or delete.
    sandbox_names: BTreeMap<String, Option<String>>,
    /// Networks whose local segment changed.
    segments: BTreeSet<String>,
    local_meta: bool,
}

impl Dirty {
    /// A pool was created or released: its space's pool list changed too.
    fn pool_set_changed(&mut self, id: &PoolId) {
        self.spaces.insert(id.space.clone());
        self.pools.insert(id.clone());
    }
}

/// How one run of an operation ended, when nothing failed.
enum Attempt<T> {
    Done(T),
    Conflict(Conflict),
}

/// The control plane of one host.
pub struct Controller {
    state: State,
    /// The store revision `state` reflects.
    revision: Revision,
    /// The `mod_revision` of every stored key as last read or written.
    key_revisions: BTreeMap<String, Revision>,
    store: Box<dyn Store>,
    drivers: DriverRegistry,
    rng: Box<dyn RngCore + Send>,
    changes: Vec<Change>,
    host: String,
    vtep: Option<IpAddr>,
    conflicts: u64,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("store", &self.store.describe())
            .field("host", &self.host)
            .field("revision", &self.revision)
            .field("networks", &self.state.networks.len())
            .field("endpoints", &self.state.endpoints.len())
            .field("sandboxes", &self.state.sandboxes.len())
            .finish()
    }
}

impl Controller {
    /// Opens the controller over `store`. A fresh store gets Docker's
    /// predefined networks (`bridge` 172.17.0.0/16, `host`, `none`); an
    /// existing one is restored exactly: every network, endpoint, sandbox
    /// and address allocation (state written by earlier versions is
    /// migrated in one transaction). A network created by another host of a
    /// shared store gets a segment of this host's switch.
    ///
    /// `rng` supplies ids, the IPv6 ULA prefix and MACs of IPv6-only
    /// endpoints: OS randomness in real mode, the seeded generator in the
    /// simulator.
    pub fn open(
        store: Box<dyn Store>,
        drivers: DriverRegistry,
        rng: Box<dyn RngCore + Send>,
        options: ControllerOptions,
    ) -> Result<Controller, ControllerError> {
        validate_name("host", &options.host)?;
        let placeholder = Ipam::new(IpamConfig {
            v4_pools: Vec::new(),
            v6_pools: Vec::new(),
            global_v4_pools: Vec::new(),
            global_v6_pools: Vec::new(),
        });
        let mut controller = Controller {
            state: State::new(placeholder),
            revision: 0,
            key_revisions: BTreeMap::new(),
            store,
            drivers,
            rng,
            changes: Vec::new(),
            host: options.host.clone(),
            vtep: options.vtep,
            conflicts: 0,
        };
        let mut last_conflict = None;
        for _ in 0..MAX_ATTEMPTS {
            let contents = controller.store.load()?;
            match keys::schema_of(&contents)? {
                None => {
                    let mut ipam_config =
                        IpamConfig::docker_defaults(random_ula48(&mut *controller.rng));
                    if let Some(pools) = options.v4_pools.clone() {
                        ipam_config.v4_pools = pools;
                    }
                    if let Some(pools) = options.v6_pools.clone() {
                        ipam_config.v6_pools = pools;
                    }
                    ipam_config.validate()?;
                    controller.state = State::new(Ipam::new(ipam_config));
                    controller.revision = contents.revision;
                    controller.key_revisions.clear();
                    match controller.attempt(&mut networks::create_predefined)? {
                        Attempt::Done(()) => {
                            tracing::info!(store = %controller.store.describe(), host = %controller.host, "created predefined networks bridge, host, none");
                            return Ok(controller);
                        }
                        // Another controller created the state first.
                        Attempt::Conflict(c) => last_conflict = Some(c),
                    }
                }
                Some(1) => {
                    let txn = keys::migrate_v1(&contents, &controller.host)?;
                    match controller.store.commit(&txn)? {
                        CommitOutcome::Applied { revision } => {
                            tracing::info!(store = %controller.store.describe(), host = %controller.host, revision, "migrated the stored state from schema 1 to schema 2");
                        }
                        CommitOutcome::Conflict(c) => last_conflict = Some(c),
                    }
                }
                Some(_) => {
                    controller.reload()?;
                    tracing::info!(
                        store = %controller.store.describe(),
                        host = %controller.host,
                        revision = controller.revision,
                        networks = controller.state.networks.len(),
                        sandboxes = controller.state.sandboxes.len(),
                        endpoints = controller.state.endpoints.len(),
                        "restored controller state"
                    );
                    return Ok(controller);
                }
            }
        }
        Err(concurrent(last_conflict))
    }

    /// The drivers this controller knows.
    pub fn drivers(&self) -> &DriverRegistry {
        &self.drivers
    }

    /// This controller's host id.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The address manager (read-only; changes go through operations).
    pub fn ipam(&self) -> &Ipam {
        &self.state.ipam
    }

    /// The store revision the controller's view reflects.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// How many commits conflicted with another writer and were retried
    /// since the controller opened (always 0 on a store nobody shares).
    pub fn conflicts(&self) -> u64 {
        self.conflicts
    }

    /// Catches up with changes other writers made to a shared store, so
    /// lookups and listings see them. Operations do this themselves.
    pub fn refresh(&mut self) -> Result<(), ControllerError> {
        match self.store.changes_since(self.revision) {
            Ok(changes) if changes.events.is_empty() => Ok(()),
            Ok(_) | Err(StoreError::Compacted { .. }) | Err(StoreError::RevisionAhead { .. }) => {
                self.reload()
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Changes queued by successful operations since the last call.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// All networks, by name.
    pub fn networks(&self) -> impl Iterator<Item = &Network> {
        let mut v: Vec<&Network> = self.state.networks.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.into_iter()
    }

    /// This host's sandboxes, by name.
    pub fn sandboxes(&self) -> impl Iterator<Item = &Sandbox> {
        let mut v: Vec<&Sandbox> = self.state.sandboxes.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.into_iter()
    }

    /// All endpoints (of every host sharing the store), by id.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.state.endpoints.values()
    }

    /// A network by exact id, exact name, or unique id prefix.
    pub fn network(&self, key: &str) -> Result<&Network, ControllerError> {
        self.state.network(key)
    }

    /// A network by id.
    pub fn network_by_id(&self, id: &str) -> Option<&Network> {
        self.state.networks.get(id)
    }

    /// The segment of this host's switch that carries a network, for
    /// drivers that switch frames (host-local: each host numbers its own).
    pub fn segment_of(&self, network_id: &str) -> Option<SegmentId> {
        self.state.local.segments.get(network_id).copied()
    }

    /// A sandbox by exact id, exact name, or unique id prefix.
    pub fn sandbox(&self, key: &str) -> Result<&Sandbox, ControllerError> {
        self.state.sandbox(key)
    }

    /// A sandbox by id.
    pub fn sandbox_by_id(&self, id: &str) -> Option<&Sandbox> {
        self.state.sandboxes.get(id)
    }

    /// An endpoint by id.
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.state.endpoints.get(id)
    }

    /// The endpoints of a network (on every host), by container name.
    pub fn endpoints_of_network(&self, network_id: &str) -> Vec<&Endpoint> {
        let mut v: Vec<&Endpoint> = self
            .state
            .endpoints
            .values()
            .filter(|e| e.network_id == network_id)
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The endpoints of a sandbox, in connect order.
    pub fn endpoints_of_sandbox(&self, sandbox_id: &str) -> Vec<&Endpoint> {
        self.state
            .sandboxes
            .get(sandbox_id)
            .map(|s| {
                s.endpoints
                    .iter()
                    .filter_map(|id| self.state.endpoints.get(id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The sandbox whose namespace `sandbox` uses: itself, or the owner
    /// when it was created with `container:OTHER`.
    pub fn namespace_owner<'a>(&'a self, sandbox: &'a Sandbox) -> &'a Sandbox {
        self.state.namespace_owner(sandbox)
    }

    /// Plans the data-plane port of an endpoint through its network's
    /// driver; `None` for drivers without ports, unknown ids and endpoints
    /// another host holds.
    pub fn plan_endpoint_port(&self, endpoint_id: &str) -> Option<PortPlan> {
        let endpoint = self.state.endpoints.get(endpoint_id)?;
        if endpoint.host != self.host {
            return None;
        }
        let network = self.state.networks.get(&endpoint.network_id)?;
        self.drivers.get(&network.driver).ok()?.plan_endpoint_port(
            network,
            self.segment_of(&network.id),
            endpoint,
        )
    }

    /// Plans the ports a network has as a whole on this host (a gateway,
    /// an uplink) through its driver; empty for unknown ids.
    pub fn plan_network_ports(&self, network_id: &str) -> Vec<PortPlan> {
        let Some(network) = self.state.networks.get(network_id) else {
            return Vec::new();
        };
        self.drivers
            .get(&network.driver)
            .map(|d| d.plan_network_ports(network, self.segment_of(network_id)))
            .unwrap_or_default()
    }

    /// Plans the ports that join this host's part of a network to a peer
    /// host (a cable, a tunnel) through its driver; empty when the driver
    /// has none or the id is unknown.
    pub fn plan_peer_ports(&self, network_id: &str, peer: &PeerHost) -> Vec<PortPlan> {
        let Some(network) = self.state.networks.get(network_id) else {
            return Vec::new();
        };
        self.drivers
            .get(&network.driver)
            .map(|d| d.plan_peer_ports(network, self.segment_of(network_id), peer))
            .unwrap_or_default()
    }

    /// The other hosts that have endpoints on a network and a VTEP, as
    /// the peers its tunnels go to (one per VTEP address, sorted): what a
    /// host plans with [`Controller::plan_peer_ports`] for an overlay.
    /// Empty for a network without endpoints elsewhere, or unknown.
    pub fn tunnel_peers(&self, network_id: &str) -> Vec<PeerHost> {
        let mut peers: BTreeMap<IpAddr, String> = BTreeMap::new();
        for e in self.state.endpoints.values() {
            if e.network_id != network_id || e.host == self.host {
                continue;
            }
            if let Some(vtep) = e.vtep {
                peers.entry(vtep).or_insert_with(|| e.host.clone());
            }
        }
        peers
            .into_iter()
            .map(|(vtep, host)| PeerHost {
                name: host,
                link: vtep.to_string(),
                via: PeerVia::Underlay(vtep),
            })
            .collect()
    }

    /// The stations of a network that other hosts hold, with where they
    /// are: what a host programs for an overlay instead of learning it by
    /// flooding across the underlay — a static FDB entry per MAC on the
    /// tunnel to its VTEP, and a neighbour entry per address so ARP and
    /// neighbour solicitations for it are answered locally. Sorted by
    /// endpoint name; endpoints without a MAC or a VTEP are left out.
    pub fn remote_stations(&self, network_id: &str) -> Vec<RemoteStation> {
        self.endpoints_of_network(network_id)
            .into_iter()
            .filter(|e| e.host != self.host)
            .filter_map(|e| {
                Some(RemoteStation {
                    endpoint_id: e.id.clone(),
                    mac: e.mac?,
                    vtep: e.vtep?,
                    addresses: e
                        .ipv4
                        .map(|n| IpAddr::V4(n.ip()))
                        .into_iter()
                        .chain(e.ipv6.map(|n| IpAddr::V6(n.ip())))
                        .collect(),
                })
            })
            .collect()
    }

    /// Records runtime facts on a sandbox (namespace path, holder pid).
    pub fn set_sandbox_labels(
        &mut self,
        key: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), ControllerError> {
        self.mutate(|state, dirty, _| {
            let id = state.sandbox(key)?.id.clone();
            let sandbox = state.sandboxes.get_mut(&id).expect("resolved above");
            sandbox.labels.extend(labels.clone());
            dirty.sandboxes.insert(id);
            Ok(())
        })
    }

    /// Runs `op` against the state and commits what it touched; retries
    /// on a conflict with another writer (see the module doc); rolls the
    /// state back to the store's copy if `op` or the commit fails.
    fn mutate<T>(
        &mut self,
        mut op: impl FnMut(&mut State, &mut Dirty, &mut Ctx<'_>) -> Result<T, ControllerError>,
    ) -> Result<T, ControllerError> {
        let mut last_conflict = None;
        for attempt in 1..=MAX_ATTEMPTS {
            self.refresh()?;
            match self.attempt(&mut op)? {
                Attempt::Done(value) => return Ok(value),
                Attempt::Conflict(conflict) => {
                    self.conflicts += 1;
                    tracing::info!(%conflict, attempt, "the store changed concurrently; reloading and retrying");
                    self.reload()?;
                    last_conflict = Some(conflict);
                }
            }
        }
        Err(concurrent(last_conflict))
    }

    /// Runs `op` once and commits it.
    fn attempt<T>(
        &mut self,
        op: &mut impl FnMut(&mut State, &mut Dirty, &mut Ctx<'_>) -> Result<T, ControllerError>,
    ) -> Result<Attempt<T>, ControllerError> {
        let mut dirty = Dirty::default();
        let mut ctx = Ctx {
            rng: &mut *self.rng,
            drivers: &self.drivers,
            host: &self.host,
            vtep: self.vtep,
            changes: Vec::new(),
        };
        let result = op(&mut self.state, &mut dirty, &mut ctx);
        let changes = ctx.changes;
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                self.reload()?;
                return Err(e);
            }
        };
        let txn = self.transaction_for(&dirty);
        match self.store.commit(&txn) {
            Err(e) => {
                tracing::error!(error = %e, "store commit failed; rolling back");
                self.reload()?;
                Err(e.into())
            }
            Ok(CommitOutcome::Conflict(conflict)) => Ok(Attempt::Conflict(conflict)),
            Ok(CommitOutcome::Applied { revision }) => {
                // Committed: the data plane must hear of it whatever follows.
                self.changes.extend(changes);
                if !self.advance(&txn, revision) {
                    // Others wrote in between (to keys this operation did
                    // not touch): pick their changes up.
                    self.reload()?;
                }
                Ok(Attempt::Done(value))
            }
        }
    }

    /// Records that `txn` committed at `revision`. False when other writers
    /// committed since this controller's view, which is then stale: a
    /// write transaction takes exactly the revision after the one before
    /// it, so anything but `self.revision + 1` means someone else wrote in
    /// between (on etcd possibly outside our prefix, or a lease expiry, or
    /// nothing at all when every delete hit a missing key; reloading is
    /// merely redundant then).
    fn advance(&mut self, txn: &Transaction, revision: Revision) -> bool {
        if txn.is_empty() {
            return true;
        }
        if revision != self.revision + 1 {
            return false;
        }
        self.revision = revision;
        for key in txn.puts.keys() {
            self.key_revisions.insert(key.clone(), revision);
        }
        for key in &txn.deletes {
            self.key_revisions.remove(key);
        }
        true
    }

    /// Replaces the in-memory state with the store's, then gives networks
    /// new to this host a segment and forgets segments of removed ones.
    /// Public for a caller that caught a panic in the middle of an
    /// operation, which may have left the state half-changed and
    /// uncommitted.
    pub fn reload(&mut self) -> Result<(), ControllerError> {
        let mut last_conflict = None;
        for _ in 0..MAX_ATTEMPTS {
            let contents = self.store.load()?;
            self.state = keys::decode_state(&contents, &self.host)?;
            self.revision = contents.revision;
            self.key_revisions = contents
                .entries
                .iter()
                .map(|(k, e)| (k.clone(), e.mod_revision))
                .collect();
            let dirty = self.reconcile_segments();
            if dirty.segments.is_empty() {
                return Ok(());
            }
            let txn = self.transaction_for(&dirty);
            match self.store.commit(&txn)? {
                CommitOutcome::Applied { revision } => {
                    if self.advance(&txn, revision) {
                        return Ok(());
                    }
                }
                CommitOutcome::Conflict(c) => last_conflict = Some(c),
            }
        }
        Err(concurrent(last_conflict))
    }

    /// Segments for networks that need one here and have none (created by
    /// another host, or before this host joined), and none for networks
    /// that are gone.
    fn reconcile_segments(&mut self) -> Dirty {
        let mut dirty = Dirty::default();
        let drivers = &self.drivers;
        let needing: Vec<String> = self
            .state
            .networks
            .values()
            .filter(|n| {
                drivers
                    .get(&n.driver)
                    .is_ok_and(|d| d.capabilities().uses_segment)
            })
            .map(|n| n.id.clone())
            .collect();
        for id in needing {
            if !self.state.local.segments.contains_key(&id) {
                self.state.local.allocate(&id);
                dirty.segments.insert(id);
                dirty.local_meta = true;
            }
        }
        let gone: Vec<String> = self
            .state
            .local
            .segments
            .keys()
            .filter(|id| !self.state.networks.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            self.state.local.segments.remove(&id);
            dirty.segments.insert(id);
        }
        dirty
    }

    /// The transaction writing what `dirty` names, comparing each key
    /// against the revision this controller read it at.
    fn transaction_for(&self, dirty: &Dirty) -> Transaction {
        let mut txn = Transaction::new();
        let json = |v: &dyn erased::ToJson| v.to_json();
        let host = self.host.as_str();
        let state = &self.state;
        let mut write = |key: String, value: Option<serde_json::Value>| match value {
            Some(v) => txn.put(key, v),
            None => txn.delete(key),
        };
        if dirty.meta {
            write(
                keys::META.into(),
                Some(json(&keys::Meta {
                    schema: keys::SCHEMA,
                })),
            );
        }
        if dirty.ipam_config {
            write(keys::IPAM_CONFIG.into(), Some(json(state.ipam.config())));
        }
        for space in &dirty.spaces {
            let pools = state
                .ipam
                .pools()
                .filter(|(id, _)| &id.space == space)
                .map(|(id, _)| id.subnet)
                .collect();
            write(
                keys::space_key(space),
                Some(json(&keys::SpaceIndex { pools })),
            );
        }
        for id in &dirty.pools {
            write(keys::pool_key(id), state.ipam.pool(id).map(|p| json(p)));
        }
        for id in &dirty.networks {
            write(
                keys::network_key(id),
                state.networks.get(id).map(|n| json(n)),
            );
        }
        for (name, id) in &dirty.network_names {
            write(
                keys::network_name_key(name),
                id.as_ref().map(|id| json!(id)),
            );
        }
        for (vni, id) in &dirty.vnis {
            write(keys::vni_key(*vni), id.as_ref().map(|id| json!(id)));
        }
        for id in &dirty.endpoints {
            write(
                keys::endpoint_key(id),
                state.endpoints.get(id).map(|e| json(e)),
            );
        }
        for id in &dirty.sandboxes {
            write(
                keys::sandbox_key(host, id),
                state.sandboxes.get(id).map(|s| json(s)),
            );
        }
        for (name, id) in &dirty.sandbox_names {
            write(
                keys::sandbox_name_key(host, name),
                id.as_ref().map(|id| json!(id)),
            );
        }
        for id in &dirty.segments {
            write(
                keys::segment_key(host, id),
                state.local.segments.get(id).map(|s| json!(s.0)),
            );
        }
        if dirty.local_meta {
            write(
                keys::local_meta_key(host),
                Some(json(&keys::LocalMeta {
                    next_segment: state.local.next_segment,
                })),
            );
        }
        let written: Vec<String> = txn.puts.keys().chain(txn.deletes.iter()).cloned().collect();
        for key in written {
            let compare = match self.key_revisions.get(&key) {
                Some(&revision) => Compare::ModRevision { key, revision },
                None => Compare::Missing { key },
            };
            txn.require(compare);
        }
        txn
    }
}

/// The error for an operation whose commits kept conflicting.
fn concurrent(conflict: Option<Conflict>) -> ControllerError {
    ControllerError::ConcurrentChange {
        key: conflict.map(|c| c.key().to_string()).unwrap_or_default(),
        attempts: MAX_ATTEMPTS,
    }
}

/// What an operation may use besides the state.
struct Ctx<'a> {
    rng: &'a mut (dyn RngCore + Send),
    drivers: &'a DriverRegistry,
    /// This controller's host id.
    host: &'a str,
    /// This host's tunnel endpoint.
    vtep: Option<IpAddr>,
    changes: Vec<Change>,
}

impl Ctx<'_> {
    /// A fresh 64-hex-digit id, as Docker's.
    fn new_id(&mut self) -> String {
        let mut bytes = [0u8; 32];
        self.rng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

mod erased {
    /// Serialises anything serde can, for the store.
    pub trait ToJson {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> ToJson for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("controller state always serialises")
        }
    }
}

/// An RFC 4193 unique local /48: `fd` followed by a 40-bit random global id.
fn random_ula48(rng: &mut dyn RngCore) -> Ipv6Network {
    let mut g = [0u8; 5];
    rng.fill_bytes(&mut g);
    let addr = Ipv6Addr::new(
        0xfd00 | u16::from(g[0]),
        u16::from_be_bytes([g[1], g[2]]),
        u16::from_be_bytes([g[3], g[4]]),
        0,
        0,
        0,
        0,
        0,
    );
    Ipv6Network::new(addr, 48).expect("48 is a valid prefix")
}

#[cfg(test)]
mod overlay_tests;
#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;
