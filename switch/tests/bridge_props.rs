//! Property tests: random topologies and random frame sequences, checked
//! against a small reference model of the forwarding rules, plus the
//! invariants that must hold whatever the model says (isolation, no echo,
//! split horizon, MTU, static entries, counters add up, no panic on any
//! bytes).

mod bridge_support;

use bridge_support::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use switchyard_switch::wire::{Icmpv6Message, Icmpv6Repr, IpProtocol, NeighborFlags};
use switchyard_switch::{
    Action, Bridge, BridgeConfig, Decision, DropReason, Egress, FloodReason, FrameMeta,
    HorizonGroup, Instant, LearnOutcome, MacAddr, PortBinding, PortConfig, PortId, SegmentId,
    StaticEntryError,
};

const AGEING_SECS: u64 = 10;
const CAPACITY: usize = 6;

/// One model FDB entry.
#[derive(Clone, Copy, Debug)]
struct Entry {
    port: PortId,
    seen: u64,
    is_static: bool,
}

/// The forwarding rules, written as plainly as possible.
#[derive(Default)]
struct Model {
    ports: BTreeMap<PortId, PortConfig>,
    fdb: BTreeMap<(SegmentId, MacAddr), Entry>,
}

/// What the model expects of a frame: the decision, where it goes, and
/// which ports had a copy withheld for their MTU.
type Expected = (Decision, Vec<PortId>, Vec<PortId>);

impl Model {
    fn fresh(now: u64, seen: u64) -> bool {
        now.saturating_sub(seen) < AGEING_SECS * 1_000_000_000
    }

    fn learned_in(&self, seg: SegmentId) -> usize {
        self.fdb
            .iter()
            .filter(|(k, e)| k.0 == seg && !e.is_static)
            .count()
    }

    /// Learning and forwarding for a frame that passed the checks; `l3`
    /// is its layer-3 length (0 for a GSO frame).
    fn learn_and_forward(
        &mut self,
        now: u64,
        ingress: PortId,
        src: MacAddr,
        dst: MacAddr,
        l3: usize,
    ) -> Expected {
        let seg = self.ports[&ingress].segment;
        let horizon = self.ports[&ingress].horizon;
        let fresh_entry = Entry {
            port: ingress,
            seen: now,
            is_static: false,
        };
        let learn = match self.fdb.get(&(seg, src)).copied() {
            Some(e) if e.is_static && e.port == ingress => {
                self.fdb.insert((seg, src), Entry { seen: now, ..e });
                LearnOutcome::Static
            }
            Some(e) if e.is_static => LearnOutcome::StaticConflict { owner: e.port },
            Some(e) if Self::fresh(now, e.seen) => {
                self.fdb.insert((seg, src), fresh_entry);
                if e.port == ingress {
                    LearnOutcome::Refreshed
                } else {
                    LearnOutcome::Moved { from: e.port }
                }
            }
            Some(_) => {
                self.fdb.insert((seg, src), fresh_entry);
                LearnOutcome::Learned
            }
            None if self.learned_in(seg) >= CAPACITY => LearnOutcome::RefusedFull,
            None => {
                self.fdb.insert((seg, src), fresh_entry);
                LearnOutcome::Learned
            }
        };
        let grouped = |c: &PortConfig| horizon.is_some() && c.horizon == horizon;
        let fits = |c: &PortConfig| l3 <= c.mtu as usize;
        let decide = |action| Decision { learn, action };
        let flood = |reason| {
            let others: Vec<(&PortId, &PortConfig)> = self
                .ports
                .iter()
                .filter(|(id, c)| c.segment == seg && **id != ingress)
                .collect();
            let out: Vec<PortId> = others
                .iter()
                .filter(|(_, c)| !grouped(c) && fits(c))
                .map(|(id, _)| **id)
                .collect();
            let too_big: Vec<PortId> = others
                .iter()
                .filter(|(_, c)| !grouped(c) && !fits(c))
                .map(|(id, _)| **id)
                .collect();
            let action = if !out.is_empty() {
                Action::Flood(reason)
            } else if !too_big.is_empty() {
                Action::Drop(DropReason::MtuExceeded)
            } else if others.iter().any(|(_, c)| grouped(c)) {
                Action::Drop(DropReason::SplitHorizon)
            } else {
                Action::Drop(DropReason::NoDestination)
            };
            (decide(action), out, too_big)
        };
        if dst.is_broadcast() {
            return flood(FloodReason::Broadcast);
        }
        if dst.is_multicast() {
            return flood(FloodReason::Multicast);
        }
        match self.fdb.get(&(seg, dst)) {
            Some(e) if e.is_static || Self::fresh(now, e.seen) => {
                let to = &self.ports[&e.port];
                if e.port == ingress {
                    (
                        decide(Action::Drop(DropReason::SameSegmentLoop)),
                        vec![],
                        vec![],
                    )
                } else if grouped(to) {
                    (
                        decide(Action::Drop(DropReason::SplitHorizon)),
                        vec![],
                        vec![],
                    )
                } else if !fits(to) {
                    (
                        decide(Action::Drop(DropReason::MtuExceeded)),
                        vec![],
                        vec![e.port],
                    )
                } else {
                    (decide(Action::Unicast(e.port)), vec![e.port], vec![])
                }
            }
            _ => flood(FloodReason::UnknownUnicast),
        }
    }

