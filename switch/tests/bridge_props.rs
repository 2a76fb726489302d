//! Property tests: random topologies and random frame sequences, checked
//! against a small reference model of the forwarding rules, plus the
//! invariants that must hold whatever the model says (isolation, no echo,
//! counters add up, no panic on any bytes).

mod bridge_support;

use bridge_support::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use switchyard_switch::wire::{Icmpv6Message, Icmpv6Repr, IpProtocol, NeighborFlags};
use switchyard_switch::{
    Action, Bridge, BridgeConfig, Decision, DropReason, Egress, FloodReason, Instant, LearnOutcome,
    MacAddr, PortBinding, PortConfig, PortId, SegmentId,
};

const AGEING_SECS: u64 = 10;
const CAPACITY: usize = 6;

/// The forwarding rules, written as plainly as possible.
#[derive(Default)]
struct Model {
    ports: BTreeMap<PortId, PortConfig>,
    fdb: BTreeMap<(SegmentId, MacAddr), (PortId, u64)>,
}

impl Model {
    fn fresh(now: u64, seen: u64) -> bool {
        now.saturating_sub(seen) < AGEING_SECS * 1_000_000_000
    }

    /// Learning and forwarding for a frame that passed the checks.
    fn learn_and_forward(
        &mut self,
        now: u64,
        ingress: PortId,
        src: MacAddr,
        dst: MacAddr,
    ) -> (Decision, Vec<PortId>) {
        let seg = self.ports[&ingress].segment;
        let learn = match self.fdb.get(&(seg, src)).copied() {
            Some((port, seen)) if Self::fresh(now, seen) => {
                self.fdb.insert((seg, src), (ingress, now));
                if port == ingress {
                    LearnOutcome::Refreshed
                } else {
                    LearnOutcome::Moved { from: port }
                }
            }
            Some(_) => {
                self.fdb.insert((seg, src), (ingress, now));
                LearnOutcome::Learned
            }
            None if self.fdb.keys().filter(|k| k.0 == seg).count() >= CAPACITY => {
                LearnOutcome::RefusedFull
            }
            None => {
                self.fdb.insert((seg, src), (ingress, now));
                LearnOutcome::Learned
            }
        };
        let flood = |reason| {
            let out: Vec<PortId> = self
                .ports
                .iter()
                .filter(|(id, c)| c.segment == seg && **id != ingress)
                .map(|(id, _)| *id)
                .collect();
            if out.is_empty() {
                (
                    Decision {
                        learn,
                        action: Action::Drop(DropReason::NoDestination),
                    },
                    out,
                )
            } else {
                (
                    Decision {
                        learn,
                        action: Action::Flood(reason),
                    },
                    out,
                )
            }
        };
        if dst.is_broadcast() {
            return flood(FloodReason::Broadcast);
        }
        if dst.is_multicast() {
            return flood(FloodReason::Multicast);
        }
        match self.fdb.get(&(seg, dst)) {
            Some(&(port, seen)) if Self::fresh(now, seen) => {
                if port == ingress {
                    (
                        Decision {
                            learn,
                            action: Action::Drop(DropReason::SameSegmentLoop),
                        },
                        vec![],
                    )
                } else {
                    (
                        Decision {
                            learn,
                            action: Action::Unicast(port),
                        },
                        vec![port],
                    )
                }
            }
            _ => flood(FloodReason::UnknownUnicast),
        }
    }

    fn remove(&mut self, id: PortId) {
        self.ports.remove(&id);
        self.fdb.retain(|_, v| v.0 != id);
    }

