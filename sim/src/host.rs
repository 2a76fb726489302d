//! Simulated hosts: each runs the real controller (over a `MemoryStore`, so
//! a crash and restart is exactly a daemon restart over its state), the
//! real switch core and the real resolver logic, and turns the controller's
//! changes into ports and interfaces the way the real daemon does:
//! `EndpointJoined` → plan the port → add a bridge port bound to the
//! network's segment with the endpoint's port security → plug the
//! container's interface into it; `EndpointLeft` → remove both.

use crate::container::{Nic, Stack};
use crate::error::SimError;
use crate::fault::Node;
use crate::gateways::{GatewayPort, Publish};
use crate::internet::{NodeRole, UPLINK_LATENCY};
use crate::link::{Direction, End, Link, LinkId, LinkKind};
use crate::outside::HostOutside;
use crate::world::Sim;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::net::IpAddr;
use switchyard_dns::{EndpointRecord, NetworkPolicy, Resolver, Scope};
use switchyard_switch::controller::model::{Endpoint, Network};
use switchyard_switch::driver::{BackendPlan, PeerHost, PeerVia};
use switchyard_switch::{
    Bridge, BridgeConfig, Change, Controller, ControllerOptions, DriverRegistry, Instant,
    MemoryStore, PortId,
};

/// What a switch port is plugged into: a link (sending on one of its
/// directions) or one of the host's gateways.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PortUse {
    Link { link: LinkId, dir: usize },
    Gateway(u32),
}

/// A simulated host.
pub(crate) struct Host {
    pub name: String,
    pub store: MemoryStore,
    pub controller: Option<Controller>,
    pub bridge: Bridge,
    /// Indexed by `PortId.0` (ids only grow).
    pub ports: Vec<Option<PortUse>>,
    pub endpoint_ports: BTreeMap<String, PortId>,
    pub resolver: Resolver,
    /// Sandbox id → the networks it may see names on.
    pub scopes: BTreeMap<String, Scope>,
    pub dns_timer: Option<Instant>,
    pub up: bool,
    /// Incremented on every crash, so events for an older life are ignored.
    pub life: u32,
    pub next_expire: Instant,
    pub capture: Option<u32>,
    /// Gateways by index (flows are keyed by it); `None` once removed.
    pub gateways: Vec<Option<GatewayPort>>,
    /// The host's sockets on the internet.
    pub outside: HostOutside,
    /// Ports its containers publish.
    pub published: Vec<Publish>,
}

impl Host {
    pub(crate) fn controller(&self) -> Result<&Controller, SimError> {
        self.controller.as_ref().ok_or_else(|| SimError::HostDown {
            host: self.name.clone(),
        })
    }

    pub(crate) fn controller_mut(&mut self) -> Result<&mut Controller, SimError> {
        let name = self.name.clone();
        self.controller
            .as_mut()
            .ok_or(SimError::HostDown { host: name })
    }

    pub(crate) fn set_port(&mut self, port: PortId, use_: Option<PortUse>) {
        let i = port.0 as usize;
        if self.ports.len() <= i {
            self.ports.resize(i + 1, None);
        }
        self.ports[i] = use_;
    }
}

/// The resolver's view of an endpoint.
fn record_of(ep: &Endpoint) -> EndpointRecord {
    EndpointRecord {
        endpoint_id: ep.id.clone(),
        network_id: ep.network_id.clone(),
        name: ep.name.clone(),
        aliases: ep.aliases.clone(),
        ipv4: ep.ipv4.map(|n| n.ip()),
        ipv6: ep.ipv6.map(|n| n.ip()),
    }
}

/// The resolver's view of a network: Docker's default bridge has no names,
/// internal networks never forward.
fn policy_of(net: &Network) -> NetworkPolicy {
    NetworkPolicy {
        name: net.name.clone(),
        names: net.dns_names,
        forward: !net.internal,
    }
}