    fn remove(&mut self, id: PortId) {
        self.ports.remove(&id);
        self.fdb.retain(|_, e| e.port != id);
    }

    fn expire(&mut self, now: u64) -> usize {
        let before = self.fdb.len();
        self.fdb
            .retain(|_, e| e.is_static || Self::fresh(now, e.seen));
        before - self.fdb.len()
    }

    fn add_static(
        &mut self,
        now: u64,
        seg: SegmentId,
        mac: MacAddr,
        port: PortId,
    ) -> Result<(), StaticEntryError> {
        if !mac.is_unicast() {
            return Err(StaticEntryError::NotUnicast(mac));
        }
        let actual = self.ports[&port].segment;
        if actual != seg {
            return Err(StaticEntryError::WrongSegment {
                port,
                segment: seg,
                actual,
            });
        }
        self.fdb.insert(
            (seg, mac),
            Entry {
                port,
                seen: now,
                is_static: true,
            },
        );
        Ok(())
    }

    fn remove_static(&mut self, seg: SegmentId, mac: MacAddr) -> Option<PortId> {
        let e = *self.fdb.get(&(seg, mac)).filter(|e| e.is_static)?;
        self.fdb.remove(&(seg, mac));
        Some(e.port)
    }
}

/// What a generated frame carries, so the expected port-security verdict
/// is known without parsing.
#[derive(Clone, Debug)]
enum Body {
    Raw,
    Ipv4(Ipv4Addr),
    Arp(MacAddr, Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// ICMPv6 from this source: neighbour discovery (`Other` stands for a
    /// router advertisement or redirect), optionally behind a Hop-by-Hop
    /// header, optionally in a first fragment.
    Ndp(Ipv6Addr, Icmpv6Repr, bool, bool),
}

fn build(dst: MacAddr, src: MacAddr, body: &Body, vlan: bool) -> Vec<u8> {
    let f = match body {
        Body::Raw => raw(dst, src),
        Body::Ipv4(ip) => ipv4(dst, src, *ip, Ipv4Addr::new(10, 0, 0, 1)),
        Body::Arp(sha, spa) => arp(dst, src, *sha, *spa, Ipv4Addr::new(10, 0, 0, 1)),
        Body::Ipv6(ip) => ipv6(dst, src, *ip),
        Body::Ndp(ip, repr, hbh, frag) => {
            let mut f = match repr {
                Icmpv6Repr::Other { msg_type, .. } => router_message(src, *ip, *msg_type),
                _ => ndp(src, *ip, repr, &[]),
            };
            // The bridge decides on the source and destination MACs the
            // test picked, not the multicast group a host would use.
            f[..6].copy_from_slice(&dst.0);
            if *hbh {
                f = with_ext_headers(&f, &[(IpProtocol::HOP_BY_HOP, options_header())]);
            }
            if *frag {
                f = fragmented(&f, 0, true);
            }
            f
        }
    };
    if vlan {
        tagged(&f, 7)
    } else {
        f
    }
}

/// The identity a checked port speaks for: (MAC, IPv4 addresses, IPv6
/// addresses besides the MAC-derived link-local one, router?).
fn identity(binding: &PortBinding) -> Option<(MacAddr, Vec<Ipv4Addr>, Vec<Ipv6Addr>, bool)> {
    match binding {
        PortBinding::Endpoint { mac, ipv4, ipv6 } => Some((
            *mac,
            ipv4.iter().copied().collect(),
            ipv6.iter().copied().collect(),
            false,
        )),
        PortBinding::Router { mac, ipv4, ipv6 } => Some((*mac, ipv4.clone(), ipv6.clone(), true)),
        PortBinding::Trunk => None,
    }
}

/// The port-security verdict for a well-formed frame.
fn security(binding: &PortBinding, src: MacAddr, body: &Body) -> Option<DropReason> {
    let (mac, v4, v6, router) = identity(binding)?;
    if src != mac {
        return Some(DropReason::SpoofedMac);
    }
    // Own IPv6 addresses: the configured ones and the MAC-derived
    // link-local one, not the rest of fe80::/10.
    let own = |a: &Ipv6Addr| *a == lla(mac) || v6.contains(a);
    let spoofed = |bad: bool| bad.then_some(DropReason::SpoofedIp);
    match body {
        Body::Raw => None,
        // A router forwards for others: IP sources are free.
        Body::Ipv4(ip) => spoofed(!router && !v4.contains(ip)),
        Body::Arp(sha, _) if *sha != mac => Some(DropReason::SpoofedMac),
        Body::Arp(_, spa) => spoofed(!spa.is_unspecified() && !v4.contains(spa)),
        // ICMPv6 type 0: from `::` only if it were DAD, RS or MLD.
        Body::Ipv6(ip) => spoofed(!router && !own(ip)),
        Body::Ndp(ip, repr, _, frag) => {
            if !router && !ip.is_unspecified() && !own(ip) {
                return Some(DropReason::SpoofedIp);
            }
            // RFC 6980: never in fragments.
            if *frag {
                return Some(DropReason::Malformed);
            }
            let foreign_mac = |m: &Option<MacAddr>| m.is_some_and(|m| m != mac);
            let solicitation = matches!(
                repr,
                Icmpv6Repr::RouterSolicit { .. } | Icmpv6Repr::NeighborSolicit { .. }
            );
            if !router && ip.is_unspecified() && !solicitation {
                return Some(DropReason::SpoofedIp);
            }
            match repr {
                Icmpv6Repr::RouterSolicit { lladdr }
                | Icmpv6Repr::NeighborSolicit { lladdr, .. } => {
                    if !(ip.is_unspecified() || own(ip)) {
                        Some(DropReason::SpoofedIp)
                    } else {
                        foreign_mac(lladdr).then_some(DropReason::SpoofedMac)
                    }
                }
                Icmpv6Repr::NeighborAdvert { target, lladdr, .. } => {
                    if !own(ip) || !own(target) {
                        Some(DropReason::SpoofedIp)
                    } else {
                        foreign_mac(lladdr).then_some(DropReason::SpoofedMac)
                    }
                }
                // Router advertisements and redirects: a router's, from
                // its own address.
                Icmpv6Repr::Other { .. } => spoofed(!router || !own(ip)),
            }
        }
    }
}

/// One step of a scenario; the numbers pick among what exists at the time.
#[derive(Clone, Debug)]
enum Op {
    /// A frame; (ingress pick, src pick, dst pick, body pick, tagged,
    /// detail pick for neighbour discovery, GSO).
    Send(u8, u8, u8, u8, bool, u16, bool),
    /// Arbitrary bytes on a port.
    Garbage(u8, Vec<u8>),
    /// Time passes (milliseconds).
    Wait(u32),
    /// Sweep aged entries.
    Expire,
    /// Remove a port.
    Remove(u8),
    /// Add a port: (segment, kind, detail).
    Add(u8, u8, u8),
    /// Program a static entry: (port pick, MAC pick, wrong segment?).
    AddStatic(u8, u8, bool),
    /// Remove a static entry: (segment, MAC pick).
    RemoveStatic(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), prop::bool::weighted(0.1), any::<u16>(), prop::bool::weighted(0.2))
            .prop_map(|(a, b, c, d, e, f, g)| Op::Send(a, b, c, d, e, f, g)),
        2 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..80)).prop_map(|(p, b)| Op::Garbage(p, b)),
        3 => prop_oneof![0u32..2_000, 0u32..(3 * AGEING_SECS as u32 * 1000)].prop_map(Op::Wait),
        1 => Just(Op::Expire),
        1 => any::<u8>().prop_map(Op::Remove),
        1 => (0u8..3, any::<u8>(), any::<u8>()).prop_map(|(s, k, d)| Op::Add(s, k, d)),
        2 => (any::<u8>(), any::<u8>(), prop::bool::weighted(0.1)).prop_map(|(p, m, w)| Op::AddStatic(p, m, w)),
        1 => (0u8..3, any::<u8>()).prop_map(|(s, m)| Op::RemoveStatic(s, m)),
    ]
}

