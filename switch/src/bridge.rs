//! The learning switch: a sans-I/O state machine that takes
//! `(now, ingress port, frame bytes)` and answers where the frame goes
//! (docs/ARCHITECTURE.md, "Sans-I/O core").
//!
//! It never reads a clock, never allocates on the forwarding path in steady
//! state and never panics on frame contents. The caller owns the I/O: it
//! hands a frame to [`Bridge::process`] (or [`Bridge::process_with`] for a
//! GSO super-frame) and sends the same bytes out of the ports listed in the
//! [`Egress`] it passed in.
//!
//! The rules, in the order they are applied:
//! 1. the ingress port must exist (`UnknownPort`), the frame must fit the
//!    bridge's limit (`Oversized`) and hold an Ethernet header
//!    (`Truncated`);
//! 2. the source MAC must be unicast (`InvalidSource`);
//! 3. endpoint and router ports enforce port security on the (inner, if
//!    tagged) header (`SpoofedMac`, `SpoofedIp`, or `Truncated`/`Malformed`
//!    when the header they need is broken):
//!    - an endpoint: source MAC, IPv4 source, ARP sender, IPv6 source (its
//!      address or the link-local address its MAC derives; `::` only where
//!      a host without an address may use it), and ICMPv6 neighbour
//!      discovery, the IPv6 counterpart of ARP (see `check_ndp`);
//!    - a router (a gateway, forwarding for others): source MAC, ARP
//!      sender and neighbour discovery must be its own, IP sources are
//!      free;
//!    - both: no neighbour discovery in fragments (RFC 6980), and a first
//!      fragment must hold the whole header chain (RFC 7112) (`Malformed`);
//! 4. only then is the source learned, so a refused frame cannot poison the
//!    table. A static entry (programmed by the controller) is never moved
//!    by learning: a frame from another port with that source is still
//!    forwarded, and counted in [`BridgeStats::static_conflicts`];
//! 5. group destinations and unknown unicast flood the ingress port's
//!    segment except the ingress port; known unicast (a fresh learned
//!    entry, or a static one) goes to its one port (`SameSegmentLoop` when
//!    that is the ingress port). Nothing ever crosses segments;
//! 6. split horizon: a flood skips every port in the ingress port's horizon
//!    group, and a known unicast to such a port is dropped
//!    (`SplitHorizon`); ports in no group are not affected;
//! 7. MTU: a frame whose layer-3 length (the frame minus its Ethernet
//!    header and 802.1Q tag) exceeds a destination port's MTU is not sent
//!    there: the copy is counted in that port's
//!    [`PortCounters::tx_mtu_exceeded`], and a unicast so withheld is
//!    dropped (`MtuExceeded`). GSO super-frames skip this rule, since the
//!    kernel segments them on the way out ([`FrameMeta`]);
//! 8. a flood that reaches nobody is dropped as `MtuExceeded` if rule 7
//!    withheld a copy, else `SplitHorizon` if rule 6 did, else
//!    `NoDestination` (the ingress port is alone in its segment).
//!
//! A port belongs to exactly one segment; an 802.1Q tag inside a frame does
//! not pick a segment (trunk ports pass tagged frames through unchanged,
//! endpoint and router ports are checked on the header inside the tag).

use crate::fdb::{folded_multiply, Fdb, FdbEntry, Learned};
use crate::mac::MacAddr;
use crate::port::{
    DropReason, HorizonGroup, PortBinding, PortConfig, PortCounters, PortId, SegmentId,
};
use crate::time::Instant;
use crate::wire::ipv6::header_chain;
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
    /// Entries (learned and static) removed because their port was
    /// removed.
    pub purged: u64,
    /// Frames whose source MAC has a static entry on another port: the
    /// entry stayed, the frame was forwarded. A steady count means two
    /// stations share a MAC, or the controller's entry is out of date.
    pub static_conflicts: u64,
}

/// What the caller knows about a frame that its bytes do not say. The
/// switch core never sees virtio-net headers; the data plane, which reads
/// them, passes what matters here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameMeta {
    /// The frame is a GSO super-frame: it arrived with a virtio-net header
    /// whose `gso_type` is not `NONE`, so it may be far larger than any
    /// port's MTU and is cut into MTU-sized segments on the way out. The
    /// per-port MTU rule (rule 7) does not apply to it; the bridge's frame
    /// limit still does.
    pub gso: bool,
}

impl FrameMeta {
    /// An ordinary frame: what [`Bridge::process`] assumes.
    pub const PLAIN: FrameMeta = FrameMeta { gso: false };
    /// A GSO super-frame.
    pub const GSO: FrameMeta = FrameMeta { gso: true };
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
    /// The source has a static entry on the ingress port: nothing to
    /// learn.
    Static,
    /// The source has a static entry on another port, which keeps it: the
    /// frame is forwarded but teaches nothing.
    StaticConflict {
        /// The port the static entry names.
        owner: PortId,
    },
    /// The frame was dropped before learning (bad or spoofed source).
    NotLearned,
}