    fn expire(&mut self, now: u64) -> usize {
        let before = self.fdb.len();
        self.fdb.retain(|_, v| Self::fresh(now, v.1));
        before - self.fdb.len()
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
    /// header.
    Ndp(Ipv6Addr, Icmpv6Repr, bool),
}

fn build(dst: MacAddr, src: MacAddr, body: &Body, vlan: bool) -> Vec<u8> {
    let f = match body {
        Body::Raw => raw(dst, src),
        Body::Ipv4(ip) => ipv4(dst, src, *ip, Ipv4Addr::new(10, 0, 0, 1)),
        Body::Arp(sha, spa) => arp(dst, src, *sha, *spa, Ipv4Addr::new(10, 0, 0, 1)),
        Body::Ipv6(ip) => ipv6(dst, src, *ip),
        Body::Ndp(ip, repr, hbh) => {
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
            f
        }
    };
    if vlan {
        tagged(&f, 7)
    } else {
        f
    }
}

/// The port-security verdict for a well-formed frame.
fn security(binding: &PortBinding, src: MacAddr, body: &Body) -> Option<DropReason> {
    let PortBinding::Endpoint { mac, ipv4, ipv6 } = binding else {
        return None;
    };
    if src != *mac {
        return Some(DropReason::SpoofedMac);
    }
    match body {
        Body::Raw => None,
        Body::Ipv4(ip) => (Some(*ip) != *ipv4).then_some(DropReason::SpoofedIp),
        Body::Arp(sha, spa) if sha != mac => Some(DropReason::SpoofedMac),
        Body::Arp(_, spa) => {
            (!spa.is_unspecified() && Some(*spa) != *ipv4).then_some(DropReason::SpoofedIp)
        }
        Body::Ipv6(ip) => (!ipv6_source_ok(ip, *ipv6)).then_some(DropReason::SpoofedIp),
        Body::Ndp(ip, _, _) if !ipv6_source_ok(ip, *ipv6) => Some(DropReason::SpoofedIp),
        Body::Ndp(ip, repr, _) => {
            // Neighbour discovery speaks only for the endpoint's own
            // addresses (configured, or the link-local its MAC derives) and
            // its own MAC; routers' messages are never its to send.
            let own = |a: &Ipv6Addr| Some(*a) == *ipv6 || *a == lla(*mac);
            let foreign_mac = |m: &Option<MacAddr>| m.is_some_and(|m| m != *mac);
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
                Icmpv6Repr::Other { .. } => Some(DropReason::SpoofedIp),
            }
        }
    }
}

/// The IPv6 source rule for any traffic: unspecified, link-local or the
/// endpoint's address.
fn ipv6_source_ok(ip: &Ipv6Addr, own: Option<Ipv6Addr>) -> bool {
    ip.is_unspecified() || ip.segments()[0] & 0xffc0 == 0xfe80 || Some(*ip) == own
}

/// One step of a scenario; the numbers pick among what exists at the time.
#[derive(Clone, Debug)]
enum Op {
    /// A frame; (ingress pick, src pick, dst pick, body pick, tagged,
    /// detail pick for neighbour discovery).
    Send(u8, u8, u8, u8, bool, u16),
    /// Arbitrary bytes on a port.
    Garbage(u8, Vec<u8>),
    /// Time passes (milliseconds).
    Wait(u32),
    /// Sweep aged entries.
    Expire,
    /// Remove a port.
    Remove(u8),
    /// Add a port to a segment, endpoint or trunk.
    Add(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), prop::bool::weighted(0.1), any::<u16>())
            .prop_map(|(a, b, c, d, e, f)| Op::Send(a, b, c, d, e, f)),
        2 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..80)).prop_map(|(p, b)| Op::Garbage(p, b)),
        3 => prop_oneof![0u32..2_000, 0u32..(3 * AGEING_SECS as u32 * 1000)].prop_map(Op::Wait),
        1 => Just(Op::Expire),
        1 => any::<u8>().prop_map(Op::Remove),
        1 => (0u8..3, any::<bool>()).prop_map(|(s, e)| Op::Add(s, e)),
    ]
}

/// Initial topology: (segment, endpoint?) per port.
fn topology() -> impl Strategy<Value = Vec<(u8, bool)>> {
    prop::collection::vec((0u8..3, any::<bool>()), 1..8)
}

/// Per-port tallies the test keeps from the decisions it saw.
#[derive(Default, Clone, Copy)]
struct Tally {
    rx: u64,
    tx: u64,
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
    fn new(topo: &[(u8, bool)]) -> World {
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
        for &(seg, ep) in topo {
            w.add(seg, ep);
        }
        w
    }

