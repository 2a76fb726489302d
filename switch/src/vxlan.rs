//! VXLAN (RFC 7348) encapsulation and decapsulation, sans I/O: how one
//! switch segment's frames travel between hosts inside UDP datagrams.
//!
//! A tunnel port of the switch is one (VNI, remote VTEP) pair; the tunnel
//! ports of one network share a [`HorizonGroup`](crate::port::HorizonGroup)
//! so a flood that came out of one tunnel never goes into another (the
//! bridge's rule 6: in a full mesh every VTEP already got its own copy).
//! One UDP socket serves every tunnel of a host, so what arrives on it is
//! sorted here: [`TunnelTable::decapsulate`] checks the VXLAN header of a
//! datagram, finds the port of its (VNI, source VTEP) and hands back the
//! inner frame as a slice of the datagram (no copy, no allocation), or a
//! [`DecapDrop`] reason that the caller counts in [`DecapCounters`].
//!
//! What is accepted (and why it is stricter than the RFC's letter):
//! - the flags byte must be exactly `0x08` (the I flag) and every reserved
//!   bit zero. RFC 7348 says reserved bits are "ignored on receipt"; the
//!   Linux kernel drops such packets instead (unless an extension that
//!   claims the bits is configured), because set bits mean an extension
//!   (GBP's G bit, GPE's next-protocol, ...) whose payload may not be an
//!   Ethernet frame at all. We interoperate with the kernel, so we do as it
//!   does: a packet with other flag bits is [`DecapDrop::BadFlags`], one
//!   with reserved bits set [`DecapDrop::ReservedBits`];
//! - the datagram must hold the 8-byte header and a whole Ethernet header
//!   behind it ([`DecapDrop::Truncated`]);
//! - the VNI must belong to a network of this host
//!   ([`DecapDrop::ForeignVni`]) and the source address must be a VTEP
//!   programmed for that VNI ([`DecapDrop::UnknownVtep`]): static entries
//!   from the controller, no flood-and-learn across the underlay, so a
//!   stranger on the underlay cannot inject frames into a network.
//!
//! Encapsulation is the 8-byte header ([`header`]) written in front of the
//! inner frame, and the outer UDP source port from a hash of the inner
//! flow ([`FlowHash::source_port`], RFC 7348 section 5), so underlay ECMP
//! and the receiver's RSS spread flows while each flow keeps its order.

use crate::fdb::folded_multiply;
use crate::port::PortId;
use crate::wire::ethernet::HEADER_LEN as ETHERNET_HEADER_LEN;
use crate::wire::vxlan::{self, FLAG_I, HEADER_LEN, MAX_VNI};
use crate::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet};
use core::fmt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Bytes VXLAN over IPv4 adds to an inner frame on the wire: outer IPv4
/// (20), UDP (8) and VXLAN (8) headers, and the inner Ethernet header (14)
/// that the inner MTU does not count. An overlay's MTU is the underlay's
/// minus this.
pub const OVERHEAD_V4: u32 = 50;
/// The same over an IPv6 underlay (a 40-byte outer header).
pub const OVERHEAD_V6: u32 = 70;

/// The MTU of an overlay network's ports over an underlay of
/// `underlay_mtu` bytes, so nothing is fragmented (0 if the underlay is
/// too small to carry anything).
pub const fn overlay_mtu(underlay_mtu: u32, ipv6_underlay: bool) -> u32 {
    let overhead = if ipv6_underlay {
        OVERHEAD_V6
    } else {
        OVERHEAD_V4
    };
    underlay_mtu.saturating_sub(overhead)
}

/// The VXLAN header for `vni` (I flag, reserved bits zero), to write in
/// front of an inner frame. Bits of `vni` above 24 are dropped.
pub fn header(vni: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    vxlan::Repr { vni: vni & MAX_VNI }.emit(&mut vxlan::Header::new_unchecked(&mut h[..]));
    h
}

