//! ARP and IPv6 neighbour-solicitation suppression: the switch answers
//! "who has T?" itself when the controller told it where T is, so address
//! resolution for a remote endpoint of an overlay network never has to be
//! flooded to every VTEP (issue 12).
//!
//! The controller knows every endpoint's (segment, addresses, MAC) from the
//! shared store and programs them into a [`NeighborTable`]. The data plane
//! hands each frame from a local endpoint port to [`NeighborTable::answer`]
//! before switching it: [`Answer::Reply`] means a complete reply frame was
//! written into the caller's buffer, to be sent back out of the ingress
//! port (and the request consumed); [`Answer::Pass`] and
//! [`Answer::Malformed`] mean the frame goes on to [`crate::Bridge`] as if
//! this module did not exist, so port security still judges it. Frames
//! from tunnel ports should not be offered: each host answers for its own
//! endpoints' askers.
//!
//! Only what the real target would answer is answered, as the target would
//! answer it, with one difference: the Override flag of an advertisement
//! is clear, as a proxy's is (RFC 4861 section 7.2.8), so an answer from
//! the table never overrides what a neighbour cache learned from the
//! station itself. The rules:
//! - ARP (RFC 826): a request, sent to the broadcast address or to the
//!   target's MAC, whose target protocol address the table knows, gets a
//!   reply from the target's MAC to the asker: sender = (T's MAC, T),
//!   target = the request's sender (an RFC 5227 probe from 0.0.0.0 gets a
//!   reply to 0.0.0.0, as Linux sends, which tells the prober the address
//!   is taken). Replies, gratuitous requests (sender address = target
//!   address) and other operations pass.
//! - IPv6 (RFC 4861 section 7): a valid Neighbor Solicitation (hop limit
//!   255, code 0, correct checksum, target not multicast, well-formed
//!   options, from `::` only to a solicited-node group and without a
//!   source link-layer address option) sent to the target's
//!   solicited-node group (at its `33:33` MAC) or to the target itself (at
//!   the target's MAC), whose target the table knows, gets a Neighbor
//!   Advertisement from the target's MAC and address, hop limit 255, with
//!   the Target Link-Layer Address option and the Solicited flag, to the
//!   asker; a duplicate address probe (from `::`) gets it without the
//!   Solicited flag, at ff02::1 (RFC 4861 section 7.2.4).
//! - Never when the known MAC is the asker's own (its Ethernet source, its
//!   ARP sender or its source link-layer option): that is the owner
//!   checking or defending its own address, and only the network may
//!   answer it.
//! - A broken ARP packet, IPv6 header or header chain, or a solicitation
//!   that breaks a rule above, is [`Answer::Malformed`]: counted, and
//!   switched as usual (the bridge drops it from endpoint ports; a
//!   receiver would discard an invalid solicitation anyway). Neighbour
//!   discovery in a fragment is malformed too (RFC 6980).
//! - 802.1Q: the table holds the segment's untagged addresses, so a frame
//!   tagged with a VLAN id other than 0 passes (a station on that VLAN
//!   answers for itself). A priority-tagged frame (VLAN id 0) belongs to
//!   the untagged network (802.1Q section 9.6; Linux reads it as untagged)
//!   and is answered with the same tag. Stacked tags pass.
//!
//! [`NeighborTable::answer`] never allocates, never panics on frame
//! contents, and counts every frame once in [`NeighborCounters`].

