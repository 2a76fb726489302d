//! The simulated internet: one flat Ethernet segment outside every host,
//! where each host has an uplink (its outside address, in
//! 198.51.100.0/24, which its gateways' flows use) and a lab places
//! outside nodes: servers that answer TCP, UDP echo and ping, and clients
//! that connect to ports the hosts publish.
//!
//! Every node is a smoltcp interface whose address has prefix 0, so it
//! resolves every destination with ARP on the segment, as if the internet
//! were one big LAN; frames take the sender's plus the receiver's access
//! latency. Servers speak a tiny HTTP/1.0-like protocol on their TCP
//! ports: the client sends `GET /N` (and a blank line), the server sends
//! N bytes of the simulator's transfer pattern and closes; on UDP ports
//! they echo; every node answers ping.

use crate::apps::{pattern_at, AppCtx, AppId};
use crate::container::{from_smol, smol_now, Stack};
use crate::digest::Delivery;
use crate::error::SimError;
use crate::frame::Frame;
use crate::outside::{tcp_socket, udp_socket};
use crate::world::{Event, Sim};
use ipnetwork::Ipv4Network;
use serde::Serialize;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::IpAddress;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use switchyard_switch::driver::InterfacePlan;
use switchyard_switch::{Instant, MacAddr};

/// Where hosts' outside addresses come from (RFC 5737 TEST-NET-2).
pub const HOST_OUTSIDE_NET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 0);
/// One-way latency of a host's uplink.
pub const UPLINK_LATENCY: Duration = Duration::from_millis(1);
/// Longest request line a server reads before giving up on a client.
const MAX_REQUEST: usize = 1024;

/// A node a lab places on the internet: a server (with TCP and UDP
/// ports) or a client (no ports) that reaches published ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutsideSpec {
    /// Its name, unique among hosts, containers and outside nodes.
    pub name: String,
    /// Its address (e.g. in 203.0.113.0/24); not in 198.51.100.0/24,
    /// which the hosts' uplinks use.
    pub address: Ipv4Addr,
    /// TCP ports served with the `GET /N` protocol.
    pub tcp: Vec<u16>,
    /// UDP ports that echo.
    pub udp: Vec<u16>,
    /// One-way latency of its access link.
    pub latency: Duration,
}

impl OutsideSpec {
    /// A node at `address` with no ports and 10 ms of latency.
    pub fn new(name: &str, address: Ipv4Addr) -> OutsideSpec {
        OutsideSpec {
            name: name.to_string(),
            address,
            tcp: Vec::new(),
            udp: Vec::new(),
            latency: Duration::from_millis(10),
        }
    }

    /// Serves `GET /N` on a TCP port.
    pub fn tcp(mut self, port: u16) -> OutsideSpec {
        self.tcp.push(port);
        self
    }

    /// Echoes on a UDP port.
    pub fn udp(mut self, port: u16) -> OutsideSpec {
        self.udp.push(port);
        self
    }

    /// Sets the access latency.
    pub fn latency(mut self, d: Duration) -> OutsideSpec {
        self.latency = d;
        self
    }
}

/// A request an outside server answered: who it saw asking, which is a
/// host's outside address when the asker was a container behind a
/// gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServedRequest {
    /// When the request was complete.
    pub time: Instant,
    /// The server.
    pub server: String,
    /// Its port.
    pub port: u16,
    /// The client's address as the server saw it.
    pub client: SocketAddr,
    /// Bytes asked for (0 for a request it could not read).
    pub bytes: u64,
}

/// What a node is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeRole {
    /// A host's uplink: its sockets are the host's gateways' flows.
    Uplink { host: u32 },
    /// A lab's outside node.
    Outside,
}

/// One connection a server accepted.
#[derive(Debug)]
struct ServerConn {
    handle: SocketHandle,
    port: u16,
    request: Vec<u8>,
    want: Option<u64>,
    sent: u64,
    closed: bool,
}

/// A node on the internet.
pub(crate) struct InternetNode {
    pub name: String,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub latency: Duration,
    pub role: NodeRole,
    pub stack: Box<Stack>,
    pub up: bool,
    pub next_step: Option<Instant>,
    pub capture: Option<u32>,
    /// Client applications running here.
    pub apps: Vec<AppId>,
    next_ephemeral: u16,
    listeners: Vec<(u16, SocketHandle)>,
    udp: Vec<SocketHandle>,
    conns: Vec<ServerConn>,
}