/// Why a received datagram was not delivered to a tunnel port. Every one is
/// counted ([`DecapCounters`]); none is an error of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DecapDrop {
    /// Shorter than the VXLAN header plus an inner Ethernet header.
    Truncated,
    /// The I flag is clear, or another flag bit is set (an extension we do
    /// not speak).
    BadFlags,
    /// A reserved field is not zero.
    ReservedBits,
    /// The VNI belongs to no network of this host.
    ForeignVni,
    /// The VNI is ours but the source is not one of its VTEPs.
    UnknownVtep,
}

impl DecapDrop {
    /// Every reason, in a stable order for tables and JSON.
    pub const ALL: [DecapDrop; 5] = [
        DecapDrop::Truncated,
        DecapDrop::BadFlags,
        DecapDrop::ReservedBits,
        DecapDrop::ForeignVni,
        DecapDrop::UnknownVtep,
    ];

    /// A short stable name (`foreign_vni`), used as a counter key.
    pub const fn name(self) -> &'static str {
        match self {
            DecapDrop::Truncated => "truncated",
            DecapDrop::BadFlags => "bad_flags",
            DecapDrop::ReservedBits => "reserved_bits",
            DecapDrop::ForeignVni => "foreign_vni",
            DecapDrop::UnknownVtep => "unknown_vtep",
        }
    }

    /// Index into [`DecapDrop::ALL`], for counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DecapDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecapDrop::Truncated => "datagram shorter than a VXLAN header and an Ethernet header",
            DecapDrop::BadFlags => "VXLAN flags other than the I flag alone",
            DecapDrop::ReservedBits => "VXLAN reserved bits set",
            DecapDrop::ForeignVni => "VNI of no network on this host",
            DecapDrop::UnknownVtep => "source is not a VTEP of the VNI",
        })
    }
}

/// What a host's tunnel socket received: datagrams delivered and dropped,
/// by [`DecapDrop::index`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecapCounters {
    /// Datagrams whose inner frame went to a tunnel port.
    pub delivered: u64,
    /// Dropped datagrams, by reason.
    pub drops: [u64; DecapDrop::ALL.len()],
}

impl DecapCounters {
    /// Counts one outcome of [`TunnelTable::decapsulate`].
    pub fn count<T>(&mut self, outcome: &Result<T, DecapDrop>) {
        match outcome {
            Ok(_) => self.delivered += 1,
            Err(reason) => self.drops[reason.index()] += 1,
        }
    }

    /// Drops for one reason.
    pub fn drops_for(&self, reason: DecapDrop) -> u64 {
        self.drops[reason.index()]
    }

    /// Every drop.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }
}

/// Checks a VXLAN datagram's header (the UDP payload) and returns its VNI
/// and inner frame, without looking at who sent it. Never panics.
pub fn parse(datagram: &[u8]) -> Result<(u32, &[u8]), DecapDrop> {
    if datagram.len() < HEADER_LEN + ETHERNET_HEADER_LEN {
        return Err(DecapDrop::Truncated);
    }
    let h = vxlan::Header::new_unchecked(datagram);
    if h.flags() != FLAG_I {
        return Err(DecapDrop::BadFlags);
    }
    if !h.reserved_clear() {
        return Err(DecapDrop::ReservedBits);
    }
    Ok((h.vni(), h.payload()))
}

/// A datagram's inner frame and where it enters the switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decapsulated<'a> {
    /// The tunnel port of (VNI, source VTEP).
    pub port: PortId,
    /// The VNI.
    pub vni: u32,
    /// The inner Ethernet frame, a slice of the datagram.
    pub frame: &'a [u8],
}

/// Why [`TunnelTable::insert`] refused a tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    /// VNIs have 24 bits.
    #[error("VNI {0} does not fit VXLAN's 24 bits (0..=16777215)")]
    VniOutOfRange(u32),
    /// Another port already serves this (VNI, VTEP).
    #[error("VNI {vni} to {remote} is already tunnel port {port}: remove it first")]
    Duplicate {
        /// The VNI.
        vni: u32,
        /// The remote VTEP.
        remote: IpAddr,
        /// The port that serves it.
        port: PortId,
    },
}

