//! Sandbox and endpoint operations: create/remove sandboxes, connect and
//! disconnect them to networks, rename.

use super::error::shown;
use super::model::{Endpoint, EndpointSpec, NetnsMode, Network, Sandbox, SandboxSpec};
use super::names::{validate_alias, validate_name};
use super::{Change, Controller, ControllerError, Ctx, Dirty, State};
use crate::mac::MacAddr;
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use std::net::IpAddr;

impl Controller {
    /// Creates a sandbox. `Host` and `None` sandboxes are joined to the
    /// predefined `host`/`none` network at once and can never join another;
    /// `Container(other)` shares `other`'s namespace and has no endpoints of
    /// its own; `Private` sandboxes start with no endpoint (connect them).
    pub fn create_sandbox(&mut self, spec: SandboxSpec) -> Result<Sandbox, ControllerError> {
        validate_name("container", &spec.name)?;
        self.mutate(|state, dirty, ctx| {
            // Resolve a container:OTHER reference to the namespace owner's
            // id, and rewrite the owner so that removing it concurrently
            // conflicts with this.
            let mode = match &spec.mode {
                NetnsMode::Container(other) => {
                    let target = state.sandbox(other)?;
                    let owner = state.namespace_owner(target).id.clone();
                    dirty.sandboxes.insert(owner.clone());
                    NetnsMode::Container(owner)
                }
                m => m.clone(),
            };
            if state.sandboxes.values().any(|s| s.name == spec.name) {
                return Err(ControllerError::SandboxExists {
                    name: spec.name.clone(),
                });
            }
            let id = ctx.new_id();
            let sandbox = Sandbox {
                id: id.clone(),
                name: spec.name.clone(),
                hostname: if spec.hostname.is_empty() {
                    spec.name.clone()
                } else {
                    spec.hostname.clone()
                },
                mode: mode.clone(),
                endpoints: Vec::new(),
                labels: spec.labels.clone(),
            };
            state.sandboxes.insert(id.clone(), sandbox);
            dirty.sandboxes.insert(id.clone());
            dirty
                .sandbox_names
                .insert(spec.name.clone(), Some(id.clone()));
            ctx.changes.push(Change::SandboxCreated {
                sandbox_id: id.clone(),
            });
            let exclusive = match mode {
                NetnsMode::Host => Some("host"),
                NetnsMode::None => Some("none"),
                _ => None,
            };
            if let Some(net_name) = exclusive {
                let net_id = state
                    .networks
                    .values()
                    .find(|n| n.name == net_name && n.predefined)
                    .map(|n| n.id.clone())
                    .ok_or_else(|| ControllerError::NoSuchNetwork {
                        name: net_name.into(),
                    })?;
                join(state, dirty, ctx, &net_id, &id, EndpointSpec::default())?;
            }
            Ok(state.sandboxes[&id].clone())
        })
    }

    /// Removes a sandbox and all its endpoints (releasing their addresses).
    /// Refused while other sandboxes share its namespace, unless `force`.
    pub fn remove_sandbox(&mut self, key: &str, force: bool) -> Result<Sandbox, ControllerError> {
        self.mutate(|state, dirty, ctx| {
            let id = state.sandbox(key)?.id.clone();
            let mut sharers: Vec<String> = state
                .sandboxes
                .values()
                .filter(|s| s.mode == NetnsMode::Container(id.clone()))
                .map(|s| s.name.clone())
                .collect();
            sharers.sort();
            if !sharers.is_empty() && !force {
                return Err(ControllerError::SandboxInUse {
                    name: state.sandboxes[&id].name.clone(),
                    users: sharers.join(", "),
                });
            }
            for endpoint_id in state.sandboxes[&id].endpoints.clone() {
                leave(state, dirty, ctx, &endpoint_id)?;
            }
            let sandbox = state.sandboxes.remove(&id).expect("resolved above");
            dirty.sandboxes.insert(id.clone());
            dirty.sandbox_names.insert(sandbox.name.clone(), None);
            ctx.changes.push(Change::SandboxRemoved {
                sandbox: Box::new(sandbox.clone()),
            });
            Ok(sandbox)
        })
    }

