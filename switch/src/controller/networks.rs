//! Network operations: create (with IPAM), list, remove.

use super::model::{Network, NetworkFilter, NetworkSpec, SubnetConfig};
use super::names::validate_name;
use super::{Change, Controller, ControllerError, Ctx, Dirty, State};
use crate::port::SegmentId;
use ipnetwork::IpNetwork;
use std::collections::BTreeMap;
use std::net::IpAddr;
use switchyard_ipam::{Family, PoolRequest, LOCAL};

impl Controller {
    /// Creates a network, with Docker's rules: a unique valid name, a known
    /// driver, subnets/gateways/ranges consistent and granted by IPAM.
    pub fn create_network(&mut self, spec: NetworkSpec) -> Result<Network, ControllerError> {
        validate_name("network", &spec.name)?;
        self.mutate(|state, dirty, ctx| create(state, dirty, ctx, spec, false))
    }

    /// Lists networks matching `filter`, sorted by name.
    pub fn list_networks(&self, filter: &NetworkFilter) -> Vec<&Network> {
        self.networks().filter(|n| filter.matches(n)).collect()
    }

    /// Removes a network. Refused for predefined networks and while any
    /// endpoint is attached (the message names the containers).
    pub fn remove_network(&mut self, key: &str) -> Result<Network, ControllerError> {
        let id = self.network(key)?.id.clone();
        self.mutate(|state, dirty, ctx| {
            let network = state.networks.get(&id).expect("resolved above").clone();
            if network.predefined {
                return Err(ControllerError::PredefinedNetwork { name: network.name });
            }
            let mut attached: Vec<&str> = state
                .endpoints
                .values()
                .filter(|e| e.network_id == id)
                .map(|e| e.name.as_str())
                .collect();
            if !attached.is_empty() {
                attached.sort();
                return Err(ControllerError::ActiveEndpoints {
                    network: network.name,
                    containers: attached.join(", "),
                });
            }
            for subnet in network.ipv4.iter().chain(network.ipv6.iter()) {
                state.ipam.release_pool(&subnet.pool)?;
                dirty.ipam = true;
            }
            state.networks.remove(&id);
            dirty.networks.insert(id.clone());
            ctx.changes.push(Change::NetworkRemoved {
                network: Box::new(network.clone()),
            });
            Ok(network)
        })
    }

    /// Creates `bridge`, `host` and `none`.
    pub(super) fn create_predefined(&mut self) -> Result<(), ControllerError> {
        self.mutate(|state, dirty, ctx| {
            let bridge = NetworkSpec {
                name: "bridge".into(),
                driver: "bridge".into(),
                ..Default::default()
            };
            create(state, dirty, ctx, bridge, true)?;
            let host = NetworkSpec {
                name: "host".into(),
                driver: "host".into(),
                ..Default::default()
            };
            create(state, dirty, ctx, host, true)?;
            let none = NetworkSpec {
                name: "none".into(),
                driver: "null".into(),
                ..Default::default()
            };
            create(state, dirty, ctx, none, true)?;
            dirty.meta = true;
            dirty.ipam = true;
            Ok(())
        })
    }
}

fn create(
    state: &mut State,
    dirty: &mut Dirty,
    ctx: &mut Ctx<'_>,
    spec: NetworkSpec,
    predefined: bool,
) -> Result<Network, ControllerError> {
    if state.networks.values().any(|n| n.name == spec.name) {
        return Err(ControllerError::NetworkExists { name: spec.name });
    }
    let driver_name = if spec.driver.is_empty() {
        "bridge"
    } else {
        spec.driver.as_str()
    };
    let driver = ctx.drivers.get(driver_name)?;
    let caps = driver.capabilities();
    if !caps.user_creatable && !predefined {
        return Err(ControllerError::DriverNotCreatable {
            driver: driver_name.to_string(),
        });
    }
    let mtu = driver.validate(&spec)?;
    let plan = SubnetPlan::from_spec(&spec)?;
    if !caps.uses_ipam && (!plan.is_empty() || spec.ipv6) {
        return Err(ControllerError::InvalidSpec(format!(
            "driver {driver_name} takes no --subnet, --gateway, --ip-range, --aux-address or --ipv6"
        )));
    }

    let id = ctx.new_id();
    let (ipv4, ipv6) = if caps.uses_ipam {
        let ipv4 = Some(request_subnet(state, &spec.name, Family::V4, plan.v4)?);
        let ipv6 = if spec.ipv6 {
            Some(request_subnet(state, &spec.name, Family::V6, plan.v6)?)
        } else {
            None
        };
        dirty.ipam = true;
        (ipv4, ipv6)
    } else {
        (None, None)
    };
    let segment = if caps.uses_segment {
        let s = SegmentId(state.meta.next_segment);
        state.meta.next_segment += 1;
        dirty.meta = true;
        Some(s)
    } else {
        None
    };
    let network = Network {
        id: id.clone(),
        name: spec.name.clone(),
        driver: driver_name.to_string(),
        scope: caps.scope,
        segment,
        ipv4,
        ipv6,
        internal: spec.internal,
        // Docker's rule: the default bridge has no name resolution.
        dns_names: !predefined,
        predefined,
        options: spec.options,
        labels: spec.labels,
        mtu,
    };
    state.networks.insert(id.clone(), network.clone());
    dirty.networks.insert(id.clone());
    ctx.changes.push(Change::NetworkCreated { network_id: id });
    Ok(network)
}