/// The tunnels of one host: which switch port serves each (VNI, remote
/// VTEP). The controller programs it (static entries, as Docker's peerdb;
/// nothing is learned from the underlay); the receive path reads it for
/// every datagram. Lookups are `BTreeMap` searches: no allocation, no
/// hashing an attacker could aim at.
#[derive(Clone, Debug, Default)]
pub struct TunnelTable {
    tunnels: BTreeMap<(u32, IpAddr), PortId>,
    /// Tunnels per VNI, to tell a foreign VNI from an unknown VTEP.
    vnis: BTreeMap<u32, usize>,
}

impl TunnelTable {
    /// An empty table: every datagram is a foreign VNI.
    pub fn new() -> TunnelTable {
        TunnelTable::default()
    }

    /// Says that datagrams of `vni` from `remote` enter the switch on
    /// `port`. Control path.
    pub fn insert(&mut self, vni: u32, remote: IpAddr, port: PortId) -> Result<(), TunnelError> {
        if vni > MAX_VNI {
            return Err(TunnelError::VniOutOfRange(vni));
        }
        let remote = canonical(remote);
        if let Some(&existing) = self.tunnels.get(&(vni, remote)) {
            return Err(TunnelError::Duplicate {
                vni,
                remote,
                port: existing,
            });
        }
        self.tunnels.insert((vni, remote), port);
        *self.vnis.entry(vni).or_insert(0) += 1;
        Ok(())
    }

    /// Forgets the tunnel of (`vni`, `remote`) and returns its port.
    pub fn remove(&mut self, vni: u32, remote: IpAddr) -> Option<PortId> {
        let port = self.tunnels.remove(&(vni, canonical(remote)))?;
        if let Some(n) = self.vnis.get_mut(&vni) {
            *n -= 1;
            if *n == 0 {
                self.vnis.remove(&vni);
            }
        }
        Some(port)
    }

    /// Forgets every tunnel served by `port` (a port the switch removed);
    /// returns how many.
    pub fn remove_port(&mut self, port: PortId) -> usize {
        let keys: Vec<(u32, IpAddr)> = self
            .tunnels
            .iter()
            .filter(|(_, &p)| p == port)
            .map(|(&k, _)| k)
            .collect();
        for &(vni, remote) in &keys {
            self.remove(vni, remote);
        }
        keys.len()
    }

    /// The port of (`vni`, `remote`), if any.
    pub fn port(&self, vni: u32, remote: IpAddr) -> Option<PortId> {
        self.tunnels.get(&(vni, canonical(remote))).copied()
    }

    /// Every tunnel, sorted by (VNI, VTEP).
    pub fn tunnels(&self) -> impl Iterator<Item = (u32, IpAddr, PortId)> + '_ {
        self.tunnels.iter().map(|(&(v, r), &p)| (v, r, p))
    }

    /// Number of tunnels.
    pub fn len(&self) -> usize {
        self.tunnels.len()
    }

    /// True with no tunnel.
    pub fn is_empty(&self) -> bool {
        self.tunnels.is_empty()
    }

    /// Where the VNI `vni` from `src` enters the switch, or why it does not.
    pub fn demux(&self, vni: u32, src: IpAddr) -> Result<PortId, DecapDrop> {
        match self.tunnels.get(&(vni, canonical(src))) {
            Some(&port) => Ok(port),
            None if self.vnis.contains_key(&vni) => Err(DecapDrop::UnknownVtep),
            None => Err(DecapDrop::ForeignVni),
        }
    }

    /// Checks a datagram that `src` sent to the VXLAN port ([`parse`]) and
    /// finds its tunnel port ([`TunnelTable::demux`]). Never panics, never
    /// allocates.
    pub fn decapsulate<'a>(
        &self,
        src: IpAddr,
        datagram: &'a [u8],
    ) -> Result<Decapsulated<'a>, DecapDrop> {
        let (vni, frame) = parse(datagram)?;
        let port = self.demux(vni, src)?;
        Ok(Decapsulated { port, vni, frame })
    }
}

