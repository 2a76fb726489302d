//! The bridge's forwarding rules, one behaviour per test.

mod bridge_support;

use bridge_support::*;
use core::time::Duration;
use std::net::{Ipv4Addr, Ipv6Addr};
use switchyard_switch::{
    Action, Bridge, BridgeConfig, Decision, DropReason, Egress, FloodReason, Instant, LearnOutcome,
    MacAddr, PortBinding, PortConfig, PortId, SegmentId,
};

const T0: Instant = Instant::from_secs(1);

fn bridge() -> Bridge {
    Bridge::new(BridgeConfig::default())
}

/// A bridge with `n` trunk ports in segment 1.
fn trunks(n: usize) -> (Bridge, Vec<PortId>) {
    let mut b = bridge();
    let ports = (0..n).map(|_| b.add_port(trunk(1))).collect();
    (b, ports)
}

fn send(b: &mut Bridge, at: Instant, port: PortId, frame: &[u8]) -> (Decision, Vec<PortId>) {
    let mut out = Egress::new();
    let d = b.process(at, port, frame, &mut out);
    (d, out.ports().to_vec())
}

fn dropped(b: &Bridge, port: PortId, reason: DropReason) -> u64 {
    b.counters(port).unwrap().drops_for(reason)
}

#[test]
fn a_source_is_learned_then_refreshed() {
    let (mut b, p) = trunks(2);
    let a = mac(1, 1);
    let (d, _) = send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, a));
    assert_eq!(d.learn, LearnOutcome::Learned);
    assert_eq!(b.lookup(T0, SegmentId(1), a), Some(p[0]));
    let (d, _) = send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, a));
    assert_eq!(d.learn, LearnOutcome::Refreshed);
    assert_eq!(b.stats().learned, 1);
    assert_eq!(b.stats().refreshed, 1);
}

#[test]
fn known_unicast_goes_to_exactly_one_port() {
    let (mut b, p) = trunks(4);
    send(&mut b, T0, p[2], &raw(MacAddr::BROADCAST, mac(1, 3)));
    let (d, out) = send(&mut b, T0, p[0], &raw(mac(1, 3), mac(1, 1)));
    assert_eq!(d.action, Action::Unicast(p[2]));
    assert_eq!(out, vec![p[2]]);
    assert_eq!(b.counters(p[2]).unwrap().tx_frames, 1);
    assert_eq!(
        b.counters(p[1]).unwrap().tx_frames,
        1,
        "only the first broadcast reached p1"
    );
}

#[test]
fn unknown_unicast_floods_every_port_but_the_ingress() {
    let (mut b, p) = trunks(4);
    let (d, out) = send(&mut b, T0, p[1], &raw(mac(1, 9), mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
    assert_eq!(out, vec![p[0], p[2], p[3]]);
}

#[test]
fn broadcast_and_multicast_flood_the_segment() {
    let (mut b, p) = trunks(3);
    let (d, out) = send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::Broadcast));
    assert_eq!(out, vec![p[1], p[2]]);
    let mdns = MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
    let (d, out) = send(&mut b, T0, p[2], &raw(mdns, mac(1, 3)));
    assert_eq!(d.action, Action::Flood(FloodReason::Multicast));
    assert_eq!(out, vec![p[0], p[1]]);
}

#[test]
fn a_lone_port_has_no_one_to_flood_to() {
    let (mut b, p) = trunks(1);
    let (d, out) = send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.action, Action::Drop(DropReason::NoDestination));
    assert!(out.is_empty());
    assert_eq!(
        d.learn,
        LearnOutcome::Learned,
        "the source is still learned"
    );
    assert_eq!(dropped(&b, p[0], DropReason::NoDestination), 1);
}

