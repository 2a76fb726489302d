//! The name records the controller hands us, indexed for queries.
//!
//! Records are plain data owned by the resolver and changed one endpoint or
//! one network at a time, so a change is visible to the very next query and
//! no query ever sees a half-built table. Two indexes serve queries:
//! `(network, lowercase name) → endpoints` for A/AAAA and
//! `(network, address) → endpoints` for PTR. Network *policy* (names on or
//! off, forwarding on or off, the network's own name) is looked up at query
//! time, so changing it needs no re-indexing.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::hash::FixedMap;
use crate::query::NameKey;
use crate::wire::{self, MAX_NAME_LEN};

/// One endpoint's DNS-visible facts on one network, as the controller knows
/// them: what `NAME`, `NAME.NETWORK` and PTR queries resolve from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The controller's endpoint id; the key for updates and removal.
    pub endpoint_id: String,
    /// The network the endpoint is attached to.
    pub network_id: String,
    /// The container name: answers A/AAAA and is the PTR target.
    pub name: String,
    /// `--alias` names on this network; an alias may be shared by several
    /// endpoints, which is how round-robin load balancing is asked for.
    pub aliases: Vec<String>,
    /// The endpoint's IPv4 address on this network, if any.
    pub ipv4: Option<Ipv4Addr>,
    /// The endpoint's IPv6 address on this network, if any.
    pub ipv6: Option<Ipv6Addr>,
}

/// What the resolver may do for a network: Docker's default `bridge` has
/// names off, `--internal` networks have forwarding off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPolicy {
    /// The network's name, for `NAME.NETWORK` queries.
    pub name: String,
    /// Whether endpoint names on this network are answered.
    pub names: bool,
    /// Whether sandboxes on this network may have unknown names forwarded
    /// upstream.
    pub forward: bool,
}

/// The networks a querying sandbox is attached to: the only ones whose names
/// it sees and whose forwarding policy applies to it. The caller keeps one
/// per sandbox and updates it on connect and disconnect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    networks: Vec<String>,
}

impl Scope {
    /// A scope over these network ids.
    pub fn new<I, S>(networks: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Scope {
            networks: networks.into_iter().map(Into::into).collect(),
        }
    }

    /// Adds a network (on connect); a network already present is kept once.
    pub fn attach(&mut self, network_id: &str) {
        if !self.networks.iter().any(|n| n == network_id) {
            self.networks.push(network_id.to_owned());
        }
    }

    /// Removes a network (on disconnect).
    pub fn detach(&mut self, network_id: &str) {
        self.networks.retain(|n| n != network_id);
    }

    /// The network ids in scope.
    pub fn networks(&self) -> &[String] {
        &self.networks
    }
}

/// Which addresses a lookup wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// IPv4 only (A).
    V4,
    /// IPv6 only (AAAA).
    V6,
    /// Both.
    Any,
}

impl Family {
    /// Appends the record's addresses of this family.
    pub(crate) fn pick(self, rec: &EndpointRecord, out: &mut Vec<IpAddr>) {
        if matches!(self, Family::V4 | Family::Any) {
            if let Some(v4) = rec.ipv4 {
                out.push(IpAddr::V4(v4));
            }
        }
        if matches!(self, Family::V6 | Family::Any) {
            if let Some(v6) = rec.ipv6 {
                out.push(IpAddr::V6(v6));
            }
        }
    }
}

/// Dense handle of an interned network id.
pub(crate) type NetId = u32;
/// Dense handle of an endpoint slot.
type EpId = u32;

/// A network's policy with its name pre-encoded.
struct NetPolicyState {
    policy: NetworkPolicy,
    /// Lowercase wire labels of the name, for `NAME.NETWORK` suffix matching;
    /// `None` when the name is not a valid DNS name.
    key: Option<Box<[u8]>>,
    /// Original-case wire labels, for PTR targets.
    labels: Option<Box<[u8]>>,
}

struct NetSlot {
    id: String,
    policy: Option<NetPolicyState>,
    /// Endpoints referring to this network; the slot is freed when this is
    /// zero and no policy is set.
    endpoints: usize,
}

struct EpEntry {
    record: EndpointRecord,
    net: NetId,
    /// Lowercase wire labels this endpoint is indexed under (name and
    /// aliases, deduplicated).
    keys: Vec<Box<[u8]>>,
    /// Original-case wire labels of the container name, for PTR targets.
    name_labels: Option<Box<[u8]>>,
}

