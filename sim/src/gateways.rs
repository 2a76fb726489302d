//! Gateways on simulated hosts: every network the controller plans a
//! gateway port for (a bridge network that is not `--internal`) gets a
//! `switchyard_gateway::Gateway` on the host's switch, driven by virtual
//! time and seeded from the world's generator, with the host's uplink on
//! the simulated internet as its outside. Frames cross between the switch
//! and a gateway like between the switch and a container, after a small
//! fixed delay; published ports are listening sockets on the uplink whose
//! accepted connections become the gateway's inbound flows.

use crate::error::SimError;
use crate::fault::{Located, Node};
use crate::frame::Frame;
use crate::host::PortUse;
use crate::outside::{tcp_socket, udp_socket, FlowSocket, Listener, OutsideView};
use crate::world::{Event, Sim};
use ipnetwork::IpNetwork;
use rand_core::RngCore;
use serde::Serialize;
use smoltcp::socket::tcp;
use smoltcp::wire::IpAddress;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use switchyard_gateway::{Gateway, GatewayConfig, GatewayCounters};
use switchyard_switch::driver::BackendPlan;
use switchyard_switch::wire::vnet_hdr::Repr as Offload;
use switchyard_switch::PortId;

/// Time a frame takes between the switch and a gateway (as a container's
/// interface link by default).
pub(crate) const GATEWAY_DELAY: Duration = Duration::from_micros(10);

/// One network's gateway on a host.
pub(crate) struct GatewayPort {
    pub network_id: String,
    pub network: String,
    pub port: PortId,
    pub gateway: Gateway,
}

/// A port a container publishes on its host (`-p HOST_PORT:PORT`), kept
/// by names so it is realised again after restarts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Publish {
    /// The container.
    pub container: String,
    /// The network whose gateway carries it (the container's first
    /// network when empty).
    pub network: String,
    /// The container's port.
    pub port: u16,
    /// The host's port, on its outside address.
    pub host_port: u16,
    /// UDP instead of TCP.
    pub udp: bool,
}

/// One gateway's counters, for `lab show gateway HOST` and tests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GatewayRow {
    /// The network.
    pub network: String,
    /// Its gateway address.
    pub address: Option<Ipv4Addr>,
    /// Flows open now.
    pub flows: usize,
    /// What it did.
    pub counters: GatewayCounters,
}

/// What orders a gateway's frames between flows: the ethertype, then the
/// IPv4 protocol, addresses and ports (or the ARP target).
fn flow_key(f: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 16];
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    k[0] = at(12);
    k[1] = at(13);
    match (at(12), at(13)) {
        (0x08, 0x00) => {
            let ihl = usize::from(at(14) & 0x0f) * 4;
            k[2] = at(23);
            for i in 0..8 {
                k[3 + i] = at(26 + i);
            }
            for i in 0..4 {
                k[11 + i] = at(14 + ihl + i);
            }
        }
        (0x08, 0x06) => {
            for i in 0..4 {
                k[2 + i] = at(38 + i);
            }
        }
        _ => {}
    }
    k
}

fn place_gateway(h: u32, g: u32) -> u64 {
    (3 << 62) | (1 << 61) | (u64::from(h) << 32) | u64::from(g)
}

impl Sim {
    /// Realises the network ports the controller plans for `network_id` on
    /// host `h` (a gateway, for a bridge network that is not internal).
    pub(crate) fn plug_network_ports(&mut self, h: u32, network_id: &str) {
        let now = self.now;
        let host = &self.hosts[h as usize];
        if host
            .gateways
            .iter()
            .flatten()
            .any(|g| g.network_id == network_id)
        {
            return;
        }
        let Some(ctrl) = host.controller.as_ref() else {
            return;
        };
        let Some(name) = ctrl.network_by_id(network_id).map(|n| n.name.clone()) else {
            return;
        };
        for plan in ctrl.plan_network_ports(network_id) {
            let BackendPlan::Gateway(gp) = plan.backend else {
                continue;
            };
            let mut config = GatewayConfig::new(&name, gp.mac, gp.ipv4, gp.ipv6, gp.mtu);
            config.offload = false;
            let seed = self.nat_rng.next_u64();
            let gateway = Gateway::new(config, seed, now);
            let host = &mut self.hosts[h as usize];
            let port = host.bridge.add_port(plan.port);
            let idx = host.gateways.len() as u32;
            host.gateways.push(Some(GatewayPort {
                network_id: network_id.to_string(),
                network: name.clone(),
                port,
                gateway,
            }));
            host.set_port(port, Some(PortUse::Gateway(idx)));
        }
        self.refresh_isolation(h);
    }