impl InternetNode {
    fn new(
        name: &str,
        ip: Ipv4Addr,
        latency: Duration,
        role: NodeRole,
        seed: u64,
        now: Instant,
    ) -> InternetNode {
        let mac = MacAddr::from_ipv4(ip);
        InternetNode {
            name: name.to_string(),
            ip,
            mac,
            latency,
            role,
            stack: Box::new(new_stack(ip, mac, seed, now)),
            up: true,
            next_step: None,
            capture: None,
            apps: Vec::new(),
            next_ephemeral: 40_000,
            listeners: Vec::new(),
            udp: Vec::new(),
            conns: Vec::new(),
        }
    }

    /// Forgets every socket (a host crash takes its sockets).
    pub(crate) fn reset(&mut self, seed: u64, now: Instant) {
        *self.stack = new_stack(self.ip, self.mac, seed, now);
        self.listeners.clear();
        self.udp.clear();
        self.conns.clear();
        self.next_step = None;
    }

    fn open_services(&mut self, spec: &OutsideSpec) {
        for &port in &spec.tcp {
            let mut s = tcp_socket();
            if s.listen(port).is_ok() {
                self.listeners.push((port, self.stack.sockets.add(s)));
            }
        }
        for &port in &spec.udp {
            let mut s = udp_socket();
            if s.bind(port).is_ok() {
                self.udp.push(self.stack.sockets.add(s));
            }
        }
    }

    /// Runs the node's services: accepts, answers requests, echoes.
    fn serve(&mut self, now: Instant, log: &mut Vec<ServedRequest>) {
        let sockets = &mut self.stack.sockets;
        for (port, handle) in &mut self.listeners {
            if sockets.get::<tcp::Socket>(*handle).state() == tcp::State::Listen {
                continue;
            }
            self.conns.push(ServerConn {
                handle: *handle,
                port: *port,
                request: Vec::new(),
                want: None,
                sent: 0,
                closed: false,
            });
            let mut s = tcp_socket();
            let _ = s.listen(*port);
            *handle = sockets.add(s);
        }
        let mut buf = [0u8; 512];
        self.conns.retain_mut(|c| {
            let sock = sockets.get_mut::<tcp::Socket>(c.handle);
            if c.want.is_none() {
                while sock.can_recv() && c.want.is_none() {
                    let Ok(n) = sock.recv_slice(&mut buf) else {
                        break;
                    };
                    c.request.extend_from_slice(&buf[..n]);
                    let ended = c.request.windows(4).any(|w| w == b"\r\n\r\n")
                        || c.request.windows(2).any(|w| w == b"\n\n");
                    if ended || c.request.len() > MAX_REQUEST {
                        let bytes = parse_request(&c.request).unwrap_or(0);
                        c.want = Some(bytes);
                        if let Some(ep) = sock.remote_endpoint() {
                            let IpAddress::Ipv4(ip) = ep.addr else {
                                continue;
                            };
                            log.push(ServedRequest {
                                time: now,
                                server: self.name.clone(),
                                port: c.port,
                                client: SocketAddr::new(ip.into(), ep.port),
                                bytes,
                            });
                        }
                    }
                }
                if c.want.is_none() && !sock.may_recv() && sock.state() != tcp::State::SynReceived {
                    c.want = Some(0);
                }
            }
            if let Some(want) = c.want {
                while c.sent < want && sock.can_send() {
                    let n = ((want - c.sent) as usize).min(4096);
                    match sock.send_slice(pattern_at(c.sent, n)) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => c.sent += k as u64,
                    }
                }
                if c.sent == want && !c.closed {
                    sock.close();
                    c.closed = true;
                }
            }
            let over = matches!(sock.state(), tcp::State::Closed | tcp::State::TimeWait);
            if over {
                sockets.remove(c.handle);
            }
            !over
        });
        let mut dgram = [0u8; 2048];
        for &h in &self.udp {
            let sock = sockets.get_mut::<udp::Socket>(h);
            while let Ok((n, meta)) = sock.recv_slice(&mut dgram) {
                let _ = sock.send_slice(&dgram[..n], meta.endpoint);
            }
        }
    }
}