#[test]
fn a_destination_behind_the_ingress_port_is_dropped() {
    let (mut b, p) = trunks(2);
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 2)));
    let (d, out) = send(&mut b, T0, p[0], &raw(mac(1, 2), mac(1, 1)));
    assert_eq!(d.action, Action::Drop(DropReason::SameSegmentLoop));
    assert!(out.is_empty());
    assert_eq!(dropped(&b, p[0], DropReason::SameSegmentLoop), 1);
}

#[test]
fn segments_are_isolated() {
    let mut b = bridge();
    let a1 = b.add_port(trunk(1));
    let a2 = b.add_port(trunk(1));
    let b1 = b.add_port(trunk(2));
    let b2 = b.add_port(trunk(2));
    let (_, out) = send(&mut b, T0, a1, &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(out, vec![a2]);
    // The same MAC learned in segment 2 says nothing about segment 1.
    send(&mut b, T0, b2, &raw(MacAddr::BROADCAST, mac(9, 9)));
    let (d, out) = send(&mut b, T0, a1, &raw(mac(9, 9), mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
    assert_eq!(out, vec![a2]);
    assert_eq!(b.lookup(T0, SegmentId(1), mac(9, 9)), None);
    assert_eq!(b.lookup(T0, SegmentId(2), mac(9, 9)), Some(b2));
    assert_eq!(
        b.counters(b1).unwrap().tx_frames,
        1,
        "only segment 2's broadcast"
    );
}

#[test]
fn a_station_that_moves_is_relearned() {
    let (mut b, p) = trunks(3);
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    let (d, _) = send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.learn, LearnOutcome::Moved { from: p[0] });
    let (d, out) = send(&mut b, T0, p[2], &raw(mac(1, 1), mac(1, 3)));
    assert_eq!(d.action, Action::Unicast(p[1]));
    assert_eq!(out, vec![p[1]]);
    assert_eq!(b.stats().moved, 1);
}

#[test]
fn ageing_forgets_a_silent_station() {
    let (mut b, p) = trunks(3);
    send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 2)));
    let just_before = T0 + Duration::from_nanos(300_000_000_000 - 1);
    assert_eq!(b.lookup(just_before, SegmentId(1), mac(1, 2)), Some(p[1]));
    let aged = T0 + Duration::from_secs(300);
    assert_eq!(b.lookup(aged, SegmentId(1), mac(1, 2)), None);
    let (d, out) = send(&mut b, aged, p[0], &raw(mac(1, 2), mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
    assert_eq!(out, vec![p[1], p[2]]);
}

#[test]
fn expire_sweeps_aged_entries_and_counts_them() {
    let (mut b, p) = trunks(2);
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 2)));
    let later = T0 + Duration::from_secs(100);
    send(&mut b, later, p[1], &raw(MacAddr::BROADCAST, mac(1, 3)));
    assert_eq!(b.expire(T0 + Duration::from_secs(299)), 0);
    assert_eq!(b.expire(T0 + Duration::from_secs(300)), 2);
    assert_eq!(b.fdb_len(), 1);
    assert_eq!(b.stats().aged_out, 2);
    let entries = b.fdb_entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].mac, entries[0].port, entries[0].last_seen),
        (mac(1, 3), p[1], later)
    );
}