/// An IPv4-mapped IPv6 address (what a dual-stack socket reports for an
/// IPv4 peer) as the IPv4 address it is, so both spellings find one tunnel.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => addr,
        },
        v4 => v4,
    }
}

/// The range outer UDP source ports are picked from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// Lowest port.
    pub min: u16,
    /// Highest port (inclusive).
    pub max: u16,
}

impl PortRange {
    /// RFC 7348 section 5's recommendation: the dynamic/private range.
    pub const RFC7348: PortRange = PortRange {
        min: 49152,
        max: 65535,
    };
    /// What the Linux kernel's vxlan device uses by default (its local
    /// port range).
    pub const LINUX: PortRange = PortRange {
        min: 32768,
        max: 60999,
    };
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::RFC7348
    }
}

/// Picks a tunnel's outer UDP source port from a hash of the inner flow
/// (RFC 7348 section 5): the inner MACs and EtherType, and for IPv4/IPv6
/// the addresses, the protocol and (TCP/UDP, not in a later fragment) the
/// ports, or the flow label. Frames of one flow always get the same port,
/// so the underlay keeps them in order; different flows spread over ECMP
/// paths and the receiver's queues. Keyed by a seed from the injected RNG,
/// so the simulator is deterministic and remote hosts cannot aim flows at
/// one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowHash {
    seed: u64,
    range: PortRange,
}

impl FlowHash {
    /// A hasher over `range` keyed by `seed`. A range with `min > max` is
    /// taken in the other order.
    pub fn new(seed: u64, range: PortRange) -> FlowHash {
        let range = if range.min <= range.max {
            range
        } else {
            PortRange {
                min: range.max,
                max: range.min,
            }
        };
        FlowHash { seed, range }
    }

    /// The range ports come from.
    pub fn range(&self) -> PortRange {
        self.range
    }

    /// The hash of the inner frame's flow (any bytes: a frame too short to
    /// parse hashes what it has).
    pub fn hash(&self, frame: &[u8]) -> u64 {
        let mut h = folded_multiply(self.seed ^ 0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344);
        let mut mix = |v: u64| h = folded_multiply(h ^ v, 0xa409_3822_299f_31d0);
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            for chunk in frame.chunks(8) {
                let mut b = [0u8; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                mix(u64::from_le_bytes(b));
            }
            return h;
        };
        mix(eth.dst_addr().to_u64() ^ (eth.src_addr().to_u64() << 16));
        let ethertype = eth.inner_ethertype();
        mix(u64::from(ethertype.0));
        let payload = eth.payload();
        match ethertype {
            EtherType::IPV4 => {
                if let Ok(ip) = Ipv4Packet::new_checked(payload) {
                    mix(u64::from(u32::from(ip.src_addr())) << 32
                        | u64::from(u32::from(ip.dst_addr())));
                    let proto = ip.next_header();
                    mix(u64::from(proto.0));
                    if ip.frag_offset() == 0 {
                        mix(ports(proto, ip.payload()));
                    }
                }
            }
            EtherType::IPV6 => {
                if let Ok(ip) = Ipv6Packet::new_checked(payload) {
                    let (s, d) = (u128::from(ip.src_addr()), u128::from(ip.dst_addr()));
                    mix(s as u64);
                    mix((s >> 64) as u64);
                    mix(d as u64);
                    mix((d >> 64) as u64);
                    let proto = ip.next_header();
                    mix(u64::from(proto.0) | u64::from(ip.flow_label()) << 8);
                    mix(ports(proto, ip.payload()));
                }
            }
            _ => {}
        }
        h
    }

