//! The learning switch: a sans-I/O state machine that takes
//! `(now, ingress port, frame bytes)` and answers where the frame goes
//! (DESIGN.md seam 1).
//!
//! It never reads a clock, never allocates on the forwarding path in steady
//! state and never panics on frame contents. The caller owns the I/O: it
//! hands a frame to [`Bridge::process`] and sends the same bytes out of the
//! ports listed in the [`Egress`] it passed in.
//!
//! The rules, in the order they are applied:
//! 1. the ingress port must exist (`UnknownPort`), the frame must fit the
//!    bridge's limit (`Oversized`) and hold an Ethernet header
//!    (`Truncated`);
//! 2. the source MAC must be unicast (`InvalidSource`);
//! 3. endpoint ports enforce port security on the (inner, if tagged) header:
//!    source MAC, IPv4 source, ARP sender, IPv6 source, and ICMPv6 neighbour
//!    discovery, the IPv6 counterpart of ARP (see `check_ndp`) (`SpoofedMac`,
//!    `SpoofedIp`, or `Truncated`/`Malformed` when the header they need is
//!    broken);
//! 4. only then is the source learned, so a refused frame cannot poison the
//!    table;
//! 5. group destinations and unknown unicast flood the ingress port's
//!    segment except the ingress port (`NoDestination` when that leaves
//!    nobody); known unicast goes to its one port (`SameSegmentLoop` when
//!    that is the ingress port). Nothing ever crosses segments.
//!
//! A port belongs to exactly one segment; an 802.1Q tag inside a frame does
//! not pick a segment (trunk ports pass tagged frames through unchanged,
//! endpoint ports are checked on the header inside the tag).

use crate::fdb::{folded_multiply, Fdb, FdbEntry, Learned};
use crate::mac::MacAddr;
use crate::port::{DropReason, PortBinding, PortConfig, PortCounters, PortId, SegmentId};
use crate::time::Instant;
use crate::wire::ipv6::{is_link_local, upper_layer};
use crate::wire::{
    eui64_link_local, ArpPacket, EtherType, EthernetFrame, Icmpv6Message, Icmpv6Packet, IpProtocol,
    Ipv4Packet, Ipv6Packet, NdiscOptionType, WireError,
};
use core::fmt;
use core::time::Duration;
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Tunables of a bridge, fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeConfig {
    /// How long a learned station is trusted without hearing from it
    /// (default 300 s, as Linux bridges and Docker use). An entry whose age
    /// reaches this is unknown.
    pub ageing: Duration,
    /// Most stations one segment may learn (default 8192): beyond it the
    /// segment floods instead of growing the table, so a MAC-flooding
    /// station cannot exhaust memory.
    pub fdb_capacity_per_segment: usize,
    /// Longest frame accepted, in bytes without FCS (default 65 550: a
    /// 64 KiB GSO frame plus an Ethernet header and one 802.1Q tag).
    pub max_frame_len: usize,
    /// Seed of the FDB hash. Real mode should pass a value from the
    /// injected RNG so remote stations cannot precompute MACs that collide;
    /// the simulator passes its seeded value; `0` is fine for tests.
    pub hash_seed: u64,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            ageing: Duration::from_secs(300),
            fdb_capacity_per_segment: 8192,
            max_frame_len: 65_550,
            hash_seed: 0,
        }
    }
}

/// Bridge-wide counters: how learning and forwarding went overall.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeStats {
    /// Frames handed to [`Bridge::process`].
    pub frames: u64,
    /// Frames sent to exactly one port.
    pub unicast: u64,
    /// Frames flooded to a segment.
    pub flooded: u64,
    /// Frames dropped, for any reason (per-port counters have the split).
    pub dropped: u64,
    /// Frames that named a port the bridge does not have (counted here
    /// only, since there is no port to count them on).
    pub unknown_port: u64,
    /// Stations learned (new, or known again after ageing out).
    pub learned: u64,
    /// Frames that confirmed a station on the port it was known on.
    pub refreshed: u64,
    /// Stations that showed up on a different port of their segment.
    pub moved: u64,
    /// Stations not learned because their segment's table was full.
    pub refused_full: u64,
    /// Entries removed by [`Bridge::expire`].
    pub aged_out: u64,
    /// Entries removed because their port was removed.
    pub purged: u64,
}

/// Where a frame must go: a reusable list, so [`Bridge::process`] never
/// allocates. Get one from [`Bridge::egress`] (sized for the current
/// ports) and pass the same one to every call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Egress {
    ports: Vec<PortId>,
}

impl Egress {
    /// An empty list. It grows on first use if a flood needs more room;
    /// prefer [`Bridge::egress`] or [`Egress::with_capacity`].
    pub fn new() -> Self {
        Egress { ports: Vec::new() }
    }

    /// A list with room for `ports` destinations, so floods to that many
    /// never allocate.
    pub fn with_capacity(ports: usize) -> Self {
        Egress {
            ports: Vec::with_capacity(ports),
        }
    }