#[test]
fn a_full_segment_refuses_to_learn_but_keeps_forwarding() {
    let mut b = Bridge::new(BridgeConfig {
        fdb_capacity_per_segment: 2,
        ..BridgeConfig::default()
    });
    let p1 = b.add_port(trunk(1));
    let p2 = b.add_port(trunk(1));
    let q1 = b.add_port(trunk(2));
    let _q2 = b.add_port(trunk(2));
    send(&mut b, T0, p1, &raw(MacAddr::BROADCAST, mac(1, 1)));
    send(&mut b, T0, p2, &raw(MacAddr::BROADCAST, mac(1, 2)));
    // Full: a third station is not learned, but its frame still goes out.
    let (d, out) = send(&mut b, T0, p1, &raw(mac(1, 2), mac(1, 3)));
    assert_eq!(
        d,
        Decision {
            learn: LearnOutcome::RefusedFull,
            action: Action::Unicast(p2)
        }
    );
    assert_eq!(out, vec![p2]);
    assert_eq!(b.stats().refused_full, 1);
    assert_eq!(b.fdb_segment_len(SegmentId(1)), 2);
    // Frames to it are flooded.
    let (d, _) = send(&mut b, T0, p2, &raw(mac(1, 3), mac(1, 2)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
    // Known stations still refresh and move.
    let (d, _) = send(&mut b, T0, p1, &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.learn, LearnOutcome::Refreshed);
    let (d, _) = send(&mut b, T0, p2, &raw(MacAddr::BROADCAST, mac(1, 1)));
    assert_eq!(d.learn, LearnOutcome::Moved { from: p1 });
    // Other segments still learn.
    let (d, _) = send(&mut b, T0, q1, &raw(MacAddr::BROADCAST, mac(2, 1)));
    assert_eq!(d.learn, LearnOutcome::Learned);
    // MAC flooding does not grow the table.
    for n in 0..=255u8 {
        send(
            &mut b,
            T0,
            p1,
            &raw(MacAddr::BROADCAST, MacAddr([0x02, 0, 0, 0, 7, n])),
        );
    }
    assert_eq!(b.fdb_segment_len(SegmentId(1)), 2);
    assert_eq!(b.stats().refused_full, 1 + 256);
}

#[test]
fn expiry_makes_room_in_a_full_segment() {
    let mut b = Bridge::new(BridgeConfig {
        fdb_capacity_per_segment: 1,
        ..BridgeConfig::default()
    });
    let p = [b.add_port(trunk(1)), b.add_port(trunk(1))];
    send(&mut b, T0, p[0], &raw(MacAddr::BROADCAST, mac(1, 1)));
    let later = T0 + Duration::from_secs(301);
    let (d, _) = send(&mut b, later, p[1], &raw(MacAddr::BROADCAST, mac(1, 2)));
    assert_eq!(
        d.learn,
        LearnOutcome::RefusedFull,
        "aged entries hold their room until swept"
    );
    assert_eq!(b.expire(later), 1);
    let (d, _) = send(&mut b, later, p[1], &raw(MacAddr::BROADCAST, mac(1, 2)));
    assert_eq!(d.learn, LearnOutcome::Learned);
}

#[test]
fn removing_a_port_purges_its_entries_and_its_id_is_never_reused() {
    let (mut b, p) = trunks(3);
    send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 2)));
    send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 4)));
    send(&mut b, T0, p[2], &raw(MacAddr::BROADCAST, mac(1, 3)));
    assert_eq!(b.remove_port(p[1]).unwrap().label, "trunk1");
    assert_eq!(b.remove_port(p[1]), None);
    assert_eq!(b.stats().purged, 2);
    assert_eq!(b.lookup(T0, SegmentId(1), mac(1, 2)), None);
    assert_eq!(b.lookup(T0, SegmentId(1), mac(1, 3)), Some(p[2]));
    let (d, out) = send(&mut b, T0, p[0], &raw(mac(1, 2), mac(1, 1)));
    assert_eq!(d.action, Action::Flood(FloodReason::UnknownUnicast));
    assert_eq!(out, vec![p[2]]);
    let fresh = b.add_port(trunk(1));
    assert!(fresh > p[2], "ids count up and are never reused");
    let (d, _) = send(&mut b, T0, p[1], &raw(MacAddr::BROADCAST, mac(1, 2)));
    assert_eq!(d.action, Action::Drop(DropReason::UnknownPort));
    assert_eq!(b.stats().unknown_port, 1);
    let ids: Vec<PortId> = b.ports().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![p[0], p[2], fresh]);
    assert_eq!(b.segment_ports(SegmentId(1)).collect::<Vec<_>>(), ids);
}