/// The IPAM request for one family, gathered from the spec's lists.
#[derive(Default)]
struct FamilyPlan {
    subnet: Option<IpNetwork>,
    gateway: Option<IpAddr>,
    ip_range: Option<IpNetwork>,
    aux: BTreeMap<String, IpAddr>,
}

struct SubnetPlan {
    v4: FamilyPlan,
    v6: FamilyPlan,
}

impl SubnetPlan {
    /// The family plan whose subnet contains `ip`, or why there is none.
    fn slot_containing(
        &mut self,
        ip: IpAddr,
        what: &str,
    ) -> Result<&mut FamilyPlan, ControllerError> {
        let slot = if ip.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        };
        match slot.subnet {
            Some(s) if s.contains(ip) => Ok(slot),
            Some(s) => Err(ControllerError::InvalidSpec(format!(
                "{what} {ip} is not inside --subnet {s}; give one inside it"
            ))),
            None => Err(ControllerError::InvalidSpec(format!(
                "{what} {ip} needs a matching --subnet; every --gateway, --ip-range and --aux-address must lie in one"
            ))),
        }
    }

    fn is_empty(&self) -> bool {
        [&self.v4, &self.v6].iter().all(|p| {
            p.subnet.is_none() && p.gateway.is_none() && p.ip_range.is_none() && p.aux.is_empty()
        })
    }

    /// Matches each gateway, range and aux address to the subnet of its
    /// family, as Docker does, refusing anything left without one.
    fn from_spec(spec: &NetworkSpec) -> Result<SubnetPlan, ControllerError> {
        let mut plan = SubnetPlan {
            v4: FamilyPlan::default(),
            v6: FamilyPlan::default(),
        };
        for subnet in &spec.subnets {
            let (slot, fam) = match subnet {
                IpNetwork::V4(_) => (&mut plan.v4, "IPv4"),
                IpNetwork::V6(_) => (&mut plan.v6, "IPv6"),
            };
            if let Some(prev) = slot.subnet {
                return Err(ControllerError::InvalidSpec(format!(
                    "more than one {fam} --subnet ({prev} and {subnet}) is not supported; give one"
                )));
            }
            slot.subnet = Some(*subnet);
        }
        if plan.v6.subnet.is_some() && !spec.ipv6 {
            return Err(ControllerError::InvalidSpec(
                "an IPv6 --subnet needs --ipv6; add --ipv6 or drop the IPv6 subnet".into(),
            ));
        }
        for gw in &spec.gateways {
            let fam = plan.slot_containing(*gw, "--gateway")?;
            if fam.gateway.is_some() {
                return Err(ControllerError::InvalidSpec(format!(
                    "more than one --gateway for the same subnet ({gw}); give one"
                )));
            }
            fam.gateway = Some(*gw);
        }
        for range in &spec.ip_ranges {
            let fam = plan.slot_containing(range.network(), "--ip-range")?;
            if fam.ip_range.is_some() {
                return Err(ControllerError::InvalidSpec(format!(
                    "more than one --ip-range for the same subnet ({range}); give one"
                )));
            }
            fam.ip_range = Some(*range);
        }
        for (name, ip) in &spec.aux_addresses {
            plan.slot_containing(*ip, "--aux-address")?
                .aux
                .insert(name.clone(), *ip);
        }
        Ok(plan)
    }
}

fn request_subnet(
    state: &mut State,
    owner: &str,
    family: Family,
    plan: FamilyPlan,
) -> Result<SubnetConfig, ControllerError> {
    let pool_id = state.ipam.request_pool(PoolRequest {
        space: LOCAL.to_string(),
        owner: owner.to_string(),
        family,
        subnet: plan.subnet,
        ip_range: plan.ip_range,
        gateway: plan.gateway,
        aux_addresses: plan.aux,
    })?;
    let pool = state.ipam.pool(&pool_id).expect("pool just granted");
    Ok(SubnetConfig {
        subnet: pool.subnet(),
        gateway: pool.gateway(),
        ip_range: pool.ip_range(),
        aux_addresses: pool.aux_addresses().clone(),
        pool: pool_id,
    })
}