/// What happens to the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Sent out of exactly this port.
    Unicast(PortId),
    /// Sent out of every other port of the segment that split horizon and
    /// MTU allow (at least one).
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
            LearnOutcome::Static => f.write_str("source is a static entry on the ingress port"),
            LearnOutcome::StaticConflict { owner } => {
                write!(f, "source is a static entry on {owner}, not moved")
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

/// Port security state of a port, flattened for the hot path (the
/// link-local address computed once). A router's address lists stay in
/// its [`PortBinding`]: only ARP and neighbour discovery read them.
#[derive(Clone, Copy, Debug)]
enum Guard {
    Trunk,
    Endpoint {
        mac: MacAddr,
        ipv4: Option<Ipv4Addr>,
        ipv6: Option<Ipv6Addr>,
        lla: Ipv6Addr,
    },
    Router {
        mac: MacAddr,
        lla: Ipv6Addr,
    },
}

impl Guard {
    fn of(binding: &PortBinding) -> Guard {
        match *binding {
            PortBinding::Trunk => Guard::Trunk,
            PortBinding::Endpoint { mac, ipv4, ipv6 } => Guard::Endpoint {
                mac,
                ipv4,
                ipv6,
                lla: eui64_link_local(mac),
            },
            PortBinding::Router { mac, .. } => Guard::Router {
                mac,
                lla: eui64_link_local(mac),
            },
        }
    }

    /// The MAC the port must send from, if it is checked at all.
    fn mac(self) -> Option<MacAddr> {
        match self {
            Guard::Trunk => None,
            Guard::Endpoint { mac, .. } | Guard::Router { mac, .. } => Some(mac),
        }
    }

    /// Whose identity neighbour discovery from the port is checked against.
    fn speaker(self, binding: &PortBinding) -> Option<Speaker<'_>> {
        match self {
            Guard::Trunk => None,
            Guard::Endpoint { mac, ipv6, lla, .. } => Some(Speaker::Endpoint { mac, lla, ipv6 }),
            Guard::Router { mac, lla } => Some(Speaker::Router {
                mac,
                lla,
                ipv6: router_addrs(binding).1,
            }),
        }
    }
}

/// A router binding's address lists (empty for any other binding).
fn router_addrs(binding: &PortBinding) -> (&[Ipv4Addr], &[Ipv6Addr]) {
    match binding {
        PortBinding::Router { ipv4, ipv6, .. } => (ipv4, ipv6),
        _ => (&[], &[]),
    }
}

/// A live port, in its dense slot.
#[derive(Debug)]
struct PortSlot {
    id: PortId,
    segment: SegmentId,
    segment_slot: u32,
    guard: Guard,
    /// `config.horizon`, next to the counters the forwarding path touches.
    horizon: Option<HorizonGroup>,
    /// `config.mtu`, likewise.
    mtu: usize,
    counters: PortCounters,
    config: PortConfig,
}

/// Why [`Bridge::add_static_entry`] refused an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StaticEntryError {
    /// The port does not exist (or was removed).
    #[error("{0} is not a port of this bridge: add the port before its static entries")]
    UnknownPort(PortId),
    /// The port belongs to another segment than the entry.
    #[error(
        "{port} is in {actual}, not {segment}: a static entry must name a port of its own segment"
    )]
    WrongSegment {
        /// The port the entry named.
        port: PortId,
        /// The entry's segment.
        segment: SegmentId,
        /// The port's segment.
        actual: SegmentId,
    },
    /// A group or all-zero address, which no single station owns.
    #[error("{0} is not a unicast address: only a station's own MAC can be a static entry")]
    NotUnicast(MacAddr),
}

/// What a flood left out, for rule 8.
#[derive(Clone, Copy, Debug, Default)]
struct Withheld {
    horizon: bool,
    mtu: bool,
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
            horizon: cfg.horizon,
            mtu: usize::try_from(cfg.mtu).unwrap_or(usize::MAX),
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

    /// Detaches a port, forgetting every station learned on it and every
    /// static entry naming it, and gives its configuration back. `None` if
    /// there is no such port.
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
    /// (cleared first), updates counters and returns the decision. The
    /// frame is taken to be an ordinary one, not a GSO super-frame: see
    /// [`Bridge::process_with`].
    ///
    /// Never panics, whatever the bytes. Does not allocate unless a
    /// flood needs more room than `out` has, or a new station makes the
    /// FDB table grow (amortised doubling, bounded by the capacity rule).
    #[inline]
    pub fn process(
        &mut self,
        now: Instant,
        ingress: PortId,
        frame: &[u8],
        out: &mut Egress,
    ) -> Decision {
        self.process_with(now, ingress, frame, FrameMeta::PLAIN, out)
    }