#[test]
fn a_segment_can_be_emptied_and_reused() {
    let mut b = bridge();
    let a = b.add_port(trunk(5));
    b.remove_port(a);
    assert_eq!(b.segment_ports(SegmentId(5)).count(), 0);
    let c = b.add_port(trunk(5));
    let d = b.add_port(trunk(5));
    let (_, out) = send(&mut b, T0, c, &raw(MacAddr::BROADCAST, mac(5, 1)));
    assert_eq!(out, vec![d]);
}

#[test]
fn sources_must_be_unicast() {
    let (mut b, p) = trunks(2);
    for src in [
        MacAddr::BROADCAST,
        MacAddr([0x01, 0, 0x5e, 0, 0, 1]),
        MacAddr::ZERO,
    ] {
        let (d, out) = send(&mut b, T0, p[0], &raw(mac(1, 2), src));
        assert_eq!(
            d,
            Decision {
                learn: LearnOutcome::NotLearned,
                action: Action::Drop(DropReason::InvalidSource)
            }
        );
        assert!(out.is_empty());
    }
    assert_eq!(dropped(&b, p[0], DropReason::InvalidSource), 3);
    assert_eq!(b.fdb_len(), 0);
}

#[test]
fn truncated_and_oversized_frames_are_counted() {
    let mut b = Bridge::new(BridgeConfig {
        max_frame_len: 100,
        ..BridgeConfig::default()
    });
    let p = [b.add_port(trunk(1)), b.add_port(trunk(1))];
    let (d, _) = send(&mut b, T0, p[0], &[0u8; 13]);
    assert_eq!(d.action, Action::Drop(DropReason::Truncated));
    let mut tagged_header = raw(MacAddr::BROADCAST, mac(1, 1));
    tagged_header[12..14].copy_from_slice(&[0x81, 0x00]);
    let (d, _) = send(&mut b, T0, p[0], &tagged_header[..17]);
    assert_eq!(d.action, Action::Drop(DropReason::Truncated));
    let (d, _) = send(&mut b, T0, p[0], &[0u8; 101]);
    assert_eq!(d.action, Action::Drop(DropReason::Oversized));
    let (d, _) = send(
        &mut b,
        T0,
        p[0],
        &eth(
            MacAddr::BROADCAST,
            mac(1, 1),
            switchyard_switch::wire::EtherType(0x88b5),
            &[0; 86],
        ),
    );
    assert!(d.is_forwarded(), "exactly the limit passes");
    let c = b.counters(p[0]).unwrap();
    assert_eq!(c.drops_for(DropReason::Truncated), 2);
    assert_eq!(c.drops_for(DropReason::Oversized), 1);
    assert_eq!(c.rx_frames, 4);
    assert_eq!(c.rx_bytes, 13 + 17 + 101 + 100);
    assert_eq!(b.fdb_len(), 1);
}

#[test]
fn counters_follow_rx_tx_and_drops() {
    let (mut b, p) = trunks(3);
    let f = raw(MacAddr::BROADCAST, mac(1, 1));
    send(&mut b, T0, p[0], &f);
    send(&mut b, T0, p[1], &raw(mac(1, 1), mac(1, 2)));
    send(&mut b, T0, p[1], &[0u8; 3]);
    let c0 = b.counters(p[0]).unwrap();
    assert_eq!(
        (c0.rx_frames, c0.rx_bytes, c0.tx_frames, c0.tx_bytes),
        (1, 60, 1, 60)
    );
    let c1 = b.counters(p[1]).unwrap();
    assert_eq!(
        (c1.rx_frames, c1.rx_bytes, c1.tx_frames, c1.dropped()),
        (2, 63, 1, 1)
    );
    let c2 = b.counters(p[2]).unwrap();
    assert_eq!((c2.rx_frames, c2.tx_frames), (0, 1));
    let s = b.stats();
    assert_eq!((s.frames, s.unicast, s.flooded, s.dropped), (3, 1, 1, 1));
}

