//! The gateway: one network's router on the switch, relaying containers'
//! flows to the outside and published ports in.

use crate::config::{ContainerFlows, GatewayConfig, GatewayCounters};
use crate::device::GatewayDevice;
use crate::outside::{FlowId, Outside, ReadOutcome, Readiness, WriteOutcome};
use crate::packet;
use hashbrown::{HashMap, HashSet};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use switchyard_switch::time::Instant;
use switchyard_switch::wire::vnet_hdr::Repr as Offload;

/// Why the gateway refused a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The destination is isolated from this container (another network,
    /// loopback, the host without `host-gateway`).
    #[error("destination isolated from this network")]
    Isolated,
    /// A limit on flows was reached.
    #[error("flow limit reached")]
    Limit,
    /// The outside could not open a socket.
    #[error("the host could not open a socket")]
    Outside,
}

/// Datagrams taken from one socket per poll, so one busy flow cannot
/// starve the rest.
const RECV_BUDGET: usize = 64;
/// Peers one UDP mapping accepts replies from (the last ones it sent to).
const UDP_PEERS: usize = 16;
/// Clients remembered per published UDP port.
const PUBLISHED_SESSIONS: usize = 4096;
/// Ephemeral ports the gateway uses as its own source port when a client
/// must appear as the gateway.
const EPHEMERAL: std::ops::Range<u16> = 32768..61000;

#[derive(Debug)]
struct TcpFlow {
    container: SocketAddr,
    remote: SocketAddr,
    handle: Option<SocketHandle>,
    /// The container's SYN, held until the outside connect finishes.
    syn: Option<Vec<u8>>,
    readable: bool,
    writable: bool,
    failed: bool,
    eof: bool,
    shut: bool,
    /// Seen closed once; removed at the next look, after its last segment
    /// (a RST) left.
    closing: bool,
    started: Instant,
}

#[derive(Debug)]
struct UdpFlow {
    container: SocketAddr,
    peers: Vec<SocketAddr>,
    readable: bool,
    replied: bool,
    last: Instant,
}

#[derive(Debug)]
struct PingFlow {
    container: IpAddr,
    ident: u16,
    readable: bool,
    last: Instant,
}

#[derive(Debug)]
struct PublishedUdp {
    target: SocketAddr,
    readable: bool,
    /// Real client -> (how the container sees it, last activity).
    sessions: HashMap<SocketAddr, (SocketAddr, Instant)>,
}

/// The kinds of flow a container's limits count.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Tcp,
    Udp,
    Ping,
}

impl Kind {
    fn count(self, u: &mut ContainerFlows) -> &mut u32 {
        match self {
            Kind::Tcp => &mut u.tcp,
            Kind::Udp => &mut u.udp,
            Kind::Ping => &mut u.ping,
        }
    }
}

#[derive(Debug)]
enum Flow {
    Tcp(TcpFlow),
    Udp(UdpFlow),
    Ping(PingFlow),
    PublishedUdp(PublishedUdp),
}

impl Flow {
    fn owner(&self) -> Option<IpAddr> {
        match self {
            Flow::Tcp(f) => Some(f.container.ip()),
            Flow::Udp(f) => Some(f.container.ip()),
            Flow::Ping(f) => Some(f.container),
            Flow::PublishedUdp(_) => None,
        }
    }
}

/// One network's gateway. Sans-I/O: frames come in with
/// [`Gateway::receive`] and leave with [`Gateway::drain`]; the host's
/// sockets are reached through an [`Outside`].
pub struct Gateway {
    config: GatewayConfig,
    iface: Interface,
    sockets: SocketSet<'static>,
    device: GatewayDevice,
    next_flow: u64,
    /// Ordered, so a pass over the flows (and the frames it makes) is the
    /// same in every run: the simulator's bytes repeat.
    flows: BTreeMap<FlowId, Flow>,
    tcp_index: HashMap<(SocketAddr, SocketAddr), FlowId>,
    udp_index: HashMap<SocketAddr, FlowId>,
    ping_index: HashMap<(IpAddr, u16), FlowId>,
    /// (container target, client as seen) -> (published flow, real client).
    published_seen: HashMap<(SocketAddr, SocketAddr), (FlowId, SocketAddr)>,
    neighbors: HashMap<IpAddr, [u8; 6]>,
    /// Frames for containers whose MAC is being resolved (the first
    /// datagram to a container the gateway has not heard from yet, such as
    /// a published UDP port's first client): sent once the container
    /// answers, as a kernel's neighbour queue does, instead of lost.
    awaiting: Vec<Awaiting>,
    /// Sweeps done so far: an awaiting frame older than one full sweep
    /// period is dropped.
    sweeps: u64,
    host_gateway: HashSet<IpAddr>,
    usage: HashMap<IpAddr, ContainerFlows>,
    counters: GatewayCounters,
    scratch: Vec<u8>,
    /// Reused by each pass over the flows, so a poll allocates nothing.
    pass_ids: Vec<FlowId>,
    pass_done: Vec<FlowId>,
    next_port: u16,
    next_sweep: Instant,
    /// The last poll stopped with bytes still moving (a socket's read
    /// budget ran out): poll again at once, not at the next event.
    unfinished: bool,
}