    /// Connects a sandbox to a network: allocates its addresses (the one
    /// asked for with `--ip`, or the next free one), MAC, interface name and
    /// aliases. Refused twice on the same network, for sandboxes on `host`
    /// or `none`, for `container:` sandboxes, and for `--ip`/`--alias` on
    /// the default bridge.
    pub fn connect(
        &mut self,
        network_key: &str,
        sandbox_key: &str,
        spec: EndpointSpec,
    ) -> Result<Endpoint, ControllerError> {
        for alias in &spec.aliases {
            validate_alias(alias)?;
        }
        self.mutate(|state, dirty, ctx| {
            let network_id = state.network(network_key)?.id.clone();
            let sandbox_id = state.sandbox(sandbox_key)?.id.clone();
            join(state, dirty, ctx, &network_id, &sandbox_id, spec.clone())
        })
    }

    /// Disconnects a sandbox from a network, releasing its addresses.
    ///
    /// With `force`, a container that no longer exists is matched by the
    /// endpoint's name (among this host's endpoints), so stale endpoints can
    /// be cleaned up (Docker's `disconnect -f`), and leaving `host`/`none`
    /// is allowed.
    pub fn disconnect(
        &mut self,
        network_key: &str,
        sandbox_key: &str,
        force: bool,
    ) -> Result<Endpoint, ControllerError> {
        self.mutate(|state, dirty, ctx| {
            let network = state.network(network_key)?.clone();
            let sandbox_id = match state.sandbox(sandbox_key) {
                Ok(s) => Some(s.id.clone()),
                Err(ControllerError::NoSuchSandbox { .. }) if force => None,
                Err(e) => return Err(e),
            };
            let endpoint_id = state
                .endpoints
                .values()
                .find(|e| {
                    e.network_id == network.id
                        && match &sandbox_id {
                            Some(sid) => &e.sandbox_id == sid,
                            None => e.name == sandbox_key && e.host == ctx.host,
                        }
                })
                .map(|e| e.id.clone())
                .ok_or_else(|| ControllerError::NotConnected {
                    container: sandbox_key.to_string(),
                    network: network.name.clone(),
                })?;
            let exclusive = ctx
                .drivers
                .get(&network.driver)
                .map(|d| d.capabilities().exclusive)
                .unwrap_or(false);
            if exclusive && !force {
                return Err(ControllerError::CannotLeaveExclusive {
                    container: sandbox_key.to_string(),
                    network: network.name.clone(),
                });
            }
            leave(state, dirty, ctx, &endpoint_id)
        })
    }

    /// Renames a sandbox; its endpoints (and so its DNS names) follow. The
    /// hostname inside stays, as with `docker rename`.
    pub fn rename_sandbox(
        &mut self,
        key: &str,
        new_name: &str,
    ) -> Result<Sandbox, ControllerError> {
        validate_name("container", new_name)?;
        self.mutate(|state, dirty, ctx| {
            let id = state.sandbox(key)?.id.clone();
            if state
                .sandboxes
                .values()
                .any(|s| s.name == new_name && s.id != id)
            {
                return Err(ControllerError::SandboxExists {
                    name: new_name.to_string(),
                });
            }
            let sandbox = state.sandboxes.get_mut(&id).expect("resolved above");
            dirty.sandbox_names.insert(sandbox.name.clone(), None);
            dirty
                .sandbox_names
                .insert(new_name.to_string(), Some(id.clone()));
            sandbox.name = new_name.to_string();
            dirty.sandboxes.insert(id.clone());
            for endpoint_id in sandbox.endpoints.clone() {
                if let Some(e) = state.endpoints.get_mut(&endpoint_id) {
                    e.name = new_name.to_string();
                    dirty.endpoints.insert(endpoint_id.clone());
                    ctx.changes.push(Change::EndpointUpdated { endpoint_id });
                }
            }
            Ok(state.sandboxes[&id].clone())
        })
    }
}

