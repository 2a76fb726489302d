//! The CNM controller: networks, endpoints and sandboxes, with Docker's
//! rules, persisted through a [`Store`].
//!
//! Every operation validates, changes the in-memory state, and commits the
//! objects it touched in one store transaction. If validation or the commit
//! fails, the in-memory state is reloaded from the store, so a failed
//! operation leaves no trace. Successful operations queue [`Change`]s that
//! the data plane (real mode or the simulator) drains with
//! [`Controller::take_changes`] and turns into ports through the drivers.

mod error;
pub mod inspect;
pub mod model;
mod names;
mod networks;
mod sandboxes;

pub use error::ControllerError;
pub use names::{validate_alias, validate_name};

use crate::driver::{DriverRegistry, PortPlan};
use crate::store::{Snapshot, Store, Transaction};
use ipnetwork::Ipv6Network;
use model::{Endpoint, Network, Sandbox};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use switchyard_ipam::{DefaultPool, Ipam, IpamConfig};

/// Something the data plane must act on after an operation succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A network now exists (create its segment, DNS policy).
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
    /// An endpoint joined: plan its port with [`Controller::plan_port`].
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

/// Settings fixed when the controller first creates its state.
#[derive(Clone, Debug, Default)]
pub struct ControllerOptions {
    /// Default IPv4 address pools (Docker's `default-address-pools`);
    /// `None` keeps Docker's 172.17–31/16 and 192.168.0.0/20 blocks.
    pub v4_pools: Option<Vec<DefaultPool>>,
    /// Default IPv6 address pools; `None` means /64s of a random ULA /48.
    pub v6_pools: Option<Vec<DefaultPool>>,
}

/// Bookkeeping persisted beside the objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    /// Layout version of the stored objects.
    schema: u32,
    /// The next segment id to hand out.
    next_segment: u32,
}

const SCHEMA: u32 = 1;
const META_KEY: &str = "meta";
const IPAM_KEY: &str = "ipam";

/// Everything the controller owns.
#[derive(Clone, Debug)]
struct State {
    meta: Meta,
    ipam: Ipam,
    networks: BTreeMap<String, Network>,
    endpoints: BTreeMap<String, Endpoint>,
    sandboxes: BTreeMap<String, Sandbox>,
}

/// Which stored objects an operation touched.
#[derive(Default)]
struct Dirty {
    meta: bool,
    ipam: bool,
    networks: BTreeSet<String>,
    endpoints: BTreeSet<String>,
    sandboxes: BTreeSet<String>,
}

/// The control plane of one host.
pub struct Controller {
    state: State,
    store: Box<dyn Store>,
    drivers: DriverRegistry,
    rng: Box<dyn RngCore + Send>,
    changes: Vec<Change>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("store", &self.store.describe())
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
    /// and address allocation.
    ///
    /// `rng` supplies ids, the IPv6 ULA prefix and MACs of IPv6-only
    /// endpoints: OS randomness in real mode, the seeded generator in the
    /// simulator.
    pub fn open(
        mut store: Box<dyn Store>,
        drivers: DriverRegistry,
        mut rng: Box<dyn RngCore + Send>,
        options: ControllerOptions,
    ) -> Result<Controller, ControllerError> {
        let snapshot = store.load()?;
        let fresh = snapshot.is_empty();
        let state = if fresh {
            let mut ipam_config = IpamConfig::docker_defaults(random_ula48(&mut *rng));
            if let Some(pools) = options.v4_pools {
                ipam_config.v4_pools = pools;
            }
            if let Some(pools) = options.v6_pools {
                ipam_config.v6_pools = pools;
            }
            ipam_config.validate()?;
            State {
                meta: Meta {
                    schema: SCHEMA,
                    next_segment: 1,
                },
                ipam: Ipam::new(ipam_config),
                networks: BTreeMap::new(),
                endpoints: BTreeMap::new(),
                sandboxes: BTreeMap::new(),
            }
        } else {
            decode_state(&snapshot)?
        };
        let mut controller = Controller {
            state,
            store,
            drivers,
            rng,
            changes: Vec::new(),
        };
        if fresh {
            controller.create_predefined()?;
            tracing::info!(store = %controller.store.describe(), "created predefined networks bridge, host, none");
        } else {
            tracing::info!(
                store = %controller.store.describe(),
                networks = controller.state.networks.len(),
                sandboxes = controller.state.sandboxes.len(),
                endpoints = controller.state.endpoints.len(),
                "restored controller state"
            );
        }
        Ok(controller)
    }

