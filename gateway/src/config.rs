//! What a gateway is told when it is made, and what it counts.

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;
use switchyard_switch::mac::MacAddr;

/// Bounds that keep one container from taking the gateway's sockets (and
/// the daemon's descriptors) from everyone else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Relayed TCP connections open at once per container address.
    pub tcp_per_container: u32,
    /// UDP mappings (one per container source port) per container address.
    pub udp_per_container: u32,
    /// Ping mappings (one per echo identifier) per container address.
    pub ping_per_container: u32,
    /// All flows of this gateway together.
    pub total_flows: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            tcp_per_container: 512,
            udp_per_container: 512,
            ping_per_container: 32,
            total_flows: 8192,
        }
    }
}

/// Idle timeouts, as the kernel's connection tracking has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// A UDP mapping that never got a reply.
    pub udp_unreplied: Duration,
    /// A UDP mapping that did.
    pub udp_replied: Duration,
    /// A ping mapping.
    pub ping: Duration,
    /// A TCP connect to the outside that has not finished.
    pub tcp_connect: Duration,
    /// A TCP connection with data the container never acknowledges.
    pub tcp_unacknowledged: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp_unreplied: Duration::from_secs(30),
            udp_replied: Duration::from_secs(120),
            ping: Duration::from_secs(10),
            tcp_connect: Duration::from_secs(30),
            tcp_unacknowledged: Duration::from_secs(120),
        }
    }
}

/// One gateway: the router of one network's segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayConfig {
    /// The network's name, for logs.
    pub network: String,
    /// The gateway's MAC on the segment.
    pub mac: MacAddr,
    /// The IPv4 gateway address and the subnet it serves.
    pub ipv4: Option<Ipv4Network>,
    /// The IPv6 gateway address and the subnet it serves.
    pub ipv6: Option<Ipv6Network>,
    /// The network's MTU (the containers' interface MTU).
    pub mtu: u32,
    /// Destinations never relayed: every container subnet of this host
    /// (so network A cannot reach network B through a gateway, as
    /// Docker's isolation chains ensure). Loopback, multicast and
    /// unspecified addresses are always refused.
    pub isolated: Vec<IpNetwork>,
    /// The peer speaks the Linux virtio-net offloads (a TAP with a vnet
    /// header): the gateway hands over 64 KiB TCP segments with a partial
    /// checksum for the kernel to finish, and takes such frames in. Off in
    /// the simulator, whose containers take MTU-sized frames only.
    pub offload: bool,
    /// Bytes of each relayed TCP connection's receive and send buffer.
    pub tcp_buffer: usize,
    /// Added to the gateway's clock (in ms) for the TCP timestamps it
    /// sends (RFC 7323). Real mode passes the system's boot-relative
    /// monotonic time at the daemon's start, so timestamps keep growing
    /// across daemon restarts; the simulator leaves it at 0.
    pub tcp_timestamp_base_ms: u32,
    /// Flow limits.
    pub limits: Limits,
    /// Idle timeouts.
    pub timeouts: Timeouts,
}

impl GatewayConfig {
    /// A configuration with the default limits, timeouts and buffers.
    pub fn new(
        network: &str,
        mac: MacAddr,
        ipv4: Option<Ipv4Network>,
        ipv6: Option<Ipv6Network>,
        mtu: u32,
    ) -> Self {
        GatewayConfig {
            network: network.to_string(),
            mac,
            ipv4,
            ipv6,
            mtu,
            isolated: Vec::new(),
            offload: false,
            tcp_buffer: 256 * 1024,
            tcp_timestamp_base_ms: 0,
            limits: Limits::default(),
            timeouts: Timeouts::default(),
        }
    }

    /// True when `ip` is one of the gateway's own addresses.
    pub fn is_own(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.ipv4.is_some_and(|n| n.ip() == a),
            IpAddr::V6(a) => self.ipv6.is_some_and(|n| n.ip() == a),
        }
    }

    /// True when `ip` lies in a subnet this gateway serves.
    pub fn serves(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.ipv4.is_some_and(|n| n.contains(a)),
            IpAddr::V6(a) => self.ipv6.is_some_and(|n| n.contains(a)),
        }
    }
}

/// What a gateway did, for `inspect` and `network inspect`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayCounters {
    /// Frames taken from the switch.
    pub frames_in: u64,
    /// Frames handed to the switch.
    pub frames_out: u64,
    /// Frames dropped: not for the gateway (ARP or neighbour discovery for
    /// another address, a frame for another MAC), of a protocol it does
    /// not relay, or broken.
    pub frames_dropped: u64,
    /// TCP or UDP segments with a wrong checksum, dropped.
    pub bad_checksum: u64,
    /// TCP connections relayed out.
    pub tcp_outbound: u64,
    /// TCP connections carried in from a published port.
    pub tcp_inbound: u64,
    /// TCP connects the outside refused or that timed out.
    pub tcp_connect_failed: u64,
    /// UDP mappings made.
    pub udp_mappings: u64,
    /// UDP datagrams relayed out (a container's replies on a published
    /// port included).
    pub udp_out: u64,
    /// UDP datagrams relayed in (replies and published ports).
    pub udp_in: u64,
    /// Echo requests relayed out.
    pub ping_out: u64,
    /// Echo replies relayed in.
    pub ping_in: u64,
    /// Echo requests answered for the gateway's own address.
    pub ping_answered: u64,
    /// Flows refused because a destination is isolated (another network,
    /// loopback, the host through the gateway without `host-gateway`).
    pub refused_isolation: u64,
    /// Flows refused by a limit.
    pub refused_limit: u64,
    /// Flows the outside could not open (no sockets left, ping not
    /// available).
    pub refused_outside: u64,
    /// Flows closed by an idle timeout.
    pub expired: u64,
    /// Bytes relayed from containers to the outside.
    pub bytes_out: u64,
    /// Bytes relayed from the outside to containers.
    pub bytes_in: u64,
    /// Datagrams and echo replies for a container whose MAC was still
    /// being resolved, dropped because too many were waiting or the
    /// container never answered within two sweeps (1–2 s).
    #[serde(default)]
    pub unresolved_dropped: u64,
}

/// One container's flows through a gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerFlows {
    /// The container's address on the network.
    pub address: Option<IpAddr>,
    /// Open TCP connections.
    pub tcp: u32,
    /// UDP mappings.
    pub udp: u32,
    /// Ping mappings.
    pub ping: u32,
    /// Flows refused by a limit, in the gateway's life.
    pub refused: u64,
}