use crate::fdb::folded_multiply;
use crate::mac::MacAddr;
use crate::port::SegmentId;
use crate::wire::ethernet::{HEADER_LEN as ETHERNET_HEADER_LEN, TAGGED_HEADER_LEN};
use crate::wire::icmpv6::LINK_LAYER_OPTION_LEN;
use crate::wire::ipv6::{header_chain, is_solicited_node, multicast_mac, solicited_node};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv6Message,
    Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr, NdiscOptionType, NeighborFlags,
};
use core::cell::Cell;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of an ARP reply frame without a tag (no padding: TAPs and
/// tunnels carry frames without the 60-byte minimum, the NIC pads).
pub const ARP_REPLY_LEN: usize = ETHERNET_HEADER_LEN + crate::wire::arp::PACKET_LEN;
/// Length of a Neighbor Advertisement reply frame without a tag: Ethernet,
/// IPv6, the 24-byte message and its 8-byte target link-layer option.
pub const NA_REPLY_LEN: usize = ETHERNET_HEADER_LEN
    + crate::wire::ipv6::HEADER_LEN
    + crate::wire::icmpv6::field::TARGET.end
    + LINK_LAYER_OPTION_LEN;
/// The longest reply [`NeighborTable::answer`] writes (a priority-tagged
/// advertisement): an `out` buffer this long is always enough.
pub const MAX_REPLY_LEN: usize = NA_REPLY_LEN + (TAGGED_HEADER_LEN - ETHERNET_HEADER_LEN);

/// Most IPv6 extension headers walked to find a solicitation, as the
/// bridge's port security walks (RFC 8200's order has at most seven).
const MAX_EXT_HEADERS: usize = 8;

/// The all-nodes group, where a duplicate address probe's answer goes.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// What [`NeighborTable::answer`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A complete reply frame of this many bytes is at the start of `out`:
    /// send it out of the ingress port and do not switch the request.
    Reply(usize),
    /// Not for the table (not ARP or a solicitation, target unknown, a
    /// reply, a gratuitous ARP, the owner asking about itself, tagged for
    /// another VLAN, ...): switch the frame as usual.
    Pass,
    /// An ARP or IPv6 frame that could not be read, or a solicitation no
    /// receiver would accept: counted, then switched as usual so the
    /// bridge's port security decides.
    Malformed,
}

/// What the table answered, passed and refused to read, since it was made.
/// Serialized with the bridge's other counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborCounters {
    /// ARP requests answered with a reply.
    pub arp_answered: u64,
    /// Neighbor Solicitations answered with an advertisement.
    pub ns_answered: u64,
    /// Frames passed on untouched ([`Answer::Pass`]), answers that did not
    /// fit `out` excluded.
    pub passed: u64,
    /// Frames found malformed ([`Answer::Malformed`]).
    pub malformed: u64,
    /// Requests that would have been answered but `out` was shorter than
    /// the reply (returned as [`Answer::Pass`]): a caller bug, since
    /// [`MAX_REPLY_LEN`] bytes always suffice.
    pub no_room: u64,
}

impl NeighborCounters {
    /// Every frame offered to [`NeighborTable::answer`].
    pub const fn frames(&self) -> u64 {
        self.arp_answered + self.ns_answered + self.passed + self.malformed + self.no_room
    }
}

/// Why the controller's entry was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NeighborError {
    /// The MAC is a group address or zero: no station answers from it.
    #[error("{0} is not a unicast MAC address: program the endpoint's own MAC")]
    NotUnicastMac(MacAddr),
    /// The address is unspecified, multicast, broadcast or IPv4-mapped:
    /// nobody resolves it with ARP or neighbour discovery.
    #[error("{0} is not a station's unicast address: program the endpoint's IPv4 or IPv6 address (IPv4 addresses as IPv4, not IPv4-mapped IPv6)")]
    NotUnicastIp(IpAddr),
}

/// One entry's key: the address as 128 bits with its family, and the
/// segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    segment: u32,
    v6: bool,
    addr: u128,
}

impl Key {
    fn new(segment: SegmentId, ip: IpAddr) -> Key {
        match ip {
            IpAddr::V4(v4) => Key::v4(segment, v4),
            IpAddr::V6(v6) => Key::v6(segment, v6),
        }
    }

    #[inline]
    fn v4(segment: SegmentId, ip: Ipv4Addr) -> Key {
        Key {
            segment: segment.0,
            v6: false,
            addr: u128::from(u32::from(ip)),
        }
    }

    #[inline]
    fn v6(segment: SegmentId, ip: Ipv6Addr) -> Key {
        Key {
            segment: segment.0,
            v6: true,
            addr: u128::from(ip),
        }
    }

    fn ip(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.addr))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.addr as u32))
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    key: Key,
    mac: MacAddr,
}

/// Counters the `&self` answer path can bump: one data-plane thread owns
/// the table, so plain cells, no atomics and no lock.
#[derive(Debug, Default)]
struct Cells {
    arp_answered: Cell<u64>,
    ns_answered: Cell<u64>,
    passed: Cell<u64>,
    malformed: Cell<u64>,
    no_room: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get().wrapping_add(1));
}