    /// The ports the last processed frame must be sent out of, in
    /// ascending id order (empty when it was dropped).
    pub fn ports(&self) -> &[PortId] {
        &self.ports
    }

    /// How many ports the last frame goes to.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// True when the last frame goes nowhere.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// What the bridge decided about one frame: what it learned from the
/// source, and what it does with the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The effect on the forwarding database.
    pub learn: LearnOutcome,
    /// Where the frame goes.
    pub action: Action,
}

impl Decision {
    const fn dropped(reason: DropReason) -> Decision {
        Decision {
            learn: LearnOutcome::NotLearned,
            action: Action::Drop(reason),
        }
    }

    /// True when the frame goes out of at least one port.
    pub const fn is_forwarded(&self) -> bool {
        !matches!(self.action, Action::Drop(_))
    }
}

/// What learning the source address did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnOutcome {
    /// A station the segment did not know (or had forgotten) is now known
    /// on the ingress port.
    Learned,
    /// The station was already known on the ingress port; its timer
    /// restarted.
    Refreshed,
    /// The station was known on another port and now lives on the ingress
    /// port.
    Moved {
        /// The port it was known on before.
        from: PortId,
    },
    /// The segment's table is full: the station was not recorded (frames
    /// to it will be flooded).
    RefusedFull,
    /// The frame was dropped before learning (bad or spoofed source).
    NotLearned,
}

/// What happens to the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Sent out of exactly this port.
    Unicast(PortId),
    /// Sent out of every other port of the segment.
    Flood(FloodReason),
    /// Not sent anywhere; counted on the ingress port under this reason.
    Drop(DropReason),
}

/// Why a frame was flooded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloodReason {
    /// Destination ff:ff:ff:ff:ff:ff.
    Broadcast,
    /// Any other group address (IPv4/IPv6 multicast, STP, LLDP...).
    Multicast,
    /// A unicast destination the segment has not learned (or forgot).
    UnknownUnicast,
}

impl fmt::Display for FloodReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FloodReason::Broadcast => "destination is the broadcast address",
            FloodReason::Multicast => "destination is a multicast address",
            FloodReason::UnknownUnicast => "destination is not known in the segment",
        })
    }
}

impl fmt::Display for LearnOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LearnOutcome::Learned => f.write_str("source learned on the ingress port"),
            LearnOutcome::Refreshed => f.write_str("source already known on the ingress port"),
            LearnOutcome::Moved { from } => {
                write!(f, "source moved from {from} to the ingress port")
            }
            LearnOutcome::RefusedFull => {
                f.write_str("source not learned: the segment's table is full")
            }
            LearnOutcome::NotLearned => f.write_str("source not learned"),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Unicast(p) => write!(f, "unicast to {p}"),
            Action::Flood(reason) => write!(f, "flooded to the segment ({reason})"),
            Action::Drop(reason) => write!(f, "dropped ({reason})"),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.learn, self.action)
    }
}

/// Port security state of a port, flattened for the hot path.
#[derive(Clone, Copy, Debug)]
enum Guard {
    Trunk,
    Endpoint {
        mac: MacAddr,
        ipv4: Option<Ipv4Addr>,
        ipv6: Option<Ipv6Addr>,
    },
}

impl Guard {
    fn of(binding: &PortBinding) -> Guard {
        match *binding {
            PortBinding::Trunk => Guard::Trunk,
            PortBinding::Endpoint { mac, ipv4, ipv6 } => Guard::Endpoint { mac, ipv4, ipv6 },
        }
    }
}

/// A live port, in its dense slot.
#[derive(Debug)]
struct PortSlot {
    id: PortId,
    segment: SegmentId,
    segment_slot: u32,
    guard: Guard,
    counters: PortCounters,
    config: PortConfig,
}

/// A live segment: its member ports in ascending id order, as floods list
/// them.
#[derive(Debug)]
struct Segment {
    members: Vec<(PortId, u32)>,
}

/// Hash of a port or segment id for the small index tables. Ids are ours
/// (ports) or the controller's (segments), not chosen by stations, so a
/// fixed key is fine here.
#[inline(always)]
fn small_hash(id: u32) -> u64 {
    folded_multiply(u64::from(id) ^ 0x9e37_79b9_7f4a_7c15, 0x2d35_8dcc_aa6c_78a5)
}

/// Rows the FDB reserves per added port, so the usual one or few stations
/// behind a port are learned without allocating on the forwarding path.
const FDB_RESERVE_PER_PORT: usize = 4;