    /// Removes the gateway of a network that went away, with its flows.
    pub(crate) fn unplug_network_ports(&mut self, h: u32, network_id: &str) {
        let host = &mut self.hosts[h as usize];
        let node = host.outside.node as usize;
        for i in 0..host.gateways.len() {
            if host.gateways[i]
                .as_ref()
                .is_some_and(|g| g.network_id == network_id)
            {
                if let Some(g) = host.gateways[i].take() {
                    host.bridge.remove_port(g.port);
                    host.set_port(g.port, None);
                }
                host.outside
                    .drop_gateway(&mut self.internet[node].stack, i as u32);
            }
        }
        self.refresh_isolation(h);
    }

    /// Tells every gateway of host `h` the host's container subnets, so
    /// no network reaches another through its gateway.
    pub(crate) fn refresh_isolation(&mut self, h: u32) {
        let host = &mut self.hosts[h as usize];
        let Some(ctrl) = host.controller.as_ref() else {
            return;
        };
        let subnets: Vec<IpNetwork> = ctrl
            .networks()
            .flat_map(|n| [&n.ipv4, &n.ipv6])
            .flatten()
            .map(|s| s.subnet)
            .collect();
        for g in host.gateways.iter_mut().flatten() {
            g.gateway.set_isolated(subnets.clone());
        }
    }

    /// A container's address left network `network_id`: its gateway ends
    /// the container's flows.
    pub(crate) fn gateway_forget(&mut self, h: u32, network_id: &str, ip: IpAddr) {
        let host = &mut self.hosts[h as usize];
        let node = host.outside.node as usize;
        for (i, g) in host.gateways.iter_mut().enumerate() {
            let Some(g) = g.as_mut().filter(|g| g.network_id == network_id) else {
                continue;
            };
            let mut view = OutsideView {
                stack: &mut self.internet[node].stack,
                table: &mut host.outside,
                gateway: i as u32,
            };
            g.gateway.forget_container(ip, &mut view);
        }
    }

    /// A frame from the switch reaches gateway `g` of host `h`.
    pub(crate) fn gateway_in(&mut self, h: u32, g: u32, frame: Frame) {
        let now = self.now;
        let host = &mut self.hosts[h as usize];
        let node = host.outside.node as usize;
        let Some(gp) = host.gateways.get_mut(g as usize).and_then(Option::as_mut) else {
            return;
        };
        self.digest
            .record(now, place_gateway(h, g), frame.len(), frame.hash());
        if let Some(log) = &mut self.log {
            log.push(crate::digest::Delivery {
                time: now,
                host: host.name.clone(),
                port: format!("{}/gateway", gp.network),
                frame: frame.to_vec(),
            });
        }
        let mut view = OutsideView {
            stack: &mut self.internet[node].stack,
            table: &mut host.outside,
            gateway: g,
        };
        gp.gateway.receive(&frame, &Offload::NONE, now, &mut view);
        self.step_host_outside(h);
    }

