//! Ports: where frames enter and leave the switch core.
//!
//! The core only knows a port's id, the network segment it belongs to and
//! what it is allowed to send (its binding). Whether a port is a TAP fd, a
//! VXLAN tunnel, the gateway or a simulated link is the backend's business
//! (docs/ARCHITECTURE.md, "Ports are backends").

use crate::mac::MacAddr;
use core::fmt;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Identifies a port on one bridge. Ids are never reused while the bridge
/// lives, so a stale id held by a backend can only miss, never hit a
/// stranger's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortId(pub u32);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A broadcast domain: one per network (one per VXLAN VNI or VLAN later).
/// Frames never cross segments inside the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SegmentId(pub u32);

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seg{}", self.0)
    }
}

/// A split-horizon group: ports that must never pass frames to each other
/// (the bridge's rule 6). The VXLAN tunnel ports of one network form one:
/// in a full mesh every host reaches every other directly, so a frame that
/// came out of one tunnel and went into another would only loop or
/// duplicate. Numbers are the caller's; they mean nothing across bridges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HorizonGroup(pub u32);

impl fmt::Display for HorizonGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "horizon{}", self.0)
    }
}

/// What a port may send: the identity of the one station behind it, the
/// identity of a router that forwards for others, or any station (a
/// trunk).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortBinding {
    /// A container endpoint. Port security: frames must carry this source
    /// MAC, IPv4/ARP frames this sender address, and IPv6 frames this
    /// source address or the link-local address the MAC derives (`::` only
    /// for duplicate address detection, router solicitations and MLD
    /// reports).
    Endpoint {
        /// The endpoint's MAC address.
        mac: MacAddr,
        /// The endpoint's IPv4 address, if it has one.
        ipv4: Option<Ipv4Addr>,
        /// The endpoint's IPv6 address, if it has one.
        ipv6: Option<Ipv6Addr>,
    },
    /// A gateway: one station that forwards routed traffic for others, so
    /// its IPv4/IPv6 packets may carry any source address, but it speaks
    /// for its own identity only. Frames must carry this source MAC; ARP
    /// sender addresses must be one of `ipv4` (or 0.0.0.0 for a probe);
    /// neighbour discovery must come from, and advertise, one of `ipv6` or
    /// the link-local address the MAC derives, with this MAC in its
    /// link-layer options. Unlike an endpoint it may send router
    /// advertisements and redirects (from its own addresses).
    Router {
        /// The router's MAC address on this segment.
        mac: MacAddr,
        /// Its IPv4 addresses on the segment (the gateway address of each
        /// IPv4 subnet), which it answers ARP for.
        ipv4: Vec<Ipv4Addr>,
        /// Its IPv6 addresses on the segment besides the MAC-derived
        /// link-local one, which it answers neighbour solicitations for.
        ipv6: Vec<Ipv6Addr>,
    },
    /// Many stations may sit behind this port (a VXLAN tunnel to another
    /// host, an uplink). Sources are learned, not checked.
    Trunk,
}

/// How a port joins the bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortConfig {
    /// The segment the port belongs to.
    pub segment: SegmentId,
    /// What it may send.
    pub binding: PortBinding,
    /// A human label for tables and explanations, e.g. `web/eth0`.
    pub label: String,
    /// The largest layer-3 packet the port can take, in bytes: the frame
    /// minus its Ethernet header and any 802.1Q tag. The network's MTU for
    /// a container, the underlay's MTU minus the encapsulation for a
    /// tunnel. The bridge never sends a larger frame out of the port
    /// (rule 7) unless the caller marks it as a GSO super-frame, which the
    /// kernel segments on the way out. Read as [`PortConfig::DEFAULT_MTU`]
    /// when absent from serialized configuration written before it existed.
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// The port's split-horizon group, if any: frames never go from one
    /// port of a group to another (rule 6). `None` for ordinary ports.
    #[serde(default)]
    pub horizon: Option<HorizonGroup>,
}

impl PortConfig {
    /// Ethernet's MTU, the default for container networks.
    pub const DEFAULT_MTU: u32 = 1500;
}

fn default_mtu() -> u32 {
    PortConfig::DEFAULT_MTU
}