/// A learning Ethernet switch with isolated segments and port security.
/// See the module documentation for the rules.
#[derive(Debug)]
pub struct Bridge {
    config: BridgeConfig,
    next_id: u32,
    slots: Vec<Option<PortSlot>>,
    free_slots: Vec<u32>,
    /// PortId -> slot, for the hot path.
    index: HashTable<(u32, u32)>,
    /// (PortId, slot) in ascending id order, for listings.
    order: Vec<(PortId, u32)>,
    segments: Vec<Option<Segment>>,
    free_segments: Vec<u32>,
    /// SegmentId -> segment slot.
    segment_index: HashTable<(u32, u32)>,
    fdb: Fdb,
    stats: BridgeStats,
}

impl Bridge {
    /// An empty bridge.
    pub fn new(config: BridgeConfig) -> Bridge {
        let ageing_nanos = u64::try_from(config.ageing.as_nanos()).unwrap_or(u64::MAX);
        let fdb = Fdb::new(
            ageing_nanos,
            config.fdb_capacity_per_segment,
            config.hash_seed,
        );
        Bridge {
            config,
            next_id: 1,
            slots: Vec::new(),
            free_slots: Vec::new(),
            index: HashTable::new(),
            order: Vec::new(),
            segments: Vec::new(),
            free_segments: Vec::new(),
            segment_index: HashTable::new(),
            fdb,
            stats: BridgeStats::default(),
        }
    }

    /// The configuration the bridge was made with.
    pub fn config(&self) -> &BridgeConfig {
        &self.config
    }

    #[inline(always)]
    fn slot_of(&self, id: PortId) -> Option<u32> {
        self.index
            .find(small_hash(id.0), |e| e.0 == id.0)
            .map(|e| e.1)
    }

    fn segment_slot_of(&self, segment: SegmentId) -> Option<u32> {
        self.segment_index
            .find(small_hash(segment.0), |e| e.0 == segment.0)
            .map(|e| e.1)
    }