/// The (segment, IP address) → MAC entries the controller programs for
/// every endpoint of its overlay networks, and the suppression that
/// answers ARP and neighbour solicitations from them
/// ([`NeighborTable::answer`]).
///
/// A hash table with a seeded folded-multiply hash, as the FDB's: one
/// lookup per request, deterministic for a seed, and a remote asker cannot
/// precompute colliding addresses without the seed. Listings are sorted;
/// nothing iterates the table to answer a frame.
///
/// `Send` but not `Sync`: the counters are plain cells, so the table
/// belongs to the one data-plane thread that answers with it, and the
/// controller's changes reach it between batches as the bridge's do.
#[derive(Debug)]
pub struct NeighborTable {
    entries: HashTable<Entry>,
    seed: [u64; 2],
    counters: Cells,
}

/// Digits of pi, as the FDB uses (nothing up anyone's sleeve).
const PI: [u64; 3] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
];

/// The seeded hash of a key: two folded multiplies over its 128-bit
/// address, family and segment.
#[inline(always)]
fn hash(seed: [u64; 2], key: &Key) -> u64 {
    let lo = key.addr as u64;
    let hi = (key.addr >> 64) as u64;
    let tag = (u64::from(key.segment) << 1) | u64::from(key.v6);
    let h = folded_multiply(lo ^ seed[0], hi ^ seed[1]);
    folded_multiply(h ^ tag, PI[2] ^ seed[0])
}

impl NeighborTable {
    /// An empty table. `hash_seed` should come from the injected RNG in
    /// real mode (as [`crate::BridgeConfig::hash_seed`]); 0 is fine in
    /// tests.
    pub fn new(hash_seed: u64) -> NeighborTable {
        NeighborTable {
            entries: HashTable::new(),
            seed: [hash_seed ^ PI[0], hash_seed.rotate_left(32) ^ PI[1]],
            counters: Cells::default(),
        }
    }

    #[inline(always)]
    fn hash(&self, key: &Key) -> u64 {
        hash(self.seed, key)
    }

    /// Makes room for `additional` more entries, so programming them later
    /// does not allocate.
    pub fn reserve(&mut self, additional: usize) {
        let seed = self.seed;
        self.entries.reserve(additional, |e| hash(seed, &e.key));
    }

    /// Says that `ip` on `segment` is at `mac`; returns the MAC it was at
    /// before, if any (a moved or re-created endpoint). Control path: may
    /// allocate.
    pub fn add(
        &mut self,
        segment: SegmentId,
        ip: IpAddr,
        mac: MacAddr,
    ) -> Result<Option<MacAddr>, NeighborError> {
        if !mac.is_unicast() {
            return Err(NeighborError::NotUnicastMac(mac));
        }
        if !is_station_address(ip) {
            return Err(NeighborError::NotUnicastIp(ip));
        }
        let key = Key::new(segment, ip);
        let hash = self.hash(&key);
        if let Some(entry) = self.entries.find_mut(hash, |e| e.key == key) {
            return Ok(Some(core::mem::replace(&mut entry.mac, mac)));
        }
        let seed = self.seed;
        self.entries
            .insert_unique(hash, Entry { key, mac }, |e| self::hash(seed, &e.key));
        Ok(None)
    }

    /// Forgets `ip` on `segment`; returns the MAC it was at.
    pub fn remove(&mut self, segment: SegmentId, ip: IpAddr) -> Option<MacAddr> {
        let key = Key::new(segment, ip);
        let hash = self.hash(&key);
        let entry = self.entries.find_entry(hash, |e| e.key == key).ok()?;
        Some(entry.remove().0.mac)
    }

