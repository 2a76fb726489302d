//! The controller's key layout in the [`Store`](crate::store::Store), and
//! how the keys decode into its state.
//!
//! # Schema 2
//! Shared by every host of a store:
//! - `meta`: `{"schema": 2}`; written once, by whoever creates the state.
//! - `ipam/config`: the default address pools (written once).
//! - `ipam/<space>`: `{"pools": [subnet, ...]}`, the pools of an address
//!   space (`local`, `global`). Creating or releasing a pool rewrites it, so
//!   two writers picking subnets from the same space conflict instead of
//!   overlapping; allocating addresses does not touch it.
//! - `ipam/<space>/<subnet>` (`ipam/local/10.1.0.0/24`): one pool, with its
//!   allocations. Address allocations on different pools never conflict.
//! - `networks/<id>`: a [`Network`], free of host-local data.
//! - `names/networks/<name>`: the id of the network with that name, so two
//!   writers creating the same name conflict (created with a "missing"
//!   compare).
//! - `endpoints/<id>`: an [`Endpoint`], naming the host that holds it.
//! - `vnis/<N>`: the id of the network whose wire identity (VXLAN VNI) is
//!   N, so two writers picking the same VNI conflict (created with a
//!   "missing" compare).
//!
//! Host-local, written only by the controller configured with that host id:
//! - `local/<host>/meta`: `{"next_segment": N}`, the host's segment counter.
//! - `local/<host>/segments/<network-id>`: the host's switch segment number
//!   for a network.
//! - `local/<host>/sandboxes/<id>`: a [`Sandbox`] (a namespace on that host).
//! - `local/<host>/names/sandboxes/<name>`: the id of the host's container
//!   with that name (container names are unique per host, as in Docker).
//!
//! # Schema 1
//! Written by switchyard before the shared-store layout: `meta` with the
//! segment counter, the whole IPAM under `ipam`, networks with their
//! `segment`, endpoints without a host, `sandboxes/<id>`, no name keys.
//! [`migrate_v1`] turns it into schema 2 in one transaction.

use super::model::{Endpoint, Network, Sandbox};
use super::{ControllerError, Local, State};
use crate::port::SegmentId;
use crate::store::{Compare, StoreContents, Transaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use switchyard_ipam::{IpNetwork, Ipam, IpamConfig, Pool, PoolId};

/// The layout this build writes.
pub(super) const SCHEMA: u32 = 2;

pub(super) const META: &str = "meta";
pub(super) const IPAM_CONFIG: &str = "ipam/config";
/// Schema 1's single IPAM document.
const V1_IPAM: &str = "ipam";

/// `meta`.
#[derive(Serialize, Deserialize)]
pub(super) struct Meta {
    pub(super) schema: u32,
}

/// `local/<host>/meta`.
#[derive(Serialize, Deserialize)]
pub(super) struct LocalMeta {
    pub(super) next_segment: u32,
}

/// `ipam/<space>`.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
pub(super) struct SpaceIndex {
    pub(super) pools: Vec<IpNetwork>,
}

pub(super) fn space_key(space: &str) -> String {
    format!("ipam/{space}")
}

pub(super) fn pool_key(id: &PoolId) -> String {
    format!("ipam/{id}")
}

pub(super) fn network_key(id: &str) -> String {
    format!("networks/{id}")
}

pub(super) fn network_name_key(name: &str) -> String {
    format!("names/networks/{name}")
}

pub(super) fn vni_key(vni: u32) -> String {
    format!("vnis/{vni}")
}

pub(super) fn endpoint_key(id: &str) -> String {
    format!("endpoints/{id}")
}

pub(super) fn local_meta_key(host: &str) -> String {
    format!("local/{host}/meta")
}

pub(super) fn segment_key(host: &str, network_id: &str) -> String {
    format!("local/{host}/segments/{network_id}")
}

pub(super) fn sandbox_key(host: &str, id: &str) -> String {
    format!("local/{host}/sandboxes/{id}")
}

pub(super) fn sandbox_name_key(host: &str, name: &str) -> String {
    format!("local/{host}/names/sandboxes/{name}")
}

fn decode<T: DeserializeOwned>(key: &str, v: &Value) -> Result<T, ControllerError> {
    serde_json::from_value(v.clone()).map_err(|e| ControllerError::Decode {
        key: key.to_string(),
        detail: e.to_string(),
    })
}

fn bad(key: &str, detail: impl Into<String>) -> ControllerError {
    ControllerError::Decode {
        key: key.to_string(),
        detail: detail.into(),
    }
}

/// The schema of stored state: `None` for an empty store.
pub(super) fn schema_of(contents: &StoreContents) -> Result<Option<u32>, ControllerError> {
    let Some(meta) = contents.value(META) else {
        if contents.entries.is_empty() {
            return Ok(None);
        }
        return Err(bad(META, "missing"));
    };
    let schema = meta
        .get("schema")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad(META, "no schema number"))?;
    if schema > u64::from(SCHEMA) {
        return Err(bad(
            META,
            format!("schema {schema} is newer than this build's {SCHEMA}; upgrade switchyard"),
        ));
    }
    Ok(Some(schema as u32))
}