    /// The drivers this controller knows.
    pub fn drivers(&self) -> &DriverRegistry {
        &self.drivers
    }

    /// The address manager (read-only; changes go through operations).
    pub fn ipam(&self) -> &Ipam {
        &self.state.ipam
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

    /// All sandboxes, by name.
    pub fn sandboxes(&self) -> impl Iterator<Item = &Sandbox> {
        let mut v: Vec<&Sandbox> = self.state.sandboxes.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.into_iter()
    }

    /// All endpoints, by id.
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.state.endpoints.values()
    }

    /// A network by exact id, exact name, or unique id prefix.
    pub fn network(&self, key: &str) -> Result<&Network, ControllerError> {
        names::resolve(
            "network",
            key,
            self.state
                .networks
                .values()
                .map(|n| (n.id.as_str(), n.name.as_str(), n)),
        )?
        .ok_or_else(|| ControllerError::NoSuchNetwork {
            name: key.to_string(),
        })
    }

    /// A network by id.
    pub fn network_by_id(&self, id: &str) -> Option<&Network> {
        self.state.networks.get(id)
    }

    /// A sandbox by exact id, exact name, or unique id prefix.
    pub fn sandbox(&self, key: &str) -> Result<&Sandbox, ControllerError> {
        names::resolve(
            "container",
            key,
            self.state
                .sandboxes
                .values()
                .map(|s| (s.id.as_str(), s.name.as_str(), s)),
        )?
        .ok_or_else(|| ControllerError::NoSuchSandbox {
            name: key.to_string(),
        })
    }

    /// A sandbox by id.
    pub fn sandbox_by_id(&self, id: &str) -> Option<&Sandbox> {
        self.state.sandboxes.get(id)
    }