    /// Forgets every entry of `segment` (a network removed from this
    /// host); returns how many.
    pub fn remove_segment(&mut self, segment: SegmentId) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| e.key.segment != segment.0);
        before - self.entries.len()
    }

    /// The MAC of `ip` on `segment`, if programmed.
    #[inline]
    pub fn get(&self, segment: SegmentId, ip: IpAddr) -> Option<MacAddr> {
        self.lookup(Key::new(segment, ip))
    }

    #[inline]
    fn lookup(&self, key: Key) -> Option<MacAddr> {
        if self.entries.is_empty() {
            return None;
        }
        self.entries
            .find(self.hash(&key), |e| e.key == key)
            .map(|e| e.mac)
    }

    /// Number of entries, every segment together.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True with no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, sorted by segment, then IPv4 before IPv6, then address:
    /// for inspection and tests.
    pub fn entries(&self) -> Vec<(SegmentId, IpAddr, MacAddr)> {
        let mut all: Vec<(Key, MacAddr)> = self.entries.iter().map(|e| (e.key, e.mac)).collect();
        all.sort_unstable_by_key(|&(k, _)| k);
        all.into_iter()
            .map(|(k, mac)| (SegmentId(k.segment), k.ip(), mac))
            .collect()
    }

    /// What has been answered and passed so far.
    pub fn counters(&self) -> NeighborCounters {
        let c = &self.counters;
        NeighborCounters {
            arp_answered: c.arp_answered.get(),
            ns_answered: c.ns_answered.get(),
            passed: c.passed.get(),
            malformed: c.malformed.get(),
            no_room: c.no_room.get(),
        }
    }

    /// Answers `frame`, which arrived on a port of `segment`, from the
    /// table if it is an ARP request or a Neighbor Solicitation for a known
    /// address (the rules are in the module documentation). A reply is
    /// written into `out`, which needs [`MAX_REPLY_LEN`] bytes at most;
    /// nothing else is written there. Counts the frame once.
    pub fn answer(&self, segment: SegmentId, frame: &[u8], out: &mut [u8]) -> Answer {
        let c = &self.counters;
        match self.decide(segment, frame, out) {
            Outcome::Arp(len) => {
                bump(&c.arp_answered);
                Answer::Reply(len)
            }
            Outcome::Na(len) => {
                bump(&c.ns_answered);
                Answer::Reply(len)
            }
            Outcome::Pass => {
                bump(&c.passed);
                Answer::Pass
            }
            Outcome::Malformed => {
                bump(&c.malformed);
                Answer::Malformed
            }
            Outcome::NoRoom => {
                bump(&c.no_room);
                Answer::Pass
            }
        }
    }

    #[inline]
    fn decide(&self, segment: SegmentId, frame: &[u8], out: &mut [u8]) -> Outcome {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Outcome::Pass;
        };
        let ethertype = eth.inner_ethertype();
        if ethertype != EtherType::ARP && ethertype != EtherType::IPV6 {
            return Outcome::Pass;
        }
        let vlan = eth.vlan_tag();
        if vlan.is_some_and(|tag| tag.vid != 0) || !eth.src_addr().is_unicast() {
            return Outcome::Pass;
        }
        if ethertype == EtherType::ARP {
            self.arp(segment, &eth, out)
        } else {
            self.ndp(segment, &eth, out)
        }
    }

    fn arp(&self, segment: SegmentId, eth: &EthernetFrame<&[u8]>, out: &mut [u8]) -> Outcome {
        let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
            return Outcome::Malformed;
        };
        if arp.operation() != ArpOperation::Request {
            return Outcome::Pass;
        }
        let sha = arp.sender_hardware_addr();
        if !sha.is_unicast() {
            return Outcome::Malformed;
        }
        let (spa, tpa) = (arp.sender_protocol_addr(), arp.target_protocol_addr());
        if spa == tpa {
            return Outcome::Pass;
        }
        let Some(mac) = self.lookup(Key::v4(segment, tpa)) else {
            return Outcome::Pass;
        };
        let dst = eth.dst_addr();
        if mac == eth.src_addr() || mac == sha || !(dst.is_broadcast() || dst == mac) {
            return Outcome::Pass;
        }
        let header = EthernetRepr {
            src_addr: mac,
            dst_addr: eth.src_addr(),
            vlan: eth.vlan_tag(),
            ethertype: EtherType::ARP,
        };
        let len = header.header_len() + crate::wire::arp::PACKET_LEN;
        let Some(out) = out.get_mut(..len) else {
            return Outcome::NoRoom;
        };
        header.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: mac,
            source_protocol_addr: tpa,
            target_hardware_addr: sha,
            target_protocol_addr: spa,
        }
        .emit(&mut ArpPacket::new_unchecked(
            &mut out[header.header_len()..],
        ));
        Outcome::Arp(len)
    }

    fn ndp(&self, segment: SegmentId, eth: &EthernetFrame<&[u8]>, out: &mut [u8]) -> Outcome {
        let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
            return Outcome::Malformed;
        };
        // Nearly all IPv6 traffic: no walk, no lookup.
        if matches!(ip.next_header(), IpProtocol::TCP | IpProtocol::UDP) {
            return Outcome::Pass;
        }
        let Ok(chain) = header_chain(ip.next_header(), ip.payload(), MAX_EXT_HEADERS) else {
            return Outcome::Malformed;
        };
        if chain.protocol != IpProtocol::ICMPV6 || chain.is_later_fragment() {
            return Outcome::Pass;
        }
        if chain.payload.first() != Some(&Icmpv6Message::NEIGHBOR_SOLICIT.0) {
            return Outcome::Pass;
        }
        if chain.fragment.is_some() {
            return Outcome::Malformed;
        }
        let Some(ns) = Solicitation::read(&ip, chain.payload) else {
            return Outcome::Malformed;
        };
        let Some(mac) = self.lookup(Key::v6(segment, ns.target)) else {
            return Outcome::Pass;
        };
        if mac == eth.src_addr() || ns.lladdr == Some(mac) {
            return Outcome::Pass;
        }
        let (ip_dst, eth_dst) = (ip.dst_addr(), eth.dst_addr());
        let to_group = ip_dst == solicited_node(ns.target) && eth_dst == multicast_mac(ip_dst);
        let to_target = ip_dst == ns.target && eth_dst == mac;
        if !(to_group || to_target) {
            return Outcome::Pass;
        }
        let dad = ns.src.is_unspecified();
        let (to_ip, to_mac, flags) = if dad {
            (ALL_NODES, multicast_mac(ALL_NODES), NeighborFlags::NONE)
        } else {
            (ns.src, eth.src_addr(), NeighborFlags::SOLICITED)
        };
        let header = EthernetRepr {
            src_addr: mac,
            dst_addr: to_mac,
            vlan: eth.vlan_tag(),
            ethertype: EtherType::IPV6,
        };
        let message = Icmpv6Repr::NeighborAdvert {
            flags,
            target: ns.target,
            lladdr: Some(mac),
        };
        let ipv6 = Ipv6Repr {
            src_addr: ns.target,
            dst_addr: to_ip,
            next_header: IpProtocol::ICMPV6,
            payload_len: message.buffer_len(),
            hop_limit: 255,
        };
        let at_ip = header.header_len();
        let at_icmp = at_ip + ipv6.buffer_len();
        let len = at_icmp + message.buffer_len();
        let Some(out) = out.get_mut(..len) else {
            return Outcome::NoRoom;
        };
        header.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
        ipv6.emit(&mut Ipv6Packet::new_unchecked(&mut out[at_ip..at_icmp]));
        let mut icmp = Icmpv6Packet::new_unchecked(&mut out[at_icmp..]);
        message.emit(&mut icmp);
        icmp.fill_checksum(ns.target, to_ip);
        Outcome::Na(len)
    }
}