/// Initial topology: (segment, kind, detail) per port.
fn topology() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    prop::collection::vec((0u8..3, any::<u8>(), any::<u8>()), 1..8)
}

/// The port (seg, kind, detail) describes, for station `n`: kind picks an
/// endpoint, a trunk or a router; detail its horizon group (none, 1 or 2)
/// and its MTU (Ethernet's, or small enough that some generated frames
/// exceed it: 46 bytes is the smallest layer-3 payload of a frame).
fn port_config(seg: u8, kind: u8, detail: u8, n: u8) -> PortConfig {
    let base = match kind % 3 {
        0 => endpoint(seg, n),
        1 => trunk(u32::from(seg)),
        _ => PortConfig {
            binding: PortBinding::Router {
                mac: mac(seg, n),
                ipv4: vec![ip4(seg, n), ip4(seg, 200)],
                ipv6: vec![ip6(seg, n)],
            },
            ..trunk(u32::from(seg))
        },
    };
    PortConfig {
        horizon: match detail % 4 {
            0 | 1 => None,
            g => Some(HorizonGroup(u32::from(g - 1))),
        },
        mtu: match (detail / 4) % 4 {
            0 | 1 => PortConfig::DEFAULT_MTU,
            2 => 60,
            _ => 46,
        },
        ..base
    }
}

