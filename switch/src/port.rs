//! Ports: where frames enter and leave the switch core.
//!
//! The core only knows a port's id, the network segment it belongs to and
//! what it is allowed to send (its binding). Whether a port is a TAP fd, a
//! VXLAN tunnel, the gateway or a simulated link is the backend's business
//! (DESIGN.md seam 2).

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

/// What a port may send: the identity of the one station behind it, or any
/// station (a trunk).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortBinding {
    /// A container endpoint. Port security: frames must carry this source
    /// MAC, and IPv4/ARP frames this sender address (IPv6 frames this source
    /// address when one is set, or a link-local/unspecified one).
    Endpoint {
        /// The endpoint's MAC address.
        mac: MacAddr,
        /// The endpoint's IPv4 address, if it has one.
        ipv4: Option<Ipv4Addr>,
        /// The endpoint's IPv6 address, if it has one.
        ipv6: Option<Ipv6Addr>,
    },
    /// Many stations may sit behind this port (a VXLAN tunnel to another
    /// host, the gateway, an uplink). Sources are learned, not checked.
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
}

impl DropReason {
    /// Every reason, in a stable order for tables and JSON.
    pub const ALL: [DropReason; 9] = [
        DropReason::Truncated,
        DropReason::Malformed,
        DropReason::InvalidSource,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::UnknownPort,
        DropReason::SameSegmentLoop,
        DropReason::NoDestination,
        DropReason::Oversized,
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