/// A frame waiting for its destination's MAC: built with a zero
/// destination, patched when the container answers.
struct Awaiting {
    ip: IpAddr,
    frame: Vec<u8>,
    sweep: u64,
}

/// Frames waiting for MACs at most, in all and per container.
const MAX_AWAITING: usize = 64;
const MAX_AWAITING_PER_CONTAINER: usize = 4;

fn smol(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((now.as_nanos() / 1000) as i64)
}

fn from_smol(t: smoltcp::time::Instant) -> Instant {
    Instant::from_nanos(t.total_micros().max(0) as u64 * 1000)
}

fn unmapped(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

impl Gateway {
    /// A gateway for one network; `seed` seeds its TCP sequence numbers
    /// (the simulator passes a sub-seed, so runs repeat).
    pub fn new(config: GatewayConfig, seed: u64, now: Instant) -> Gateway {
        let mut device = GatewayDevice::new(config.mtu, config.offload);
        let mut c = Config::new(HardwareAddress::Ethernet(EthernetAddress(config.mac.0)));
        c.random_seed = seed;
        let mut iface = Interface::new(c, &mut device, smol(now));
        iface.update_ip_addrs(|addrs| {
            if let Some(n) = config.ipv4 {
                let _ = addrs.push(IpCidr::new(n.ip().into(), n.prefix()));
            }
            if let Some(n) = config.ipv6 {
                let _ = addrs.push(IpCidr::new(n.ip().into(), n.prefix()));
            }
        });
        if let Some(n) = config.ipv4 {
            let _ = iface.routes_mut().add_default_ipv4_route(n.ip());
        }
        if let Some(n) = config.ipv6 {
            let _ = iface.routes_mut().add_default_ipv6_route(n.ip());
        }
        // Accept segments for any destination: a relayed connection's
        // local end is the remote server's address.
        iface.set_any_ip(true);
        Gateway {
            config,
            iface,
            sockets: SocketSet::new(Vec::new()),
            device,
            next_flow: 1,
            flows: BTreeMap::new(),
            tcp_index: HashMap::new(),
            udp_index: HashMap::new(),
            ping_index: HashMap::new(),
            published_seen: HashMap::new(),
            neighbors: HashMap::new(),
            awaiting: Vec::new(),
            sweeps: 0,
            host_gateway: HashSet::new(),
            usage: HashMap::new(),
            counters: GatewayCounters::default(),
            scratch: vec![0u8; 65_536],
            pass_ids: Vec::new(),
            pass_done: Vec::new(),
            next_port: EPHEMERAL.start,
            next_sweep: now,
            unfinished: false,
        }
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// What it did so far.
    pub fn counters(&self) -> &GatewayCounters {
        &self.counters
    }

    /// A container's flows through this gateway (zeros if it has none).
    pub fn container_flows(&self, ip: IpAddr) -> ContainerFlows {
        let mut u = self.usage.get(&ip).cloned().unwrap_or_default();
        u.address = Some(ip);
        u
    }

    /// Flows open now.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Destinations never relayed besides the always-refused ones (see
    /// [`GatewayConfig::isolated`]); the runtime updates it as networks
    /// come and go.
    pub fn set_isolated(&mut self, subnets: Vec<ipnetwork::IpNetwork>) {
        self.config.isolated = subnets;
    }

    /// Lets (or stops letting) the container at `ip` reach the host's own
    /// services through the gateway's address (`--add-host
    /// NAME:host-gateway`): its connections to the gateway address go to
    /// the host's loopback.
    pub fn set_host_gateway(&mut self, ip: IpAddr, allowed: bool) {
        if allowed {
            self.host_gateway.insert(ip);
        } else {
            self.host_gateway.remove(&ip);
        }
    }

    fn new_flow_id(&mut self) -> FlowId {
        let id = FlowId(self.next_flow);
        self.next_flow += 1;
        id
    }

    /// Where a container's packet to `to` really goes, or why not.
    fn destination(&self, from: IpAddr, to: SocketAddr) -> Result<SocketAddr, Refusal> {
        let ip = to.ip();
        if self.config.is_own(ip) {
            if !self.host_gateway.contains(&from) {
                return Err(Refusal::Isolated);
            }
            let lo = match ip {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            return Ok(SocketAddr::new(lo, to.port()));
        }
        let special = ip.is_loopback()
            || ip.is_unspecified()
            || ip.is_multicast()
            || matches!(ip, IpAddr::V4(a) if a.is_broadcast())
            || matches!(ip, IpAddr::V6(a) if a.to_ipv4_mapped().is_some());
        if special || self.config.serves(ip) || self.config.isolated.iter().any(|n| n.contains(ip))
        {
            return Err(Refusal::Isolated);
        }
        Ok(to)
    }

    /// How a container sees a host-side address: the host's loopback is
    /// the gateway address.
    fn seen_of(&self, real: SocketAddr) -> SocketAddr {
        let real = unmapped(real);
        if real.ip().is_loopback() {
            if let Some(own) = self.own(real.is_ipv6()) {
                return SocketAddr::new(own, real.port());
            }
        }
        real
    }

    fn own(&self, ipv6: bool) -> Option<IpAddr> {
        if ipv6 {
            self.config.ipv6.map(|n| IpAddr::V6(n.ip()))
        } else {
            self.config.ipv4.map(|n| IpAddr::V4(n.ip()))
        }
    }

    /// Checks the limits for one more flow of a kind for `owner`.
    fn admit(&mut self, owner: IpAddr, kind: Kind) -> Result<(), Refusal> {
        let limits = self.config.limits;
        let max = match kind {
            Kind::Tcp => limits.tcp_per_container,
            Kind::Udp => limits.udp_per_container,
            Kind::Ping => limits.ping_per_container,
        };
        let total = self.flows.len() as u32;
        let u = self.usage.entry(owner).or_default();
        let count = kind.count(u);
        if *count >= max || total >= limits.total_flows {
            u.refused += 1;
            self.counters.refused_limit += 1;
            return Err(Refusal::Limit);
        }
        *count += 1;
        Ok(())
    }

    fn release(&mut self, owner: IpAddr, kind: Kind) {
        if let Some(u) = self.usage.get_mut(&owner) {
            let count = kind.count(u);
            *count = count.saturating_sub(1);
        }
    }

    /// Takes one frame from the switch.
    pub fn receive(
        &mut self,
        frame: &[u8],
        offload: &Offload,
        now: Instant,
        outside: &mut dyn Outside,
    ) {
        self.counters.frames_in += 1;
        if !self.take(frame, offload, now, outside) {
            self.counters.frames_dropped += 1;
        }
    }

    /// Handles one frame; false when it was dropped.
    fn take(
        &mut self,
        frame: &[u8],
        offload: &Offload,
        now: Instant,
        outside: &mut dyn Outside,
    ) -> bool {
        if frame.len() < 14 {
            return false;
        }
        let dst_mac = &frame[0..6];
        if dst_mac != self.config.mac.0 && dst_mac[0] & 1 == 0 {
            return false;
        }
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&frame[6..12]);
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        if ethertype == 0x0806 {
            let Some((_, sha, spa, tpa)) = packet::arp_view(frame) else {
                return false;
            };
            if self.config.serves(IpAddr::V4(spa)) {
                self.learn(IpAddr::V4(spa), sha);
            }
            if !self.config.is_own(IpAddr::V4(tpa)) {
                return false;
            }
            self.device.rx.push(frame);
            return true;
        }
        let Some(ip) = packet::ip_view(frame) else {
            return false;
        };
        if ip.end > frame.len() || !self.config.serves(ip.src) {
            return false;
        }
        self.learn(ip.src, src_mac);
        let trusted = offload.needs_csum || offload.data_valid;
        match ip.proto {
            6 => {
                let Some(tcp) = packet::tcp_view(frame, &ip) else {
                    return false;
                };
                if !trusted
                    && self.config.offload
                    && !packet::transport_checksum_ok(ip.src, ip.dst, 6, &frame[ip.l4..ip.end])
                {
                    self.counters.bad_checksum += 1;
                    return false;
                }
                let c = SocketAddr::new(ip.src, tcp.src_port);
                let r = SocketAddr::new(ip.dst, tcp.dst_port);
                match self
                    .tcp_index
                    .get(&(c, r))
                    .and_then(|id| self.flows.get(id))
                {
                    Some(Flow::Tcp(f)) if f.handle.is_none() => return true,
                    Some(_) => {}
                    None if tcp.syn && !tcp.ack => {
                        self.open_tcp(frame, c, r, now, outside);
                        return true;
                    }
                    None => {}
                }
                // Established flows, and strays smoltcp answers with a RST.
                self.device.rx.push(frame);
                true
            }
            17 => {
                let Some((sp, dp, payload)) = packet::udp_view(frame, &ip) else {
                    return false;
                };
                if !trusted
                    && !packet::transport_checksum_ok(ip.src, ip.dst, 17, &frame[ip.l4..ip.end])
                    && frame[ip.l4 + 6..ip.l4 + 8] != [0, 0]
                {
                    self.counters.bad_checksum += 1;
                    return false;
                }
                self.udp_out(
                    SocketAddr::new(ip.src, sp),
                    SocketAddr::new(ip.dst, dp),
                    &frame[payload],
                    now,
                    outside,
                )
            }
            1 | 58 => {
                if ip.proto == 58 {
                    if let Some((kind, target)) = packet::ndp_target(frame, &ip) {
                        if kind == 136 || self.config.is_own(IpAddr::V6(target)) {
                            self.device.rx.push(frame);
                            return true;
                        }
                        return false;
                    }
                }
                let Some((ident, seq, payload)) = packet::echo_request(frame, &ip) else {
                    return false;
                };
                self.ping_out(ip.src, ip.dst, ident, seq, &frame[payload], now, outside)
            }
            _ => false,
        }
    }

    fn open_tcp(
        &mut self,
        syn: &[u8],
        c: SocketAddr,
        r: SocketAddr,
        now: Instant,
        outside: &mut dyn Outside,
    ) {
        let dest = match self.destination(c.ip(), r) {
            Ok(d) => d,
            Err(_) => {
                self.counters.refused_isolation += 1;
                self.device.rx.push(syn); // no listener: smoltcp resets it
                return;
            }
        };
        if self.admit(c.ip(), Kind::Tcp).is_err() {
            self.device.rx.push(syn);
            return;
        }
        let id = self.new_flow_id();
        if let Err(e) = outside.tcp_connect(id, dest) {
            tracing::debug!(network = %self.config.network, %c, %dest, error = %e, "outbound connect refused");
            self.counters.refused_outside += 1;
            self.release(c.ip(), Kind::Tcp);
            self.device.rx.push(syn);
            return;
        }
        self.counters.tcp_outbound += 1;
        self.tcp_index.insert((c, r), id);
        self.flows.insert(
            id,
            Flow::Tcp(TcpFlow {
                container: c,
                remote: r,
                handle: None,
                syn: Some(syn.to_vec()),
                readable: false,
                writable: false,
                failed: false,
                eof: false,
                shut: false,
                closing: false,
                started: now,
            }),
        );
    }

    /// A client connected to a published TCP port whose target is
    /// `target` (a container's address and port). The caller registers the
    /// accepted socket under the returned flow. The container sees the
    /// client's own address, except for clients on the host's loopback or
    /// inside this host's container subnets, who appear as the gateway.
    pub fn accept_tcp(
        &mut self,
        client: SocketAddr,
        target: SocketAddr,
        now: Instant,
    ) -> Result<FlowId, Refusal> {
        let client = unmapped(client);
        let seen = self.inbound_seen(client, target)?;
        if self.flows.len() as u32 >= self.config.limits.total_flows {
            self.counters.refused_limit += 1;
            return Err(Refusal::Limit);
        }
        let mut sock = new_tcp_socket(
            self.config.tcp_buffer,
            self.config.timeouts.tcp_unacknowledged,
        );
        if sock.connect(self.iface.context(), target, seen).is_err() {
            return Err(Refusal::Isolated);
        }
        let handle = self.sockets.add(sock);
        let id = self.new_flow_id();
        *Kind::Tcp.count(self.usage.entry(target.ip()).or_default()) += 1;
        self.counters.tcp_inbound += 1;
        self.tcp_index.insert((target, seen), id);
        self.flows.insert(
            id,
            Flow::Tcp(TcpFlow {
                container: target,
                remote: seen,
                handle: Some(handle),
                syn: None,
                readable: true,
                writable: true,
                failed: false,
                eof: false,
                shut: false,
                closing: false,
                started: now,
            }),
        );
        Ok(id)
    }

    /// How a published port's client appears to `target`.
    fn inbound_seen(
        &mut self,
        client: SocketAddr,
        target: SocketAddr,
    ) -> Result<SocketAddr, Refusal> {
        if target.is_ipv4() != client.is_ipv4() && !client.ip().is_loopback() {
            // An IPv6 client of an IPv4-only container (or the reverse)
            // appears as the gateway, like a loopback client.
        } else if !(client.ip().is_loopback()
            || self.config.serves(client.ip())
            || self.config.isolated.iter().any(|n| n.contains(client.ip())))
        {
            return Ok(client);
        }
        let own = self.own(target.is_ipv6()).ok_or(Refusal::Isolated)?;
        for _ in 0..EPHEMERAL.len() {
            let port = self.next_port;
            self.next_port = if port + 1 >= EPHEMERAL.end {
                EPHEMERAL.start
            } else {
                port + 1
            };
            let seen = SocketAddr::new(own, port);
            if !self.tcp_index.contains_key(&(target, seen))
                && !self.published_seen.contains_key(&(target, seen))
            {
                return Ok(seen);
            }
        }
        Err(Refusal::Limit)
    }

    /// A published UDP port: the caller binds the host socket and
    /// registers it under the returned flow; datagrams to it go to
    /// `target`, the container's replies come back from it.
    pub fn publish_udp(&mut self, target: SocketAddr) -> FlowId {
        let id = self.new_flow_id();
        self.flows.insert(
            id,
            Flow::PublishedUdp(PublishedUdp {
                target,
                readable: true,
                sessions: HashMap::new(),
            }),
        );
        id
    }

    fn udp_out(
        &mut self,
        c: SocketAddr,
        r: SocketAddr,
        payload: &[u8],
        now: Instant,
        outside: &mut dyn Outside,
    ) -> bool {
        if let Some(&(flow, client)) = self.published_seen.get(&(c, r)) {
            if outside.udp_send(flow, client, payload).is_ok() {
                self.counters.udp_out += 1;
                self.counters.bytes_out += payload.len() as u64;
            }
            return true;
        }
        let dest = match self.destination(c.ip(), r) {
            Ok(d) => d,
            Err(_) => {
                self.counters.refused_isolation += 1;
                return false;
            }
        };
        let id = match self.udp_index.get(&c) {
            Some(&id) => id,
            None => {
                if self.admit(c.ip(), Kind::Udp).is_err() {
                    return false;
                }
                let id = self.new_flow_id();
                if outside.udp_open(id, c.is_ipv6()).is_err() {
                    self.release(c.ip(), Kind::Udp);
                    self.counters.refused_outside += 1;
                    return false;
                }
                self.counters.udp_mappings += 1;
                self.udp_index.insert(c, id);
                self.flows.insert(
                    id,
                    Flow::Udp(UdpFlow {
                        container: c,
                        peers: Vec::new(),
                        readable: false,
                        replied: false,
                        last: now,
                    }),
                );
                id
            }
        };
        if let Some(Flow::Udp(f)) = self.flows.get_mut(&id) {
            f.last = now;
            if !f.peers.contains(&r) {
                if f.peers.len() >= UDP_PEERS {
                    f.peers.remove(0);
                }
                f.peers.push(r);
            }
        }
        if outside.udp_send(id, dest, payload).is_ok() {
            self.counters.udp_out += 1;
            self.counters.bytes_out += payload.len() as u64;
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn ping_out(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        ident: u16,
        seq: u16,
        payload: &[u8],
        now: Instant,
        outside: &mut dyn Outside,
    ) -> bool {
        if self.config.is_own(dst) {
            self.counters.ping_answered += 1;
            self.emit_echo_reply(dst, src, ident, seq, payload);
            return true;
        }
        let Ok(dest) = self.destination(src, SocketAddr::new(dst, 0)) else {
            self.counters.refused_isolation += 1;
            return false;
        };
        let id = match self.ping_index.get(&(src, ident)) {
            Some(&id) => id,
            None => {
                if self.admit(src, Kind::Ping).is_err() {
                    return false;
                }
                let id = self.new_flow_id();
                if let Err(e) = outside.ping_open(id, src.is_ipv6()) {
                    tracing::debug!(network = %self.config.network, error = %e, "ping not relayed");
                    self.release(src, Kind::Ping);
                    self.counters.refused_outside += 1;
                    return false;
                }
                self.ping_index.insert((src, ident), id);
                self.flows.insert(
                    id,
                    Flow::Ping(PingFlow {
                        container: src,
                        ident,
                        readable: false,
                        last: now,
                    }),
                );
                id
            }
        };
        if let Some(Flow::Ping(f)) = self.flows.get_mut(&id) {
            f.last = now;
        }
        if outside.ping_send(id, dest.ip(), seq, payload).is_ok() {
            self.counters.ping_out += 1;
        }
        true
    }

    /// Records a container's MAC and sends what waited for it.
    fn learn(&mut self, ip: IpAddr, mac: [u8; 6]) {
        self.neighbors.insert(ip, mac);
        if self.awaiting.iter().any(|a| a.ip == ip) {
            // In the order they came: datagrams of one flow stay in order.
            for mut waiting in std::mem::take(&mut self.awaiting) {
                if waiting.ip == ip {
                    waiting.frame[0..6].copy_from_slice(&mac);
                    self.device.tx.push(waiting.frame, Offload::NONE);
                } else {
                    self.awaiting.push(waiting);
                }
            }
        }
    }

    /// Sends a frame built for `ip` with a zero destination MAC: at once
    /// when the MAC is known, after the container answers a solicitation
    /// otherwise (a bounded number wait; the rest are dropped and counted).
    fn send_to_container(&mut self, ip: IpAddr, mut frame: Vec<u8>) {
        if let Some(mac) = self.neighbor(ip) {
            frame[0..6].copy_from_slice(&mac);
            self.device.tx.push(frame, Offload::NONE);
            return;
        }
        let mine = self.awaiting.iter().filter(|a| a.ip == ip).count();
        if mine >= MAX_AWAITING_PER_CONTAINER || self.awaiting.len() >= MAX_AWAITING {
            self.counters.unresolved_dropped += 1;
            return;
        }
        self.awaiting.push(Awaiting {
            ip,
            frame,
            sweep: self.sweeps,
        });
    }

    /// The MAC of a container, or `None` after sending a solicitation for
    /// it (once per sweep period while frames wait for it).
    fn neighbor(&mut self, ip: IpAddr) -> Option<[u8; 6]> {
        if let Some(mac) = self.neighbors.get(&ip) {
            return Some(*mac);
        }
        if self
            .awaiting
            .iter()
            .any(|a| a.ip == ip && a.sweep == self.sweeps)
        {
            return None;
        }
        let mut buf = self.device.tx.buffer();
        match (ip, self.own(ip.is_ipv6())) {
            (IpAddr::V4(t), Some(IpAddr::V4(own))) => {
                packet::build_arp_request(&mut buf, self.config.mac.0, own, t)
            }
            (IpAddr::V6(t), Some(IpAddr::V6(own))) => {
                packet::build_neighbor_solicit(&mut buf, self.config.mac.0, own, t)
            }
            _ => return None,
        }
        self.device.tx.push(buf, Offload::NONE);
        None
    }

    fn emit_udp(&mut self, from: SocketAddr, to: SocketAddr, len: usize) -> bool {
        let mut buf = self.device.tx.buffer();
        packet::build_udp(
            &mut buf,
            (self.config.mac.0, [0; 6]),
            from,
            to,
            &self.scratch[..len],
        );
        self.send_to_container(to.ip(), buf);
        true
    }

    fn emit_echo_reply(&mut self, from: IpAddr, to: IpAddr, ident: u16, seq: u16, data: &[u8]) {
        let mut buf = self.device.tx.buffer();
        packet::build_echo_reply(
            &mut buf,
            (self.config.mac.0, [0; 6]),
            from,
            to,
            ident,
            seq,
            data,
        );
        self.send_to_container(to, buf);
    }

    /// The outside says what a flow's socket can do now.
    pub fn ready(&mut self, flow: FlowId, readiness: Readiness) {
        match self.flows.get_mut(&flow) {
            Some(Flow::Tcp(f)) => {
                f.readable |= readiness.readable;
                f.writable |= readiness.writable;
                f.failed |= readiness.error;
            }
            Some(Flow::Udp(f)) => f.readable |= readiness.readable,
            Some(Flow::Ping(f)) => f.readable |= readiness.readable,
            Some(Flow::PublishedUdp(f)) => f.readable |= readiness.readable,
            None => {}
        }
    }

    /// Runs the stack and moves bytes between the containers' connections
    /// and the outside, until nothing moves.
    pub fn poll(&mut self, now: Instant, outside: &mut dyn Outside) {
        self.unfinished = true;
        let ms = (now.as_nanos() / 1_000_000) as u32;
        TCP_TSVAL.with(|t| t.set(ms.wrapping_add(self.config.tcp_timestamp_base_ms)));
        for _ in 0..8 {
            self.iface
                .poll(smol(now), &mut self.device, &mut self.sockets);
            if !self.service(now, outside) {
                self.unfinished = false;
                break;
            }
        }
        if now >= self.next_sweep {
            self.sweep(now, outside);
            self.next_sweep = Instant::from_nanos(now.as_nanos() + 1_000_000_000);
        }
    }

    /// Up to `max` frames for the switch, oldest first (a caller whose
    /// batch is full takes the rest later); returns how many.
    pub fn drain(&mut self, max: usize, out: impl FnMut(&[u8], &Offload)) -> usize {
        let n = self.device.tx.drain(max, out);
        self.counters.frames_out += n as u64;
        n
    }

    /// Frames waiting in [`Gateway::drain`].
    pub fn pending_frames(&self) -> usize {
        self.device.tx.len()
    }

    /// When [`Gateway::poll`] must run next, at the latest.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        if self.unfinished {
            return Some(now);
        }
        let stack = self.iface.poll_at(smol(now), &self.sockets).map(from_smol);
        let sweep = (!self.flows.is_empty()).then_some(self.next_sweep);
        match (stack, sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// One pass over the flows; true when bytes or frames moved.
    fn service(&mut self, now: Instant, outside: &mut dyn Outside) -> bool {
        let mut progressed = false;
        let mut ids = std::mem::take(&mut self.pass_ids);
        let mut done = std::mem::take(&mut self.pass_done);
        ids.clear();
        ids.extend(self.flows.keys().copied());
        for &id in &ids {
            let Some(flow) = self.flows.get_mut(&id) else {
                continue;
            };
            match flow {
                Flow::Tcp(f) => {
                    let (p, finished) = service_tcp(
                        id,
                        f,
                        &mut self.sockets,
                        &mut self.device,
                        &mut self.counters,
                        self.config.tcp_buffer,
                        self.config.timeouts.tcp_unacknowledged,
                        outside,
                    );
                    progressed |= p;
                    if finished {
                        done.push(id);
                    }
                }
                Flow::Udp(f) if f.readable => {
                    let c = f.container;
                    progressed |= self.udp_in(id, c, outside, now);
                }
                Flow::Ping(f) if f.readable => {
                    let (c, ident) = (f.container, f.ident);
                    progressed |= self.ping_in(id, c, ident, outside);
                }
                Flow::PublishedUdp(f) if f.readable => {
                    let target = f.target;
                    progressed |= self.published_in(id, target, outside, now);
                }
                _ => {}
            }
        }
        for &id in &done {
            self.remove(id, outside);
        }
        done.clear();
        self.pass_ids = ids;
        self.pass_done = done;
        progressed
    }

    fn udp_in(
        &mut self,
        id: FlowId,
        c: SocketAddr,
        outside: &mut dyn Outside,
        now: Instant,
    ) -> bool {
        let mut moved = false;
        for _ in 0..RECV_BUDGET {
            let Some((n, from)) = outside.udp_recv(id, &mut self.scratch) else {
                if let Some(Flow::Udp(f)) = self.flows.get_mut(&id) {
                    f.readable = false;
                }
                return moved;
            };
            let seen = self.seen_of(from);
            let Some(Flow::Udp(f)) = self.flows.get_mut(&id) else {
                return moved;
            };
            if !f.peers.contains(&seen) {
                self.counters.frames_dropped += 1;
                continue;
            }
            f.replied = true;
            f.last = now;
            if self.emit_udp(seen, c, n) {
                self.counters.udp_in += 1;
                self.counters.bytes_in += n as u64;
                moved = true;
            }
        }
        moved
    }

    fn ping_in(&mut self, id: FlowId, c: IpAddr, ident: u16, outside: &mut dyn Outside) -> bool {
        let mut moved = false;
        for _ in 0..RECV_BUDGET {
            let Some((n, from, seq)) = outside.ping_recv(id, &mut self.scratch) else {
                if let Some(Flow::Ping(f)) = self.flows.get_mut(&id) {
                    f.readable = false;
                }
                return moved;
            };
            let from = self.seen_of(SocketAddr::new(from, 0)).ip();
            let data = std::mem::take(&mut self.scratch);
            self.emit_echo_reply(from, c, ident, seq, &data[..n]);
            self.scratch = data;
            self.counters.ping_in += 1;
            moved = true;
        }
        moved
    }

    fn published_in(
        &mut self,
        id: FlowId,
        target: SocketAddr,
        outside: &mut dyn Outside,
        now: Instant,
    ) -> bool {
        let mut moved = false;
        for _ in 0..RECV_BUDGET {
            let Some((n, client)) = outside.udp_recv(id, &mut self.scratch) else {
                if let Some(Flow::PublishedUdp(f)) = self.flows.get_mut(&id) {
                    f.readable = false;
                }
                return moved;
            };
            let client = unmapped(client);
            let known = match self.flows.get(&id) {
                Some(Flow::PublishedUdp(f)) => f.sessions.get(&client).map(|s| s.0),
                _ => return moved,
            };
            let seen = match known {
                Some(seen) => seen,
                None => {
                    let full = matches!(self.flows.get(&id), Some(Flow::PublishedUdp(f)) if f.sessions.len() >= PUBLISHED_SESSIONS);
                    if full {
                        self.counters.refused_limit += 1;
                        continue;
                    }
                    let Ok(seen) = self.inbound_seen(client, target) else {
                        continue;
                    };
                    self.published_seen.insert((target, seen), (id, client));
                    seen
                }
            };
            if let Some(Flow::PublishedUdp(f)) = self.flows.get_mut(&id) {
                f.sessions.insert(client, (seen, now));
            }
            if self.emit_udp(seen, target, n) {
                self.counters.udp_in += 1;
                self.counters.bytes_in += n as u64;
                moved = true;
            }
        }
        moved
    }

    /// Closes idle mappings and connects that never finished.
    fn sweep(&mut self, now: Instant, outside: &mut dyn Outside) {
        let before = self.awaiting.len();
        let current = self.sweeps;
        self.awaiting.retain(|a| a.sweep == current);
        self.counters.unresolved_dropped += (before - self.awaiting.len()) as u64;
        self.sweeps += 1;
        let t = self.config.timeouts;
        let older = |at: Instant, d: std::time::Duration| {
            now.as_nanos().saturating_sub(at.as_nanos()) > d.as_nanos() as u64
        };
        let mut expired = Vec::new();
        for (id, flow) in self.flows.iter_mut() {
            let old = match flow {
                Flow::Udp(f) => older(
                    f.last,
                    if f.replied {
                        t.udp_replied
                    } else {
                        t.udp_unreplied
                    },
                ),
                Flow::Ping(f) => older(f.last, t.ping),
                Flow::Tcp(f) => f.handle.is_none() && older(f.started, t.tcp_connect),
                Flow::PublishedUdp(f) => {
                    let before = f.sessions.len();
                    f.sessions
                        .retain(|_, (_, last)| !older(*last, t.udp_replied));
                    if f.sessions.len() != before {
                        let target = f.target;
                        let live: HashSet<SocketAddr> = f.sessions.values().map(|s| s.0).collect();
                        self.published_seen.retain(|(tg, seen), (fid, _)| {
                            *fid != *id || *tg != target || live.contains(seen)
                        });
                    }
                    false
                }
            };
            if old {
                expired.push(*id);
            }
        }
        for id in expired {
            self.counters.expired += 1;
            if let Some(Flow::Tcp(f)) = self.flows.get_mut(&id) {
                // The connect never finished: the container gets a reset.
                if let Some(syn) = f.syn.take() {
                    self.device.rx.push(&syn);
                }
            }
            self.remove(id, outside);
        }
    }

    /// Ends a flow on both sides.
    fn remove(&mut self, id: FlowId, outside: &mut dyn Outside) {
        let Some(flow) = self.flows.remove(&id) else {
            return;
        };
        outside.close(id);
        match &flow {
            Flow::Tcp(f) => {
                self.tcp_index.remove(&(f.container, f.remote));
                if let Some(h) = f.handle {
                    self.sockets.remove(h);
                }
                self.release(f.container.ip(), Kind::Tcp);
            }
            Flow::Udp(f) => {
                self.udp_index.remove(&f.container);
                self.release(f.container.ip(), Kind::Udp);
            }
            Flow::Ping(f) => {
                self.ping_index.remove(&(f.container, f.ident));
                self.release(f.container, Kind::Ping);
            }
            Flow::PublishedUdp(_) => {
                self.published_seen.retain(|_, (fid, _)| *fid != id);
            }
        }
        if let Some(owner) = flow.owner() {
            if let Some(u) = self.usage.get(&owner) {
                if u.tcp == 0 && u.udp == 0 && u.ping == 0 && u.refused == 0 {
                    self.usage.remove(&owner);
                }
            }
        }
    }

    /// Stops a published UDP port (its container went, or was stopped).
    pub fn unpublish(&mut self, flow: FlowId, outside: &mut dyn Outside) {
        self.remove(flow, outside);
    }

    /// Ends one flow at once (its socket could not be watched): a
    /// connection is reset, a mapping closed.
    pub fn close_flow(&mut self, flow: FlowId, outside: &mut dyn Outside) {
        self.remove(flow, outside);
    }

    /// Flows per container address that has or had any.
    pub fn containers(&self) -> Vec<ContainerFlows> {
        let mut all: Vec<ContainerFlows> = self
            .usage
            .iter()
            .map(|(ip, u)| ContainerFlows {
                address: Some(*ip),
                ..u.clone()
            })
            .collect();
        all.sort_by_key(|c| c.address);
        all
    }

    /// Ends every flow of a container that left the network: its
    /// connections are reset, its mappings closed.
    pub fn forget_container(&mut self, ip: IpAddr, outside: &mut dyn Outside) {
        let ids: Vec<FlowId> = self
            .flows
            .iter()
            .filter(|(_, f)| {
                f.owner() == Some(ip) || matches!(f, Flow::PublishedUdp(p) if p.target.ip() == ip)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.remove(id, outside);
        }
        self.usage.remove(&ip);
        self.host_gateway.remove(&ip);
        self.neighbors.remove(&ip);
        self.awaiting.retain(|a| a.ip != ip);
    }
}

thread_local! {
    /// The TCP timestamp value (RFC 7323, ms) the sockets polled on this
    /// thread send: smoltcp asks a plain `fn() -> u32`, so the gateway
    /// stores its clock here before each poll. Per thread, so simulated
    /// worlds on parallel test threads never see each other's time.
    static TCP_TSVAL: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn tcp_tsval() -> u32 {
    TCP_TSVAL.with(std::cell::Cell::get)
}

/// A relayed connection's smoltcp socket: its buffers (allocated once per
/// connection), no Nagle (the far side does its own), a bound on how long
/// unacknowledged data may wait, and TCP timestamps. Timestamps matter for
/// published ports: the container sees the real client's address and port,
/// so a client that reuses its port meets the container's TIME_WAIT of
/// the last connection on that 4-tuple, which Linux reopens only for a
/// SYN with a newer timestamp (or a higher sequence number than smoltcp's
/// random one has, half the time); without them every such reuse cost a
/// challenge ACK, a reset and the SYN's 1 s retransmission.
fn new_tcp_socket(buffer: usize, timeout: std::time::Duration) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0u8; buffer]),
        tcp::SocketBuffer::new(vec![0u8; buffer]),
    );
    s.set_nagle_enabled(false);
    s.set_timeout(Some(timeout.into()));
    s.set_tsval_generator(Some(tcp_tsval));
    s
}

/// Moves one TCP flow's bytes; returns (progress, finished).
#[allow(clippy::too_many_arguments)]
fn service_tcp(
    id: FlowId,
    f: &mut TcpFlow,
    sockets: &mut SocketSet<'static>,
    device: &mut GatewayDevice,
    counters: &mut GatewayCounters,
    buffer: usize,
    timeout: std::time::Duration,
    outside: &mut dyn Outside,
) -> (bool, bool) {
    let mut progressed = false;
    let Some(handle) = f.handle else {
        // Connecting: the outside answered?
        if f.failed {
            counters.tcp_connect_failed += 1;
            if let Some(syn) = f.syn.take() {
                device.rx.push(&syn);
            }
            return (true, true);
        }
        if f.writable {
            let mut sock = new_tcp_socket(buffer, timeout);
            if sock.listen(f.remote).is_err() {
                return (false, true);
            }
            f.handle = Some(sockets.add(sock));
            if let Some(syn) = f.syn.take() {
                device.rx.push(&syn);
            }
            f.readable = true;
            return (true, false);
        }
        return (false, false);
    };
    let sock = sockets.get_mut::<tcp::Socket>(handle);
    if f.failed && sock.is_open() {
        sock.abort();
        progressed = true;
    }
    // Container -> outside.
    while f.writable && sock.can_recv() {
        let r = sock.recv(|buf| match outside.tcp_write(id, buf) {
            WriteOutcome::Wrote(n) => (n, WriteOutcome::Wrote(n)),
            other => (0, other),
        });
        match r {
            Ok(WriteOutcome::Wrote(n)) => {
                counters.bytes_out += n as u64;
                progressed = true;
            }
            Ok(WriteOutcome::WouldBlock) => f.writable = false,
            Ok(WriteOutcome::Failed) | Err(_) => {
                sock.abort();
                f.failed = true;
                break;
            }
        }
    }
    if !f.shut
        && !sock.may_recv()
        && sock.recv_queue() == 0
        && sock.state() != tcp::State::Listen
        && sock.state() != tcp::State::SynSent
        && sock.state() != tcp::State::SynReceived
    {
        outside.tcp_shutdown(id);
        f.shut = true;
    }
    // Outside -> container.
    while f.readable && !f.eof && sock.can_send() {
        let r = sock.send(|buf| match outside.tcp_read(id, buf) {
            ReadOutcome::Data(n) => (n, ReadOutcome::Data(n)),
            other => (0, other),
        });
        match r {
            Ok(ReadOutcome::Data(n)) => {
                counters.bytes_in += n as u64;
                progressed = true;
            }
            Ok(ReadOutcome::WouldBlock) => f.readable = false,
            Ok(ReadOutcome::Eof) => {
                f.eof = true;
                sock.close();
                progressed = true;
            }
            Ok(ReadOutcome::Failed) | Err(_) => {
                sock.abort();
                f.failed = true;
                progressed = true;
                break;
            }
        }
    }
    let state = sock.state();
    let over = matches!(state, tcp::State::Closed | tcp::State::TimeWait);
    if over {
        if f.closing {
            return (progressed, true);
        }
        f.closing = true;
        return (true, false);
    }
    (progressed, false)
}
