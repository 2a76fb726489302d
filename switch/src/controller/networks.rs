//! Network operations: create (with IPAM), list, remove, and the rules for
//! subnets that cannot work.

use super::model::{Network, NetworkFilter, NetworkSpec, Scope, SubnetConfig};
use super::names::{validate_aux_name, validate_name};
use super::{Change, Controller, ControllerError, Ctx, Dirty, State};
use crate::driver::FIRST_AUTO_VNI;
use crate::wire::vxlan::MAX_VNI;
use ipnetwork::IpNetwork;
use std::collections::BTreeMap;
use std::net::IpAddr;
use switchyard_ipam::{Family, PoolRequest, GLOBAL, LOCAL};

impl Controller {
    /// Creates a network, with Docker's rules: a unique valid name, a known
    /// driver, subnets that can work, gateways and ranges consistent with
    /// them and granted by IPAM.
    pub fn create_network(&mut self, spec: NetworkSpec) -> Result<Network, ControllerError> {
        validate_name("network", &spec.name)?;
        validate_aux_names(&spec)?;
        for subnet in &spec.subnets {
            check_usable_subnet(*subnet)?;
        }
        self.mutate(|state, dirty, ctx| create(state, dirty, ctx, spec.clone(), false))
    }

    /// Lists networks matching `filter`, sorted by name.
    pub fn list_networks(&self, filter: &NetworkFilter) -> Vec<&Network> {
        self.networks().filter(|n| filter.matches(n)).collect()
    }

    /// Removes a network. Refused for predefined networks and while any
    /// endpoint (of any host) is attached (the message names the
    /// containers).
    pub fn remove_network(&mut self, key: &str) -> Result<Network, ControllerError> {
        self.mutate(|state, dirty, ctx| {
            let network = state.network(key)?.clone();
            let id = network.id.clone();
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
                dirty.pool_set_changed(&subnet.pool);
            }
            if state.local.segments.remove(&id).is_some() {
                dirty.segments.insert(id.clone());
            }
            state.networks.remove(&id);
            dirty.networks.insert(id.clone());
            dirty.network_names.insert(network.name.clone(), None);
            if let Some(vni) = network.global_segment {
                dirty.vnis.insert(vni, None);
            }
            ctx.changes.push(Change::NetworkRemoved {
                network: Box::new(network.clone()),
            });
            Ok(network)
        })
    }
}

/// Creates `bridge`, `host` and `none` in a fresh state, with the shared
/// bookkeeping (`meta`, the IPAM configuration).
pub(super) fn create_predefined(
    state: &mut State,
    dirty: &mut Dirty,
    ctx: &mut Ctx<'_>,
) -> Result<(), ControllerError> {
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
    dirty.ipam_config = true;
    dirty.local_meta = true;
    Ok(())
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

    let global_segment = if caps.global_segment {
        Some(allocate_vni(
            state,
            driver.requested_global_segment(&spec)?,
        )?)
    } else {
        None
    };
    let space = match caps.scope {
        Scope::Local => LOCAL,
        Scope::Global => GLOBAL,
    };
    let id = ctx.new_id();
    let (ipv4, ipv6) = if caps.uses_ipam {
        let ipv4 = Some(request_subnet(
            state,
            dirty,
            &spec.name,
            space,
            Family::V4,
            plan.v4,
        )?);
        let ipv6 = if spec.ipv6 {
            Some(request_subnet(
                state,
                dirty,
                &spec.name,
                space,
                Family::V6,
                plan.v6,
            )?)
        } else {
            None
        };
        (ipv4, ipv6)
    } else {
        (None, None)
    };
    if caps.uses_segment {
        state.local.allocate(&id);
        dirty.segments.insert(id.clone());
        dirty.local_meta = true;
    }
    let network = Network {
        id: id.clone(),
        name: spec.name.clone(),
        driver: driver_name.to_string(),
        scope: caps.scope,
        global_segment,
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
    if let Some(vni) = global_segment {
        dirty.vnis.insert(vni, Some(id.clone()));
    }
    state.networks.insert(id.clone(), network.clone());
    dirty.networks.insert(id.clone());
    dirty
        .network_names
        .insert(network.name.clone(), Some(id.clone()));
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

/// The VNI for a new network: the one asked for, if no network has it, or
/// the lowest free one from [`FIRST_AUTO_VNI`]. Two hosts picking at once
/// both claim `vnis/<N>` (created with a "missing" compare), so one of
/// them conflicts and picks again.
fn allocate_vni(state: &State, asked: Option<u32>) -> Result<u32, ControllerError> {
    let taken: BTreeMap<u32, &str> = state
        .networks
        .values()
        .filter_map(|n| n.global_segment.map(|v| (v, n.name.as_str())))
        .collect();
    match asked {
        Some(vni) => match taken.get(&vni) {
            Some(network) => Err(ControllerError::VniInUse {
                vni,
                network: network.to_string(),
            }),
            None => Ok(vni),
        },
        None => (FIRST_AUTO_VNI..=MAX_VNI)
            .find(|v| !taken.contains_key(v))
            .ok_or(ControllerError::VnisExhausted {
                first: FIRST_AUTO_VNI,
            }),
    }
}

fn request_subnet(
    state: &mut State,
    dirty: &mut Dirty,
    owner: &str,
    space: &str,
    family: Family,
    plan: FamilyPlan,
) -> Result<SubnetConfig, ControllerError> {
    let pool_id = state.ipam.request_pool(PoolRequest {
        space: space.to_string(),
        owner: owner.to_string(),
        family,
        subnet: plan.subnet,
        ip_range: plan.ip_range,
        gateway: plan.gateway,
        aux_addresses: plan.aux,
    })?;
    dirty.pool_set_changed(&pool_id);
    let pool = state.ipam.pool(&pool_id).expect("pool just granted");
    Ok(SubnetConfig {
        subnet: pool.subnet(),
        gateway: pool.gateway(),
        ip_range: pool.ip_range(),
        aux_addresses: pool.aux_addresses().clone(),
        pool: pool_id,
    })
}

/// Checks the names of `--aux-address NAME=IP` (they are echoed in errors
/// and shown by `inspect`).
fn validate_aux_names(spec: &NetworkSpec) -> Result<(), ControllerError> {
    spec.aux_addresses
        .keys()
        .try_for_each(|name| validate_aux_name(name))
}

/// An address block no network subnet may be or include, and why.
struct Special {
    range: IpNetwork,
    what: &'static str,
    why: &'static str,
}

fn special(addr: IpAddr, prefix: u8, what: &'static str, why: &'static str) -> Special {
    Special {
        range: IpNetwork::new(addr, prefix).expect("constant prefixes are valid"),
        what,
        why,
    }
}

/// The blocks whose addresses cannot be a network's (IANA special-purpose
/// registries; only those that break a container network).
fn special_ranges(v4: bool) -> Vec<Special> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    const NO_MULTICAST: &str = "multicast addresses cannot be assigned to interfaces";
    if v4 {
        vec![
            special(
                Ipv4Addr::new(0, 0, 0, 0).into(),
                8,
                "\"this network\" (0.0.0.0/8, RFC 1122)",
                "its addresses mean this host and cannot be assigned to interfaces",
            ),
            special(
                Ipv4Addr::new(127, 0, 0, 0).into(),
                8,
                "loopback (127.0.0.0/8)",
                "every container already has it on lo, and packets to it never leave the container",
            ),
            special(
                Ipv4Addr::new(169, 254, 0, 0).into(),
                16,
                "IPv4 link-local (169.254.0.0/16, RFC 3927)",
                "routers never forward it, so the containers would have no way out, and it would \
                 hide cloud metadata services at 169.254.169.254",
            ),
            special(
                Ipv4Addr::new(224, 0, 0, 0).into(),
                4,
                "IPv4 multicast (224.0.0.0/4)",
                NO_MULTICAST,
            ),
        ]
    } else {
        vec![
            special(
                Ipv6Addr::UNSPECIFIED.into(),
                128,
                "the unspecified address (::/128)",
                "it means no address and cannot be assigned to an interface",
            ),
            special(
                Ipv6Addr::LOCALHOST.into(),
                128,
                "IPv6 loopback (::1/128)",
                "every container already has it on lo",
            ),
            special(
                Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0).into(),
                96,
                "IPv4-mapped addresses (::ffff:0:0/96, RFC 4291)",
                "they stand for IPv4 addresses inside IPv6 sockets and are never sent as IPv6",
            ),
            special(
                Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0).into(),
                10,
                "IPv6 link-local (fe80::/10)",
                "every interface already has its own fe80::/64 address and route, which the \
                 network's addresses would collide with",
            ),
            special(
                Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0).into(),
                8,
                "IPv6 multicast (ff00::/8)",
                NO_MULTICAST,
            ),
        ]
    }
}