    /// [`Bridge::process`] for a frame the caller knows more about, the
    /// entry point of a data plane that reads virtio-net headers.
    ///
    /// The contract for `meta.gso`:
    /// - pass `true` only for a frame that came with a virtio-net header
    ///   whose `gso_type` is not `NONE`, and `frame` without that header
    ///   (starting at the Ethernet destination);
    /// - the frame then skips the per-port MTU rule (rule 7), as the
    ///   receiving kernel cuts it into segments of `gso_size`; everything
    ///   else (frame limit, port security, learning, split horizon) is as
    ///   for a plain frame;
    /// - in exchange the caller must deliver it segmented: with the
    ///   virtio-net header to a port that takes one, or cut into segments
    ///   itself (or not at all, counted as an error) for a port that does
    ///   not. Each segment is the sender's business to keep within the
    ///   MTU: the core does not check `gso_size` against the egress
    ///   port's MTU.
    ///
    /// Same costs and guarantees as [`Bridge::process`]: no panic, no
    /// allocation in steady state.
    pub fn process_with(
        &mut self,
        now: Instant,
        ingress: PortId,
        frame: &[u8],
        meta: FrameMeta,
        out: &mut Egress,
    ) -> Decision {
        out.ports.clear();
        self.stats.frames += 1;
        let Some(slot) = self.slot_of(ingress) else {
            self.stats.unknown_port += 1;
            self.stats.dropped += 1;
            return Decision::dropped(DropReason::UnknownPort);
        };
        let decision = self.forward(now.as_nanos(), slot, frame, meta, out);
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

    /// The body of [`Bridge::process_with`] once the ingress slot is known.
    #[inline(always)]
    fn forward(
        &mut self,
        now: u64,
        slot: u32,
        frame: &[u8],
        meta: FrameMeta,
        out: &mut Egress,
    ) -> Decision {
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
        let checked = match port.guard {
            Guard::Trunk => Ok(()),
            Guard::Endpoint {
                mac,
                ipv4,
                ipv6,
                lla,
            } => check_endpoint(&eth, mac, ipv4, ipv6, lla),
            Guard::Router { mac, lla } => check_router(&eth, mac, lla, &port.config.binding),
        };
        if let Err(reason) = checked {
            return Decision::dropped(reason);
        }
        let segment = port.segment;
        let segment_slot = port.segment_slot;
        let horizon = port.horizon;
        // Rule 7 compares this with each destination's MTU; a GSO frame
        // is segmented on the way out, so it compares as nothing.
        let l3_len = if meta.gso { 0 } else { len - eth.header_len() };

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
            Learned::Static => LearnOutcome::Static,
            Learned::StaticConflict { owner } => {
                self.stats.static_conflicts += 1;
                let owner = self.port_at(owner).map_or(PortId(0), |p| p.id);
                LearnOutcome::StaticConflict { owner }
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
                        let action = if horizon.is_some() && egress.horizon == horizon {
                            Action::Drop(DropReason::SplitHorizon)
                        } else if l3_len > egress.mtu {
                            egress.counters.tx_mtu_exceeded += 1;
                            Action::Drop(DropReason::MtuExceeded)
                        } else {
                            egress.counters.tx_frames += 1;
                            egress.counters.tx_bytes += len as u64;
                            out.ports.push(egress.id);
                            Action::Unicast(egress.id)
                        };
                        return Decision { learn, action };
                    }
                    FloodReason::UnknownUnicast
                }
                None => FloodReason::UnknownUnicast,
            }
        };
        let withheld = self.flood(segment_slot, slot, horizon, l3_len, len, out);
        if out.ports.is_empty() {
            let reason = if withheld.mtu {
                DropReason::MtuExceeded
            } else if withheld.horizon {
                DropReason::SplitHorizon
            } else {
                DropReason::NoDestination
            };
            return Decision {
                learn,
                action: Action::Drop(reason),
            };
        }
        Decision {
            learn,
            action: Action::Flood(reason),
        }
    }

    /// Lists every member of the segment but the ingress port, the ports
    /// of its horizon group and the ports whose MTU `l3_len` exceeds in
    /// `out`, and counts the transmissions (and the copies withheld for
    /// the MTU).
    #[inline]
    fn flood(
        &mut self,
        segment_slot: u32,
        ingress: u32,
        horizon: Option<HorizonGroup>,
        l3_len: usize,
        len: usize,
        out: &mut Egress,
    ) -> Withheld {
        let mut withheld = Withheld::default();
        let Some(Some(segment)) = self.segments.get(segment_slot as usize) else {
            return withheld;
        };
        out.ports.reserve(segment.members.len().saturating_sub(1));
        for &(id, member) in &segment.members {
            if member == ingress {
                continue;
            }
            if let Some(Some(port)) = self.slots.get_mut(member as usize) {
                if horizon.is_some() && port.horizon == horizon {
                    withheld.horizon = true;
                    continue;
                }
                if l3_len > port.mtu {
                    port.counters.tx_mtu_exceeded += 1;
                    withheld.mtu = true;
                    continue;
                }
                port.counters.tx_frames += 1;
                port.counters.tx_bytes += len as u64;
                out.ports.push(id);
            }
        }
        withheld
    }

    /// Programs a static FDB entry: frames to `mac` in `segment` go to
    /// `port` from `now` on, whatever learning sees. It replaces a learned
    /// entry for the same station (which stops counting against the
    /// segment's capacity) or an earlier static one. It never ages, frames
    /// from `mac` on other ports do not move it (they are counted in
    /// [`BridgeStats::static_conflicts`]), and it goes when `port` is
    /// removed or [`Bridge::remove_static_entry`] is called. Control path:
    /// may allocate.
    pub fn add_static_entry(
        &mut self,
        now: Instant,
        segment: SegmentId,
        mac: MacAddr,
        port: PortId,
    ) -> Result<(), StaticEntryError> {
        if !mac.is_unicast() {
            return Err(StaticEntryError::NotUnicast(mac));
        }
        let slot = self
            .slot_of(port)
            .ok_or(StaticEntryError::UnknownPort(port))?;
        let actual = self
            .port_at(slot)
            .ok_or(StaticEntryError::UnknownPort(port))?
            .segment;
        if actual != segment {
            return Err(StaticEntryError::WrongSegment {
                port,
                segment,
                actual,
            });
        }
        self.fdb
            .insert_static(segment.0, mac.to_u64(), slot, now.as_nanos());
        Ok(())
    }

    /// Removes the static entry for `mac` in `segment` and returns the port
    /// it named; `None` when there is none (a learned entry for the same
    /// station is left alone).
    pub fn remove_static_entry(&mut self, segment: SegmentId, mac: MacAddr) -> Option<PortId> {
        let slot = self.fdb.remove_static(segment.0, mac.to_u64())?;
        self.port_at(slot).map(|p| p.id)
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

    /// Every stored FDB entry, static ones marked (learned ones that aged
    /// included until swept), sorted by (segment, MAC), for display.
    pub fn fdb_entries(&self) -> Vec<FdbEntry> {
        let mut entries: Vec<FdbEntry> = self
            .fdb
            .rows()
            .filter_map(|(segment, mac, slot, last_seen, is_static)| {
                Some(FdbEntry {
                    segment: SegmentId(segment),
                    mac: MacAddr::from_u64(mac),
                    port: self.port_at(slot)?.id,
                    last_seen: Instant::from_nanos(last_seen),
                    is_static,
                })
            })
            .collect();
        entries.sort_unstable_by_key(|e| (e.segment, e.mac));
        entries
    }

    /// Number of stored FDB entries, static and learned (aged ones
    /// included until swept).
    pub fn fdb_len(&self) -> usize {
        self.fdb.len()
    }

    /// Number of learned FDB entries of one segment, as the capacity rule
    /// counts them (static entries are not counted).
    pub fn fdb_segment_len(&self, segment: SegmentId) -> usize {
        self.fdb.segment_len(segment.0)
    }

    /// Where `mac` lives in `segment` at `now`: its static entry, or where
    /// it was learned; `None` when unknown or aged out (a frame to it would
    /// be flooded).
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
    lla: Ipv6Addr,
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
        EtherType::ARP => check_arp(payload, mac, |spa| Some(spa) == ipv4)?,
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(payload)?;
            // TCP and UDP, nearly all traffic, are neither neighbour
            // discovery nor fragments, and never legal from `::`: one
            // comparison or two, and only the other next headers pay for
            // the walk.
            if matches!(ip.next_header(), IpProtocol::TCP | IpProtocol::UDP) {
                let src = ip.src_addr();
                if Some(src) != ipv6 && src != lla {
                    return Err(DropReason::SpoofedIp);
                }
            } else {
                check_ndp(&ip, Speaker::Endpoint { mac, lla, ipv6 }).map_err(NdpRefusal::reason)?;
            }
        }
        // A second tag would hide the real header from the checks above.
        t if t.is_vlan_tpid() => return Err(DropReason::Malformed),
        _ => {}
    }
    Ok(())
}