/// Index key: the network handle (4 bytes, big-endian) then the lowercase
/// wire labels of the name. Built on the stack for lookups.
struct IndexKey {
    bytes: [u8; 4 + MAX_NAME_LEN],
    len: usize,
}

impl IndexKey {
    #[inline]
    fn new(net: NetId, labels: &[u8]) -> Self {
        let mut bytes = [0u8; 4 + MAX_NAME_LEN];
        bytes[..4].copy_from_slice(&net.to_be_bytes());
        bytes[4..4 + labels.len()].copy_from_slice(labels);
        IndexKey {
            bytes,
            len: 4 + labels.len(),
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The record store and its indexes.
#[derive(Default)]
pub(crate) struct Records {
    net_ids: BTreeMap<String, NetId>,
    nets: Vec<Option<NetSlot>>,
    free_nets: Vec<NetId>,
    ep_ids: BTreeMap<String, EpId>,
    eps: Vec<Option<EpEntry>>,
    free_eps: Vec<EpId>,
    by_name: FixedMap<Box<[u8]>, Vec<EpId>>,
    by_addr: FixedMap<(NetId, IpAddr), Vec<EpId>>,
}

impl Records {
    fn slot(&self, net: NetId) -> Option<&NetSlot> {
        self.nets.get(net as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, net: NetId) -> Option<&mut NetSlot> {
        self.nets.get_mut(net as usize).and_then(Option::as_mut)
    }

    fn intern_net(&mut self, id: &str) -> NetId {
        if let Some(&net) = self.net_ids.get(id) {
            return net;
        }
        let slot = NetSlot {
            id: id.to_owned(),
            policy: None,
            endpoints: 0,
        };
        let net = match self.free_nets.pop() {
            Some(net) => {
                self.nets[net as usize] = Some(slot);
                net
            }
            None => {
                self.nets.push(Some(slot));
                (self.nets.len() - 1) as NetId
            }
        };
        self.net_ids.insert(id.to_owned(), net);
        net
    }

    /// Frees a network slot nobody refers to any more.
    fn maybe_free_net(&mut self, net: NetId) {
        let unused = self
            .slot(net)
            .is_some_and(|s| s.endpoints == 0 && s.policy.is_none());
        if unused {
            if let Some(slot) = self.nets[net as usize].take() {
                self.net_ids.remove(&slot.id);
            }
            self.free_nets.push(net);
        }
    }

    /// Sets or replaces a network's policy.
    pub(crate) fn set_network(&mut self, network_id: &str, policy: NetworkPolicy) {
        let net = self.intern_net(network_id);
        let labels = wire::encode_labels(&policy.name);
        if labels.is_none() {
            tracing::warn!(network = network_id, name = %policy.name,
                "network name is not a valid DNS name; NAME.NETWORK lookups disabled for it");
        }
        let key = labels.clone().map(|mut l| {
            l.make_ascii_lowercase();
            l.into_boxed_slice()
        });
        if let Some(slot) = self.slot_mut(net) {
            slot.policy = Some(NetPolicyState {
                policy,
                key,
                labels: labels.map(Vec::into_boxed_slice),
            });
        }
    }

    /// Drops a network's policy: its names stop resolving and it no longer
    /// allows forwarding. Endpoint records still on it are kept (they are
    /// removed one by one by the controller).
    pub(crate) fn remove_network(&mut self, network_id: &str) {
        if let Some(&net) = self.net_ids.get(network_id) {
            if let Some(slot) = self.slot_mut(net) {
                slot.policy = None;
            }
            self.maybe_free_net(net);
        }
    }

    /// The policy currently set for a network.
    pub(crate) fn network(&self, network_id: &str) -> Option<&NetworkPolicy> {
        let net = *self.net_ids.get(network_id)?;
        self.slot(net)?.policy.as_ref().map(|p| &p.policy)
    }

    /// Adds or replaces an endpoint's record.
    pub(crate) fn upsert_endpoint(&mut self, record: EndpointRecord) {
        self.remove_endpoint(&record.endpoint_id);
        let net = self.intern_net(&record.network_id);
        if let Some(slot) = self.slot_mut(net) {
            slot.endpoints += 1;
        }

        let mut keys: Vec<Box<[u8]>> = Vec::with_capacity(1 + record.aliases.len());
        for name in std::iter::once(&record.name).chain(&record.aliases) {
            match wire::encode_labels(name) {
                Some(mut labels) => {
                    labels.make_ascii_lowercase();
                    if !keys.iter().any(|k| **k == *labels) {
                        keys.push(labels.into_boxed_slice());
                    }
                }
                None => tracing::warn!(endpoint = %record.endpoint_id, name = %name,
                    "name is not a valid DNS name; it will not resolve"),
            }
        }
        let name_labels = wire::encode_labels(&record.name).map(Vec::into_boxed_slice);

        let ep = match self.free_eps.pop() {
            Some(ep) => ep,
            None => {
                self.eps.push(None);
                (self.eps.len() - 1) as EpId
            }
        };
        for key in &keys {
            let index_key = IndexKey::new(net, key);
            self.by_name
                .entry(Box::from(index_key.as_slice()))
                .or_default()
                .push(ep);
        }
        for addr in addresses(&record) {
            self.by_addr.entry((net, addr)).or_default().push(ep);
        }
        self.ep_ids.insert(record.endpoint_id.clone(), ep);
        self.eps[ep as usize] = Some(EpEntry {
            record,
            net,
            keys,
            name_labels,
        });
    }

    /// Removes an endpoint's record; unknown ids are ignored (removal is
    /// idempotent, so a replayed disconnect is harmless).
    pub(crate) fn remove_endpoint(&mut self, endpoint_id: &str) {
        let Some(ep) = self.ep_ids.remove(endpoint_id) else {
            return;
        };
        let Some(entry) = self.eps[ep as usize].take() else {
            return;
        };
        for key in &entry.keys {
            let index_key = IndexKey::new(entry.net, key);
            if let Some(list) = self.by_name.get_mut(index_key.as_slice()) {
                list.retain(|&e| e != ep);
                if list.is_empty() {
                    self.by_name.remove(index_key.as_slice());
                }
            }
        }
        for addr in addresses(&entry.record) {
            if let Some(list) = self.by_addr.get_mut(&(entry.net, addr)) {
                list.retain(|&e| e != ep);
                if list.is_empty() {
                    self.by_addr.remove(&(entry.net, addr));
                }
            }
        }
        self.free_eps.push(ep);
        if let Some(slot) = self.slot_mut(entry.net) {
            slot.endpoints -= 1;
        }
        self.maybe_free_net(entry.net);
    }

    /// An endpoint's current record.
    pub(crate) fn endpoint(&self, endpoint_id: &str) -> Option<&EndpointRecord> {
        let ep = *self.ep_ids.get(endpoint_id)?;
        self.eps[ep as usize].as_ref().map(|e| &e.record)
    }

    /// How many endpoint records are held.
    pub(crate) fn endpoint_count(&self) -> usize {
        self.ep_ids.len()
    }

    /// Resolves a scope into the networks whose names it sees (into `names`,
    /// deduplicated, in scope order) and whether any of its networks allows
    /// forwarding. Networks with no policy count for nothing: an endpoint
    /// whose network the controller has not described yet must not leak
    /// names or queries.
    pub(crate) fn resolve_scope(&self, scope: &Scope, names: &mut Vec<NetId>) -> bool {
        names.clear();
        let mut forward = false;
        for id in &scope.networks {
            let Some(&net) = self.net_ids.get(id) else {
                continue;
            };
            let Some(policy) = self.slot(net).and_then(|s| s.policy.as_ref()) else {
                continue;
            };
            forward |= policy.policy.forward;
            if policy.policy.names && !names.contains(&net) {
                names.push(net);
            }
        }
        forward
    }

    fn endpoints_named(&self, net: NetId, labels: &[u8]) -> Option<&[EpId]> {
        let key = IndexKey::new(net, labels);
        self.by_name.get(key.as_slice()).map(Vec::as_slice)
    }

    fn record(&self, ep: EpId) -> Option<&EndpointRecord> {
        self.eps
            .get(ep as usize)
            .and_then(Option::as_ref)
            .map(|e| &e.record)
    }

    /// Finds the endpoints a name means in `nets` and hands each record to
    /// `sink`. Returns whether the name is known at all (so an empty result
    /// is NODATA rather than "not ours").
    ///
    /// The whole name is tried in every network first; then, like Docker,
    /// each split `PREFIX.SUFFIX` where SUFFIX is the name of one of the
    /// networks, longest prefix first, looking PREFIX up in that network
    /// only. Names and network names may both contain dots, so `a.b.c` can
    /// be `a.b` in network `c` or `a` in network `b.c`. The first form that
    /// matches anything wins.
    pub(crate) fn find(
        &self,
        nets: &[NetId],
        name: &NameKey,
        mut sink: impl FnMut(&EndpointRecord),
    ) -> bool {
        let mut known = false;
        for &net in nets {
            if let Some(eps) = self.endpoints_named(net, name.as_bytes()) {
                known = true;
                eps.iter()
                    .filter_map(|&e| self.record(e))
                    .for_each(&mut sink);
            }
        }
        if known {
            return true;
        }
        for split in (1..name.label_count()).rev() {
            let (prefix, suffix) = name.split_at_label(split);
            for &net in nets {
                let net_key = self
                    .slot(net)
                    .and_then(|s| s.policy.as_ref())
                    .and_then(|p| p.key.as_deref());
                if net_key != Some(suffix) {
                    continue;
                }
                if let Some(eps) = self.endpoints_named(net, prefix) {
                    known = true;
                    eps.iter()
                        .filter_map(|&e| self.record(e))
                        .for_each(&mut sink);
                }
            }
            if known {
                return true;
            }
        }
        false
    }

    /// Hands `sink` the PTR targets for `addr` in `nets`: for each endpoint
    /// holding the address, its container name, then `NAME.NETWORK` (both as
    /// wire labels, no root; the second as two parts to concatenate).
    pub(crate) fn ptr_targets(
        &self,
        nets: &[NetId],
        addr: IpAddr,
        mut sink: impl FnMut(&[u8], Option<&[u8]>),
    ) {
        for &net in nets {
            let Some(eps) = self.by_addr.get(&(net, addr)) else {
                continue;
            };
            let net_labels = self
                .slot(net)
                .and_then(|s| s.policy.as_ref())
                .and_then(|p| p.labels.as_deref());
            for &ep in eps {
                let Some(entry) = self.eps.get(ep as usize).and_then(Option::as_ref) else {
                    continue;
                };
                let Some(name) = entry.name_labels.as_deref() else {
                    continue;
                };
                sink(name, None);
                if let Some(net_labels) = net_labels {
                    // NAME.NETWORK must still fit in a name.
                    if name.len() + net_labels.len() < MAX_NAME_LEN {
                        sink(name, Some(net_labels));
                    }
                }
            }
        }
    }
}

/// The addresses a record holds.
fn addresses(record: &EndpointRecord) -> impl Iterator<Item = IpAddr> {
    record
        .ipv4
        .map(IpAddr::V4)
        .into_iter()
        .chain(record.ipv6.map(IpAddr::V6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, net: &str, name: &str, ip: &str) -> EndpointRecord {
        EndpointRecord {
            endpoint_id: id.into(),
            network_id: net.into(),
            name: name.into(),
            aliases: vec![],
            ipv4: Some(ip.parse().unwrap()),
            ipv6: None,
        }
    }

    #[test]
    fn removing_the_last_endpoint_and_policy_frees_the_network_slot() {
        let mut r = Records::default();
        r.upsert_endpoint(rec("e1", "n1", "web", "10.0.0.2"));
        r.set_network(
            "n1",
            NetworkPolicy {
                name: "front".into(),
                names: true,
                forward: true,
            },
        );
        r.remove_endpoint("e1");
        assert!(r.net_ids.contains_key("n1"));
        r.remove_network("n1");
        assert!(!r.net_ids.contains_key("n1"));
        assert!(r.by_name.is_empty());
        assert!(r.by_addr.is_empty());
    }

    #[test]
    fn index_entries_disappear_with_their_endpoint() {
        let mut r = Records::default();
        r.upsert_endpoint(rec("e1", "n1", "web", "10.0.0.2"));
        r.upsert_endpoint(rec("e2", "n1", "db", "10.0.0.3"));
        r.remove_endpoint("e1");
        assert_eq!(r.by_name.len(), 1);
        assert_eq!(r.by_addr.len(), 1);
    }
}