    fn add(&mut self, seg: u8, ep: bool) {
        let n = self.next_station;
        self.next_station = self.next_station.wrapping_add(1);
        let cfg = if ep {
            endpoint(seg, n)
        } else {
            trunk(u32::from(seg))
        };
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
            Op::Send(p, s, d, b, vlan, x) => {
                let Some(ingress) = self.pick_port(*p) else {
                    return;
                };
                let binding = self.model.ports[&ingress].binding.clone();
                // Endpoints mostly send as themselves.
                let src = match (&binding, s % 4) {
                    (PortBinding::Endpoint { mac, .. }, 0..=2) => *mac,
                    _ => self.pick_mac(*s),
                };
                let (own4, own6) = match &binding {
                    PortBinding::Endpoint { ipv4, ipv6, .. } => (*ipv4, *ipv6),
                    PortBinding::Trunk => (None, None),
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
                    6 => Body::Ipv6(own6.unwrap_or(Ipv6Addr::LOCALHOST)),
                    7 => Body::Ipv6(match b % 3 {
                        0 => "fe80::1".parse().unwrap(),
                        1 => Ipv6Addr::UNSPECIFIED,
                        _ => "2001:db8::1".parse().unwrap(),
                    }),
                    _ => self.ndp_body(src, own6, *x),
                };
                let dst = self.pick_mac(*d);
                let frame = build(dst, src, &body, *vlan);
                let expected = if !src.is_unicast() {
                    (
                        Decision {
                            learn: LearnOutcome::NotLearned,
                            action: Action::Drop(DropReason::InvalidSource),
                        },
                        vec![],
                    )
                } else if let Some(reason) = security(&binding, src, &body) {
                    (
                        Decision {
                            learn: LearnOutcome::NotLearned,
                            action: Action::Drop(reason),
                        },
                        vec![],
                    )
                } else {
                    self.model.learn_and_forward(self.now, ingress, src, dst)
                };
                self.process(ingress, &frame, Some(expected));
            }
            Op::Garbage(p, bytes) => {
                let Some(ingress) = self.pick_port(*p) else {
                    return;
                };
                self.process(ingress, bytes, None);
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
            Op::Add(seg, ep) => self.add(*seg, *ep),
        }
    }

    /// A neighbour discovery message, mostly well-behaved, from `src`:
    /// `x` picks the message, its source, target and link-layer address
    /// among the sender's own and other stations'.
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
        Body::Ndp(src_ip, repr, lo >= 224)
    }

    fn process(
        &mut self,
        ingress: PortId,
        frame: &[u8],
        expected: Option<(Decision, Vec<PortId>)>,
    ) {
        let now = Instant::from_nanos(self.now);
        let d = self.bridge.process(now, ingress, frame, &mut self.out);
        let out = self.out.ports().to_vec();
        self.frames += 1;

        // Invariants, whatever the frame was.
        let seg = self.model.ports[&ingress].segment;
        for p in &out {
            assert_eq!(
                self.model.ports[p].segment, seg,
                "a frame crossed segments: {d:?} to {p}"
            );
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
    }

    /// What the model expects for arbitrary bytes: trunks are predicted in
    /// full; for endpoints the parsing verdict is the bridge's, but a drop
    /// must leave the table alone and a pass must match the model.
    fn expect_garbage(
        &mut self,
        ingress: PortId,
        frame: &[u8],
        got: Decision,
    ) -> (Decision, Vec<PortId>) {
        let drop = |r| {
            (
                Decision {
                    learn: LearnOutcome::NotLearned,
                    action: Action::Drop(r),
                },
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
        if let PortBinding::Endpoint { mac, .. } = &self.model.ports[&ingress].binding {
            if src != *mac {
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
        self.model.learn_and_forward(self.now, ingress, src, dst)
    }

    fn check_totals(&self) {
        let mut rx_sum = 0;
        for (id, t) in &self.tally {
            let c = self.bridge.counters(*id).expect("live port");
            assert_eq!(c.rx_frames, t.rx, "{id} rx");
            assert_eq!(c.tx_frames, t.tx, "{id} tx");
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
        // Ageing forgets: nothing older than the ageing time is found.
        let now = Instant::from_nanos(self.now);
        for e in self.bridge.fdb_entries() {
            let found = self.bridge.lookup(now, e.segment, e.mac);
            if Model::fresh(self.now, e.last_seen.as_nanos()) {
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
        frames in prop::collection::vec((0u8..4, prop::collection::vec(any::<u8>(), 0..200)), 1..64),
        max in 0usize..300,
    ) {
        let mut b = Bridge::new(BridgeConfig { max_frame_len: max, ..BridgeConfig::default() });
        let ports = [b.add_port(endpoint(1, 1)), b.add_port(trunk(1)), b.add_port(trunk(2)), b.add_port(endpoint(2, 2))];
        let mut out = Egress::new();
        for (p, f) in &frames {
            let ingress = ports[usize::from(*p)];
            let d = b.process(Instant::ZERO, ingress, f, &mut out);
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
}