/// Port security for a router port (a gateway): its own MAC, ARP and
/// neighbour discovery for its own addresses only, any IP source (it
/// forwards for other hosts). See the module documentation.
#[inline]
fn check_router(
    eth: &EthernetFrame<&[u8]>,
    mac: MacAddr,
    lla: Ipv6Addr,
    binding: &PortBinding,
) -> Result<(), DropReason> {
    if eth.src_addr() != mac {
        return Err(DropReason::SpoofedMac);
    }
    let payload = eth.payload();
    let (ipv4, ipv6) = router_addrs(binding);
    match eth.inner_ethertype() {
        EtherType::ARP => check_arp(payload, mac, |spa| ipv4.contains(&spa))?,
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(payload)?;
            if !matches!(ip.next_header(), IpProtocol::TCP | IpProtocol::UDP) {
                check_ndp(&ip, Speaker::Router { mac, lla, ipv6 }).map_err(NdpRefusal::reason)?;
            }
        }
        t if t.is_vlan_tpid() => return Err(DropReason::Malformed),
        _ => {}
    }
    Ok(())
}

/// ARP from a checked port: the sender hardware address must be its MAC,
/// the sender protocol address one it owns (`owns`) or 0.0.0.0, which an
/// RFC 5227 probe uses while it checks an address.
#[inline]
fn check_arp(
    payload: &[u8],
    mac: MacAddr,
    owns: impl Fn(Ipv4Addr) -> bool,
) -> Result<(), DropReason> {
    let arp = ArpPacket::new_checked(payload)?;
    if arp.sender_hardware_addr() != mac {
        return Err(DropReason::SpoofedMac);
    }
    let spa = arp.sender_protocol_addr();
    if !spa.is_unspecified() && !owns(spa) {
        return Err(DropReason::SpoofedIp);
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

/// Whose identity IPv6 control traffic from a port is checked against:
/// the port's own addresses are its configured ones and the link-local
/// address its MAC derives ([`eui64_link_local`]).
#[derive(Clone, Copy, Debug)]
enum Speaker<'a> {
    /// An endpoint: also held to its own addresses as the source of any
    /// IPv6 packet.
    Endpoint {
        mac: MacAddr,
        lla: Ipv6Addr,
        ipv6: Option<Ipv6Addr>,
    },
    /// A router: forwards packets from anyone, but speaks neighbour
    /// discovery for itself only; may advertise itself as a router.
    Router {
        mac: MacAddr,
        lla: Ipv6Addr,
        ipv6: &'a [Ipv6Addr],
    },
}

impl Speaker<'_> {
    fn mac(&self) -> MacAddr {
        match *self {
            Speaker::Endpoint { mac, .. } | Speaker::Router { mac, .. } => mac,
        }
    }

    fn owns(&self, addr: Ipv6Addr) -> bool {
        match *self {
            Speaker::Endpoint { lla, ipv6, .. } => addr == lla || Some(addr) == ipv6,
            Speaker::Router { lla, ipv6, .. } => addr == lla || ipv6.contains(&addr),
        }
    }

    fn is_router(&self) -> bool {
        matches!(self, Speaker::Router { .. })
    }
}

