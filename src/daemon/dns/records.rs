//! The controller's names, network policies and sandbox scopes as the
//! resolver takes them: read on the control plane's side
//! ([`Records::from_controller`]), sent to the DNS thread whole, and applied
//! there as the difference from what the resolver already holds
//! ([`Records::apply_over`]), so an unchanged record costs nothing.

use std::collections::{BTreeMap, BTreeSet};
use switchyard_dns::{EndpointRecord, NetworkPolicy, Resolver, Scope};
use switchyard_switch::Controller;

/// Everything the resolver must know, recomputed from the controller.
#[derive(Debug, Default, Clone)]
pub(super) struct Records {
    networks: Vec<(String, NetworkPolicy)>,
    endpoints: Vec<EndpointRecord>,
    scopes: BTreeMap<String, Scope>,
}

impl Records {
    /// The controller's current networks (with their DNS policy), endpoints
    /// that have an address, and each sandbox's scope: the networks its
    /// namespace's owner is on.
    pub(super) fn from_controller(controller: &Controller) -> Records {
        let mut records = Records::default();
        for n in controller.networks() {
            records.networks.push((
                n.id.clone(),
                NetworkPolicy {
                    name: n.name.clone(),
                    names: n.dns_names,
                    forward: !n.internal,
                },
            ));
        }
        for e in controller.endpoints() {
            if e.ipv4.is_none() && e.ipv6.is_none() {
                continue;
            }
            records.endpoints.push(EndpointRecord {
                endpoint_id: e.id.clone(),
                network_id: e.network_id.clone(),
                name: e.name.clone(),
                aliases: e.aliases.clone(),
                ipv4: e.ipv4.map(|n| n.ip()),
                ipv6: e.ipv6.map(|n| n.ip()),
            });
        }
        for s in controller.sandboxes() {
            let owner = controller.namespace_owner(s);
            let nets = controller
                .endpoints_of_sandbox(&owner.id)
                .into_iter()
                .map(|e| e.network_id.clone());
            records.scopes.insert(owner.id.clone(), Scope::new(nets));
        }
        records
    }

    /// Brings `resolver` from `previous` (what it was last given) to these
    /// records: removes what is gone, upserts the rest (cheap when
    /// unchanged).
    pub(super) fn apply_over(&self, previous: &Records, resolver: &mut Resolver) {
        let new_nets: BTreeSet<&str> = self.networks.iter().map(|(id, _)| id.as_str()).collect();
        for (id, _) in &previous.networks {
            if !new_nets.contains(id.as_str()) {
                resolver.remove_network(id);
            }
        }
        for (id, policy) in &self.networks {
            if resolver.network(id) != Some(policy) {
                resolver.set_network(id, policy.clone());
            }
        }
        let new_eps: BTreeSet<&str> = self
            .endpoints
            .iter()
            .map(|e| e.endpoint_id.as_str())
            .collect();
        for e in &previous.endpoints {
            if !new_eps.contains(e.endpoint_id.as_str()) {
                resolver.remove_endpoint(&e.endpoint_id);
            }
        }
        for e in &self.endpoints {
            if resolver.endpoint(&e.endpoint_id) != Some(e) {
                resolver.upsert_endpoint(e.clone());
            }
        }
    }

    /// Each sandbox's scope, by sandbox id.
    pub(super) fn scopes(&self) -> &BTreeMap<String, Scope> {
        &self.scopes
    }
}