/// Creates the endpoint of `sandbox_id` on `network_id`.
fn join(
    state: &mut State,
    dirty: &mut Dirty,
    ctx: &mut Ctx<'_>,
    network_id: &str,
    sandbox_id: &str,
    spec: EndpointSpec,
) -> Result<Endpoint, ControllerError> {
    let network = state.networks[network_id].clone();
    let sandbox = state.sandboxes[sandbox_id].clone();
    let caps = ctx.drivers.get(&network.driver)?.capabilities();

    if let NetnsMode::Container(owner) = &sandbox.mode {
        let owner = state
            .sandboxes
            .get(owner)
            .map(|s| s.name.clone())
            .unwrap_or_else(|| owner.clone());
        return Err(ControllerError::SharedNamespace {
            container: sandbox.name,
            owner,
        });
    }
    let existing: Vec<&Endpoint> = sandbox
        .endpoints
        .iter()
        .filter_map(|id| state.endpoints.get(id))
        .collect();
    if existing.iter().any(|e| e.network_id == network.id) {
        return Err(ControllerError::AlreadyConnected {
            container: sandbox.name,
            network: network.name,
        });
    }
    let wants_exclusive = match sandbox.mode {
        NetnsMode::Host => network.driver == "host",
        NetnsMode::None => network.driver == "null",
        _ => false,
    };
    if caps.exclusive && !wants_exclusive {
        return Err(ControllerError::ExclusiveNetwork {
            container: sandbox.name,
            network: network.name.clone(),
            reason: format!(
                "the {} network is only for containers started with --network {}",
                network.name, network.name
            ),
        });
    }
    if matches!(sandbox.mode, NetnsMode::Host | NetnsMode::None) && !wants_exclusive {
        let on = if sandbox.mode == NetnsMode::Host {
            "host"
        } else {
            "none"
        };
        return Err(ControllerError::ExclusiveNetwork {
            container: sandbox.name,
            network: network.name,
            reason: format!(
                "it runs with --network {on}, which cannot be combined with any other network"
            ),
        });
    }
    if network.predefined && (spec.ipv4.is_some() || spec.ipv6.is_some()) {
        return Err(ControllerError::StaticIpNotAllowed {
            network: network.name,
        });
    }
    if !network.dns_names && !spec.aliases.is_empty() {
        return Err(ControllerError::AliasNotAllowed {
            network: network.name,
        });
    }
    if spec.ipv6.is_some() && network.ipv6.is_none() {
        return Err(ControllerError::NoIpv6 {
            network: network.name,
        });
    }

    let mut ipv4 = None;
    if let Some(subnet) = &network.ipv4 {
        let ip = state
            .ipam
            .request_address(&subnet.pool, spec.ipv4.map(IpAddr::V4))?;
        if let (IpAddr::V4(ip), IpNetwork::V4(net)) = (ip, subnet.subnet) {
            ipv4 = Some(Ipv4Network::new(ip, net.prefix()).expect("prefix from a valid network"));
        }
        dirty.pools.insert(subnet.pool.clone());
    }
    let mut ipv6 = None;
    if let Some(subnet) = &network.ipv6 {
        let ip = state
            .ipam
            .request_address(&subnet.pool, spec.ipv6.map(IpAddr::V6))?;
        if let (IpAddr::V6(ip), IpNetwork::V6(net)) = (ip, subnet.subnet) {
            ipv6 = Some(Ipv6Network::new(ip, net.prefix()).expect("prefix from a valid network"));
        }
        dirty.pools.insert(subnet.pool.clone());
    }

    let has_interface = caps.uses_segment;
    let mac = if !has_interface {
        None
    } else if let Some(mac) = spec.mac {
        Some(mac)
    } else if let Some(v4) = ipv4 {
        Some(MacAddr::from_ipv4(v4.ip()))
    } else {
        let mut b = [0u8; 6];
        ctx.rng.fill_bytes(&mut b);
        Some(MacAddr::local_from_bytes(b))
    };
    let ifname = match (&spec.ifname, has_interface) {
        (_, false) => String::new(),
        (Some(name), true) => {
            if existing.iter().any(|e| &e.ifname == name) {
                return Err(ControllerError::InvalidSpec(format!(
                    "container {} already has an interface {}; choose another name",
                    sandbox.name,
                    shown(name)
                )));
            }
            name.clone()
        }
        (None, true) => next_ifname(&existing),
    };
    let routes_out = ctx
        .drivers
        .get(&network.driver)
        .is_ok_and(|d| d.capabilities().routes_out);
    let default_route = has_interface
        && routes_out
        && !network.internal
        && !existing.iter().any(|e| e.default_route);

    let endpoint = Endpoint {
        id: ctx.new_id(),
        name: sandbox.name.clone(),
        network_id: network.id.clone(),
        sandbox_id: sandbox.id.clone(),
        ifname,
        mac,
        ipv4,
        ipv6,
        static_ip: spec.ipv4.is_some() || spec.ipv6.is_some(),
        aliases: spec.aliases,
        default_route,
        host: ctx.host.to_string(),
        vtep: ctx.vtep,
    };
    state
        .endpoints
        .insert(endpoint.id.clone(), endpoint.clone());
    dirty.endpoints.insert(endpoint.id.clone());
    // Rewritten unchanged: a concurrent `network rm` then conflicts.
    dirty.networks.insert(network.id.clone());
    state
        .sandboxes
        .get_mut(sandbox_id)
        .expect("checked")
        .endpoints
        .push(endpoint.id.clone());
    dirty.sandboxes.insert(sandbox_id.to_string());
    ctx.changes.push(Change::EndpointJoined {
        endpoint_id: endpoint.id.clone(),
    });
    Ok(endpoint)
}