#[test]
fn egress_is_reused_without_growing() {
    let (mut b, p) = trunks(8);
    let mut out = b.egress();
    let cap = out.ports().as_ptr();
    for i in 0..100u8 {
        b.process(
            T0,
            p[usize::from(i) % 8],
            &raw(MacAddr::BROADCAST, mac(1, i)),
            &mut out,
        );
        assert_eq!(out.len(), 7);
    }
    assert_eq!(out.ports().as_ptr(), cap, "the same buffer every time");
}

// ---- port security ----

/// Segment 1 with an endpoint port for station (1, 1) and a trunk.
fn secured() -> (Bridge, PortId, PortId) {
    let mut b = bridge();
    let ep = b.add_port(endpoint(1, 1));
    let tr = b.add_port(trunk(1));
    (b, ep, tr)
}

fn assert_refused(b: &mut Bridge, ep: PortId, frame: &[u8], reason: DropReason) {
    let before = dropped(b, ep, reason);
    let (d, out) = send(b, T0, ep, frame);
    assert_eq!(
        d,
        Decision {
            learn: LearnOutcome::NotLearned,
            action: Action::Drop(reason)
        }
    );
    assert!(out.is_empty());
    assert_eq!(dropped(b, ep, reason), before + 1);
    assert_eq!(b.fdb_len(), 0, "a refused frame must not poison the FDB");
}

#[test]
fn endpoint_frames_with_their_own_addresses_pass() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let frames = [
        raw(MacAddr::BROADCAST, me),
        ipv4(MacAddr::BROADCAST, me, ip4(1, 1), ip4(1, 2)),
        arp(MacAddr::BROADCAST, me, me, ip4(1, 1), ip4(1, 2)),
        ipv6(MacAddr::BROADCAST, me, ip6(1, 1)),
    ];
    for f in frames {
        let (d, out) = send(&mut b, T0, ep, &f);
        assert!(d.is_forwarded(), "{d}");
        assert_eq!(out, vec![tr]);
    }
    assert_eq!(b.lookup(T0, SegmentId(1), me), Some(ep));
}

#[test]
fn a_spoofed_source_mac_is_dropped() {
    let (mut b, ep, _) = secured();
    assert_refused(
        &mut b,
        ep,
        &raw(MacAddr::BROADCAST, mac(1, 2)),
        DropReason::SpoofedMac,
    );
    assert_refused(
        &mut b,
        ep,
        &ipv4(MacAddr::BROADCAST, mac(1, 2), ip4(1, 1), ip4(1, 2)),
        DropReason::SpoofedMac,
    );
}

#[test]
fn a_spoofed_ipv4_source_is_dropped() {
    let (mut b, ep, _) = secured();
    assert_refused(
        &mut b,
        ep,
        &ipv4(MacAddr::BROADCAST, mac(1, 1), ip4(1, 2), ip4(1, 3)),
        DropReason::SpoofedIp,
    );
    assert_refused(
        &mut b,
        ep,
        &ipv4(
            MacAddr::BROADCAST,
            mac(1, 1),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
        ),
        DropReason::SpoofedIp,
    );
}

#[test]
fn an_endpoint_without_ipv4_may_not_send_ipv4() {
    let mut b = bridge();
    let ep = b.add_port(PortConfig {
        segment: SegmentId(1),
        binding: PortBinding::Endpoint {
            mac: mac(1, 1),
            ipv4: None,
            ipv6: None,
        },
        label: String::new(),
    });
    b.add_port(trunk(1));
    assert_refused(
        &mut b,
        ep,
        &ipv4(MacAddr::BROADCAST, mac(1, 1), ip4(1, 1), ip4(1, 2)),
        DropReason::SpoofedIp,
    );
    let probe = arp(
        MacAddr::BROADCAST,
        mac(1, 1),
        mac(1, 1),
        Ipv4Addr::UNSPECIFIED,
        ip4(1, 1),
    );
    assert!(
        send(&mut b, T0, ep, &probe).0.is_forwarded(),
        "an ARP probe is still fine"
    );
}