/// Why a frame was dropped. Every drop is counted under one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DropReason {
    /// Shorter than an Ethernet header, or a header that claims more bytes
    /// than the frame holds.
    Truncated,
    /// A header field with an impossible value (bad IPv4 IHL, version, ...).
    Malformed,
    /// Source MAC is multicast/broadcast or all-zero.
    InvalidSource,
    /// Port security: source MAC is not the endpoint's.
    SpoofedMac,
    /// Port security: IPv4/ARP/IPv6 sender address is not the endpoint's.
    SpoofedIp,
    /// The ingress port does not exist (removed while the frame was queued).
    UnknownPort,
    /// The destination is the ingress port itself (hairpin); nothing to do.
    SameSegmentLoop,
    /// Every other port of the segment is gone: a flood with no receiver.
    NoDestination,
    /// Larger than the frame limit of the bridge.
    Oversized,
    /// Split horizon: the destination is in the ingress port's horizon
    /// group (known unicast), or every other port of the segment is (a
    /// flood).
    SplitHorizon,
    /// A plain (non-GSO) frame larger than the MTU of the port it had to
    /// go to (known unicast), or of every port a flood could go to. The
    /// withheld copies are also counted on each egress port, in
    /// [`PortCounters::tx_mtu_exceeded`].
    MtuExceeded,
}

impl DropReason {
    /// Every reason, in a stable order for tables and JSON.
    pub const ALL: [DropReason; 11] = [
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::InvalidSource,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::UnknownPort,
        DropReason::SameSegmentLoop,
        DropReason::NoDestination,
        DropReason::Oversized,
        DropReason::SplitHorizon,
        DropReason::MtuExceeded,
    ];

    /// A short stable name (`spoofed_mac`), used as a counter key.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Malformed => "malformed",
            DropReason::InvalidSource => "invalid_source",
            DropReason::SpoofedMac => "spoofed_mac",
            DropReason::SpoofedIp => "spoofed_ip",
            DropReason::UnknownPort => "unknown_port",
            DropReason::SameSegmentLoop => "same_port",
            DropReason::NoDestination => "no_destination",
            DropReason::Oversized => "oversized",
            DropReason::SplitHorizon => "split_horizon",
            DropReason::MtuExceeded => "mtu_exceeded",
        }
    }

    /// Index into [`DropReason::ALL`], for counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::Truncated => "truncated frame",
            DropReason::Malformed => "malformed header",
            DropReason::InvalidSource => "source MAC is not a unicast address",
            DropReason::SpoofedMac => "port security: source MAC is not the endpoint's",
            DropReason::SpoofedIp => "port security: sender IP is not the endpoint's",
            DropReason::UnknownPort => "ingress port does not exist",
            DropReason::SameSegmentLoop => "destination is the ingress port",
            DropReason::NoDestination => "no other port on the segment",
            DropReason::Oversized => "frame larger than the bridge's limit",
            DropReason::SplitHorizon => "split horizon: destination is in the ingress port's group",
            DropReason::MtuExceeded => "frame larger than the destination port's MTU",
        })
    }
}

/// Per-port traffic counters, as the switch core saw them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortCounters {
    /// Frames received from the port (including those then dropped).
    pub rx_frames: u64,
    /// Bytes received from the port.
    pub rx_bytes: u64,
    /// Frames the core decided to send out of the port.
    pub tx_frames: u64,
    /// Bytes the core decided to send out of the port.
    pub tx_bytes: u64,
    /// Dropped frames received on this port, by [`DropReason::index`].
    pub drops: [u64; DropReason::ALL.len()],
    /// Copies the core withheld from this port because they exceed its
    /// MTU: one per frame that would otherwise have gone out of it
    /// (unicast or flood). A unicast withheld this way is also an ingress
    /// drop ([`DropReason::MtuExceeded`]) on the port it came from; a flood
    /// that reached other ports is not.
    #[serde(default)]
    pub tx_mtu_exceeded: u64,
}

impl PortCounters {
    /// Total dropped frames received on this port.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Drops for one reason.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// Adds another set of counters (for per-network totals).
    pub fn accumulate(&mut self, other: &PortCounters) {
        self.rx_frames += other.rx_frames;
        self.rx_bytes += other.rx_bytes;
        self.tx_frames += other.tx_frames;
        self.tx_bytes += other.tx_bytes;
        self.tx_mtu_exceeded += other.tx_mtu_exceeded;
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_index_matches_all_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn a_port_config_without_mtu_or_horizon_reads_as_ethernet_and_ungrouped() {
        let cfg: PortConfig =
            serde_json::from_str(r#"{"segment":3,"binding":"Trunk","label":"t"}"#).unwrap();
        assert_eq!(cfg.mtu, PortConfig::DEFAULT_MTU);
        assert_eq!(cfg.horizon, None);
    }

    #[test]
    fn counters_accumulate() {
        let mut a = PortCounters {
            rx_frames: 1,
            ..Default::default()
        };
        let mut b = PortCounters {
            rx_frames: 2,
            tx_bytes: 5,
            ..Default::default()
        };
        b.drops[DropReason::SpoofedMac.index()] = 3;
        a.accumulate(&b);
        assert_eq!(a.rx_frames, 3);
        assert_eq!(a.tx_bytes, 5);
        assert_eq!(a.dropped(), 3);
    }
}