    /// An endpoint by id.
    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.state.endpoints.get(id)
    }

    /// The endpoints of a network, by container name.
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
        match &sandbox.mode {
            model::NetnsMode::Container(owner) => {
                self.state.sandboxes.get(owner).unwrap_or(sandbox)
            }
            _ => sandbox,
        }
    }

    /// Plans the data-plane port of an endpoint through its network's
    /// driver; `None` for drivers without ports or unknown ids.
    pub fn plan_port(&self, endpoint_id: &str) -> Option<PortPlan> {
        let endpoint = self.state.endpoints.get(endpoint_id)?;
        let network = self.state.networks.get(&endpoint.network_id)?;
        self.drivers
            .get(&network.driver)
            .ok()?
            .plan_port(network, endpoint)
    }

    /// Records runtime facts on a sandbox (namespace path, holder pid).
    pub fn set_sandbox_labels(
        &mut self,
        key: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<(), ControllerError> {
        let id = self.sandbox(key)?.id.clone();
        self.mutate(|state, dirty, _| {
            let sandbox = state.sandboxes.get_mut(&id).expect("resolved above");
            sandbox.labels.extend(labels);
            dirty.sandboxes.insert(id.clone());
            Ok(())
        })
    }

    /// Runs `op` against the state; commits what it touched, or rolls the
    /// whole state back to the store's copy if `op` or the commit fails.
    fn mutate<T>(
        &mut self,
        op: impl FnOnce(&mut State, &mut Dirty, &mut Ctx<'_>) -> Result<T, ControllerError>,
    ) -> Result<T, ControllerError> {
        let mut dirty = Dirty::default();
        let mut ctx = Ctx {
            rng: &mut *self.rng,
            drivers: &self.drivers,
            changes: Vec::new(),
        };
        let result = op(&mut self.state, &mut dirty, &mut ctx);
        let changes = ctx.changes;
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                self.rollback()?;
                return Err(e);
            }
        };
        let txn = self.transaction_for(&dirty);
        if let Err(e) = self.store.commit(&txn) {
            tracing::error!(error = %e, "store commit failed; rolling back");
            self.rollback()?;
            return Err(e.into());
        }
        self.changes.extend(changes);
        Ok(value)
    }

    /// Puts the in-memory state back to the store's copy: for a caller that
    /// caught a panic in the middle of an operation, which may have left
    /// the state half-changed and uncommitted.
    pub fn reload(&mut self) -> Result<(), ControllerError> {
        self.rollback()
    }

    fn rollback(&mut self) -> Result<(), ControllerError> {
        let snapshot = self.store.load()?;
        self.state = decode_state(&snapshot)?;
        Ok(())
    }

    fn transaction_for(&self, dirty: &Dirty) -> Transaction {
        let mut txn = Transaction::new();
        let json = |v: &dyn erased::ToJson| v.to_json();
        if dirty.meta {
            txn.put(META_KEY, json(&self.state.meta));
        }
        if dirty.ipam {
            txn.put(IPAM_KEY, json(&self.state.ipam));
        }
        for id in &dirty.networks {
            let key = format!("networks/{id}");
            match self.state.networks.get(id) {
                Some(n) => txn.put(key, json(n)),
                None => txn.delete(key),
            }
        }
        for id in &dirty.endpoints {
            let key = format!("endpoints/{id}");
            match self.state.endpoints.get(id) {
                Some(e) => txn.put(key, json(e)),
                None => txn.delete(key),
            }
        }
        for id in &dirty.sandboxes {
            let key = format!("sandboxes/{id}");
            match self.state.sandboxes.get(id) {
                Some(s) => txn.put(key, json(s)),
                None => txn.delete(key),
            }
        }
        txn
    }
}

/// What an operation may use besides the state.
struct Ctx<'a> {
    rng: &'a mut (dyn RngCore + Send),
    drivers: &'a DriverRegistry,
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

fn decode_state(snapshot: &Snapshot) -> Result<State, ControllerError> {
    fn decode<T: serde::de::DeserializeOwned>(
        key: &str,
        v: &serde_json::Value,
    ) -> Result<T, ControllerError> {
        serde_json::from_value(v.clone()).map_err(|e| ControllerError::Decode {
            key: key.to_string(),
            detail: e.to_string(),
        })
    }
    let meta_value = snapshot
        .get(META_KEY)
        .ok_or_else(|| ControllerError::Decode {
            key: META_KEY.into(),
            detail: "missing".into(),
        })?;
    let meta: Meta = decode(META_KEY, meta_value)?;
    if meta.schema > SCHEMA {
        return Err(ControllerError::Decode {
            key: META_KEY.into(),
            detail: format!(
                "schema {} is newer than this build's {SCHEMA}; upgrade switchyard",
                meta.schema
            ),
        });
    }
    let ipam_value = snapshot
        .get(IPAM_KEY)
        .ok_or_else(|| ControllerError::Decode {
            key: IPAM_KEY.into(),
            detail: "missing".into(),
        })?;
    let mut state = State {
        meta,
        ipam: decode(IPAM_KEY, ipam_value)?,
        networks: BTreeMap::new(),
        endpoints: BTreeMap::new(),
        sandboxes: BTreeMap::new(),
    };
    for (key, value) in snapshot {
        if let Some(id) = key.strip_prefix("networks/") {
            state.networks.insert(id.to_string(), decode(key, value)?);
        } else if let Some(id) = key.strip_prefix("endpoints/") {
            state.endpoints.insert(id.to_string(), decode(key, value)?);
        } else if let Some(id) = key.strip_prefix("sandboxes/") {
            state.sandboxes.insert(id.to_string(), decode(key, value)?);
        }
    }
    Ok(state)
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
mod tests;