/// The widest IPv4 subnet accepted: 10.0.0.0/8, the largest private range.
const WIDEST_V4: u8 = 8;
/// The widest IPv6 subnet accepted: a /32 is what an ISP is allocated (RFC
/// 6177 sites get a /48, a link a /64); a network is one link, and anything
/// wider only makes containers treat a large part of the IPv6 internet as
/// on-link.
const WIDEST_V6: u8 = 32;

/// Refuses `--subnet`s that cannot work as a container network, as Docker
/// should: loopback, multicast, "this network", link-local, IPv4-mapped,
/// and absurdly wide prefixes. (Prefixes with no room for a gateway and a
/// container are IPAM's rule: it refuses them with the size to use.)
pub(super) fn check_usable_subnet(subnet: IpNetwork) -> Result<(), ControllerError> {
    let v4 = subnet.is_ipv4();
    let (widest, fix) = if v4 {
        (
            WIDEST_V4,
            "choose a private range instead, e.g. --subnet 10.1.0.0/24 (from 10.0.0.0/8, \
             172.16.0.0/12 or 192.168.0.0/16)",
        )
    } else {
        (
            WIDEST_V6,
            "choose a unique local /64 instead, e.g. --subnet fd00:1:2:3::/64, or a /64 of \
             your global prefix",
        )
    };
    let refuse = |reason: String| ControllerError::UnusableSubnet { subnet, reason };
    let specials = special_ranges(v4);
    if let Some(s) = specials
        .iter()
        .find(|s| s.range.contains(subnet.network()) && s.range.prefix() <= subnet.prefix())
    {
        return Err(refuse(format!("it is {}: {}; {fix}", s.what, s.why)));
    }
    if subnet.prefix() < widest {
        return Err(refuse(format!(
            "it is wider than /{widest} ({}); a network's subnet is on-link for every \
             container on it, so the containers would send their traffic for all of it to the \
             bridge instead of through the gateway; {}",
            if v4 {
                "the largest private range, 10.0.0.0/8"
            } else {
                "the size of a whole ISP allocation"
            },
            if v4 {
                fix.to_string()
            } else {
                "use a /64, the standard size of one link, e.g. --subnet fd00:1:2:3::/64"
                    .to_string()
            }
        )));
    }
    if let Some(s) = specials
        .iter()
        .find(|s| s.range.contains(subnet.network()) || subnet.contains(s.range.network()))
    {
        return Err(refuse(format!("it includes {}: {}; {fix}", s.what, s.why)));
    }
    Ok(())
}