    #[inline(always)]
    fn port_at(&self, slot: u32) -> Option<&PortSlot> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// Attaches a port and returns its id. Ids count up from 1 and are
    /// never reused, so a stale id can only miss.
    ///
    /// # Panics
    /// After 2^32 - 1 ports have been added over the bridge's life, since
    /// an id would have to be reused.
    pub fn add_port(&mut self, cfg: PortConfig) -> PortId {
        let id = PortId(self.next_id);
        self.next_id = self
            .next_id
            .checked_add(1)
            .expect("port ids exhausted: 2^32 - 1 ports added");

        let segment_slot = match self.segment_slot_of(cfg.segment) {
            Some(s) => s,
            None => {
                let segment = Segment {
                    members: Vec::new(),
                };
                let s = match self.free_segments.pop() {
                    Some(s) => {
                        self.segments[s as usize] = Some(segment);
                        s
                    }
                    None => {
                        self.segments.push(Some(segment));
                        (self.segments.len() - 1) as u32
                    }
                };
                let h = small_hash(cfg.segment.0);
                self.segment_index
                    .insert_unique(h, (cfg.segment.0, s), |e| small_hash(e.0));
                s
            }
        };

        let port = PortSlot {
            id,
            segment: cfg.segment,
            segment_slot,
            guard: Guard::of(&cfg.binding),
            counters: PortCounters::default(),
            config: cfg,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(port);
                s
            }
            None => {
                self.slots.push(Some(port));
                (self.slots.len() - 1) as u32
            }
        };
        if let Some(Some(segment)) = self.segments.get_mut(segment_slot as usize) {
            // Ids only grow, so pushing keeps members sorted.
            segment.members.push((id, slot));
        }
        let h = small_hash(id.0);
        self.index
            .insert_unique(h, (id.0, slot), |e| small_hash(e.0));
        self.order.push((id, slot));
        self.fdb.reserve(FDB_RESERVE_PER_PORT);
        id
    }

    /// Detaches a port, forgetting every station learned on it, and gives
    /// its configuration back. `None` if there is no such port.
    pub fn remove_port(&mut self, id: PortId) -> Option<PortConfig> {
        let slot = self.slot_of(id)?;
        let h = small_hash(id.0);
        if let Ok(entry) = self.index.find_entry(h, |e| e.0 == id.0) {
            entry.remove();
        }
        if let Ok(pos) = self.order.binary_search_by_key(&id, |e| e.0) {
            self.order.remove(pos);
        }
        let port = self.slots.get_mut(slot as usize)?.take()?;
        self.free_slots.push(slot);
        self.stats.purged += self.fdb.purge_slot(slot) as u64;

        let segment_slot = port.segment_slot as usize;
        let now_empty = match self.segments.get_mut(segment_slot) {
            Some(Some(segment)) => {
                segment.members.retain(|m| m.0 != id);
                segment.members.is_empty()
            }
            _ => false,
        };
        if now_empty {
            self.segments[segment_slot] = None;
            self.free_segments.push(port.segment_slot);
            let h = small_hash(port.segment.0);
            if let Ok(entry) = self.segment_index.find_entry(h, |e| e.0 == port.segment.0) {
                entry.remove();
            }
        }
        Some(port.config)
    }

    /// A port's configuration.
    pub fn port(&self, id: PortId) -> Option<&PortConfig> {
        self.port_at(self.slot_of(id)?).map(|p| &p.config)
    }

    /// Every port, in ascending id order.
    pub fn ports(&self) -> impl Iterator<Item = (PortId, &PortConfig)> + '_ {
        self.order
            .iter()
            .filter_map(move |&(id, slot)| self.port_at(slot).map(|p| (id, &p.config)))
    }

    /// The ports of one segment, in ascending id order.
    pub fn segment_ports(&self, segment: SegmentId) -> impl Iterator<Item = PortId> + '_ {
        let members = self
            .segment_slot_of(segment)
            .and_then(|s| self.segments.get(s as usize))
            .and_then(Option::as_ref)
            .map_or(&[][..], |s| &s.members[..]);
        members.iter().map(|m| m.0)
    }

    /// A port's traffic counters.
    pub fn counters(&self, id: PortId) -> Option<&PortCounters> {
        self.port_at(self.slot_of(id)?).map(|p| &p.counters)
    }

    /// Bridge-wide counters.
    pub fn stats(&self) -> &BridgeStats {
        &self.stats
    }

    /// An [`Egress`] with room for every current port, so no flood on this
    /// bridge needs to grow it until more ports are added.
    pub fn egress(&self) -> Egress {
        Egress::with_capacity(self.order.len())
    }

    /// Decides what to do with `frame`, received on `ingress` at `now`:
    /// learns its source, fills `out` with the ports it must be sent out of
    /// (cleared first), updates counters and returns the decision.
    ///
    /// Never panics, whatever the bytes. Does not allocate unless a
    /// flood needs more room than `out` has, or a new station makes the
    /// FDB table grow (amortised doubling, bounded by the capacity rule).
    pub fn process(
        &mut self,
        now: Instant,
        ingress: PortId,
        frame: &[u8],
        out: &mut Egress,
    ) -> Decision {
        out.ports.clear();
        self.stats.frames += 1;
        let Some(slot) = self.slot_of(ingress) else {
            self.stats.unknown_port += 1;
            self.stats.dropped += 1;
            return Decision::dropped(DropReason::UnknownPort);
        };
        let decision = self.forward(now.as_nanos(), slot, frame, out);
        match decision.action {
            Action::Drop(reason) => {
                self.stats.dropped += 1;
                if let Some(Some(port)) = self.slots.get_mut(slot as usize) {
                    port.counters.drops[reason.index()] += 1;
                }
            }
            Action::Unicast(_) => self.stats.unicast += 1,
            Action::Flood(_) => self.stats.flooded += 1,
        }
        decision
    }

    /// The body of [`Bridge::process`] once the ingress slot is known.
    #[inline(always)]
    fn forward(&mut self, now: u64, slot: u32, frame: &[u8], out: &mut Egress) -> Decision {
        let len = frame.len();
        let Some(Some(port)) = self.slots.get_mut(slot as usize) else {
            return Decision::dropped(DropReason::UnknownPort);
        };
        port.counters.rx_frames += 1;
        port.counters.rx_bytes += len as u64;
        if len > self.config.max_frame_len {
            return Decision::dropped(DropReason::Oversized);
        }
        let eth = match EthernetFrame::new_checked(frame) {
            Ok(eth) => eth,
            Err(e) => return Decision::dropped(e.into()),
        };
        let src = eth.src_addr();
        if !src.is_unicast() {
            return Decision::dropped(DropReason::InvalidSource);
        }
        if let Guard::Endpoint { mac, ipv4, ipv6 } = port.guard {
            if let Err(reason) = check_endpoint(&eth, mac, ipv4, ipv6) {
                return Decision::dropped(reason);
            }
        }
        let segment = port.segment;
        let segment_slot = port.segment_slot;

        let learn = match self.fdb.learn(segment.0, src.to_u64(), slot, now) {
            Learned::Refreshed => {
                self.stats.refreshed += 1;
                LearnOutcome::Refreshed
            }
            Learned::New => {
                self.stats.learned += 1;
                LearnOutcome::Learned
            }
            Learned::Moved { from } => {
                self.stats.moved += 1;
                // The FDB only holds slots of live ports (removal purges), so
                // the id is always found; PortId(0), which is never issued,
                // stands in rather than a panic.
                let from = self.port_at(from).map_or(PortId(0), |p| p.id);
                LearnOutcome::Moved { from }
            }
            Learned::RefusedFull => {
                self.stats.refused_full += 1;
                LearnOutcome::RefusedFull
            }
        };

        let dst = eth.dst_addr();
        let reason = if dst.is_multicast() {
            if dst.is_broadcast() {
                FloodReason::Broadcast
            } else {
                FloodReason::Multicast
            }
        } else {
            match self.fdb.lookup(segment.0, dst.to_u64(), now) {
                Some(to) if to == slot => {
                    return Decision {
                        learn,
                        action: Action::Drop(DropReason::SameSegmentLoop),
                    };
                }
                Some(to) => {
                    if let Some(Some(egress)) = self.slots.get_mut(to as usize) {
                        egress.counters.tx_frames += 1;
                        egress.counters.tx_bytes += len as u64;
                        out.ports.push(egress.id);
                        return Decision {
                            learn,
                            action: Action::Unicast(egress.id),
                        };
                    }
                    FloodReason::UnknownUnicast
                }
                None => FloodReason::UnknownUnicast,
            }
        };
        self.flood(segment_slot, slot, len, out);
        if out.ports.is_empty() {
            return Decision {
                learn,
                action: Action::Drop(DropReason::NoDestination),
            };
        }
        Decision {
            learn,
            action: Action::Flood(reason),
        }
    }

    /// Lists every member of the segment but the ingress port in `out` and
    /// counts the transmissions.
    #[inline]
    fn flood(&mut self, segment_slot: u32, ingress: u32, len: usize, out: &mut Egress) {
        let Some(Some(segment)) = self.segments.get(segment_slot as usize) else {
            return;
        };
        out.ports.reserve(segment.members.len().saturating_sub(1));
        for &(id, member) in &segment.members {
            if member == ingress {
                continue;
            }
            if let Some(Some(port)) = self.slots.get_mut(member as usize) {
                port.counters.tx_frames += 1;
                port.counters.tx_bytes += len as u64;
                out.ports.push(id);
            }
        }
    }

    /// Removes every FDB entry whose age has reached the ageing time and
    /// returns how many went. Lookups already ignore such entries; this
    /// frees their room (including room under the per-segment capacity),
    /// so call it every few seconds.
    pub fn expire(&mut self, now: Instant) -> usize {
        let removed = self.fdb.expire(now.as_nanos());
        self.stats.aged_out += removed as u64;
        removed
    }

    /// Every stored FDB entry (aged ones included until swept), sorted by
    /// (segment, MAC), for display.
    pub fn fdb_entries(&self) -> Vec<FdbEntry> {
        let mut entries: Vec<FdbEntry> = self
            .fdb
            .rows()
            .filter_map(|(segment, mac, slot, last_seen)| {
                Some(FdbEntry {
                    segment: SegmentId(segment),
                    mac: MacAddr::from_u64(mac),
                    port: self.port_at(slot)?.id,
                    last_seen: Instant::from_nanos(last_seen),
                })
            })
            .collect();
        entries.sort_unstable_by_key(|e| (e.segment, e.mac));
        entries
    }

    /// Number of stored FDB entries (aged ones included until swept).
    pub fn fdb_len(&self) -> usize {
        self.fdb.len()
    }

    /// Number of stored FDB entries of one segment, as the capacity rule
    /// counts them.
    pub fn fdb_segment_len(&self, segment: SegmentId) -> usize {
        self.fdb.segment_len(segment.0)
    }

    /// Where `mac` lives in `segment` at `now`: `None` when unknown or aged
    /// out (a frame to it would be flooded).
    pub fn lookup(&self, now: Instant, segment: SegmentId, mac: MacAddr) -> Option<PortId> {
        let slot = self.fdb.lookup(segment.0, mac.to_u64(), now.as_nanos())?;
        self.port_at(slot).map(|p| p.id)
    }

    /// A plain-English account of a decision, for the simulator's
    /// `--explain` mode. Nothing is formatted (or allocated) until the
    /// result is displayed; display it right after `process`, since it
    /// reads the bridge's current tables.
    pub fn explain<'a>(
        &'a self,
        ingress: PortId,
        frame: &'a [u8],
        decision: Decision,
        egress: &'a Egress,
    ) -> Explanation<'a> {
        Explanation {
            bridge: self,
            ingress,
            frame,
            decision,
            egress,
        }
    }
}