#[test]
fn broken_ipv4_headers_from_endpoints_are_truncated_or_malformed() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    // Only 10 bytes of IPv4 header before the frame ends.
    let mut short = eth(
        MacAddr::BROADCAST,
        me,
        switchyard_switch::wire::EtherType::IPV4,
        &[],
    );
    short.truncate(24);
    short[14] = 0x45;
    assert_refused(&mut b, ep, &short, DropReason::Truncated);
    // Total length larger than the frame.
    let mut long = ipv4(MacAddr::BROADCAST, me, ip4(1, 1), ip4(1, 2));
    long[16..18].copy_from_slice(&1000u16.to_be_bytes());
    assert_refused(&mut b, ep, &long, DropReason::Truncated);
    let mut v6 = ipv4(MacAddr::BROADCAST, me, ip4(1, 1), ip4(1, 2));
    v6[14] = 0x65;
    assert_refused(&mut b, ep, &v6, DropReason::Malformed);
    let mut ihl = ipv4(MacAddr::BROADCAST, me, ip4(1, 1), ip4(1, 2));
    ihl[14] = 0x43;
    assert_refused(&mut b, ep, &ihl, DropReason::Malformed);
}

#[test]
fn arp_sender_addresses_are_checked() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    assert_refused(
        &mut b,
        ep,
        &arp(MacAddr::BROADCAST, me, mac(1, 2), ip4(1, 1), ip4(1, 2)),
        DropReason::SpoofedMac,
    );
    assert_refused(
        &mut b,
        ep,
        &arp(MacAddr::BROADCAST, me, me, ip4(1, 2), ip4(1, 3)),
        DropReason::SpoofedIp,
    );
    let mut not_ipv4 = arp(MacAddr::BROADCAST, me, me, ip4(1, 1), ip4(1, 2));
    not_ipv4[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
    assert_refused(&mut b, ep, &not_ipv4, DropReason::Malformed);
}

#[test]
fn an_arp_probe_from_0_0_0_0_is_allowed() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let (d, out) = send(
        &mut b,
        T0,
        ep,
        &arp(MacAddr::BROADCAST, me, me, Ipv4Addr::UNSPECIFIED, ip4(1, 1)),
    );
    assert_eq!(d.action, Action::Flood(FloodReason::Broadcast));
    assert_eq!(out, vec![tr]);
}

#[test]
fn ipv6_sources_must_be_the_endpoints_link_local_or_unspecified() {
    let (mut b, ep, _) = secured();
    let me = mac(1, 1);
    for ok in [
        ip6(1, 1),
        "fe80::42:aff:fe00:101".parse().unwrap(),
        "febf::1".parse().unwrap(),
        Ipv6Addr::UNSPECIFIED,
    ] {
        assert!(
            send(&mut b, T0, ep, &ipv6(MacAddr::BROADCAST, me, ok))
                .0
                .is_forwarded(),
            "{ok}"
        );
    }
    let mut fresh = secured();
    for bad in [
        ip6(1, 2),
        "fec0::1".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    ] {
        assert_refused(
            &mut fresh.0,
            fresh.1,
            &ipv6(MacAddr::BROADCAST, me, bad),
            DropReason::SpoofedIp,
        );
    }
}