/// Per-port tallies the test keeps from the decisions it saw.
#[derive(Default, Clone, Copy)]
struct Tally {
    rx: u64,
    tx: u64,
    tx_mtu_exceeded: u64,
    forwarded: u64,
    dropped: u64,
}

struct World {
    bridge: Bridge,
    model: Model,
    out: Egress,
    now: u64,
    next_station: u8,
    tally: BTreeMap<PortId, Tally>,
    frames: u64,
}

impl World {
    fn new(topo: &[(u8, u8, u8)]) -> World {
        let config = BridgeConfig {
            ageing: core::time::Duration::from_secs(AGEING_SECS),
            fdb_capacity_per_segment: CAPACITY,
            max_frame_len: 1514,
            hash_seed: 42,
        };
        let mut w = World {
            bridge: Bridge::new(config),
            model: Model::default(),
            out: Egress::new(),
            now: 0,
            next_station: 1,
            tally: BTreeMap::new(),
            frames: 0,
        };
        for &(seg, kind, detail) in topo {
            w.add(seg, kind, detail);
        }
        w
    }

    fn add(&mut self, seg: u8, kind: u8, detail: u8) {
        let n = self.next_station;
        self.next_station = self.next_station.wrapping_add(1);
        let cfg = port_config(seg, kind, detail, n);
        let id = self.bridge.add_port(cfg.clone());
        self.model.ports.insert(id, cfg);
        self.tally.insert(id, Tally::default());
    }

    fn pick_port(&self, k: u8) -> Option<PortId> {
        let ids: Vec<PortId> = self.model.ports.keys().copied().collect();
        (!ids.is_empty()).then(|| ids[usize::from(k) % ids.len()])
    }