/// Port security for an endpoint port; see the module documentation.
#[inline]
fn check_endpoint(
    eth: &EthernetFrame<&[u8]>,
    mac: MacAddr,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
) -> Result<(), DropReason> {
    if eth.src_addr() != mac {
        return Err(DropReason::SpoofedMac);
    }
    let payload = eth.payload();
    match eth.inner_ethertype() {
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(payload)?;
            if Some(ip.src_addr()) != ipv4 {
                return Err(DropReason::SpoofedIp);
            }
        }
        EtherType::ARP => {
            let arp = ArpPacket::new_checked(payload)?;
            if arp.sender_hardware_addr() != mac {
                return Err(DropReason::SpoofedMac);
            }
            let spa = arp.sender_protocol_addr();
            // RFC 5227: a probe says 0.0.0.0 while it checks an address.
            if !spa.is_unspecified() && Some(spa) != ipv4 {
                return Err(DropReason::SpoofedIp);
            }
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(payload)?;
            let src = ip.src_addr();
            if !(src.is_unspecified() || is_link_local(&src) || Some(src) == ipv6) {
                return Err(DropReason::SpoofedIp);
            }
            // TCP and UDP, nearly all traffic, cannot be neighbour
            // discovery: only the other next headers pay for the walk.
            if !matches!(ip.next_header(), IpProtocol::TCP | IpProtocol::UDP) {
                check_ndp(&ip, mac, ipv6).map_err(NdpRefusal::reason)?;
            }
        }
        // A second tag would hide the real header from the checks above.
        t if t.is_vlan_tpid() => return Err(DropReason::Malformed),
        _ => {}
    }
    Ok(())
}