#[test]
fn tagged_frames_are_checked_on_their_inner_header() {
    let (mut b, ep, tr) = secured();
    let me = mac(1, 1);
    let good = tagged(&ipv4(MacAddr::BROADCAST, me, ip4(1, 1), ip4(1, 2)), 10);
    let (d, out) = send(&mut b, T0, ep, &good);
    assert!(d.is_forwarded());
    assert_eq!(out, vec![tr]);
    let mut fresh = secured();
    let spoofed = tagged(&ipv4(MacAddr::BROADCAST, me, ip4(1, 9), ip4(1, 2)), 10);
    assert_refused(&mut fresh.0, fresh.1, &spoofed, DropReason::SpoofedIp);
    let spoofed_arp = tagged(
        &arp(MacAddr::BROADCAST, me, mac(1, 9), ip4(1, 1), ip4(1, 2)),
        10,
    );
    assert_refused(&mut fresh.0, fresh.1, &spoofed_arp, DropReason::SpoofedMac);
    // A second tag would hide the IPv4 header: refused.
    let double = tagged(
        &tagged(&ipv4(MacAddr::BROADCAST, me, ip4(1, 9), ip4(1, 2)), 10),
        20,
    );
    assert_refused(&mut fresh.0, fresh.1, &double, DropReason::Malformed);
}

#[test]
fn trunk_ports_are_not_checked() {
    let (mut b, ep, tr) = secured();
    let spoof = ipv4(MacAddr::BROADCAST, mac(1, 1), ip4(9, 9), ip4(1, 2));
    let (d, out) = send(&mut b, T0, tr, &spoof);
    assert_eq!(d.learn, LearnOutcome::Learned);
    assert_eq!(out, vec![ep]);
}

// ---- explanations ----

#[test]
fn explanations_say_why_a_frame_went_where_it_went() {
    let mut b = bridge();
    let p1 = b.add_port(PortConfig {
        label: "web/eth0".into(),
        ..trunk(1)
    });
    let p2 = b.add_port(PortConfig {
        label: "db/eth0".into(),
        ..trunk(1)
    });
    let p3 = b.add_port(trunk(1));
    let mut out = b.egress();
    let db = MacAddr([0x02, 0x42, 0xac, 0x12, 0x00, 0x03]);
    let web = MacAddr([0x02, 0x42, 0xac, 0x12, 0x00, 0x02]);

    let f = raw(web, db);
    let d = b.process(Instant::from_millis(1200), p2, &f, &mut out);
    assert_eq!(
        b.explain(p2, &f, d, &out).to_string(),
        "p2 (db/eth0) in seg1: src 02:42:ac:12:00:03 learned on p2; \
         dst 02:42:ac:12:00:02 unknown in seg1 -> flooded to 2 ports (p1, p3)"
    );
    let f = raw(db, web);
    let d = b.process(Instant::from_secs(2), p1, &f, &mut out);
    assert_eq!(
        b.explain(p1, &f, d, &out).to_string(),
        "p1 (web/eth0) in seg1: src 02:42:ac:12:00:02 learned on p1; \
         dst 02:42:ac:12:00:03 learned on p2 at 1.2s -> unicast to p2 (db/eth0)"
    );
    let f = raw(MacAddr::BROADCAST, MacAddr::BROADCAST);
    let d = b.process(Instant::from_secs(2), p3, &f, &mut out);
    assert_eq!(
        b.explain(p3, &f, d, &out).to_string(),
        "p3 (trunk1) in seg1: src ff:ff:ff:ff:ff:ff is not a unicast address -> dropped"
    );
    assert_eq!(
        d.to_string(),
        "source not learned -> dropped (source MAC is not a unicast address)"
    );
}

#[test]
fn explanations_of_port_security_name_the_endpoint() {
    let (mut b, ep, _) = secured();
    let mut out = b.egress();
    let f = ipv4(MacAddr::BROADCAST, mac(1, 1), ip4(1, 7), ip4(1, 2));
    let d = b.process(T0, ep, &f, &mut out);
    let text = b.explain(ep, &f, d, &out).to_string();
    assert!(text.contains("sender IP is not the endpoint's"), "{text}");
    assert!(text.contains("10.0.1.1"), "{text}");
    assert!(text.ends_with("-> dropped, not learned"), "{text}");
}