    /// Runs a host's outside: the uplink's stack, accepts on published
    /// ports, readiness to the gateways, the gateways themselves; then
    /// sends what they made (to the switch and to the internet) and
    /// schedules the next run.
    pub(crate) fn step_host_outside(&mut self, h: u32) {
        let now = self.now;
        let snow = crate::container::smol_now(now);
        let host = &mut self.hosts[h as usize];
        if !host.up {
            return;
        }
        let node = host.outside.node;
        let n = &mut self.internet[node as usize];
        n.next_step = None;
        let stack = &mut *n.stack;
        stack
            .iface
            .poll(snow, &mut stack.device, &mut stack.sockets);
        // Accepts on published TCP ports.
        for li in 0..host.outside.listeners.len() {
            let l = &host.outside.listeners[li];
            let Some(handle) = l.handle.filter(|_| !l.udp) else {
                continue;
            };
            let (gw, port, target) = (l.gateway, l.host_port, l.target);
            let sock = stack.sockets.get::<tcp::Socket>(handle);
            if sock.state() == tcp::State::Listen {
                continue;
            }
            let remote = sock.remote_endpoint();
            let mut fresh = tcp_socket();
            let _ = fresh.listen(port);
            host.outside.listeners[li].handle = Some(stack.sockets.add(fresh));
            let accepted = match (
                remote,
                host.gateways.get_mut(gw as usize).and_then(Option::as_mut),
            ) {
                (Some(ep), Some(g)) => {
                    let ip = match ep.addr {
                        IpAddress::Ipv4(a) => IpAddr::V4(a),
                        IpAddress::Ipv6(a) => IpAddr::V6(a),
                    };
                    g.gateway
                        .accept_tcp(SocketAddr::new(ip, ep.port), target, now)
                        .ok()
                }
                _ => None,
            };
            match accepted {
                Some(flow) => {
                    host.outside.flows.insert(
                        (gw, flow),
                        FlowSocket::Tcp {
                            handle,
                            established: false,
                            shut: false,
                        },
                    );
                }
                None => {
                    stack.sockets.get_mut::<tcp::Socket>(handle).abort();
                    host.outside.lingering.push(handle);
                }
            }
        }
        let mut ready = std::mem::take(&mut self.gw_ready);
        host.outside.readiness(stack, &mut ready);
        for &((g, flow), r) in &ready {
            if let Some(gp) = host.gateways.get_mut(g as usize).and_then(Option::as_mut) {
                gp.gateway.ready(flow, r);
            }
        }
        self.gw_ready = ready;
        let mut to_switch = std::mem::take(&mut self.gw_frames);
        to_switch.clear();
        let mut wake = None;
        for (i, gp) in host.gateways.iter_mut().enumerate() {
            let Some(gp) = gp.as_mut() else { continue };
            let mut view = OutsideView {
                stack: &mut *stack,
                table: &mut host.outside,
                gateway: i as u32,
            };
            gp.gateway.poll(now, &mut view);
            let port = gp.port;
            gp.gateway
                .drain(usize::MAX, |f, _| to_switch.push((port, f.to_vec())));
            wake = crate::apps::earliest(wake, gp.gateway.poll_at(now));
        }
        stack
            .iface
            .poll(snow, &mut stack.device, &mut stack.sockets);
        host.outside.reap(stack);
        let out: Vec<Vec<u8>> = stack.device.tx.drain(..).collect();
        if let Some(t) = stack.iface.poll_at(snow, &stack.sockets) {
            wake = crate::apps::earliest(wake, Some(crate::container::from_smol(t)));
        }
        // The gateway services its flows in hash-map order, which differs
        // between runs; a stable sort by flow keeps each flow's frames in
        // order and makes the order between flows the same on every run.
        to_switch.sort_by_key(|(port, f)| (port.0, flow_key(f)));
        let life = host.life;
        if let Some(t) = wake {
            self.schedule_node(node, t.max(now + Duration::from_micros(1)));
        }
        for (port, bytes) in to_switch.drain(..) {
            self.schedule(
                now + GATEWAY_DELAY,
                Event::GatewayOut {
                    host: h,
                    life,
                    port,
                    frame: Frame::new(bytes),
                },
            );
        }
        self.gw_frames = to_switch;
        for bytes in out {
            self.internet_send(node, bytes);
        }
    }

    /// A gateway's frame reaches its switch port.
    pub(crate) fn gateway_out(&mut self, h: u32, life: u32, port: PortId, frame: Frame) {
        let host = &self.hosts[h as usize];
        if !host.up || host.life != life || host.bridge.port(port).is_none() {
            return;
        }
        let origin = Located {
            node: Node::Host(h),
            host: h,
        };
        self.switch_ingress(h, port, frame, origin);
    }

    /// Publishes a container's port on its host's outside address
    /// (`-p HOST_PORT:PORT`, or `-p HOST_PORT:PORT/udp`): clients on the
    /// internet reach it at the host's address, and the container sees
    /// their own addresses. Realised again after restarts.
    pub fn publish(&mut self, publish: Publish) -> Result<(), SimError> {
        let c = self.container_id(&publish.container)?;
        let h = self.containers[c as usize].host;
        let host = &self.hosts[h as usize];
        if host
            .published
            .iter()
            .any(|p| p.host_port == publish.host_port && p.udp == publish.udp)
        {
            return Err(SimError::Invalid {
                what: "publish",
                detail: format!(
                    "host {} already publishes {} port {}; choose another host port",
                    host.name,
                    if publish.udp { "UDP" } else { "TCP" },
                    publish.host_port
                ),
            });
        }
        self.hosts[h as usize].published.push(publish);
        self.realise_published(h);
        Ok(())
    }