    /// The MACs frames are drawn from: every station ever made, a few that
    /// live behind trunks, and group/invalid addresses.
    fn pick_mac(&self, k: u8) -> MacAddr {
        match k % 16 {
            0 => MacAddr::BROADCAST,
            1 => MacAddr([0x01, 0x00, 0x5e, 0, 0, 0xfb]),
            2 if k > 200 => MacAddr::ZERO,
            3..=6 => MacAddr([0x02, 0xee, 0, 0, 0, k % 16]),
            _ => {
                let n = k % self.next_station.max(2);
                let seg = (k / 16) % 3;
                mac(seg, n)
            }
        }
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Send(p, s, d, b, vlan, x, gso) => {
                let Some(ingress) = self.pick_port(*p) else {
                    return;
                };
                let binding = self.model.ports[&ingress].binding.clone();
                let who = identity(&binding);
                // Checked ports mostly send as themselves.
                let src = match (&who, s % 4) {
                    (Some((mac, ..)), 0..=2) => *mac,
                    _ => self.pick_mac(*s),
                };
                let (own4, own6) = match &who {
                    Some((_, v4, v6, _)) => (v4.first().copied(), v6.first().copied()),
                    None => (None, None),
                };
                let ip4_pick = if b % 2 == 0 {
                    own4.unwrap_or(Ipv4Addr::new(10, 9, 9, 9))
                } else {
                    Ipv4Addr::new(10, 0, 0, *b)
                };
                let body = match b % 10 {
                    0 | 1 => Body::Raw,
                    2 | 3 => Body::Ipv4(ip4_pick),
                    4 => Body::Arp(src, ip4_pick),
                    5 => Body::Arp(
                        if b % 3 == 0 { self.pick_mac(*b) } else { src },
                        Ipv4Addr::UNSPECIFIED,
                    ),
                    6 => Body::Ipv6(match b % 3 {
                        0 => lla(src),
                        _ => own6.unwrap_or(Ipv6Addr::LOCALHOST),
                    }),
                    7 => Body::Ipv6(match b % 4 {
                        0 => "fe80::1".parse().unwrap(),
                        1 => Ipv6Addr::UNSPECIFIED,
                        2 => lla(self.pick_mac(x.to_be_bytes()[0])),
                        _ => "2001:db8::1".parse().unwrap(),
                    }),
                    _ => self.ndp_body(src, own6, *x),
                };
                let dst = self.pick_mac(*d);
                let frame = build(dst, src, &body, *vlan);
                let l3 = if *gso {
                    0
                } else {
                    frame.len() - if *vlan { 18 } else { 14 }
                };
                let drop = |reason| {
                    (
                        Decision {
                            learn: LearnOutcome::NotLearned,
                            action: Action::Drop(reason),
                        },
                        vec![],
                        vec![],
                    )
                };
                let expected = if !src.is_unicast() {
                    drop(DropReason::InvalidSource)
                } else if let Some(reason) = security(&binding, src, &body) {
                    drop(reason)
                } else {
                    self.model
                        .learn_and_forward(self.now, ingress, src, dst, l3)
                };
                let meta = FrameMeta { gso: *gso };
                self.process(ingress, &frame, meta, Some(expected));
            }
            Op::Garbage(p, bytes) => {
                let Some(ingress) = self.pick_port(*p) else {
                    return;
                };
                self.process(ingress, bytes, FrameMeta::PLAIN, None);
            }
            Op::Wait(ms) => self.now += u64::from(*ms) * 1_000_000,
            Op::Expire => {
                let now = Instant::from_nanos(self.now);
                assert_eq!(self.bridge.expire(now), self.model.expire(self.now));
            }
            Op::Remove(p) => {
                let Some(id) = self.pick_port(*p) else { return };
                assert_eq!(
                    self.bridge.remove_port(id).as_ref(),
                    self.model.ports.get(&id)
                );
                self.model.remove(id);
                self.tally.remove(&id);
                assert!(
                    self.bridge.fdb_entries().iter().all(|e| e.port != id),
                    "purged"
                );
            }
            Op::Add(seg, kind, detail) => self.add(*seg, *kind, *detail),
            Op::AddStatic(p, m, wrong) => {
                let Some(port) = self.pick_port(*p) else {
                    return;
                };
                let mut seg = self.model.ports[&port].segment;
                if *wrong {
                    seg = SegmentId((seg.0 + 1) % 3);
                }
                let mac = self.pick_mac(*m);
                let now = Instant::from_nanos(self.now);
                assert_eq!(
                    self.bridge.add_static_entry(now, seg, mac, port),
                    self.model.add_static(self.now, seg, mac, port)
                );
            }
            Op::RemoveStatic(seg, m) => {
                let (seg, mac) = (SegmentId(u32::from(*seg)), self.pick_mac(*m));
                assert_eq!(
                    self.bridge.remove_static_entry(seg, mac),
                    self.model.remove_static(seg, mac)
                );
            }
        }
    }

    /// A neighbour discovery message, mostly well-behaved, from `src`:
    /// `x` picks the message, its source, target and link-layer address
    /// among the sender's own and other stations', and whether it comes
    /// in a fragment.
    fn ndp_body(&self, src: MacAddr, own6: Option<Ipv6Addr>, x: u16) -> Body {
        let [lo, hi] = x.to_be_bytes();
        let other = self.pick_mac(hi);
        let addr = |k: u8| -> Ipv6Addr {
            match k % 6 {
                0 | 1 => lla(src),
                2 => own6.unwrap_or(lla(src)),
                3 => lla(other),
                4 => ip6((k / 6) % 3, k / 18),
                _ => "fe80::1".parse().unwrap(),
            }
        };
        let src_ip = match lo % 7 {
            6 => Ipv6Addr::UNSPECIFIED,
            k => addr(k),
        };
        let target = addr(hi / 3);
        let lladdr = match (lo / 7) % 4 {
            0 => None,
            3 => Some(other),
            _ => Some(src),
        };
        let repr = match (hi / 2) % 8 {
            0 => Icmpv6Repr::Other {
                msg_type: if hi % 2 == 0 {
                    Icmpv6Message::ROUTER_ADVERT
                } else {
                    Icmpv6Message::REDIRECT
                },
                code: 0,
            },
            1 => Icmpv6Repr::RouterSolicit { lladdr },
            2..=4 => Icmpv6Repr::NeighborSolicit { target, lladdr },
            _ => Icmpv6Repr::NeighborAdvert {
                flags: NeighborFlags::OVERRIDE,
                target,
                lladdr,
            },
        };
        Body::Ndp(src_ip, repr, lo >= 224, lo % 13 == 5)
    }

    fn process(
        &mut self,
        ingress: PortId,
        frame: &[u8],
        meta: FrameMeta,
        expected: Option<Expected>,
    ) {
        let now = Instant::from_nanos(self.now);
        let d = self
            .bridge
            .process_with(now, ingress, frame, meta, &mut self.out);
        let out = self.out.ports().to_vec();
        self.frames += 1;

        // Invariants, whatever the frame was.
        let from = &self.model.ports[&ingress];
        for p in &out {
            let to = &self.model.ports[p];
            assert_eq!(
                to.segment, from.segment,
                "a frame crossed segments: {d:?} to {p}"
            );
            assert!(
                from.horizon.is_none() || to.horizon != from.horizon,
                "split horizon violated: {d:?} from {ingress} to {p}"
            );
            if !meta.gso && frame.len() >= 18 {
                let tagged = frame[12..14] == [0x81, 0x00];
                let l3 = frame.len() - if tagged { 18 } else { 14 };
                assert!(
                    l3 <= to.mtu as usize,
                    "{l3} bytes past {p}'s MTU {}",
                    to.mtu
                );
            }
        }
        assert!(!out.contains(&ingress), "echoed to the ingress port: {d:?}");
        assert!(
            out.windows(2).all(|w| w[0] < w[1]),
            "egress sorted and unique"
        );
        match d.action {
            Action::Unicast(p) => assert_eq!(out, vec![p]),
            Action::Flood(_) => assert!(!out.is_empty()),
            Action::Drop(_) => assert!(out.is_empty()),
        }

        // Exact agreement with the model.
        let expected = expected.unwrap_or_else(|| self.expect_garbage(ingress, frame, d));
        assert_eq!((d, &out), (expected.0, &expected.1), "frame {frame:02x?}");

        let t = self.tally.get_mut(&ingress).expect("live port");
        t.rx += 1;
        if d.is_forwarded() {
            t.forwarded += 1;
        } else {
            t.dropped += 1;
        }
        for p in &out {
            self.tally.get_mut(p).expect("live port").tx += 1;
        }
        for p in &expected.2 {
            self.tally.get_mut(p).expect("live port").tx_mtu_exceeded += 1;
        }
    }

    /// What the model expects for arbitrary bytes: trunks are predicted in
    /// full; for checked ports the parsing verdict is the bridge's, but a
    /// drop must leave the table alone and a pass must match the model.
    fn expect_garbage(&mut self, ingress: PortId, frame: &[u8], got: Decision) -> Expected {
        let drop = |r| {
            (
                Decision {
                    learn: LearnOutcome::NotLearned,
                    action: Action::Drop(r),
                },
                vec![],
                vec![],
            )
        };
        if frame.len() > 1514 {
            return drop(DropReason::Oversized);
        }
        let tagged = frame.len() >= 14 && frame[12..14] == [0x81, 0x00];
        if frame.len() < 14 || (tagged && frame.len() < 18) {
            return drop(DropReason::Truncated);
        }
        let mut m = [0u8; 6];
        m.copy_from_slice(&frame[6..12]);
        let src = MacAddr(m);
        m.copy_from_slice(&frame[0..6]);
        let dst = MacAddr(m);
        if !src.is_unicast() {
            return drop(DropReason::InvalidSource);
        }
        if let Some((mac, ..)) = identity(&self.model.ports[&ingress].binding) {
            if src != mac {
                return drop(DropReason::SpoofedMac);
            }
            if let Action::Drop(
                r @ (DropReason::Truncated
                | DropReason::Malformed
                | DropReason::SpoofedMac
                | DropReason::SpoofedIp),
            ) = got.action
            {
                if got.learn == LearnOutcome::NotLearned {
                    return drop(r);
                }
            }
        }
        let l3 = frame.len() - if tagged { 18 } else { 14 };
        self.model
            .learn_and_forward(self.now, ingress, src, dst, l3)
    }

    fn check_totals(&self) {
        let mut rx_sum = 0;
        for (id, t) in &self.tally {
            let c = self.bridge.counters(*id).expect("live port");
            assert_eq!(c.rx_frames, t.rx, "{id} rx");
            assert_eq!(c.tx_frames, t.tx, "{id} tx");
            assert_eq!(c.tx_mtu_exceeded, t.tx_mtu_exceeded, "{id} tx withheld");
            assert_eq!(c.dropped(), t.dropped, "{id} drops");
            assert_eq!(
                c.dropped() + t.forwarded,
                c.rx_frames,
                "{id}: drops + forwarded = rx"
            );
            rx_sum += c.rx_frames;
        }
        assert!(rx_sum <= self.frames);
        let s = self.bridge.stats();
        assert_eq!(s.frames, self.frames);
        assert_eq!(s.unicast + s.flooded + s.dropped, s.frames);
        // Ageing forgets learned entries: nothing older than the ageing
        // time is found, static entries always are.
        let now = Instant::from_nanos(self.now);
        for e in self.bridge.fdb_entries() {
            let found = self.bridge.lookup(now, e.segment, e.mac);
            let model = self.model.fdb[&(e.segment, e.mac)];
            assert_eq!((e.port, e.is_static), (model.port, model.is_static));
            if e.is_static || Model::fresh(self.now, e.last_seen.as_nanos()) {
                assert_eq!(found, Some(e.port));
            } else {
                assert_eq!(found, None, "aged entry still answers");
            }
            assert_eq!(
                self.model.ports[&e.port].segment, e.segment,
                "entries point into their segment"
            );
        }
        assert_eq!(self.bridge.fdb_len(), self.model.fdb.len());
        for seg in 0..3 {
            let seg = SegmentId(seg);
            assert_eq!(self.bridge.fdb_segment_len(seg), self.model.learned_in(seg));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn bridge_agrees_with_the_model_and_keeps_its_invariants(
        topo in topology(),
        ops in prop::collection::vec(op(), 1..150),
    ) {
        let mut w = World::new(&topo);
        for op in &ops {
            w.run(op);
        }
        w.check_totals();
    }

    #[test]
    fn unicast_after_learning_reaches_exactly_its_port(
        n in 2usize..12,
        pairs in prop::collection::vec((any::<u8>(), any::<u8>(), 0u64..(AGEING_SECS * 1000)), 1..50),
    ) {
        let mut b = Bridge::new(BridgeConfig {
            ageing: core::time::Duration::from_secs(AGEING_SECS),
            ..BridgeConfig::default()
        });
        let ports: Vec<PortId> = (0..n).map(|i| b.add_port(endpoint(1, i as u8 + 1))).collect();
        let mut out = b.egress();
        let mut now = Instant::ZERO;
        for (a, c, dt_ms) in pairs {
            let (a, c) = (usize::from(a) % n, usize::from(c) % n);
            // c announces itself, then a talks to it within the ageing time.
            b.process(now, ports[c], &raw(MacAddr::BROADCAST, mac(1, c as u8 + 1)), &mut out);
            now = now + core::time::Duration::from_millis(dt_ms);
            let d = b.process(now, ports[a], &raw(mac(1, c as u8 + 1), mac(1, a as u8 + 1)), &mut out);
            if a == c {
                prop_assert_eq!(d.action, Action::Drop(DropReason::SameSegmentLoop));
            } else {
                prop_assert_eq!(d.action, Action::Unicast(ports[c]));
                prop_assert_eq!(out.ports(), &[ports[c]][..]);
            }
            // Past the ageing time the station is forgotten and floods.
            let later = now + core::time::Duration::from_secs(AGEING_SECS);
            prop_assert_eq!(b.lookup(later, SegmentId(1), mac(1, c as u8 + 1)), None);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        frames in prop::collection::vec((0u8..6, prop::collection::vec(any::<u8>(), 0..200), any::<bool>()), 1..64),
        max in 0usize..300,
    ) {
        let mut b = Bridge::new(BridgeConfig { max_frame_len: max, ..BridgeConfig::default() });
        let ports = [
            b.add_port(endpoint(1, 1)),
            b.add_port(trunk(1)),
            b.add_port(trunk(2)),
            b.add_port(endpoint(2, 2)),
            b.add_port(port_config(1, 2, 2, 3)),
            b.add_port(port_config(1, 1, 14, 4)),
        ];
        let mut out = Egress::new();
        for (p, f, gso) in &frames {
            let ingress = ports[usize::from(*p)];
            let d = b.process_with(Instant::ZERO, ingress, f, FrameMeta { gso: *gso }, &mut out);
            let seg = b.port(ingress).unwrap().segment;
            for q in out.ports() {
                prop_assert_eq!(b.port(*q).unwrap().segment, seg);
                prop_assert_ne!(*q, ingress);
            }
            let _ = b.explain(ingress, f, d, &out).to_string();
        }
        let total: u64 = ports.iter().map(|p| b.counters(*p).unwrap().rx_frames).sum();
        prop_assert_eq!(total, frames.len() as u64);
    }

    #[test]
    fn split_horizon_is_never_violated_and_never_overreaches(
        ports in prop::collection::vec((0u8..2, 0u8..4), 2..12),
        frames in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 1..80),
        statics in prop::collection::vec((any::<u8>(), any::<u8>()), 0..6),
    ) {
        // Ports in two segments, each in no group or one of three; a few
        // stations programmed statically, the rest learned.
        let mut b = Bridge::new(BridgeConfig::default());
        let cfgs: Vec<PortConfig> = ports
            .iter()
            .map(|&(seg, g)| PortConfig {
                horizon: (g > 0).then_some(HorizonGroup(u32::from(g))),
                ..trunk(u32::from(seg))
            })
            .collect();
        let ids: Vec<PortId> = cfgs.iter().map(|c| b.add_port(c.clone())).collect();
        let station = |k: u8| mac(0, k % 12 + 1);
        let group_of = |i: usize| cfgs[i].horizon;
        for (p, m) in statics {
            let i = usize::from(p) % ids.len();
            b.add_static_entry(Instant::ZERO, cfgs[i].segment, station(m), ids[i]).unwrap();
        }
        let mut out = b.egress();
        for (p, s, d) in frames {
            let i = usize::from(p) % ids.len();
            let dst = if d % 5 == 0 { MacAddr::BROADCAST } else { station(d) };
            let dec = b.process(Instant::ZERO, ids[i], &raw(dst, station(s)), &mut out);
            let seg = cfgs[i].segment;
            let grouped = |j: usize| group_of(i).is_some() && group_of(j) == group_of(i);
            for q in out.ports() {
                let j = ids.iter().position(|x| x == q).unwrap();
                prop_assert!(!grouped(j), "{} to {} share {:?}: {}", ids[i], q, group_of(i), dec);
            }
            if let Action::Flood(_) | Action::Drop(DropReason::SplitHorizon | DropReason::NoDestination) = dec.action {
                if dst.is_multicast() || b.lookup(Instant::ZERO, seg, dst).is_none() {
                    // Every other port of the segment outside the group got it.
                    let want: Vec<PortId> = (0..ids.len())
                        .filter(|&j| j != i && cfgs[j].segment == seg && !grouped(j))
                        .map(|j| ids[j])
                        .collect();
                    prop_assert_eq!(out.ports(), &want[..]);
                }
            }
            if let Some(to) = b.lookup(Instant::ZERO, seg, dst).filter(|_| !dst.is_multicast()) {
                let j = ids.iter().position(|x| *x == to).unwrap();
                let want = if j == i {
                    Action::Drop(DropReason::SameSegmentLoop)
                } else if grouped(j) {
                    Action::Drop(DropReason::SplitHorizon)
                } else {
                    Action::Unicast(to)
                };
                prop_assert_eq!(dec.action, want);
            }
        }
    }

    #[test]
    fn static_entries_never_move_or_age(
        n in 2usize..8,
        statics in prop::collection::vec((any::<u8>(), any::<u8>()), 1..8),
        steps in prop::collection::vec((any::<u8>(), any::<u8>(), 0u64..(4 * AGEING_SECS * 1000), any::<bool>()), 1..60),
    ) {
        let mut b = Bridge::new(BridgeConfig {
            ageing: core::time::Duration::from_secs(AGEING_SECS),
            fdb_capacity_per_segment: 2,
            ..BridgeConfig::default()
        });
        let ports: Vec<PortId> = (0..n).map(|_| b.add_port(trunk(1))).collect();
        // station -> programmed port (the last programming wins).
        let mut programmed: BTreeMap<MacAddr, PortId> = BTreeMap::new();
        for (m, p) in statics {
            let (station, port) = (mac(1, m % 16 + 1), ports[usize::from(p) % n]);
            b.add_static_entry(Instant::ZERO, SegmentId(1), station, port).unwrap();
            programmed.insert(station, port);
        }
        let mut out = b.egress();
        let mut now = Instant::ZERO;
        let mut conflicts = 0;
        for (m, p, dt, sweep) in steps {
            now = now + core::time::Duration::from_millis(dt);
            if sweep {
                b.expire(now);
            }
            // Any station, static or not, talks from any port.
            let (station, port) = (mac(1, m % 20 + 1), ports[usize::from(p) % n]);
            let d = b.process(now, port, &raw(MacAddr::BROADCAST, station), &mut out);
            if let Some(&owner) = programmed.get(&station) {
                let want = if owner == port {
                    LearnOutcome::Static
                } else {
                    conflicts += 1;
                    LearnOutcome::StaticConflict { owner }
                };
                prop_assert_eq!(d.learn, want);
            }
            for (&station, &owner) in &programmed {
                prop_assert_eq!(b.lookup(now, SegmentId(1), station), Some(owner));
            }
            prop_assert!(b.fdb_segment_len(SegmentId(1)) <= 2, "statics do not count");
        }
        prop_assert_eq!(b.stats().static_conflicts, conflicts);
        let listed = b.fdb_entries().iter().filter(|e| e.is_static).count();
        prop_assert_eq!(listed, programmed.len());
    }
}