/// The ICMPv6 message type `ip` carries, when it is easy to see: for
/// explanations of refusals made before the walk.
fn icmpv6_type(ip: &Ipv6Packet<&[u8]>) -> Option<Icmpv6Message> {
    let chain = header_chain(ip.next_header(), ip.payload(), MAX_EXT_HEADERS).ok()?;
    if chain.protocol != IpProtocol::ICMPV6 || chain.is_later_fragment() {
        return None;
    }
    chain.payload.first().map(|&t| Icmpv6Message(t))
}

/// Port security for IPv6 control traffic from an endpoint or a router:
/// the source address of an endpoint's packets, fragments, and ICMPv6
/// neighbour discovery (RFC 4861), which plays the role ARP plays for
/// IPv4: a neighbour cache believes advertisements and link-layer address
/// options, so one container could otherwise tell the others that a
/// neighbour's address lives at its MAC.
///
/// The ICMPv6 message is found behind any Hop-by-Hop, Routing, Destination
/// Options and AH headers and through the Fragment header of a first
/// fragment (at most [`MAX_EXT_HEADERS`] in all, see [`header_chain`]). ESP
/// passes: what it hides is only accepted by a receiver that shares a
/// security association with the sender.
///
/// "Own addresses" below are the port's configured IPv6 addresses and the
/// link-local address its MAC derives ([`eui64_link_local`]), not the whole
/// of fe80::/10. Allowing any link-local address would let a container
/// advertise, say, the gateway's link-local address at its own MAC and take
/// every packet its neighbours route through it, or send a Packet Too Big
/// from a neighbour's link-local address and lower a peer's path MTU (RFC
/// 8201 believes any source). Linux derives the link-local address from
/// the MAC by default (`addr_gen_mode = 0`, which a fresh network namespace
/// gets unless `net.core.devconf_inherit_init_net` says otherwise), as OVN
/// and Neutron port security also assume; the simulator's smoltcp
/// containers have no link-local address and use their configured one. A
/// container that switches to stable-privacy or random link-local
/// addresses (`addr_gen_mode` 2 or 3) loses its link-local traffic, which
/// nothing in a container network needs: its configured address, the one
/// peers and the gateway use, keeps working.
///
/// The rules:
/// - An endpoint's IPv6 packets come from an own address (`SpoofedIp`),
///   or from `::` for the messages a host sends before it has an address:
///   duplicate address detection (a Neighbor Solicitation, RFC 4862), a
///   Router Solicitation, and MLD reports and dones (RFC 3590; Linux sends
///   them from `::` while its link-local address is tentative). A router's
///   packets may come from anywhere, but its neighbour discovery follows
///   the rules below.
/// - Neighbour discovery in a fragment is refused (`Malformed`): RFC 6980
///   section 5 makes every node drop it, Linux included
///   (`net.ipv6.conf.*.suppress_frag_ndisc = 1`), and no legitimate sender
///   needs it, so passing it would only reach stacks that ignore the RFC.
///   A first fragment whose header chain stops short (RFC 7112: it must
///   reach the upper-layer header) is refused too (`Malformed`): no
///   checker can see what it carries. Later fragments pass (an endpoint's
///   only from an own address): without their first fragment they
///   reassemble into nothing.
/// - Router Advertisements and Redirects from an endpoint are refused
///   (`SpoofedIp`): a container is not a router, and a forged
///   advertisement or redirect hijacks its neighbours' routes. A router
///   sends them from an own address.
/// - Router and Neighbor Solicitations must come from `::` (duplicate
///   address detection, RFC 4862) or an own address, and Neighbor
///   Advertisements from an own address (`SpoofedIp`): a solicitation
///   installs its source address in the receiver's neighbour cache at the
///   link-layer address it gives, so a solicitation from another station's
///   link-local address poisons the cache as well as an advertisement.
/// - A Neighbor Advertisement's target must be an own address
///   (`SpoofedIp`).
/// - Every source or target link-layer address option must be the
///   port's MAC (`SpoofedMac`), and be the 8 bytes Ethernet uses
///   (`Malformed` otherwise, as Linux ignores such messages anyway).
/// - Messages shorter than their fixed fields are `Truncated`, options of
///   length zero `Malformed` and options that overrun the message
///   `Truncated`: receivers discard all of them (RFC 4861 sections 6.1
///   and 7.1), so refusing costs nothing legitimate.
///
/// Kept out of line: only IPv6 frames that are neither TCP nor UDP reach
/// it, and the known-unicast path stays as small as it was.
#[inline(never)]
fn check_ndp(ip: &Ipv6Packet<&[u8]>, who: Speaker<'_>) -> Result<(), NdpRefusal> {
    let src = ip.src_addr();
    // `::` from an endpoint is legal for a few messages only, checked
    // once the message is known.
    let unspecified = src.is_unspecified() && !who.is_router();
    if !who.is_router() && !unspecified && !who.owns(src) {
        return Err(NdpRefusal::Source {
            msg: icmpv6_type(ip),
            addr: src,
        });
    }
    let chain = header_chain(ip.next_header(), ip.payload(), MAX_EXT_HEADERS)?;
    let icmpv6 = chain.protocol == IpProtocol::ICMPV6;
    if chain.fragment.is_some() {
        // A first fragment holds at least the ICMPv6 header (the walk
        // made sure), not necessarily a whole message: the type is all
        // there is to read.
        let msg = (icmpv6 && !chain.is_later_fragment())
            .then(|| chain.payload.first().map(|&t| Icmpv6Message(t)))
            .flatten();
        if let Some(msg) = msg.filter(|m| m.is_ndisc()) {
            return Err(NdpRefusal::Fragmented(msg));
        }
        if unspecified {
            return Err(NdpRefusal::Unspecified(msg));
        }
        return Ok(());
    }
    if !icmpv6 {
        return match unspecified {
            true => Err(NdpRefusal::Unspecified(None)),
            false => Ok(()),
        };
    }
    let icmp = Icmpv6Packet::new_checked(chain.payload)?;
    let msg = icmp.msg_type();
    if unspecified && !msg.may_come_from_unspecified() {
        return Err(NdpRefusal::Unspecified(Some(msg)));
    }
    match msg {
        Icmpv6Message::ROUTER_ADVERT | Icmpv6Message::REDIRECT => {
            if !who.is_router() {
                return Err(NdpRefusal::RouterOnly(msg));
            }
            if !who.owns(src) {
                return Err(NdpRefusal::Source {
                    msg: Some(msg),
                    addr: src,
                });
            }
        }
        Icmpv6Message::ROUTER_SOLICIT | Icmpv6Message::NEIGHBOR_SOLICIT => {
            if !(src.is_unspecified() || who.owns(src)) {
                return Err(NdpRefusal::Source {
                    msg: Some(msg),
                    addr: src,
                });
            }
        }
        Icmpv6Message::NEIGHBOR_ADVERT => {
            if !who.owns(src) {
                return Err(NdpRefusal::Source {
                    msg: Some(msg),
                    addr: src,
                });
            }
            if let Some(target) = icmp.target_addr().filter(|&t| !who.owns(t)) {
                return Err(NdpRefusal::Target(target));
            }
        }
        _ => return Ok(()),
    }
    let mac = who.mac();
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

/// Why [`check_ndp`] (or the TCP/UDP shortcut before it) refused a packet.
/// The forwarding path keeps only the [`DropReason`]; explanations run the
/// check again to say which rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NdpRefusal {
    /// A Router Advertisement or Redirect from an endpoint.
    RouterOnly(Icmpv6Message),
    /// A packet (this message, when known) from an address that is not the
    /// port's.
    Source {
        msg: Option<Icmpv6Message>,
        addr: Ipv6Addr,
    },
    /// A packet from `::` that may not use it (this message, when known).
    Unspecified(Option<Icmpv6Message>),
    /// An advertisement for an address that is not the port's.
    Target(Ipv6Addr),
    /// A link-layer address option naming another MAC.
    LinkLayerAddr {
        msg: Icmpv6Message,
        kind: NdiscOptionType,
        mac: MacAddr,
    },
    /// Neighbour discovery in a fragment (RFC 6980).
    Fragmented(Icmpv6Message),
    /// Broken headers or options, or an incomplete first fragment.
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
            NdpRefusal::RouterOnly(_)
            | NdpRefusal::Source { .. }
            | NdpRefusal::Unspecified(_)
            | NdpRefusal::Target(_) => DropReason::SpoofedIp,
            NdpRefusal::LinkLayerAddr { .. } => DropReason::SpoofedMac,
            NdpRefusal::Fragmented(_) => DropReason::Malformed,
            NdpRefusal::Wire(e) => e.into(),
        }
    }

    /// The refusal the IPv6 checks give a frame from a checked port, if
    /// any.
    fn of(eth: &EthernetFrame<&[u8]>, who: Speaker<'_>) -> Option<NdpRefusal> {
        if eth.inner_ethertype() != EtherType::IPV6 {
            return None;
        }
        let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
        if matches!(ip.next_header(), IpProtocol::TCP | IpProtocol::UDP) {
            let src = ip.src_addr();
            return match who {
                Speaker::Router { .. } => None,
                _ if src.is_unspecified() => Some(NdpRefusal::Unspecified(None)),
                _ if !who.owns(src) => Some(NdpRefusal::Source {
                    msg: None,
                    addr: src,
                }),
                _ => None,
            };
        }
        check_ndp(&ip, who).err()
    }

    /// The refusal in words, naming the kind of port it came from (a
    /// router's addresses are a list, an endpoint's one).
    fn told(self, router: bool) -> impl fmt::Display {
        struct Told(NdpRefusal, bool);
        impl fmt::Display for Told {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let not_ours = if self.1 {
                    "which is neither one of the router's addresses nor the link-local \
                     address of its MAC"
                } else {
                    "which is neither the endpoint's address nor the link-local address of \
                     its MAC"
                };
                let what = What;
                match self.0 {
                    NdpRefusal::RouterOnly(msg) => {
                        write!(f, "{msg} from an endpoint, which is not a router")
                    }
                    NdpRefusal::Source { msg, addr } => {
                        write!(f, "{} from {addr}, {not_ours}", what(msg))
                    }
                    NdpRefusal::Unspecified(msg) => write!(
                        f,
                        "{} from ::, which only duplicate address detection, router \
                         solicitations and MLD reports may use",
                        what(msg)
                    ),
                    NdpRefusal::Target(addr) => {
                        write!(f, "neighbour advertisement for {addr}, {not_ours}")
                    }
                    NdpRefusal::LinkLayerAddr { msg, kind, mac } => {
                        let whose = if self.1 { "router" } else { "endpoint" };
                        write!(f, "{msg} gives {mac} as its {kind}, not the {whose}'s MAC")
                    }
                    NdpRefusal::Fragmented(msg) => write!(
                        f,
                        "{msg} in a fragment, which receivers must ignore (RFC 6980)"
                    ),
                    NdpRefusal::Wire(e) => write!(f, "{e}"),
                }
            }
        }
        Told(self, router)
    }
}