/// Removes an endpoint, releases its addresses and, if it carried the
/// default route, hands the route to the sandbox's next eligible endpoint.
fn leave(
    state: &mut State,
    dirty: &mut Dirty,
    ctx: &mut Ctx<'_>,
    endpoint_id: &str,
) -> Result<Endpoint, ControllerError> {
    let endpoint = state
        .endpoints
        .remove(endpoint_id)
        .expect("caller found it");
    dirty.endpoints.insert(endpoint_id.to_string());
    if let Some(network) = state.networks.get(&endpoint.network_id) {
        let network = network.clone();
        release(state, dirty, &network, &endpoint)?;
        dirty.networks.insert(network.id);
    }
    if let Some(sandbox) = state.sandboxes.get_mut(&endpoint.sandbox_id) {
        sandbox.endpoints.retain(|id| id != endpoint_id);
        dirty.sandboxes.insert(sandbox.id.clone());
        if endpoint.default_route {
            let drivers = ctx.drivers;
            let next = sandbox.endpoints.iter().find(|id| {
                state.endpoints.get(*id).is_some_and(|e| {
                    !e.ifname.is_empty()
                        && state.networks.get(&e.network_id).is_some_and(|n| {
                            !n.internal
                                && drivers
                                    .get(&n.driver)
                                    .is_ok_and(|d| d.capabilities().routes_out)
                        })
                })
            });
            if let Some(next) = next.cloned() {
                state
                    .endpoints
                    .get_mut(&next)
                    .expect("just found")
                    .default_route = true;
                dirty.endpoints.insert(next.clone());
                ctx.changes
                    .push(Change::EndpointUpdated { endpoint_id: next });
            }
        }
    }
    ctx.changes.push(Change::EndpointLeft {
        endpoint: Box::new(endpoint.clone()),
    });
    Ok(endpoint)
}

fn release(
    state: &mut State,
    dirty: &mut Dirty,
    network: &Network,
    endpoint: &Endpoint,
) -> Result<(), ControllerError> {
    if let (Some(subnet), Some(ip)) = (&network.ipv4, endpoint.ipv4) {
        state
            .ipam
            .release_address(&subnet.pool, IpAddr::V4(ip.ip()))?;
        dirty.pools.insert(subnet.pool.clone());
    }
    if let (Some(subnet), Some(ip)) = (&network.ipv6, endpoint.ipv6) {
        state
            .ipam
            .release_address(&subnet.pool, IpAddr::V6(ip.ip()))?;
        dirty.pools.insert(subnet.pool.clone());
    }
    Ok(())
}

/// The lowest `ethN` not used by the sandbox's other endpoints.
fn next_ifname(existing: &[&Endpoint]) -> String {
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|name| !existing.iter().any(|e| &e.ifname == name))
        .expect("an unused name always exists")
}