    /// The outer UDP source port for the inner frame: always within the
    /// range.
    pub fn source_port(&self, frame: &[u8]) -> u16 {
        let span = u64::from(self.range.max - self.range.min) + 1;
        // The high half is the better mixed one.
        let h = self.hash(frame) >> 32;
        self.range.min + (h % span) as u16
    }
}

/// TCP or UDP ports of a transport header, or 0.
fn ports(proto: IpProtocol, l4: &[u8]) -> u64 {
    match (proto, l4) {
        (IpProtocol::TCP | IpProtocol::UDP, [a, b, c, d, ..]) => {
            u64::from(u32::from_be_bytes([*a, *b, *c, *d]))
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn datagram(vni: u32, inner: &[u8]) -> Vec<u8> {
        let mut d = header(vni).to_vec();
        d.extend_from_slice(inner);
        d
    }

    fn inner() -> Vec<u8> {
        let mut f = vec![0xffu8; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
        f.extend_from_slice(&[0u8; 46]);
        f
    }

    fn table() -> TunnelTable {
        let mut t = TunnelTable::new();
        t.insert(42, REMOTE, PortId(7)).unwrap();
        t
    }

    #[test]
    fn a_datagram_from_a_known_vtep_delivers_its_inner_frame() {
        let d = datagram(42, &inner());
        let got = table().decapsulate(REMOTE, &d).unwrap();
        assert_eq!(
            got,
            Decapsulated {
                port: PortId(7),
                vni: 42,
                frame: &inner()[..]
            }
        );
    }

    #[test]
    fn an_ipv4_mapped_source_finds_the_ipv4_tunnel() {
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 2).to_ipv6_mapped());
        let d = datagram(42, &inner());
        assert_eq!(table().decapsulate(mapped, &d).unwrap().port, PortId(7));
    }

    #[test]
    fn a_foreign_vni_and_an_unknown_vtep_are_told_apart() {
        let t = table();
        let d = datagram(43, &inner());
        assert_eq!(t.decapsulate(REMOTE, &d), Err(DecapDrop::ForeignVni));
        let d = datagram(42, &inner());
        let stranger = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99));
        assert_eq!(t.decapsulate(stranger, &d), Err(DecapDrop::UnknownVtep));
    }

    #[test]
    fn flags_other_than_the_i_flag_alone_are_refused() {
        for flags in [0x00u8, 0x88, 0x0c, 0x80, 0x09] {
            let mut d = datagram(42, &inner());
            d[0] = flags;
            assert_eq!(
                table().decapsulate(REMOTE, &d),
                Err(DecapDrop::BadFlags),
                "{flags:#x}"
            );
        }
    }

    #[test]
    fn reserved_bits_are_refused_as_the_kernel_does() {
        for at in [1usize, 2, 3, 7] {
            let mut d = datagram(42, &inner());
            d[at] = 1;
            assert_eq!(
                table().decapsulate(REMOTE, &d),
                Err(DecapDrop::ReservedBits),
                "byte {at}"
            );
        }
    }

    #[test]
    fn a_datagram_without_a_whole_inner_ethernet_header_is_truncated() {
        let d = datagram(42, &inner()[..13]);
        assert_eq!(table().decapsulate(REMOTE, &d), Err(DecapDrop::Truncated));
        assert_eq!(parse(&[]), Err(DecapDrop::Truncated));
        assert!(parse(&datagram(42, &inner()[..14])).is_ok());
    }

    #[test]
    fn counters_count_each_outcome_under_its_reason() {
        let t = table();
        let mut c = DecapCounters::default();
        c.count(&t.decapsulate(REMOTE, &datagram(42, &inner())));
        c.count(&t.decapsulate(REMOTE, &datagram(1, &inner())));
        c.count(&t.decapsulate(REMOTE, &[0u8; 3]));
        assert_eq!(c.delivered, 1);
        assert_eq!(c.drops_for(DecapDrop::ForeignVni), 1);
        assert_eq!(c.drops_for(DecapDrop::Truncated), 1);
        assert_eq!(c.dropped(), 2);
    }

    #[test]
    fn the_table_refuses_duplicates_and_wide_vnis_and_forgets_removed_ports() {
        let mut t = table();
        assert_eq!(
            t.insert(42, REMOTE, PortId(8)),
            Err(TunnelError::Duplicate {
                vni: 42,
                remote: REMOTE,
                port: PortId(7)
            })
        );
        assert_eq!(
            t.insert(MAX_VNI + 1, REMOTE, PortId(8)),
            Err(TunnelError::VniOutOfRange(MAX_VNI + 1))
        );
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3));
        t.insert(42, other, PortId(9)).unwrap();
        t.insert(5, other, PortId(9)).unwrap();
        assert_eq!(t.remove_port(PortId(9)), 2);
        assert_eq!(t.demux(5, other), Err(DecapDrop::ForeignVni));
        assert_eq!(t.remove(42, REMOTE), Some(PortId(7)));
        assert_eq!(t.demux(42, REMOTE), Err(DecapDrop::ForeignVni));
        assert!(t.is_empty());
    }

    #[test]
    fn overlay_mtu_leaves_room_for_the_encapsulation() {
        assert_eq!(overlay_mtu(1500, false), 1450);
        assert_eq!(overlay_mtu(1500, true), 1430);
        assert_eq!(overlay_mtu(40, false), 0);
    }

    fn tcp_frame(sport: u16, dport: u16) -> Vec<u8> {
        let mut f = inner();
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f.truncate(14);
        let mut ip = [0u8; 40];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        ip[20..22].copy_from_slice(&sport.to_be_bytes());
        ip[22..24].copy_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn flows_differing_only_in_ports_get_different_source_ports() {
        let h = FlowHash::new(1, PortRange::RFC7348);
        let ports: std::collections::BTreeSet<u16> = (0..64)
            .map(|i| h.source_port(&tcp_frame(40000 + i, 80)))
            .collect();
        assert!(ports.len() > 48, "{} distinct of 64", ports.len());
        assert_eq!(
            h.source_port(&tcp_frame(1, 2)),
            h.source_port(&tcp_frame(1, 2))
        );
    }

    #[test]
    fn a_reversed_range_is_taken_in_order() {
        let h = FlowHash::new(0, PortRange { min: 100, max: 10 });
        assert_eq!(h.range(), PortRange { min: 10, max: 100 });
    }

    proptest! {
        #[test]
        fn decapsulation_never_panics(src in any::<[u8; 4]>(), data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut c = DecapCounters::default();
            let out = table().decapsulate(IpAddr::V4(Ipv4Addr::from(src)), &data);
            if let Ok(d) = out {
                prop_assert!(d.frame.len() + HEADER_LEN == data.len());
                prop_assert_eq!(d.vni, 42);
            }
            c.count(&out);
            prop_assert_eq!(c.delivered + c.dropped(), 1);
        }

        #[test]
        fn what_is_encapsulated_decapsulates_to_the_same_frame(vni in 0u32..=MAX_VNI, frame in proptest::collection::vec(any::<u8>(), 14..300)) {
            let mut t = TunnelTable::new();
            t.insert(vni, REMOTE, PortId(3)).unwrap();
            let d = datagram(vni, &frame);
            let got = t.decapsulate(REMOTE, &d).unwrap();
            prop_assert_eq!(got.frame, &frame[..]);
            prop_assert_eq!(got.vni, vni);
            prop_assert_eq!(got.port, PortId(3));
        }

        #[test]
        fn source_ports_stay_in_the_range(seed in any::<u64>(), min in any::<u16>(), max in any::<u16>(), frame in proptest::collection::vec(any::<u8>(), 0..120)) {
            let h = FlowHash::new(seed, PortRange { min, max });
            let r = h.range();
            let p = h.source_port(&frame);
            prop_assert!(r.min <= p && p <= r.max);
        }
    }
}