/// Most IPv6 extension headers port security walks to find an ICMPv6
/// message. RFC 8200's recommended order has at most seven (Hop-by-Hop,
/// Destination Options, Routing, Fragment, AH, ESP, Destination Options),
/// so real traffic never comes near; a longer chain is refused as
/// `Malformed` rather than passed, since a receiver would keep walking and
/// could find a neighbour advertisement behind it.
const MAX_EXT_HEADERS: usize = 8;

/// Port security for ICMPv6 neighbour discovery (RFC 4861) from an endpoint,
/// which plays the role ARP plays for IPv4: a neighbour cache believes
/// advertisements and link-layer address options, so one container could
/// otherwise tell the others that a neighbour's address lives at its MAC.
///
/// The ICMPv6 message is found behind any Hop-by-Hop, Routing, Destination
/// Options and AH headers (at most [`MAX_EXT_HEADERS`]). A Fragment header
/// ends the walk and the packet passes: RFC 6980 makes nodes drop
/// fragmented neighbour discovery, and Linux does by default
/// (`net.ipv6.conf.*.suppress_frag_ndisc = 1`). ESP passes too: what it
/// hides is only accepted by a receiver that shares a security association
/// with the sender.
///
/// "Own addresses" below are the endpoint's configured IPv6 address and the
/// link-local address its MAC derives ([`eui64_link_local`]), not the whole
/// of fe80::/10. Allowing any link-local address would let a container
/// advertise, say, the gateway's link-local address at its own MAC and take
/// every packet its neighbours route through it; Linux derives the
/// link-local address from the MAC by default (`addr_gen_mode = 0`, which
/// a fresh network namespace gets), as OVN and Neutron port security also
/// assume. A container that switches to stable-privacy or random
/// link-local addresses (`addr_gen_mode` 2 or 3) can no longer be resolved
/// on its link-local address, which nothing in a container network needs:
/// its configured address, the one peers and the gateway use, keeps
/// working.
///
/// The rules:
/// - Router Advertisements and Redirects are refused (`SpoofedIp`): a
///   container is not a router, and a forged advertisement or redirect
///   hijacks its neighbours' routes.
/// - Router and Neighbor Solicitations must come from `::` (duplicate
///   address detection, RFC 4862) or an own address, and Neighbor
///   Advertisements from an own address (`SpoofedIp`): a solicitation
///   installs its source address in the receiver's neighbour cache at the
///   link-layer address it gives, so a solicitation from another station's
///   link-local address poisons the cache as well as an advertisement.
///   Other IPv6 traffic keeps the looser source rule of [`check_endpoint`],
///   since it updates no neighbour cache.
/// - A Neighbor Advertisement's target must be an own address
///   (`SpoofedIp`).
/// - Every source or target link-layer address option must be the
///   endpoint's MAC (`SpoofedMac`), and be the 8 bytes Ethernet uses
///   (`Malformed` otherwise, as Linux ignores such messages anyway).
/// - Messages shorter than their fixed fields are `Truncated`, options of
///   length zero `Malformed` and options that overrun the message
///   `Truncated`: receivers discard all of them (RFC 4861 sections 6.1
///   and 7.1), so refusing costs nothing legitimate.
///
/// Kept out of line: only IPv6 frames that are neither TCP nor UDP reach
/// it, and the known-unicast path stays as small as it was.
#[inline(never)]
fn check_ndp(
    ip: &Ipv6Packet<&[u8]>,
    mac: MacAddr,
    ipv6: Option<Ipv6Addr>,
) -> Result<(), NdpRefusal> {
    let (next, message) = upper_layer(ip.next_header(), ip.payload(), MAX_EXT_HEADERS)?;
    if next != IpProtocol::ICMPV6 {
        return Ok(());
    }
    let icmp = Icmpv6Packet::new_checked(message)?;
    let msg = icmp.msg_type();
    let own = |addr: Ipv6Addr| Some(addr) == ipv6 || addr == eui64_link_local(mac);
    let src = ip.src_addr();
    match msg {
        Icmpv6Message::ROUTER_ADVERT | Icmpv6Message::REDIRECT => {
            return Err(NdpRefusal::RouterOnly(msg));
        }
        Icmpv6Message::ROUTER_SOLICIT | Icmpv6Message::NEIGHBOR_SOLICIT => {
            if !(src.is_unspecified() || own(src)) {
                return Err(NdpRefusal::Source { msg, addr: src });
            }
        }
        Icmpv6Message::NEIGHBOR_ADVERT => {
            if !own(src) {
                return Err(NdpRefusal::Source { msg, addr: src });
            }
            if let Some(target) = icmp.target_addr().filter(|&t| !own(t)) {
                return Err(NdpRefusal::Target(target));
            }
        }
        _ => return Ok(()),
    }
    for option in icmp.options() {
        let option = option?;
        let kind = option.kind();
        if !kind.is_link_layer_addr() {
            continue;
        }
        match option.link_layer_addr() {
            Some(given) if given == mac => {}
            Some(given) => {
                return Err(NdpRefusal::LinkLayerAddr {
                    msg,
                    kind,
                    mac: given,
                })
            }
            None => {
                return Err(NdpRefusal::Wire(WireError::malformed(
                    "NDP link-layer address option (want 8 bytes on Ethernet)",
                )))
            }
        }
    }
    Ok(())
}