/// `GET /N` (an optional `HTTP/1.x` after it) → N.
fn parse_request(req: &[u8]) -> Option<u64> {
    let line = req.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut words = line.split_ascii_whitespace();
    if words.next()? != "GET" {
        return None;
    }
    words.next()?.strip_prefix('/')?.parse().ok()
}

/// The request a container's fetch sends to an outside server.
pub(crate) fn request_for(bytes: u64) -> Vec<u8> {
    format!("GET /{bytes} HTTP/1.0\r\n\r\n").into_bytes()
}

fn new_stack(ip: Ipv4Addr, mac: MacAddr, seed: u64, now: Instant) -> Stack {
    let plan = InterfacePlan {
        ifname: "wan0".into(),
        mac,
        // Prefix 0: every destination is on the segment.
        ipv4: Ipv4Network::new(ip, 0).ok(),
        ipv6: None,
        gateway4: None,
        gateway6: None,
        default_route: false,
        mtu: 1500,
    };
    Stack::new(&plan, seed, now)
}

/// Digest place code of an internet node.
fn place_node(node: u32) -> u64 {
    (3 << 62) | u64::from(node)
}

impl Sim {
    pub(crate) fn add_node(
        &mut self,
        name: &str,
        ip: Ipv4Addr,
        latency: Duration,
        role: NodeRole,
    ) -> u32 {
        use rand_core::RngCore;
        let seed = self.nat_rng.next_u64();
        let mut node = InternetNode::new(name, ip, latency, role, seed, self.now);
        node.capture = self.capture_names.get(name).copied();
        let id = self.internet.len() as u32;
        self.internet.push(node);
        self.internet_names.insert(name.to_string(), id);
        id
    }

    /// The next free host address in 198.51.100.0/24.
    pub(crate) fn next_uplink_address(&self) -> Option<Ipv4Addr> {
        let [a, b, c, _] = HOST_OUTSIDE_NET.octets();
        (1..=254u8)
            .map(|d| Ipv4Addr::new(a, b, c, d))
            .find(|ip| self.internet.iter().all(|n| n.ip != *ip))
    }

    /// Places a server or client on the internet. Its name must be new
    /// (hosts, containers and nodes share one namespace) and its address
    /// free and outside 198.51.100.0/24, where hosts' uplinks live.
    pub fn add_outside(&mut self, spec: OutsideSpec) -> Result<(), SimError> {
        if self.internet_names.contains_key(&spec.name)
            || self.host_names.contains_key(&spec.name)
            || self.container_names.contains_key(&spec.name)
        {
            return Err(SimError::DuplicateName {
                what: "outside node",
                name: spec.name,
            });
        }
        let a = spec.address;
        if a.octets()[..3] == HOST_OUTSIDE_NET.octets()[..3]
            || a.is_loopback()
            || a.is_unspecified()
            || a.is_multicast()
            || a.is_broadcast()
        {
            return Err(SimError::Invalid {
                what: "outside address",
                detail: format!(
                    "{a} cannot be an outside node's address: 198.51.100.0/24 belongs to the hosts' uplinks, and loopback, multicast, broadcast and 0.0.0.0 are not hosts; use e.g. 203.0.113.10"
                ),
            });
        }
        if let Some(n) = self.internet.iter().find(|n| n.ip == a) {
            return Err(SimError::Invalid {
                what: "outside address",
                detail: format!(
                    "{a} is already {}'s; give each node its own address",
                    n.name
                ),
            });
        }
        let id = self.add_node(&spec.name, a, spec.latency, NodeRole::Outside);
        self.internet[id as usize].open_services(&spec);
        self.outside_specs.push(spec);
        Ok(())
    }

    /// A host's outside address: what servers on the internet see when
    /// its containers connect out, and where its published ports are.
    pub fn outside_address(&self, host: &str) -> Result<Ipv4Addr, SimError> {
        let h = self.host_id(host)?;
        Ok(self.internet[self.hosts[h as usize].outside.node as usize].ip)
    }

    /// The outside nodes a lab (or test) placed, in the order added.
    pub fn outside_nodes(&self) -> &[OutsideSpec] {
        &self.outside_specs
    }

    /// Every request the outside servers answered, in order.
    pub fn served_requests(&self) -> &[ServedRequest] {
        &self.served
    }

    /// The internet node named `name` (an outside node, or `HOST/outside`).
    pub(crate) fn node_id(&self, name: &str) -> Option<u32> {
        self.internet_names.get(name).copied()
    }