/// Decodes schema 2 state as host `host` sees it: every shared object, and
/// this host's local ones (other hosts' local keys are not ours to read).
pub(super) fn decode_state(contents: &StoreContents, host: &str) -> Result<State, ControllerError> {
    let config: IpamConfig = decode(
        IPAM_CONFIG,
        contents
            .value(IPAM_CONFIG)
            .ok_or_else(|| bad(IPAM_CONFIG, "missing"))?,
    )?;
    let local_prefix = format!("local/{host}/");
    let mut pools = Vec::new();
    let mut spaces: BTreeMap<String, SpaceIndex> = BTreeMap::new();
    let mut network_names = BTreeMap::new();
    let mut vnis = BTreeMap::new();
    let mut sandbox_names = BTreeMap::new();
    let mut networks = BTreeMap::new();
    let mut endpoints = BTreeMap::new();
    let mut sandboxes = BTreeMap::new();
    let mut local = Local::default();
    for (key, entry) in &contents.entries {
        let value = &entry.value;
        if let Some(rest) = key.strip_prefix("ipam/") {
            match rest.split_once('/') {
                _ if rest == "config" => {}
                None => {
                    spaces.insert(rest.to_string(), decode(key, value)?);
                }
                Some(_) => {
                    let pool: Pool = decode(key, value)?;
                    let id = PoolId::new(pool.space(), pool.subnet());
                    if pool_key(&id) != *key {
                        return Err(bad(key, format!("holds pool {id}")));
                    }
                    pools.push(pool);
                }
            }
        } else if let Some(id) = key.strip_prefix("networks/") {
            networks.insert(id.to_string(), decode::<Network>(key, value)?);
        } else if let Some(name) = key.strip_prefix("names/networks/") {
            network_names.insert(name.to_string(), decode::<String>(key, value)?);
        } else if let Some(vni) = key.strip_prefix("vnis/") {
            vnis.insert(vni.to_string(), decode::<String>(key, value)?);
        } else if let Some(id) = key.strip_prefix("endpoints/") {
            endpoints.insert(id.to_string(), decode::<Endpoint>(key, value)?);
        } else if let Some(rest) = key.strip_prefix(&local_prefix) {
            if rest == "meta" {
                local.next_segment = decode::<LocalMeta>(key, value)?.next_segment;
            } else if let Some(id) = rest.strip_prefix("segments/") {
                local
                    .segments
                    .insert(id.to_string(), SegmentId(decode(key, value)?));
            } else if let Some(id) = rest.strip_prefix("sandboxes/") {
                sandboxes.insert(id.to_string(), decode::<Sandbox>(key, value)?);
            } else if let Some(name) = rest.strip_prefix("names/sandboxes/") {
                sandbox_names.insert(name.to_string(), decode::<String>(key, value)?);
            }
        }
    }
    let ipam = Ipam::from_parts(config, pools).map_err(|e| bad("ipam/", e.to_string()))?;
    check_spaces(&ipam, &spaces)?;
    check_names(
        "names/networks/",
        &network_names,
        networks
            .values()
            .map(|n: &Network| (n.id.as_str(), n.name.as_str())),
    )?;
    let with_vni: Vec<(String, &str)> = networks
        .values()
        .filter_map(|n: &Network| n.global_segment.map(|v| (v.to_string(), n.id.as_str())))
        .collect();
    check_names(
        "vnis/",
        &vnis,
        with_vni.iter().map(|(vni, id)| (*id, vni.as_str())),
    )?;
    check_names(
        &format!("{local_prefix}names/sandboxes/"),
        &sandbox_names,
        sandboxes
            .values()
            .map(|s: &Sandbox| (s.id.as_str(), s.name.as_str())),
    )?;
    if local.next_segment == 0 {
        local.next_segment = 1;
    }
    if let Some((id, seg)) = local
        .segments
        .iter()
        .find(|(_, s)| s.0 >= local.next_segment)
    {
        return Err(bad(
            &segment_key(host, id),
            format!(
                "segment {} is not below the host's next segment {}",
                seg.0, local.next_segment
            ),
        ));
    }
    Ok(State {
        ipam,
        networks,
        endpoints,
        sandboxes,
        local,
    })
}