/// A message type in words, or "IPv6 packet" when unknown.
struct What(Option<Icmpv6Message>);

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(m) => write!(f, "{m}"),
            None => f.write_str("IPv6 packet"),
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

/// Why a flood left a port out, for explanations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Skipped {
    Horizon,
    Mtu,
}

impl Explanation<'_> {
    const MAX_LISTED: usize = 8;

    /// Writes up to [`Self::MAX_LISTED`] ports, then how many more.
    fn list(
        f: &mut fmt::Formatter<'_>,
        ports: impl Iterator<Item = PortId>,
        mut item: impl FnMut(&mut fmt::Formatter<'_>, PortId) -> fmt::Result,
    ) -> fmt::Result {
        let mut n = 0;
        for p in ports {
            if n < Self::MAX_LISTED {
                if n > 0 {
                    f.write_str(", ")?;
                }
                item(f, p)?;
            }
            n += 1;
        }
        if n > Self::MAX_LISTED {
            write!(f, ", and {} more", n - Self::MAX_LISTED)?;
        }
        Ok(())
    }

    fn list_egress(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = self.egress.ports();
        let n = ports.len();
        write!(f, "flooded to {n} port{}", if n == 1 { "" } else { "s" })?;
        if n > 0 {
            f.write_str(" (")?;
            Self::list(f, ports.iter().copied(), |f, p| write!(f, "{p}"))?;
            f.write_str(")")?;
        }
        Ok(())
    }

    /// The ports of the ingress segment a flood did not reach for `why`.
    fn skipped<'b>(
        &'b self,
        port: &'b PortSlot,
        l3_len: usize,
        why: Skipped,
    ) -> impl Iterator<Item = PortId> + 'b {
        let b = self.bridge;
        let members = match b.segments.get(port.segment_slot as usize) {
            Some(Some(segment)) => &segment.members[..],
            _ => &[][..],
        };
        let sent = self.egress.ports();
        members.iter().filter_map(move |&(id, slot)| {
            if id == self.ingress || sent.binary_search(&id).is_ok() {
                return None;
            }
            let other = b.port_at(slot)?;
            let grouped = port.horizon.is_some() && other.horizon == port.horizon;
            let hit = match why {
                Skipped::Horizon => grouped,
                Skipped::Mtu => !grouped && l3_len > other.mtu,
            };
            hit.then_some(id)
        })
    }

    /// "; not to p4, p5 (horizon1, like p2); not to p6 (MTU 1400): a
    /// 1600-byte packet" for what a flood left out, if anything.
    fn list_skipped(
        &self,
        f: &mut fmt::Formatter<'_>,
        port: &PortSlot,
        l3_len: usize,
    ) -> fmt::Result {
        if let Some(group) = port.horizon {
            if self
                .skipped(port, l3_len, Skipped::Horizon)
                .next()
                .is_some()
            {
                f.write_str("; not to ")?;
                Self::list(f, self.skipped(port, l3_len, Skipped::Horizon), |f, p| {
                    write!(f, "{p}")
                })?;
                write!(f, " ({group}, like {})", self.ingress)?;
            }
        }
        if self.skipped(port, l3_len, Skipped::Mtu).next().is_some() {
            f.write_str("; not to ")?;
            self.list_mtu(f, port, l3_len)?;
        }
        Ok(())
    }

    /// "p6 (MTU 1400), p7 (MTU 1280): a 1600-byte packet".
    fn list_mtu(&self, f: &mut fmt::Formatter<'_>, port: &PortSlot, l3_len: usize) -> fmt::Result {
        let b = self.bridge;
        Self::list(
            f,
            self.skipped(port, l3_len, Skipped::Mtu),
            |f, p| match b.port(p) {
                Some(cfg) => write!(f, "{p} (MTU {})", cfg.mtu),
                None => write!(f, "{p}"),
            },
        )?;
        write!(f, ": a {l3_len}-byte packet")
    }

    /// The known-unicast destination of the frame, if the FDB still has
    /// one in the ingress segment: (its port, static?).
    fn known_destination(&self, segment: SegmentId, dst: MacAddr) -> Option<(&PortSlot, bool)> {
        if dst.is_multicast() {
            return None;
        }
        let (slot, _, is_static) = self.bridge.fdb.peek(segment.0, dst.to_u64())?;
        Some((self.bridge.port_at(slot)?, is_static))
    }

    /// "dst is broadcast", "dst X is multicast" or "dst X unknown in seg1".
    fn flooded_dst(f: &mut fmt::Formatter<'_>, dst: MacAddr, segment: SegmentId) -> fmt::Result {
        if dst.is_broadcast() {
            f.write_str("dst is broadcast")
        } else if dst.is_multicast() {
            write!(f, "dst {dst} is multicast")
        } else {
            write!(f, "dst {dst} unknown in {segment}")
        }
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
        let l3_len = eth.as_ref().map_or(0, |e| len - e.header_len());
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
                DropReason::Truncated
                | DropReason::Malformed
                | DropReason::SpoofedMac
                | DropReason::SpoofedIp => {
                    let refusal = match (&eth, port.guard.speaker(&port.config.binding)) {
                        (Some(eth), Some(who)) if Some(src) == port.guard.mac() => {
                            NdpRefusal::of(eth, who).filter(|r| r.reason() == reason)
                        }
                        _ => None,
                    };
                    let router = matches!(port.guard, Guard::Router { .. });
                    match refusal {
                        Some(r) => {
                            write!(f, "frame from {src}: port security: {}", r.told(router))?
                        }
                        None if matches!(reason, DropReason::Truncated | DropReason::Malformed) => {
                            return write!(f, "frame from {src}: {reason} -> dropped");
                        }
                        None => write!(f, "frame from {src}: {reason}")?,
                    }
                    match port.guard {
                        Guard::Endpoint {
                            mac,
                            ipv4,
                            ipv6,
                            lla,
                        } => {
                            write!(f, " (the endpoint is {mac}")?;
                            if let Some(ip) = ipv4 {
                                write!(f, ", {ip}")?;
                            }
                            if let Some(ip) = ipv6 {
                                write!(f, ", {ip}")?;
                            }
                            if refusal.is_some() {
                                write!(f, ", {lla}")?;
                            }
                            f.write_str(")")?;
                        }
                        Guard::Router { mac, lla } => {
                            let (ipv4, ipv6) = router_addrs(&port.config.binding);
                            write!(f, " (the router is {mac}")?;
                            for ip in ipv4 {
                                write!(f, ", {ip}")?;
                            }
                            for ip in ipv6 {
                                write!(f, ", {ip}")?;
                            }
                            write!(f, ", {lla})")?;
                        }
                        Guard::Trunk => {}
                    }
                    return f.write_str(" -> dropped, not learned");
                }
                DropReason::InvalidSource => {
                    return write!(f, "src {src} is not a unicast address -> dropped");
                }
                DropReason::UnknownPort => {
                    return write!(f, "not a port of this bridge -> dropped");
                }
                DropReason::SameSegmentLoop
                | DropReason::NoDestination
                | DropReason::SplitHorizon
                | DropReason::MtuExceeded => {}
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
            LearnOutcome::Static => write!(f, "src {src} is a static entry on {}", self.ingress)?,
            LearnOutcome::StaticConflict { owner } => write!(
                f,
                "src {src} is a static entry on {owner}, not moved to {}",
                self.ingress
            )?,
            LearnOutcome::NotLearned => write!(f, "src {src} not learned")?,
        }
        f.write_str("; ")?;
        let known = self.known_destination(segment, dst);
        let on = |f: &mut fmt::Formatter<'_>, to: PortId, is_static: bool| match is_static {
            true => write!(f, "dst {dst} is a static entry on {to}"),
            false => write!(f, "dst {dst} learned on {to}"),
        };
        match self.decision.action {
            Action::Unicast(to) => {
                let is_static = known.is_some_and(|k| k.1);
                on(f, to, is_static)?;
                if let (Some((_, seen, false)), false) =
                    (b.fdb.peek(segment.0, dst.to_u64()), is_static)
                {
                    write!(f, " at {}", Secs(seen))?;
                }
                write!(f, " -> unicast to {}", Named(b, to))
            }
            Action::Flood(_) => {
                Self::flooded_dst(f, dst, segment)?;
                f.write_str(" -> ")?;
                self.list_egress(f)?;
                self.list_skipped(f, port, l3_len)
            }
            Action::Drop(DropReason::SameSegmentLoop) => {
                on(f, self.ingress, known.is_some_and(|k| k.1))?;
                f.write_str(", the port it came from -> dropped")
            }
            Action::Drop(DropReason::SplitHorizon) => {
                let group = port.horizon.map_or(HorizonGroup(0), |g| g);
                match known.filter(|k| k.0.horizon == port.horizon) {
                    Some((to, is_static)) => {
                        on(f, to.id, is_static)?;
                        write!(f, ", which is in {group} like {}", self.ingress)?;
                    }
                    None => {
                        Self::flooded_dst(f, dst, segment)?;
                        write!(
                            f,
                            ", and every other port of {segment} is in {group} like {}",
                            self.ingress
                        )?;
                    }
                }
                f.write_str(" -> dropped (split horizon)")
            }
            Action::Drop(DropReason::MtuExceeded) => {
                match known.filter(|k| l3_len > k.0.mtu) {
                    Some((to, is_static)) => {
                        on(f, to.id, is_static)?;
                        write!(
                            f,
                            ", but a {l3_len}-byte packet exceeds its {}-byte MTU",
                            to.config.mtu
                        )?;
                    }
                    None => {
                        Self::flooded_dst(f, dst, segment)?;
                        f.write_str(", and it is too big for every port it could go to: ")?;
                        self.list_mtu(f, port, l3_len)?;
                    }
                }
                f.write_str(" -> dropped")
            }
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