impl Sim {
    pub(crate) fn host_id(&self, name: &str) -> Result<u32, SimError> {
        self.host_names
            .get(name)
            .copied()
            .ok_or_else(|| SimError::NoSuchHost {
                name: name.to_string(),
                known: self
                    .host_names
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn new_bridge(&mut self) -> Bridge {
        Bridge::new(BridgeConfig {
            hash_seed: self.rng.next_u64(),
            ..self.config.bridge.clone()
        })
    }

    fn open_controller(&mut self, store: &MemoryStore, host: &str) -> Result<Controller, SimError> {
        let rng = ChaCha8Rng::seed_from_u64(self.rng.next_u64());
        Controller::open(
            Box::new(store.clone()),
            DriverRegistry::builtin(),
            Box::new(rng),
            ControllerOptions::default(),
        )
        .map_err(|source| SimError::Controller {
            host: host.to_string(),
            source,
        })
    }

    fn new_resolver(&self) -> Resolver {
        let mut cfg = self.config.resolver.clone();
        cfg.upstreams = self.zones.iter().map(|z| z.address).collect();
        Resolver::new(cfg)
    }

    /// Adds a host: a fresh controller (with Docker's predefined networks),
    /// an empty switch and a resolver.
    pub fn add_host(&mut self, name: &str) -> Result<(), SimError> {
        if self.host_names.contains_key(name) || self.internet_names.contains_key(name) {
            return Err(SimError::DuplicateName {
                what: "host",
                name: name.to_string(),
            });
        }
        let store = MemoryStore::new();
        let controller = self.open_controller(&store, name)?;
        let bridge = self.new_bridge();
        let id = self.hosts.len() as u32;
        let resolver = self.new_resolver();
        let Some(uplink) = self.next_uplink_address() else {
            return Err(SimError::Invalid {
                what: "host",
                detail: "198.51.100.0/24 has no outside address left for another host".into(),
            });
        };
        let node = self.add_node(
            &format!("{name}/outside"),
            uplink,
            UPLINK_LATENCY,
            NodeRole::Uplink { host: id },
        );
        self.hosts.push(Host {
            name: name.to_string(),
            store,
            controller: Some(controller),
            bridge,
            ports: Vec::new(),
            endpoint_ports: BTreeMap::new(),
            resolver,
            scopes: BTreeMap::new(),
            dns_timer: None,
            up: true,
            life: 0,
            next_expire: Instant::ZERO,
            capture: self.capture_names.get(name).copied(),
            gateways: Vec::new(),
            outside: HostOutside::new(node),
            published: Vec::new(),
        });
        self.host_names.insert(name.to_string(), id);
        self.sync_host(id);
        Ok(())
    }

    /// Brings the data plane of a host in line with its controller after
    /// it was (re)opened: every network's DNS policy, every endpoint's port
    /// and interface, every cable. Queued changes are dropped since this
    /// covers them.
    pub(crate) fn sync_host(&mut self, h: u32) {
        let host = &mut self.hosts[h as usize];
        let Some(ctrl) = host.controller.as_mut() else {
            return;
        };
        let _ = ctrl.take_changes();
        let networks: Vec<Network> = ctrl.networks().cloned().collect();
        let endpoints: Vec<String> = ctrl.endpoints().map(|e| e.id.clone()).collect();
        for net in &networks {
            host.resolver.set_network(&net.id, policy_of(net));
        }
        for net in &networks {
            self.plug_network_ports(h, &net.id);
        }
        for id in endpoints {
            self.plug_endpoint(h, &id);
        }
        self.plug_cables(h);
        self.realise_published(h);
    }

    /// Drains the controller's changes and applies them, as the daemon does
    /// after every operation.
    pub(crate) fn apply_changes(&mut self, h: u32) {
        let Some(ctrl) = self.hosts[h as usize].controller.as_mut() else {
            return;
        };
        let changes = ctrl.take_changes();
        for change in changes {
            match change {
                Change::NetworkCreated { network_id } => {
                    let host = &mut self.hosts[h as usize];
                    if let Some(net) = host
                        .controller
                        .as_ref()
                        .and_then(|c| c.network_by_id(&network_id))
                    {
                        host.resolver.set_network(&network_id, policy_of(net));
                    }
                    self.plug_network_ports(h, &network_id);
                    self.plug_cables(h);
                }
                Change::NetworkRemoved { network } => {
                    self.hosts[h as usize].resolver.remove_network(&network.id);
                    self.unplug_network_ports(h, &network.id);
                    self.unplug_cables(h, &network.name);
                }
                Change::SandboxCreated { .. } => {}
                Change::SandboxRemoved { sandbox } => {
                    self.hosts[h as usize].scopes.remove(&sandbox.id);
                }
                Change::EndpointJoined { endpoint_id } => self.plug_endpoint(h, &endpoint_id),
                Change::EndpointLeft { endpoint } => self.unplug_endpoint(h, &endpoint),
                Change::EndpointUpdated { endpoint_id } => self.update_endpoint(h, &endpoint_id),
            }
        }
        self.realise_published(h);
    }

    /// The container whose sandbox is `sandbox_id` on host `h`.
    fn container_of_sandbox(&self, h: u32, sandbox_id: &str) -> Option<u32> {
        self.containers
            .iter()
            .position(|c| c.host == h && c.sandbox_id.as_deref() == Some(sandbox_id))
            .map(|i| i as u32)
    }

    /// Finds or creates the link named `name`.
    pub(crate) fn link_named(&mut self, name: &str, kind: LinkKind, ends: [End; 2]) -> LinkId {
        if let Some(&id) = self.link_names.get(name) {
            let l = &mut self.links[id as usize];
            l.ends = ends;
            return id;
        }
        let cfg = match kind {
            LinkKind::Nic => self.config.nic_link.clone(),
            LinkKind::Cable { .. } => self.config.cable_link.clone(),
        };
        let id = self.links.len() as LinkId;
        self.links.push(Link {
            name: name.to_string(),
            kind,
            ends,
            dirs: [Direction::new(cfg.clone()), Direction::new(cfg)],
            capture: self.capture_names.get(name).copied(),
        });
        self.link_names.insert(name.to_string(), id);
        id
    }

    /// Gives an endpoint its switch port and its container its interface
    /// (or plugs the existing interface back in after a host restart).
    fn plug_endpoint(&mut self, h: u32, endpoint_id: &str) {
        let now = self.now;
        let host = &mut self.hosts[h as usize];
        let Some(ctrl) = host.controller.as_ref() else {
            return;
        };
        let Some(ep) = ctrl.endpoint(endpoint_id).cloned() else {
            return;
        };
        let network_name = ctrl
            .network_by_id(&ep.network_id)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        if ep.ipv4.is_some() || ep.ipv6.is_some() {
            host.resolver.upsert_endpoint(record_of(&ep));
        }
        host.scopes
            .entry(ep.sandbox_id.clone())
            .or_default()
            .attach(&ep.network_id);
        let Some(plan) = ctrl.plan_endpoint_port(endpoint_id) else {
            return;
        };
        if host.endpoint_ports.contains_key(endpoint_id) {
            return;
        }
        let BackendPlan::SandboxInterface(iface) = plan.backend else {
            return;
        };
        let port = host.bridge.add_port(plan.port);
        host.endpoint_ports.insert(endpoint_id.to_string(), port);
        let Some(c) = self.container_of_sandbox(h, &ep.sandbox_id) else {
            return;
        };
        let cname = self.containers[c as usize].name.clone();
        let link = self.link_named(
            &format!("{cname}/{}", iface.ifname),
            LinkKind::Nic,
            [
                End::Nic { container: c },
                End::Port {
                    host: h,
                    port: Some(port),
                },
            ],
        );
        self.hosts[h as usize].set_port(port, Some(PortUse::Link { link, dir: 1 }));
        let seed = self.rng.next_u64();
        let cont = &mut self.containers[c as usize];
        if let Some(nic) = cont.nics.iter_mut().find(|n| n.endpoint_id == ep.id) {
            nic.link = link;
            return;
        }
        let stack = (!cont.raw).then(|| Box::new(Stack::new(&iface, seed, now)));
        cont.nics.push(Nic {
            plan: iface,
            endpoint_id: ep.id.clone(),
            network_name,
            link,
            stack,
            arp: BTreeMap::new(),
            rx_frames: 0,
            tx_frames: 0,
        });
        self.schedule_step(c, now);
    }

    /// Removes an endpoint's port, interface and DNS record.
    fn unplug_endpoint(&mut self, h: u32, ep: &Endpoint) {
        let now = self.now;
        for ip in [
            ep.ipv4.map(|n| IpAddr::V4(n.ip())),
            ep.ipv6.map(|n| IpAddr::V6(n.ip())),
        ]
        .into_iter()
        .flatten()
        {
            self.gateway_forget(h, &ep.network_id, ip);
        }
        let host = &mut self.hosts[h as usize];
        host.resolver.remove_endpoint(&ep.id);
        if let Some(scope) = host.scopes.get_mut(&ep.sandbox_id) {
            scope.detach(&ep.network_id);
        }
        if let Some(port) = host.endpoint_ports.remove(&ep.id) {
            host.bridge.remove_port(port);
            host.set_port(port, None);
        }
        if let Some(c) = self.container_of_sandbox(h, &ep.sandbox_id) {
            let cont = &mut self.containers[c as usize];
            if let Some(i) = cont.nics.iter().position(|n| n.endpoint_id == ep.id) {
                let nic = cont.nics.remove(i);
                self.links[nic.link as usize].ends[1] = End::Port {
                    host: h,
                    port: None,
                };
                // Applications on the interface notice on their next run.
                self.schedule_step(c, now);
            }
        }
    }

    /// Refreshes an endpoint's DNS record and default route.
    fn update_endpoint(&mut self, h: u32, endpoint_id: &str) {
        let host = &mut self.hosts[h as usize];
        let Some(ctrl) = host.controller.as_ref() else {
            return;
        };
        let Some(ep) = ctrl.endpoint(endpoint_id).cloned() else {
            return;
        };
        if ep.ipv4.is_some() || ep.ipv6.is_some() {
            host.resolver.upsert_endpoint(record_of(&ep));
        }
        let Some(plan) = ctrl.plan_endpoint_port(endpoint_id) else {
            return;
        };
        let BackendPlan::SandboxInterface(iface) = plan.backend else {
            return;
        };
        if let Some(c) = self.container_of_sandbox(h, &ep.sandbox_id) {
            let cont = &mut self.containers[c as usize];
            if let Some(nic) = cont.nics.iter_mut().find(|n| n.endpoint_id == ep.id) {
                if let Some(stack) = nic.stack.as_mut() {
                    stack.set_default_route(&iface);
                }
                nic.plan = iface;
            }
        }
    }

    /// Plugs every cable end on host `h` whose network exists there. The
    /// port comes from the network's driver, as a peer port for the host
    /// at the cable's other end, exactly as the daemon would get a tunnel.
    pub(crate) fn plug_cables(&mut self, h: u32) {
        for link in 0..self.links.len() {
            let LinkKind::Cable { network } = &self.links[link].kind else {
                continue;
            };
            let network = network.clone();
            for side in 0..2 {
                let End::Port { host, port: None } = self.links[link].ends[side] else {
                    continue;
                };
                if host != h || !self.hosts[h as usize].up {
                    continue;
                }
                let End::Port { host: other, .. } = self.links[link].ends[1 - side] else {
                    continue;
                };
                let peer = PeerHost {
                    name: self.hosts[other as usize].name.clone(),
                    link: self.links[link].name.clone(),
                    via: PeerVia::Cable,
                };
                let hst = &mut self.hosts[h as usize];
                let Some(plan) = hst.controller.as_ref().and_then(|c| {
                    let id = c.network(&network).ok()?.id.clone();
                    c.plan_peer_ports(&id, &peer).into_iter().next()
                }) else {
                    continue;
                };
                let port = hst.bridge.add_port(plan.port);
                hst.set_port(
                    port,
                    Some(PortUse::Link {
                        link: link as LinkId,
                        dir: side,
                    }),
                );
                self.links[link].ends[side] = End::Port {
                    host: h,
                    port: Some(port),
                };
            }
        }
    }

    /// Unplugs the cable ends on host `h` that join `network`.
    fn unplug_cables(&mut self, h: u32, network: &str) {
        for link in 0..self.links.len() {
            if self.links[link].kind
                != (LinkKind::Cable {
                    network: network.to_string(),
                })
            {
                continue;
            }
            for side in 0..2 {
                if let End::Port {
                    host,
                    port: Some(port),
                } = self.links[link].ends[side]
                {
                    if host == h {
                        let hst = &mut self.hosts[h as usize];
                        hst.bridge.remove_port(port);
                        hst.set_port(port, None);
                        self.links[link].ends[side] = End::Port {
                            host: h,
                            port: None,
                        };
                    }
                }
            }
        }
    }

    /// The host's daemon dies: controller, switch (with its FDB), resolver
    /// and every port are gone. Containers keep running, unplugged.
    pub fn crash_host(&mut self, name: &str) -> Result<(), SimError> {
        let h = self.host_id(name)?;
        if !self.hosts[h as usize].up {
            return Err(SimError::HostDown {
                host: name.to_string(),
            });
        }
        let bridge = self.new_bridge();
        let resolver = self.new_resolver();
        let host = &mut self.hosts[h as usize];
        host.up = false;
        host.life += 1;
        host.controller = None;
        host.bridge = bridge;
        host.ports.clear();
        host.endpoint_ports.clear();
        host.resolver = resolver;
        host.scopes.clear();
        host.dns_timer = None;
        host.gateways.clear();
        host.outside = HostOutside::new(host.outside.node);
        let node = host.outside.node as usize;
        let seed = self.nat_rng.next_u64();
        self.internet[node].reset(seed, self.now);
        self.internet[node].up = false;
        for l in &mut self.links {
            for end in &mut l.ends {
                if let End::Port { host, port } = end {
                    if *host == h {
                        *port = None;
                    }
                }
            }
        }
        Ok(())
    }

    /// The daemon starts again over the same store: networks, sandboxes and
    /// endpoints come back from it, ports are planned anew and the
    /// containers' interfaces plugged back in; the FDB starts empty.
    pub fn restart_host(&mut self, name: &str) -> Result<(), SimError> {
        let h = self.host_id(name)?;
        if self.hosts[h as usize].up {
            return Err(SimError::Invalid {
                what: "restart",
                detail: format!("host {name} is running; crash it first"),
            });
        }
        let store = self.hosts[h as usize].store.clone();
        let controller = self.open_controller(&store, name)?;
        let host = &mut self.hosts[h as usize];
        host.controller = Some(controller);
        host.up = true;
        host.next_expire = self.now;
        let node = host.outside.node as usize;
        self.internet[node].up = true;
        self.sync_host(h);
        Ok(())
    }

    /// A host's node, for partitions.
    pub(crate) fn node_named(&self, name: &str) -> Result<Node, SimError> {
        if let Some(&h) = self.host_names.get(name) {
            return Ok(Node::Host(h));
        }
        if let Some(&c) = self.container_names.get(name) {
            return Ok(Node::Container(c));
        }
        Err(SimError::Invalid {
            what: "partition",
            detail: format!("{name:?} is neither a host nor a container"),
        })
    }
}