/// Every space index lists exactly the pools stored in that space.
fn check_spaces(ipam: &Ipam, spaces: &BTreeMap<String, SpaceIndex>) -> Result<(), ControllerError> {
    let mut actual: BTreeMap<&str, Vec<IpNetwork>> = BTreeMap::new();
    for (id, _) in ipam.pools() {
        actual.entry(id.space.as_str()).or_default().push(id.subnet);
    }
    let names: BTreeSet<&str> = actual
        .keys()
        .copied()
        .chain(spaces.keys().map(String::as_str))
        .collect();
    for space in names {
        let mut listed = spaces
            .get(space)
            .map(|s| s.pools.clone())
            .unwrap_or_default();
        listed.sort();
        let mut stored = actual.get(space).cloned().unwrap_or_default();
        stored.sort();
        if listed != stored {
            return Err(bad(
                &space_key(space),
                format!("lists pools {listed:?} but the stored pools are {stored:?}"),
            ));
        }
    }
    Ok(())
}

/// Every object has its name key, and every name key names an object of
/// that name.
fn check_names<'a>(
    prefix: &str,
    names: &BTreeMap<String, String>,
    objects: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<(), ControllerError> {
    let mut expected = BTreeMap::new();
    for (id, name) in objects {
        expected.insert(name.to_string(), id.to_string());
    }
    if let Some((name, id)) = expected.iter().find(|(n, id)| names.get(*n) != Some(id)) {
        return Err(bad(
            &format!("{prefix}{name}"),
            format!("missing or not {id}, the id of the object named {name}"),
        ));
    }
    if let Some(name) = names.keys().find(|n| !expected.contains_key(*n)) {
        return Err(bad(
            &format!("{prefix}{name}"),
            "names no stored object".to_string(),
        ));
    }
    Ok(())
}

/// The one transaction that turns schema 1 state into schema 2, as host
/// `host` (which becomes the host of every endpoint and sandbox). It
/// compares `meta`, so two controllers migrating at once conflict.
pub(super) fn migrate_v1(
    contents: &StoreContents,
    host: &str,
) -> Result<Transaction, ControllerError> {
    let mut txn = Transaction::new();
    let meta_entry = contents
        .entries
        .get(META)
        .ok_or_else(|| bad(META, "missing"))?;
    txn.require(Compare::ModRevision {
        key: META.into(),
        revision: meta_entry.mod_revision,
    });
    let next_segment = meta_entry
        .value
        .get("next_segment")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad(META, "schema 1 without a next_segment"))?;
    txn.put(META, json!(Meta { schema: SCHEMA }));
    txn.put(local_meta_key(host), json!(LocalMeta { next_segment }));

    let ipam: Ipam = decode(
        V1_IPAM,
        contents
            .value(V1_IPAM)
            .ok_or_else(|| bad(V1_IPAM, "missing"))?,
    )?;
    txn.delete(V1_IPAM);
    txn.put(IPAM_CONFIG, json!(ipam.config()));
    let mut spaces: BTreeMap<&str, Vec<IpNetwork>> = BTreeMap::new();
    for (id, pool) in ipam.pools() {
        txn.put(pool_key(id), json!(pool));
        spaces.entry(id.space.as_str()).or_default().push(id.subnet);
    }
    for (space, pools) in spaces {
        txn.put(space_key(space), json!(SpaceIndex { pools }));
    }

    for (key, entry) in &contents.entries {
        let mut value = entry.value.clone();
        if let Some(id) = key.strip_prefix("networks/") {
            let obj = value
                .as_object_mut()
                .ok_or_else(|| bad(key, "not an object"))?;
            if let Some(seg) = obj.remove("segment").and_then(|s| s.as_u64()) {
                txn.put(segment_key(host, id), json!(seg));
            }
            obj.insert("global_segment".into(), Value::Null);
            let network: Network = decode(key, &value)?;
            txn.put(network_name_key(&network.name), json!(network.id));
            txn.put(key.clone(), value);
        } else if key.starts_with("endpoints/") {
            let obj = value
                .as_object_mut()
                .ok_or_else(|| bad(key, "not an object"))?;
            obj.insert("host".into(), json!(host));
            obj.insert("vtep".into(), Value::Null);
            decode::<Endpoint>(key, &value)?;
            txn.put(key.clone(), value);
        } else if let Some(id) = key.strip_prefix("sandboxes/") {
            let sandbox: Sandbox = decode(key, &value)?;
            txn.delete(key.clone());
            txn.put(sandbox_name_key(host, &sandbox.name), json!(sandbox.id));
            txn.put(sandbox_key(host, id), value);
        }
    }
    Ok(txn)
}