/// Why [`check_ndp`] refused a message. The forwarding path keeps only the
/// [`DropReason`]; explanations run the check again to say which rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NdpRefusal {
    /// A Router Advertisement or Redirect.
    RouterOnly(Icmpv6Message),
    /// A solicitation or advertisement from an address that is not the
    /// endpoint's.
    Source { msg: Icmpv6Message, addr: Ipv6Addr },
    /// An advertisement for an address that is not the endpoint's.
    Target(Ipv6Addr),
    /// A link-layer address option naming another MAC.
    LinkLayerAddr {
        msg: Icmpv6Message,
        kind: NdiscOptionType,
        mac: MacAddr,
    },
    /// Broken headers or options.
    Wire(WireError),
}

impl From<WireError> for NdpRefusal {
    fn from(e: WireError) -> NdpRefusal {
        NdpRefusal::Wire(e)
    }
}

impl NdpRefusal {
    fn reason(self) -> DropReason {
        match self {
            NdpRefusal::RouterOnly(_) | NdpRefusal::Source { .. } | NdpRefusal::Target(_) => {
                DropReason::SpoofedIp
            }
            NdpRefusal::LinkLayerAddr { .. } => DropReason::SpoofedMac,
            NdpRefusal::Wire(e) => e.into(),
        }
    }

    /// The refusal [`check_ndp`] gives a frame from an endpoint, if any.
    fn of(eth: &EthernetFrame<&[u8]>, mac: MacAddr, ipv6: Option<Ipv6Addr>) -> Option<NdpRefusal> {
        if eth.inner_ethertype() != EtherType::IPV6 {
            return None;
        }
        let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
        check_ndp(&ip, mac, ipv6).err()
    }
}

impl fmt::Display for NdpRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NOT_OURS: &str =
            "which is neither the endpoint's address nor the link-local address of its MAC";
        match self {
            NdpRefusal::RouterOnly(msg) => {
                write!(f, "{msg} from an endpoint, which is not a router")
            }
            NdpRefusal::Source { msg, addr } => write!(f, "{msg} from {addr}, {NOT_OURS}"),
            NdpRefusal::Target(addr) => {
                write!(f, "neighbour advertisement for {addr}, {NOT_OURS}")
            }
            NdpRefusal::LinkLayerAddr { msg, kind, mac } => {
                write!(f, "{msg} gives {mac} as its {kind}, not the endpoint's MAC")
            }
            NdpRefusal::Wire(e) => write!(f, "{e}"),
        }
    }
}

/// A decision told as a sentence, e.g.
/// `p1 (web/eth0, seg1): src 02:42:ac:12:00:02 already known on p1; dst
/// 02:42:ac:12:00:03 learned on p2 at 1.2s -> unicast to p2 (db/eth0)`.
/// Made by [`Bridge::explain`].
pub struct Explanation<'a> {
    bridge: &'a Bridge,
    ingress: PortId,
    frame: &'a [u8],
    decision: Decision,
    egress: &'a Egress,
}

/// Nanoseconds as seconds without trailing zeros: `1.2s`, `300s`.
struct Secs(u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, mut frac) = (self.0 / 1_000_000_000, self.0 % 1_000_000_000);
        if frac == 0 {
            return write!(f, "{secs}s");
        }
        let mut digits = 9;
        while frac % 10 == 0 {
            frac /= 10;
            digits -= 1;
        }
        write!(f, "{secs}.{frac:0digits$}s")
    }
}

/// A port id with its label, as explanations show it.
struct Named<'a>(&'a Bridge, PortId);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.port(self.1) {
            Some(cfg) if !cfg.label.is_empty() => write!(f, "{} ({})", self.1, cfg.label),
            _ => write!(f, "{}", self.1),
        }
    }
}