    /// Where a published port leads now: (gateway index, container
    /// address and port), or why not.
    fn published_target(&self, h: u32, p: &Publish) -> Option<(u32, SocketAddr)> {
        let c = self.container_id(&p.container).ok()?;
        let cont = &self.containers[c as usize];
        if !cont.up || cont.host != h {
            return None;
        }
        let nic = if p.network.is_empty() {
            cont.nics.first()
        } else {
            cont.nics.iter().find(|n| n.network_name == p.network)
        }?;
        let ip = nic.plan.ipv4?.ip();
        let host = &self.hosts[h as usize];
        let ctrl = host.controller.as_ref()?;
        let net_id = ctrl.network(&nic.network_name).ok()?.id.clone();
        let g = host
            .gateways
            .iter()
            .position(|g| g.as_ref().is_some_and(|g| g.network_id == net_id))?;
        Some((g as u32, SocketAddr::new(IpAddr::V4(ip), p.port)))
    }

    /// Brings host `h`'s published listeners in line with its publish
    /// list and its containers' current addresses.
    pub(crate) fn realise_published(&mut self, h: u32) {
        if !self.hosts[h as usize].up {
            return;
        }
        let wanted: Vec<(Publish, Option<(u32, SocketAddr)>)> = self.hosts[h as usize]
            .published
            .iter()
            .map(|p| (p.clone(), self.published_target(h, p)))
            .collect();
        let host = &mut self.hosts[h as usize];
        let node = host.outside.node as usize;
        let stack = &mut *self.internet[node].stack;
        for (p, target) in wanted {
            let existing = host
                .outside
                .listeners
                .iter()
                .position(|l| l.host_port == p.host_port && l.udp == p.udp);
            if let Some(i) = existing {
                let l = &host.outside.listeners[i];
                if target == Some((l.gateway, l.target)) {
                    continue;
                }
                let l = host.outside.listeners.remove(i);
                match (l.udp, l.flow) {
                    (true, Some(flow)) => {
                        if let Some(g) = host
                            .gateways
                            .get_mut(l.gateway as usize)
                            .and_then(Option::as_mut)
                        {
                            let mut view = OutsideView {
                                stack: &mut *stack,
                                table: &mut host.outside,
                                gateway: l.gateway,
                            };
                            g.gateway.unpublish(flow, &mut view);
                        }
                    }
                    _ => {
                        if let Some(hd) = l.handle {
                            stack.sockets.remove(hd);
                        }
                    }
                }
            }
            let Some((g, target)) = target else { continue };
            if p.udp {
                let Some(gp) = host.gateways.get_mut(g as usize).and_then(Option::as_mut) else {
                    continue;
                };
                let mut s = udp_socket();
                if s.bind(p.host_port).is_err() {
                    continue;
                }
                let flow = gp.gateway.publish_udp(target);
                let handle = stack.sockets.add(s);
                host.outside
                    .flows
                    .insert((g, flow), FlowSocket::Udp(handle));
                host.outside.listeners.push(Listener {
                    gateway: g,
                    host_port: p.host_port,
                    target,
                    udp: true,
                    handle: None,
                    flow: Some(flow),
                });
            } else {
                let mut s = tcp_socket();
                if s.listen(p.host_port).is_err() {
                    continue;
                }
                host.outside.listeners.push(Listener {
                    gateway: g,
                    host_port: p.host_port,
                    target,
                    udp: false,
                    handle: Some(stack.sockets.add(s)),
                    flow: None,
                });
            }
        }
    }

    /// A host's gateways and their counters, by network name.
    pub fn gateways(&self, host: &str) -> Result<Vec<GatewayRow>, SimError> {
        let h = self.host_id(host)?;
        let mut rows: Vec<GatewayRow> = self.hosts[h as usize]
            .gateways
            .iter()
            .flatten()
            .map(|g| GatewayRow {
                network: g.network.clone(),
                address: g.gateway.config().ipv4.map(|n| n.ip()),
                flows: g.gateway.flow_count(),
                counters: g.gateway.counters().clone(),
            })
            .collect();
        rows.sort_by(|a, b| a.network.cmp(&b.network));
        Ok(rows)
    }

    /// The counters of the gateway of `network` on `host`.
    pub fn gateway_counters(&self, host: &str, network: &str) -> Result<GatewayCounters, SimError> {
        let rows = self.gateways(host)?;
        let known = rows
            .iter()
            .map(|r| r.network.clone())
            .collect::<Vec<_>>()
            .join(", ");
        rows.into_iter()
            .find(|r| r.network == network)
            .map(|r| r.counters)
            .ok_or_else(|| SimError::Invalid {
                what: "gateway",
                detail: format!(
                    "network {network:?} has no gateway on host {host} (internal networks have none; gateways: {known})"
                ),
            })
    }
}