impl Default for NeighborTable {
    /// An empty table with hash seed 0.
    fn default() -> NeighborTable {
        NeighborTable::new(0)
    }
}

/// What [`NeighborTable::decide`] found, before counting.
enum Outcome {
    Arp(usize),
    Na(usize),
    Pass,
    Malformed,
    NoRoom,
}

/// A Neighbor Solicitation that passed the validity checks of RFC 4861
/// section 7.1.1.
struct Solicitation {
    src: Ipv6Addr,
    target: Ipv6Addr,
    lladdr: Option<MacAddr>,
}

impl Solicitation {
    /// Checks the solicitation `message` that `ip` carries; `None` when a
    /// receiver must discard it.
    fn read(ip: &Ipv6Packet<&[u8]>, message: &[u8]) -> Option<Solicitation> {
        let icmp = Icmpv6Packet::new_checked(message).ok()?;
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if ip.hop_limit() != 255 || icmp.msg_code() != 0 || src.is_multicast() {
            return None;
        }
        let target = icmp.target_addr()?;
        if target.is_multicast() || !icmp.verify_checksum(src, dst) {
            return None;
        }
        let mut lladdr = None;
        for option in icmp.options() {
            let option = option.ok()?;
            if option.kind() == NdiscOptionType::SOURCE_LINK_LAYER_ADDR {
                let mac = option.link_layer_addr()?;
                lladdr.get_or_insert(mac);
            }
        }
        if src.is_unspecified() && (!is_solicited_node(&dst) || lladdr.is_some()) {
            return None;
        }
        Some(Solicitation {
            src,
            target,
            lladdr,
        })
    }
}

/// True for an address a station can own and be asked about.
fn is_station_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => {
            !(v6.is_unspecified() || v6.is_multicast() || v6.to_ipv4_mapped().is_some())
        }
    }
}