impl Explanation<'_> {
    const MAX_LISTED: usize = 8;

    fn list_egress(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = self.egress.ports();
        let n = ports.len();
        write!(f, "flooded to {n} port{}", if n == 1 { "" } else { "s" })?;
        for (i, p) in ports.iter().take(Self::MAX_LISTED).enumerate() {
            f.write_str(if i == 0 { " (" } else { ", " })?;
            write!(f, "{p}")?;
        }
        if n > Self::MAX_LISTED {
            write!(f, ", and {} more", n - Self::MAX_LISTED)?;
        }
        if n > 0 {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Display for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bridge;
        let Some(slot) = b.slot_of(self.ingress) else {
            return write!(f, "{}: not a port of this bridge -> dropped", self.ingress);
        };
        let Some(port) = b.port_at(slot) else {
            return write!(f, "{}: not a port of this bridge -> dropped", self.ingress);
        };
        let segment = port.segment;
        write!(f, "{} in {segment}: ", Named(b, self.ingress))?;
        let eth = EthernetFrame::new_checked(self.frame).ok();
        let (src, dst) = match &eth {
            Some(eth) => (eth.src_addr(), eth.dst_addr()),
            None => (MacAddr::ZERO, MacAddr::ZERO),
        };
        let len = self.frame.len();
        if let Action::Drop(reason) = self.decision.action {
            match reason {
                DropReason::Oversized => {
                    return write!(
                        f,
                        "{len}-byte frame exceeds the {}-byte limit -> dropped",
                        b.config.max_frame_len
                    );
                }
                DropReason::Truncated if eth.is_none() => {
                    return write!(
                        f,
                        "{len}-byte frame is too short for an Ethernet header -> dropped"
                    );
                }
                DropReason::Truncated | DropReason::Malformed => {
                    return write!(f, "frame from {src}: {reason} -> dropped");
                }
                DropReason::InvalidSource => {
                    return write!(f, "src {src} is not a unicast address -> dropped");
                }
                DropReason::SpoofedMac | DropReason::SpoofedIp => {
                    let ndp = match (&eth, port.guard) {
                        (Some(eth), Guard::Endpoint { mac, ipv6, .. }) if src == mac => {
                            NdpRefusal::of(eth, mac, ipv6).filter(|r| r.reason() == reason)
                        }
                        _ => None,
                    };
                    match ndp {
                        Some(refusal) => write!(f, "frame from {src}: port security: {refusal}")?,
                        None => write!(f, "frame from {src}: {reason}")?,
                    }
                    if let Guard::Endpoint { mac, ipv4, ipv6 } = port.guard {
                        write!(f, " (the endpoint is {mac}")?;
                        if let Some(ip) = ipv4 {
                            write!(f, ", {ip}")?;
                        }
                        if let Some(ip) = ipv6 {
                            write!(f, ", {ip}")?;
                        }
                        if ndp.is_some() {
                            write!(f, ", {}", eui64_link_local(mac))?;
                        }
                        f.write_str(")")?;
                    }
                    return f.write_str(" -> dropped, not learned");
                }
                DropReason::UnknownPort => {
                    return write!(f, "not a port of this bridge -> dropped");
                }
                DropReason::SameSegmentLoop | DropReason::NoDestination => {}
            }
        }
        match self.decision.learn {
            LearnOutcome::Learned => write!(f, "src {src} learned on {}", self.ingress)?,
            LearnOutcome::Refreshed => write!(f, "src {src} already known on {}", self.ingress)?,
            LearnOutcome::Moved { from } => {
                write!(f, "src {src} moved from {from} to {}", self.ingress)?
            }
            LearnOutcome::RefusedFull => write!(
                f,
                "src {src} not learned: {segment}'s table is full ({} entries)",
                b.config.fdb_capacity_per_segment
            )?,
            LearnOutcome::NotLearned => write!(f, "src {src} not learned")?,
        }
        f.write_str("; ")?;
        match self.decision.action {
            Action::Unicast(to) => {
                write!(f, "dst {dst} learned on {to}")?;
                if let Some((_, seen)) = b.fdb.peek(segment.0, dst.to_u64()) {
                    write!(f, " at {}", Secs(seen))?;
                }
                write!(f, " -> unicast to {}", Named(b, to))
            }
            Action::Flood(reason) => {
                match reason {
                    FloodReason::Broadcast => f.write_str("dst is broadcast -> ")?,
                    FloodReason::Multicast => write!(f, "dst {dst} is multicast -> ")?,
                    FloodReason::UnknownUnicast => write!(f, "dst {dst} unknown in {segment} -> ")?,
                }
                self.list_egress(f)
            }
            Action::Drop(DropReason::SameSegmentLoop) => write!(
                f,
                "dst {dst} learned on {}, the port it came from -> dropped",
                self.ingress
            ),
            Action::Drop(reason) => match dst.is_multicast() {
                true => write!(f, "dst {dst} is a group address -> dropped: {reason}"),
                false => write!(f, "dst {dst} unknown in {segment} -> dropped: {reason}"),
            },
        }
    }
}

impl fmt::Debug for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