    /// The node whose address is `ip`.
    pub(crate) fn node_at(&self, ip: Ipv4Addr) -> Option<u32> {
        self.internet
            .iter()
            .position(|n| n.ip == ip)
            .map(|i| i as u32)
    }

    /// Schedules a node's step at `at` unless one is due earlier.
    pub(crate) fn schedule_node(&mut self, node: u32, at: Instant) {
        let at = at.max(self.now);
        let n = &mut self.internet[node as usize];
        if n.next_step.is_none_or(|t| at < t) {
            n.next_step = Some(at);
            self.schedule(at, Event::NodeStep { node });
        }
    }

    /// A node puts a frame on the segment: it reaches the node with its
    /// destination MAC, or every other node for a broadcast.
    pub(crate) fn internet_send(&mut self, from: u32, bytes: Vec<u8>) {
        let now = self.now;
        let frame = Frame::new(bytes);
        let src = &self.internet[from as usize];
        if let Some(cap) = src.capture {
            self.captures[cap as usize].pcap.record(now, &frame);
        }
        if frame.len() < 14 {
            return;
        }
        let mut dst = [0u8; 6];
        dst.copy_from_slice(&frame[0..6]);
        let dst = MacAddr(dst);
        let latency = src.latency;
        for i in 0..self.internet.len() as u32 {
            let n = &self.internet[i as usize];
            if i == from || !(dst.is_multicast() || n.mac == dst) {
                continue;
            }
            let at = now + latency + n.latency;
            self.schedule(
                at,
                Event::NodeArrive {
                    node: i,
                    frame: frame.clone(),
                },
            );
        }
    }

    /// A frame reaches a node.
    pub(crate) fn node_arrive(&mut self, node: u32, frame: Frame) {
        let now = self.now;
        let n = &mut self.internet[node as usize];
        if !n.up {
            return;
        }
        self.digest
            .record(now, place_node(node), frame.len(), frame.hash());
        if let Some(log) = &mut self.log {
            log.push(Delivery {
                time: now,
                host: "internet".into(),
                port: n.name.clone(),
                frame: frame.to_vec(),
            });
        }
        if let Some(cap) = n.capture {
            self.captures[cap as usize].pcap.record(now, &frame);
        }
        n.stack.device.rx.push_back(frame);
        self.schedule_node(node, now);
    }

    /// Runs a node: its stack, its services or its host's gateways, its
    /// client applications; sends what is due; schedules the next run.
    pub(crate) fn step_node(&mut self, node: u32) {
        self.internet[node as usize].next_step = None;
        if !self.internet[node as usize].up {
            return;
        }
        if let NodeRole::Uplink { host } = self.internet[node as usize].role {
            self.step_host_outside(host);
            return;
        }
        let now = self.now;
        let snow = smol_now(now);
        let Sim {
            internet,
            apps,
            effects,
            served,
            ..
        } = self;
        let n = &mut internet[node as usize];
        n.stack
            .iface
            .poll(snow, &mut n.stack.device, &mut n.stack.sockets);
        n.serve(now, served);
        let mut wake = None;
        if !n.apps.is_empty() {
            let ids = std::mem::take(&mut n.apps);
            let mut keep = Vec::with_capacity(ids.len());
            for id in ids {
                let next = &mut n.next_ephemeral;
                let ephemeral = || {
                    let p = *next;
                    *next = if p >= 60_000 { 40_000 } else { p + 1 };
                    p
                };
                let mut ctx = AppCtx {
                    now,
                    id,
                    container: u32::MAX,
                    effects,
                };
                let r = apps[id as usize].poll_on_node(&mut n.stack, ephemeral, &mut ctx);
                if !r.detach {
                    keep.push(id);
                    wake = crate::apps::earliest(wake, r.wake);
                }
            }
            n.apps = keep;
        }
        n.stack
            .iface
            .poll(snow, &mut n.stack.device, &mut n.stack.sockets);
        n.serve(now, served);
        let out: Vec<Vec<u8>> = n.stack.device.tx.drain(..).collect();
        if let Some(t) = n.stack.iface.poll_at(snow, &n.stack.sockets) {
            wake =
                crate::apps::earliest(wake, Some(from_smol(t).max(now + Duration::from_micros(1))));
        }
        if let Some(t) = wake {
            self.schedule_node(node, t);
        }
        for bytes in out {
            self.internet_send(node, bytes);
        }
    }
}
